"""SED feedback: RVI pairs R^j (Eqs. 17-19), PDI pairs K^j (Eqs. 20-24) and prompt lines (RELED paper, Sec. III-D;
docs/reled.md, RL-8 to RL-10)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

PROB_FLOOR = 1e-8  # -log(max(p, 1e-8)) clamp (docs/reled.md, RL-10)
TOP_K_RVI = 5  # top-5 R^j entries by |r| in the prompt (docs/reled.md, RL-9)


@dataclass(frozen=True)
class InstructionSpan:
    """Instruction e_k^i active on [start, end) of the shared clock (docs/reled.md, RL-8: sim seconds)."""

    start: float
    end: float
    text: str


@dataclass(frozen=True)
class RVIPair:
    """One element (|r_t^{A_-j}|, e_k^i) of R^j (Eq. 19), with its context for the prompt."""

    subset: int
    t: int
    value: float  # |r_t^{A_-j}| in the subset (expert) rollout tau_hat
    threshold: float  # max_{tau_tilde} |r_t^{A_-j}| (Eq. 18)
    agent: Hashable  # i in A_j
    instr_index: int  # k
    instruction: str  # e_k^i
    state: str | None = None


@dataclass(frozen=True)
class PDIPair:
    """One element (D_KL^max(pi_hat^i || pi_tilde^i), e_k^i) of K^j (Eq. 24), with its context for the prompt."""

    subset: int
    agent: Hashable
    value: float  # -ln pi^i(u*|o*) (Eq. 22)
    step: int  # t_i^*, index into the agent's expert decisions (Eq. 23)
    time: float  # t_i^* on the shared clock
    prob: float  # pi^i(u*|o*)
    expert_action: int
    policy_action: int  # argmax of pi^i(.|o*)
    policy_prob: float
    instr_index: int | None
    instruction: str | None
    state: str | None = None


def active_instruction(spans: Sequence[InstructionSpan], t: float) -> int | None:
    """k with l_{k-1} <= t < l_k (Eq. 19), spans as cumulative start/end times (Eq. 15's l_k is a duration); None
    if none is active.

    Eq. 24 prints strict l_{k-1} < t* < l_k; we use the same half-open span for both (a decision taken at the
    instant an instruction starts belongs to it).
    """
    for k, s in enumerate(spans):
        if s.start <= t < s.end:
            return k
    return None


def external_rewards(rewards: Mapping[Hashable, Sequence[float]], subset: Sequence[Hashable]) -> np.ndarray:
    """r_t^{A_-j} = sum_{i not in A_j} r_t^i (Sec. III-C) on a common clock; NaN marks an inactive agent (counts 0)."""
    inside = set(subset)
    series = [np.asarray(r, dtype=float) for i, r in rewards.items() if i not in inside]
    if not series:
        raise ValueError("no external agents")
    length = max(len(s) for s in series)
    padded = np.full((len(series), length), np.nan)
    for row, s in zip(padded, series):
        row[: len(s)] = s
    return np.nansum(padded, axis=0)


def rvi_threshold(policy_rollouts: Sequence[Mapping[Hashable, Sequence[float]]], subset: Sequence[Hashable]) -> float:
    """max_{tau_tilde} |r_t^{A_-j}| (Eqs. 17-18) over the epoch's policy-only episodes, same A_-j (RL-8)."""
    if not policy_rollouts:
        raise ValueError("need at least one policy-only rollout")
    return float(max(np.max(np.abs(external_rewards(ep, subset))) for ep in policy_rollouts))


def violation_steps(r_ext_hat: Sequence[float], threshold: float) -> np.ndarray:
    """T^j = {t | r_t^{A_-j} < -max_{tau_tilde} |r_t^{A_-j}|, r in tau_hat} (Eq. 18)."""
    return np.flatnonzero(np.asarray(r_ext_hat, dtype=float) < -threshold)


def rvi_pairs(
    expert_rollout: Mapping[Hashable, Sequence[float]],
    policy_rollouts: Sequence[Mapping[Hashable, Sequence[float]]],
    subset: Sequence[Hashable],
    instructions: Mapping[Hashable, Sequence[InstructionSpan]],
    subset_id: int = 0,
    states: Callable[[int], str | None] | None = None,
) -> list[RVIPair]:
    """R^j (Eq. 19): each violating step t in T^j paired with the instruction active at t for every i in A_j.

    expert_rollout / policy_rollouts: per-agent reward series r_t^i on the shared clock (index t = sim second,
    docs/reled.md RL-8), from tau_hat (Eq. 16) and from tau_tilde = tau^a. Agents with no active instruction at t
    contribute no pair (Eq. 19 needs a k). states(t): the text of the state at t for the prompt (the paper's
    "associated states"; the routing world names the external agents whose reward fell most, and where they are).
    """
    r_hat = external_rewards(expert_rollout, subset)
    thr = rvi_threshold(policy_rollouts, subset)
    out = []
    for t in violation_steps(r_hat, thr):
        for i in subset:
            k = active_instruction(instructions.get(i, ()), float(t))
            if k is not None:
                out.append(
                    RVIPair(
                        subset_id,
                        int(t),
                        float(abs(r_hat[t])),
                        thr,
                        i,
                        k,
                        instructions[i][k].text,
                        None if states is None else states(int(t)),
                    )
                )
    return out


def pdi_pairs(
    policy_probs: Mapping[Hashable, np.ndarray],
    expert_actions: Mapping[Hashable, Sequence[int]],
    decision_times: Mapping[Hashable, Sequence[float]],
    instructions: Mapping[Hashable, Sequence[InstructionSpan]],
    subset_id: int = 0,
    states: Mapping[Hashable, Sequence[str]] | None = None,
    floor: float = PROB_FLOOR,
) -> list[PDIPair]:
    """K^j (Eqs. 22-24): one entry per i in A_j with expert steps (the keys of policy_probs).

    policy_probs[i]: (T_i, n_actions) distributions pi^i(.|o_t) of the CURRENT policy at agent i's expert
    observations (masked the same way as the expert); expert_actions[i]: u_t^i; decision_times[i]: the
    time of each decision on the instruction clock. D_KL^max = max_t -ln max(pi^i(u_t|o_t), floor) (Eq. 22),
    t* = first argmax (Eq. 23). An agent with no instruction active at t* keeps its entry with instruction None.
    states[i][t]: the text of agent i's observation at its step t (the "associated state" of t*).
    """
    out = []
    for i, probs in policy_probs.items():
        p = np.asarray(probs, dtype=float)
        u = np.asarray(expert_actions[i], dtype=int)
        if p.ndim != 2 or len(p) != len(u) or len(p) == 0:
            raise ValueError(f"agent {i}: need (T, A) probs with T = len(actions) > 0")
        p_expert = p[np.arange(len(u)), u]
        nll = -np.log(np.maximum(p_expert, floor))
        t_star = int(np.argmax(nll))
        time = float(decision_times[i][t_star])
        spans = instructions.get(i, ())
        k = active_instruction(spans, time)
        out.append(
            PDIPair(
                subset_id,
                i,
                float(nll[t_star]),
                t_star,
                time,
                float(p_expert[t_star]),
                int(u[t_star]),
                int(np.argmax(p[t_star])),
                float(np.max(p[t_star])),
                k,
                None if k is None else spans[k].text,
                None if states is None else states[i][t_star],
            )
        )
    return out


def pdi_index(pairs: Sequence[PDIPair]) -> float:
    """The subset's PDI of Theorem 1: sum_{k in A_j} D_KL^max(pi_hat^k || pi_tilde^k) (Eq. 5 / Eq. 22)."""
    return float(sum(p.value for p in pairs))


def format_feedback_lines(rvi: Sequence[RVIPair], pdi: Sequence[PDIPair], top_k: int = TOP_K_RVI) -> list[str]:
    """Deterministic prompt lines for R^j and K^j (docs/reled.md, RL-9; the paper's Appendix A is missing).

    R^j: the top_k entries by |r| (ties: earlier t, then input order); K^j: one line per agent.
    """
    lines = [
        "Reward volatility (RVI, Eq. 19): steps where the other agents' summed reward fell below the "
        "policy-only baseline, with the instruction active then:"
    ]
    ranked = sorted(enumerate(rvi), key=lambda e: (-e[1].value, e[1].t, e[0]))[:top_k]
    if not ranked:
        lines.append("  none")
    for _, r in ranked:
        line = (
            f"  subset {r.subset}, t={r.t} s: |r_ext|={r.value:.2f} (baseline max {r.threshold:.2f}); "
            f"agent {r.agent}, instr #{r.instr_index}: {r.instruction}"
        )
        lines.append(line + (f"; state: {r.state}" if r.state else ""))
    lines.append(
        "Policy divergence (PDI, Eq. 24): per expert agent, the step where the learned policy least "
        "expects the expert's action:"
    )
    if not pdi:
        lines.append("  none")
    for q in pdi:
        instr = "none active" if q.instr_index is None else f"instr #{q.instr_index}: {q.instruction}"
        line = (
            f"  subset {q.subset}, agent {q.agent}: PDI=-ln pi(u*|o*)={q.value:.2f} at t={q.time:g} s "
            f"(step {q.step}); expert action {q.expert_action} (p={q.prob:.3f}), policy argmax "
            f"{q.policy_action} (p={q.policy_prob:.3f}); {instr}"
        )
        lines.append(line + (f"; state: {q.state}" if q.state else ""))
    return lines
