"""ALTERNATING-MARL with the UPDATE rule judged by paired Monte Carlo on the potential (Alternating-MARL paper,
Sec. 3.2, Lemma D.14; docs/alternating_marl.md, A-4)."""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import NormalDist
from typing import Any, Callable, Literal, NamedTuple

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agent_node.warehouse.model import WarehouseModel, uniform_local_policy
from agent_node.warehouse.simulator import GlobalPolicy, Simulator

from .l_learn import l_learn

ACCEPT, REJECT, CONVERGED = "accept", "reject", "converged"


class AlternatingConfig(BaseModel):
    """Training settings; defaults are the paper's tabular values (Table 3) where it gives one."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    n: int = Field(1000, ge=1)  # robots in the evaluation / L-PS simulator
    k: int = Field(10, ge=1)  # robots polled per step (the paper sweeps 1..50)
    m: int = Field(30, ge=1)  # G-LEARN Monte Carlo samples per table entry
    n_steps: int = Field(10, ge=1)  # alternations (sweeps of G then L)
    init_pi_g: Literal["zero", "stay"] = "zero"  # a_g = 0 (released code) or a_g = s_g
    # G-LEARN
    g_tol: float = Field(1e-3, gt=0)  # G-LEARN stops once a sweep changes Q by at most this (sup norm)
    g_max_sweeps: int | None = None  # cap on G-LEARN's sweeps (unset: the paper's T, Lemma 4.3)
    # sampled: m drawn histograms per entry; exact: the exact law of the next histogram (small k only)
    g_estimator: Literal["sampled", "exact"] = "sampled"
    warm_start: bool = True  # start each G-LEARN from the previous Q
    # L-LEARN: ps, coordinate ascent in the n-robot simulator (L-PS); mfvi, the released code's mean-field value
    # iteration
    l_solver: Literal["ps", "mfvi"] = "ps"
    l_sweeps: int = Field(3, ge=1)  # L-PS: at most this many sweeps over the action table
    l_rollouts: int = Field(16, ge=1)  # L-PS: episodes each candidate change is scored on
    l_horizon: int = Field(50, ge=1)  # L-PS: steps per scoring episode
    l_n: int | None = None  # robots in the L-PS simulator (None: n)
    l_min_gain: float = 0.0  # L-PS keeps a change only when it raises the mean return by more than this
    # UPDATE
    eta_c: float = Field(0.5, ge=0)  # eta_0 = eta_c / sqrt(k), in units of the discounted return
    delta: float = Field(0.05, gt=0, lt=1)  # each call's CI has confidence 1 - delta / (2 n_steps)
    eval_rollouts: int = Field(50, ge=2)  # episodes in UPDATE's fixed evaluation set
    eval_horizon: int = Field(100, ge=1)  # steps per evaluation episode
    seed: int = 0  # training randomness (G-LEARN draws, L-PS episodes)
    eval_seed: int = 1  # the fixed evaluation set of UPDATE (simulator seed; episodes 0..eval_rollouts-1)
    # the outer loop: UPDATE (the paper), or the released code's (`released_loop`: n_steps iterations of G-LEARN
    # then L-LEARN, a rollout check keeps the best pair, reverts when worse by check_rtol, stops on a plateau)
    loop: Literal["update", "released"] = "update"
    check_rollouts: int = Field(20, ge=1)  # loop = "released": episodes of each iteration's rollout check
    check_horizon: int = Field(30, ge=1)  # loop = "released": steps per check episode
    # loop = "released": relative drop that reverts to the best pair, and relative change that ends the loop
    check_rtol: float = Field(0.01, ge=0)

    @property
    def eta_0(self) -> float:
        return self.eta_c / math.sqrt(self.k)


# ---------------------------------------------------------------------------------------------- dispatchers
class ConstantDispatcher:
    """a_g = action everywhere (the released code's initial pi_g uses 0)."""

    def __init__(self, action: int = 0):
        self.action = action

    def __call__(self, s_g: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.full(np.shape(s_g), self.action, dtype=np.int64)


class StayDispatcher:
    """a_g = s_g: keep the current priority zone."""

    def __call__(self, s_g: np.ndarray, counts: np.ndarray) -> np.ndarray:
        return np.asarray(s_g, dtype=np.int64)


def initial_dispatcher(kind: str, k: int | None = None, zones: int | None = None) -> GlobalPolicy:
    """ "stay" or "zero"; with k and zones given, as a TablePolicy (so it can be saved and deployed)."""
    fn = StayDispatcher() if kind == "stay" else ConstantDispatcher(0)
    if k is None:
        return fn
    from .g_learn import TablePolicy

    return TablePolicy.tabulate(k, zones, fn)


# ---------------------------------------------------------------------------------------------- UPDATE rule
@dataclass
class Decision:
    decision: str
    diff: float  # mean paired difference new - old
    half_width: float  # CI half-width of that mean
    eta: float  # max(eta_0, half_width)


def update_rule(diffs: np.ndarray, eta_0: float, confidence: float) -> Decision:
    """ACCEPT if mean >= 2 eta, REJECT if mean <= -2 eta, else CONVERGED; eta = max(eta_0, two-sided CI
    half-width of the mean paired difference at the given confidence, normal approximation)."""
    d = np.asarray(diffs, dtype=float)
    mean = float(d.mean())
    sd = float(d.std(ddof=1)) if d.size > 1 else 0.0
    half = NormalDist().inv_cdf(0.5 + confidence / 2.0) * sd / math.sqrt(d.size)
    eta = max(eta_0, half)
    decision = ACCEPT if mean >= 2 * eta else REJECT if mean <= -2 * eta else CONVERGED
    return Decision(decision, mean, half, eta)


# ---------------------------------------------------------------------------------------------- the loop
@dataclass
class RoundRecord:
    """One proposal and its judgement (one line of the JSON-lines log)."""

    sweep: int
    player: str  # "g" or "l"
    decision: str
    value_new: float  # Phi estimate of the proposal pair
    value_old: float  # Phi estimate of the incumbent pair
    diff: float
    half_width: float
    eta: float
    learn_seconds: float
    eval_seconds: float
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class AlternatingResult:
    pi_g: GlobalPolicy  # a TablePolicy (the tabulated initial dispatcher if no G-LEARN proposal was accepted)
    pi_l: np.ndarray  # [s_l, s_g, a_l]
    value: float  # Phi estimate of the returned pair on the evaluation set
    initial_value: float
    log: list[RoundRecord]
    stop: str  # "terminated" (a sweep with no accepted proposal), "n_steps", or "plateau" (the released loop)
    sweeps: int
    seconds: float
    g_samples: int = 0  # generative-model samples used by all G-LEARN calls
    l_evaluations: int = 0  # rollout batches used by all L-PS calls
    q: np.ndarray | None = None  # Q table of the accepted G-LEARN policy (None if none accepted)


Proposer = Callable[[GlobalPolicy, np.ndarray], tuple[Any, dict]]
Evaluator = Callable[[GlobalPolicy, np.ndarray], np.ndarray]


class LoopOutcome(NamedTuple):
    pi_g: Any
    pi_l: Any
    log: list[RoundRecord]
    stop: str
    sweeps: int
    returns: np.ndarray  # per-episode returns of the returned pair on the evaluation set
    initial_value: float


def alternate(
    propose_g: Proposer,
    propose_l: Proposer,
    evaluate: Evaluator,
    pi_g: GlobalPolicy,
    pi_l: np.ndarray,
    *,
    n_steps: int,
    eta_0: float,
    delta: float,
    on_record: Callable[[RoundRecord], None] | None = None,
) -> LoopOutcome:
    """The UPDATE loop: per sweep pi_g' = propose_g(pi_g, pi_l) then pi_l' = propose_l(pi_g, pi_l), each judged by
    update_rule on the paired per-episode returns of `evaluate` (confidence 1 - delta / (2 n_steps)); stops after a
    sweep with no ACCEPT ("terminated") or after n_steps sweeps ("n_steps")."""
    confidence = 1.0 - delta / (2.0 * n_steps)
    cur = np.asarray(evaluate(pi_g, pi_l), dtype=float)
    initial = float(cur.mean())
    log: list[RoundRecord] = []
    sweep = 0
    for sweep in range(1, n_steps + 1):
        accepted = False
        for player in ("g", "l"):
            t0 = time.perf_counter()
            proposal, info = (propose_g if player == "g" else propose_l)(pi_g, pi_l)
            t1 = time.perf_counter()
            new_g, new_l = (proposal, pi_l) if player == "g" else (pi_g, proposal)
            new = np.asarray(evaluate(new_g, new_l), dtype=float)
            dec = update_rule(new - cur, eta_0, confidence)
            rec = RoundRecord(
                sweep,
                player,
                dec.decision,
                float(new.mean()),
                float(cur.mean()),
                dec.diff,
                dec.half_width,
                dec.eta,
                t1 - t0,
                time.perf_counter() - t1,
                info,
            )
            log.append(rec)
            if on_record is not None:
                on_record(rec)
            if dec.decision == ACCEPT:
                pi_g, pi_l, cur, accepted = new_g, new_l, new, True
        if not accepted:
            return LoopOutcome(pi_g, pi_l, log, "terminated", sweep, cur, initial)
    return LoopOutcome(pi_g, pi_l, log, "n_steps", sweep, cur, initial)


def released_loop(
    propose_g: Proposer,
    propose_l: Proposer,
    evaluate: Evaluator,
    pi_g: GlobalPolicy,
    pi_l: np.ndarray,
    *,
    n_steps: int,
    rtol: float,
    check: Callable[[int, Any, np.ndarray], float],
    on_record: Callable[[RoundRecord], None] | None = None,
) -> LoopOutcome:
    """The released code's AlternatingMARL.train: per iteration pi_g = G-LEARN(pi_l), then pi_l = L-LEARN(pi_g)
    (always taken: its best starts at -inf); check(iteration, pi_g, pi_l), a short rollout value, keeps the best
    pair, reverts to it when worse by more than rtol, and stops when two successive checks differ by < rtol.
    `evaluate` gives the returned pair's per-episode returns on the evaluation set, as UPDATE reports them."""
    initial = float(np.mean(evaluate(pi_g, pi_l)))
    best, best_pair, values, log = -math.inf, (pi_g, pi_l), [], []
    stop, it = "n_steps", 0
    for it in range(n_steps):
        t0 = time.perf_counter()
        pi_g, g_info = propose_g(pi_g, pi_l)
        pi_l, l_info = propose_l(pi_g, pi_l)
        t1 = time.perf_counter()
        value = check(it, pi_g, pi_l)
        values.append(value)
        decision = "best" if value > best else "revert" if value < best - abs(best) * rtol else "keep"
        rec = RoundRecord(
            it + 1,
            "g+l",
            decision,
            value,
            best,
            value - best if math.isfinite(best) else 0.0,
            0.0,
            0.0,
            t1 - t0,
            time.perf_counter() - t1,
            {"g": g_info, "l": l_info},
        )
        log.append(rec)
        if on_record is not None:
            on_record(rec)
        if decision == "best":
            best, best_pair = value, (pi_g, pi_l)
        elif decision == "revert":
            pi_g, pi_l = best_pair
        if len(values) >= 2 and abs(values[-1] - values[-2]) < rtol * max(abs(values[-2]), 1e-6):
            stop = "plateau"
            break
    return LoopOutcome(pi_g, pi_l, log, stop, it + 1, np.asarray(evaluate(pi_g, pi_l), dtype=float), initial)


def alternating_marl(
    model: WarehouseModel,
    config: AlternatingConfig | None = None,
    *,
    log_path: str | Path | None = None,
    g_learn_fn: Callable | None = None,
    l_learn_fn: Callable | None = None,
) -> AlternatingResult:
    """ALTERNATING-MARL from (initial pi_g, uniform pi_l): G-LEARN and L-LEARN proposals under UPDATE, the potential
    Phi = E_rho V estimated on one fixed evaluation set (n robots, eval_rollouts episodes, eval_horizon steps)."""
    cfg = config or AlternatingConfig()
    if g_learn_fn is None:
        from .g_learn import g_learn as g_learn_fn
    l_learn_fn = l_learn_fn or l_learn
    t_start = time.perf_counter()
    evaluator = PotentialEstimator(model, cfg.n, cfg.k, cfg.eval_seed, cfg.eval_rollouts, cfg.eval_horizon)
    state: dict[str, Any] = {"q": None, "accepted_q": None, "calls": 0, "samples": 0, "evals": 0}

    def propose_g(pi_g, pi_l):
        state["calls"] += 1
        res = g_learn_fn(
            model,
            pi_l,
            cfg.k,
            m=cfg.m,
            seed=derive_seed(cfg.seed, 1, state["calls"]),
            tol=cfg.g_tol,
            max_sweeps=cfg.g_max_sweeps,
            estimator=cfg.g_estimator,
            q_init=state["q"] if cfg.warm_start else None,
        )
        state["q"], state["samples"] = res.q, state["samples"] + int(res.samples)
        return res.policy, {
            "sweeps": int(res.sweeps),
            "samples": int(res.samples),
            "residual": float(res.residual),
            "g_seconds": float(res.seconds),
        }

    def propose_l(pi_g, pi_l):
        state["calls"] += 1
        kw: dict[str, Any] = {}
        if cfg.l_solver == "ps":
            kw = dict(
                sweeps=cfg.l_sweeps,
                rollouts=cfg.l_rollouts,
                horizon=cfg.l_horizon,
                min_gain=cfg.l_min_gain,
                seed=derive_seed(cfg.seed, 2, state["calls"]),
            )
        res = l_learn_fn(model, pi_g, cfg.k, n=cfg.l_n or cfg.n, solver=cfg.l_solver, pi_l=pi_l, **kw)
        state["evals"] += int(res.evaluations)
        return res.pi_l, {
            "solver": res.solver,
            "evaluations": int(res.evaluations),
            "sweeps": int(res.sweeps),
            "changes": int(res.changes),
            "train_value": _finite(res.value),
            "train_start_value": _finite(res.start_value),
        }

    handle = open(log_path, "w") if log_path is not None else None

    def on_record(rec: RoundRecord) -> None:
        if rec.player == "g" and rec.decision == ACCEPT:
            state["accepted_q"] = state["q"]
        if handle is not None:
            handle.write(json.dumps(asdict(rec), default=_jsonable) + "\n")
            handle.flush()

    start = initial_dispatcher(cfg.init_pi_g, cfg.k, model.zones), uniform_local_policy(model.zones)
    try:
        if cfg.loop == "released":
            pi_g, pi_l, log, stop, sweeps, cur, initial = released_loop(
                propose_g,
                propose_l,
                evaluator,
                *start,
                n_steps=cfg.n_steps,
                rtol=cfg.check_rtol,
                check=lambda it, g, l_: float(
                    Simulator(model, cfg.n, 1000 + it)
                    .run(g, l_, cfg.k, np.arange(cfg.check_rollouts), cfg.check_horizon)
                    .returns.mean()
                ),
                on_record=on_record,
            )
        else:
            pi_g, pi_l, log, stop, sweeps, cur, initial = alternate(
                propose_g,
                propose_l,
                evaluator,
                *start,
                n_steps=cfg.n_steps,
                eta_0=cfg.eta_0,
                delta=cfg.delta,
                on_record=on_record,
            )
    finally:
        if handle is not None:
            handle.close()
    return AlternatingResult(
        pi_g=pi_g,
        pi_l=pi_l,
        value=float(cur.mean()),
        initial_value=initial,
        log=log,
        stop=stop,
        sweeps=sweeps,
        seconds=time.perf_counter() - t_start,
        g_samples=state["samples"],
        l_evaluations=state["evals"],
        q=state["accepted_q"],
    )


class PotentialEstimator:
    """Per-episode discounted returns of a pair on one fixed evaluation set (common random numbers)."""

    def __init__(self, model: WarehouseModel, n: int, k: int, seed: int, rollouts: int, horizon: int):
        self.sim, self.k, self.horizon = Simulator(model, n, seed), k, horizon
        self.episodes = np.arange(rollouts)
        self.calls = 0

    def __call__(self, pi_g: GlobalPolicy, pi_l: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.sim.run(pi_g, pi_l, self.k, self.episodes, self.horizon).returns


def derive_seed(seed: int, stream: int, call: int) -> int:
    """An independent 32-bit seed per (training seed, stream, call)."""
    return int(np.random.SeedSequence([seed, stream, call]).generate_state(1)[0])


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None  # strict JSON has no NaN


def _jsonable(x):
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)
