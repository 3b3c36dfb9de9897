"""ConfigError on its own, free of dependencies: `netmarl node` on a device catches it without loading the
scenario models (and through them SUMO's sumolib); scenarios.config re-exports it."""

from __future__ import annotations


class ConfigError(Exception):
    """A scenario file or override is invalid; the text names the field and the reason."""
