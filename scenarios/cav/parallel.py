"""The CAV environments (figure-eight, merge) as a PettingZoo ParallelEnv: agents are the slots bound to a vehicle."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..parallel import SpacesParallelEnv
from .env import CavEnv
from .maths import terminated


class CavParallelEnv(SpacesParallelEnv):
    """Any CavEnv, stepped as the CAV world steps it: an agent is present while its slot drives a vehicle (on the
    merge, slots join as vehicles are bound and leave, truncated, with their vehicle); each observes the 6-d state
    in [0, 1] and answers one acceleration in [-bound, bound]; every agent gets the shared reward. A collision
    terminates (with end_on_collision), the horizon truncates. reset(seed=e) runs episode e of the env's run seed
    (the world's episode numbers); a reset without a seed runs the next episode. `reward`, `collided` and `done`
    hold the last step's, also while no slot drives (the merge before its first binding)."""

    metadata = {"name": "netmarl_cav_v0"}

    def __init__(self, env: CavEnv, end_on_collision: bool = True):
        self.env, self.end_on_collision = env, end_on_collision
        self.possible_agents = list(env.agent_ids)
        self.agents: list[str] = []
        self.spaces_obs = {a: spaces.Box(0.0, 1.0, (6,), np.float32) for a in self.possible_agents}
        b = float(env.action_bound)
        self.spaces_act = {a: spaces.Box(-b, b, (1,), np.float32) for a in self.possible_agents}
        self.episode = -1

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.seed_spaces(seed)
        self.episode = int(seed) if seed is not None else self.episode + 1
        self.env.reset(self.episode)
        self.t, self.gone, self.reward, self.collided, self.done = 0, set(), 0.0, False, False
        obs = self.env.observations()
        self.agents = list(obs)
        self.last = dict(obs)
        return obs, {a: {} for a in obs}

    def step(self, actions: dict):
        env, before = self.env, self.agents
        env.step({a: float(np.asarray(actions[a]).reshape(-1)[0]) for a in before if a in actions})
        self.t += 1
        reward, collided = env.reward(), env.collided()
        done = terminated(self.t, env.horizon, collided, end_on_collision=self.end_on_collision)
        self.reward, self.collided, self.done = reward, collided, done  # also while no slot drives
        terminal = done and collided and self.end_on_collision
        obs = {a: o for a, o in env.observations().items() if a not in self.gone}  # a slot never comes back
        if done:  # a slot bound on the last step has nothing to act on
            obs = {a: o for a, o in obs.items() if a in before}
        left = set(before) - obs.keys()
        self.gone |= left
        self.last.update(obs)
        obs.update({a: self.last[a] for a in left})  # the leaving vehicle's last observation, to bootstrap from
        terms = {a: terminal and a not in left for a in obs}  # leaving the road is a truncation
        truncs = {a: (done and not terminal) or a in left for a in obs}
        infos = {a: {"left": a in left, "collided": collided} for a in obs}
        self.agents = [] if done else [a for a in self.possible_agents if a in obs and a not in left]
        return obs, {a: reward for a in obs}, terms, truncs, infos

    def close(self) -> None:
        self.env.close()
