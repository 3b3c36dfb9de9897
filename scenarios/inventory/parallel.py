"""The MABIM inventory environment as a PettingZoo ParallelEnv: one agent per echelon, one order per SKU."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..parallel import SpacesParallelEnv
from ..step_driver import node_name
from .config import N_ACTIONS, InventoryConfig
from .model import COMPONENTS, InventoryEnv
from .observe import OBS_DIM, observe


class InventoryParallelEnv(SpacesParallelEnv):
    """Agent i (the world's agent i) is echelon i: observes observe()'s (N, 56) rows, answers (N,) action indices;
    its reward is its SKUs' summed reward2 (per SKU and per component in its info). The horizon truncates.
    reset(seed, options={"split": "test"}) picks the episode's window as InventoryEnv.reset does."""

    metadata = {"name": "netmarl_inventory_v0"}

    def __init__(self, cfg: InventoryConfig, env: InventoryEnv | None = None, split: str = "train"):
        self.env = env if env is not None else InventoryEnv(cfg)
        self.split = split
        self.possible_agents = [node_name(i) for i in range(self.env.m)]
        self.agents: list[str] = []
        n = self.env.n
        self.spaces_obs = {a: spaces.Box(-np.inf, np.inf, (n, OBS_DIM), np.float32) for a in self.possible_agents}
        self.spaces_act = {a: spaces.MultiDiscrete([N_ACTIONS] * n) for a in self.possible_agents}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.seed_spaces(seed)
        self.env.reset(seed, split=(options or {}).get("split", self.split))
        self.agents = list(self.possible_agents)
        obs = observe(self.env, None)
        return {a: obs[i] for i, a in enumerate(self.agents)}, {a: {} for a in self.agents}

    def step(self, actions: dict):
        agents = self.agents
        prev = np.stack([np.asarray(actions[a], np.int64) for a in agents])
        _, rewards, done, info = self.env.step(prev)
        obs = observe(self.env, prev)
        infos = {
            a: {"rewards": rewards[i], "components": {c: info["components"][c][i] for c in COMPONENTS}}
            for i, a in enumerate(agents)
        }
        if done:
            self.agents = []
        return (
            {a: obs[i] for i, a in enumerate(agents)},
            {a: float(rewards[i].sum()) for i, a in enumerate(agents)},
            {a: False for a in agents},
            {a: bool(done) for a in agents},
            infos,
        )
