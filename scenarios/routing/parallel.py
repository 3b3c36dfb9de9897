"""The event-driven routing environment as a PettingZoo ParallelEnv: a step runs SUMO to the next tick where some
vehicle decides, and only the vehicles deciding there have a selectable action."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces

from ..parallel import SpacesParallelEnv
from .env import Decision, Ending, RoutingEnv, fallback_road
from .observe import M_OUT
from .sed.navigation import Navigator

OBS_DIM = 2 + 2 * M_OUT  # the routing observation: position, destination, M_OUT scores, M_OUT end junctions
MAX_ROUNDS_PER_TICK = 8  # decision rounds within one SUMO second (a road just chosen may need its own decision)


class RoutingParallelEnv(SpacesParallelEnv):
    """Agents are the vehicles "agent<i>" of the RoutingEnv's trips, live from the reset until they arrive
    (terminated), leave the network elsewhere (terminated) or reach t_max (truncated).

    Every live agent has an observation {"observation": its last decision's 10 floats (zeros before its first),
    "action_mask": the roads it may take}; the mask is all zeros unless it decides in this step (PettingZoo's way
    of saying an agent does not act now; parallel_api_test needs every live agent in the observations), and
    infos[agent]["deciding"] says the same. The actions of deciding agents are applied; one that is not a road the
    vehicle may take is replaced by the world's fallback (the fastest road), reported as infos[agent]["applied"].
    A reward is Eq. 32 for the agent's previous decision, paid when its next decision or its end comes (0 between).
    A road just chosen may end within the same second: its vehicle decides again in a step without a tick, up to
    MAX_ROUNDS_PER_TICK rounds a second (then SUMO moves on and the vehicle keeps its route). `pending` and
    `endings` hold the env's Decision and Ending objects of the last report, by agent.
    """

    metadata = {"name": "netmarl_routing_v0"}

    def __init__(self, env: RoutingEnv):
        self.env, self.nav = env, Navigator(env.net)
        self.possible_agents = [f"agent{trip.agent}" for trip in env.trips]
        self.agents: list[str] = []
        self.spaces_obs = {
            a: spaces.Dict(
                {
                    "observation": spaces.Box(-np.inf, np.inf, (OBS_DIM,), np.float32),
                    "action_mask": spaces.MultiBinary(M_OUT),
                }
            )
            for a in self.possible_agents
        }
        self.spaces_act = {a: spaces.Discrete(M_OUT) for a in self.possible_agents}
        self.pending: dict[str, Decision] = {}
        self.endings: dict[str, Ending] = {}
        self.rounds = 0  # decision rounds in the current SUMO second
        self.last_obs: dict[str, np.ndarray] = {}

    def reset(self, seed: int | None = None, options: dict | None = None):
        self.seed_spaces(seed)
        self.env.reset(0 if seed is None else seed)
        self.agents = list(self.possible_agents)
        self.last_obs = {a: np.zeros(OBS_DIM, np.float32) for a in self.agents}
        decisions, endings = self._advance()
        obs, _, _, _, infos = self._report(decisions, endings, {})
        return obs, infos

    def step(self, actions: dict):
        applied = {}
        for name, d in self.pending.items():
            action = actions.get(name)
            if action is None or not self.env.apply(d.agent, d.edge, d.options, int(action)):
                applied[name] = fallback_road(self.env, self.nav, d)
        follow = self.env.follow_ups([d.agent for d in self.pending.values()])
        if follow and self.rounds < MAX_ROUNDS_PER_TICK:
            self.rounds += 1
            decisions, endings = follow, []
        else:
            decisions, endings = self._advance()
        return self._report(decisions, endings, applied)

    def _advance(self) -> tuple[list[Decision], list[Ending]]:
        """SUMO ticks until some vehicle decides or ends (or the episode is over)."""
        self.rounds = 1
        while not self.env.done:
            decisions, endings = self.env.tick()
            if decisions or endings:
                return decisions, endings
        return [], []

    def _report(self, decisions: list[Decision], endings: list[Ending], applied: dict):
        """The five dicts over the agents live before this step; the finished ones leave self.agents."""
        self.pending = {f"agent{d.agent}": d for d in decisions}
        self.endings = {f"agent{e.agent}": e for e in endings}
        live = list(self.agents)
        rewards, terminated, truncated = (
            dict.fromkeys(live, 0.0),
            dict.fromkeys(live, False),
            dict.fromkeys(live, False),
        )
        infos = {a: {"deciding": a in self.pending} for a in live}
        masks = {a: np.zeros(M_OUT, np.int8) for a in live}
        for name, d in self.pending.items():
            rewards[name] = float(d.reward)
            self.last_obs[name] = np.asarray(d.obs, np.float32)
            masks[name] = d.mask.astype(np.int8)
            infos[name].update(junction=d.junction, xy=d.xy)
        for e in endings:
            name = f"agent{e.agent}"
            rewards[name] = float(e.reward)
            truncated[name], terminated[name] = e.truncated, not e.truncated
            infos[name].update(arrived=e.arrived)
            if e.obs is not None:
                self.last_obs[name] = np.asarray(e.obs, np.float32)
        if self.env.done:  # every vehicle still out at t_max was truncated above; none is left
            for a in live:
                truncated[a] = truncated[a] or not terminated[a]
        for name, road in applied.items():
            infos[name]["applied"] = road
        obs = {a: {"observation": self.last_obs[a], "action_mask": masks[a]} for a in live}
        self.agents = [a for a in live if not (terminated[a] or truncated[a])]
        return obs, rewards, terminated, truncated, infos

    def close(self) -> None:
        self.env.close()
