"""What a run launches, per world kind: the world process, the agents with their roles, and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import ScenarioConfig
from .kinds import world_kind


@dataclass
class RunPlan:
    """The processes of one run and the settings each role receives at registration."""

    world_target: str  # "module:function" of the world process
    world_kwargs: dict[str, Any]
    agents: dict[str, str]  # node id -> role name
    role_settings: dict[str, dict[str, Any]]  # role name -> its [role] settings
    # extra results for summary.json and extra plots, from the run folder's metrics records
    summarize: Callable[[Path, list[dict]], dict] | None = None
    plot: Callable[[Path, list[dict]], Any] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    external: set[str] = field(default_factory=set)  # agents served by nodes that join by hand (not launched)
    agent_settings: Callable[[str], dict[str, Any]] | None = None  # per-agent additions to its role settings


def preload_modules(cfg: ScenarioConfig) -> list[str]:
    """What the fork server imports once for this scenario's world kind, so its processes start with it loaded
    (torch takes seconds of CPU to import: nine learners importing it at once stall a 2-core machine)."""
    return list(world_kind(cfg.world.kind).preload)


def plan_run(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    """Prepare the world's files (network, trained policies) and say what to launch; resume: a run
    folder whose checkpoints the new run starts from (kinds that checkpoint)."""
    kind = world_kind(cfg.world.kind)
    if resume is not None and not kind.resumable:
        raise ValueError(f"--resume: a {kind.name} run has no checkpoints to resume from")
    return kind.plan(cfg, run_dir, resume)
