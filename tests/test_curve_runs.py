"""CURVE runs with real processes: a device joins, the medium and an agent are killed and restarted, and the
run goes on at full speed; strangers' handshakes never hold up an allowed client's."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import zmq
from conftest import BACKGROUND, ROOT, coordinator_log, metrics, node_info, start_run, wait_for

from protocols.codec import encode
from protocols.messages import Heartbeat, Metrics, Shutdown, Tick
from protocols.security import KeyPair, make_client, read_public_key, write_key_pair
from protocols.sockets import PeerLink, secure_inbox


def _rate(run_dir, since: float) -> float:
    """World steps per second of wall time over the records written after `since` (epoch seconds)."""
    world = [m for m in metrics(run_dir) if m["kind"] == "world" and m["wall"] > since]
    if len(world) < 2:
        return 0.0
    return (world[-1]["step"] - world[0]["step"]) / max(world[-1]["wall"] - world[0]["wall"], 1e-9)


def _heard_since(run_dir, since: float, nodes) -> bool:
    """Every node in nodes reported more beacons received in two records written after `since`."""
    by_node: dict[str, list[int]] = {}
    for m in metrics(run_dir):
        if m["kind"] == "beacon_node" and m["wall"] > since:
            by_node.setdefault(m["node"], []).append(m["beacons_rx"])
    return all(len(by_node.get(n, [])) > 1 and by_node[n][-1] > by_node[n][0] for n in nodes)


def _medium_pid(run_dir) -> int:
    return int(re.findall(r"registered medium \(medium, pid (\d+)\)", coordinator_log(run_dir))[-1])


def test_device_join_medium_restart_and_agent_restart_under_curve(tmp_path, reap):
    keys, allow = tmp_path / "keys", tmp_path / "allow"
    edge = KeyPair.generate()
    write_key_pair(keys, "edge1", edge)
    allow.mkdir()
    (allow / "edge1.key").write_text((keys / "edge1.key").read_text())
    run_dir = tmp_path / "run"
    proc = start_run(
        run_dir,
        "run.steps=100000",
        "security.curve=on",
        f"security.allow_dir={allow}",
        "run.on_node_failure=restart",
        "run.max_restarts=3",
    )
    reap(proc)
    vehicles = [f"veh{i}" for i in range(14)]
    wait_for(lambda: all(node_info(run_dir, v) for v in vehicles), 90, "all 14 nodes registered over CURVE")
    wait_for(lambda: _heard_since(run_dir, 0, vehicles), 30, "beacons flowing")
    t0 = time.time()
    time.sleep(3)
    base = _rate(run_dir, t0)
    assert base > 10, base

    # a device joins by hand: the medium connects to it with the key the Directory gives (it crashed here)
    endpoint = (run_dir / "coordinator.endpoint").read_text().strip()
    with open(tmp_path / "edge1.log", "w") as log:
        device = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_node",
                "--id",
                "edge1",
                "--coordinator",
                endpoint,
                "--key",
                str(keys / "edge1.key_secret"),
                "--coordinator-key",
                str(run_dir / "coordinator.key"),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    reap(device)
    wait_for(lambda: "registered edge1 (agent" in coordinator_log(run_dir), 30, "edge1 registered")
    joined = time.time()
    wait_for(lambda: _heard_since(run_dir, joined, vehicles), 30, "beacons after the join")
    failed = [m for m in metrics(run_dir) if m.get("event") == "node_failed"]
    assert not failed, f"a process failed when the device joined: {failed}"

    # the medium is killed: its successor takes everyone's keys from the Directory and traffic resumes
    os.kill(_medium_pid(run_dir), signal.SIGKILL)
    wait_for(
        lambda: [m for m in metrics(run_dir) if m.get("event") == "node_restarted" and m["node"] == "medium"],
        10,
        "medium restarted",
    )
    back = time.time()
    wait_for(lambda: _heard_since(run_dir, back + 1, vehicles), 30, "beacons through the new medium")
    t1 = time.time()
    time.sleep(3)
    after_medium = _rate(run_dir, t1)

    # an agent is killed: its successor (same key) is admitted by every peer at once
    pid, _ = node_info(run_dir, "veh3")
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: (node_info(run_dir, "veh3") or (pid,))[0] != pid, 30, "veh3 restarted and registered")
    back = time.time()
    wait_for(lambda: _heard_since(run_dir, back + 1, vehicles), 30, "beacons after the agent restart")
    t2 = time.time()
    time.sleep(3)
    after_agent = _rate(run_dir, t2)
    # traffic back at the world's pace: a world stalled on a peer goes at one step per step deadline (1 s), under
    # 0.1 x base; 3 s windows at different moments of a changing load differ (0.57 x base measured once)
    assert after_medium > 0.25 * base and after_agent > 0.25 * base, (base, after_medium, after_agent)
    assert (
        "refused our CURVE handshake" not in (run_dir / "logs" / "world.log").read_text()
        or "accepted our CURVE handshake" in (run_dir / "logs" / "world.log").read_text()
    )
    device.send_signal(signal.SIGTERM)
    assert device.wait(15) == 0
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


def test_strangers_handshakes_never_delay_an_allowed_client():
    """Unknown keys keep connecting (each would wait for a Directory that never names it) while an allowed
    client connects: its first message arrives before a stranger's 2 s grace could have delayed it."""
    ctx, cctx = zmq.Context(), zmq.Context()
    alice = KeyPair.generate()
    inbox = secure_inbox(ctx, {})
    inbox.gate.grace_s = 2.0  # as a node's gate: an unknown key may wait for the Directory
    strangers = []
    try:
        for _ in range(60):
            s = cctx.socket(zmq.DEALER)
            make_client(s, KeyPair.generate(), inbox.pair.public)
            s.setsockopt(zmq.LINGER, 0)
            s.connect(inbox.endpoint)
            strangers.append(s)
        time.sleep(0.2)
        inbox.gate.admit(alice.public, "alice")
        t0 = time.monotonic()
        link = PeerLink(cctx, inbox.endpoint, "alice", curve=(alice, inbox.pair.public))
        link.send(encode(Heartbeat(), src="alice", dst="x", seq=0))
        assert inbox.sock.poll(2000)
        assert inbox.recv()[0] == b"alice"
        assert time.monotonic() - t0 < 1.5
        link.close(0)
    finally:
        for s in strangers:
            s.close(0)
        cctx.term()
        inbox.close()
        ctx.term()


