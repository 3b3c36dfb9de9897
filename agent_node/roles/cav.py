"""The CAV role: one vehicle's soft actor-critic, its beacons, and RSM / Avg communication rounds."""

from __future__ import annotations

import copy
import logging
import math
from collections import deque
from pathlib import Path

import numpy as np
import torch

from protocols.messages import Act, Action, Beacon, Message, SegmentRequest, SegmentResponse

from ..checkpoints import save_torch
from ..learners.background import BackgroundUpdate
from ..learners.rsm.round import (
    PendingRound,
    RegulationSettings,
    average_into,
    mix_into,
    regulate_replica,
    response_chunks,
)
from ..learners.rsm.segments import flatten, plan_replicas
from ..learners.sac import SAC, Actor, ReplayBuffer, SACConfig, update_flags
from ..overrides import set_fields
from .base import Role
from .settings import CavSettings

log = logging.getLogger(__name__)


class CavRole(Role):
    """Act with SAC on each observation, learn from the shared reward, and mix neighbours' policies."""

    name = "cav"
    Settings = CavSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = cfg = CavSettings.model_validate(settings)
        torch.set_num_threads(cfg.torch_threads)
        seed = int(ctx.rng.integers(2**31))  # the agent's own stream (action noise, buffer sampling)
        self.sac = SAC(SACConfig.model_validate({"init_seed": ctx.seed, "seed": seed, **set_fields(cfg.sac)}))
        self.buf = ReplayBuffer(self.sac.cfg.buffer_size, self.sac.cfg.obs_dim, self.sac.cfg.act_dim, seed=seed)
        self.cache_actor = Actor(self.sac.cfg.obs_dim, self.sac.cfg.hidden, self.sac.cfg.act_dim)
        self.reg = RegulationSettings(
            cfg.zeta_rule, cfg.zeta_cap, cfg.safety, cfg.eps_rule, cfg.is_clip, cfg.fisher_actions
        )
        self.fisher_gen = torch.Generator().manual_seed(self.sac.cfg.seed + 2_000_003)  # pi_theta's actions for F
        self.chunk_floats = cfg.cpm_bytes // 4
        self.prev = None  # (obs, action, logp) waiting for its reward
        self.updates = 0  # learning steps taken (counter in Alg. 1)
        self.k = 0  # policy updates
        self.episode = -1
        self.episodes_done = 0
        self.obs_t = -1.0  # sim time of the step being (or last) handled
        self.snapshot: np.ndarray | None = None  # the actor at the start of that step
        self.heard: dict[str, deque] = {}  # neighbour -> send times of its latest beacons
        self.next_beacon = 0.0
        self.pending: PendingRound | None = None
        self.totals = {
            "rounds": 0,
            "replicas": 0,
            "given_up": 0,
            "accepted": 0,
            "requests": 0,
            "chunks_expected": 0,
            "chunks_received": 0,
            "bytes_received": 0,
            "bytes_sent": 0,
            "late_chunks": 0,
        }
        self.deferred: tuple | None = None  # (batch, update_policy) to run once the action is sent
        self.background = BackgroundUpdate(f"{ctx.node_id}-learner") if cfg.learn == "pipelined" else None
        if cfg.resume_dir:
            self.load(Path(cfg.resume_dir) / f"{ctx.node_id}.pt")
        # the weights that act and answer segment requests: the learner's own, or (pipelined) a copy that the
        # update running on the learner thread does not touch, refreshed whenever that update is applied
        self.acting = copy.deepcopy(self.sac.actor) if self.background else self.sac.actor

    # ------------------------------------------------------------------ acting and learning
    def on_observation(self, msg: Message):
        body, cfg = msg.body, self.cfg
        obs = msg.arrays.get("obs")
        if obs is None or obs.shape != (self.sac.cfg.obs_dim,):
            raise ValueError(f"cav role expects an 'obs' array of shape ({self.sac.cfg.obs_dim},)")
        self.after_action()  # an update left by a step whose action was never sent (its handler failed)
        info, t = body.info, msg.env.t_sim
        if not isinstance(info, Act):
            raise ValueError(f"a cav has no {type(info).__name__.lower()!r} phase")
        train = info.mode == "train"
        if info.first:
            self.prev = None
        self.episode = self.episode if info.episode is None else info.episode
        if cfg.method != "isac":
            self.snapshot, self.obs_t = flatten(self.acting), t
            self.beacon(t, msg.arrays.get("xy"), float(obs[1]))
        if self.prev is not None and train:
            s, a, logp = self.prev
            # only a terminal state stops the bootstrap: a collision, not the horizon or leaving the road (a
            # world that does not say which counts every end as terminal)
            terminal = body.done and info.terminal
            self.buf.add(s, a, body.reward, obs, terminal, logp)
            self.learn(t, last=body.done)
        if self.pending is not None and t + 1e-9 >= self.pending.deadline_t:
            self.finish_round()
        if body.done:
            self.prev = None
            if train:
                self.end_episode(final=info.final)
            return Action(step=body.step), None
        a, logp = self.sac.act(obs, deterministic=not train and cfg.test_deterministic, actor=self.acting)
        self.prev = (obs, a, logp)
        return Action(step=body.step, value=float(a[0])), None

    def learn(self, t: float, last: bool) -> None:
        """One step of Alg. 1 (or the code's schedule); a round starts when k becomes a multiple of U."""
        cfg, sac = self.cfg, self.sac
        if not sac.ready(len(self.buf)):
            return
        critic, policy = update_flags(cfg.update_mode, self.updates, cfg.code_update_every, sac.cfg.policy_delay, last)
        if critic:
            batch = self.buf.sample(sac.cfg.batch_size)  # drawn here: the buffer's stream keeps the paper's order
            round_due = self.pending is not None and t + 1e-9 >= self.pending.deadline_t  # reads the critics
            if last or (self.background is None and (policy or round_due)):
                self.join_update()
                sac.update(batch, update_policy=policy)  # before acting (and before the episode's checkpoint)
                self.refresh_acting()
            else:
                self.deferred = (batch, policy)
        self.k += policy
        self.updates += 1
        if policy and self.k % cfg.U == 0 and cfg.method != "isac":
            self.start_round(t)

    def after_action(self) -> None:
        """Run the update this step deferred: here (paper), or started on the learner thread (pipelined)."""
        if self.deferred is None:
            return
        batch, policy = self.deferred
        self.deferred = None
        if self.background is None:
            self.sac.update(batch, update_policy=policy)
        else:  # the previous update is applied now, and this one runs until the next step's action is sent
            self.join_update()
            self.background.start(lambda: self.sac.update(batch, update_policy=policy))

    def join_update(self) -> None:
        """Pipelined: wait for the update on the learner thread and act with its weights from now on (joins
        happen at fixed points of the schedule, never when a thread happens to finish: runs repeat)."""
        if self.background is not None and self.background.busy:
            self.background.join()
            self.refresh_acting()

    def refresh_acting(self) -> None:
        if self.acting is not self.sac.actor:
            self.acting.load_state_dict(self.sac.actor.state_dict())

    # ------------------------------------------------------------------ neighbours
    def beacon(self, t: float, xy, speed: float) -> None:
        if t + 1e-9 < self.next_beacon:
            return
        x, y = (float(v) for v in xy) if xy is not None else (0.0, 0.0)
        self.ctx.radio.broadcast(Beacon(x=x, y=y, speed=speed))
        self.next_beacon = t + self.cfg.beacon_interval_s

    def neighbours(self, t: float) -> list[str]:
        """Agents whose beacons, sent in earlier steps within the neighbour timeout, arrived (never an oracle
        list). Beacons of the current step are left out: whether they are in yet depends on timing."""
        lo = t - self.cfg.neighbour_timeout_s - 1e-9
        return sorted(n for n, sent in self.heard.items() if any(lo <= s < t - 1e-9 for s in sent))

    # ------------------------------------------------------------------ rounds
    def start_round(self, t: float) -> None:
        if self.pending is not None:
            self.finish_round()
        near = self.neighbours(t)
        if self.cfg.method == "avg_masac" and self.cfg.avg_of == "neighbours":
            plans = [[j] for j in near]  # every neighbour's full actor
        else:
            plans = plan_replicas(near, self.ctx.rng, self.cfg.P, self.cfg.kappa)
        round_id = self.k // self.cfg.U
        self.pending = PendingRound(
            round_id, plans, self.snapshot.shape[0], self.chunk_floats, t + self.cfg.round_timeout_s
        )
        self.pending.neighbours = len(near)
        self.pending.started_t = t
        for dst, replica, segments, index in self.pending.requests():
            self.ctx.radio.send(dst, SegmentRequest(round=round_id, replica=replica, segments=segments, index=index))
        self.totals["requests"] += len(self.pending.requests())

    def finish_round(self) -> None:
        """Mix what arrived (missing chunks filled per loss_fill) and report the round."""
        self.join_update()
        pending, self.pending = self.pending, None
        cfg, actor = self.cfg, self.sac.actor
        theta = flatten(actor)
        zetas, zeta_maxes, a_plus, accepted_donors = [], [], [], []
        # a replica of which nothing arrived (its requests or every answer lost) is no referential policy
        replicas = [rep for rep in pending.replicas if rep.chunks_received > 0]
        given_up = len(pending.replicas) - len(replicas)
        if cfg.method == "avg_masac" and replicas:
            average_into(actor, theta, [rep.assemble(theta, cfg.loss_fill) for rep in replicas])
            accepted_donors = [rep.donors for rep in replicas]
        elif replicas:
            for rep in replicas:  # sequentially: each against the actor the previous one left (docs/rsm_masac.md, R-A9)
                ref = rep.assemble(theta, cfg.loss_fill)
                batch = self.buf.sample(cfg.M)  # M samples of its own per replica (Alg. 2 line 5)
                a, z, z_max = regulate_replica(self.sac, batch, ref, self.cache_actor, self.reg, self.fisher_gen)
                a_plus.append(round(a, 6))
                zetas.append(round(z, 6))
                zeta_maxes.append(None if z_max is None else (round(z_max, 6) if math.isfinite(z_max) else "inf"))
                if z > 0:
                    theta = mix_into(actor, theta, ref, z)
                    accepted_donors.append(rep.donors)
        got = int(sum(rep.chunks_received for rep in pending.replicas))
        expected = int(sum(rep.chunks for rep in pending.replicas))
        t = self.totals
        t["rounds"] += 1
        t["replicas"] += len(replicas)
        t["given_up"] += given_up
        t["accepted"] += len(accepted_donors)
        t["chunks_expected"] += expected
        t["chunks_received"] += got
        self.refresh_acting()
        payload = self._received_payload_bytes(replicas)
        t["bytes_received"] += payload
        self.ctx.send_metrics(
            "rsm_round",
            {
                "round": pending.round_id,
                "episode": self.episode,
                "t": pending.started_t,
                "neighbours": pending.neighbours,
                "replicas": len(replicas),
                "accepted": len(accepted_donors),
                "given_up": given_up,
                "a_plus": a_plus,
                "zeta": zetas,
                "zeta_max": zeta_maxes,
                "donors": [rep.donors for rep in replicas],
                "accepted_donors": accepted_donors,
                "chunks_expected": expected,
                "chunks_received": got,
                "bytes_received": payload,
                "complete": got == expected,
            },
        )

    def _received_payload_bytes(self, replicas) -> int:
        """Parameter bytes that arrived: 4 per received float32 value."""
        total = 0
        for rep in replicas:
            for p, got in enumerate(rep.received):
                length = int(rep.bounds[p + 1] - rep.bounds[p])
                for c in np.flatnonzero(got):
                    total += 4 * min(self.chunk_floats, length - int(c) * self.chunk_floats)
        return int(total)

    def answer_theta(self, t_request: float) -> np.ndarray:
        """The actor a request from step t_request is answered with: as at the start of that step if this
        agent has already begun it, else the current one (which is then the same thing) - so the answer
        does not depend on which of the two processes got there first."""
        if self.snapshot is not None and abs(self.obs_t - t_request) < 1e-9:
            return self.snapshot
        return flatten(self.acting)

    def on_radio(self, msg: Message) -> None:
        body, src = msg.body, msg.env.src
        if isinstance(body, Beacon):
            self.heard.setdefault(src, deque(maxlen=4)).append(msg.env.t_sim)
        elif isinstance(body, SegmentRequest):
            if self.cfg.method == "isac":
                return
            theta = self.answer_theta(msg.env.t_sim)
            if body.index >= body.segments or body.segments > theta.shape[0]:
                raise ValueError(f"segment request {body.index}/{body.segments} out of range")
            for chunk, offset, length, values in response_chunks(theta, body.segments, body.index, self.chunk_floats):
                self.ctx.radio.send(
                    src,
                    SegmentResponse(
                        round=body.round,
                        replica=body.replica,
                        segments=body.segments,
                        index=body.index,
                        chunk=chunk,
                        chunks=-(-length // self.chunk_floats),
                        offset=offset,
                        length=length,
                    ),
                    {"values": values},
                )
                self.totals["bytes_sent"] += values.nbytes
        elif isinstance(body, SegmentResponse):
            values = msg.arrays.get("values")
            if values is None or self.pending is None or not self.pending.take(src, body, values):
                self.totals["late_chunks"] += 1

    # ------------------------------------------------------------------ episodes and checkpoints
    def end_episode(self, final: bool) -> None:
        self.episodes_done += 1
        self.ctx.send_metrics(
            "cav_agent_episode",
            {
                "episode": self.episode,
                "updates": self.updates,
                "policy_updates": self.k,
                "buffer": len(self.buf),
                "alpha": self.sac.alpha,
                "rounds": self.totals["rounds"],
                "replicas": self.totals["replicas"],
                "accepted": self.totals["accepted"],
            },
        )
        every = self.cfg.checkpoint_every
        if self.cfg.checkpoint_dir and (final or (every and self.episodes_done % every == 0)):
            self.save(Path(self.cfg.checkpoint_dir) / f"{self.ctx.node_id}.pt")

    def state(self) -> dict:
        self.join_update()
        return {
            "sac": self.sac.state_dict(),
            "buffer": self.buf.state_dict(),
            "updates": self.updates,
            "k": self.k,
            "episode": self.episode,
            "episodes_done": self.episodes_done,
            "totals": dict(self.totals),
            "rng": self.ctx.rng.bit_generator.state,
            "method": self.cfg.method,
        }

    def save(self, path: Path) -> None:
        """Write the checkpoint atomically (a crash mid-write leaves the previous one)."""
        save_torch(self.state(), path)

    def load(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"{self.ctx.node_id}: no checkpoint {path} to resume from")
        state = torch.load(path, weights_only=False)
        self.sac.load_state_dict(state["sac"])
        self.buf.load_state_dict(state["buffer"])
        self.updates, self.k, self.episode = state["updates"], state["k"], state["episode"]
        self.episodes_done = state["episodes_done"]
        self.totals.update(state["totals"])
        self.ctx.rng.bit_generator.state = state["rng"]
        log.info("%s resumed from %s (episode %d, %d updates)", self.ctx.node_id, path, self.episode, self.updates)

    def on_stop(self) -> None:
        if self.background is not None:
            self.background.close()
        if self.cfg.checkpoint_dir and self.episodes_done:
            self.save(Path(self.cfg.checkpoint_dir) / f"{self.ctx.node_id}.pt")

    def metrics(self) -> dict:
        return {
            "episodes": self.episodes_done,
            "updates": self.updates,
            "policy_updates": self.k,
            "alpha": self.sac.alpha,
            **self.totals,
        }
