"""Resource and isolation limits for one sandboxed worker process."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_MODULES = ("math", "numpy", "random", "itertools", "functools", "collections", "heapq", "statistics")


class SandboxLimits(BaseModel):
    """Per-call CPU seconds, memory above the worker's baseline, wall-clock seconds, imports, OS isolation."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    cpu_s: float = Field(2.0, gt=0)  # RLIMIT_CPU per call (SIGXCPU kills the child)
    memory_mb: int = Field(256, gt=0)  # RLIMIT_AS = worker baseline (python+numpy) + this
    wall_s: float = Field(5.0, gt=0)  # parent SIGKILLs the child (its whole PID namespace) after this
    max_open_files: int = Field(32, gt=3)  # RLIMIT_NOFILE
    max_processes: int = Field(0, ge=0)  # RLIMIT_NPROC: processes/threads the code may start (bwrap only)
    allowed_modules: tuple[str, ...] = DEFAULT_MODULES  # import lint (typed errors), not the boundary
    # "bwrap": the OS boundary (scenarios/sandbox/isolation.py); refused with SandboxUnavailable where bwrap
    # is missing or fails. "none": a plain child process, for trusted code only (a WARNING at every start).
    isolation: Literal["bwrap", "none"] = "bwrap"
    bwrap_path: str = "bwrap"  # looked up on PATH unless absolute
    max_frame_mb: int = Field(64, gt=0)  # largest reply the parent accepts
