"""A node started by hand as its own program joins a running coordinator; SIGTERM and silence are handled."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from conftest import BACKGROUND, ROOT, coordinator_log, metrics, node_info, pid_alive, start_run, wait_for


def test_hand_started_node_joins_reports_and_is_dropped_when_silent(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND, "run.heartbeat_timeout_s=1.5")
    reap(proc)
    wait_for(lambda: "run started" in coordinator_log(run_dir), 60, "run started")
    node_log = tmp_path / "edge1.log"
    with open(node_log, "w") as fh:
        node = subprocess.Popen(
            [sys.executable, "-m", "agent_node", "--id", "edge1", "--run", str(run_dir)],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(lambda: "registered edge1 (agent" in coordinator_log(run_dir), 20, "edge1 registered")
        wait_for(lambda: "registered (inbox" in node_log.read_text(), 20, "edge1 has its acknowledgement")
        assert node.poll() is None, "the node keeps running after it joined"
        node.send_signal(signal.SIGTERM)  # a clean stop flushes its last metrics
        assert node.wait(10) == 0
        assert "stopping: signal SIGTERM" in node_log.read_text()
        final = wait_for(
            lambda: [m for m in metrics(run_dir) if m["node"] == "edge1" and m["final"]], 5, "final metrics"
        )
        assert final[0]["kind"] == "beacon_node"
        failed = wait_for(
            lambda: [m for m in metrics(run_dir) if m.get("event") == "node_failed" and m["node"] == "edge1"],
            5,
            "silence detected",
        )
        assert failed[0]["log_tail"] == "heartbeat timeout"
    finally:
        if node.poll() is None:
            node.kill()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


def test_sigterm_to_a_launched_node_flushes_and_it_is_restarted(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND)
    reap(proc)
    wait_for(lambda: any(m["node"] == "veh2" for m in metrics(run_dir)), 60, "veh2 stepping")
    pid, _ = node_info(run_dir, "veh2")
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: not pid_alive(pid), 5, "veh2 exit")
    recs = wait_for(
        lambda: [m for m in metrics(run_dir) if m["node"] == "veh2" and m["final"]], 5, "veh2 final metrics"
    )
    assert recs[0]["steps"] > 0
    event = wait_for(lambda: [m for m in metrics(run_dir) if m.get("event") == "node_failed"], 5, "exit reported")
    assert event[0]["node"] == "veh2" and event[0]["exitcode"] == 0
    wait_for(lambda: (node_info(run_dir, "veh2") or (pid,))[0] != pid, 30, "veh2 restarted")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
