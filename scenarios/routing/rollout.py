"""One routing episode through real messages: observations out to the agent processes, road choices back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from protocols.messages import Act, Follow, Observation
from scenarios.routing.sed.feedback import InstructionSpan
from scenarios.routing.sed.navigation import Navigator
from scenarios.routing.sed.plans import PlanOutcome

from ..parallel_world import ParallelEnvLoop, StepView
from ..step_driver import agent_index, as_action
from .env import Decision, RoutingEnv
from .parallel import RoutingParallelEnv

log = logging.getLogger("scenarios.routing")


@dataclass
class Track:
    """One agent's decisions in an episode, as the world saw them (expert trajectories are sent from these)."""

    obs: list = field(default_factory=list)
    masks: list = field(default_factory=list)
    actions: list = field(default_factory=list)
    rewards: list = field(default_factory=list)
    xy: list = field(default_factory=list)
    times: list = field(default_factory=list)

    def add(self, d: Decision, action: int, t: float) -> None:
        if self.actions:
            self.rewards.append(d.reward)  # the reward of the previous decision arrives with this one
        self.obs.append(d.obs)
        self.masks.append(d.mask)
        self.actions.append(action)
        self.xy.append(d.xy)
        self.times.append(t)

    def close(self, reward: float) -> None:
        if len(self.rewards) < len(self.actions):
            self.rewards.append(reward)


def observation_text(obs, mask) -> str:
    """An observation as the prompt shows it: where the vehicle is, where it goes, and the roads it may take."""
    m_out = (len(obs) - 2) // 2
    roads = [
        f"{j}: to junction {int(obs[2 + m_out + j])} (score {float(obs[2 + j]):.2f})" for j in range(m_out) if mask[j]
    ]
    return f"at junction {int(obs[0])}, destination {int(obs[1])}; roads {'; '.join(roads) or 'none'}"


@dataclass
class Follower:
    """A plan-following agent in a subset rollout: its instruction list and where it is in it (function f)."""

    outcome: PlanOutcome
    k: int = 0
    started: float | None = None
    spans: list[InstructionSpan] = field(default_factory=list)
    stuck: str | None = None  # why the plan could not be followed to the end

    def action(self, d: Decision, t: float, nav: Navigator, travel_time) -> int | None:
        """The expert's road at this decision: the next road of the active instruction's route."""
        instructions = self.outcome.instructions
        if self.started is None:
            self.started = t
        while self.k < len(instructions) and instructions[self.k].node == d.junction:  # instruction k reached
            self.spans.append(InstructionSpan(self.started, t, instructions[self.k].text()))
            self.k, self.started = self.k + 1, t
        if self.k >= len(instructions):
            self.stuck = self.stuck or "instructions ended before the destination"
            return None
        ins = instructions[self.k]
        action = nav.action_for(d.edge, ins.node, ins.kind, travel_time)
        if action is None:
            self.stuck = self.stuck or f"node {ins.node} is unreachable from road {d.edge}"
        return action

    def finish(self, t: float) -> None:
        """The episode ended: the active instruction's span ends now."""
        if self.started is not None and self.k < len(self.outcome.instructions):
            self.spans.append(InstructionSpan(self.started, t, self.outcome.instructions[self.k].text()))
            self.started = None


@dataclass
class EpisodeResult:
    """Returns, travel times, arrivals, per-second rewards and (subset rollouts) the followers' tracks."""

    mode: str
    returns: dict[int, float]
    travel_times: dict[int, float]
    arrived: dict[int, bool]
    decisions: int
    reward_series: dict[int, np.ndarray]
    sim_s: float
    teleports: int
    defaulted: int  # decisions the world had to take itself (no valid action in time)
    tracks: dict[int, Track] = field(default_factory=dict)
    followers: dict[int, Follower] = field(default_factory=dict)
    visits: dict[int, list[tuple[float, int]]] = field(default_factory=dict)  # (time, junction) of each decision

    def junction_at(self, agent: int, t: float) -> int | None:
        """The junction of the agent's last decision at or before t (None: not yet on the road)."""
        here = None
        for when, junction in self.visits.get(agent, ()):
            if when > t:
                break
            here = junction
        return here

    def external_state(self, t: int, subset, top: int = 3) -> str:
        """The RVI's associated state at second t: the external agents whose reward fell most then, where they were."""
        inside = set(subset)
        hit = sorted(
            (float(r[t]), a)
            for a, r in self.reward_series.items()
            if a not in inside and t < len(r) and np.isfinite(r[t]) and r[t] < 0
        )[:top]
        parts = [f"agent {a} r={r:.2f} at junction {self.junction_at(a, t)}" for r, a in hit]
        return "external agents hit hardest: " + ", ".join(parts) if parts else "no external agent lost reward"

    def record(self) -> dict:
        n = max(len(self.returns), 1)
        return {
            "mode": self.mode,
            "reward": sum(self.returns.values()) / n,
            "travel_time": sum(self.travel_times.values()) / n,
            "arrival_rate": sum(self.arrived.values()) / n,
            "decisions": self.decisions,
            "sim_s": self.sim_s,
            "teleports": self.teleports,
            "defaulted": self.defaulted,
        }


