"""Run LLM-written Python in a separate, rlimited, network-less worker process; never in this one."""
from agent_node.sandbox.limits import SandboxLimits
from agent_node.sandbox.runner import PersistentWorker, Result, Sandbox

__all__ = ["SandboxLimits", "Sandbox", "PersistentWorker", "Result"]
