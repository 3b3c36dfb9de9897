"""The router role: one vehicle's PPO with agent and expert critics (RELED's HPO), or plain IPPO."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, model_validator

from protocols.messages import Act, Action, Expert, Follow, Message, Probe, Rollout

from ..checkpoints import save_torch
from ..learners.ppo import Trajectory
from ..learners.reled.dtw import agent_dtw, expert_weight
from ..learners.reled.hybrid_ppo import HybridPPO, HybridPPOConfig, preprocess
from ..overrides import Overrides, set_fields
from .base import Role, RoleSettings

log = logging.getLogger(__name__)


class RouterSettings(RoleSettings):
    """What the run plan hands each router: the method, the hybrid-loss weight and the PPO settings."""

    name: str = "router"
    method: Literal["reled", "ippo"] = "reled"
    alpha_mode: Literal["paper", "fixed_expert", "fixed_agent"] = "paper"
    alpha_fixed: float | None = Field(None, ge=0, le=1)
    dtw_repr: Literal["junction_xy", "obs"] = "junction_xy"
    dtw_scale: float = Field(1.0, gt=0)
    ppo: Overrides(HybridPPOConfig) = Field(default_factory=HybridPPOConfig)  # fields set: over the seeds
    n_junctions: int = Field(2, ge=2)  # set by the run plan from the map
    torch_threads: int = Field(1, ge=1)
    checkpoint_dir: str | None = None
    resume_dir: str | None = None

    @model_validator(mode="after")
    def _check(self):
        if self.alpha_mode != "paper" and self.alpha_fixed is None:
            raise ValueError(f"alpha_mode {self.alpha_mode!r} needs alpha_fixed (the ablations use 0.2 or 0.5)")
        return self


class Episode:
    """The agent's own decisions in one training episode (rewards arrive with the next message)."""

    def __init__(self):
        self.obs, self.masks, self.actions, self.rewards, self.xy, self.eps = [], [], [], [], [], []

    def trajectory(self, terminated: bool, last_obs=None, last_mask=None) -> Trajectory:
        eps = np.asarray(self.eps, np.float64) if any(self.eps) else None
        return Trajectory(
            np.asarray(self.obs, np.float32),
            np.asarray(self.masks, bool),
            np.asarray(self.actions, np.int64),
            np.asarray(self.rewards, np.float64),
            terminated,
            last_obs,
            last_mask,
            eps,
        )


