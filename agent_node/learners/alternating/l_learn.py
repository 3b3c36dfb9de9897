"""L-LEARN: the shared local best response to a fixed dispatcher policy (Alternating-MARL paper, Sec. 3.2;
docs/alternating_marl.md, A-5)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from agent_node.warehouse.model import WarehouseModel, deterministic_local_policy
from agent_node.warehouse.simulator import GlobalPolicy, Simulator

N_ACTIONS = 3


@dataclass
class LLearnResult:
    """A proposed shared local policy and what it cost."""

    pi_l: np.ndarray  # [s_l, s_g, a_l] table (one-hot for a deterministic table)
    actions: np.ndarray  # [s_l, s_g] greedy action table
    solver: str
    value: float  # "ps": V of pi_l on the training episodes; "mfvi": nan (no welfare estimate)
    start_value: float  # "ps": V of the starting table on the same episodes
    evaluations: int  # n-agent rollout batches run ("ps"); 0 for "mfvi"
    sweeps: int
    changes: int  # entries changed ("ps")
    seconds: float
    history: list[float] = field(default_factory=list)  # "ps": V after each sweep


def l_learn(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    k: int,
    *,
    n: int,
    solver: Literal["ps", "mfvi"] = "ps",
    pi_l: np.ndarray | None = None,
    **kwargs,
) -> LLearnResult:
    """Best response of the shared pi_l to pi_g; "ps" maximises the common welfare V in the n-agent simulator."""
    if solver == "ps":
        return l_ps(model, pi_g, k, n=n, pi_l=pi_l, **kwargs)
    if solver == "mfvi":
        return l_mfvi(model, pi_g, k, pi_l=pi_l, **kwargs)
    raise ValueError(f"unknown L-LEARN solver {solver!r}")


def l_ps(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    k: int,
    *,
    n: int,
    pi_l: np.ndarray | None = None,
    start: np.ndarray | str | None = None,
    sweeps: int = 3,
    rollouts: int = 16,
    horizon: int = 50,
    seed: int = 0,
    min_gain: float = 0.0,
    shuffle: bool = True,
) -> LLearnResult:
    """L-PS: coordinate ascent over the deterministic table a_l[s_l, s_g], all robots switching together.

    Every candidate (one entry changed) is scored by the paired difference of discounted returns against the
    incumbent on one fixed set of `rollouts` episodes of the n-agent simulator (common random numbers, simulator
    seed `seed`); a change is kept when the mean difference exceeds `min_gain`. Each entry tries its 2 other
    actions, so a sweep costs at most 2 |S_l| |S_g| rollout batches; it stops after a sweep with no change or
    after `sweeps` sweeps. Start: `start` (an action table, or "mfvi" for the MFVI greedy table), else the
    argmax of `pi_l` (lowest index on ties: uniform -> all stay), else all stay.
    """
    t0 = time.perf_counter()
    z = model.zones
    table = _start_table(model, pi_g, k, start, pi_l)
    sim, episodes = Simulator(model, n, seed), np.arange(rollouts)

    def returns(actions: np.ndarray) -> np.ndarray:
        return sim.run(pi_g, deterministic_local_policy(actions), k, episodes, horizon).returns

    cur = returns(table)
    start_value, evaluations, changes, history, done = float(cur.mean()), 1, 0, [], 0
    order_rng = np.random.default_rng([seed, 0x5EED])
    entries = [(s_l, s_g) for s_g in range(z) for s_l in range(z)]
    for _ in range(sweeps):
        done += 1
        changed = False
        for idx in order_rng.permutation(len(entries)) if shuffle else range(len(entries)):
            s_l, s_g = entries[idx]
            best_gain, best_a, best_ret = min_gain, None, None
            for a in range(N_ACTIONS):
                if a == table[s_l, s_g]:
                    continue
                cand = table.copy()
                cand[s_l, s_g] = a
                ret = returns(cand)
                evaluations += 1
                gain = float((ret - cur).mean())
                if gain > best_gain:
                    best_gain, best_a, best_ret = gain, a, ret
            if best_a is not None:
                table[s_l, s_g], cur, changed = best_a, best_ret, True
                changes += 1
        history.append(float(cur.mean()))
        if not changed:
            break
    return LLearnResult(
        pi_l=deterministic_local_policy(table),
        actions=table,
        solver="ps",
        value=float(cur.mean()),
        start_value=start_value,
        evaluations=evaluations,
        sweeps=done,
        changes=changes,
        seconds=time.perf_counter() - t0,
        history=history,
    )


def l_mfvi(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    k: int,
    *,
    pi_l: np.ndarray | None = None,
    mc_draws: int = 200,
    mc_seed: int = 999,
    power_iters: int = 50,
    max_iters: int = 100,
    tol: float = 1e-6,
    extract: Literal["softmax", "greedy"] = "softmax",
    tau_scale: float = 3.0,
    tau_min: float = 0.3,
) -> LLearnResult:
    """The released code's L-LEARN (its local_agent_optimizer.py): value iteration on (s_g, s_l) with unscaled r_l,
    r_g ignored, the dispatcher replaced by the mean-field kernel P_g_eff(s_g'|s_g) = E_{b~Mult(k, mu)}
    P_g(s_g'|s_g, pi_g(s_g, b)) (mu: stationary law of the population chain under pi_l, s_g averaged
    uniformly), then softmax extraction with tau = max(tau_min, (max_a Q - min_a Q) / tau_scale)."""
    t0 = time.perf_counter()
    q, iters = mfvi_q(
        model,
        pi_g,
        k,
        pi_l=pi_l,
        mc_draws=mc_draws,
        mc_seed=mc_seed,
        power_iters=power_iters,
        max_iters=max_iters,
        tol=tol,
    )
    actions = q.argmax(axis=-1)
    if extract == "greedy":
        table = deterministic_local_policy(actions)
    else:
        tau = np.maximum(tau_min, (q.max(-1) - q.min(-1)) / tau_scale)[..., None]
        e = np.exp((q - q.max(-1, keepdims=True)) / tau)
        table = e / e.sum(-1, keepdims=True)
    return LLearnResult(
        pi_l=table,
        actions=actions,
        solver="mfvi",
        value=float("nan"),
        start_value=float("nan"),
        evaluations=0,
        sweeps=iters,
        changes=0,
        seconds=time.perf_counter() - t0,
    )


def mfvi_q(
    model: WarehouseModel,
    pi_g: GlobalPolicy,
    k: int,
    *,
    pi_l: np.ndarray | None = None,
    mc_draws: int = 200,
    mc_seed: int = 999,
    power_iters: int = 50,
    max_iters: int = 100,
    tol: float = 1e-6,
) -> tuple[np.ndarray, int]:
    """Q[s_l, s_g, a_l] of the code's (s_g, s_l) value iteration, and the iterations run."""
    z, gamma = model.zones, model.gamma
    pi_l = np.full((z, z, N_ACTIONS), 1.0 / N_ACTIONS) if pi_l is None else np.asarray(pi_l, dtype=float)
    kernel = np.einsum("xga,xgay->xy", pi_l, model.P_l) / z  # population chain, s_g averaged uniformly
    mu = np.full(z, 1.0 / z)
    for _ in range(power_iters):
        mu = mu @ kernel
    mu = mu / mu.sum()
    rng = np.random.default_rng(mc_seed)
    p_eff = np.empty((z, z))
    for s_g in range(z):
        counts = rng.multinomial(k, mu, size=mc_draws)
        a_g = np.asarray(pi_g(np.full(mc_draws, s_g), counts), dtype=np.int64)
        p_eff[s_g] = model.P_g[s_g, a_g].mean(axis=0)
    v = np.zeros((z, z))  # v[s_g, s_l]
    q = model.r_l.copy()
    iters = 0
    for iters in range(1, max_iters + 1):
        if (
            model.local_transition == "next"
        ):  # the move reads s_g': sum_{s_g'} P_eff(s_g'|s_g) P_l(y|l, s_g', a) v[s_g', y]
            q = model.r_l + gamma * np.einsum("gh,lhay,hy->lga", p_eff, model.P_l, v)
        else:
            w = p_eff @ v  # w[s_g, s_l'] = sum_{s_g'} P_eff(s_g'|s_g) v[s_g', s_l']
            q = model.r_l + gamma * np.einsum("lgay,gy->lga", model.P_l, w)
        v_new = q.max(axis=-1).T
        delta = np.abs(v_new - v).max()
        v = v_new
        if delta <= tol:
            break
    return q, iters


def _start_table(model: WarehouseModel, pi_g: GlobalPolicy, k: int, start, pi_l) -> np.ndarray:
    z = model.zones
    if isinstance(start, str):
        if start != "mfvi":
            raise ValueError(f"unknown start {start!r}")
        return mfvi_q(model, pi_g, k, pi_l=pi_l)[0].argmax(axis=-1)
    if start is not None:
        table = np.array(start, dtype=np.int64)
    elif pi_l is not None:
        table = np.asarray(pi_l).argmax(axis=-1)
    else:
        table = np.zeros((z, z), dtype=np.int64)
    if table.shape != (z, z) or table.min() < 0 or table.max() >= N_ACTIONS:
        raise ValueError(f"start table must be [{z}, {z}] with entries in 0..{N_ACTIONS - 1}")
    return table.astype(np.int64)
