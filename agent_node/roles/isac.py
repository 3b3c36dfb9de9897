"""The isac role: one agent's SAC (agent_node/learners/sac.py) on a continuous action space, a transition kept per
decision and a gradient step after each once the replay buffer is warm; the generic learner for Box actions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from protocols.messages import Act, Action, Message, Update

from ..checkpoints import load_torch, save_torch
from ..learners.sac import SAC, ReplayBuffer, SACConfig
from ..overrides import set_fields
from .base import Role
from .settings import IsacSettings


class IsacRole(Role):
    """Answer "act" with an action vector in [-action_bound, action_bound] (the `action` array; train: sampled and
    kept as a transition with the reward and observation that follow it; test / eval: the mean action) and
    "update" (the statistics of the gradient steps since the last one, then a checkpoint). A transition ends the
    bootstrap only at a termination (`Act.arrived` with `done`); a truncation bootstraps from the final state."""

    name = "isac"
    Settings = IsacSettings
    COUNTS = ("decisions", "gradient_steps", "updates")

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = self.Settings.model_validate(settings)
        torch.set_num_threads(self.cfg.torch_threads)
        seed = int(ctx.rng.integers(2**31))
        self.sac = SAC(SACConfig.model_validate({"init_seed": ctx.seed, "seed": seed, **set_fields(self.cfg.sac)}))
        c = self.sac.cfg
        self.buf = ReplayBuffer(c.buffer_size, c.obs_dim, c.act_dim, seed=seed)
        self.pending: tuple[np.ndarray, np.ndarray, float] | None = None  # (obs, action, logp) awaiting its reward
        self.learn = False  # a training decision was just made: learn after the action is on its way
        self.losses: list[dict] = []  # the gradient steps' statistics since the last update
        self.returns: list[float] = []  # training episodes' returns since the last update
        self.episode_return = 0.0
        self.counts = dict.fromkeys(self.COUNTS, 0)
        if self.cfg.resume_dir:
            self.load(Path(self.cfg.resume_dir) / f"{ctx.node_id}.pt")

    def on_observation(self, msg: Message):
        info, step = msg.body.info, msg.body.step
        if isinstance(info, Act):
            action = self.act(msg)
            return Action(step=step), None if action is None else {"action": action}
        if isinstance(info, Update):
            return Action(step=step, value=self.update(info.epoch)), None
        raise ValueError(f"the {self.name} role has no {type(info).__name__.lower()!r} phase")

    # ------------------------------------------------------------------ acting
    def act(self, msg: Message) -> np.ndarray | None:
        body, c = msg.body, self.sac.cfg
        train = body.info.mode == "train"
        obs = msg.arrays.get("obs")
        if obs is None or obs.shape != (c.obs_dim,) or not np.isfinite(obs).all():
            raise ValueError(f"{self.name} expects a finite 'obs' array of shape ({c.obs_dim},)")
        if train and self.pending is not None:
            last_obs, last_action, logp = self.pending
            terminal = bool(body.done and body.info.arrived)
            self.buf.add(last_obs, last_action, float(body.reward), obs, terminal, logp)
            self.episode_return += float(body.reward)
        if body.done:
            if train and self.pending is not None:
                self.returns.append(self.episode_return)
            self.pending, self.episode_return = None, 0.0
            return None
        action, logp = self.sac.act(obs, deterministic=body.info.mode in ("test", "eval"))
        if train:
            self.pending = (obs, action, float(logp))
            self.learn = True
            self.counts["decisions"] += 1
        return action.astype(np.float32)

    def after_action(self) -> None:
        """The gradient steps of a training decision, while the world waits for the other agents."""
        if not self.learn:
            return
        self.learn = False
        for _ in range(self.cfg.updates_per_step):
            if not self.sac.ready(len(self.buf)):
                return
            n = self.counts["gradient_steps"]
            self.losses.append(
                self.sac.update(self.buf.sample(self.sac.cfg.batch_size), n % self.sac.cfg.policy_delay == 0)
            )
            self.counts["gradient_steps"] = n + 1

    # ------------------------------------------------------------------ reporting
    def update(self, k: int) -> float:
        """The `isac_epoch` record: mean losses and returns since the last one; then a checkpoint."""
        fields = sorted({key for row in self.losses for key in row})
        means = {key: float(np.mean([row[key] for row in self.losses if key in row])) for key in fields}
        self.ctx.send_metrics(
            f"{self.name}_epoch",
            {
                "epoch": k,
                "episodes": len(self.returns),
                "return": float(np.mean(self.returns)) if self.returns else None,
                "gradient_steps": len(self.losses),
                "buffer": len(self.buf),
                **means,
            },
        )
        self.losses, self.returns = [], []
        self.counts["updates"] += 1
        if self.cfg.checkpoint_dir:
            save_torch(self.state(), Path(self.cfg.checkpoint_dir) / f"{self.ctx.node_id}.pt")
        return 1.0

    # ------------------------------------------------------------------ checkpoints
    def state(self) -> dict:
        return {"sac": self.sac.state_dict(), "buffer": self.buf.state_dict(), "counts": self.counts}

    def load(self, path: Path) -> None:
        state = load_torch(path)
        self.sac.load_state_dict(state["sac"])
        self.buf.load_state_dict(state["buffer"])
        self.counts = state["counts"]

    def metrics(self) -> dict:
        return dict(self.counts)
