"""Empirical Nash gap of a policy pair and the baseline dispatchers (docs/alternating_marl.md, A-6)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from agent_node.warehouse.model import WarehouseModel
from agent_node.warehouse.simulator import GlobalPolicy, Simulator

from .histograms import rescale_counts
from .l_learn import N_ACTIONS, l_ps


@dataclass
class GapEstimate:
    """max(0, V(deviation) - V(incumbent)) from paired rollouts, with a bootstrap CI of that gap."""

    player: str  # "g" or "l"
    gap: float
    diff: float  # mean paired difference deviation - incumbent (may be negative)
    ci: tuple[float, float]  # percentile bootstrap CI of the gap (clipped at 0)
    value: float  # V(incumbent pair) on the evaluation set
    deviation_value: float
    seconds: float
    deviation: Any = None  # the best-response policy found (pi_g callable or pi_l table)
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class NashGap:
    global_: GapEstimate
    local: GapEstimate

    @property
    def gap(self) -> float:
        return max(self.global_.gap, self.local.gap)


def paired_gap(
    deviation: np.ndarray, incumbent: np.ndarray, *, level: float = 0.95, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, tuple[float, float]]:
    """(gap, mean diff, CI): gap = max(0, mean of deviation - incumbent) over paired episodes; CI by the
    percentile bootstrap over episodes."""
    d = np.asarray(deviation, dtype=float) - np.asarray(incumbent, dtype=float)
    mean = float(d.mean())
    idx = np.random.default_rng(seed).integers(0, d.size, size=(n_boot, d.size))
    boot = d[idx].mean(axis=1)
    lo, hi = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
    return max(0.0, mean), mean, (max(0.0, float(lo)), max(0.0, float(hi)))


def evaluation_returns(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    pi_l: np.ndarray,
    k: int,
    *,
    n: int,
    seed: int,
    rollouts: int,
    horizon: int,
) -> np.ndarray:
    """Per-episode discounted returns on the evaluation set (seed, episodes 0..rollouts-1)."""
    return Simulator(model, n, seed).run(pi_g, pi_l, k, np.arange(rollouts), horizon).returns


def global_gap(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    pi_l: np.ndarray,
    k: int,
    *,
    n: int,
    m: int = 300,
    tol: float = 1e-4,
    max_sweeps: int | None = 2000,
    estimator: str = "sampled",
    seed: int = 12345,
    q_init: np.ndarray | None = None,
    eval_seed: int = 2,
    rollouts: int = 50,
    horizon: int = 100,
    g_learn_fn: Callable | None = None,
    level: float = 0.95,
) -> GapEstimate:
    """Global gap: a strong G-LEARN best response to pi_l (large m, VI run to tol, not capped at the paper's sweep
    count; Q is float32, so tol much below ~3e-5 cannot be met) against pi_g, paired rollouts. A lower bound on
    the true gap (restricted class, approximate best response); g_learn's estimator="exact" for k <= 10."""
    if g_learn_fn is None:
        from .g_learn import g_learn as g_learn_fn
    t0 = time.perf_counter()
    res = g_learn_fn(model, pi_l, k, m=m, seed=seed, tol=tol, max_sweeps=max_sweeps, estimator=estimator, q_init=q_init)
    base = evaluation_returns(model, pi_g, pi_l, k, n=n, seed=eval_seed, rollouts=rollouts, horizon=horizon)
    dev = evaluation_returns(model, res.policy, pi_l, k, n=n, seed=eval_seed, rollouts=rollouts, horizon=horizon)
    gap, diff, ci = paired_gap(dev, base, level=level, seed=seed)
    return GapEstimate(
        "g",
        gap,
        diff,
        ci,
        float(base.mean()),
        float(dev.mean()),
        time.perf_counter() - t0,
        deviation=res.policy,
        info={
            "m": m,
            "tol": tol,
            "sweeps": int(res.sweeps),
            "samples": int(res.samples),
            "residual": float(res.residual),
        },
    )


