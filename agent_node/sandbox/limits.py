"""Resource and isolation limits for one sandboxed worker process."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODULES = ("math", "numpy", "random", "itertools", "functools", "collections", "heapq", "statistics")


class SandboxLimits(BaseModel):
    """Per-call CPU seconds, memory above the worker's baseline, wall-clock seconds, imports, network."""

    model_config = ConfigDict(frozen=True)

    cpu_s: float = Field(2.0, gt=0)           # RLIMIT_CPU per call (SIGXCPU kills the child)
    memory_mb: int = Field(256, gt=0)         # RLIMIT_AS = worker baseline (python+numpy) + this
    wall_s: float = Field(5.0, gt=0)          # parent SIGKILLs the child after this many seconds
    max_open_files: int = Field(32, gt=3)     # RLIMIT_NOFILE
    allowed_modules: tuple[str, ...] = DEFAULT_MODULES
    network_namespace: Literal["auto", "on", "off"] = "auto"  # `unshare -n`; "on" fails if unavailable
    max_frame_mb: int = Field(64, gt=0)       # largest reply the parent accepts
