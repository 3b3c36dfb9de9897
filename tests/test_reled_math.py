"""RELED math: DTW on known sequences, the weight alpha (Eq. 30), RVI/PDI pairs (Eqs. 19, 24) and prompt lines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent_node.learners.reled.dtw import (
    agent_dtw,
    dtw_distance,
    expert_weight,
    hybrid_objective,
    junction_xy_sequence,
    normalise_dtw,
)
from scenarios.routing.sed.feedback import (
    InstructionSpan,
    active_instruction,
    external_rewards,
    format_feedback_lines,
    pdi_index,
    pdi_pairs,
    rvi_pairs,
    rvi_threshold,
    violation_steps,
)

NAN = float("nan")


# ---------------------------------------------------------------------------------------------- DTW
def test_dtw_identical_is_zero():
    assert dtw_distance([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == 0.0
    xy = [(0.0, 0.0), (100.0, 0.0), (100.0, 250.0)]
    assert dtw_distance(xy, xy) == 0.0


def test_dtw_shifted_sequence():
    # a = 0,1,2,3 vs b = 1,2,3,4: endpoints are pinned, |0-1| + |3-4| = 2 is forced, and the path
    # (0,0),(1,0),(2,1),(3,2),(3,3) costs 1+0+0+0+1 = 2.
    assert dtw_distance([0, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(2.0)


def test_dtw_different_lengths():
    # repeats are absorbed by warping: (0,0),(1,0),(2,1),(2,2),(2,3) all cost 0
    assert dtw_distance([0, 0, 1], [0, 1, 1, 1]) == 0.0
    # c = [[0,2],[1,1],[2,0]]; D00=0, D10=1, D01=2, D11=1+min(2,1,0)=1, D20=3, D21=0+min(1,3,1)=1
    assert dtw_distance([1, 2, 3], [1, 3]) == pytest.approx(1.0)
    assert dtw_distance([1, 3], [1, 2, 3]) == pytest.approx(1.0)


def test_dtw_vector_sequences_and_ground_distances():
    a, b = [(0.0, 0.0), (3.0, 4.0)], [(0.0, 0.0), (6.0, 8.0)]
    assert dtw_distance(a, b) == pytest.approx(5.0)  # |(3,4)-(6,8)| = 5
    assert dtw_distance(a, b, dist="manhattan") == pytest.approx(7.0)  # 3 + 4
    assert dtw_distance(a, b, dist="sqeuclidean") == pytest.approx(25.0)
    assert dtw_distance(a, b, dist=lambda x, y: float(np.max(np.abs(x - y)))) == pytest.approx(4.0)  # Chebyshev
    # a detour point: c = [[0,5],[3,4],[5,0]]; D00=0, D10=3, D01=5, D11=4+min(5,3,0)=4, D20=8, D21=0+min(4,8,3)=3
    assert dtw_distance([(0, 0), (3, 0), (3, 4)], [(0, 0), (3, 4)]) == pytest.approx(3.0)
    assert dtw_distance([(0, 0), (3, 4)], [(0, 0), (0, 0), (3, 4)]) == 0.0
    with pytest.raises(ValueError):
        dtw_distance([(0, 0)], [(0, 0, 0)])
    with pytest.raises(ValueError):
        dtw_distance([], [1.0])


def test_dtw_symmetric_and_nonnegative():
    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.normal(size=(int(rng.integers(1, 8)), 2)) * 100
        b = rng.normal(size=(int(rng.integers(1, 8)), 2)) * 100
        d_ab, d_ba = dtw_distance(a, b), dtw_distance(b, a)
        assert d_ab >= 0.0 and d_ab == pytest.approx(d_ba)


def test_junction_xy_and_agent_dtw():
    coords = {1: (0.0, 0.0), 2: (100.0, 0.0), 3: (100.0, 100.0), 4: (0.0, 100.0)}
    expert = junction_xy_sequence([1, 2], 3, coords)  # decision junctions + destination
    assert expert.tolist() == [[0, 0], [100, 0], [100, 100]]
    same = junction_xy_sequence([1, 2], 3, coords)
    detour = junction_xy_sequence([1, 4], 3, coords)  # (0,100) vs (100,0): 100*sqrt(2) by itself...
    # ...but warping does better: c(1 vs 2)=100, c(4 vs 3)=100 -> path (0,0),(1,1),(2,2) = 0+141.4+0 vs
    # (0,0),(0,1),(1,2),(2,2) = 0+100+100+0 = 200, so DTW = 100*sqrt(2) = 141.42
    assert dtw_distance(detour, expert) == pytest.approx(100 * math.sqrt(2))
    # mean over COMPLETE episodes only (0 here); all episodes when none is complete
    assert agent_dtw([same, detour], expert, complete=[True, False]) == 0.0
    assert agent_dtw([same, detour], expert, complete=[False, False]) == pytest.approx(50 * math.sqrt(2))
    assert agent_dtw([detour], expert, scale=100.0) == pytest.approx(math.sqrt(2))
    assert agent_dtw([], expert) is None
    assert normalise_dtw(700.0) == 700.0  # default scale 1.0: the literal metre-scale DTW


# ---------------------------------------------------------------------------------------------- alpha
def test_expert_weight_paper_mode():
    assert expert_weight(0.0, 250, 500) == 1.0  # DTW 0 -> alpha 1
    assert expert_weight(2.0, 250, 500) == pytest.approx(math.exp(-1.0))  # exp(-(250/500)*2)
    assert expert_weight(1000.0, 0, 500) == 1.0  # k = 0: agent-dominated whatever D (docs/reled.md, RL-11)
    assert expert_weight(None, 10, 500) == 1.0  # no expert trajectory -> pure agent loss (RL-1)
    ds = [0.0, 0.5, 1.0, 5.0, 100.0]
    by_d = [expert_weight(d, 10, 500) for d in ds]
    assert all(x > y for x, y in zip(by_d, by_d[1:]))  # decreasing in DTW
    by_k = [expert_weight(3.0, k, 500) for k in (1, 10, 100, 500)]
    assert all(x > y for x, y in zip(by_k, by_k[1:]))  # decreasing in k
    with pytest.raises(ValueError):
        expert_weight(-1.0, 1, 500)


def test_expert_weight_fixed_modes():
    assert expert_weight(123.0, 7, 500, mode="fixed_expert", fixed=0.2) == pytest.approx(0.8)  # w_e = 0.2
    assert expert_weight(None, 7, 500, mode="fixed_expert", fixed=0.5) == pytest.approx(0.5)
    assert expert_weight(123.0, 7, 500, mode="fixed_agent", fixed=0.2) == pytest.approx(0.2)  # literal reading
    with pytest.raises(ValueError):
        expert_weight(1.0, 1, 500, mode="fixed_expert")
    with pytest.raises(ValueError):
        expert_weight(1.0, 1, 500, mode="fixed_agent", fixed=1.5)


def test_hybrid_objective():
    # 0.25*2 + 0.75*4 + 0.01*1 = 0.5 + 3 + 0.01
    assert hybrid_objective(2.0, 4.0, 1.0, alpha=0.25) == pytest.approx(3.51)
    assert hybrid_objective(2.0, 4.0, 0.0, alpha=1.0) == pytest.approx(2.0)  # IPPO special case


# ---------------------------------------------------------------------------------------------- RVI
# A constructed rollout: agents 0..3, subset A_j = {0, 1}, externals A_-j = {2, 3}, clock t = 0..4 s.
SUBSET = [0, 1]
POLICY_EPISODES = [  # tau_tilde = tau^a, two episodes
    {
        0: [-100] * 5,
        1: [-100] * 5,  # subset agents: ignored
        2: [-1, -1, -3, -1, -1],
        3: [-1, -2, -1, -1, NAN],
    },  # r_ext = -2, -3, -4, -2, -1 -> max |.| = 4
    {0: [0] * 5, 1: [0] * 5, 2: [-1] * 5, 3: [-1] * 5},  # r_ext = -2 each -> 2
]  # threshold max_{tau_tilde} |r_ext| = max(4, 2) = 4
EXPERT_EPISODE = {  # tau_hat (Eq. 16)
    0: [0, 0, -50, 0, 0],
    1: [0] * 5,  # subset agents: ignored
    2: [-1, -5, -1, -2, 10],
    3: [-1, -1, -2, -3, NAN],
}  # r_ext = -2, -6, -3, -5, 10 -> T^j = {t : r_ext < -4} = {1, 3}; t=4 (+10) is not a decrease (Eq. 17)
INSTR = {
    0: [InstructionSpan(0, 2, "move_to_by_shortest_time(57)"), InstructionSpan(2, 5, "move_to_by_shortest_path(9)")],
    1: [InstructionSpan(0, 3, "move_to_by_shortest_path(12)")],  # nothing active at t=3 -> no pair then
}


def test_rvi_building_blocks():
    assert external_rewards(EXPERT_EPISODE, SUBSET).tolist() == [-2, -6, -3, -5, 10]
    assert external_rewards({0: [1.0], 2: [NAN], 3: [NAN]}, [0]).tolist() == [0.0]  # all inactive -> 0
    assert rvi_threshold(POLICY_EPISODES, SUBSET) == 4.0
    assert violation_steps([-2, -6, -3, -5, 10], 4.0).tolist() == [1, 3]
    assert violation_steps([-4, -4.0001], 4.0).tolist() == [1]  # strict "<" (Eq. 18)
    assert active_instruction(INSTR[0], 2) == 1 and active_instruction(INSTR[0], 1.99) == 0
    assert active_instruction(INSTR[1], 3) is None


def test_rvi_pairs_on_constructed_rollout():
    pairs = rvi_pairs(EXPERT_EPISODE, POLICY_EPISODES, SUBSET, INSTR, subset_id=1, states={1: "j=42"}.get)
    # t=1: |r_ext| = 6 with agent 0 on instr #0 and agent 1 on instr #0; t=3: |r_ext| = 5, only agent 0 (instr #1)
    got = [(p.t, p.value, p.agent, p.instr_index, p.instruction) for p in pairs]
    assert got == [
        (1, 6.0, 0, 0, "move_to_by_shortest_time(57)"),
        (1, 6.0, 1, 0, "move_to_by_shortest_path(12)"),
        (3, 5.0, 0, 1, "move_to_by_shortest_path(9)"),
    ]
    assert all(p.threshold == 4.0 and p.subset == 1 for p in pairs)
    assert [p.state for p in pairs] == ["j=42", "j=42", None]


# ---------------------------------------------------------------------------------------------- PDI
PROBS = {
    # agent 0: p(expert action) = 0.7, 0.5, 0.05 -> -ln = 0.357, 0.693, 2.996; t* = 2 at t = 4 s (instr #1),
    # D_KL^max = ln 20 = 2.9957; the policy's argmax there is action 0 with p = 0.9
    0: np.array([[0.7, 0.2, 0.1, 0.0], [0.25, 0.25, 0.5, 0.0], [0.9, 0.05, 0.05, 0.0]]),
    # agent 1: p(expert action) = 0.5, 0.0 -> clamp 1e-8 -> -ln 1e-8 = 8 ln 10 = 18.4207; t* = 1 at t = 1 s (instr #0)
    1: np.array([[0.5, 0.5, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]),
}
ACTIONS = {0: [0, 2, 1], 1: [1, 0]}
TIMES = {0: [0.0, 2.0, 4.0], 1: [0.0, 1.0]}


def test_pdi_pairs_on_constructed_rollout():
    pairs = pdi_pairs(PROBS, ACTIONS, TIMES, INSTR, subset_id=1)
    assert [p.agent for p in pairs] == [0, 1]  # one entry per agent in A_j
    a0, a1 = pairs
    assert a0.value == pytest.approx(math.log(20.0)) and a0.step == 2 and a0.time == 4.0
    assert (a0.prob, a0.expert_action, a0.policy_action, a0.policy_prob) == (0.05, 1, 0, 0.9)
    assert (a0.instr_index, a0.instruction) == (1, "move_to_by_shortest_path(9)")
    assert a1.value == pytest.approx(8 * math.log(10.0)) and a1.step == 1 and a1.prob == 0.0
    assert (a1.policy_action, a1.instr_index, a1.instruction) == (3, 0, "move_to_by_shortest_path(12)")
    assert pdi_index(pairs) == pytest.approx(math.log(20.0) + 8 * math.log(10.0))  # 21.4164


def test_pdi_ties_and_missing_instruction():
    # equal -ln p = ln 2 at both steps -> first step; t = 9 s is outside every span -> instruction None
    (p,) = pdi_pairs({5: np.array([[0.5, 0.5], [0.5, 0.5]])}, {5: [0, 1]}, {5: [9.0, 10.0]}, {})
    assert p.step == 0 and p.value == pytest.approx(math.log(2.0)) and p.instruction is None
    with pytest.raises(ValueError):
        pdi_pairs({5: np.array([[0.5, 0.5]])}, {5: [0, 1]}, {5: [0.0, 1.0]}, {})


# ---------------------------------------------------------------------------------------------- prompt lines
def test_feedback_lines_contain_the_numbers():
    rvi = rvi_pairs(EXPERT_EPISODE, POLICY_EPISODES, SUBSET, INSTR, subset_id=1, states={1: "j=42"}.get)
    pdi = pdi_pairs(PROBS, ACTIONS, TIMES, INSTR, subset_id=1)
    lines = format_feedback_lines(rvi, pdi)
    text = "\n".join(lines)
    assert sum("|r_ext|=6.00" in ln for ln in lines) == 2 and sum("|r_ext|=5.00" in ln for ln in lines) == 1
    assert "baseline max 4.00" in text and "state: j=42" in text and "t=1 s" in text
    assert "move_to_by_shortest_time(57)" in text and "instr #1: move_to_by_shortest_path(9)" in text
    assert "PDI=-ln pi(u*|o*)=3.00" in text and "PDI=-ln pi(u*|o*)=18.42" in text
    assert "expert action 1 (p=0.050)" in text and "policy argmax 0 (p=0.900)" in text
    top = format_feedback_lines(rvi, pdi, top_k=2)  # only the two |r| = 6 entries survive
    assert sum("|r_ext|=" in ln for ln in top) == 2 and "|r_ext|=5.00" not in "\n".join(top)
    assert format_feedback_lines([], []) == [lines[0], "  none", lines[-3], "  none"]
    assert lines == format_feedback_lines(rvi, pdi)  # deterministic
