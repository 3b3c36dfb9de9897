"""The dispatcher role of the warehouse: broadcasts s_g, polls k robots, acts on their histogram."""

from __future__ import annotations

import time
from typing import Literal

import numpy as np
from pydantic import Field

from agent_node.warehouse import streams
from agent_node.warehouse.layout import robot_id, robot_index, robot_index_or_none
from agent_node.warehouse.model import WarehouseModel
from agent_node.warehouse.simulator import draw_polls
from protocols.messages import Action, Message, Poll, PollReply, StepBegin

from .base import Role, RoleSettings


class DispatcherSettings(RoleSettings):
    """Settings of the dispatcher (given by the run plan)."""

    name: str = "dispatcher"
    n: int = Field(gt=0)
    k: int = Field(gt=0)
    horizon: int = Field(gt=0)
    policy: Literal["learned", "mode", "random", "stay"] = "learned"
    policy_file: str = ""  # the TablePolicy (.npz) when policy = "learned"
    model: WarehouseModel = Field(default_factory=WarehouseModel)
    poll_timeout_s: float = Field(1.0, gt=0)
    replace_lost: bool = True  # replace an unanswered poll by another robot drawn uniformly
    window: int = Field(8, ge=1, le=64)  # s_g history carried by each broadcast and poll
    record_polls: bool = False  # report which robots were asked and which answered, each step
    step_budget_s: float = Field(10.0, gt=0)  # no new round of replacement polls past this (under the world's deadline)


