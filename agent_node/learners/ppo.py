"""Masked-action PPO for one agent, read top to bottom: policy and critic, returns, the clipped update, an
epsilon-floor behaviour (the learner of eSpark's IPPO and the base of RELED's hybrid PPO; CleanRL's ppo.py for
discrete actions with masks)."""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .settings import PPOConfig

MASK_FILL = -1e9  # logit of a non-selectable action: softmax gives it exactly 0 in float32


@dataclass
class Trajectory:
    """One agent's decisions, t = 0..T-1, raw environment observations.

    terminated=True means a terminal state, so V(o_T) := 0. Otherwise the return bootstraps with V(last_obs); if
    last_obs is None on a non-terminated trajectory, the bootstrap value is 0 (same as terminated).
    last_mask is kept for callers' bookkeeping; the critics do not use masks.
    """

    obs: np.ndarray  # (T, obs_dim) float32
    masks: np.ndarray  # (T, n_actions) bool, True = selectable
    actions: np.ndarray  # (T,) int
    rewards: np.ndarray  # (T,) float
    terminated: bool
    last_obs: np.ndarray | None = None  # (obs_dim,)
    last_mask: np.ndarray | None = None  # (n_actions,)
    eps: np.ndarray | None = None  # (T,) the epsilon floor each action was drawn under (None: none)

    def __post_init__(self):
        self.obs = np.asarray(self.obs, dtype=np.float32)
        self.masks = np.asarray(self.masks, dtype=bool)
        self.actions = np.asarray(self.actions, dtype=np.int64)
        self.rewards = np.asarray(self.rewards, dtype=np.float64)
        if self.obs.ndim != 2 or self.obs.shape[0] == 0:
            raise ValueError(f"obs must be (T, obs_dim) with T >= 1, got {self.obs.shape}")
        T = self.obs.shape[0]
        if self.masks.ndim != 2 or self.masks.shape[0] != T:
            raise ValueError(f"masks must be (T={T}, n_actions), got {self.masks.shape}")
        if self.actions.shape != (T,) or self.rewards.shape != (T,):
            raise ValueError(f"actions and rewards must be ({T},), got {self.actions.shape}, {self.rewards.shape}")
        if self.eps is not None:
            self.eps = np.asarray(self.eps, dtype=np.float64)
            if self.eps.shape != (T,):
                raise ValueError(f"eps must be ({T},), got {self.eps.shape}")
        if self.last_obs is not None:
            self.last_obs = np.asarray(self.last_obs, dtype=np.float32)
            if self.last_obs.shape != self.obs.shape[1:]:
                raise ValueError(f"last_obs must be {self.obs.shape[1:]}, got {self.last_obs.shape}")

    def __len__(self) -> int:
        return self.obs.shape[0]


def fix_masks(masks: np.ndarray) -> np.ndarray:
    """A row with no selectable action is treated as all-selectable."""
    m = np.array(masks, dtype=bool)
    m[~m.any(axis=-1)] = True
    return m


def with_floor(probs: torch.Tensor, masks: torch.Tensor, eps) -> torch.Tensor:
    """(1 - eps) probs + eps Uniform(selectable actions): the released eSpark selector's behaviour distribution."""
    m = masks.to(probs.dtype)
    eps = torch.as_tensor(eps, dtype=probs.dtype)
    if eps.ndim:
        eps = eps[:, None]
    return (1 - eps) * probs + eps * m / m.sum(-1, keepdim=True)


def mlp(inp: int, hidden: int, out: int, out_std: float) -> nn.Sequential:
    """2 x hidden tanh MLP, CleanRL orthogonal init."""
    layers = [nn.Linear(inp, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, out)]
    for layer, std in zip(layers[::2], (np.sqrt(2), np.sqrt(2), out_std)):
        nn.init.orthogonal_(layer.weight, std)
        nn.init.zeros_(layer.bias)
    return nn.Sequential(*layers)


