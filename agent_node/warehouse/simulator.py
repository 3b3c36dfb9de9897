"""The single-process vectorised warehouse simulator: the learners' generative model and the runs' ground truth.

It is the engine of evaluation sweeps, and a distributed run reproduces it step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from . import streams
from .model import WarehouseModel, cdf

# pi_g(s_g[E], counts[E, zones]) -> a_g[E]: the dispatcher acts on the counts of its k polled robots
GlobalPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]


def draw_polls(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    """k distinct robot indices, uniformly without replacement (the dispatcher's draw each step)."""
    return rng.choice(n, size=k, replace=False)


@dataclass
class Rollouts:
    """Results of a batch of episodes; the trajectory arrays are filled only when recorded."""

    returns: np.ndarray  # [E] discounted return
    rewards: np.ndarray  # [E, H] r(t) = r_g + mean_i r_l
    s_g: np.ndarray | None = None  # [E, H + 1]
    a_g: np.ndarray | None = None  # [E, H]
    polled: np.ndarray | None = None  # [E, H, k]
    s_l: np.ndarray | None = None  # [E, H + 1, n]
    r_l: np.ndarray | None = None  # [E, H, n]
    mode_hits: np.ndarray = field(default_factory=lambda: np.zeros(0))  # [E, H] a_g == mode of all robots


class Simulator:
    """n robots and a dispatcher that sees k of them per step, vectorised over episodes."""

    def __init__(self, model: WarehouseModel, n: int, seed: int):
        self.model, self.n, self.seed = model, n, seed

    def run(
        self, pi_g: GlobalPolicy, pi_l: np.ndarray, k: int, episodes: Sequence[int], horizon: int, record: bool = False
    ) -> Rollouts:
        """Roll out the given episodes (common random numbers: the same episode ids give the same draws)."""
        m, n, seed = self.model, self.n, self.seed
        if not 1 <= k <= n:
            raise ValueError(f"k must be in 1..n={n}, got {k}")
        eps = np.asarray(list(episodes), dtype=np.int64)
        E, robots = len(eps), np.arange(n)
        pi_l_cdf = cdf(np.asarray(pi_l, dtype=float))
        polls = [streams.generator(seed, int(e), streams.POLLS) for e in eps]
        s_g = m.initial_global(seed, eps)
        s_l = np.stack([m.initial_local(seed, int(e), robots) for e in eps])
        rewards = np.zeros((E, horizon))
        hits = np.zeros((E, horizon), dtype=bool)
        rec = {"s_g": [s_g], "a_g": [], "polled": [], "s_l": [s_l], "r_l": []} if record else None
        rows = np.arange(E)[:, None]
        for t in range(horizon):
            polled = np.stack([draw_polls(g, n, k) for g in polls])
            counts = zone_counts(s_l[rows, polled], m.zones)
            a_g = np.asarray(pi_g(s_g, counts), dtype=np.int64)
            s_g_next = m.global_step(seed, eps, t, s_g, a_g)
            _a_l, r_l, s_l_next = m.local_step(
                seed, eps[:, None], robots[None, :], t, s_l, s_g[:, None], pi_l_cdf, s_g_next[:, None]
            )
            rewards[:, t] = m.r_g[s_g, a_g] + r_l.mean(axis=1)
            hits[:, t] = a_g == zone_counts(s_l, m.zones).argmax(axis=1)
            if rec is not None:
                rec["a_g"].append(a_g)
                rec["polled"].append(polled)
                rec["r_l"].append(r_l)
                rec["s_g"].append(s_g_next)
                rec["s_l"].append(s_l_next)
            s_g, s_l = s_g_next, s_l_next
        returns = rewards @ (m.gamma ** np.arange(horizon))
        out = Rollouts(returns=returns, rewards=rewards, mode_hits=hits)
        if rec is not None:
            for key, seq in rec.items():
                setattr(out, key, np.stack(seq, axis=1))
        return out


def zone_counts(states: np.ndarray, zones: int) -> np.ndarray:
    """Count vectors over the last axis: [..., k] zone ids -> [..., zones] counts."""
    return (states[..., None] == np.arange(zones)).sum(axis=-2)
