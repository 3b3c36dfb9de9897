"""The [world] and [algo] tables of a hosted PettingZoo environment (kind = "pettingzoo")."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_node.learners.settings import PPOConfig, SACConfig
from agent_node.overrides import Overrides

IMPORT_PATH = r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$"  # "package.module:name"


class PettingZooWorld(BaseModel):
    """Any PettingZoo ParallelEnv: `env` names a callable that returns it; episodes of it run in the world process,
    one agent process per agent, learners updated every update_every episodes, then greedy test episodes."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["pettingzoo"] = "pettingzoo"  # picks the world kind (scenarios/kinds.py)
    # "module:callable" returning a pettingzoo.ParallelEnv, e.g. "mpe2.simple_spread_v3:parallel_env"
    env: str = Field(pattern=IMPORT_PATH)
    env_kwargs: dict[str, Any] = Field(default_factory=dict)  # keyword arguments of that callable (the env's own)
    episodes: int = Field(100, ge=0)  # training episodes (0: test only)
    first_episode: int = Field(1, ge=1)  # number (and reset seed) of the first training episode
    update_every: int = Field(4, ge=1)  # training episodes per learner update
    test_episodes: int = Field(5, ge=0)  # greedy test episodes at the end, fresh seeds
    eval_episodes: int = Field(0, ge=0)  # greedy episodes on fixed seeds at each evaluation checkpoint
    eval_every: int = Field(0, ge=0)  # ... every this many training episodes (0: after training only)
    update_deadline_s: float = Field(120.0, gt=0)  # how long the world waits for the agents' updates, s
    # the radio (netsim.mode = "emulated"): "module:callable" taking the environment and returning each live agent's
    # (x, y) in metres, read every step; None: every agent at the origin (no range: only netsim's loss)
    positions: str | None = Field(None, pattern=IMPORT_PATH)
    step_s: float = Field(0.1, gt=0)  # simulated seconds per environment step: the radio's clock


class PettingZooAlgo(BaseModel):
    """[algo]: the agents' learner. "ippo": the masked PPO (agent_node/learners/ppo.py), one per agent, for Discrete
    action spaces; an "action_mask" in a dict observation is honoured. "isac": SAC (agent_node/learners/sac.py), one
    per agent, for Box action spaces (it acts in [-1, 1], the world maps that onto the box). "auto" picks one of the
    two from the action spaces. "role": a role of your own (a Role subclass, "module:Class") in every agent process,
    with role_settings as its settings. Observations are flattened for ippo and isac."""

    model_config = ConfigDict(extra="forbid")
    method: Literal["auto", "ippo", "isac", "role"] = "auto"  # a generic learner, or your own role (role)
    ppo: Overrides(PPOConfig) = Field(default_factory=PPOConfig)  # ippo: the fields set override the defaults
    sac: Overrides(SACConfig) = Field(default_factory=SACConfig)  # isac: the fields set override the defaults
    updates_per_step: int = Field(1, ge=0)  # isac: gradient steps after each training decision
    torch_threads: int = Field(1, ge=1)  # PyTorch threads of each agent process
    # method = "role": the agents' role class, "package.module:Class" (importable by the agent processes)
    role: str | None = Field(None, pattern=IMPORT_PATH)
    role_settings: dict[str, Any] = Field(default_factory=dict)  # method = "role": the settings it is given
