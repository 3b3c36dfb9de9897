"""One routing episode through real messages: observations out to the agent processes, road choices back."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from protocols.messages import Act, Follow, Observation
from scenarios.routing.sed.feedback import InstructionSpan
from scenarios.routing.sed.navigation import Navigator
from scenarios.routing.sed.plans import PlanOutcome

from ..step_driver import AgentExchange, as_action
from .env import Decision, Ending, RoutingEnv, fallback_road

log = logging.getLogger("scenarios.routing")

MAX_ROUNDS_PER_TICK = 8


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


class EpisodeRunner(AgentExchange):
    """Runs episodes of a RoutingEnv in lock-step with the agent processes (one message round per busy tick)."""

    def __init__(self, ep, env: RoutingEnv, deadline_s: float):
        super().__init__(ep, deadline_s)
        self.env = env
        self.nav = Navigator(env.net)
        self.applied: dict[int, int] = {}  # agent -> the road the world took instead of the agent's answer

    def run_episode(self, mode: str, seed: int, followers: dict[int, Follower] | None = None) -> EpisodeResult | None:
        """One episode (mode train / test / subset); None if the run was stopped meanwhile."""
        env, followers = self.env, followers or {}
        env.reset(seed)
        returns = {a: 0.0 for a in env.states}
        tracks = {a: Track() for a in followers}
        decisions, self.defaulted, self.applied = 0, 0, {}
        self.visits = {a: [] for a in env.states}
        try:
            while not env.done:
                if self.ep.stopping:
                    return None
                pending, endings = env.tick()
                for _ in range(MAX_ROUNDS_PER_TICK):  # a road just chosen may need its own decision at once
                    if not pending and not endings:
                        break
                    decisions += self.exchange(mode, pending, endings, followers, tracks, returns)
                    pending, endings = env.follow_ups([d.agent for d in pending]), []
            for f in followers.values():
                f.finish(env.t)
            return EpisodeResult(
                mode,
                returns,
                env.travel_times(),
                {a: s.arrived for a, s in env.states.items()},
                decisions,
                env.reward_series(),
                env.t,
                env.teleports,
                self.defaulted,
                tracks,
                followers,
                self.visits,
            )
        finally:
            env.close()

    def exchange(
        self,
        mode: str,
        pending: list[Decision],
        endings: list[Ending],
        followers: dict[int, Follower],
        tracks: dict[int, Track],
        returns: dict[int, float],
    ) -> int:
        """One message round: endings and decisions out, answers in, roads applied; returns the decisions taken."""
        env = self.env
        self.step += 1
        self.ep.t_sim = env.t
        expected, expert = set(), {}
        for e in endings:
            returns[e.agent] += e.reward
            if e.agent in followers:
                tracks[e.agent].close(e.reward)
                followers[e.agent].finish(env.t)
            expected.add(self.send_end(e, mode))
        for d in pending:
            returns[d.agent] += d.reward
            self.visits[d.agent].append((env.t, d.junction))
            if d.agent in followers:
                expert[d.agent] = followers[d.agent].action(d, env.t, self.nav, env.travel_time)
            expected.add(self.send_decision(d, mode, expert.get(d.agent, -1) if d.agent in followers else None))
        actions = self.collect(expected)
        for d in pending:
            choice = as_action(actions.get(d.agent))  # a follower answers with the road its instruction gives
            if choice is None and d.agent in followers:
                choice = expert[d.agent]  # its answer came late: the world knows the instruction's road
            if choice is None or not env.apply(d.agent, d.edge, d.options, choice):
                choice = self.fallback(d)
                self.defaulted += 1
                self.applied[d.agent] = choice  # told with its next message: what it learns from is what happened
            if d.agent in followers:
                tracks[d.agent].add(d, choice, env.t)
                if choice != expert[d.agent]:
                    followers[d.agent].stuck = followers[d.agent].stuck or f"no instruction road at {d.edge}"
        return len(pending)

    def fallback(self, d: Decision) -> int:
        """No usable choice: the fastest road to the destination (or the first allowed one)."""
        return fallback_road(self.env, self.nav, d)

    def send_decision(self, d: Decision, mode: str, expert_action: int | None) -> str:
        """Ask the agent for its road; a plan follower is told the expert's road (phase "follow")."""
        said = dict(mode=mode, t=self.env.t, applied=self.applied.pop(d.agent, None))
        info = Act(**said) if expert_action is None else Follow(**said, expert_action=int(expert_action))
        dest = self.env.node_xy[self.env.states[d.agent].trip.destination_index]
        arrays = {
            "obs": d.obs,
            "mask": d.mask.astype(np.uint8),
            "xy": np.asarray(d.xy, np.float64),
            "dest": np.asarray(dest, np.float64),
        }
        return self.send(d.agent, Observation(step=self.step, reward=d.reward, info=info), arrays)

    def send_end(self, e: Ending, mode: str) -> str:
        info = Act(
            mode=mode, t=self.env.t, arrived=e.arrived, truncated=e.truncated, applied=self.applied.pop(e.agent, None)
        )
        arrays = {}
        if e.obs is not None:
            arrays = {"obs": e.obs, "mask": e.mask.astype(np.uint8)}
        return self.send(e.agent, Observation(step=self.step, reward=e.reward, done=True, info=info), arrays)
