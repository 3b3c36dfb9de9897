"""Learning off the lock-step's critical path: the paper's order learns what one process learns, pipelined repeats."""

import json
import threading

import pytest
import torch
from conftest import ROOT, metrics, run_cli

from agent_node.learners.background import BackgroundUpdate
from scenarios.config import load_scenario

FIGURE8 = ROOT / "scenarios" / "figure8_rsm_masac.toml"
QUICK = [
    "world.episodes=1",
    "world.horizon=120",
    "world.test_every=0",
    "world.agents=3",
    "algo.method=isac",
    "algo.sac={learning_starts=20, batch_size=32}",
    "algo.checkpoint_every=1",
]


def run(out, *sets, scenario=FIGURE8, seed=4):
    args = ["run", str(scenario), "--out", str(out), "--no-progress", "--seed", str(seed)]
    for s in sets:
        args += ["--set", s]
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return metrics(out)


def scores(records, kind):
    return [r.get("score", r.get("return")) for r in records if r["kind"] == kind and r["mode"] == "train"]


def actor(path):
    return torch.load(path, weights_only=False)["sac"]["actor"]


def test_background_update_runs_one_at_a_time_and_reraises():
    bg = BackgroundUpdate("test")
    release, names = threading.Event(), []
    bg.start(lambda: (release.wait(5), names.append(threading.current_thread().name)))
    assert bg.busy
    with pytest.raises(RuntimeError, match="not joined"):
        bg.start(lambda: None)
    release.set()
    bg.join()
    assert not bg.busy and names and names[0].startswith("test")
    bg.start(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        bg.close()


@pytest.mark.parametrize("mode", ["paper", "code"])
def test_paper_order_in_processes_learns_what_one_process_learns(tmp_path, mode):
    """Updates that leave the actor as it is run after the action is sent: still the same numbers, bit for bit."""
    from scenarios.cav.single import train_in_one_process

    sets = [*QUICK, f"algo.update_mode={mode}", "algo.code_update_every=3"]
    records = run(tmp_path / "run", *sets)
    one = train_in_one_process(load_scenario(FIGURE8, [*sets, "run.seed=4"]), 4, tmp_path / "net")
    assert scores(records, "cav_episode") == pytest.approx(one["scores"], abs=1e-6)
    for node, sac in one["learners"].items():
        theirs = actor(tmp_path / "run" / "checkpoints" / f"{node}.pt")
        assert all(torch.equal(theirs[k], v) for k, v in sac.actor.state_dict().items()), node


def test_pipelined_learning_repeats_with_the_same_seed(tmp_path):
    """The update runs beside the world's step and is applied at fixed points: the same seed, the same run."""
    a, b, paper = (
        run(tmp_path / x, *QUICK, *(["algo.learn=pipelined"] if x != "paper" else [])) for x in ("a", "b", "paper")
    )
    assert scores(a, "cav_episode") == scores(b, "cav_episode")
    for node in ("veh0", "veh1", "veh2"):
        wa, wb, wp = (actor(tmp_path / x / "checkpoints" / f"{node}.pt") for x in ("a", "b", "paper"))
        assert all(torch.equal(wa[k], wb[k]) for k in wa)
        assert not all(torch.equal(wa[k], wp[k]) for k in wa), "pipelined acts with weights one update older"
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["status"] == "ok"


def test_an_episodic_world_in_one_process_learns_what_netmarl_run_learns(tmp_path):
    """The benchmark's single-process baseline: the world's own class calling the roles directly."""
    from scenarios.one_process import run_in_one_process

    scenario = ROOT / "scenarios" / "inventory_espark.toml"
    sets = [
        "world.episodes=3",
        "world.update_every=1",
        "world.test_episodes=1",
        "world.env.skus=10",
        "world.env.echelons=2",
        "world.env.horizon=20",
        "algo.ppo={minibatch=128}",
        "algo.method=ippo",
    ]
    records = run(tmp_path / "run", *sets, scenario=scenario, seed=2)
    here = run_in_one_process(load_scenario(scenario, [*sets, "run.seed=2"]), tmp_path / "one")
    assert len(scores(here, "inventory_episode")) == 3
    assert scores(records, "inventory_episode") == scores(here, "inventory_episode")

    def updates(recs):
        return sorted((r["node"], r["epoch"], r["policy_loss"]) for r in recs if r["kind"] == "stocker_update")

    assert updates(records) == updates(here)
    # the warehouses update at once, each in its own process: the world asks all of them before it waits
    spans = {}
    for r in records:
        if r["kind"] == "stocker_update":
            spans.setdefault(r["epoch"], []).append((r["started"], r["started"] + r["seconds"]))
    overlapping = [e for e, (a, b) in spans.items() if max(a[0], b[0]) < min(a[1], b[1])]
    assert overlapping, f"no two updates of an epoch ran at the same time: {spans}"
