"""Network outages: sends wait for a peer that is away; a hand-started node rides out a 5 s cut and resumes."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

import zmq
from conftest import BACKGROUND, ROOT, coordinator_log, free_port, metrics, start_run, wait_for

from agent_node.cli import add_arguments, config_from_args
from protocols.sockets import Inbox, PeerLink

RELAY = ROOT / "tests" / "tcp_relay.py"


def start_relay(*specs: str) -> subprocess.Popen:
    """tests/tcp_relay.py forwarding PORT=HOST:PORT specs, once it listens."""
    relay = subprocess.Popen([sys.executable, str(RELAY), *specs], stdout=subprocess.PIPE, text=True)
    assert relay.stdout.readline().strip() == "relay ready"
    return relay


def node_records(run_dir, kind: str) -> list[dict]:
    return [m for m in metrics(run_dir) if m["node"] == "edge1" and m["kind"] == kind]


def test_messages_sent_while_the_peer_is_away_wait_and_arrive_in_order():
    ctx = zmq.Context()
    port = free_port()
    link = PeerLink(ctx, f"tcp://127.0.0.1:{port}", "edge1")
    try:
        assert all(link.send([b"%d" % i]) for i in range(100))  # nobody listens yet: they queue
        time.sleep(0.5)  # a few reconnection attempts fail meanwhile
        inbox = Inbox(ctx, f"tcp://127.0.0.1:{port}")
        got = []
        while len(got) < 100 and inbox.sock.poll(5000):
            got.append(inbox.recv_raw()[1][0])
        assert got == [b"%d" % i for i in range(100)] and link.failed == 0
        inbox.close()
    finally:
        link.close(0)
        ctx.term()


def test_outage_options_of_the_node_cli():
    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(
        p.parse_args(
            [
                "--id",
                "d1",
                "--coordinator",
                "tcp://10.0.0.1:5555",
                "--coordinator-timeout",
                "60",
                "--advertise",
                "tcp://203.0.113.7:6000",
            ]
        )
    )
    assert (cfg.coordinator_timeout_s, cfg.advertise, cfg.status_interval_s) == (60, "tcp://203.0.113.7:6000", 10)


def test_node_survives_a_coordinator_outage_and_resumes(tmp_path, reap):
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND, "run.heartbeat_timeout_s=2")
    reap(proc)
    wait_for(lambda: "run started" in coordinator_log(run_dir), 60, "run started")
    coordinator_port = (run_dir / "coordinator.endpoint").read_text().strip().rsplit(":", 1)[1]
    up, down, inbox = free_port(), free_port(), free_port()
    # the node reaches the coordinator only through the relay, and the coordinator reaches the node's
    # inbox only through it too (the node advertises the relay's port, as a device behind NAT would)
    specs = (f"{up}=127.0.0.1:{coordinator_port}", f"{down}=127.0.0.1:{inbox}")
    relay = start_relay(*specs)
    node_log = tmp_path / "edge1.log"
    with open(node_log, "w") as fh:
        node = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "agent_node",
                "--id",
                "edge1",
                "--run",
                str(run_dir),
                "--coordinator",
                f"tcp://127.0.0.1:{up}",
                "--bind",
                f"tcp://127.0.0.1:{inbox}",
                "--advertise",
                f"tcp://127.0.0.1:{down}",
                "--status-interval",
                "0.5",
                "--coordinator-timeout",
                "30",  # the 5 s cut plus a reconnect (up to 2 s apart) and the new relay's start
            ],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        wait_for(
            lambda: f"registered edge1 (agent, pid {node.pid}) at tcp://127.0.0.1:{down}" in coordinator_log(run_dir),
            30,
            "edge1 registered at its advertised endpoint",
        )
        wait_for(lambda: node_records(run_dir, "node_status"), 10, "edge1 reporting")

        relay.kill()  # the network goes away for 5 s: both connections are reset
        relay.wait()
        cut = time.monotonic()
        wait_for(lambda: "remote node edge1 silent" in coordinator_log(run_dir), 5, "edge1 marked down")
        wait_for(lambda: "coordinator silent for" in node_log.read_text(), 5, "the node notices")
        time.sleep(max(0.0, 5 - (time.monotonic() - cut)))
        assert node.poll() is None, "the node keeps running through the outage"
        relay = start_relay(*specs)

        wait_for(lambda: "node edge1 is back" in coordinator_log(run_dir), 10, "the coordinator re-admits edge1")
        wait_for(lambda: "coordinator back after" in node_log.read_text(), 10, "the node hears the coordinator again")
        back = [m for m in metrics(run_dir) if m.get("event") == "node_back"]
        assert back[0]["node"] == "edge1" and back[0]["down_s"] > 1
        # records the node wrote during the outage waited in its queue and arrived; none was lost
        during = wait_for(
            lambda: [r for r in node_records(run_dir, "node_status") if r["coordinator_silent_s"] > 3],
            10,
            "status records from the outage",
        )
        assert during[0]["coordinator_outages"] == 1
        n_before = len(node_records(run_dir, "node_status"))
        wait_for(lambda: len(node_records(run_dir, "node_status")) > n_before + 2, 10, "reporting resumed")
        ns = [r["n"] for r in node_records(run_dir, "node_status")]
        assert ns == list(range(1, len(ns) + 1))

        node.send_signal(signal.SIGTERM)  # a clean stop, through the relay
        assert node.wait(10) == 0
        wait_for(lambda: [r for r in node_records(run_dir, "beacon_node") if r["final"]], 5, "final metrics")
    finally:
        print(
            "--- node log\n", node_log.read_text()[-3000:], "\n--- coordinator log\n", coordinator_log(run_dir)[-3000:]
        )
        for p in (node, relay):
            if p.poll() is None:
                p.kill()
                p.wait()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
