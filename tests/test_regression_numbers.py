"""A short seeded run of every world kind gives the numbers recorded before the architecture changes (issue 22):
moving code must not change what a run computes. Record again (only when behaviour is meant to change) with
`NETMARL_RECORD=1 python -m pytest tests/test_regression_numbers.py`."""

from __future__ import annotations

import json
import math
import os

import pytest
from conftest import ROOT

RECORDED = ROOT / "tests" / "data" / "regression_numbers.json"
CASES = {  # name: (scenario file, --set list); every run is seeded and on a simulated or lock-step clock
    "beacons": ("figure8_beacons.toml", ["run.steps=100", "world.vehicles=6", "world.agents=6"]),
    "cav_figure8": (
        "figure8_rsm_masac.toml",
        [
            "world.episodes=1",
            "world.horizon=100",
            "world.test_every=0",
            "algo.U=2",
            "algo.sac={learning_starts=20, batch_size=32}",
        ],
    ),
    "cav_merge": (
        "merge_rsm_masac.toml",
        [
            "world.episodes=1",
            "world.horizon=60",
            "world.test_every=0",
            "algo.U=2",
            "algo.sac={learning_starts=20, batch_size=32}",
        ],
    ),
    "routing": (
        "grid_reled.toml",
        [
            "world.agents=4",
            "world.epochs=2",
            "world.decisions_per_epoch=50",
            "world.test_episodes=1",
            "algo.ppo={update_epochs=2}",
            "algo.sed.q=2",
            "algo.sed.expert=scripted",
        ],
    ),
    "signals": (
        "signals_espark.toml",
        [
            "world.episodes=2",
            "world.horizon_s=300",
            "world.test_episodes=1",
            "algo.ppo={update_epochs=1}",
            "algo.method=ippo",
            "world.update_every=1",
        ],
    ),
    "inventory": (
        "inventory_espark.toml",
        [
            "world.episodes=2",
            "world.update_every=1",
            "world.test_episodes=1",
            "world.env.skus=20",
            "world.env.echelons=2",
            "world.env.horizon=30",
            "algo.ppo={minibatch=256}",
            "algo.method=ippo",
        ],
    ),
    "warehouse": (
        "warehouse_alternating.toml",
        [
            "world.robots=20",
            "world.horizon=20",
            "algo.k=5",
            "run.steps=40",
            "algo.train.n_steps=1",
            "algo.train.l_rollouts=4",
            "algo.train.l_horizon=20",
            "algo.train.l_sweeps=1",
            "algo.train.eval_rollouts=8",
            "algo.train.eval_horizon=20",
        ],
    ),
}
MACHINE = ("wall", "second", "per_s", "elapsed", "pss", "rss", "cpu")  # what measures the machine, not the run


def numbers(results, prefix: str = "") -> dict[str, float]:
    """The numeric leaves of a summary, less what measures the machine rather than the run."""
    items = results.items() if isinstance(results, dict) else enumerate(results)
    out = {}
    for key, value in items:
        name = f"{prefix}{key}"
        if isinstance(key, str) and (key.endswith("_s") or any(t in key for t in MACHINE)):
            continue
        if isinstance(value, (dict, list)):
            out.update(numbers(value, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out[name] = float(value)
    return out


def run_case(shared_run, name: str) -> dict[str, float]:
    """The case's run (shared with the tests that run the same: test_signals_run, test_reled_run)."""
    scenario, sets = CASES[name]
    out, _ = shared_run(ROOT / "scenarios" / scenario, *sets, seed=2)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok"
    return numbers(summary.get("results") or {"links": summary["links"]})


@pytest.mark.timeout(450)
@pytest.mark.parametrize("name", sorted(CASES))
def test_a_short_seeded_run_gives_the_recorded_numbers(shared_run, name):
    got = run_case(shared_run, name)
    if os.environ.get("NETMARL_RECORD"):
        recorded = json.loads(RECORDED.read_text()) if RECORDED.exists() else {}
        recorded[name] = got
        RECORDED.parent.mkdir(exist_ok=True)
        RECORDED.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    want = json.loads(RECORDED.read_text())[name]
    assert sorted(got) == sorted(want)
    for key, value in want.items():
        assert got[key] == pytest.approx(value, rel=1e-3, abs=1e-9), key  # learning runs vary in the last digits