def test_a_refused_link_reconnects_once_its_key_is_admitted():
    """libzmq gives up after a refused handshake; PeerLink.check() tries again and the message gets through."""
    ctx, cctx = zmq.Context(), zmq.Context()
    alice = KeyPair.generate()
    inbox = secure_inbox(ctx, {})  # grace 0: alice is refused at once
    try:
        link = PeerLink(cctx, inbox.endpoint, "alice", curve=(alice, inbox.pair.public), watch_refusals=True)
        link.send(encode(Heartbeat(), src="alice", dst="x", seq=0))
        wait_for(lambda: (link.check(), link.refusals)[1], 5, "the refusal seen by the link")
        inbox.gate.admit(alice.public, "alice")

        def through():
            link.check()
            link.send(encode(Heartbeat(), src="alice", dst="x", seq=1), zmq.NOBLOCK)
            return inbox.sock.poll(50) and inbox.recv()[0] == b"alice"

        wait_for(through, 5, "a message after the key was admitted")
        link.close(0)
    finally:
        cctx.term()
        inbox.close()
        ctx.term()


def test_many_handshakes_waiting_for_the_directory_are_all_admitted():
    """Several peers connect before the Directory names them (libzmq numbers every ZAP request "1"): each is
    answered on its own once its key is admitted, none waits for libzmq's 30 s handshake timeout."""
    ctx, cctx = zmq.Context(), zmq.Context()
    pairs = {f"veh{i}": KeyPair.generate() for i in range(6)}
    inbox = secure_inbox(ctx, {})
    inbox.gate.grace_s = 2.0
    links = []
    try:
        for name, pair in pairs.items():
            links.append(PeerLink(cctx, inbox.endpoint, name, curve=(pair, inbox.pair.public)))
            links[-1].send(encode(Heartbeat(), src=name, dst="x", seq=0))
        time.sleep(0.3)
        inbox.gate.admit_only({p.public: n for n, p in pairs.items()})
        seen = set()
        deadline = time.monotonic() + 10.0  # far below libzmq's 30 s handshake timeout
        while len(seen) < len(pairs) and time.monotonic() < deadline:
            if inbox.sock.poll(100):
                seen.add(inbox.recv()[0])
        assert seen == {n.encode() for n in pairs}
    finally:
        for link in links:
            link.close(0)
        cctx.term()
        inbox.close()
        ctx.term()


def test_a_stranger_can_neither_stop_a_default_run_nor_write_its_records(tmp_path, reap):
    """A run on loopback proves membership by default: a process outside it, with no key or an unknown one,
    cannot forge the world's final record (which ended runs early with status ok), a Shutdown or a Tick."""
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND)
    reap(proc)
    wait_for(lambda: all(node_info(run_dir, f"veh{i}") for i in range(4)), 90, "all 4 nodes registered")
    endpoint = (run_dir / "coordinator.endpoint").read_text().strip()
    coord_key = read_public_key(run_dir / "coordinator.key")
    _, veh2 = node_info(run_dir, "veh2")
    forged = encode(
        Metrics(kind="world", values={"step": 987654321, "steps_per_s": 1.0}, final=True),
        src="world",
        dst="coordinator",
        seq=0,
    )
    ctx = zmq.Context()
    try:
        plain = ctx.socket(zmq.DEALER)  # no key at all, naming itself the world
        plain.setsockopt(zmq.ROUTING_ID, b"world")
        stranger = ctx.socket(zmq.DEALER)  # a CURVE client whose key no one admitted
        make_client(stranger, KeyPair.generate(), coord_key)
        stranger.setsockopt(zmq.ROUTING_ID, b"world")
        shutdown = ctx.socket(zmq.DEALER)  # the coordinator's Shutdown and a Tick, straight to a node
        shutdown.setsockopt(zmq.ROUTING_ID, b"coordinator")
        for sock, target in ((plain, endpoint), (stranger, endpoint), (shutdown, veh2)):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(target)
        for _ in range(5):  # a refused connection leaves no peer to queue for: never block on it
            for sock, frames in (
                (plain, forged),
                (stranger, forged),
                (shutdown, encode(Shutdown(reason="forged"), src="coordinator", dst="veh2", seq=0)),
                (shutdown, encode(Tick(step=1, delivered={}), src="medium", dst="veh2", seq=0)),
            ):
                try:
                    sock.send_multipart(frames, zmq.NOBLOCK)
                except zmq.Again:
                    pass
            time.sleep(0.2)
        wait_for(
            lambda: "refused a connection with unknown CURVE key" in coordinator_log(run_dir),
            10,
            "the unknown key refused",
        )
        n_world = len([m for m in metrics(run_dir) if m["kind"] == "world"])
        wait_for(
            lambda: len([m for m in metrics(run_dir) if m["kind"] == "world"]) > n_world + 5, 20, "the run going on"
        )
        assert proc.poll() is None
        assert not [m for m in metrics(run_dir) if m.get("step") == 987654321]
        assert "shutdown requested" not in (run_dir / "logs" / "veh2.log").read_text()
    finally:
        ctx.destroy(linger=0)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "interrupted"
