"""RELED's hybrid expert-agent PPO (HPO module, RELED paper, Sec. III-E): the masked PPO plus an expert critic V^e,
Eq. 26 returns on expert demonstrations, and the alpha-weighted Eqs. 27-31 update."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from agent_node.learners.ppo import MaskedPPO, Trajectory, mlp
from agent_node.learners.settings import HybridPPOConfig


def preprocess(obs: np.ndarray, n_junctions: int, n_actions: int = 4) -> np.ndarray:
    """docs/reled.md, RL-4: junction IDs (entries 0, 1 and the last n_actions) / (n_junctions - 1); -1 padding and
    scores kept."""
    x = np.array(obs, dtype=np.float32)  # copy
    if x.ndim == 0 or x.shape[-1] < 2 + n_actions:
        raise ValueError(f"observation last dim must be >= {2 + n_actions}, got shape {x.shape}")
    d = x.shape[-1]
    cols = [0, 1, *range(d - n_actions, d)]
    ids = x[..., cols]
    x[..., cols] = np.where(ids < 0, -1.0, ids / max(n_junctions - 1, 1))
    return x


class HybridPPO(MaskedPPO):
    """One vehicle agent: policy pi, agent critic V^a (the masked PPO's critic), expert critic V^e, all fed
    preprocessed observations. A demonstration's Trajectory has terminated=True on arrival."""

    cfg: HybridPPOConfig

    def __init__(self, config: HybridPPOConfig | None = None):
        super().__init__(config or HybridPPOConfig())

    def build_networks(self) -> tuple[nn.Module, ...]:
        policy, critic = super().build_networks()
        self.critic_expert = mlp(self.cfg.obs_dim, self.cfg.hidden, 1, 1.0)
        return (policy, critic, self.critic_expert)

    def _obs(self, obs: np.ndarray) -> torch.Tensor:
        if not self.cfg.junction_ids:
            return super()._obs(obs)
        return torch.from_numpy(preprocess(obs, self.cfg.n_junctions, self.cfg.n_actions))

    def update(self, agent_trajs: list[Trajectory], expert_trajs: list[Trajectory], alpha: float) -> dict:
        """One HPO step: maximise alpha L^a + (1 - alpha) L^e + beta H(agent obs) and fit V^a, V^e by MSE (Eq. 27).

        Minibatches of cfg.minibatch run over the agent data for cfg.update_epochs epochs, each paired with an
        expert minibatch of the same size drawn from a cycling shuffled expert index. With no expert data or
        alpha == 1 this is the masked PPO's update and V^e is untouched. With no agent data the epochs run over the
        expert data alone: policy loss -(1 - alpha) L^e, V^e fitted, no entropy term, V^a untouched.
        Stats are minibatch means; policy_loss is -(objective incl. entropy); approx_kl / clipfrac are measured on
        the agent data (expert data when there is no agent data); n_expert = 0 when the expert part was skipped.
        """
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        cfg = self.cfg
        A = self._dataset(list(agent_trajs), self.critic, cfg.norm_adv)
        E = self._dataset(list(expert_trajs), self.critic_expert, cfg.norm_expert_adv) if alpha < 1.0 else None
        keys = ("policy_loss", "value_loss_agent", "value_loss_expert", "entropy", "approx_kl", "clipfrac")
        stats = {
            **dict.fromkeys(keys, 0.0),
            "alpha": float(alpha),
            "n_agent": A["n"] if A else 0,
            "n_expert": E["n"] if E else 0,
        }
        if A is None and E is None:
            return stats
        lead = A if A is not None else E
        mb = cfg.minibatch or lead["n"]
        e_perm, e_pos = torch.empty(0, dtype=torch.long), 0

        def expert_batch() -> torch.Tensor:
            nonlocal e_perm, e_pos
            parts, need = [], min(mb, E["n"])
            while need:
                if e_pos == len(e_perm):
                    e_perm, e_pos = torch.randperm(E["n"], generator=self.gen), 0
                take = e_perm[e_pos : e_pos + need]
                parts.append(take)
                e_pos, need = e_pos + len(take), need - len(take)
            return torch.cat(parts)

        sums, count = dict.fromkeys(keys, 0.0), 0
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(lead["n"], generator=self.gen)
            for start in range(0, lead["n"], mb):
                idx = perm[start : start + mb]
                loss = torch.zeros(())
                objective = torch.zeros(())
                if A is not None:
                    obj_a, ent, diag = self._surrogate(A, idx)
                    v_a = self._value_loss(self.critic, A, idx)
                    objective = objective + alpha * obj_a + cfg.beta * ent
                    loss = loss + cfg.vf_coef * v_a
                    sums["value_loss_agent"] += v_a.item()
                    sums["entropy"] += ent.item()
                if E is not None:
                    e_idx = idx if A is None else expert_batch()
                    obj_e, _, diag_e = self._surrogate(E, e_idx)
                    v_e = self._value_loss(self.critic_expert, E, e_idx)
                    objective = objective + (1.0 - alpha) * obj_e
                    loss = loss + cfg.vf_coef * v_e
                    sums["value_loss_expert"] += v_e.item()
                    if A is None:
                        diag = diag_e
                self._step(loss - objective)
                sums["policy_loss"] -= objective.item()
                sums["approx_kl"] += diag["approx_kl"]
                sums["clipfrac"] += diag["clipfrac"]
                count += 1
        stats.update({k: v / count for k, v in sums.items()})
        return stats
