"""MABIM inventory through real processes: one stocker learner per warehouse, updates, test profit, pruning masks."""

import json

from conftest import ROOT, metrics, run_cli

SCENARIO = ROOT / "scenarios" / "inventory_espark.toml"
SMALL = [
    "world.episodes=2",
    "world.update_every=1",
    "world.test_episodes=1",
    "world.env.skus=20",
    "world.env.echelons=2",
    "world.env.horizon=30",
    "algo.ppo={minibatch=256}",
    "algo.method=ippo",
]


def _run(out, *extra):
    args = ["run", str(SCENARIO), "--out", str(out), "--no-progress", "--seed", "2"]
    for s in [*SMALL, *extra]:
        args += ["--set", s]
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads((out / "summary.json").read_text()), metrics(out)


def test_ippo_two_warehouses_learn_and_report_test_profit(tmp_path):
    summary, recs = _run(tmp_path / "ippo")
    res = summary["results"]
    assert summary["status"] == "ok" and res["train_episodes"] == 2 and res["test_profit"] is not None
    updates = [m for m in recs if m["kind"] == "stocker_update"]
    assert sorted((u["node"], u["epoch"]) for u in updates) == [
        ("agent0", 1),
        ("agent0", 2),
        ("agent1", 1),
        ("agent1", 2),
    ]
    assert all(u["n"] == 20 * 30 and u["episodes"] == 1 for u in updates)  # 20 SKUs x 30 days each
    eps = [m for m in recs if m["kind"] == "inventory_episode"]
    assert [e["mode"] for e in eps] == ["train", "train", "test"]
    for e in eps:
        comps = e["components"]
        assert set(comps) == {"reward", "gross_margin", "excess_cost", "order_cost", "holding_cost", "backlog_cost"}
        assert all(len(v) == 2 for v in comps.values())
        assert abs(sum(comps["reward"]) - e["return"]) < 1e-6 * max(1.0, abs(e["return"]))
        assert e["profit"] == e["return"]  # the paper's profit is reward2, the net of every cost (can be negative)
        assert abs(sum(comps["gross_margin"]) - e["gross_margin"]) < 1e-6 * max(1.0, e["gross_margin"])
    assert res["exploration"]["kind"] == "none" and res["exploration"]["calls"] == 0
    assert (tmp_path / "ippo" / "checkpoints" / "agent1.pt").exists()


def test_random_pruning_masks_training_only(tmp_path):
    summary, recs = _run(tmp_path / "rand", "algo.method=random_pruning")  # the baseline sets the random masks
    ex = summary["results"]["exploration"]
    assert ex["calls"] == 2 * 30 and abs(ex["pruned_fraction"] - 0.3) < 0.05 and ex["error"] is None
    final = [m for m in recs if m["kind"] == "world" and m["final"]]
    assert final[-1]["exploration"]["calls"] == 60 and final[-1]["default_actions"] == 0


def test_an_unknown_method_is_a_config_error(tmp_path):
    proc = run_cli("run", str(SCENARIO), "--out", str(tmp_path / "x"), "--set", "algo.method=qmix")
    assert proc.returncode != 0 and "algo.method" in proc.stderr
