"""Run LLM-written Python in a separate worker process inside a bubblewrap sandbox (namespaces, a minimal
read-only view, uid nobody, rlimits); never in this one."""

from scenarios.sandbox.isolation import SandboxUnavailable
from scenarios.sandbox.limits import SandboxLimits
from scenarios.sandbox.runner import ERRORS, PersistentWorker, Result, Sandbox

__all__ = ["SandboxLimits", "Sandbox", "PersistentWorker", "Result", "ERRORS", "SandboxUnavailable"]
