"""Mean-field states mu_k(S_l) (Alternating-MARL paper, Def. 3.1): count vectors b >= 0 with sum k, in colex order."""

from __future__ import annotations

from functools import lru_cache
from math import comb

import numpy as np


def n_histograms(k: int, zones: int) -> int:
    """|mu_k(S_l)| = binom(k + zones - 1, zones - 1)."""
    return comb(k + zones - 1, zones - 1)


@lru_cache(maxsize=None)
def count_table(k: int, zones: int) -> np.ndarray:
    """Cached, read-only enumerate_counts(k, zones): block s = k - b_last holds the (zones-1)-part vectors of sum s."""
    if zones == 1:
        out = np.array([[k]], dtype=np.int64)
    else:
        out = np.concatenate(
            [
                np.column_stack([count_table(s, zones - 1), np.full(n_histograms(s, zones - 1), k - s)])
                for s in range(k + 1)
            ]
        )
    out.setflags(write=False)
    return out


def enumerate_counts(k: int, zones: int) -> np.ndarray:
    """All count vectors of mu_k(S_l) as an int64 array [B, zones]; row i has rank i (rank_counts is the inverse)."""
    return count_table(k, zones).copy()


@lru_cache(maxsize=None)
def _rank_columns(top: int, zones: int) -> tuple[np.ndarray, ...]:
    """cols[j][s] = binom(s + j, j + 1), s = 0..top: the term of prefix sum s at position j."""
    return tuple(np.array([comb(s + j, j + 1) for s in range(top + 1)], dtype=np.int64) for j in range(zones - 1))


def rank_counts(counts, k: int) -> np.ndarray:
    """Rank of count vectors [..., zones] summing to k (unchecked): sum_j binom(S_j + j, j + 1), S_j = b_0 + .. + b_j.

    This is the combinatorial number system for the 'bars' of stars-and-bars (colex order); int64 [...].
    """
    counts = np.asarray(counts)
    cols = _rank_columns(k, counts.shape[-1])
    prefix = np.zeros(counts.shape[:-1], dtype=np.int64)
    rank = np.zeros(counts.shape[:-1], dtype=np.int64)
    for j, col in enumerate(cols):
        prefix += counts[..., j]
        rank += np.take(col, prefix)
    return rank


def rescale_counts(counts, k: int) -> np.ndarray:
    """Map count vectors [..., zones] with any positive sum k' to the nearest vector summing to k (largest remainder).

    b_x k / k' is floored and the missing units go to the largest remainders, lowest zone first on ties; rows that
    already sum to k are returned unchanged. A row summing to 0 (a dispatcher that got no answers) has no nearest
    histogram: ValueError, the caller must handle that case (e.g. fall back to a default action).
    """
    counts = np.asarray(counts, dtype=np.int64)
    total = counts.sum(axis=-1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("rescale_counts: a count vector sums to 0; there is no histogram to rescale")
    floor, rem = np.divmod(counts * k, total)
    short = k - floor.sum(axis=-1, keepdims=True)  # 0 .. zones-1 units still to hand out
    order = np.argsort(-rem, axis=-1, kind="stable")  # largest remainder first, lowest index on ties
    place = np.argsort(order, axis=-1, kind="stable")  # position of each zone in that order
    return floor + (place < short)