def local_gap(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    pi_l: np.ndarray,
    k: int,
    *,
    n: int,
    restarts: int = 2,
    sweeps: int = 4,
    ps_rollouts: int = 16,
    ps_horizon: int = 50,
    ps_n: int | None = None,
    seed: int = 12345,
    eval_seed: int = 2,
    rollouts: int = 50,
    horizon: int = 100,
    level: float = 0.95,
) -> GapEstimate:
    """Local gap: L-PS started from argmax(pi_l), from the MFVI greedy table and from `restarts` random tables
    (all on the same training episodes); the start with the best training value is the deviation (selected on
    training episodes, so the evaluation-set gap carries no selection bias), judged on the evaluation set."""
    t0 = time.perf_counter()
    z = model.zones
    rng = np.random.default_rng([seed, 7])
    starts: list[Any] = [None, "mfvi"] + [rng.integers(0, N_ACTIONS, size=(z, z)) for _ in range(restarts)]
    runs = [
        l_ps(
            model,
            pi_g,
            k,
            n=ps_n or n,
            pi_l=pi_l,
            start=s,
            sweeps=sweeps,
            rollouts=ps_rollouts,
            horizon=ps_horizon,
            seed=seed,
        )
        for s in starts
    ]
    best = max(runs, key=lambda r: r.value)
    base = evaluation_returns(model, pi_g, pi_l, k, n=n, seed=eval_seed, rollouts=rollouts, horizon=horizon)
    dev = evaluation_returns(model, pi_g, best.pi_l, k, n=n, seed=eval_seed, rollouts=rollouts, horizon=horizon)
    gap, diff, ci = paired_gap(dev, base, level=level, seed=seed)
    return GapEstimate(
        "l",
        gap,
        diff,
        ci,
        float(base.mean()),
        float(dev.mean()),
        time.perf_counter() - t0,
        deviation=best.pi_l,
        info={"train_values": [r.value for r in runs], "evaluations": sum(r.evaluations for r in runs)},
    )


def nash_gap(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    pi_l: np.ndarray,
    k: int,
    *,
    n: int,
    global_kwargs: dict | None = None,
    local_kwargs: dict | None = None,
) -> NashGap:
    """NashGap = max(global gap, local gap), both on the same evaluation set by default."""
    return NashGap(
        global_gap(model, pi_g, pi_l, k, n=n, **(global_kwargs or {})),
        local_gap(model, pi_g, pi_l, k, n=n, **(local_kwargs or {})),
    )


# ---------------------------------------------------------------------------------------------- baselines
class UniformRandomDispatcher:
    """a_g ~ U(A_g) each step, from its own generator (reproducible for a given seed and call sequence)."""

    def __init__(self, zones: int, seed: int = 0):
        self.zones, self.rng = zones, np.random.default_rng(seed)

    def __call__(self, s_g: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return self.rng.integers(0, self.zones, size=np.shape(s_g))


class ModeOfSample:
    """a_g = argmax_x b_x of the polled counts (lowest zone on ties). With k = n it is the true mode."""

    def __call__(self, s_g: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.asarray(counts).argmax(axis=-1)


class RescaledDispatcher:
    """Full-information wrapper: maps counts of any total N to a count vector of total k_inner (largest-remainder
    rounding of counts * k_inner / N) and asks `inner`, a policy trained on k_inner-robot histograms. Evaluate
    it with k = n so the counts it sees are the full histogram; it then acts on the full population's empirical
    distribution at resolution 1/k_inner."""

    def __init__(self, inner: GlobalPolicy, k_inner: int):
        self.inner, self.k_inner = inner, k_inner

    def __call__(self, s_g: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return self.inner(s_g, rescale_counts(counts, self.k_inner))


def full_information_dispatcher(
    model: WarehouseModel, pi_l: np.ndarray, n: int, *, k_max: int = 50, g_learn_fn: Callable | None = None, **g_kwargs
) -> tuple[GlobalPolicy, int]:
    """The welfare reference of A-6: a dispatcher that sees all n robots. Returns (policy, k_eval = n).
    If n <= k_max it is G-LEARN trained on full n-robot histograms (the exact full-information best response of
    the G-LEARN class); otherwise G-LEARN trained at k = k_max, applied to the full histogram rescaled to k_max
    robots (RescaledDispatcher): a proxy, since G-LEARN at k = n = 1000 (binom(1004, 4) histograms) is infeasible.
    This measures the value of information, not the Nash gap. ModeOfSample() with k = n is the cheap heuristic."""
    if g_learn_fn is None:
        from .g_learn import g_learn as g_learn_fn
    k_train = min(n, k_max)
    policy = g_learn_fn(model, pi_l, k_train, **g_kwargs).policy
    return (policy if k_train == n else RescaledDispatcher(policy, k_train)), n


@dataclass
class DispatcherScore:
    value: float  # mean discounted return
    stderr: float
    mode_accuracy: float  # fraction of steps with a_g == mode of all n robots
    returns: np.ndarray


def score_dispatchers(
    model: WarehouseModel,
    pi_l: np.ndarray,
    dispatchers: dict[str, tuple[GlobalPolicy, int]],
    *,
    n: int,
    seed: int = 2,
    rollouts: int = 50,
    horizon: int = 100,
) -> dict[str, DispatcherScore]:
    """Each named (pi_g, k) on the same evaluation episodes (paired across dispatchers)."""
    sim, out = Simulator(model, n, seed), {}
    for name, (pi_g, k) in dispatchers.items():
        r = sim.run(pi_g, pi_l, k, np.arange(rollouts), horizon)
        out[name] = DispatcherScore(
            float(r.returns.mean()),
            float(r.returns.std(ddof=1) / np.sqrt(rollouts)),
            float(r.mode_hits.mean()),
            r.returns,
        )
    return out
