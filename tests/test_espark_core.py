"""eSpark coordinator core: candidate validation, mask fallback, selection/retention, stats, prompts, recorder."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from coordinator.espark import prompts as P
from coordinator.espark.evolution import (
    INITIAL_WEIGHTS,
    CandidateRecord,
    CheckResult,
    RunRecorder,
    reflection_stats,
    retention,
    select_best,
)
from scenarios.espark.candidates import MABIM_SIGNATURE, TSC, apply_mask, mabim_sample_inputs, validate_candidate
from scenarios.espark.masker import random_pruning_mask
from scenarios.espark.task import mabim_env, tsc_env
from scenarios.inventory.config import ACTION_MULTIPLES, N_ACTIONS

SAMPLES = [mabim_sample_inputs(2, 5, ACTION_MULTIPLES, seed=s, current_step=10 * s) for s in range(3)]

GOOD = """
def compute_mask(agent_states: AgentStates, supply_chain: SupplyChain, action_space: list):
    warehouses = supply_chain.get_warehouse_list()
    total_mask = np.ones((len(warehouses), len(agent_states), len(action_space)))
    for i, wh in enumerate(warehouses):
        demand = np.mean(agent_states[wh, "demand", "lookback", "all_skus"], axis=0)
        stock = agent_states[wh, "in_stock", "today", "all_skus"]
        for a, action in enumerate(action_space):
            if action > 4:
                total_mask[i, :, a] = 0
            total_mask[i, stock + demand * action > supply_chain[wh, "capacity"], a] = 0
    return total_mask, {"cap": total_mask}
"""
RAISES = GOOD.replace("axis=0)", "axis=0)\n        raise KeyError('boom')")
WRONG_SHAPE = GOOD.replace("return total_mask,", "return total_mask[:, :, :10],")
NON_BINARY = GOOD.replace("return total_mask,", "return total_mask * 0.5,")
STRINGS = GOOD.replace("return total_mask,", "return total_mask.astype(str),")
ALL_MASKED = """
def compute_mask(agent_states, supply_chain, action_space):
    return np.zeros((len(supply_chain.get_warehouse_list()), len(agent_states), len(action_space)), int), {}
