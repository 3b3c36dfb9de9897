"""Run LLM-written Python in a separate worker process inside a bubblewrap sandbox (namespaces, a minimal
read-only view, uid nobody, rlimits); never in this one."""
from agent_node.sandbox.isolation import SandboxUnavailable
from agent_node.sandbox.limits import SandboxLimits
from agent_node.sandbox.runner import ERRORS, PersistentWorker, Result, Sandbox

__all__ = ["SandboxLimits", "Sandbox", "PersistentWorker", "Result", "ERRORS", "SandboxUnavailable"]
