"""The robot role of the warehouse: steps itself on the dispatcher's broadcasts, answers polls."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from agent_node.warehouse.layout import DISPATCHER, robot_index
from agent_node.warehouse.model import WarehouseModel, cdf
from protocols.messages import Message, Poll, PollReply, StepBegin

from .base import Role, RoleSettings


class RobotSettings(RoleSettings):
    """Settings of a robot (given by the run plan)."""

    name: str = "robot"
    horizon: int = Field(gt=0)
    policy: str  # .npy file holding the shared local policy pi_l[s_l, s_g, a_l]
    model: WarehouseModel = Field(default_factory=WarehouseModel)
    record_zones: bool = False  # also report the zone trajectory (for replay checks)


class RobotRole(Role):
    """Owns s_i; on StepBegin(t) acts with s_g(t) and moves (with s_g(t), or on StepBegin(t+1) with s_g(t+1)
    when the model's local_transition is "next"); on Poll(t) answers with s_i(t).

    Random draws come from the counter-based streams keyed by (seed, episode, robot, step), so the
    robot moves exactly as robot i of the single-process simulator does.
    """

    name = "robot"
    Settings = RobotSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = RobotSettings.model_validate(settings)
        self.model = self.cfg.model
        self.index = robot_index(ctx.node_id)
        self.pi_l_cdf = cdf(self.model.check_local_policy(np.load(self.cfg.policy, allow_pickle=False))).tolist()
        self.episode = -1
        self.polls = self.desync_steps = self.stale = 0
        self.start_episode(0)

    def start_episode(self, episode: int) -> None:
        self.episode, self.t = episode, 0
        self.zone = int(self.model.initial_local(self.ctx.seed, episode, self.index)[0])
        self.history = {0: self.zone}  # zone at the start of each recent step
        self.rewards: list[float | None] = []  # None: a step taken without knowing s_g
        self.zones: list[int] = [self.zone]
        self.action: int | None = None  # a_i(t), drawn, its move still to come

    def catch_up(self, episode: int, target: int, step: int, sg: list[int]) -> None:
        """Act at every step before `target` not yet acted at, and move as far as the window sg (which ends
        with s_g(step)) allows: a move of step t reads s_g(t), or s_g(t + 1) for local_transition = "next"."""
        if episode != self.episode:
            if 0 < len(self.rewards) < self.cfg.horizon:  # the last broadcasts of the episode never came
                self.report_episode()
            self.start_episode(episode)
        ahead = 1 if self.model.local_transition == "next" else 0
        while self.t < min(target, self.cfg.horizon):
            if self.action is None:
                s_g, known = self.read(sg, step, self.t)
                self.action, r = self.model.local_act_one(
                    self.ctx.seed, self.episode, self.index, self.t, self.zone, s_g, self.pi_l_cdf
                )
                self.rewards.append(r if known else None)
                if ahead and len(self.rewards) == self.cfg.horizon:
                    self.report_episode()  # the last move would read s_g(horizon), which no broadcast carries
            if self.t + ahead > step:
                break  # s_g(t + 1) is not out yet: the move waits for the next broadcast
            if ahead:
                s_g, known = self.read(sg, step, self.t + 1, count=self.rewards[-1] is not None)
            self.zone = self.model.local_move_one(
                self.ctx.seed, self.episode, self.index, self.t, self.zone, s_g, self.action
            )
            self.action, self.t = None, self.t + 1
            self.history[self.t] = self.zone
            self.history.pop(self.t - 64, None)
            if self.cfg.record_zones:
                self.zones.append(self.zone)
            if self.t == self.cfg.horizon:
                self.report_episode()

    def read(self, sg: list[int], step: int, t: int, count: bool = True) -> tuple[int, bool]:
        """s_g(t) from the window sg ending with s_g(step), and whether it was known: a robot that missed more
        broadcasts than the window covers (or joined mid-episode) moves on with the oldest s_g it has, and the
        step's reward is not counted (`count`: a step not yet counted as out of sync)."""
        back = step - t
        if back <= len(sg) - 1:
            return sg[-1 - back], True
        self.desync_steps += count
        return sg[0], False

    def on_radio(self, msg: Message) -> None:
        body = msg.body
        if not isinstance(body, (StepBegin, Poll)):
            return
        if msg.env.src != DISPATCHER:
            raise ValueError(f"{msg.env.type} from {msg.env.src!r}, not the dispatcher")
        if any(not 0 <= z < self.model.zones for z in body.sg):
            raise ValueError(f"s_g outside 0..{self.model.zones - 1}: {body.sg}")
        if body.episode < self.episode:
            self.stale += 1  # a late message from an episode already over
            return
        if isinstance(body, StepBegin):
            self.catch_up(body.episode, body.step + 1, body.step, body.sg)
            return
        self.catch_up(body.episode, body.step, body.step, body.sg)
        zone = self.history.get(body.step) if body.episode == self.episode else None
        if zone is None:
            raise ValueError(f"poll for step {body.step} of episode {body.episode}: state no longer kept")
        self.polls += 1
        self.ctx.radio.send(DISPATCHER, PollReply(episode=body.episode, step=body.step, zone=zone))

    def on_stop(self) -> None:
        if 0 < len(self.rewards) < self.cfg.horizon:
            self.report_episode()

    def report_episode(self) -> None:
        """r_l of each step acted at (fewer than horizon if the episode's last broadcasts were lost)."""
        values = {"episode": self.episode, "robot": self.index, "r_l": self.rewards}
        if self.cfg.record_zones:
            values["zones"] = self.zones
        self.ctx.send_metrics("robot_episode", values)

    def metrics(self) -> dict:
        return {
            "robot": self.index,
            "episode": self.episode,
            "t": self.t,
            "polls_answered": self.polls,
            "desync_steps": self.desync_steps,
            "stale_messages": self.stale,
        }
