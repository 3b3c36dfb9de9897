"""DTW distance and the hybrid-loss weight alpha = exp(-(k/K) * D_DTW) (RELED paper, Eq. 30; docs/reled.md, RL-11,
RL-12; the RL labels below are that file's)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Union

import numpy as np

from agent_node.learners.settings import ENTROPY_BETA

GroundDistance = Union[Literal["euclidean", "sqeuclidean", "manhattan"], Callable[[np.ndarray, np.ndarray], float]]
AlphaMode = Literal["paper", "fixed_expert", "fixed_agent"]

DTW_SCALE_DEFAULT = 1.0  # RL-11: raw metre-scale coordinate DTW, divisor 1.0
FIXED_WEIGHTS = (0.2, 0.5)  # ablations RELED-alpha_0.2 / alpha_0.5 (RELED paper, Sec. V-E, Table IV)


def _as_2d(seq: Sequence | np.ndarray) -> np.ndarray:
    """A sequence of scalars (T,) or vectors (T, d) as a float array of shape (T, d)."""
    arr = np.asarray(seq, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise ValueError(f"expected a non-empty sequence of scalars or vectors, got shape {arr.shape}")
    return arr


def cost_matrix(a: Sequence | np.ndarray, b: Sequence | np.ndarray, dist: GroundDistance = "euclidean") -> np.ndarray:
    """Local costs c[i, j] = dist(a_i, b_j); default Euclidean in metres (RL-11)."""
    x, y = _as_2d(a), _as_2d(b)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"dimension mismatch: {x.shape[1]} vs {y.shape[1]}")
    diff = x[:, None, :] - y[None, :, :]
    if dist == "euclidean":
        return np.sqrt(np.sum(diff * diff, axis=-1))
    if dist == "sqeuclidean":
        return np.sum(diff * diff, axis=-1)
    if dist == "manhattan":
        return np.sum(np.abs(diff), axis=-1)
    if callable(dist):
        return np.array([[float(dist(xi, yj)) for yj in y] for xi in x])
    raise ValueError(f"unknown ground distance {dist!r}")


def dtw_distance(a: Sequence | np.ndarray, b: Sequence | np.ndarray, dist: GroundDistance = "euclidean") -> float:
    """Classic unconstrained DTW: the sum of local costs along the optimal warping path (RL-11).

    Steps (i-1, j), (i, j-1), (i-1, j-1); endpoints fixed at (0, 0) and (len(a)-1, len(b)-1); no window,
    no length normalisation (matches `dtaidistance`/`dtw-python` with the same local cost and step pattern).
    """
    c = cost_matrix(a, b, dist)
    n, m = c.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        row, prev = acc[i], acc[i - 1]
        for j in range(1, m + 1):
            row[j] = c[i - 1, j - 1] + min(prev[j], row[j - 1], prev[j - 1])
    return float(acc[n, m])


def junction_xy_sequence(decision_junctions: Sequence, destination, coords: Mapping) -> np.ndarray:
    """Representation `junction_xy` (RL-11): (x, y) of each decision junction, then the destination."""
    nodes = list(decision_junctions) + [destination]
    return np.array([tuple(coords[v]) for v in nodes], dtype=float).reshape(len(nodes), 2)


def normalise_dtw(raw: float, scale: float = DTW_SCALE_DEFAULT) -> float:
    """D_DTW / dtw_scale (RL-11: default scale 1.0, i.e. the literal raw metre-scale DTW)."""
    if scale <= 0:
        raise ValueError("dtw_scale must be > 0")
    return float(raw) / scale


def agent_dtw(
    agent_episodes: Sequence[Sequence | np.ndarray],
    expert: Sequence | np.ndarray,
    complete: Sequence[bool] | None = None,
    dist: GroundDistance = "euclidean",
    scale: float = DTW_SCALE_DEFAULT,
) -> float | None:
    """D_DTW(tau^{a,i}, tau^{e,i}) (Eq. 30): mean DTW over agent i's episodes in the epoch vs its expert sequence.

    RL-11: complete episodes only; all (partial) episodes if no complete one exists. None if no episodes.
    """
    eps = list(agent_episodes)
    if not eps:
        return None
    flags = [True] * len(eps) if complete is None else list(complete)
    if len(flags) != len(eps):
        raise ValueError("complete flags must match the episodes")
    chosen = [e for e, f in zip(eps, flags) if f] or eps
    return normalise_dtw(float(np.mean([dtw_distance(e, expert, dist) for e in chosen])), scale)


def expert_weight(dtw: float | None, k: int, K: int, mode: AlphaMode = "paper", fixed: float | None = None) -> float:
    """alpha, the AGENT-loss weight of Eq. 30: L_mix = alpha L^a + (1 - alpha) L^e.

    - mode "paper": alpha = exp(-(k/K) * dtw) (Eq. 30, literal; the RL-11 default). dtw=None (no valid
      expert trajectory for the agent) gives alpha = 1, a pure agent loss (RL-1, RL-10).
    - mode "fixed_expert": the ablation as a fixed EXPERT weight w_e = fixed in {0.2, 0.5}, alpha = 1 - w_e
      (RL-12, following the ablation text).
    - mode "fixed_agent": the literal reading, alpha = fixed (RL-12).
    """
    if mode == "paper":
        if dtw is None:
            return 1.0
        if dtw < 0 or K <= 0 or k < 0:
            raise ValueError("need dtw >= 0, K > 0, k >= 0")
        return float(np.exp(-(k / K) * dtw))
    if fixed is None or not 0.0 <= fixed <= 1.0:
        raise ValueError(f"mode {mode!r} needs fixed in [0, 1], e.g. one of {FIXED_WEIGHTS}")
    if mode == "fixed_expert":
        return 1.0 - float(fixed)
    if mode == "fixed_agent":
        return float(fixed)
    raise ValueError(f"unknown alpha mode {mode!r}")


def hybrid_objective(
    l_agent: float, l_expert: float, entropy: float, alpha: float, beta: float = ENTROPY_BETA
) -> float:
    """L = alpha L^a + (1 - alpha) L^e + beta H (Eqs. 30-31), an objective to MAXIMISE; beta 0.01 (RL-13)."""
    return float(alpha * l_agent + (1.0 - alpha) * l_expert + beta * entropy)