class DispatcherRole(Role):
    """Each step: Poll to exactly k distinct robots (uniform, without replacement, fresh each step) and
    StepBegin to all, then a_g from the greedy table on the answers' counts."""

    name = "dispatcher"
    Settings = DispatcherSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = cfg = DispatcherSettings.model_validate(settings)
        if cfg.k > cfg.n:
            raise ValueError(f"k = {cfg.k} exceeds the number of robots n = {cfg.n}")
        self.model = cfg.model
        self.policy = dispatcher_policy(cfg, self.model.zones, ctx.seed)
        self.episode = -1
        self.asking: tuple[int, int] | None = None  # (episode, step) of the polls in flight
        self.asked: set[int] = set()
        self.waiting: set[int] = set()  # polls of the current round: only their answers count
        self.answers: dict[int, int] = {}
        self.counters = dict(polls_sent=0, polls_lost=0, polls_replaced=0, late_replies=0, short_steps=0, blind_steps=0)

    def start_episode(self, episode: int) -> None:
        self.episode = episode
        self.rng = streams.generator(self.ctx.seed, episode, streams.POLLS)  # the simulator's draws
        self.log = {"a_g": [], "answers": [], "polled": [], "asked": []}

    # ------------------------------------------------------------------ one step
    def on_observation(self, msg: Message):
        obs, history = msg.arrays.get("obs"), msg.arrays.get("sg")
        if obs is None or obs.shape != (2,) or history is None or not 1 <= len(history) <= 64:
            raise ValueError("dispatcher expects arrays 'obs' [episode, step] and 'sg' (s_g of the episode so far)")
        episode, t = (int(v) for v in obs)
        if episode != self.episode:
            self.start_episode(episode)
        window = [int(v) for v in history[-self.cfg.window :]]  # the world keeps s_g's history: a restart loses none
        s_g = window[-1]
        answers = self.poll(episode, t, window, then=StepBegin(episode=episode, step=t, sg=window))
        zones = list(answers.values())
        a_g = self.act(s_g, np.bincount(zones, minlength=self.model.zones) if zones else None)
        self.log["a_g"].append(a_g)
        self.log["answers"].append(len(zones))
        if self.cfg.record_polls:
            self.log["polled"].append(list(answers))
            self.log["asked"].append(sorted(self.asked))
        if t == self.cfg.horizon - 1:
            self.ctx.send_metrics("dispatcher_episode", {"episode": episode, **self.log, **self.counters})
        return Action(step=msg.body.step, value=a_g), None

    def poll(self, episode: int, t: int, window: list[int], then: StepBegin | None = None) -> dict[int, int]:
        """Poll k robots; unanswered polls are replaced by robots not yet asked (if configured). `then` (the
        step's broadcast) goes out right after the first polls: the medium routes those k before the n
        copies of the broadcast, so the polled robots do not wait behind n woken ones to answer (a poll
        asks for the zone at the start of the step, which a robot knows with or without the broadcast)."""
        cfg = self.cfg
        self.asking, self.asked, self.answers = (episode, t), set(), {}
        pending = [int(i) for i in draw_polls(self.rng, cfg.n, cfg.k)]  # the simulator's draw
        budget_end = time.monotonic() + cfg.step_budget_s
        while pending:
            for i in pending:
                self.ctx.radio.send(robot_id(i), Poll(episode=episode, step=t, sg=window))
            if then is not None:
                self.ctx.radio.broadcast(then)
                then = None
            self.asked.update(pending)
            self.waiting = set(pending)
            self.counters["polls_sent"] += len(pending)
            self.ctx.wait(lambda: not self.waiting, cfg.poll_timeout_s)  # answers reach on_radio meanwhile
            lost, self.waiting = sorted(self.waiting), set()  # a late answer to these no longer counts
            self.counters["polls_lost"] += len(lost)
            if not lost or not cfg.replace_lost or time.monotonic() + cfg.poll_timeout_s > budget_end:
                break  # another round would overrun the world's deadline for this step
            down = {i for i in map(robot_index_or_none, self.ctx.radio.peers.down) if i is not None}
            pool = np.setdiff1d(np.arange(cfg.n), np.fromiter(self.asked | down, int))  # uniform over live, unasked
            pending = [int(i) for i in self.rng.choice(pool, size=min(len(lost), len(pool)), replace=False)]
            self.counters["polls_replaced"] += len(pending)
        self.asking = None
        if len(self.answers) < cfg.k:
            self.counters["short_steps"] += 1
        return self.answers

    def act(self, s_g: int, counts: np.ndarray | None) -> int:
        """a_g from the configured dispatcher policy; with no answers at all, keep the priority."""
        if counts is None:
            self.counters["blind_steps"] += 1
            return s_g
        return int(self.policy(np.array([s_g]), counts[None, :])[0])

    def on_radio(self, msg: Message) -> None:
        body = msg.body
        if not isinstance(body, PollReply):
            return
        i = robot_index(msg.env.src)
        if self.asking != (body.episode, body.step) or i not in self.waiting:
            self.counters["late_replies"] += 1
            return
        if not 0 <= body.zone < self.model.zones:
            raise ValueError(f"zone {body.zone} from {msg.env.src} outside 0..{self.model.zones - 1}")
        self.answers[i] = body.zone
        self.waiting.discard(i)

    def metrics(self) -> dict:
        return {"episode": self.episode, **self.counters}


def dispatcher_policy(cfg: DispatcherSettings, zones: int, seed: int):
    """The acting rule: the learned table or one of the baselines the learners are compared with."""
    from agent_node.learners.alternating.alternating import StayDispatcher
    from agent_node.learners.alternating.g_learn import TablePolicy
    from agent_node.learners.alternating.nash_gap import ModeOfSample, UniformRandomDispatcher

    if cfg.policy == "learned":
        table = TablePolicy.load(cfg.policy_file)
        if (table.k, table.zones) != (cfg.k, zones):
            raise ValueError(
                f"{cfg.policy_file} was trained for k = {table.k}, {table.zones} zones, not k = {cfg.k}, {zones}"
            )
        return table
    return {"mode": ModeOfSample(), "random": UniformRandomDispatcher(zones, seed), "stay": StayDispatcher()}[
        cfg.policy
    ]