"""
SLOW = "def compute_mask(agent_states, supply_chain, action_space):\n    while True:\n        pass\n"
BAD_SIG = "def compute_mask(states, action_space):\n    return None\n"


def test_batch_rejects_broken_candidates_with_cause_and_keeps_the_others():
    codes = [GOOD, RAISES, WRONG_SHAPE, NON_BINARY, STRINGS, BAD_SIG, None, ALL_MASKED]
    results = [validate_candidate(c, SAMPLES, N_ACTIONS) for c in codes]
    causes = [r.cause for r in results]
    assert causes == [None, "exception", "bad_shape", "non_binary", "bad_dtype", "signature", "no_code", None]
    assert results[1].sample == 0 and "boom" in results[1].message and "exception" in results[1].feedback()
    good = results[0]
    assert good.accepted and good.components == ["cap"] and 0 < good.pruned_fraction < 1
    assert good.all_masked_agents == 0 and good.feedback() == ""
    everything = results[-1]  # removing every action is not a rejection, only counted (2 wh x 5 skus x 3 samples)
    assert everything.accepted and everything.all_masked_agents == 30 and everything.pruned_fraction == 1.0


def test_timeout_and_tsc_contract():
    from scenarios.sandbox import SandboxLimits

    slow = validate_candidate(SLOW, SAMPLES[:1], N_ACTIONS, SandboxLimits(cpu_s=1, wall_s=2, memory_mb=128))
    assert not slow.accepted and slow.cause == "timeout"
    inter = [{"stop_car_num": [0, 3, 0, 1, 0, 0, 2, 0]}, {"stop_car_num": [1, 0, 0, 0, 0, 0, 0, 0]}]
    code = (
        "def compute_mask(intersections, action_space):\n"
        "    q = np.array([i['stop_car_num'] for i in intersections])\n"
        "    return (q > 0).astype(np.int8), {}\n"
    )
    ok = validate_candidate(code, [(inter, list("ABCDEFGH"))], 8, contract=TSC)
    assert ok.accepted, ok
    bad = validate_candidate(code.replace("(q > 0)", "(q[:, :4] > 0)"), [(inter, list("ABCDEFGH"))], 8, contract=TSC)
    assert bad.cause == "bad_shape"


def test_apply_mask_fallback_counts_fully_masked_agents():
    mask = np.array([[1, 0, 0], [0, 0, 0], [0, 1, 1]])
    allowed, n = apply_mask(mask, 3)
    assert n == 1 and allowed.dtype == bool
    assert allowed.tolist() == [[True, False, False], [True, True, True], [False, True, True]]
    avail = np.array([[1, 1, 1], [1, 1, 0], [1, 0, 0]])  # row 2 loses its only available action: env-available
    allowed, n = apply_mask(mask, 3, avail=avail)
    assert n == 2 and allowed.tolist() == [[True, False, False], [True, True, False], [True, False, False]]
    allowed, n = apply_mask(mask, 3, per="step")  # the public code's rule: the whole step's mask is skipped
    assert n == 1 and allowed.all()
    allowed, n = apply_mask(np.zeros((2, 4, 3)), 3)
    assert n == 8 and allowed.all()
    assert apply_mask(None, 3)[0].all()
    with pytest.raises(ValueError):
        apply_mask(mask, 4)


def _rec(i, k, scores, ok=True, weights=None):
    from scenarios.espark.candidates import Validation

    return CandidateRecord(i, k, f"# cand {k}", CheckResult(True, 1), Validation(ok), scores, weights=weights)


def test_select_best_by_last_checkpoints_and_retention():
    recs = [
        _rec(0, 0, [100, 100, 1, 1, 1]),  # best early, bad at the end: 1
        _rec(0, 1, [0, 0, 5, 6, 7]),  # 6
        _rec(0, 2, [50, 9, 3, 6, 9]),  # 6, ties with 1 -> lower index wins
        _rec(0, 3, [1000, 1000, 1000], ok=False),  # not executable
        _rec(0, 4, []),  # never scored
        _rec(0, 5, [1, float("nan"), 2]),
    ]  # non-finite
    best = select_best(recs, last_n=3)
    assert best.index == 1 and best.score(3) == 6.0
    assert select_best(recs, last_n=5).index == 0  # (100+100+3)/5 beats the others over all five checkpoints
    assert select_best(list(reversed(recs)), last_n=3).index == 1  # order-independent tie break
    assert recs[3].score() == -math.inf and select_best(recs[3:5]) is None
    assert retention(best, 4) == ["iter_00/cand_01"] * 4
    best.weights = "/run/iter_00/cand_01.pt"
    assert retention(best, 3) == ["/run/iter_00/cand_01.pt"] * 3
    assert retention(best, 3, retain=False) == [INITIAL_WEIGHTS] * 3
    assert retention(None, 2, previous="/run/iter_00/cand_01.pt") == ["/run/iter_00/cand_01.pt"] * 2


def test_reflection_stats_hand_computed():
    s = reflection_stats({"reward": [1, 3, 2, 10, 4], "profit": [[1, 10], [3, 30]], "empty": [], "one": [7]})
    assert s["reward"] == {"max": 10.0, "min": 1.0, "early_mean": 2.0, "late_mean": 7.0, "mean": 4.0}
    assert s["profit"] == {
        "max": [3.0, 30.0],
        "min": [1.0, 10.0],
        "early_mean": [1.0, 10.0],
        "late_mean": [3.0, 30.0],
        "mean": [2.0, 20.0],
    }
    assert "empty" not in s and s["one"]["early_mean"] == s["one"]["late_mean"] == 7.0
    # the released runner: early / late = the first / last 5 validations; max / min = whole rows by their total
    w = reflection_stats({"reward": [1, 2, 3, 4, 5, 6, 7, 8], "cost": [[9, 0], [1, 1], [4, 4]]}, window=5)
    assert w["reward"]["early_mean"] == 3.0 and w["reward"]["late_mean"] == 6.0
    assert w["cost"]["max"] == [9.0, 0.0] and w["cost"]["min"] == [1.0, 1.0]  # not the per-warehouse [9, 4]


def test_random_pruning_mask():
    rng = np.random.default_rng(0)
    m = random_pruning_mask(rng, N_ACTIONS, 0.7, shape=(3, 4))
    assert m.shape == (3, 4, N_ACTIONS) and (m.sum(-1) == round(0.7 * N_ACTIONS)).all()
    avail = np.array([1, 1, 0, 0, 1], bool)
    m = random_pruning_mask(rng, 5, 0.3, shape=(50,), avail=avail)
    assert (m.sum(-1) == 1).all() and not m[:, ~avail].any()
    assert not np.array_equal(random_pruning_mask(rng, 34, 0.5, (8,)), random_pruning_mask(rng, 34, 0.5, (8,)))


def test_prompts_contain_required_pieces_and_are_deterministic():
    env = mabim_env("Replenish 100 SKUs.", "<ENV CODE>", "<STATE DEF>", "<REWARD DEF>")
    gs, gu = P.generator_system(env), P.generator_user(env)
    assert "inventory management" in gs and MABIM_SIGNATURE in gs and "numpy" in gs
    for piece in (
        "Replenish 100 SKUs.",
        "<ENV CODE>",
        "<STATE DEF>",
        "<REWARD DEF>",
        "3-D numpy array",
        "temperature parameter",
        "```python",
    ):
        assert piece in gu and piece in P.checker_user(env)
    cs = P.checker_system(env)
    assert P.PASS_PREFIX in cs and P.FAIL_PREFIX in cs and "common logical errors" in cs
    tsc = tsc_env("Control 16 signals.", "<SUMO>", "<MOVES>", "<STOPPED>")
    assert "traffic signal control" in P.generator_system(tsc) and "intersection_index" in P.generator_user(tsc)
    assert "warehouse" not in P.generator_user(tsc) and "def compute_mask(intersections" in P.checker_system(tsc)
    assert "{" not in gs + cs  # no unfilled template slot
    assert "REPLY" in P.checker_review("REPLY") and "ADVICE" in P.checker_feedback("ADVICE")
    assert P.parse_verdict("  Code passes check. ok") is True and P.parse_verdict("Code fails to pass check.") is False
    assert P.parse_verdict("I think Code passes check.") is None
    stats = reflection_stats({"reward": [[-2.0], [4.0]], "profit": [[5.0], [7.0]]})
    msg = P.reflection(GOOD, stats, epoch_freq=50)
    assert "def compute_mask" in msg and "after every 50 epochs" in msg and "let's think step by step" in msg
    assert (
        "metric_name: reward, Max: [4], Min: [-2], Mean in the early training stage: [-2], Mean in the late "
        "training stage: [4], Mean in all the training stage: [1]"
    ) in msg
    no_factors = P.reflection(GOOD, stats, 50, factors=False)
    assert "metric_name: reward" in no_factors and "metric_name: profit" not in no_factors
    assert msg == P.reflection(GOOD, stats, epoch_freq=50) and gu == P.generator_user(env)


def test_recorder_writes_expected_files(tmp_path):
    rec = RunRecorder(tmp_path)
    good = validate_candidate(GOOD, SAMPLES[:1], N_ACTIONS)
    cands = [
        CandidateRecord(0, 0, GOOD, CheckResult(True, 1, "Code passes check."), good, [1.0, 2.0, 3.0]),
        CandidateRecord(0, 3, None, CheckResult(None, 2), validate_candidate(None, [], N_ACTIONS)),
    ]
    for c in cands:
        rec.candidate(c)
    best = select_best(cands)
    rec.chosen(0, best, feedback="FEEDBACK")
    root = tmp_path / "espark"
    assert (root / "iter_00" / "cand_00.py").read_text() == GOOD
    assert (root / "iter_00" / "cand_03.py").read_text() == ""
    lines = [json.loads(x) for x in (root / "candidates.jsonl").read_text().splitlines()]
    assert [x["key"] for x in lines] == ["iter_00/cand_00", "iter_00/cand_03"]
    assert lines[0]["score"] == 2.0 and lines[0]["check"]["passed"] is True and lines[0]["validation"]["accepted"]
    assert lines[1]["score"] is None and lines[1]["validation"]["cause"] == "no_code" and "code" not in lines[1]
    assert (root / "iter_00" / "best.py").read_text() == GOOD == (root / "best.py").read_text()
    assert (root / "iter_00" / "feedback.txt").read_text() == "FEEDBACK"
    assert json.loads((root / "iterations.jsonl").read_text()) == {
        "iteration": 0,
        "best": "iter_00/cand_00",
        "score": 2.0,
    }