class RouterRole(Role):
    """Answer the world's phases: act (train/test/subset), follow a plan, take an expert trajectory, update."""

    name = "router"
    Settings = RouterSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = cfg = RouterSettings.model_validate(settings)
        torch.set_num_threads(cfg.torch_threads)
        seed = int(ctx.rng.integers(2**31))
        self.ppo = HybridPPO(
            HybridPPOConfig.model_validate(
                {"init_seed": ctx.seed, "seed": seed, "n_junctions": cfg.n_junctions, **set_fields(cfg.ppo)}
            )
        )
        self.episode: Episode | None = None
        self.trajectories: list[Trajectory] = []  # tau^{a,i} of the current epoch
        self.sequences: list[tuple[np.ndarray, bool]] = []  # DTW sequences of those episodes, complete or not
        self.expert: Trajectory | None = None  # tau^{e,i}, reused until the next SED round (RELED paper, Sec. III-E)
        self.expert_seq: np.ndarray | None = None
        self.instructions: list[str] | None = None  # the plan this agent follows in a subset rollout
        self.dest_xy: np.ndarray | None = None
        self.counts = {"decisions": 0, "followed": 0, "experts": 0, "updates": 0}
        if cfg.resume_dir:
            self.load(Path(cfg.resume_dir) / f"{ctx.node_id}.pt")

    def on_observation(self, msg: Message):
        info, arrays, step = msg.body.info, msg.arrays, msg.body.step
        if isinstance(info, Follow):
            self.counts["followed"] += 1
            return Action(step=step, value=info.expert_action if info.expert_action >= 0 else None), None
        if isinstance(info, Act):
            return Action(step=step, value=self.act(msg)), None
        if isinstance(info, Rollout):
            self.instructions = info.instructions
            return Action(step=step), None
        if isinstance(info, Expert):
            return Action(step=step), {"probs": self.take_expert(arrays)}
        if isinstance(info, Probe):  # a plan followed but not to the destination: pi(.|o) for the PDI, nothing kept
            return Action(step=step), {"probs": self.probe(arrays)}
        if info.K is None:
            raise ValueError("a router's update needs the number of epochs K")
        return Action(step=step, value=self.update(info.epoch, info.K)), None

    # ------------------------------------------------------------------ acting
    def act(self, msg: Message) -> int | None:
        body, arrays = msg.body, msg.arrays
        mode = body.info.mode
        train = mode == "train"
        obs, mask = arrays.get("obs"), arrays.get("mask")
        if train and self.episode is not None and self.episode.actions:
            self.episode.rewards.append(float(body.reward))
            if body.info.applied is not None:  # the world had to take another road (our answer was late or invalid)
                self.episode.actions[-1] = body.info.applied
        if body.done:
            if train and self.episode is not None and self.episode.actions:
                self.close_episode(body.info.arrived, obs, mask)
            self.episode = None
            return None
        if obs is None or mask is None or obs.shape != (self.ppo.cfg.obs_dim,):
            raise ValueError(f"router expects 'obs' ({self.ppo.cfg.obs_dim},) and 'mask' arrays")
        mask = mask.astype(bool)
        eps = self.ppo.explore_eps(self.counts["decisions"]) if train else 0.0
        action, _ = self.ppo.act(obs, mask, greedy=mode in ("test", "eval"), eps=eps)
        if train:
            if self.episode is None:
                self.episode = Episode()
            self.episode.eps.append(eps)
            self.episode.obs.append(obs)
            self.episode.masks.append(mask)
            self.episode.actions.append(action)
            self.episode.xy.append(arrays.get("xy", np.zeros(2)))
            if "dest" in arrays:
                self.dest_xy = np.asarray(arrays["dest"], np.float64)
            self.counts["decisions"] += 1
        return action

    def close_episode(self, arrived: bool, obs, mask) -> None:
        ep = self.episode
        last_obs = None if arrived or obs is None else obs
        last_mask = None if last_obs is None else mask.astype(bool)
        self.trajectories.append(ep.trajectory(arrived, last_obs, last_mask))
        self.sequences.append((self.sequence(ep.obs, ep.xy), arrived))

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
        returns = [float(t.rewards.sum()) for t in self.trajectories]
        self.ctx.send_metrics(
            "router_epoch",
            {
                "epoch": k,
                "alpha": alpha,
                "dtw": dtw,
                "episodes": len(returns),
                "return": float(np.mean(returns)) if returns else None,
                "started": started,
                "seconds": time.time() - started,
                **stats,
            },
        )
        self.trajectories, self.sequences = [], []
        self.counts["updates"] += 1
        if cfg.checkpoint_dir:
            self.save(Path(cfg.checkpoint_dir) / f"{self.ctx.node_id}.pt")
        return alpha

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: Path) -> None:
        state = {
            "ppo": self.ppo.state_dict(),
            "expert": self.expert,
            "expert_seq": self.expert_seq,
            "dest_xy": self.dest_xy,
            "counts": self.counts,
        }
        save_torch(state, path)

    def load(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path} to resume from")
        state = torch.load(path, weights_only=False)
        self.ppo.load_state_dict(state["ppo"])
        self.expert, self.expert_seq, self.dest_xy = state["expert"], state["expert_seq"], state["dest_xy"]
        self.counts = state["counts"]

    def metrics(self) -> dict:
        return dict(self.counts)
