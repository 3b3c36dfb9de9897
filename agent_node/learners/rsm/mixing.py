"""RSM regulation: the A+ accept test (eq. 19), the rank-1-Fisher mixing weight (Thm 2, eq. 20) and the mix (eq. 10)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, TypeVar

import numpy as np
import torch

from agent_node.learners.settings import GAMMA

# Equation, theorem, table and algorithm numbers are the RSM-MASAC paper's; R-A labels: docs/rsm_masac.md.
ZETA_CAP = 0.8  # zeta <= 0.8 (the reference code; R-A2)
SAFETY = 0.99  # zeta = s * zeta_max, "marginally below" the bound (R-A2; s = 1 is the code)
IS_EPS = 1e-5  # importance-weight denominator epsilon (the reference code; R-A4)
IS_CLIP_SUGGESTED = 10.0  # optional |ratio| clip (R-A4); off by default (paper: no clip)
LOGP_CLAMP_CODE = (-20.0, 0.0)  # code-compat log-prob clamp for pi~ and pi in eq. 19 (R-A3)
C_FLOOR = 1e-8  # guard C > 0 (R-A5)

ZetaRule = Literal["thm2", "strict"]
EpsRule = Literal["abs", "code"]
Vec = TypeVar("Vec", np.ndarray, torch.Tensor)


def _f64(x) -> torch.Tensor:
    """float64 copy of a tensor, array or list (lists and arrays go through numpy float64, not torch's float32)."""
    return x.detach().to(torch.float64) if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, np.float64))


# ---------------------------------------------------------------------------------------------- densities
def gaussian_entropy(sigma: torch.Tensor) -> torch.Tensor:
    """Closed-form entropy 0.5 * log(2 pi e sigma^2) of the pre-tanh Gaussian: the code's H in eq. 19 (R-A3)."""
    return 0.5 * math.log(2.0 * math.pi * math.e) + torch.log(sigma)


# ---------------------------------------------------------------------------------------------- accept test
def advantage_terms(
    logp_ref,
    logp_cur,
    logp_behaviour,
    q_min,
    entropy_ref,
    entropy_cur,
    alpha: float,
    is_eps: float = IS_EPS,
    is_clip: float | None = None,
    squash: bool = False,
    logp_clamp: tuple[float, float] | None = None,
) -> torch.Tensor:
    """Per-sample integrand adv_m of eq. 19 (Sec. V-A2), float64 [M]:

        adv_m = (pi~(a_m|s_m) - pi(a_m|s_m)) / (pi_b(a_m|s_m) + is_eps) * min(Q1, Q2)(s_m, a_m)
                + alpha * (H(pi~(.|s_m)) - H(pi(.|s_m)))

    Inputs are [M] arrays/tensors: log-probs of the buffer actions under pi~ (replica), pi (current) and the stored
    behaviour policy, the min of agent i's online critics, the two entropies, and agent i's current alpha.
    The importance ratio follows the paper by default (no clip, no squash; R-A4); is_clip clamps it to
    [-is_clip, is_clip] (e.g. IS_CLIP_SUGGESTED), squash=True takes tanh(ratio) (older ZJUNICE code).
    logp_clamp=LOGP_CLAMP_CODE clamps log pi~ and log pi as the reference code does (code-compat only, R-A3).
    """
    lr, lc = _f64(logp_ref), _f64(logp_cur)
    if logp_clamp is not None:
        lr, lc = lr.clamp(*logp_clamp), lc.clamp(*logp_clamp)
    ratio = (lr.exp() - lc.exp()) / (_f64(logp_behaviour).exp() + is_eps)
    if is_clip is not None:
        ratio = ratio.clamp(-is_clip, is_clip)
    if squash:
        ratio = torch.tanh(ratio)
    return ratio * _f64(q_min) + alpha * (_f64(entropy_ref) - _f64(entropy_cur))


def policy_advantage(adv) -> float:
    """A+ = (1/M) sum_m adv_m, the Monte Carlo estimate of eq. 19."""
    return float(_f64(adv).mean())


def accept(a_plus: float) -> bool:
    """Mix the replica only if A+ > 0 (Theorem 2 condition 1, Corollary 1 condition 1; Alg. 2 line 7)."""
    return a_plus > 0.0


