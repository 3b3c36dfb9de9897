"""The Alternating-MARL warehouse game as PettingZoo ParallelEnvs: the whole game (the dispatcher and n robots act each
step) and the floor the world process steps (the dispatcher's global chain; the robots are processes of their own)."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from agent_node.warehouse import streams
from agent_node.warehouse.layout import DISPATCHER, robot_id
from agent_node.warehouse.model import WarehouseModel
from agent_node.warehouse.simulator import draw_polls, zone_counts

from ..parallel import SpacesParallelEnv


class WarehouseParallelEnv(SpacesParallelEnv):
    """Simulator.run's step with chosen actions: the dispatcher observes [s_g, zone counts of its k polled robots]
    and picks a zone a_g (reward r_g[s_g, a_g]); robot i observes [s_i, s_g] and picks stay/up/down (reward
    r_l[s_i, s_g, a_i]). The draws are the simulator's (common random numbers: seed, episode, step), so the same
    actions replay Simulator.run. reset(seed=s) sets the game seed and episode 0, options={"episode": e} the
    episode; a reset with neither runs the next episode. The horizon truncates."""

    metadata = {"name": "netmarl_warehouse_v0"}

    def __init__(self, model: WarehouseModel, n: int, k: int, horizon: int, seed: int = 0):
        if not 1 <= k <= n:
            raise ValueError(f"k must be in 1..n={n}, got {k}")
        self.model, self.n, self.k, self.horizon, self.seed = model, n, k, horizon, seed
        self.robots = [robot_id(i) for i in range(n)]
        self.possible_agents = [DISPATCHER, *self.robots]
        self.agents: list[str] = []
        z = model.zones
        self.spaces_obs = {DISPATCHER: spaces.MultiDiscrete([z] + [k + 1] * z)}
        self.spaces_obs.update({r: spaces.MultiDiscrete([z, z]) for r in self.robots})
        self.spaces_act = {DISPATCHER: spaces.Discrete(z), **{r: spaces.Discrete(3) for r in self.robots}}
        self.episode = -1

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.seed, self.episode = int(seed), -1
        self.seed_spaces(seed)
        self.episode = int((options or {}).get("episode", self.episode + 1))
        m, e = self.model, self.episode
        self._polls = streams.generator(self.seed, e, streams.POLLS)
        self.s_g = int(m.initial_global(self.seed, [e])[0])
        self.s_l = m.initial_local(self.seed, e, np.arange(self.n))
        self.t = 0
        self.agents = list(self.possible_agents)
        return self._observe(), {a: {} for a in self.agents}

    def _observe(self, poll: bool = True) -> dict[str, np.ndarray]:
        """Poll k robots (none after the horizon: the simulator draws none there), then everyone's observation."""
        if poll:
            self.polled = draw_polls(self._polls, self.n, self.k)
        counts = zone_counts(self.s_l[self.polled], self.model.zones)
        out = {DISPATCHER: np.array([self.s_g, *counts], np.int64)}
        out.update({r: np.array([self.s_l[i], self.s_g], np.int64) for i, r in enumerate(self.robots)})
        return out

    def step(self, actions: dict):
        m, seed, e, t, s_g, s_l = self.model, self.seed, self.episode, self.t, self.s_g, self.s_l
        a_g = int(actions[DISPATCHER])
        a_l = np.array([int(actions[r]) for r in self.robots], np.int64)
        s_g_next = int(m.global_step(seed, [e], t, np.array([s_g]), np.array([a_g]))[0])
        robots = np.arange(self.n)
        s_l_next = m.local_move(seed, e, robots, t, s_l, m.move_reads(s_g, s_g_next), a_l)
        rewards = {DISPATCHER: float(m.r_g[s_g, a_g])}
        rewards.update({r: float(x) for r, x in zip(self.robots, m.r_l[s_l, s_g, a_l])})
        self.s_g, self.s_l, self.t = s_g_next, s_l_next, t + 1
        done = self.t >= self.horizon
        agents = self.agents
        obs = self._observe(poll=not done)
        if done:
            self.agents = []
        info = {a: {} for a in agents}
        info[DISPATCHER] = {"polled": self.polled}
        return obs, rewards, {a: False for a in agents}, {a: done for a in agents}, info


class FloorParallelEnv(SpacesParallelEnv):
    """The dispatcher's part of the warehouse game as a one-agent ParallelEnv, as the warehouse world steps it: the
    robots are processes of their own (the dispatcher polls them over the radio), so what the world owns is the
    global chain. The dispatcher observes {"clock": [episode, t], "sg": s_g of the episode so far, the last 64}
    and picks a zone a_g (reward r_g[s_g, a_g]); s_g(t+1) ~ P_g from the simulator's stream. A missing action keeps
    the priority zone (a_g = s_g). reset(options={"episode": e, "steps": n}) runs episode e for n steps (default:
    the horizon; a run's last episode may be cut short); infos[dispatcher] has the step's s_g, a_g and r_g."""

    metadata = {"name": "netmarl_warehouse_floor_v0"}
    HISTORY = 64

    def __init__(self, model: WarehouseModel, horizon: int, seed: int = 0):
        self.model, self.horizon, self.seed = model, horizon, seed
        self.possible_agents = [DISPATCHER]
        self.agents: list[str] = []
        clock = spaces.Box(0, np.iinfo(np.int64).max, (2,), np.int64)
        self.spaces_obs = {
            DISPATCHER: spaces.Dict({"clock": clock, "sg": spaces.Sequence(spaces.Discrete(model.zones))})
        }
        self.spaces_act = {DISPATCHER: spaces.Discrete(model.zones)}
        self.episode = -1

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None:
            self.seed, self.episode = int(seed), -1
        self.seed_spaces(seed)
        options = options or {}
        self.episode = int(options.get("episode", self.episode + 1))
        self.steps = int(options.get("steps", self.horizon))
        self.s_g = int(self.model.initial_global(self.seed, self.episode)[0])
        self.history, self.t = [self.s_g], 0
        self.agents = [DISPATCHER]
        return self._observe(), {DISPATCHER: {}}

    def _observe(self) -> dict:
        clock = np.array([self.episode, self.t], np.int64)
        return {DISPATCHER: {"clock": clock, "sg": np.array(self.history[-self.HISTORY :], np.int64)}}

    def step(self, actions: dict):
        m, s_g = self.model, self.s_g
        a_g = actions.get(DISPATCHER)
        a_g = s_g if a_g is None else int(a_g)
        r_g = float(m.r_g[s_g, a_g])
        self.s_g = int(m.global_step(self.seed, self.episode, self.t, np.array([s_g]), np.array([a_g]))[0])
        self.t += 1
        self.history.append(self.s_g)
        done = self.t >= self.steps
        self.agents = [] if done else [DISPATCHER]
        info = {DISPATCHER: {"s_g": s_g, "a_g": a_g, "r_g": r_g}}
        return self._observe(), {DISPATCHER: r_g}, {DISPATCHER: False}, {DISPATCHER: done}, info
