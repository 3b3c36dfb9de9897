"""Per-agent SAC learner (RSM-MASAC paper, Sec. III-A1, Table IV), self-contained and read top to bottom: actor,
its squashed-Gaussian density, replay buffer, twin critics, the update. RSM-MASAC builds on it (rsm/).

One agent process owns one `SAC` and one `ReplayBuffer`:

    cfg = SACConfig(action_bound=3.0, init_seed=0, seed=agent_id)
    sac, buf = SAC(cfg), ReplayBuffer(cfg.buffer_size, cfg.obs_dim, cfg.act_dim, seed=cfg.seed)
    a, logp = sac.act(obs)                             # a = bound * tanh(u), logp = log pi_b(a|s)
    buf.add(obs, a, r, next_obs, done, logp)           # the behaviour log-prob is stored (eq. 19's pi_t)
    if sac.ready(len(buf)):                            # warm-up gate: buffer > 2 * batch = 512 (R-A7)
        losses = sac.update(buf.sample(cfg.batch_size), update_policy=...)

Only the actor is exchanged and mixed by RSM (segments.flatten / load_flat on `sac.actor`); critics, targets,
alpha and the optimiser states stay local (the paper's Sec. III-A2). R-A labels: docs/rsm_masac.md.
"""

from __future__ import annotations

import copy
import math
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .settings import SACConfig

SIGMA_FLOOR = 1e-5  # sigma = softplus(fc_std) + 1e-5 (the reference code)
LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


def update_flags(mode: str, step: int, code_every: int, policy_delay: int, last: bool) -> tuple[bool, bool]:
    """(critic update?, actor/alpha/target update?) at learning step `step` (0-based, counted once the buffer is
    warm) of the agent's update schedule: "paper" is Alg. 1 (a critic update every step, the rest every
    policy_delay), "code" the reference code's (one full update every code_every steps) (R-A7). The last
    step of an episode always updates fully."""
    if mode == "code":
        full = step % code_every == 0 or last
        return full, full
    return True, step % policy_delay == 0 or last


