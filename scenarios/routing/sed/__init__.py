"""RELED's SED module: navigation interface, sandboxed plan execution, prompts and feedback rounds."""