# ---------------------------------------------------------------------------------------------- mixing weight
def bound_constant(adv, gamma: float = GAMMA, eps_rule: EpsRule = "abs") -> float:
    """C = 2 eps gamma / (1 - gamma)^2 (eq. 15, Thm 2), floored at C_FLOOR.

    eps is estimated from the M terms: max_m |adv_m| by default (R-A5, the definition's |.|),
    or the signed max_m adv_m with eps_rule="code".
    """
    a = _f64(adv)
    eps = float(a.abs().max() if eps_rule == "abs" else a.max())
    return max(2.0 * eps * gamma / (1.0 - gamma) ** 2, C_FLOOR)


def batch_score(logp: torch.Tensor, params: Sequence[torch.Tensor]) -> torch.Tensor:
    """g = grad_theta (1/M) sum_m log pi_theta(a_m|s_m), the rank-1 FIM is F ~ g g^T (eq. 20; the paper's Sec. VI-C).

    logp [M] must still carry the graph to params (the actor's parameters()), at the actions the caller chose:
    drawn from pi_theta (eq. 20) or the buffer's (the reference code); the sign of g does not matter.
    """
    grads = torch.autograd.grad(logp.mean(), list(params), allow_unused=True)
    return torch.cat([(torch.zeros_like(p) if gr is None else gr).reshape(-1) for p, gr in zip(params, grads)]).detach()


def fisher_quadratic(g, delta) -> float:
    """q = (theta~ - theta)^T F (theta~ - theta) = (g^T delta)^2 for F = g g^T; no d x d matrix (R-A6)."""
    return float(torch.dot(_f64(g), _f64(delta))) ** 2


def zeta_bound(a_plus: float, c: float, q: float, rule: ZetaRule = "thm2") -> float:
    """Upper bound on zeta (R-A1; inf when q = 0).

    "thm2" (default, printed Theorem 2 and the later code): zeta_max = sqrt(2 A+ / (C q)).
    "strict" (self-consistent with eq. 18):               zeta_max = (A+ / C) sqrt(2 / q).
    """
    if q <= 0.0:
        return math.inf
    if rule == "thm2":
        return math.sqrt(2.0 * a_plus / (c * q))
    if rule == "strict":
        return a_plus / c * math.sqrt(2.0 / q)
    raise ValueError(f"unknown zeta rule {rule!r}")


def mixing_weight(
    a_plus: float, c: float, q: float, cap: float = ZETA_CAP, safety: float = SAFETY, rule: ZetaRule = "thm2"
) -> float:
    """zeta = min(cap, s * zeta_max) if A+ > 0 else 0 (Theorem 2, R-A2); NaN/inf (e.g. q = 0) gives cap."""
    if not accept(a_plus):
        return 0.0
    z = safety * zeta_bound(a_plus, c, q, rule)
    return cap if not math.isfinite(z) else min(cap, z)


def regulate(
    adv,
    g,
    delta,
    gamma: float = GAMMA,
    cap: float = ZETA_CAP,
    safety: float = SAFETY,
    rule: ZetaRule = "thm2",
    eps_rule: EpsRule = "abs",
) -> tuple[float, float, float | None]:
    """(A+, zeta, zeta_max) for one replica from its eq. 19 terms, g and delta = theta~ - theta (Alg. 2 lines
    6-10); zeta_max is Theorem 2's bound (inf when q = 0), None for a rejected replica.

    zeta = 0 means reject; the caller then mixes with mix(theta, theta~, zeta) only when zeta > 0.
    """
    a_plus = policy_advantage(adv)
    if not accept(a_plus):
        return a_plus, 0.0, None
    c, q = bound_constant(adv, gamma, eps_rule), fisher_quadratic(g, delta)
    return a_plus, mixing_weight(a_plus, c, q, cap, safety, rule), zeta_bound(a_plus, c, q, rule)


def mix(theta: Vec, theta_ref: Vec, w: float) -> Vec:
    """theta <- (1 - w) theta + w theta~, eq. 10 written as in the code so w = 0 and w = 1 are exact (dtype kept)."""
    return (1.0 - w) * theta + w * theta_ref