class MaskedPPO:
    """One agent: policy pi and critic V over observations, actions chosen among the selectable ones.

    One Adam over all networks (Adam is per-parameter, so this equals one Adam per network); the gradient norm is
    clipped per network so the value loss never rescales the policy step.
    """

    def __init__(self, config: PPOConfig | None = None):
        self.cfg = cfg = config or PPOConfig()
        with torch.random.fork_rng(devices=[]):  # leave the global torch RNG untouched
            torch.manual_seed(cfg.init_seed)
            self.nets = self.build_networks()
        self.optimizer = torch.optim.Adam([p for n in self.nets for p in n.parameters()], lr=cfg.lr, eps=1e-5)
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def build_networks(self) -> tuple[nn.Module, ...]:
        """The policy (logits, small last layer) and the critic, in the order their initialisation draws."""
        cfg = self.cfg
        self.policy = mlp(cfg.obs_dim, cfg.hidden, cfg.n_actions, 0.01)
        self.critic = mlp(cfg.obs_dim, cfg.hidden, 1, 1.0)
        return (self.policy, self.critic)

    # ---- inputs -------------------------------------------------------------------------------------------------
    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        """Network input from raw observations (a subclass may rescale them)."""
        return torch.from_numpy(np.asarray(obs, np.float32))

    def _check(self, obs: np.ndarray, masks: np.ndarray, batched: bool) -> tuple[np.ndarray, np.ndarray]:
        obs, masks = np.asarray(obs, dtype=np.float32), np.asarray(masks, dtype=bool)
        lead = obs.shape[:1] if batched and obs.ndim == 2 else ()
        if obs.shape != (*lead, self.cfg.obs_dim) or (batched and not lead):
            want = f"(T, {self.cfg.obs_dim})" if batched else f"({self.cfg.obs_dim},)"
            raise ValueError(f"obs must have shape {want}, got {obs.shape}")
        if masks.shape != (*lead, self.cfg.n_actions):
            raise ValueError(f"mask must have shape {(*lead, self.cfg.n_actions)}, got {masks.shape}")
        return obs, fix_masks(masks)

    def _logits(self, x: torch.Tensor, masks: np.ndarray) -> torch.Tensor:
        return self.policy(x).masked_fill(~torch.from_numpy(masks), MASK_FILL)

    # ---- acting -------------------------------------------------------------------------------------------------
    def explore_eps(self, decisions: int) -> float:
        """The epsilon floor after `decisions` training decisions (linear from start to finish, then flat)."""
        c = self.cfg
        frac = min(max(decisions, 0) / c.explore_eps_steps, 1.0)
        return c.explore_eps_start + frac * (c.explore_eps_finish - c.explore_eps_start)

    @torch.no_grad()
    def act(self, obs: np.ndarray, mask: np.ndarray, greedy: bool = False, eps: float = 0.0) -> tuple[int, float]:
        """Sample (or argmax) a selectable action, under an epsilon floor eps; returns (action, log of its
        behaviour probability)."""
        obs, mask = self._check(obs, mask, batched=False)
        logp = torch.log_softmax(self._logits(self._obs(obs[None]), mask[None]), -1)[0]
        if greedy:
            a = int(logp.argmax())
            return a, float(logp[a])
        probs = with_floor(logp.exp(), torch.from_numpy(mask), eps) if eps > 0 else logp.exp()
        a = int(torch.multinomial(probs, 1, generator=self.gen))
        return a, float(torch.log(probs[a]))

    @torch.no_grad()
    def act_batch(self, obs: np.ndarray, masks: np.ndarray, greedy: bool = False, eps: float = 0.0) -> np.ndarray:
        """act() for a batch: obs (B, obs_dim), masks (B, n_actions) -> actions (B,) int64, same masked logits."""
        obs, masks = self._check(obs, masks, batched=True)
        logp = torch.log_softmax(self._logits(self._obs(obs), masks), -1)
        if greedy:
            return logp.argmax(-1).numpy().astype(np.int64)
        probs = with_floor(logp.exp(), torch.from_numpy(masks), eps) if eps > 0 else logp.exp()
        return torch.multinomial(probs, 1, generator=self.gen)[:, 0].numpy().astype(np.int64)

    @torch.no_grad()
    def probs(self, obs_batch: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """Masked action distribution (T, n_actions); masked-out actions get exactly 0."""
        obs, masks = self._check(obs_batch, masks, batched=True)
        return torch.softmax(self._logits(self._obs(obs), masks), -1).numpy()

    # ---- returns ------------------------------------------------------------------------------------------------
    def _check_traj(self, traj: Trajectory) -> None:
        if traj.obs.shape[1] != self.cfg.obs_dim or traj.masks.shape[1] != self.cfg.n_actions:
            raise ValueError(
                f"trajectory obs/masks must be (T, {self.cfg.obs_dim}) / (T, {self.cfg.n_actions}), "
                f"got {traj.obs.shape} / {traj.masks.shape}"
            )
        if traj.actions.min() < 0 or traj.actions.max() >= self.cfg.n_actions:
            raise ValueError(f"actions must lie in [0, {self.cfg.n_actions}), got {traj.actions}")
        if not fix_masks(traj.masks)[np.arange(len(traj)), traj.actions].all():
            raise ValueError("a trajectory action is not selectable under its mask")

    @torch.no_grad()
    def returns(self, traj: Trajectory, critic) -> np.ndarray:
        """R_t (T,): sum_k gamma^k r_{t+k} + gamma^{T-t} V(o_T) with V(o_T) = 0 at a terminal state (or no
        last_obs); with cfg.gae_lambda set, GAE(lambda) returns A_t + V(o_t) instead. critic maps network inputs."""
        self._check_traj(traj)
        g, lam = self.cfg.gamma, self.cfg.gae_lambda
        boot = 0.0
        if not traj.terminated and traj.last_obs is not None:
            boot = float(critic(self._obs(traj.last_obs[None])).reshape(-1)[0])
        ret = np.empty(len(traj))
        if lam is None:
            running = boot
            for t in reversed(range(len(traj))):
                running = traj.rewards[t] + g * running
                ret[t] = running
            return ret
        values = np.append(critic(self._obs(traj.obs)).reshape(-1).numpy().astype(np.float64), boot)
        adv = 0.0
        for t in reversed(range(len(traj))):
            adv = traj.rewards[t] + g * values[t + 1] - values[t] + g * lam * adv
            ret[t] = adv + values[t]
        return ret

    def _dataset(self, trajs: list[Trajectory], critic: nn.Module, normalise: bool) -> dict | None:
        """Concatenated tensors plus returns R, advantages A = R - V and pi_old log-probs from the current policy:
        the behaviour's, with the epsilon floor each action was drawn under, where trajectories carry one."""
        if not trajs:
            return None
        ret = np.concatenate([self.returns(tr, critic) for tr in trajs])
        obs = self._obs(np.concatenate([tr.obs for tr in trajs]))
        masks = fix_masks(np.concatenate([tr.masks for tr in trajs]))
        act = torch.from_numpy(np.concatenate([tr.actions for tr in trajs]))
        ret_t = torch.as_tensor(ret, dtype=torch.float32)
        with torch.no_grad():
            adv = ret_t - critic(obs).reshape(-1)
            logp = torch.log_softmax(self._logits(obs, masks), -1).gather(1, act[:, None])[:, 0]
            if any(tr.eps is not None for tr in trajs):
                eps = np.concatenate([np.zeros(len(tr)) if tr.eps is None else tr.eps for tr in trajs])
                n_sel = torch.from_numpy(masks.sum(-1)).to(logp.dtype)
                e = torch.as_tensor(eps, dtype=logp.dtype)
                logp = torch.log((1 - e) * logp.exp() + e / n_sel)
        if normalise and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        return dict(obs=obs, masks=torch.from_numpy(masks), act=act, ret=ret_t, adv=adv, logp=logp, n=len(ret))

    # ---- update -------------------------------------------------------------------------------------------------
    def _surrogate(self, d: dict, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
        """Clipped objective E[min(w A, clip(w) A)], the entropy, and the kl / clipfrac diagnostics."""
        logits = self.policy(d["obs"][idx]).masked_fill(~d["masks"][idx], MASK_FILL)
        logp_all = torch.log_softmax(logits, -1)
        logratio = logp_all.gather(1, d["act"][idx, None])[:, 0] - d["logp"][idx]
        ratio, adv, eps = logratio.exp(), d["adv"][idx], self.cfg.clip_eps
        obj = torch.min(ratio * adv, torch.clamp(ratio, 1 - eps, 1 + eps) * adv).mean()
        entropy = -(logp_all.exp() * logp_all).sum(-1).mean()
        with torch.no_grad():
            diag = dict(
                approx_kl=float(((ratio - 1) - logratio).mean()),
                clipfrac=float(((ratio - 1).abs() > eps).float().mean()),
            )
        return obj, entropy, diag

    @staticmethod
    def _value_loss(critic: nn.Module, d: dict, idx: torch.Tensor) -> torch.Tensor:
        return ((critic(d["obs"][idx]).reshape(-1) - d["ret"][idx]) ** 2).mean()

    def _step(self, loss: torch.Tensor) -> None:
        """One Adam step on loss, the gradient norm clipped per network."""
        self.optimizer.zero_grad()
        loss.backward()
        for net in self.nets:
            nn.utils.clip_grad_norm_(net.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()

    def update(self, trajs: list[Trajectory]) -> dict:
        """One PPO update: maximise the clipped objective + beta H and fit V by MSE, cfg.update_epochs epochs of
        shuffled minibatches of cfg.minibatch (0: the whole batch). Stats are minibatch means; policy_loss is
        -(objective incl. entropy)."""
        cfg = self.cfg
        d = self._dataset(list(trajs), self.critic, cfg.norm_adv)
        keys = ("policy_loss", "value_loss", "entropy", "approx_kl", "clipfrac")
        stats = {**dict.fromkeys(keys, 0.0), "n": d["n"] if d else 0}
        if d is None:
            return stats
        mb, count = cfg.minibatch or d["n"], 0
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(d["n"], generator=self.gen)
            for start in range(0, d["n"], mb):
                idx = perm[start : start + mb]
                obj, ent, diag = self._surrogate(d, idx)
                v = self._value_loss(self.critic, d, idx)
                objective = obj + cfg.beta * ent
                self._step(cfg.vf_coef * v - objective)
                for k, x in zip(keys, (-objective.item(), v.item(), ent.item(), diag["approx_kl"], diag["clipfrac"])):
                    stats[k] += x
                count += 1
        return {**stats, **{k: stats[k] / count for k in keys}}

    # ---- checkpoints --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """A snapshot (deep copy) of networks, optimizer and sampling generator: a resumed run continues identically."""
        state = dict(
            config=self.cfg.model_dump(),
            networks=[net.state_dict() for net in self.nets],
            optimizer=self.optimizer.state_dict(),
            generator=self.gen.get_state(),
        )
        return copy.deepcopy(state)

    def load_state_dict(self, d: dict) -> None:
        saved = d.get("config", {})
        for key in ("obs_dim", "n_actions", "hidden"):
            if saved.get(key, getattr(self.cfg, key)) != getattr(self.cfg, key):
                raise ValueError(f"checkpoint {key}={saved[key]} differs from this agent's {getattr(self.cfg, key)}")
        if len(d["networks"]) != len(self.nets):
            raise ValueError(f"checkpoint has {len(d['networks'])} networks, this agent {len(self.nets)}")
        for net, sd in zip(self.nets, d["networks"]):
            net.load_state_dict(sd)
        self.optimizer.load_state_dict(d["optimizer"])
        self.gen.set_state(d["generator"])
