"""CURVE: key files, the allow-list, and real sockets and processes refusing unknown keys and forged ids."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
import zmq
import zmq.auth
from conftest import BACKGROUND, ROOT, coordinator_log, metrics, start_run, wait_for

from protocols.codec import decode, encode
from protocols.messages import Heartbeat, Metrics, Ping, Pong
from protocols.security import (
    Curve,
    KeyPair,
    is_loopback,
    load_allow_dir,
    make_client,
    read_key_pair,
    read_public_key,
    write_key_pair,
)
from protocols.sockets import PeerLink, secure_inbox
from scenarios.config import SecurityConfig


# ---------------------------------------------------------------- key files
def test_key_files_round_trip_and_secret_is_private(tmp_path):
    pair = KeyPair.generate()
    public_path, secret_path = write_key_pair(tmp_path, "edge1", pair)
    assert (public_path.name, secret_path.name) == ("edge1.key", "edge1.key_secret")
    assert secret_path.stat().st_mode & 0o777 == 0o600
    assert "secret" not in public_path.read_text().replace("Secret", "")
    assert read_key_pair(secret_path) == pair == read_key_pair(tmp_path, "edge1")  # a folder means NAME.key_secret
    assert read_public_key(public_path) == pair.public == read_public_key(pair.public)
    assert zmq.auth.load_certificate(secret_path) == (pair.public.encode(), pair.secret.encode())  # zmq.auth format
    with pytest.raises(FileExistsError):
        write_key_pair(tmp_path, "edge1", KeyPair.generate())
    with pytest.raises(ValueError, match="no secret key"):
        read_key_pair(public_path)
    assert "secret" not in repr(pair)


def test_allow_dir_maps_each_public_key_to_its_file_name(tmp_path):
    a, b = KeyPair.generate(), KeyPair.generate()
    write_key_pair(tmp_path / "keys", "edge1", a)
    write_key_pair(tmp_path / "keys", "edge2", b)
    assert load_allow_dir(tmp_path / "keys") == {a.public: "edge1", b.public: "edge2"}
    with pytest.raises(ValueError, match="does not exist"):
        load_allow_dir(tmp_path / "nowhere")


def test_curve_settings_need_both_keys_and_bad_keys_are_named(tmp_path):
    pair, coord = KeyPair.generate(), KeyPair.generate()
    assert Curve.from_settings() is None
    assert Curve.from_settings(pair.secret, coordinator_key=coord.public) == Curve(pair, coord.public)
    with pytest.raises(ValueError, match="both"):
        Curve.from_settings(coordinator_key=coord.public)
    with pytest.raises(ValueError, match="cannot read"):
        Curve.from_settings(key_file=str(tmp_path / "missing.key_secret"), coordinator_key=coord.public)
    with pytest.raises(ValueError, match="Z85"):
        KeyPair.from_secret("x" * 39)


@pytest.mark.parametrize(
    "endpoint, loopback",
    [
        ("tcp://127.0.0.1:*", True),
        ("tcp://localhost:5555", True),
        ("tcp://[::1]:5555", True),
        ("ipc:///tmp/x", True),
        ("tcp://*:5555", False),
        ("tcp://0.0.0.0:5555", False),
        ("tcp://10.0.0.1:5555", False),
        ("tcp://eth0:5555", False),
    ],
)
def test_curve_auto_is_on_for_every_run_but_an_mqtt_run_on_loopback(endpoint, loopback):
    assert is_loopback(endpoint) is loopback
    assert SecurityConfig().enabled(endpoint)
    assert SecurityConfig().enabled(endpoint, mqtt=True) is (not loopback)
    assert SecurityConfig(curve="on").enabled(endpoint) and not SecurityConfig(curve="off").enabled(endpoint)


# ---------------------------------------------------------------- real sockets, one process
@pytest.fixture
def inbox_and_keys():
    """A CURVE inbox admitting 'alice' and 'bob'; yields (inbox, server pair, {name: pair}, client context)."""
    ctx, client_ctx = zmq.Context(), zmq.Context()
    peers = {"alice": KeyPair.generate(), "bob": KeyPair.generate()}
    inbox = secure_inbox(ctx, {p.public: name for name, p in peers.items()})
    yield inbox, inbox.pair, peers, client_ctx
    _LINKS.clear()
    client_ctx.destroy(linger=0)
    inbox.close()
    ctx.term()


_LINKS: list[PeerLink] = []  # kept alive until the fixture destroys the client context


def _link(client_ctx, inbox, server, pair, identity):
    _LINKS.append(PeerLink(client_ctx, inbox.endpoint, identity, curve=(pair, server.public)))
    return _LINKS[-1]


def _recv(inbox, timeout_ms=3000):
    return inbox.recv() if inbox.sock.poll(timeout_ms) else None


def test_admitted_key_is_delivered_with_its_node_id(inbox_and_keys):
    inbox, server, peers, cctx = inbox_and_keys
    _link(cctx, inbox, server, peers["alice"], "alice").send(encode(Heartbeat(), src="alice", dst="x", seq=0))
    ident, msg = _recv(inbox)
    assert ident == b"alice" and msg.env.src == "alice"
    assert inbox.refused == 0 and inbox.gate.refused == 0


def test_unknown_key_is_refused_at_the_handshake(inbox_and_keys):
    inbox, server, _, cctx = inbox_and_keys
    _link(cctx, inbox, server, KeyPair.generate(), "alice").send(encode(Heartbeat(), src="alice", dst="x", seq=0))
    wait_for(lambda: inbox.gate.refused, 5, "the gate's refusal")
    assert _recv(inbox, 300) is None


def test_wrong_server_key_gets_nothing_through(inbox_and_keys):
    inbox, _, peers, cctx = inbox_and_keys
    _link(cctx, inbox, KeyPair.generate(), peers["alice"], "alice").send(
        encode(Heartbeat(), src="alice", dst="x", seq=0)
    )
    assert _recv(inbox, 500) is None


def test_forged_source_is_refused_and_the_sender_is_named_by_its_key(inbox_and_keys):
    inbox, server, peers, cctx = inbox_and_keys
    _link(cctx, inbox, server, peers["alice"], "bob").send(encode(Heartbeat(), src="bob", dst="x", seq=0))
    assert _recv(inbox) == (b"alice", None)  # the sender is named by its key, not by what it claims
    _link(cctx, inbox, server, peers["alice"], "alice").send(encode(Heartbeat(), src="bob", dst="x", seq=0))
    assert _recv(inbox) == (b"alice", None)
    assert inbox.refused == 2


def test_a_valid_key_cannot_take_over_another_nodes_connection(inbox_and_keys):
    """alice, with her own valid key, connects under bob's routing id: bob's connection and its replies stay his."""
    inbox, server, peers, cctx = inbox_and_keys
    bob = _link(cctx, inbox, server, peers["bob"], "bob")
    bob.send(encode(Ping(nonce=1), src="bob", dst="x", seq=0))
    assert _recv(inbox)[0] == b"bob"
    thief = cctx.socket(zmq.DEALER)
    thief.setsockopt(zmq.ROUTING_ID, bob.sock.getsockopt(zmq.ROUTING_ID))  # even bob's exact routing id
    make_client(thief, peers["alice"], server.public)
    thief.connect(inbox.endpoint)
    thief.send_multipart(encode(Heartbeat(), src="alice", dst="x", seq=0))
    assert _recv(inbox, 500) is None  # a routing id in use is not handed over: the thief is turned away
    assert inbox.reply(b"bob", encode(Pong(nonce=7), src="x", dst="bob", seq=0))
    assert bob.sock.poll(2000) and decode(bob.sock.recv_multipart()).body.nonce == 7
    assert not thief.poll(300)
    bob.send(encode(Heartbeat(), src="bob", dst="x", seq=1))
    assert _recv(inbox)[0] == b"bob"  # bob still gets through
    thief.close(0)


def test_a_relay_may_pass_on_other_sources(inbox_and_keys):
    inbox, server, peers, cctx = inbox_and_keys
    inbox.relays = frozenset({b"bob"})  # bob plays the medium
    _link(cctx, inbox, server, peers["bob"], "bob").send(encode(Heartbeat(), src="alice", dst="x", seq=0))
    ident, msg = _recv(inbox)
    assert ident == b"bob" and msg.env.src == "alice"


def test_a_key_the_directory_vouches_for_a_moment_late_is_admitted(inbox_and_keys):
    inbox, server, _, cctx = inbox_and_keys
    carol = KeyPair.generate()
    inbox.gate.grace_s = 2.0
    threading.Timer(0.3, inbox.gate.admit, (carol.public, "carol")).start()
    _link(cctx, inbox, server, carol, "carol").send(encode(Heartbeat(), src="carol", dst="x", seq=0))
    ident, msg = _recv(inbox)
    assert ident == b"carol" and inbox.gate.refused == 0


def test_the_payload_on_the_wire_is_not_plaintext():
    """A TCP relay in the middle sees only ciphertext."""
    ctx, cctx = zmq.Context(), zmq.Context()
    server, alice = KeyPair.generate(), KeyPair.generate()
    inbox = secure_inbox(ctx, {alice.public: "alice"}, pair=server)
    port = int(inbox.endpoint.rsplit(":", 1)[1])
    listener = socket.create_server(("127.0.0.1", 0))
    seen = bytearray()

    def relay():
        conn, _ = listener.accept()
        upstream = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=lambda: _pipe(upstream, conn, None), daemon=True).start()
        _pipe(conn, upstream, seen)

    threading.Thread(target=relay, daemon=True).start()
    try:
        link = PeerLink(cctx, f"tcp://127.0.0.1:{listener.getsockname()[1]}", "alice", curve=(alice, server.public))
        link.send(encode(Metrics(kind="secret", values={"word": "PLAINTEXT-MARKER"}), src="alice", dst="x", seq=0))
        ident, msg = _recv(inbox)
        assert msg.body.values["word"] == "PLAINTEXT-MARKER"
        assert len(seen) > 100 and b"PLAINTEXT-MARKER" not in seen
    finally:
        cctx.destroy(linger=0)
        inbox.close()
        ctx.term()
        listener.close()


def _pipe(src: socket.socket, dst: socket.socket, record: bytearray | None) -> None:
    try:
        while data := src.recv(65536):
            if record is not None:
                record += data
            dst.sendall(data)
    except OSError:
        pass


# ---------------------------------------------------------------- real processes


def _start_node(tmp_path, node_id, endpoint, key_file, coordinator_key, extra=()):
    log = open(tmp_path / f"{node_id}.log", "w")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agent_node",
            "--id",
            node_id,
            "--coordinator",
            endpoint,
            "--key",
            str(key_file),
            "--coordinator-key",
            str(coordinator_key),
            *extra,
        ],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_curve_run_admits_allowed_node_refuses_unknown_key_and_forged_ids(tmp_path, reap):
    keys, allow = tmp_path / "keys", tmp_path / "allow"
    pairs = {name: KeyPair.generate() for name in ("edge1", "edge2", "edge3")}
    for name, pair in pairs.items():
        write_key_pair(keys, name, pair)
        if name != "edge2":  # edge2's key is unknown to the coordinator
            write_key_pair(allow, name, KeyPair(pair.public, pair.secret))
            os.remove(allow / f"{name}.key_secret")
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND, "security.curve=on", f"security.allow_dir={allow}")
    reap(proc)
    wait_for(lambda: "run started" in coordinator_log(run_dir), 90, "the launched processes registered over CURVE")
    wait_for(lambda: any(m["node"] == "veh1" for m in metrics(run_dir)), 30, "veh1 stepping")
    endpoint = (run_dir / "coordinator.endpoint").read_text().strip()
    coord_key = run_dir / "coordinator.key"
    good = _start_node(tmp_path, "edge1", endpoint, keys / "edge1.key_secret", coord_key)
    bad = _start_node(tmp_path, "edge2", endpoint, keys, coord_key)  # a folder: its edge2.key_secret
    try:
        wait_for(lambda: "registered edge1 (agent" in coordinator_log(run_dir), 30, "edge1 registered")
        wait_for(lambda: "registered (inbox" in (tmp_path / "edge1.log").read_text(), 20, "edge1 acknowledged")
        wait_for(
            lambda: f"unknown CURVE key {pairs['edge2'].public}" in coordinator_log(run_dir),
            20,
            "edge2's key refused and logged",
        )
        wait_for(
            lambda: "refused our CURVE handshake" in (tmp_path / "edge2.log").read_text(),
            10,
            "edge2 saying that it was refused",
        )
        _forge(endpoint, read_public_key(coord_key), pairs["edge3"])
        log = wait_for(
            lambda: (t := coordinator_log(run_dir)).count("refused a message") >= 1 and t,
            10,
            "forged messages refused and logged",
        )
        assert "authenticated as 'edge3' gave the source 'veh1'" in log  # the routing id it chose names no one
        n_veh1 = len([m for m in metrics(run_dir) if m["node"] == "veh1"])
        wait_for(
            lambda: len([m for m in metrics(run_dir) if m["node"] == "veh1"]) > n_veh1 + 2,
            20,
            "veh1 still reporting after edge3 used its routing id",
        )
        assert "registered edge2" not in log and bad.poll() is None
        good.send_signal(signal.SIGTERM)
        assert good.wait(10) == 0
        wait_for(
            lambda: [m for m in metrics(run_dir) if m["node"] == "edge1" and m["final"]], 10, "edge1's last metrics"
        )
    finally:
        for p in (good, bad):
            if p.poll() is None:
                p.kill()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130
    records = metrics(run_dir)
    assert not [m for m in records if m["kind"] == "forged"]
    refused = [m for m in records if m.get("event") == "curve_refused"]
    assert refused and refused[0]["connections"] >= 1 and refused[0]["messages"] >= 2


def _forge(endpoint: str, coordinator_key: str, pair: KeyPair) -> None:
    """edge3, holding a valid key, speaks as veh1: once by routing id, once by envelope source."""
    ctx = zmq.Context()
    try:
        for identity in ("veh1", "edge3"):
            sock = ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.ROUTING_ID, identity.encode())
            make_client(sock, pair, coordinator_key)
            sock.connect(endpoint)
            sock.send_multipart(encode(Metrics(kind="forged", values={}), src="veh1", dst="coordinator", seq=0))
            time.sleep(0.3)
            sock.close(linger=1000)
    finally:
        ctx.term()
