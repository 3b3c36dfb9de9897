"""Integration: real world, medium and 14 node processes; crashes, garbage input, clean shutdown."""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time

import zmq
from conftest import metrics, node_info, pid_alive, start_run, wait_for

from protocols.codec import decode, encode
from protocols.messages import Beacon, Observation, Ping, Pong
from protocols.sockets import request

LONG = "run.steps=100000"  # long enough that the test decides when the run ends


def _all_registered(run_dir):
    return all(node_info(run_dir, f"veh{i}") for i in range(14))


def _beacons_flowing(run_dir):
    recs = [m for m in metrics(run_dir) if m["kind"] == "beacon_node"]
    return len({m["node"] for m in recs if m["beacons_rx"] > 0}) == 14


def _running(run_dir, reap, *sets):
    """A long beacon run with all 14 nodes registered and hearing beacons."""
    proc = start_run(run_dir, LONG, *sets)
    reap(proc)
    wait_for(lambda: _all_registered(run_dir), 60, "all 14 nodes registered")
    wait_for(lambda: _beacons_flowing(run_dir), 30, "beacons received by all 14 nodes")
    return proc


def test_kill9_is_reported_and_node_restarted(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "run.on_node_failure=restart")
    pid, _ = node_info(run_dir, "veh3")
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    failed = wait_for(lambda: [m for m in metrics(run_dir) if m.get("event") == "node_failed"], 5, "failure event")
    assert failed[0]["node"] == "veh3" and failed[0]["exitcode"] == -9
    assert failed[0]["wall"] - killed_at < 2.0, "crash must be reported within 2 s"
    wait_for(lambda: (node_info(run_dir, "veh3") or (pid,))[0] != pid, 30, "veh3 restarted and registered")
    restarted_pid = node_info(run_dir, "veh3")[0]
    # the restarted node takes part again: it receives beacons after its restart
    wait_for(
        lambda: any(
            m["node"] == "veh3" and m["beacons_rx"] > 0 and m["wall"] > killed_at + 1
            for m in metrics(run_dir)
            if m["kind"] == "beacon_node"
        ),
        30,
        "restarted veh3 hears beacons",
    )
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    assert proc.returncode == 130
    for name in ("metrics.jsonl", "links.csv", "summary.json", "config.toml", "plots/delivery_vs_distance.png"):
        assert (run_dir / name).exists(), name
    assert not pid_alive(restarted_pid), "no orphan node after the run"


def test_crash_with_stop_policy_ends_cleanly_with_data_saved(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "run.on_node_failure=stop")
    pids = [node_info(run_dir, f"veh{i}")[0] for i in range(14)]
    os.kill(pids[7], signal.SIGKILL)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "veh7" in err and "exited with code -9" in err and "last log lines" in err
    assert (run_dir / "links.csv").stat().st_size > 0
    finals = [m for m in metrics(run_dir) if m["kind"] == "beacon_node" and m["final"]]
    assert len(finals) == 13, "every surviving node flushed its last metrics"
    assert all(not pid_alive(p) for p in pids)


def test_garbage_gets_an_error_reply_and_node_keeps_working(tmp_path, reap):
    """Without authentication (curve off) anyone reaches a node's inbox: the parsing layer alone holds."""
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "security.curve=off")
    pid, endpoint = node_info(run_dir, "veh5")
    ctx = zmq.Context()
    try:
        junk = [[b"\xc1garbage"], [b"\x81\xa1v\x01", b"x"], [os.urandom(64), os.urandom(3000)], [b"x" * 9000, b""]]
        for frames in junk:
            s = ctx.socket(zmq.DEALER)
            s.connect(endpoint)
            s.send_multipart(frames)
            assert s.poll(3000), f"no reply to {frames[0][:10]!r}"
            reply = decode(s.recv_multipart())
            assert reply.env.type == "error" and reply.body.code == "malformed" and reply.body.detail
            s.close(0)
        pong = request(ctx, endpoint, encode(Ping(nonce=7), src="test", dst="veh5", seq=0), timeout_ms=2000)
        assert isinstance(pong.body, Pong) and pong.body.nonce == 7
    finally:
        ctx.term()
    assert pid_alive(pid)
    count = lambda: [m for m in metrics(run_dir) if m["node"] == "veh5" and m["kind"] == "beacon_node"]  # noqa: E731
    n = len(count())
    wait_for(lambda: len(count()) > n + 1, 20, "veh5 still reporting after the garbage")
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    final = [m for m in metrics(run_dir) if m["node"] == "veh5" and m["final"]]
    assert final and final[0]["rejected"] == 4
    assert "rejected message from peer" in (run_dir / "logs" / "veh5.log").read_text()


