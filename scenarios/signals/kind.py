"""The signals kind: traffic lights learning IPPO (eSpark's traffic-signal task) or run by FTC / MaxPressure."""

from __future__ import annotations

from ..config import ConfigError, ScenarioConfig, check_init_weights, check_radio_free
from ..kinds import WorldKind, lazy
from .config import SignalAlgo, SignalWorld


def check_signals(cfg: ScenarioConfig, where: str) -> None:
    """A traffic-signal scenario: [algo] holds the lights' learner."""
    check_radio_free(cfg, where, "the traffic lights")
    check_init_weights(cfg.algo, where)
    if cfg.world.yellow_s >= cfg.world.delta_s:
        raise ConfigError(f"{where}: world.yellow_s must be shorter than world.delta_s")


KIND = WorldKind(
    name="signals",
    world=SignalWorld,
    algo=SignalAlgo,
    plan=lazy("scenarios.signals.plan:plan_signals"),
    check=check_signals,
    espark="scenarios.signals.espark_task:TASK",
    preload=("agent_node.roles.ippo", "scenarios.signals.world"),
)
