"""G-LEARN (Alternating-MARL paper, Sec. 3.2): the dispatcher's best response to a fixed pi_l by value iteration
on S_g x mu_k(S_l) x A_g. A-labels: docs/alternating_marl.md."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from agent_node.warehouse.model import WarehouseModel

from .histograms import count_table, enumerate_counts, n_histograms, rank_counts, rescale_counts

TIE_TOL = 1e-9  # greedy a_g: lowest index among actions within TIE_TOL of the max
EXACT_MAX_HISTOGRAMS = 1001  # the exact kernel is dense [S_g, B, B]: k <= 10 at 5 zones
ONE_GATHER_MAX = 1 << 22  # sweeps of tables with nxt.size * |S_g| up to this gather V in one call, else per column
_STREAM = 0x474C  # "GL": tags the sample draws, rng = default_rng([seed, k, m, _STREAM])


# ---------------------------------------------------------------------------------------------- the policy
@dataclass(frozen=True, eq=False)
class TablePolicy:
    """The greedy dispatcher pi^(s_g, b) of Eqs. (4)/(17): actions[s_g, rank(b)], b the counts of k polled robots."""

    k: int
    zones: int  # |S_l|, the length of a count vector
    actions: np.ndarray  # int8 [|S_g|, B]

    def __post_init__(self):
        actions = np.array(self.actions, dtype=np.int8)
        if actions.ndim != 2 or actions.shape[1] != n_histograms(self.k, self.zones):
            raise ValueError(f"actions must be [S_g, {n_histograms(self.k, self.zones)}], got {actions.shape}")
        actions.setflags(write=False)
        object.__setattr__(self, "actions", actions)

    def __call__(self, s_g, counts) -> np.ndarray:
        """a_g[E] for s_g[E] and counts[E, zones]; counts not summing to k are rescaled (rescale_counts)."""
        counts = np.asarray(counts)
        if (counts.sum(axis=-1) != self.k).any():
            counts = rescale_counts(counts, self.k)
        return self.actions[np.asarray(s_g), rank_counts(counts, self.k)].astype(np.int64)

    @classmethod
    def tabulate(cls, k: int, zones: int, action_fn: Callable, zones_g: int | None = None) -> "TablePolicy":
        """Table of any dispatcher action_fn(s_g[N], counts[N, zones]) -> a_g[N] (e.g. 'stay', 'mode of sample')."""
        zones_g = zones if zones_g is None else zones_g
        b = enumerate_counts(k, zones)
        s_g = np.repeat(np.arange(zones_g), len(b))
        return cls(k, zones, np.asarray(action_fn(s_g, np.tile(b, (zones_g, 1)))).reshape(zones_g, len(b)))

    def save(self, path) -> None:
        with open(path, "wb") as fh:
            np.savez(fh, k=self.k, zones=self.zones, actions=self.actions)

    @classmethod
    def load(cls, path) -> "TablePolicy":
        with np.load(path, allow_pickle=False) as f:
            return cls(int(f["k"]), int(f["zones"]), f["actions"])


def greedy(q: np.ndarray) -> np.ndarray:
    """argmax over the last axis, lowest index among values within TIE_TOL of the max (A-3)."""
    return np.argmax(q >= q.max(axis=-1, keepdims=True) - TIE_TOL, axis=-1)


# ---------------------------------------------------------------------------------------------- the surrogate
def local_marginals(model: WarehouseModel, pi_l: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """r_pil[x, s_g] = sum_a pi_l r_l and P_pil[x, s_g, y] = sum_a pi_l P_l (the paper's Eq. 3)."""
    pi_l = np.asarray(pi_l, dtype=float)
    r_pil = np.einsum("xga,xga->xg", pi_l, model.r_l)
    p_pil = np.einsum("xga,xgay->xgy", pi_l, model.P_l)
    return r_pil, p_pil / p_pil.sum(axis=-1, keepdims=True)


def surrogate_reward(model: WarehouseModel, r_pil: np.ndarray, k: int) -> np.ndarray:
    """R[s_g, b, a_g] = r_g(s_g, a_g) + sum_x (b_x / k) r_pil(x, s_g), Eq. (3)."""
    mean_local = count_table(k, r_pil.shape[0]) @ r_pil / k  # [B, s_g]
    return model.r_g[:, None, :] + mean_local.T[:, :, None]


def _multinomial_pmf(c: int, p: np.ndarray) -> np.ndarray:
    """Multinomial(c, p) probabilities of the count vectors of mu_c, in rank order."""
    support = count_table(c, len(p))
    log_fact = np.concatenate([[0.0], np.cumsum(np.log(np.arange(1, c + 1)))])
    pmf = np.exp(log_fact[c] - log_fact[support].sum(axis=1)) * np.prod(p**support, axis=1)
    return pmf / pmf.sum()


def _multinomial_draws(rng: np.random.Generator, c: int, p: np.ndarray, size: int) -> np.ndarray:
    """size i.i.d. Multinomial(c, p) count vectors [size, len(p)].

    Dense groups (size >= support) draw how many samples hit each outcome, then shuffle the multiset: the same law
    as i.i.d. draws, about 10x cheaper than rng.multinomial per draw.
    """
    support = count_table(c, len(p))
    if size < len(support):
        return rng.multinomial(c, p, size=size)
    pick = np.repeat(np.arange(len(support)), rng.multinomial(size, _multinomial_pmf(c, p)))
    rng.shuffle(pick)
    return support[pick]


def sample_next_histograms(p_pil: np.ndarray, k: int, m: int, rng: np.random.Generator) -> np.ndarray:
    """nxt[s_g, l, rank(b)] = rank of b^l = sum_x Multinomial(b_x, P_pil(.|x, s_g)), l = 1..m (Eq. 10, A-2).

    b^l does not depend on a_g, so one set of m draws serves every a_g. Draws are grouped by (s_g, x, b_x).
    Layout [S_g, m, B] (int32): a sweep then gathers whole rows of V per l, which is cache-friendlier.
    """
    zones_l, zones_g = p_pil.shape[:2]
    counts = count_table(k, zones_l)
    nxt = np.empty((zones_g, m, len(counts)), dtype=np.int32)
    draws = np.empty((len(counts) * m, zones_l), dtype=np.int16)
    for g in range(zones_g):
        total = np.zeros((len(counts), m, zones_l), dtype=np.int16)
        for x in range(zones_l):
            order = np.argsort(counts[:, x], kind="stable")  # groups b_x = 0, 1, ..., k are contiguous
            start = 0
            for c, size in enumerate(np.bincount(counts[:, x], minlength=k + 1) * m):
                draws[start : start + size] = _multinomial_draws(rng, c, p_pil[x, g], size) if size else 0
                start += size
            total[order] += draws.reshape(len(counts), m, zones_l)
        nxt[g] = rank_counts(total, k).T
    return nxt


def exact_kernel(p_pil: np.ndarray, k: int) -> np.ndarray:
    """T[s_g, rank(b), rank(b')] = P(b' | b, s_g), the law behind Eq. (9): sum_x Multinomial(b_x, P_pil(.|x, s_g))."""
    zones_l, zones_g = p_pil.shape[:2]
    counts = count_table(k, zones_l)
    if len(counts) > EXACT_MAX_HISTOGRAMS:
        raise ValueError(f"exact estimator: {len(counts)} histograms > {EXACT_MAX_HISTOGRAMS}; use 'sampled'")
    kernel = np.zeros((zones_g, len(counts), len(counts)))
    for g in range(zones_g):
        for i, b in enumerate(counts):
            dist, size = np.ones(1), 0  # the law of the partial sum, over mu_size
            for x in np.flatnonzero(b):
                step = _multinomial_pmf(b[x], p_pil[x, g])
                sums = count_table(size, zones_l)[:, None, :] + count_table(b[x], zones_l)[None, :, :]
                size += b[x]
                dist = np.bincount(
                    rank_counts(sums, size).ravel(),
                    weights=np.outer(dist, step).ravel(),
                    minlength=n_histograms(size, zones_l),
                )
            kernel[g, i] = dist
    return kernel


# ---------------------------------------------------------------------------------------------- value iteration
@dataclass
class GLearnResult:
    policy: TablePolicy
    q: np.ndarray  # float32 [S_g, B, A_g]
    sweeps: int  # Bellman sweeps applied
    samples: int  # generative-model draws: one next histogram per (s_g, b, l); 0 for "exact"
    seconds: float  # wall time, sampling included
    residual: float  # ||Q^{t+1} - Q^t||_inf of the last sweep
    sample_seconds: float = 0.0  # of which: drawing the samples (or building the exact kernel)


def paper_sweeps(model: WarehouseModel, k: int) -> int:
    """T = ceil(ln(2 r~ / ((1 - gamma) eps)) / (1 - gamma)) with eps = 1/sqrt(k) (Lemma 4.3 / B.36)."""
    eps = 1.0 / math.sqrt(k)
    return math.ceil(math.log(2 * model.r_max / ((1 - model.gamma) * eps)) / (1 - model.gamma))


def g_learn(
    model: WarehouseModel,
    pi_l: np.ndarray,
    k: int,
    *,
    m: int = 30,
    seed: int = 0,
    tol: float = 1e-3,
    max_sweeps: int | None = None,
    estimator: Literal["sampled", "exact"] = "sampled",
    q_init: np.ndarray | None = None,
) -> GLearnResult:
    """Best response of the dispatcher to pi_l in the k-robot mean-field surrogate (G-LEARN, Sec. 3.2).

    "sampled": iterate the fixed empirical operator (Eq. 10 with A-2's exact expectation over s_g')
        Q(s_g, b, a) = R(s_g, b, a) + gamma sum_s' P_g(s'|s_g, a) (1/m) sum_l max_a' Q(s', b^l, a'),
      the m histograms b^l per (s_g, b) drawn once with default_rng([seed, k, m, _STREAM]).
    "exact": the adapted operator T_k of Eq. (9) with the exact law of b' (k <= 10 at 5 zones; m and seed unused),
      iterated in float64 so that tol 1e-6 is reachable; "sampled" iterates in float32.
    Stops when ||Q^{t+1} - Q^t||_inf <= tol or after max_sweeps (None: paper_sweeps), whichever comes first.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    start = time.perf_counter()
    zones_l, zones_g = model.zones, model.zones
    r_pil, p_pil = local_marginals(model, pi_l)
    dtype = np.float32 if estimator == "sampled" else np.float64  # "exact" can reach tol 1e-6 (the Nash gap's, A-6)
    # internal layout [s_g, a_g, b]: V = max over axis 1 is then the [s', b] table the gather reads row by row
    reward = np.ascontiguousarray(surrogate_reward(model, r_pil, k).transpose(0, 2, 1), dtype=dtype)
    if estimator == "sampled":
        nxt = sample_next_histograms(p_pil, k, m, np.random.default_rng([seed, k, m, _STREAM]))
        samples = nxt.size

        def expected_v(v):  # E[s_g, s', b] = (1/m) sum_l v[s', b^l]
            if nxt.size * len(v) <= ONE_GATHER_MAX:  # small table: one gather [s', s_g, m, b]
                return np.take(v, nxt, axis=1).mean(axis=2).transpose(1, 0, 2)
            e = np.zeros((zones_g,) + v.shape, dtype=np.float32)
            for g, s_next in np.ndindex(zones_g, v.shape[0]):  # one column of V at a time: it stays in cache
                for draw in nxt[g]:
                    e[g, s_next] += np.take(v[s_next], draw)
            return e / dtype(m)
    elif estimator == "exact":
        kernel_t = np.ascontiguousarray(exact_kernel(p_pil, k).transpose(0, 2, 1))  # [s_g, b', b]
        samples = 0

        def expected_v(v):  # E[s_g, s', b] = sum_b' P(b' | b, s_g) v[s', b']
            return v @ kernel_t
    else:
        raise ValueError(f"unknown estimator {estimator!r}")
    sample_seconds = time.perf_counter() - start

    if model.local_transition == "next":  # b' is drawn with s_g' (the robots' move reads s_g(t + 1)): E[s', s', b]
        expected_now, diag = expected_v, np.arange(zones_g)

        def expected_v(v):  # noqa: F811 - the same estimate, read at s_g = s'
            return np.broadcast_to(expected_now(v)[diag, diag][None], (zones_g,) + v.shape)

    q = np.zeros_like(reward) if q_init is None else np.ascontiguousarray(np.transpose(q_init, (0, 2, 1)), dtype)
    if q.shape != reward.shape:
        raise ValueError(f"q_init must be {reward.transpose(0, 2, 1).shape}, got {np.shape(q_init)}")
    p_g, gamma = model.P_g.astype(dtype), dtype(model.gamma)  # P_g[s_g, a_g, s']
    max_sweeps = paper_sweeps(model, k) if max_sweeps is None else max_sweeps
    sweeps, residual = 0, math.inf
    while sweeps < max_sweeps and residual > tol:
        q_next = reward + gamma * np.einsum("gas,gsb->gab", p_g, expected_v(q.max(axis=1)))  # Eq. (10) or (9)
        residual = float(np.abs(q_next - q).max())
        q, sweeps = q_next, sweeps + 1

    policy = TablePolicy(k, zones_l, greedy(q.transpose(0, 2, 1)))  # ties judged at full precision
    q = np.ascontiguousarray(q.transpose(0, 2, 1), dtype=np.float32)  # [s_g, b, a_g]
    return GLearnResult(policy, q, sweeps, samples, time.perf_counter() - start, residual, sample_seconds)
