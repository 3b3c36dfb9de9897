"""The eSpark loop through real processes: candidates rejected with their cause, selection, retention, the test
against IPPO, and a short loop with the local LLM; the world-side training masks in a sandbox worker."""

import csv
import json
import signal
import tomllib

import numpy as np
import pytest
from conftest import ROOT, run_cli, start_run, tensorboard_scalars, wait_for

from scenarios.espark.candidates import TSC
from scenarios.espark.masker import ExplorationSpec, TrainingMasks

SCENARIO = ROOT / "scenarios" / "inventory_espark.toml"
SMALL = [
    "world.episodes=4",
    "world.update_every=1",
    "world.test_episodes=1",
    "world.env.skus=12",
    "world.env.echelons=2",
    "world.env.horizon=20",
    "algo.ppo={minibatch=128}",
]

RAISES = """
def compute_mask(agent_states, supply_chain, action_space):
    raise ValueError("cannot decide")
"""
WRONG_SHAPE = """
def compute_mask(agent_states, supply_chain, action_space):
    return np.ones((len(action_space),)), {}
"""


def _loop(out, *sets, timeout=600):
    args = ["run", str(SCENARIO), "--out", str(out), "--no-progress", "--seed", "3"]
    for s in [*SMALL, *sets]:
        args += ["--set", s]
    proc = run_cli(*args, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text())


def _candidates(out):
    return [json.loads(line) for line in (out / "espark" / "candidates.jsonl").read_text().splitlines()]


def test_bad_candidates_are_rejected_with_their_cause_and_the_best_is_kept_and_copied(tmp_path):
    files = []
    for name, code in (("raises", RAISES), ("shape", WRONG_SHAPE)):
        path = tmp_path / f"{name}.py"
        path.write_text(code)
        files.append(str(path))
    good = str(ROOT / "scenarios" / "espark_functions" / "mabim_cover.py")
    listed = ", ".join(f'"{f}"' for f in [good, *files])
    out = tmp_path / "run"
    summary = _loop(out, f'algo.espark={{candidates=3, iterations=2, generator="files", function_files=[{listed}]}}')
    assert summary["status"] == "ok" and summary["drafted"] == 6 and summary["executable"] == 2
    cands = _candidates(out)
    causes = {(c["iteration"], c["index"]): (c["validation"]["cause"], c["score"]) for c in cands}
    for it in (1, 2):
        assert causes[(it, 1)] == ("exception", None) and causes[(it, 2)] == ("bad_shape", None)
        assert causes[(it, 0)][0] is None and causes[(it, 0)][1] is not None  # trained and scored
    # selection: the only scored candidate; retention: iteration 2's copy starts from its weights
    chosen = [json.loads(line) for line in (out / "espark" / "iterations.jsonl").read_text().splitlines()]
    assert [c["best"] for c in chosen] == ["iter_01/cand_00", "iter_02/cand_00"]
    child = tomllib.loads((out / "espark" / "iter_02" / "cand_00.toml").read_text())
    assert child["algo"]["init_weights"] == str(out / "espark" / "iter_01" / "cand_00" / "checkpoints")
    assert child["world"]["first_episode"] == 3 and child["world"]["exploration"]["kind"] == "function"
    # G: validation checkpoints of two greedy, unmasked episodes each, after every update of the copy's 2-episode
    # slice (fewer updates than `validations`), averaged (docs/espark.md, E-A4; the released runner's last 5)
    assert child["world"]["eval_episodes"] == 2 and child["world"]["eval_every"] == 1
    assert all(len(c["scores"]) == 2 for c in cands if c["score"] is not None)
    evals = [
        json.loads(line)
        for line in (out / "espark" / "iter_02" / "cand_00" / "metrics.jsonl").read_text().splitlines()
        if '"mode": "eval"' in line
    ]
    assert [e["episode"] for e in evals] == [3, 3, 4, 4]
    assert causes[(2, 0)][1] == pytest.approx(np.mean([e["return"] for e in evals]))
    first = tomllib.loads((out / "espark" / "iter_01" / "cand_00.toml").read_text())
    assert "init_weights" not in first["algo"]
    # the copy's mask really came from the function, in the world process (pruned actions, no error)
    world = [
        json.loads(line)
        for line in (out / "espark" / "iter_01" / "cand_00" / "metrics.jsonl").read_text().splitlines()
        if '"kind": "world"' in line and '"final": true' in line
    ][-1]
    assert world["exploration"]["calls"] == 2 * 20 and world["exploration"]["pruned_fraction"] > 0.2
    assert world["exploration"]["error"] is None
    feedback = (out / "espark" / "iter_01" / "feedback.txt").read_text()
    assert "metric_name: backlog_cost" in feedback and "Mean in the late training stage" in feedback
    assert (out / "espark" / "best.py").read_text() == (ROOT / "scenarios/espark_functions/mabim_cover.py").read_text()
    rows = list(csv.DictReader(open(out / "test_table.csv")))
    assert [r["metric"] for r in rows] == ["test_profit", "test_gross_margin"] and all(r["ippo"] for r in rows)
    assert (out / "plots" / "candidate_scores.png").exists() and (out / "plots" / "learning_curves.png").exists()
    test_child = tomllib.loads((out / "espark" / "test.toml").read_text())
    assert test_child["world"]["exploration"]["kind"] == "none" and test_child["world"]["episodes"] == 0
    masked = tomllib.loads((out / "espark" / "test_masked.toml").read_text())["world"]["exploration"]
    assert masked["kind"] == "function" and masked["at_test"] and masked["code_file"].endswith("iter_02/cand_00.py")
    assert all(r["espark_with_mask"] for r in rows)
    report = run_cli("report", str(out))
    assert report.returncode == 0 and "exception" in report.stdout and "| test_profit |" in report.stdout
    assert "iteration 2: chosen iter_02/cand_00" in report.stdout
    # the rounds' figures in the loop's TensorBoard files: the scored candidate's G and the chosen one's per iteration
    board = tensorboard_scalars(out / "tensorboard")
    assert [step for step, _ in board["espark/cand_00/G"]] == [1, 2] and "espark/cand_01/G" not in board
    assert [v for _, v in board["espark/best/G"]] == pytest.approx([causes[(1, 0)][1], causes[(2, 0)][1]], rel=1e-6)


