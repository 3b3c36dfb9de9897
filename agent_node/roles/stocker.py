"""The stocker role: one warehouse's parameter-shared IPPO policy over its N SKUs (eSpark's MABIM learner)."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from protocols.messages import Act, Action, Message, Update

from ..checkpoints import save_torch
from ..learners.ppo import MaskedPPO, PPOConfig, Trajectory
from ..overrides import set_fields
from .base import Role
from .settings import StockerSettings

log = logging.getLogger(__name__)


class StockerRole(Role):
    """Act for all N SKUs at once ("act": train samples under the mask and the PPO's epsilon floor, test is greedy),
    keep per-SKU trajectories, close them on the episode's done message, and run one IPPO update on "update"."""

    name = "stocker"
    Settings = StockerSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = cfg = StockerSettings.model_validate(settings)
        torch.set_num_threads(cfg.torch_threads)
        seed = int(ctx.rng.integers(2**31))
        self.ppo = MaskedPPO(PPOConfig.model_validate({"init_seed": ctx.seed, "seed": seed, **set_fields(cfg.ppo)}))
        self.buf: dict[str, list] | None = None  # the current training episode: obs, masks, actions, rewards
        self.trajectories: list[Trajectory] = []
        self.returns: list[float] = []  # per closed episode: the scaled reward summed over SKUs and steps
        self.counts = {"decisions": 0, "episodes": 0, "updates": 0}
        if cfg.resume_dir:
            self.load(Path(cfg.resume_dir) / f"{ctx.node_id}.pt")

    def on_observation(self, msg: Message):
        info, step = msg.body.info, msg.body.step
        if isinstance(info, Act):
            actions = self.act(msg)
            return Action(step=step), (None if actions is None else {"actions": actions})
        if isinstance(info, Update):
            return Action(step=step, value=self.update(info.epoch)), None
        raise ValueError(f"a stocker has no {type(info).__name__.lower()!r} phase")

    def act(self, msg: Message) -> np.ndarray | None:
        body, arrays = msg.body, msg.arrays
        train = body.info.mode == "train"
        obs, mask = arrays.get("obs"), arrays.get("mask")
        if train and self.buf is not None and self.buf["actions"]:
            rewards = np.asarray(arrays.get("rewards", np.zeros(len(self.buf["actions"][-1]))), np.float64)
            self.buf["rewards"].append(rewards * self.cfg.reward_scale)
        if body.done:
            if train and self.buf is not None and self.buf["actions"]:
                self.close_episode(obs)
            self.buf = None
            return None
        d, a = self.ppo.cfg.obs_dim, self.ppo.cfg.n_actions
        if obs is None or mask is None or obs.ndim != 2 or obs.shape[1] != d or mask.shape != (len(obs), a):
            raise ValueError(f"stocker expects 'obs' (N, {d}) and 'mask' (N, {a}) arrays")
        obs, mask = np.array(obs, np.float32), mask.astype(bool)  # message arrays are read-only views
        eps = self.ppo.explore_eps(self.counts["decisions"]) if train else 0.0
        actions = self.ppo.act_batch(obs, mask, greedy=not train, eps=eps)
        if train:
            if self.buf is None:
                self.buf = {"obs": [], "masks": [], "actions": [], "rewards": [], "eps": []}
            self.buf["obs"].append(np.asarray(obs, np.float32))
            self.buf["masks"].append(mask)
            self.buf["actions"].append(actions)
            self.buf["eps"].append(eps)
            self.counts["decisions"] += 1
        return actions

    def close_episode(self, last_obs) -> None:
        """N trajectories, one per SKU; the episode window is a truncation, so returns bootstrap from last_obs."""
        b = self.buf
        t = min(len(b["actions"]), len(b["rewards"]))
        obs, masks = np.stack(b["obs"][:t], 1), np.stack(b["masks"][:t], 1)  # (N, T, ...)
        actions, rewards = np.stack(b["actions"][:t], 1), np.stack(b["rewards"][:t], 1)
        eps = np.asarray(b["eps"][:t], np.float64)
        for j in range(len(obs)):
            last = None if last_obs is None else np.asarray(last_obs[j], np.float32)
            self.trajectories.append(Trajectory(obs[j], masks[j], actions[j], rewards[j], False, last, eps=eps))
        self.returns.append(float(rewards.sum()))
        self.counts["episodes"] += 1

    def update(self, k: int) -> float:
        """IPPO (alpha = 1, no expert data) over the trajectories of the episodes since the last update."""
        started = time.time()
        stats = self.ppo.update(self.trajectories)
        self.ctx.send_metrics(
            "stocker_update",
            {
                "epoch": k,
                "episodes": len(self.returns),
                "return": float(np.mean(self.returns)) if self.returns else None,
                "started": started,
                "seconds": time.time() - started,
                **stats,
            },
        )
        self.trajectories, self.returns = [], []
        self.counts["updates"] += 1
        if self.cfg.checkpoint_dir:
            self.save(Path(self.cfg.checkpoint_dir) / f"{self.ctx.node_id}.pt")
        return 1.0

    def save(self, path: Path) -> None:
        save_torch({"ppo": self.ppo.state_dict(), "counts": self.counts}, path)

    def load(self, path: Path) -> None:
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint {path} to start from")
        state = torch.load(path, weights_only=False)
        self.ppo.load_state_dict(state["ppo"])
        self.counts = state["counts"]

    def metrics(self) -> dict:
        return dict(self.counts)
