"""The ippo role: one agent's masked PPO (agent_node/learners/ppo.py) over the decisions the world asks of it, one
update whenever the world says; the traffic lights' IPPO, and the base of the router role (RELED's vehicles)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from protocols.messages import Act, Action, Message, Update

from ..checkpoints import load_torch, save_torch
from ..learners.ppo import MaskedPPO, PPOConfig, Trajectory
from ..overrides import set_fields
from .base import Role
from .settings import IppoSettings


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


class IppoRole(Role):
    """Answer "act" (train: sample under the mask and the PPO's epsilon floor and keep the decision; test / eval:
    greedy) and "update" (one PPO update on the episodes gathered since the last one, then a checkpoint)."""

    name = "ippo"
    Settings = IppoSettings
    COUNTS = ("decisions", "updates")  # the metrics the role counts

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = self.Settings.model_validate(settings)
        torch.set_num_threads(self.cfg.torch_threads)
        self.ppo = self.build_learner(int(ctx.rng.integers(2**31)))
        self.episode: Episode | None = None
        self.trajectories: list[Trajectory] = []  # the episodes since the last update
        self.counts = dict.fromkeys(self.COUNTS, 0)
        if self.cfg.resume_dir:
            self.load(Path(self.cfg.resume_dir) / f"{ctx.node_id}.pt")

    def build_learner(self, seed: int) -> MaskedPPO:
        settings = {"init_seed": self.ctx.seed, "seed": seed, **set_fields(self.cfg.ppo)}
        return MaskedPPO(PPOConfig.model_validate(settings))

    def on_observation(self, msg: Message):
        info, step = msg.body.info, msg.body.step
        if isinstance(info, Act):
            return Action(step=step, value=self.act(msg)), None
        if isinstance(info, Update):
            if info.K is None:
                raise ValueError(f"an {self.name}'s update needs the number of epochs K")
            return Action(step=step, value=self.update(info.epoch, info.K)), None
        raise ValueError(f"the {self.name} role has no {type(info).__name__.lower()!r} phase")

    # ------------------------------------------------------------------ acting
    def act(self, msg: Message) -> int | None:
        body, arrays = msg.body, msg.arrays
        mode = body.info.mode
        train = mode == "train"
        obs, mask = arrays.get("obs"), arrays.get("mask")
        if train and self.episode is not None and self.episode.actions:
            self.episode.rewards.append(float(body.reward))
            if body.info.applied is not None:  # the world took another action (our answer was late or invalid)
                self.episode.actions[-1] = body.info.applied
        if body.done:
            if train and self.episode is not None and self.episode.actions:
                self.close_episode(body.info.arrived, obs, mask)
            self.episode = None
            return None
        if obs is None or mask is None or obs.shape != (self.ppo.cfg.obs_dim,):
            raise ValueError(f"{self.name} expects 'obs' ({self.ppo.cfg.obs_dim},) and 'mask' arrays")
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
            self.remember(arrays)
            self.counts["decisions"] += 1
        return action

    def remember(self, arrays: dict) -> None:
        """What else a training decision keeps (the router: where it was)."""

    def close_episode(self, terminated: bool, obs, mask) -> None:
        """The episode's trajectory; it bootstraps from the final observation unless it ended in a terminal state."""
        last_obs = None if terminated or obs is None else obs
        last_mask = None if last_obs is None else mask.astype(bool)
        self.trajectories.append(self.episode.trajectory(terminated, last_obs, last_mask))

    # ------------------------------------------------------------------ learning
    def update(self, k: int, K: int) -> float:
        """One PPO update on the gathered episodes; its statistics go out as the `ippo_epoch` record."""
        started = time.time()
        stats = self.ppo.update(self.trajectories)
        self.report(k, started, stats)
        return 1.0

    def report(self, k: int, started: float, stats: dict) -> None:
        """The update's record (`<role>_epoch`), then the gathered episodes are dropped and a checkpoint written."""
        returns = [float(t.rewards.sum()) for t in self.trajectories]
        self.ctx.send_metrics(
            f"{self.name}_epoch",
            {
                "epoch": k,
                "episodes": len(returns),
                "return": float(np.mean(returns)) if returns else None,
                "started": started,
                "seconds": time.time() - started,
                **stats,
            },
        )
        self.trajectories = []
        self.counts["updates"] += 1
        if self.cfg.checkpoint_dir:
            self.save(Path(self.cfg.checkpoint_dir) / f"{self.ctx.node_id}.pt")

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"ppo": self.ppo.state_dict(), "counts": self.counts}

    def restore(self, state: dict) -> None:
        self.ppo.load_state_dict(state["ppo"])
        self.counts = state["counts"]

    def save(self, path: Path) -> None:
        save_torch(self.state(), path)

    def load(self, path: Path) -> None:
        self.restore(load_torch(path))

    def metrics(self) -> dict:
        return dict(self.counts)