def test_without_retention_every_iteration_starts_afresh_with_three_times_the_episodes(tmp_path):
    good = ROOT / "scenarios" / "espark_functions" / "mabim_cover.py"
    out = tmp_path / "noret"
    summary = _loop(
        out,
        f'algo.espark={{candidates=1, iterations=2, generator="files", function_files=["{good}"], '
        "retention=false, compare_ippo=false}",
    )
    assert summary["status"] == "ok" and summary["retention"] is False
    for it in (1, 2):
        child = tomllib.loads((out / "espark" / f"iter_{it:02d}" / "cand_00.toml").read_text())
        assert "init_weights" not in child["algo"]  # re-initialised every iteration (eSpark paper, Sec. 5.4)
        assert child["world"]["episodes"] == 3 * 2 and child["world"]["first_episode"] == 1
    assert not (out / "espark" / "ippo").exists() and "espark_test_profit" in summary["results"]


def test_a_stopped_loop_resumes_after_its_last_finished_iteration(tmp_path):
    files = ", ".join(
        f'"{ROOT / "scenarios" / "espark_functions" / f}"' for f in ("mabim_cover.py", "mabim_capacity.py")
    )
    sets = [
        *SMALL,
        "run.seed=3",
        f'algo.espark={{candidates=1, iterations=2, generator="files", function_files=[{files}], compare_ippo=false}}',
    ]
    old, new = tmp_path / "old", tmp_path / "new"
    proc = start_run(old, *sets, scenario=SCENARIO)
    try:  # stopped (SIGTERM) while iteration 2's copy trains
        wait_for(
            lambda: (old / "espark" / "iter_02" / "cand_00.toml").exists() or proc.poll() is not None,
            300,
            "iteration 2's copy",
        )
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert json.loads((old / "summary.json").read_text())["status"] == "interrupted", out
    assert [c["key"] for c in _candidates(old)] == ["iter_01/cand_00", "iter_02/cand_00"]  # the cut one is on file
    # another budget would change what the finished copies were trained for: refused before anything is written
    other = run_cli(
        "run",
        str(SCENARIO),
        "--resume",
        str(old),
        "--out",
        str(tmp_path / "refused"),
        *[a for s in [*sets, "algo.espark.iterations=4"] for a in ("--set", s)],
    )
    assert other.returncode == 2 and "algo.espark.iterations = 2 there, 4 here" in other.stderr
    assert not (tmp_path / "refused").exists()

    proc = run_cli(
        "run",
        str(SCENARIO),
        "--resume",
        str(old),
        "--out",
        str(new),
        "--no-progress",
        *[a for s in sets for a in ("--set", s)],
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    summary = json.loads((new / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["resumed_from"] == str(old) and summary["drafted"] == 2
    cands = _candidates(new)
    assert [c["key"] for c in cands] == ["iter_01/cand_00", "iter_02/cand_00"]
    assert cands[0]["weights"] == str(old / "espark" / "iter_01" / "cand_00" / "checkpoints")  # not trained again
    assert not (new / "espark" / "iter_01" / "cand_00").exists()
    # iteration 2: the next hand-written function, from iteration 1's chosen weights, continuing the episodes
    child = tomllib.loads((new / "espark" / "iter_02" / "cand_00.toml").read_text())
    assert child["algo"]["init_weights"] == cands[0]["weights"] and child["world"]["first_episode"] == 3
    assert (new / "espark" / "iter_02" / "cand_00.py").read_text() == (
        ROOT / "scenarios" / "espark_functions" / "mabim_capacity.py"
    ).read_text()
    assert (new / "espark" / "iter_01" / "feedback.txt").read_text() == (
        old / "espark" / "iter_01" / "feedback.txt"
    ).read_text()
    chosen = [json.loads(line) for line in (new / "espark" / "iterations.jsonl").read_text().splitlines()]
    assert [c["best"] for c in chosen] == ["iter_01/cand_00", "iter_02/cand_00"]
    assert "espark_test_profit" in summary["results"] and (new / "plots" / "learning_curves.png").exists()


@pytest.mark.timeout(900)
def test_a_short_loop_with_the_local_llm_runs_end_to_end(tmp_path):
    """K = 1 (the loop's selection among K is the file generator's tests' job; each LLM call takes 20-40 s on
    2 cores), two iterations, the offline default model as generator and checker; whatever it writes, every
    candidate is accounted for (trained or rejected with a cause), iteration 2's prompt carries iteration 1's
    reflection, and the run ends with the test against IPPO."""
    out = tmp_path / "llm"
    summary = _loop(
        out,
        "algo.espark={candidates=1, iterations=2, checker_rounds=1, "
        'llm={backend="local", max_tokens=400, timeout_s=240}}',
        timeout=880,
    )
    assert summary["status"] == "ok" and summary["generator"] == "llm" and summary["drafted"] == 2
    cands = [c for c in _candidates(out) if c["index"] < 1]
    assert len(cands) == 2
    for c in cands:
        assert c["check"] is not None and c["check"]["rounds"] == 1  # LLM_c saw every candidate
        assert c["validation"]["accepted"] or c["validation"]["cause"]
    calls = [json.loads(line) for line in (out / "llm.jsonl").read_text().splitlines()]
    assert len(calls) == 4  # 2 generations + 2 checks
    assert "compute_mask(agent_states" in calls[0]["messages"][0]["content"]
    assert (
        calls[1]["messages"][0]["content"].startswith("You are an expert")
        and "Code passes check." in calls[1]["messages"][0]["content"]
    )
    assert len(calls[2]["messages"]) == len(calls[0]["messages"]) + 2  # iteration 1's reply and its feedback
    assert summary["llm"]["calls"] == 4
    assert {"espark_test_profit", "ippo_test_profit"} <= set(summary["results"])
    assert len([line for line in (out / "espark" / "iterations.jsonl").read_text().splitlines()]) == 2


def _intersections(n):
    move = {"exists": 1.0, "green": 0.0, "car_num": 1.0, "stop_car_num": 0.0, "occupancy": 0.1}
    return [
        {
            "id": str(i),
            "current_phase": "WT-ET",
            "movements": {m: dict(move) for m in ("NL", "NT", "WL", "WT", "SL", "ST", "EL", "ET")},
        }
        for i in range(n)
    ]


def _masks(tmp_path, code, **spec):
    path = tmp_path / "f.py"
    path.write_text(code)
    return TrainingMasks(ExplorationSpec(kind="function", code_file=str(path), **spec), TSC)


EMPTIES_ROW_0 = """
def compute_mask(intersections, action_space):
    m = np.ones((len(intersections), 8))
    m[0] = 0
    m[1, 3:] = 0
    return m, {}
"""


def test_a_mask_that_removes_every_action_of_an_agent_is_ignored(tmp_path):
    masks = _masks(tmp_path, EMPTIES_ROW_0)
    avail = np.ones((3, 8), bool)
    avail[2, 5:] = False  # a three-arm light: phases 5-7 do not exist
    allowed = masks.allowed(lambda: (_intersections(3), ["p"] * 8), avail)
    assert allowed[0].all()  # everything removed: the mask is ignored for that agent
    assert allowed[1].tolist() == [True] * 3 + [False] * 5
    assert allowed[2].tolist() == avail[2].tolist()
    assert masks.stats()["all_masked_ignored"] == 1 and masks.stats()["error"] is None
    masks.close()
    # the released runner's rule (empty_row = "step"): the whole decision's mask is skipped, for every agent
    step = _masks(tmp_path, EMPTIES_ROW_0, empty_row="step")
    assert (step.allowed(lambda: (_intersections(3), ["p"] * 8), avail) == avail).all()
    assert step.stats()["all_masked_ignored"] == 1
    step.close()


def test_a_function_that_fails_during_training_is_switched_off_and_reported(tmp_path):
    masks = _masks(
        tmp_path,
        """
def compute_mask(intersections, action_space):
    if intersections[0]["movements"]["NL"]["car_num"] > 5:
        raise KeyError("surprise")
    return np.zeros((len(intersections), 8)) + np.eye(8)[:len(intersections)], {}
""",
    )
    avail = np.ones((2, 8), bool)
    assert masks.allowed(lambda: (_intersections(2), ["p"] * 8), avail).sum() == 2
    busy = _intersections(2)
    busy[0]["movements"]["NL"]["car_num"] = 9.0
    assert masks.allowed(lambda: (busy, ["p"] * 8), avail).all()  # falls back to the available phases
    assert masks.stats()["error"]["cause"] == "exception" and "surprise" in masks.stats()["error"]["message"]
    assert not masks.active and masks.allowed(lambda: (_intersections(2), ["p"] * 8), avail).all()
    masks.close()


def test_random_pruning_keeps_seventy_percent_of_the_available_actions():
    masks = TrainingMasks(ExplorationSpec(kind="random"), TSC, seed=1)
    avail = np.ones((4, 10), bool)
    avail[3, 5:] = False
    allowed = masks.allowed(lambda: 1 / 0, avail)  # random pruning never builds the state
    assert allowed[:3].sum(1).tolist() == [7, 7, 7] and allowed[3].sum() == 4 and not allowed[3, 5:].any()


def test_a_stop_whose_interrupt_was_swallowed_still_stops_the_loop():
    """The SIGTERM handler's KeyboardInterrupt is lost when Python runs it inside a finalizer (a Popen's __del__);
    the flag it sets stops the loop at its next step all the same."""
    from coordinator.espark import runs

    started = []

    class Copy:  # stands in for a ChildRun (this checks run_all's own loop only)
        def start(self):
            started.append(self)

    runs.stop_requested.set()
    try:
        with pytest.raises(KeyboardInterrupt):
            runs.run_all([Copy()], 1)
    finally:
        runs.stop_requested.clear()
    assert started == []
