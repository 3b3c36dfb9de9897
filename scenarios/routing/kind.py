"""The routing kind: RELED's vehicles choosing roads, with the LLM expert's subset rollouts (SED)."""

from __future__ import annotations

from ..config import ConfigError, ScenarioConfig, check_radio_free
from ..kinds import WorldKind, lazy
from .config import RoutingAlgo, RoutingWorld


def check_routing(cfg: ScenarioConfig, where: str) -> None:
    """A routing scenario: [algo] holds the method, PPO and SED settings."""
    check_radio_free(cfg, where, "RELED's vehicles")
    if cfg.algo.alpha_mode != "paper" and cfg.algo.alpha_fixed is None:
        raise ConfigError(f"{where}: algo.alpha_fixed: alpha_mode {cfg.algo.alpha_mode!r} needs a weight (0.2 or 0.5)")


KIND = WorldKind(
    name="routing",
    world=RoutingWorld,
    algo=RoutingAlgo,
    plan=lazy("scenarios.routing.plan:plan_routing"),
    check=check_routing,
    preload=("agent_node.roles.router", "scenarios.routing.world"),
    resumable=True,
)