class EpisodeRunner(ParallelEnvLoop):
    """Runs episodes of a RoutingEnv, through its ParallelEnv on the one world loop, in lock-step with the agent
    processes: each message round goes to the vehicles deciding or ending in it (the others are not addressed)."""

    def __init__(self, ep, env: RoutingEnv, deadline_s: float):
        super().__init__(ep, deadline_s)
        self.env = env
        self.par = RoutingParallelEnv(env)
        self.nav = self.par.nav

    def run_episode(self, mode: str, seed: int, followers: dict[int, Follower] | None = None) -> EpisodeResult | None:
        """One episode (mode train / test / subset); None if the run was stopped meanwhile."""
        env = self.env
        self.followers = followers or {}
        self.tracks = {a: Track() for a in self.followers}
        self.returns = {t.agent: 0.0 for t in env.trips}
        self.visits: dict[int, list[tuple[float, int]]] = {t.agent: [] for t in env.trips}
        self.decisions, self.defaulted = 0, 0
        self.expert: dict[int, int | None] = {}  # a follower's instruction road at its current decision
        self.chosen: dict[str, tuple[Decision, int | None, float]] = {}  # this round's answers, before applying
        try:
            if self.play(mode, seed) is None:
                return None
            for f in self.followers.values():
                f.finish(env.t)
            return EpisodeResult(
                mode,
                self.returns,
                env.travel_times(),
                {a: s.arrived for a, s in env.states.items()},
                self.decisions,
                env.reward_series(),
                env.t,
                env.teleports,
                self.defaulted,
                self.tracks,
                self.followers,
                self.visits,
            )
        finally:
            env.close()

    # ---- the loop's hooks -----------------------------------------------------------------------------------
    def node_of(self, i: int, agent: str) -> str:
        return agent  # the vehicle's name is its process's

    def before_observe(self) -> None:
        self.ep.t_sim = self.env.t

    def message(self, mode: str, agent: str, node: str, mask, view: StepView) -> tuple[Observation, dict] | None:
        """A deciding vehicle is asked for its road (a plan follower is told the expert's road: phase "follow"); an
        ending one gets its last reward with done; the others are not addressed."""
        env, a = self.env, agent_index(agent)
        e, d = self.par.endings.get(agent), self.par.pending.get(agent)
        if e is None and d is None:
            return None
        said = dict(mode=mode, t=env.t, applied=self.told.pop(agent, None))
        if e is not None:
            self.returns[a] += e.reward
            if a in self.followers:
                self.tracks[a].close(e.reward)
                self.followers[a].finish(env.t)
            arrays = {} if e.obs is None else {"obs": e.obs, "mask": e.mask.astype(np.uint8)}
            info = Act(**said, arrived=e.arrived, truncated=e.truncated)
            return Observation(step=self.step, reward=e.reward, done=True, info=info), arrays
        self.returns[a] += d.reward
        self.visits[a].append((env.t, d.junction))
        self.decisions += 1
        expert = None
        if a in self.followers:
            expert = self.expert[a] = self.followers[a].action(d, env.t, self.nav, env.travel_time)
        info = Act(**said) if expert is None else Follow(**said, expert_action=int(expert))
        dest = env.node_xy[env.states[a].trip.destination_index]
        arrays = {
            "obs": d.obs,
            "mask": d.mask.astype(np.uint8),
            "xy": np.asarray(d.xy, np.float64),
            "dest": np.asarray(dest, np.float64),
        }
        return Observation(step=self.step, reward=d.reward, info=info), arrays

    def action(self, i: int, answered: bool, value, mask) -> tuple[int | None, None]:
        """A follower answers with the road its instruction gives; if its answer came late, the world knows that
        road. No usable road: the env takes the fallback (accumulate() counts it)."""
        agent = self.par.possible_agents[i]
        if (d := self.par.pending.get(agent)) is None:
            return None, None
        a = agent_index(agent)
        choice = as_action(value)
        if choice is None and a in self.followers:
            choice = self.expert[a]
        self.chosen[agent] = (d, choice, self.env.t)
        return choice, None

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        """The roads that ran: a replaced answer is counted and told to the agent with its next message (what it
        learns from is what happened); a follower's track gets the road, and a road off its plan marks it stuck."""
        for agent, (d, choice, t) in self.chosen.items():
            a = agent_index(agent)
            if (road := infos.get(agent, {}).get("applied")) is not None:
                choice = road
                self.defaulted += 1
                self.told[agent] = road
            if a in self.followers:
                self.tracks[a].add(d, choice, t)
                if choice != self.expert[a]:
                    self.followers[a].stuck = self.followers[a].stuck or f"no instruction road at {d.edge}"
        self.chosen = {}
