"""What a run launches, per world kind: the world process, the agents with their roles, and settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import ScenarioConfig


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


#: modules the fork server imports once for a world kind, so its agent processes start with them loaded
#: (torch takes seconds of CPU to import: nine learners importing it at once stall a 2-core machine)
PRELOAD_BY_KIND = {
    "cav": ["agent_node.roles.cav", "scenarios.cav.world"],
    "routing": ["agent_node.roles.router", "scenarios.routing.world"],
    "signals": ["agent_node.roles.router", "scenarios.signals.world"],
    "inventory": ["agent_node.roles.stocker", "scenarios.inventory.world"],
}


def preload_modules(cfg: ScenarioConfig) -> list[str]:
    """Extra fork-server preloads for this scenario's world kind."""
    return PRELOAD_BY_KIND.get(cfg.world.kind, [])


def plan_run(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    """Prepare the world's files (network, trained policies) and say what to launch; resume: a run
    folder whose checkpoints the new run starts from (worlds that checkpoint)."""
    if cfg.world.kind == "cav":
        from .cav.plan import plan_cav

        return plan_cav(cfg, run_dir, resume)
    if cfg.world.kind == "routing":
        from .routing.plan import plan_routing

        return plan_routing(cfg, run_dir, resume)
    if cfg.world.kind == "inventory":
        from .inventory.plan import plan_inventory

        return plan_inventory(cfg, run_dir, resume)
    if cfg.world.kind == "signals" and resume is None:
        from .signals.plan import plan_signals

        return plan_signals(cfg, run_dir)
    if resume is not None:
        raise ValueError(f"--resume: a {cfg.world.kind} run has no checkpoints to resume from")
    if cfg.world.kind == "warehouse":
        from .warehouse.plan import plan_warehouse

        return plan_warehouse(cfg, run_dir)
    from .beacons import prepare

    files = prepare(cfg.world, cfg.run.seed, run_dir / "net")
    role = cfg.role.get("name", "beacon")
    kwargs = dict(
        seed=cfg.run.seed,
        world=cfg.world.model_dump(mode="json"),
        net_dir=str(run_dir / "net"),
        steps=cfg.run.steps,
        deadline_s=cfg.run.step_deadline_s,
    )
    return RunPlan("scenarios.beacons:run_world", kwargs, {a: role for a in files.agent_ids}, {role: cfg.role})
