"""The cav kind: RSM-MASAC's connected vehicles (figure-eight or Merge) learning SAC and mixing segments."""

from __future__ import annotations

from agent_node.roles.settings import CavSettings

from ..config import ConfigError, ScenarioConfig
from ..kinds import WorldKind, lazy
from .config import CavWorld


def check_cav(cfg: ScenarioConfig, where: str) -> None:
    """A CAV scenario takes its learner settings from [algo] (the cav role's settings), not [role]."""
    if cfg.role != {"name": "beacon"}:
        raise ConfigError(f"{where}: role: a cav world takes its agents' settings from [algo], not [role]")
    if cfg.world.scenario == "figure8" and cfg.world.n_agents > cfg.world.vehicles:
        raise ConfigError(f"{where}: world.agents ({cfg.world.n_agents}) exceeds world.vehicles ({cfg.world.vehicles})")
    step = cfg.world.step_length
    if cfg.algo.round_timeout_s < 2 * step - 1e-9:
        raise ConfigError(
            f"{where}: algo.round_timeout_s: must be at least two steps ({2 * step:g} s): answers "
            "sent in the step after a request are only certain to be in by then"
        )


KIND = WorldKind(
    name="cav",
    world=CavWorld,
    algo=CavSettings,
    plan=lazy("scenarios.cav.plan:plan_cav"),
    check=check_cav,
    preload=("agent_node.roles.cav", "scenarios.cav.world"),
    resumable=True,
    export="scenarios.cav.export:export_run",
    evaluate="scenarios.cav.evaluate:evaluate_run",
)