# ---------------------------------------------------------------------------------------------- actor and its density
class Actor(nn.Module):
    """The reference code's actor: fc1 6->256, fc2 256->256 (ReLU), heads fc_mu, fc_std 256->1; d = 68,098.

    Its parameters() order (fc1.W, fc1.b, fc2.W, fc2.b, fc_mu.W, fc_mu.b, fc_std.W, fc_std.b) fixes the flat layout.
    """

    def __init__(self, obs_dim: int = 6, hidden: int = 256, act_dim: int = 1):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc_mu = nn.Linear(hidden, act_dim)
        self.fc_std = nn.Linear(hidden, act_dim)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-tanh Gaussian (mu, sigma) of the action."""
        h = torch.relu(self.fc2(torch.relu(self.fc1(obs))))
        return self.fc_mu(h), nn.functional.softplus(self.fc_std(h)) + SIGMA_FLOOR


def pre_tanh(a: torch.Tensor, bound: float) -> torch.Tensor:
    """u = atanh(clip(a / bound, +-(1 - 1e-6))): the pre-tanh action of a stored scaled action (R-A3)."""
    return torch.atanh(torch.clamp(a / bound, -1 + 1e-6, 1 - 1e-6))


def squashed_log_prob(mu: torch.Tensor, sigma: torch.Tensor, u: torch.Tensor, bound: float) -> torch.Tensor:
    """log pi(a|s) of a = bound * tanh(u), u ~ N(mu, sigma), per action dimension (R-A3, eq. 8).

    log N(u; mu, sigma) - log(1 - tanh^2 u) - log(bound), with log(1 - tanh^2 u) = 2(log 2 - u - softplus(-2u)).
    Sum over the last axis when dim A > 1. Use it alike for pi, pi~ and the stored behaviour log-prob.
    """
    # torch.distributions.Normal(mu, sigma).log_prob(u), term for term (the same bits) without building and
    # validating a distribution object on every call (a quarter of an action's cost)
    log_n = -((u - mu) ** 2) / (2 * sigma**2) - sigma.log() - LOG_SQRT_2PI
    return log_n - 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u)) - math.log(bound)


# ---------------------------------------------------------------------------------------------- replay buffer
class Batch(NamedTuple):
    """A sampled mini-batch as float32 tensors: obs [B, o], act [B, a], rew [B], next_obs [B, o], done [B], logp [B]."""

    obs: torch.Tensor
    act: torch.Tensor
    rew: torch.Tensor
    next_obs: torch.Tensor
    done: torch.Tensor
    logp: torch.Tensor  # behaviour log pi_b(a|s) recorded when the action was taken (pi_t of eq. 19)


class ReplayBuffer:
    """Bounded numpy ring buffer of <s, a, r, s', done, log pi_b(a|s)> with FIFO eviction (Table IV, R-A3).

    `sample(n)` draws n distinct indices uniformly (without replacement, like the code's random.sample) from its own
    seeded generator, so it serves both the SAC mini-batch (256) and the RSM accept test (M = 50).
    """

    def __init__(self, capacity: int, obs_dim: int = 6, act_dim: int = 1, seed: int = 0):
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.act = np.zeros((capacity, act_dim), np.float32)
        self.rew = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.done = np.zeros(capacity, np.float32)
        self.logp = np.zeros(capacity, np.float32)
        self.pos = 0  # next slot to write
        self.size = 0
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, act, rew: float, next_obs, done: bool, logp: float) -> None:
        """Store one transition, overwriting the oldest once full."""
        i = self.pos
        self.obs[i], self.act[i], self.rew[i] = obs, np.reshape(act, -1), rew
        self.next_obs[i], self.done[i], self.logp[i] = next_obs, float(done), float(np.sum(logp))
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)

    def sample(self, n: int) -> Batch:
        """n transitions drawn uniformly without replacement (n is capped at the current size)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.choice(self.size, size=min(n, self.size), replace=False)
        t = torch.from_numpy
        return Batch(
            t(self.obs[idx]),
            t(self.act[idx]),
            t(self.rew[idx]),
            t(self.next_obs[idx]),
            t(self.done[idx]),
            t(self.logp[idx]),
        )

    def state_dict(self) -> dict[str, Any]:
        n = self.size
        return {
            "capacity": self.capacity,
            "pos": self.pos,
            "size": n,
            "rng": self.rng.bit_generator.state,
            **{k: getattr(self, k)[:n].copy() for k in ("obs", "act", "rew", "next_obs", "done", "logp")},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["capacity"] != self.capacity:
            raise ValueError(f"buffer capacity {state['capacity']} != {self.capacity}")
        n = state["size"]
        for k in ("obs", "act", "rew", "next_obs", "done", "logp"):
            getattr(self, k)[:n] = state[k]
        self.pos, self.size = state["pos"], n
        self.rng.bit_generator.state = state["rng"]


# ---------------------------------------------------------------------------------------------- networks
class Critic(nn.Module):
    """Soft Q(s, a): concat(s, a) -> 256 -> 256 -> 1, ReLU (the reference code); a is the scaled action."""

    def __init__(self, obs_dim: int = 6, act_dim: int = 1, hidden: int = 256):
        super().__init__()
        self.fc1 = nn.Linear(obs_dim + act_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, 1)

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc2(torch.relu(self.fc1(torch.cat([obs, act], dim=-1)))))
        return self.fc3(h).squeeze(-1)


# ---------------------------------------------------------------------------------------------- SAC
class SAC:
    """Independent SAC learner: actor, twin critics + targets, learnable alpha (Sec. III-A1)."""

    def __init__(self, cfg: SACConfig | None = None):
        self.cfg = cfg = cfg or SACConfig()
        # Identical initial weights on every agent built with the same init_seed (R-A17); global RNG untouched.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(cfg.init_seed)
            self.actor = Actor(cfg.obs_dim, cfg.hidden, cfg.act_dim)
            self.q1 = Critic(cfg.obs_dim, cfg.act_dim, cfg.hidden)
            self.q2 = Critic(cfg.obs_dim, cfg.act_dim, cfg.hidden)
        self.q1_target, self.q2_target = copy.deepcopy(self.q1), copy.deepcopy(self.q2)
        for p in (*self.q1_target.parameters(), *self.q2_target.parameters()):
            p.requires_grad_(False)
        self.log_alpha = torch.tensor(float(np.log(cfg.init_alpha)), requires_grad=True)
        self.target_entropy = cfg.entropy_target
        # log-densities are of the scaled action; measured in the unit space they are higher by log(bound) a dim
        self.logp_shift = cfg.act_dim * float(np.log(cfg.action_bound)) if cfg.entropy_space == "unit" else 0.0

        # multi-tensor Adam: each step a few calls over all of an optimiser's tensors instead of a loop over them
        kernel = {"fused": True} if cfg.fused_adam else {"foreach": True}
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr, **kernel)
        self.critic_params = [*self.q1.parameters(), *self.q2.parameters()]
        self.critic_opt = torch.optim.Adam(self.critic_params, lr=cfg.critic_lr, **kernel)
        self.target_params = [*self.q1_target.parameters(), *self.q2_target.parameters()]
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr, **kernel)

        # Per-agent noise streams: one for acting, one for the reparameterised samples inside update().
        self.act_gen = torch.Generator().manual_seed(cfg.seed)
        self.update_gen = torch.Generator().manual_seed(cfg.seed + 1_000_003)
        self.n_updates = 0  # critic updates
        self.n_policy_updates = 0  # actor / alpha / target updates (k in Alg. 1)

    @property
    def alpha(self) -> float:
        return float(self.log_alpha.detach().exp())

    def ready(self, buffer_len: int) -> bool:
        """Warm-up gate: learn only once the buffer holds more than learning_starts transitions (Table IV)."""
        return buffer_len > self.cfg.learning_starts

    # ------------------------------------------------------------------ policy
    def sample_action(self, obs: torch.Tensor, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised a = bound * tanh(mu + sigma * delta) and log pi(a|s) summed over action dims (eq. 8)."""
        mu, sigma = self.actor(obs)
        u = mu + sigma * torch.randn(mu.shape, generator=gen)
        return self.cfg.action_bound * torch.tanh(u), squashed_log_prob(mu, sigma, u, self.cfg.action_bound).sum(-1)

    @torch.no_grad()
    def act(self, obs, deterministic: bool = False, actor: nn.Module | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(action, logp) for obs [o] or [B, o]: action in [-bound, bound], shape [a] / [B, a]; logp scalar / [B].

        logp = log pi(a|s) of the pre-tanh u actually drawn (squashed_log_prob, incl. -log bound; R-A3); store it
        in the buffer as the behaviour log-prob. deterministic=True returns bound * tanh(mu) and its log-density.
        actor: act with these weights instead of the learner's (a copy that a concurrent update does not touch).
        """
        x = torch.as_tensor(np.array(obs, np.float32))  # a copy: arrays off the wire are read-only
        mu, sigma = (self.actor if actor is None else actor)(x)
        u = mu if deterministic else mu + sigma * torch.randn(mu.shape, generator=self.act_gen)
        b = self.cfg.action_bound
        a = torch.clamp(b * torch.tanh(u), -b, b)
        logp = squashed_log_prob(mu, sigma, u, b).sum(-1)
        return a.numpy(), logp.numpy()

    # ------------------------------------------------------------------ learning
    def _clip(self, params) -> None:
        if self.cfg.grad_clip is not None:
            nn.utils.clip_grad_norm_(params, self.cfg.grad_clip, foreach=True)

    def update(self, batch: Batch, update_policy: bool = True) -> dict[str, float]:
        """One critic step, then (if update_policy) one actor, alpha and target step (eqs. 6, 7, 9).

        Alg. 1 schedule: update_policy = (n_updates % policy_delay == 0); code schedule: always True, called every
        10 env steps (R-A7). The host chooses. Returns the losses as floats.
        """
        cfg = self.cfg
        obs, act, rew, next_obs, done = batch.obs, batch.act, batch.rew, batch.next_obs, batch.done
        alpha = self.log_alpha.exp().detach()

        # Critics (eq. 6): Q_hat = r + gamma (1 - done) (min target Q(s', a') - alpha log pi(a'|s')), a' ~ pi(.|s').
        with torch.no_grad():
            next_a, next_logp = self.sample_action(next_obs, self.update_gen)
            if self.logp_shift:
                next_logp = next_logp + self.logp_shift
            next_q = torch.min(self.q1_target(next_obs, next_a), self.q2_target(next_obs, next_a))
            q_hat = rew + cfg.gamma * (1.0 - done) * (next_q - alpha * next_logp)
        q1_loss = F.mse_loss(self.q1(obs, act), q_hat)  # plain MSE as in the reference code (eq. 6 has 1/2)
        q2_loss = F.mse_loss(self.q2(obs, act), q_hat)
        self.critic_opt.zero_grad()
        (q1_loss + q2_loss).backward()
        self._clip(self.critic_params)
        self.critic_opt.step()
        self.n_updates += 1
        q1_loss, q2_loss = torch.stack([q1_loss, q2_loss]).tolist()  # one conversion for both
        out = {"q1_loss": q1_loss, "q2_loss": q2_loss, "alpha": float(alpha)}
        if not update_policy:
            return out

        # Actor (eq. 7): alpha log pi(a|s) - min online Q(s, a), a reparameterised. The gradient flows through the
        # critics to the action but is taken for the actor's weights only (the critics' would be thrown away).
        new_a, logp = self.sample_action(obs, self.update_gen)
        if self.logp_shift:
            logp = logp + self.logp_shift
        for p in self.critic_params:
            p.requires_grad_(False)
        try:
            q_pi = torch.min(self.q1(obs, new_a), self.q2(obs, new_a))
        finally:
            for p in self.critic_params:
                p.requires_grad_(True)
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self._clip(self.actor.parameters())
        self.actor_opt.step()

        # Temperature (eq. 9), via log alpha: -alpha (log pi + H_bar).
        alpha_loss = -(self.log_alpha.exp() * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad()
        alpha_loss.backward()
        self.alpha_opt.step()

        # Targets: w_bar <- tau w + (1 - tau) w_bar.
        with torch.no_grad():
            torch._foreach_lerp_(self.target_params, self.critic_params, cfg.tau)  # one call for every tensor
        self.n_policy_updates += 1
        actor_loss, alpha_loss, entropy = torch.stack([actor_loss, alpha_loss, -logp.mean()]).tolist()
        out.update(actor_loss=actor_loss, alpha_loss=alpha_loss, alpha=self.alpha, entropy=entropy)
        return out

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly: networks, log alpha, optimiser moments, noise RNG states, counters."""
        return {
            "config": self.cfg.model_dump(),
            "actor": self.actor.state_dict(),
            "q1": self.q1.state_dict(),
            "q2": self.q2.state_dict(),
            "q1_target": self.q1_target.state_dict(),
            "q2_target": self.q2_target.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
            "act_gen": self.act_gen.get_state(),
            "update_gen": self.update_gen.get_state(),
            "n_updates": self.n_updates,
            "n_policy_updates": self.n_policy_updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore a state_dict() in place; the state is copied, so one checkpoint can seed several agents."""
        for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        for name in ("actor_opt", "critic_opt", "alpha_opt"):  # deep copy: Adam would alias the moments otherwise
            getattr(self, name).load_state_dict(copy.deepcopy(state[name]))
        self.act_gen.set_state(state["act_gen"])
        self.update_gen.set_state(state["update_gen"])
        self.n_updates, self.n_policy_updates = state["n_updates"], state["n_policy_updates"]

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> SAC:
        sac = cls(SACConfig(**state["config"]))
        sac.load_state_dict(state)
        return sac
