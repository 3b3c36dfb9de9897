"""The run folder's TensorBoard event files: which numbers become scalars, and that no peer can flood them."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import ROOT, SCENARIO, tensorboard_scalars

from coordinator.tensorboard import MAX_TAGS_PER_NODE, TensorBoardLog


def test_numbers_become_scalars_at_their_records_step_and_tags_are_bounded_per_node(tmp_path):
    board = TensorBoardLog(tmp_path)
    board.add({"node": "world", "kind": "routing_episode", "mode": "train", "episode": 3, "reward": 1.5, "ok": True})
    board.add({"node": "agent0", "kind": "router_epoch", "epoch": 2, "stats": {"kl": 0.01, "bad": float("nan")}})
    board.add({"node": "agent0", "kind": "agent_node", "x": 1})  # no step field: counted per (node, kind)
    board.add({"node": "agent0", "kind": "agent_node", "x": 2})
    board.add({"node": "coordinator", "kind": "event", "n": 5})  # events are not scalars
    flood = {f"k{i}": i for i in range(2 * MAX_TAGS_PER_NODE)}
    board.add({"node": "agent9", "kind": "flood", **flood})
    board.close()
    got = tensorboard_scalars(tmp_path)
    assert got["routing_episode/train/reward"] == [(3, 1.5)]
    assert got["router_epoch/agent0/stats.kl"] == [(2, 0.009999999776482582)]
    assert sorted(got["agent_node/agent0/x"]) == [(0, 1.0), (1, 2.0)]
    assert not [t for t in got if t.endswith(("/ok", ".bad")) or t.startswith("event")]
    assert sum(t.startswith("flood/") for t in got) == MAX_TAGS_PER_NODE and board.dropped == MAX_TAGS_PER_NODE


def test_a_runs_delivery_ratio_per_message_type_is_in_its_event_files(shared_run):
    """A real beacon run: each of the medium's link reports becomes links/<type>/delivery_ratio at the world's step,
    and the last one is the ratio summary.json gives. The periodic reports come every REPORT_EVERY_S of wall time
    through the same path as the final one, so a fast machine may finish 300 steps with the final report only."""
    out, _ = shared_run(SCENARIO, "run.steps=300")
    summary = json.loads((out / "summary.json").read_text())
    got = tensorboard_scalars(out / "tensorboard")
    for kind in ("beacon", "payload"):
        series = got[f"links/{kind}/delivery_ratio"]  # in the order written
        assert series and all(0 <= v <= 1 for _, v in series)  # periodic reports (if any), then the final one
        assert [step for step, _ in series] == sorted(step for step, _ in series)
        assert series[-1][0] == summary["steps"]
        assert series[-1][1] == pytest.approx(summary["links"][kind]["delivery_ratio"], rel=1e-6)


def test_the_coordinator_writes_events_without_loading_torch(tmp_path):
    """tensorboardX imports torch when it is installed (2-3 s of every run's start); the coordinator has no tensors."""
    code = (
        "import sys; from coordinator.tensorboard import TensorBoardLog; b = TensorBoardLog(sys.argv[1]); "
        "b.add({'node': 'world', 'kind': 'k', 'episode': 1, 'r': 2.5}); b.close(); assert 'torch' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=ROOT, check=True, timeout=60)
    assert tensorboard_scalars(tmp_path)["k/r"] == [(1, 2.5)]
