"""The hosted PettingZoo world process: episodes of the user's ParallelEnv on the one world loop, agent i's process
(agent<i>) driving possible_agents[i]; learner updates between episodes."""

from __future__ import annotations

import logging
import time

import numpy as np

from protocols.endpoint import Endpoint
from protocols.lockstep import expected_radio
from protocols.messages import Act

from ..parallel_world import ParallelEnvWorld, StepView
from ..step_driver import as_action, serve_world, world_endpoint
from .config import PettingZooWorld
from .host import AgentSpaces, agent_positions, agent_spaces, flat_observation, load_callable, load_env

log = logging.getLogger("scenarios.pettingzoo")


class PettingZooWorldProcess(ParallelEnvWorld):
    """Each step: every live agent's flattened observation (and a Discrete agent's action mask) out, its action back
    (a missing or unusable one is replaced: the first allowed action, and the agent is told; a Box's centre);
    returns per agent per episode."""

    def __init__(self, ep: Endpoint, cfg: PettingZooWorld, deadline_s: float, seed: int):
        super().__init__(ep, deadline_s)
        self.cfg, self.seed = cfg, seed
        self.par = load_env(cfg.env, cfg.env_kwargs)
        self.spaces = {a: agent_spaces(self.par, a) for a in self.par.possible_agents}
        self.index = {a: i for i, a in enumerate(self.par.possible_agents)}
        self.n_agents = len(self.par.possible_agents)
        self.defaulted = 0
        self.exploration = None  # no training-time pruning here
        self._bad_logged: set[int] = set()
        self.positions = load_callable(cfg.positions, "world.positions") if cfg.positions else None
        self.delivered: dict[str, int] | None = None  # the medium's deliveries per agent at this step's tick
        self.xy: dict[str, np.ndarray] = {}

    def before_observe(self) -> None:
        """With a medium: the live agents' positions to it, and its tick (every radio message of earlier steps is
        delivered) before anyone observes."""
        if not self.ep.peers.ids("medium"):
            self.delivered, self.xy = None, {}
            return
        self.ep.t_sim = round(self.step * self.cfg.step_s, 6)
        agents = list(self.par.agents)
        xy = agent_positions(self.positions, self.par, agents, self.step)
        ids = [self.node_of(self.index[a], a) for a in agents]
        self.delivered = self.sync_medium(self.positions_for(self.step, ids), {"xy": xy, "speed": np.zeros(len(ids))})
        self.xy = dict(zip(agents, xy))

    def radio_expected(self, node: str) -> int | None:
        return expected_radio(self.delivered, node)

    def close(self) -> None:
        self.par.close()

    def masks(self, mode: str, obs: dict, infos: dict, done: bool) -> list[np.ndarray | None]:
        """Discrete agents: the allowed actions (an "action_mask" in the observation or the infos, else all); Box
        agents: None."""
        out = []
        for agent in self.par.possible_agents:
            sp = self.spaces[agent]
            if sp.continuous:
                out.append(None)
                continue
            mask = np.ones(sp.n_actions, bool)
            if sp.masked and agent in obs:
                mask = np.asarray(obs[agent]["action_mask"], bool).reshape(-1)
            elif agent in infos and "action_mask" in infos[agent]:
                mask = np.asarray(infos[agent]["action_mask"], bool).reshape(-1)
            out.append(mask if mask.shape == (sp.n_actions,) and mask.any() else np.ones(sp.n_actions, bool))
        return out

    def phase(self, mode: str, agent: str, view: StepView, applied: int | None) -> Act:
        """Act, with arrived: the agent's episode ended in a termination (no bootstrap), not a truncation."""
        return Act(mode=mode, applied=applied, arrived=bool(view.terms.get(agent, False)))

    def arrays(self, agent: str, obs: dict, infos: dict, mask: np.ndarray | None) -> dict[str, np.ndarray]:
        arrays = {"obs": flat_observation(self.par, agent, obs[agent], self.spaces[agent].masked)}
        if mask is not None:
            arrays["mask"] = mask.astype(np.uint8)
        if agent in self.xy:  # where the radio has the agent
            arrays["xy"] = self.xy[agent]
        return arrays

    def action(self, i: int, answered: bool, value, mask: np.ndarray | None) -> tuple[object, int | None]:
        sp = self.spaces[self.par.possible_agents[i]]
        if sp.continuous:
            return self.box_action(i, answered, sp), None
        a = as_action(value)
        if a is None or not (0 <= a < len(mask) and mask[a]):
            self.unusable(i, answered, value)
            a = int(np.flatnonzero(mask)[0])
            return a, a  # the agent learns from the action that ran
        return a, None

    def box_action(self, i: int, answered: bool, sp: AgentSpaces) -> np.ndarray:
        """Agent i's `action` array in [-1, 1]^act_dim mapped onto its box; a missing or unusable one: the box's
        centre."""
        a = self.action_arrays.get(self.node_of(i, self.par.possible_agents[i]), {}).get("action") if answered else None
        if a is None or np.shape(a) != (sp.act_dim,) or not np.isfinite(a).all():
            self.unusable(i, answered, None if a is None else f"an array of shape {np.shape(a)}")
            a = np.zeros(sp.act_dim)
        return sp.to_env(a)

    def unusable(self, i: int, answered: bool, value) -> None:
        """Count a replaced action; an answer that was there but unusable is logged once per agent."""
        self.defaulted += 1
        if answered and i not in self._bad_logged:
            log.warning("agent%d answered %r, not an allowed action; a default one is used", i, value)
            self._bad_logged.add(i)

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        returns = totals.setdefault("returns", {})
        for agent, r in rewards.items():
            returns[agent] = returns.get(agent, 0.0) + float(r)

    def record(self, mode: str, seed: int, k: int, totals: dict) -> dict:
        returns = totals.get("returns", {})
        record = {
            "episode": k,
            "mode": mode,
            "seed": seed,
            "return": float(np.mean(list(returns.values()))) if returns else 0.0,  # mean over the agents
            "returns": returns,
            "steps": totals["t"],
            "wall_s": round(time.monotonic() - self.t0, 2),
        }
        self.ep.metrics("pettingzoo_episode", record)
        log.info("%s episode %d: mean return %.3f in %d steps", mode, k, record["return"], record["steps"])
        return record


def build_pettingzoo_world(ep: Endpoint, seed: int, world: dict, deadline_s: float) -> PettingZooWorldProcess:
    """The world process's state, on the endpoint it talks through."""
    return PettingZooWorldProcess(ep, PettingZooWorld.model_validate(world), deadline_s, seed)


def run_pettingzoo_world(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    deadline_s: float,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the hosted PettingZoo world process."""
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)
    return serve_world(ep, lambda: build_pettingzoo_world(ep, seed, world, deadline_s))
