"""The router role: one vehicle's PPO with agent and expert critics (RELED's HPO), or plain IPPO: the ippo role plus
RELED's phases (plan following, expert trajectories, probes) and the DTW-weighted hybrid update."""

from __future__ import annotations

import logging
import time

import numpy as np

from protocols.messages import Action, Expert, Follow, Message, Probe, Rollout

from ..learners.ppo import Trajectory
from ..learners.reled.dtw import agent_dtw, expert_weight
from ..learners.reled.hybrid_ppo import HybridPPO, HybridPPOConfig, preprocess
from ..overrides import set_fields
from .ippo import IppoRole
from .settings import RouterSettings

log = logging.getLogger(__name__)


class RouterRole(IppoRole):
    """The ippo role with RELED's phases: follow a plan, take an expert trajectory or probe one, and the hybrid
    update weighted by the DTW to the demonstration (plain IPPO with method "ippo")."""

    name = "router"
    Settings = RouterSettings
    COUNTS = ("decisions", "followed", "experts", "updates")

    def __init__(self, ctx, settings):
        self.sequences: list[tuple[np.ndarray, bool]] = []  # DTW sequences of this epoch's episodes, complete or not
        self.expert: Trajectory | None = None  # tau^{e,i}, reused until the next SED round (RELED paper, Sec. III-E)
        self.expert_seq: np.ndarray | None = None
        self.instructions: list[str] | None = None  # the plan this agent follows in a subset rollout
        self.dest_xy: np.ndarray | None = None
        super().__init__(ctx, settings)

    def build_learner(self, seed: int) -> HybridPPO:
        settings = {"init_seed": self.ctx.seed, "seed": seed, "n_junctions": self.cfg.n_junctions}
        return HybridPPO(HybridPPOConfig.model_validate({**settings, **set_fields(self.cfg.ppo)}))

    def on_observation(self, msg: Message):
        info, arrays, step = msg.body.info, msg.arrays, msg.body.step
        if isinstance(info, Follow):
            self.counts["followed"] += 1
            return Action(step=step, value=info.expert_action if info.expert_action >= 0 else None), None
        if isinstance(info, Rollout):
            self.instructions = info.instructions
            return Action(step=step), None
        if isinstance(info, Expert):
            return Action(step=step), {"probs": self.take_expert(arrays)}
        if isinstance(info, Probe):  # a plan followed but not to the destination: pi(.|o) for the PDI, nothing kept
            return Action(step=step), {"probs": self.probe(arrays)}
        return super().on_observation(msg)

    # ------------------------------------------------------------------ acting
    def remember(self, arrays: dict) -> None:
        self.episode.xy.append(arrays.get("xy", np.zeros(2)))
        if "dest" in arrays:
            self.dest_xy = np.asarray(arrays["dest"], np.float64)

    def close_episode(self, arrived: bool, obs, mask) -> None:
        super().close_episode(arrived, obs, mask)
        self.sequences.append((self.sequence(self.episode.obs, self.episode.xy), arrived))

    def sequence(self, obs: list, xy: list) -> np.ndarray:
        """The DTW representation: decision-junction coordinates then the destination, or the observations."""
        if self.cfg.dtw_repr == "obs":
            return preprocess(np.asarray(obs, np.float32), self.cfg.n_junctions)
        points = list(xy) + ([self.dest_xy] if self.dest_xy is not None else [])
        return np.asarray(points, np.float64)

    # ------------------------------------------------------------------ SED and HPO
    def probe(self, arrays: dict) -> np.ndarray:
        """pi(.|o) of the current (pre-update) policy at a followed plan's observations (Eqs. 20-24)."""
        obs, mask = np.asarray(arrays["obs"], np.float32), np.asarray(arrays["mask"]).astype(bool)
        actions, rewards, xy = arrays["actions"], arrays["rewards"], np.asarray(arrays["xy"], np.float64)
        if not (len(obs) == len(mask) == len(actions) == len(rewards) == len(xy) - 1) or len(obs) == 0:
            raise ValueError("expert trajectory arrays disagree in length")
        if obs.shape[1:] != (self.ppo.cfg.obs_dim,) or mask.shape[1:] != (self.ppo.cfg.n_actions,):
            raise ValueError("expert trajectory arrays have the wrong width")
        return self.ppo.probs(obs, mask).astype(np.float32)

    def take_expert(self, arrays: dict) -> np.ndarray:
        """Keep tau^{e,i} (replacing the previous one) and answer pi(.|o) at its observations (for the PDI)."""
        probs = self.probe(arrays)
        obs, mask = np.asarray(arrays["obs"], np.float32), np.asarray(arrays["mask"]).astype(bool)
        actions, rewards, xy = arrays["actions"], arrays["rewards"], np.asarray(arrays["xy"], np.float64)
        self.dest_xy = xy[-1]
        self.expert = Trajectory(obs, mask, np.asarray(actions, np.int64), np.asarray(rewards, np.float64), True)
        self.expert_seq = self.sequence(list(obs), list(xy[:-1]))
        self.counts["experts"] += 1
        return probs

    def update(self, k: int, K: int) -> float:
        """Alg. 1 lines 20-23: alpha from the DTW of this epoch's episodes to the expert, then the hybrid update."""
        cfg = self.cfg
        use_expert = cfg.method == "reled" and self.expert is not None
        dtw = None
        if use_expert and self.sequences:
            dtw = agent_dtw(
                [s for s, _ in self.sequences], self.expert_seq, [c for _, c in self.sequences], scale=cfg.dtw_scale
            )
        alpha = expert_weight(dtw, k, K, cfg.alpha_mode if use_expert else "paper", cfg.alpha_fixed)
        if not use_expert:
            alpha = 1.0
        started = time.time()
        stats = self.ppo.update(self.trajectories, [self.expert] if use_expert else [], alpha)
        self.report(k, started, {"alpha": alpha, "dtw": dtw, **stats})
        self.sequences = []
        return alpha

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {**super().state(), "expert": self.expert, "expert_seq": self.expert_seq, "dest_xy": self.dest_xy}

    def restore(self, state: dict) -> None:
        super().restore(state)
        self.expert, self.expert_seq, self.dest_xy = state["expert"], state["expert_seq"], state["dest_xy"]
