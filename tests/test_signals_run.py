"""Traffic signals through real processes: one masked-IPPO learner per light of Grid 4x4, tripinfo metrics."""

import json

from conftest import ROOT, metrics, run_cli

SCENARIO = ROOT / "scenarios" / "signals_espark.toml"


def test_ippo_on_grid4x4_runs_learns_and_reports_the_trip_metrics(shared_run):
    sets = [
        "world.episodes=2",
        "world.horizon_s=300",
        "world.test_episodes=1",
        "algo.ppo={update_epochs=1}",
        "algo.method=ippo",
        "world.update_every=1",
    ]  # test_regression_numbers.py's "signals" case: one run for both
    out, _ = shared_run(SCENARIO, *sets, seed=2)
    summary = json.loads((out / "summary.json").read_text())
    res = summary["results"]
    assert summary["status"] == "ok" and res["train_episodes"] == 2
    assert res["test_delay"] > 0 and res["test_trip_time"] > res["test_delay"] and res["test_return"] <= 0
    assert res["train_delay"] > 0 and res["train_trip_time"] > res["train_delay"]
    updates = [m for m in metrics(out) if m["kind"] == "ippo_epoch"]
    assert {u["node"] for u in updates} == {f"agent{i}" for i in range(16)}  # one learner per light
    assert all(u["n"] == 20 for u in updates)  # 300 s / 15 s decisions each episode


def test_a_map_that_does_not_exist_is_a_config_error(tmp_path):
    proc = run_cli("run", str(SCENARIO), "--out", str(tmp_path / "x"), "--set", "world.map=manhattan")
    assert proc.returncode != 0 and "world.map" in proc.stderr


def test_an_exploration_function_masks_phases_in_training_only(tmp_path):
    """The function runs world-side in a sandbox worker at every training decision; test episodes are unmasked."""
    out = tmp_path / "masked"
    code = ROOT / "scenarios" / "espark_functions" / "tsc_busiest.py"
    args = ["run", str(SCENARIO), "--out", str(out), "--no-progress", "--seed", "2"]
    for s in [
        "world.episodes=1",
        "world.horizon_s=300",
        "world.test_episodes=1",
        "algo.ppo={update_epochs=1}",
        "algo.method=ippo",
        f'world.exploration={{kind="function", code_file="{code}"}}',
    ]:
        args += ["--set", s]
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (world,) = [m for m in metrics(out) if m["kind"] == "world" and m["final"]]
    assert world["exploration"]["calls"] == 20 and world["exploration"]["error"] is None  # 20 training decisions
    assert 0.05 < world["exploration"]["pruned_fraction"] < 1.0


def test_the_papers_ftc_and_max_pressure_baselines_run_as_agent_processes(tmp_path):
    delays = {}
    for method in ("ftc", "max_pressure"):
        out = tmp_path / method
        args = ["run", str(SCENARIO), "--out", str(out), "--no-progress", "--seed", "3"]
        for s in ["world.horizon_s=600", "world.test_episodes=1", f"algo.method={method}"]:
            args += ["--set", s]
        proc = run_cli(*args, timeout=300)
        assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        res = summary["results"]
        assert summary["status"] == "ok" and res["train_episodes"] == 0  # nothing to learn: test episodes only
        assert res["test_delay"] > 0 and res["test_trip_time"] > 0 and res["test_delay_finished"] > 0
        eps = [m for m in metrics(out) if m["kind"] == "signal_episode"]
        assert [e["mode"] for e in eps] == ["test"]
        delays[method] = res["test_delay"]
    assert delays["ftc"] != delays["max_pressure"]
