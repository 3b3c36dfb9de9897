"""The traffic-signal environment as a PettingZoo ParallelEnv: one agent per light, phase masks in the observations."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..parallel import SpacesParallelEnv
from .env import OBS_DIM, SignalEnv
from .phases import PHASES


class SignalParallelEnv(SpacesParallelEnv):
    """Agents are the light ids (SignalEnv.tls_ids). Each observes {"observation": the 48 floats, "action_mask": the
    phases that exist there} (PettingZoo's classic environments' form; the mask is also infos[light]["action_mask"],
    and the pressures infos[light]["pressure"]) and picks one of the 8 phases; reward as SignalEnv. The horizon
    truncates (the step after which SignalEnv closes the simulation and reports infos[light]["metrics"])."""

    metadata = {"name": "netmarl_signals_v0"}

    def __init__(self, env: SignalEnv, pressure: str = "vehicles"):
        self.env, self.pressure = env, pressure
        self.possible_agents = list(env.tls_ids)
        self.agents: list[str] = []
        self.masks = {t: env.masks[t].astype(np.int8) for t in self.possible_agents}
        self.spaces_obs = {
            t: spaces.Dict(
                {
                    "observation": spaces.Box(0.0, np.inf, (OBS_DIM,), np.float32),
                    "action_mask": spaces.MultiBinary(len(PHASES)),
                }
            )
            for t in self.possible_agents
        }
        self.spaces_act = {t: spaces.Discrete(len(PHASES)) for t in self.possible_agents}

    def _wrap(self, obs: dict, extra: dict | None = None):
        """Observations with their masks; infos with the masks, the pressures (of the last step's lanes) and extra."""
        pressure = self.env.pressures(self.pressure)
        out = {t: {"observation": obs[t], "action_mask": self.masks[t]} for t in obs}
        infos = {t: {"action_mask": self.masks[t], **(extra or {})} for t in obs}
        for t, p in pressure.items():
            infos[t]["pressure"] = p
        return out, infos

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.seed_spaces(seed)
        obs = self.env.reset(seed)
        self.agents = list(self.possible_agents)
        return self._wrap(obs)

    def step(self, actions: dict):
        obs, rewards, done, info = self.env.step({t: int(a) for t, a in actions.items()})
        out, infos = self._wrap(obs, info)
        if done:
            self.agents = []
        return out, rewards, {t: False for t in out}, {t: done for t in out}, infos

    def close(self) -> None:
        self.env.close()
