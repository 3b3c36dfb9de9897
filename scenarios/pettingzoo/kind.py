"""The pettingzoo kind: any PettingZoo ParallelEnv, named by import path, hosted as one process per agent."""

from __future__ import annotations

from ..config import ConfigError, ScenarioConfig, check_radio_free
from ..kinds import WorldKind, lazy
from .config import PettingZooAlgo, PettingZooWorld


def check_pettingzoo(cfg: ScenarioConfig, where: str) -> None:
    """The environment imports, is a ParallelEnv and has spaces the learner takes, before any process starts."""
    from .host import HostError, agent_spaces, load_env

    check_radio_free(cfg, where, "the environment's agents")
    try:
        env = load_env(cfg.world.env, cfg.world.env_kwargs)
        try:
            for agent in env.possible_agents:
                agent_spaces(env, agent)
        finally:
            env.close()
    except HostError as err:
        raise ConfigError(f"{where}: {err}") from None


KIND = WorldKind(
    name="pettingzoo",
    world=PettingZooWorld,
    algo=PettingZooAlgo,
    plan=lazy("scenarios.pettingzoo.plan:plan_pettingzoo"),
    check=check_pettingzoo,
    preload=("agent_node.roles.ippo", "scenarios.pettingzoo.world"),
)
