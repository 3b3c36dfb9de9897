"""Plan a beacon run: build the figure-eight, then one world process and one agent per bound vehicle."""

from __future__ import annotations

from pathlib import Path

from ..config import ScenarioConfig
from ..plan import RunPlan
from .world import prepare


def plan_beacons(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    """The agents run the [role] table's role (the beacon by default)."""
    files = prepare(cfg.world, cfg.run.seed, run_dir / "net")
    role = cfg.role.get("name", "beacon")
    kwargs = dict(
        seed=cfg.run.seed,
        world=cfg.world.model_dump(mode="json"),
        net_dir=str(run_dir / "net"),
        steps=cfg.run.steps,
        deadline_s=cfg.run.step_deadline_s,
    )
    return RunPlan(
        "scenarios.beacons.world:run_beacon_world", kwargs, {a: role for a in files.agent_ids}, {role: cfg.role}
    )
