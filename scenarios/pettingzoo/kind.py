"""The pettingzoo kind: any PettingZoo ParallelEnv, named by import path, hosted as one process per agent."""

from __future__ import annotations

from ..config import ConfigError, ScenarioConfig
from ..kinds import WorldKind, lazy
from .config import PettingZooAlgo, PettingZooWorld


def check_pettingzoo(cfg: ScenarioConfig, where: str) -> None:
    """The environment imports, is a ParallelEnv and has spaces the learner takes (and a role of your own imports and
    takes its settings, a positions function imports), before any process starts. The radio is optional: in direct
    mode the agents' radio messages go straight to each other, in emulated mode through the medium."""
    from .host import HostError, agent_spaces, generic_learner, load_callable, load_env

    if "role" in cfg.model_fields_set:
        raise ConfigError(f"{where}: role: a pettingzoo world's agents are set in [algo] (method, role_settings)")
    if cfg.world.positions and cfg.netsim.mode != "emulated":
        raise ConfigError(f'{where}: world.positions places the agents for the radio: set netsim.mode = "emulated"')
    try:
        if cfg.world.positions:
            load_callable(cfg.world.positions, "world.positions")
        env = load_env(cfg.world.env, cfg.world.env_kwargs)
        try:
            agents = {agent: agent_spaces(env, agent) for agent in env.possible_agents}
        finally:
            env.close()
        if cfg.algo.method != "role":
            generic_learner(cfg.algo.method, agents)
    except HostError as err:
        raise ConfigError(f"{where}: {err}") from None
    if cfg.algo.method == "role":
        check_user_role(cfg, where)


def check_user_role(cfg: ScenarioConfig, where: str) -> None:
    """algo.role imports, is a Role, and takes algo.role_settings."""
    from pydantic import ValidationError

    from agent_node.roles import load_role

    from ..config import explain

    if cfg.algo.role is None:
        raise ConfigError(f'{where}: algo.role: method = "role" needs the role\'s import path, "module:Class"')
    try:
        role = load_role(cfg.algo.role)
    except ValueError as err:
        raise ConfigError(f"{where}: algo.role: {err}") from None
    try:
        role.Settings.model_validate({"name": cfg.algo.role, **cfg.algo.role_settings})
    except ValidationError as err:
        raise ConfigError(explain(err, where, "algo.role_settings.")) from None


KIND = WorldKind(
    name="pettingzoo",
    world=PettingZooWorld,
    algo=PettingZooAlgo,
    plan=lazy("scenarios.pettingzoo.plan:plan_pettingzoo"),
    check=check_pettingzoo,
    preload=("agent_node.roles.ippo", "agent_node.roles.isac", "scenarios.pettingzoo.world"),
)