def test_medium_crash_is_survived_with_restart(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "run.on_node_failure=restart")
    log = run_dir / "logs" / "coordinator.log"
    pid = int(re.findall(r"registered medium \(medium, pid (\d+)\)", log.read_text())[-1])
    killed_at = time.time()
    os.kill(pid, signal.SIGKILL)
    wait_for(
        lambda: [m for m in metrics(run_dir) if m.get("event") == "node_restarted" and m["node"] == "medium"],
        5,
        "medium restarted",
    )

    # radio traffic flows again through the new medium: every node hears beacons after the restart
    def heard_after_restart():
        recent = [m for m in metrics(run_dir) if m["kind"] == "beacon_node" and m["wall"] > killed_at + 2]
        by_node = {}
        for m in recent:
            by_node.setdefault(m["node"], []).append(m["beacons_rx"])
        return len(by_node) == 14 and all(v[-1] > v[0] for v in by_node.values() if len(v) > 1)

    wait_for(heard_after_restart, 30, "beacons after the medium restart")
    # the world goes on at its pace, not at one step per step deadline (1 s) as it would stalled on the lost medium
    step_now = lambda: max(m["step"] for m in metrics(run_dir) if m["kind"] == "world")  # noqa: E731
    s0 = step_now()
    wait_for(lambda: step_now() >= s0 + 100, 30, "100 more world steps")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


def test_killing_the_coordinator_leaves_no_orphans(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap)
    pids = [node_info(run_dir, f"veh{i}")[0] for i in range(14)]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(5)
    wait_for(lambda: not any(pid_alive(p) for p in pids), 10, "every node gone after the coordinator died")


def test_well_formed_but_foreign_messages_do_not_hurt_a_node(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "security.curve=off")
    pid, endpoint = node_info(run_dir, "veh6")
    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.ROUTING_ID, b"intruder")
        s.connect(endpoint)
        s.send_multipart(encode(Observation(step=1), src="intruder", dst="veh6", seq=0))  # not the world
        s.send_multipart(encode(Beacon(x=0, y=0, speed=0), src="world", dst="veh6", seq=1))  # spoofed source
        time.sleep(1.0)
        s.close(0)
    finally:
        ctx.term()
    assert pid_alive(pid)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    final = [m for m in metrics(run_dir) if m["node"] == "veh6" and m["final"]]
    assert final[0]["role_errors"] == 2 and final[0]["steps"] > 0


def test_sigterm_to_the_whole_process_group_still_stops_in_order(tmp_path, reap):
    """What `timeout`, systemd or Ctrl-C do: only the coordinator acts on it; the run folder is complete."""
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap)
    os.killpg(proc.pid, signal.SIGTERM)
    assert proc.wait(40) == 130
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["links_final"] and summary["node_failures"] == 0
    assert len([m for m in metrics(run_dir) if m["final"] and m["kind"] == "beacon_node"]) == 14


def test_a_run_that_goes_on_without_its_medium_says_degraded_and_why(tmp_path, reap):
    """on_node_failure = "continue": the medium dies, the run goes on, and its status says so (not "ok")."""
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "run.on_node_failure=continue")
    os.kill(
        int(
            re.findall(r"registered medium \(medium, pid (\d+)\)", (run_dir / "logs" / "coordinator.log").read_text())[
                -1
            ]
        ),
        signal.SIGKILL,
    )
    wait_for(
        lambda: [m for m in metrics(run_dir) if m.get("event") == "node_failed" and m["node"] == "medium"],
        10,
        "the medium's failure reported",
    )
    n = len([m for m in metrics(run_dir) if m["kind"] == "world"])
    wait_for(lambda: len([m for m in metrics(run_dir) if m["kind"] == "world"]) > n + 3, 20, "the world going on")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    status = json.loads((run_dir / "summary.json").read_text())["status"]
    assert status == "interrupted (degraded: medium exited with code -9 and was not restarted)", status


def test_shutdown_ends_while_a_stranger_keeps_sending(tmp_path, reap):
    """The coordinator reads last words after the exits until things go quiet, but not for ever."""
    run_dir = tmp_path / "run"
    proc = _running(run_dir, reap, "security.curve=off")
    endpoint = (run_dir / "coordinator.endpoint").read_text().strip()
    stop = threading.Event()

    def flood():
        ctx = zmq.Context()
        sock = ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.SNDHWM, 100)
        sock.connect(endpoint)
        frames = encode(Ping(nonce=1), src="stranger", dst="coordinator", seq=0)
        while not stop.is_set():
            try:
                sock.send_multipart(frames, zmq.NOBLOCK)
            except zmq.Again:
                time.sleep(0.001)
        sock.close(0)
        ctx.term()

    thread = threading.Thread(target=flood, daemon=True)
    thread.start()
    try:
        time.sleep(0.5)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(40) == 130
        assert time.monotonic() - t0 < 25
    finally:
        stop.set()
        thread.join(5)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
