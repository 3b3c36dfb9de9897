"""The MQTT transport with a real mosquitto: a node started as its own program joins a running run
through the broker and a bridge, answers a Ping, reports metrics (also as JSON telemetry), and survives
the broker going away for 5 s without losing the metrics it produced meanwhile."""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import msgpack
import pytest
import zmq
from conftest import BACKGROUND, ROOT, coordinator_log, free_port, metrics, start_run, wait_for

from protocols.codec import encode
from protocols.messages import Metrics, Ping, Pong
from protocols.mqtt import MqttLink, MqttSettings, qos_for, telemetry_topic, up_topic
from protocols.sockets import request

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
pytestmark = pytest.mark.skipif(
    MOSQUITTO is None, reason="mosquitto is not installed (`make install` installs it from Debian)"
)


class Broker:
    """mosquitto on a free loopback port; stop() kills it, start() brings it back on the same port."""

    def __init__(self, tmp_path, extra: str = "allow_anonymous true\n"):
        self.port = free_port()
        self.conf = tmp_path / "mosquitto.conf"
        # as root, mosquitto would switch to its own user, which cannot read files under pytest's tmp_path
        user = pwd.getpwuid(os.geteuid()).pw_name
        self.conf.write_text(f"listener {self.port} 127.0.0.1\npersistence false\nuser {user}\n{extra}")
        self.log = tmp_path / "mosquitto.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        with open(self.log, "a") as fh:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=fh, stderr=subprocess.STDOUT)

        def accepting():
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return True
            except OSError:
                assert self.proc.poll() is None, f"mosquitto exited: {self.log.read_text()[-500:]}"
                return False

        wait_for(accepting, 10, "mosquitto listening")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def broker(tmp_path):
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()


class Subscriber:
    """A plain MQTT client (paho, as any dashboard would use) collecting JSON telemetry."""

    def __init__(self, port: int, *topics: str):
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 0) for t in topics])
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            text = message.payload.decode()
            self.messages.append((message.topic, json.loads(text) if "/telemetry/" in message.topic else text))

    def find(self, topic: str, pred=lambda r: True) -> list[dict]:
        with self.lock:
            return [r for t, r in self.messages if t == topic and pred(r)]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _ping(endpoint: str, nonce: int):
    ctx = zmq.Context()
    try:
        return request(ctx, endpoint, encode(Ping(nonce=nonce), src="test", dst="edge1", seq=0), timeout_ms=3000)
    finally:
        ctx.term()


def _records(run_dir, kind, pred=lambda r: True):
    return [m for m in metrics(run_dir) if m["node"] == "edge1" and m["kind"] == kind and pred(m)]


def _only_good_connects(good_settings: MqttSettings, bad_settings: MqttSettings) -> None:
    """A link with good_settings connects to the broker; one with bad_settings does not."""
    good, bad = MqttLink(good_settings, "good", []), MqttLink(bad_settings, "bad", [])
    good.start()
    bad.start()
    assert good.wait_connected(5)
    assert not bad.wait_connected(1.0)
    good.close(1)
    bad.close(0)


def test_settings_and_topics():
    s = MqttSettings(broker="mqtts://broker.example", fleet="lab-1")
    assert (s.host, s.port, s.tls) == ("broker.example", 8883, True)
    assert MqttSettings(broker="mqtt://10.0.0.2").port == 1883
    assert up_topic("lab-1", "veh3") == "netmarl/lab-1/veh3/up"
    assert telemetry_topic("f", "veh3", "beacon_node") == "netmarl/f/telemetry/veh3/beacon_node"
    for bad in (
        {"broker": "tcp://x:1"},
        {"broker": "mqtt://x:1", "fleet": "a/b"},
        {"broker": "mqtt://x:1", "fleet": "#"},
    ):
        with pytest.raises(ValueError):
            MqttSettings(**bad)
    with pytest.raises(ValueError):
        up_topic("f", "veh+")
    assert (qos_for("beacon"), qos_for("heartbeat"), qos_for("register"), qos_for("action"), qos_for("metrics")) == (
        0,
        0,
        1,
        1,
        1,
    )


def test_username_and_password(tmp_path):
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "robot", "s3cret"], check=True, capture_output=True)
    b = Broker(tmp_path, f"allow_anonymous false\npassword_file {passwords}\n")
    b.start()
    try:
        _only_good_connects(
            MqttSettings(broker=b.url, username="robot", password="s3cret"),
            MqttSettings(broker=b.url, username="robot", password="wrong"),
        )
    finally:
        b.stop()


@pytest.mark.parametrize("bridge_by", ["scenario", "cli"])
def test_node_over_mqtt_joins_and_survives_a_broker_outage(tmp_path, reap, broker, bridge_by):
    """bridge_by: the supervisor starts the bridge for the scenario's [mqtt] table, or `netmarl bridge` does."""
    run_dir = tmp_path / "run"
    mqtt = ["--mqtt", broker.url, "--fleet", "t1"]
    # a bridge started by hand needs a run without CURVE, which it does not speak (one with [mqtt] has none)
    sets = [f"mqtt.broker={broker.url!r}", "mqtt.fleet='t1'"] if bridge_by == "scenario" else ["security.curve=off"]
    proc = start_run(run_dir, *BACKGROUND, "run.heartbeat_timeout_s=20", *sets)
    reap(proc)
    wait_for(lambda: "run started" in coordinator_log(run_dir), 60, "run started")
    endpoint = (run_dir / "coordinator.endpoint").read_text().strip()
    telemetry = Subscriber(broker.port, "netmarl/t1/telemetry/#", "netmarl/t1/+/status")
    bridge_log, node_log = tmp_path / "bridge.log", tmp_path / "edge1.log"
    if bridge_by == "scenario":
        bridge_log = run_dir / "logs" / "mqtt_bridge.log"
        bridge = subprocess.Popen(["sleep", "600"])  # a stand-in, so the checks below read alike
    else:
        with open(bridge_log, "w") as fh:
            bridge = subprocess.Popen(
                [sys.executable, "-m", "coordinator.cli", "bridge", "--run-dir", str(run_dir), *mqtt],
                cwd=ROOT,
                stdout=fh,
                stderr=subprocess.STDOUT,
                text=True,
            )
    with open(node_log, "w") as fh:  # no route to the coordinator but through the broker
        node = subprocess.Popen(
            [sys.executable, "-m", "agent_node", "--id", "edge1", "--coordinator", endpoint, *mqtt],
            cwd=ROOT,
            stdout=fh,
            stderr=subprocess.STDOUT,
            text=True,
        )
    try:
        registered = wait_for(
            lambda: re.search(r"registered edge1 \(agent, pid \d+\) at (\S+)", coordinator_log(run_dir)),
            30,
            "edge1 registered",
        )
        stand_in = registered.group(1)
        assert stand_in != endpoint
        wait_for(lambda: "registered (inbox" in node_log.read_text(), 10, "edge1 has its acknowledgement")
        # control plane both ways, through the broker: a Ping to the node's listed endpoint comes back
        pong = _ping(stand_in, 7)
        assert isinstance(pong.body, Pong) and pong.body.nonce == 7 and pong.env.src == "edge1"
        # telemetry a dashboard can read: JSON heartbeats and metrics records
        wait_for(lambda: telemetry.find("netmarl/t1/telemetry/edge1/heartbeat"), 10, "heartbeat telemetry")
        wait_for(lambda: _records(run_dir, "mqtt_link", lambda r: r["event"] == "connected"), 10, "link record")
        wait_for(lambda: telemetry.find("netmarl/t1/telemetry/edge1/mqtt_link"), 10, "metrics telemetry")

        broker.stop()  # the broker goes away for 5 s
        time.sleep(5)
        assert node.poll() is None and bridge.poll() is None
        broker.start()
        # the record written while the broker was away was kept and arrives now
        wait_for(lambda: _records(run_dir, "mqtt_link", lambda r: r["event"] == "disconnected"), 20, "buffered record")
        back = wait_for(
            lambda: _records(run_dir, "mqtt_link", lambda r: r["event"] == "connected" and r["outage_s"] > 0),
            20,
            "reconnection record",
        )
        assert back[0]["outage_s"] >= 4.0 and back[0]["dropped"] == 0
        assert _ping(stand_in, 8).body.nonce == 8  # it resumed
        assert not [m for m in metrics(run_dir) if m.get("event") == "node_failed" and m["node"] == "edge1"]

        node.send_signal(signal.SIGTERM)  # a clean stop flushes its last metrics through the broker
        assert node.wait(15) == 0
        final = wait_for(lambda: _records(run_dir, "beacon_node", lambda r: r["final"]), 10, "final metrics")
        assert final[0]["mqtt"]["disconnects"] >= 1
        wait_for(
            lambda: telemetry.find("netmarl/t1/telemetry/edge1/beacon_node", lambda r: r["final"]),
            10,
            "final metrics telemetry",
        )
        wait_for(lambda: telemetry.find("netmarl/t1/edge1/status", lambda r: r == "offline"), 5, "node offline")
    finally:
        telemetry.close()
        print(
            "--- node log\n",
            node_log.read_text()[-3000:],
            "\n--- bridge log\n",
            bridge_log.read_text()[-3000:] if bridge_log.exists() else "",
        )
        for p in (node, bridge):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(5)
                except subprocess.TimeoutExpired:
                    p.kill()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


def test_bridge_forwards_both_planes_and_refuses_spoofing(broker):
    """In one process: a node's Endpoint over MQTT, the bridge, and sockets standing in for the
    coordinator and the medium. Registration is rewritten to the stand-in inbox, the Directory is
    obeyed, a beacon reaches the medium with the node's identity and a delivery comes back with the
    medium's; a forged source or an endpoint outside the directory is refused."""
    from coordinator.mqtt_bridge import MqttBridge
    from protocols.codec import decode
    from protocols.endpoint import Endpoint
    from protocols.messages import Beacon, Directory, Register
    from protocols.mqtt import NodeTransport

    ctx = zmq.Context()
    coord, medium = ctx.socket(zmq.ROUTER), ctx.socket(zmq.ROUTER)
    coord.bind("tcp://127.0.0.1:*")
    medium.bind("tcp://127.0.0.1:*")
    coord_ep, medium_ep = (s.getsockopt_string(zmq.LAST_ENDPOINT) for s in (coord, medium))
    settings = MqttSettings(broker=broker.url, fleet="t2")
    bridge = MqttBridge(settings, coord_ep)
    thread = threading.Thread(target=bridge.run, daemon=True)
    thread.start()
    transport = NodeTransport(settings, "edge2")
    ep = Endpoint("edge2", "agent", coord_ep, link_factory=transport.link_factory)
    transport.start(ep.inbox.endpoint)
    try:
        transport.wait_bridge(10)
        ep.to_coordinator(Register(node_id="edge2", endpoint=ep.inbox.endpoint))
        assert coord.poll(5000)
        ident, *frames = coord.recv_multipart()
        reg = decode(frames).body
        assert ident == b"edge2" and reg.endpoint not in (ep.inbox.endpoint, "") and reg.endpoint.startswith("tcp://")
        as_coord = ctx.socket(zmq.DEALER)
        as_coord.setsockopt(zmq.ROUTING_ID, b"coordinator")
        as_coord.connect(reg.endpoint)
        directory = Directory(endpoints={"edge2": reg.endpoint, "medium": medium_ep}, kinds={"medium": "medium"})
        as_coord.send_multipart(encode(directory, src="coordinator", dst="edge2", seq=0))
        wait_for(lambda: ep.poll(50) == [] and ep.peers.knows("medium"), 5, "directory obeyed")

        assert ep.peers.send("medium", encode(Beacon(x=1, y=2, speed=3), src="edge2", dst="*", seq=0))
        assert medium.poll(5000)
        ident, *frames = medium.recv_multipart()
        assert ident == b"edge2" and decode(frames).body.x == 1

        as_medium = ctx.socket(zmq.DEALER)
        as_medium.setsockopt(zmq.ROUTING_ID, b"medium")
        as_medium.connect(reg.endpoint)
        as_medium.send_multipart(encode(Beacon(x=4, y=5, speed=6), src="veh1", dst="*", seq=0))
        got = wait_for(lambda: ep.poll(50), 5, "delivery from the medium")
        assert got[0][0] == b"medium" and got[0][1].body.x == 4

        rejected = bridge.counts["rejected"]
        transport.send({"to": medium_ep}, encode(Beacon(x=7, y=0, speed=0), src="veh9", dst="*", seq=1))
        transport.send({"to": "tcp://127.0.0.1:9"}, encode(Beacon(x=8, y=0, speed=0), src="edge2", dst="*", seq=2))
        wait_for(lambda: bridge.counts["rejected"] >= rejected + 2, 5, "both refused")
        assert not medium.poll(300)
        for s in (as_coord, as_medium):
            s.close(0)
    finally:
        transport.close(1)
        ep.close()
        bridge.stop("test over")
        thread.join(10)
        coord.close(0)
        medium.close(0)
        ctx.term()


def test_link_keeps_order_and_loses_nothing_across_an_outage(tmp_path):
    """QoS 1 messages queued while the broker is down go out, in order, once the far end listens
    again (the gate); with many awaiting acknowledgement at once."""
    import asyncio

    b = Broker(tmp_path)
    b.start()
    settings = MqttSettings(broker=b.url)
    got, lock = [], threading.Lock()

    def on_message(_topic, payload):
        with lock:
            got.append(int(payload))

    sub = MqttLink(settings, "sub", [("t/x", 1)], on_message=on_message)
    gate = asyncio.Event()
    pub = MqttLink(settings, "pub", [], gate=gate)
    try:
        sub.start()
        pub.start()
        assert sub.wait_connected(5) and pub.wait_connected(5)
        pub.loop.call_soon_threadsafe(gate.set)
        for i in range(500):
            assert pub.publish("t/x", str(i).encode(), 1)
        wait_for(lambda: len(got) == 500, 10, "first batch")
        b.stop()
        wait_for(lambda: not pub.connected.is_set() and not sub.connected.is_set(), 10, "both see the outage")
        for i in range(500, 1000):  # while the broker is away
            assert pub.publish("t/x", str(i).encode(), 1)
        b.start()
        assert sub.wait_connected(10) and pub.wait_connected(10)
        pub.loop.call_soon_threadsafe(gate.set)  # the disconnection closed it: the far end listens again
        wait_for(lambda: len(got) >= 1000, 10, "second batch")
        with lock:
            assert got == list(range(1000))
        assert pub.stats()["dropped"] == 0 and pub.stats()["disconnects"] == 1
    finally:
        pub.close(1)
        sub.close(0)
        b.stop()


def test_tls(tmp_path):
    """mqtts:// with the broker's CA: the link connects over TLS; without that CA it does not."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")

    def run(*args):
        subprocess.run([openssl, *args], check=True, capture_output=True, cwd=tmp_path)

    run(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=netmarl test CA",
    )
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    )
    b = Broker(
        tmp_path,
        f"allow_anonymous true\ncafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
        f"keyfile {tmp_path / 'server.key'}\n",
    )
    b.start()
    try:
        url = f"mqtts://127.0.0.1:{b.port}"
        _only_good_connects(
            MqttSettings(broker=url, tls_ca=str(tmp_path / "ca.crt")), MqttSettings(broker=url)
        )  # the system CAs do not know ours
    finally:
        b.stop()


# ---------------------------------------------------------------- bad messages must not end the bridge
FUZZ_FLEET = "pz"


def _up(to, frames, **extra) -> bytes:
    import msgpack

    return msgpack.packb({"to": to, "f": frames, **extra}, use_bin_type=True)


def _nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


def _raw_publish(port: int, topic: bytes, payload: bytes) -> None:
    """A PUBLISH with exactly these topic bytes (paho cannot send a topic that is not UTF-8): MQTT 3.1.1
    CONNECT, CONNACK, then the PUBLISH (QoS 0), written by hand."""

    def packet(first: int, body: bytes) -> bytes:
        n, length = len(body), bytearray()
        while True:
            byte, n = n % 128, n // 128
            length.append(byte | (0x80 if n else 0))
            if not n:
                return bytes([first]) + bytes(length) + body

    with socket.create_connection(("127.0.0.1", port), 5) as s:
        s.sendall(packet(0x10, b"\x00\x04MQTT\x04\x02\x00\x3c" + b"\x00\x03raw"))
        assert s.recv(4)[:2] == b"\x20\x02"
        s.sendall(packet(0x30, len(topic).to_bytes(2, "big") + topic + payload))
        s.settimeout(5)
        try:
            s.recv(16)  # the broker drops a client that sends a topic it refuses
        except OSError:
            pass


class RawClient:
    """A plain paho client publishing as any node could (ACLs aside) and recording what the bridge publishes."""

    def __init__(self, port: int, *topics: str):
        import paho.mqtt.client as paho

        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2)
        self.client.on_connect = lambda c, *_: c.subscribe([(t, 1) for t in topics])
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port, keepalive=5)
        self.client.loop_start()

    def _on_message(self, _client, _userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def find(self, topic: str, pred=lambda p: True) -> list[bytes]:
        with self.lock:
            return [p for t, p in self.messages if t == topic and pred(p)]

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> None:
        self.client.publish(topic, payload, qos=qos).wait_for_publish(30)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Rig:
    """A running bridge between the broker and a ROUTER standing in for the coordinator, a plain MQTT
    client to publish as nodes, and the well-formed traffic that must keep flowing."""

    def __init__(self, broker, process: bool = False, log_path=None):
        self.ctx = zmq.Context()
        self.coord = self.ctx.socket(zmq.ROUTER)
        self.coord.bind("tcp://127.0.0.1:*")
        self.coord_ep = self.coord.getsockopt_string(zmq.LAST_ENDPOINT)
        self.broker, self.seq, self.bridge, self.thread, self.proc = broker, 0, None, None, None
        self.sockets: list[zmq.Socket] = []
        if process:  # `netmarl bridge`, a process of its own
            self.log = open(log_path, "w")
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "coordinator.cli",
                    "bridge",
                    "--coordinator",
                    self.coord_ep,
                    "--mqtt",
                    broker.url,
                    "--fleet",
                    FUZZ_FLEET,
                ],
                cwd=ROOT,
                stdout=self.log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        else:
            from coordinator.mqtt_bridge import MqttBridge

            self.bridge = MqttBridge(MqttSettings(broker=broker.url, fleet=FUZZ_FLEET), self.coord_ep)
            self.thread = threading.Thread(target=self.bridge.run, daemon=True)
            self.thread.start()
        self.mqtt = RawClient(broker.port, f"netmarl/{FUZZ_FLEET}/#")
        wait_for(
            lambda: self.mqtt.find(f"netmarl/{FUZZ_FLEET}/bridge/status", lambda p: p == b"online"), 20, "bridge online"
        )
        self.stand_in = self.register("good1")

    def alive(self) -> bool:
        return self.proc.poll() is None if self.proc else self.thread.is_alive()

    def frames(self, body, src: str, dst: str = "coordinator"):
        self.seq += 1
        return encode(body, src=src, dst=dst, seq=self.seq)

    def publish_up(self, node: str, payload: bytes) -> None:
        self.mqtt.publish(f"netmarl/{FUZZ_FLEET}/{node}/up", payload)

    def at_coordinator(self) -> tuple[bytes, object]:
        from protocols.codec import decode

        assert self.coord.poll(10_000), "nothing reached the coordinator"
        ident, *frames = self.coord.recv_multipart()
        return ident, decode(frames)

    def register(self, node: str) -> str:
        """The node registers through the bridge: the coordinator sees its stand-in endpoint."""
        from protocols.messages import Register

        self.publish_up(
            node, _up(self.coord_ep, self.frames(Register(node_id=node, endpoint="tcp://127.0.0.1:1"), node))
        )
        ident, msg = self.at_coordinator()
        assert ident == node.encode() and msg.body.node_id == node
        return msg.body.endpoint

    def dealer(self, identity: bytes) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.ROUTING_ID, identity)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.stand_in)
        self.sockets.append(sock)
        return sock

    def relays(self) -> None:
        """Still alive, and a well-formed message still goes up to the coordinator (the first thing to
        arrive there: nothing bad was passed on) and down to the node."""
        import msgpack

        from protocols.messages import Heartbeat

        assert self.alive(), "the bridge is gone"
        self.publish_up("good1", _up(self.coord_ep, self.frames(Heartbeat(), "good1")))
        ident, msg = self.at_coordinator()
        assert (ident, msg.env.src, msg.env.seq) == (b"good1", "good1", self.seq)
        self.mqtt.publish(f"netmarl/{FUZZ_FLEET}/good1/status", b"online test")
        nonce = self.seq + 1
        self.dealer(b"coordinator").send_multipart(self.frames(Ping(nonce=nonce), "coordinator", "good1"))

        def down(payload):
            from protocols.codec import decode

            msg = msgpack.unpackb(payload, raw=False)
            return msg["from"] == b"coordinator" and getattr(decode(msg["f"]).body, "nonce", None) == nonce

        wait_for(lambda: self.mqtt.find(f"netmarl/{FUZZ_FLEET}/good1/down", down), 10, "the Ping published down")
        assert self.alive()

    def close(self) -> None:
        self.mqtt.close()
        if self.bridge is not None:
            self.bridge.stop("test over")
            self.thread.join(10)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for sock in self.sockets:
            sock.close(0)
        self.coord.close(0)
        self.ctx.term()


def _to_not_a_string(rig: Rig) -> int:
    """The uplink's "to" (and "re") of the wrong type: a list used to be looked up in a set (TypeError)."""
    from protocols.messages import Heartbeat

    for to in ([rig.coord_ep], {rig.coord_ep: 1}, None, 2**64 - 1, b"tcp://127.0.0.1:9"):
        rig.publish_up("evil", _up(to, rig.frames(Heartbeat(), "evil")))
    rig.publish_up("evil", _up(rig.coord_ep, rig.frames(Heartbeat(), "evil"), re=[b"x"]))
    return 6


def _metrics_not_json(rig: Rig) -> int:
    """Metrics values that cannot become the telemetry JSON (nor a metrics.jsonl line): nested 1,000
    deep (RecursionError), deeper than the limit, or a map with binary keys (TypeError)."""
    for values in ({"v": _nested(1000)}, {"v": _nested(40)}, {"v": {b"key": 1}}, {"v": [{b"k": 2}]}):
        envelope = rig.frames(Metrics(kind="k", values={}), "evil")[0]  # the body by hand: our encoder refuses it
        body = msgpack.packb({"kind": "k", "values": values}, use_bin_type=True)
        rig.publish_up("evil", _up(rig.coord_ep, [envelope, body]))
    return 4


def _envelope_type_not_a_string(rig: Rig) -> int:
    """Sent to a node's stand-in inbox over ZeroMQ: an envelope whose type is a list or a map (that
    TypeError'd in qos_for), or not a msgpack map at all, or a message of one frame."""
    import msgpack

    sock = rig.dealer(b"medium")
    for kind in (["beacon"], {"a": 1}, 5):
        env = {"v": 1, "type": kind, "src": "medium", "dst": "good1", "seq": 0}
        sock.send_multipart([msgpack.packb(env), msgpack.packb({})])
    sock.send_multipart([b"\xc1", b"\x80"])
    sock.send(b"lonely")
    return 5


def _node_id_not_a_node(rig: Rig) -> int:
    """Topics whose node level cannot be a node id (not a topic-safe name, empty) or names the
    coordinator: the bridge would bind a stand-in that can never get a downlink topic, fail to set an
    empty routing identity (ZMQError), or pass on messages as the coordinator."""
    from protocols.messages import Heartbeat

    for node in ("bad id", "", "caf\u00e9", "coordinator"):
        rig.publish_up(node, _up(rig.coord_ep, rig.frames(Heartbeat(), node)))
    return 4


def _endpoint_unreachable(rig: Rig) -> int:
    """The coordinator's Directory lists an endpoint ZeroMQ cannot connect to (a Register's pattern
    lets `tcp://nonsense` through); a node's message to it raised ZMQError on connect."""
    from protocols.messages import Directory, Heartbeat

    directory = Directory(endpoints={"good1": rig.stand_in, "ghost": "tcp://nonsense"})
    rig.dealer(b"coordinator").send_multipart(rig.frames(directory, "coordinator", "good1"))
    wait_for(lambda: "tcp://nonsense" in rig.bridge.allowed, 10, "the directory obeyed")
    rig.publish_up("good1", _up("tcp://nonsense", rig.frames(Heartbeat(), "good1")))
    return 1


@pytest.mark.parametrize(
    "poison",
    [_to_not_a_string, _metrics_not_json, _envelope_type_not_a_string, _node_id_not_a_node, _endpoint_unreachable],
    ids=lambda f: f.__name__.strip("_"),
)
def test_bad_messages_are_counted_and_the_bridge_goes_on(broker, poison):
    """Each kind of bad message once ended the bridge (or was passed on); now each is refused and
    counted, and the bridge goes on relaying both ways."""
    rig = Rig(broker)
    try:
        rig.relays()
        before = dict(rig.bridge.counts)
        n = poison(rig)
        counter = "undeliverable" if poison is _endpoint_unreachable else "rejected"
        wait_for(lambda: rig.bridge.counts[counter] - before[counter] >= n or not rig.alive(), 20, f"{n} {counter}")
        rig.relays()
        assert rig.bridge.counts[counter] - before[counter] == n
        assert set(rig.bridge.proxies) == {"good1"}
    finally:
        rig.close()


def test_bridge_process_outlives_a_battery_of_bad_messages(broker, tmp_path):
    """`netmarl bridge` as its own process: every bad message of the families above and the malformed
    payloads (empty, not msgpack, wrong shapes and types, huge numbers, over the size limit, a topic
    that is not UTF-8) is refused; the process goes on relaying, logs one warning per sender, and its
    last log line counts them."""
    import ast

    import msgpack

    from protocols.messages import Heartbeat
    from protocols.mqtt import MAX_PAYLOAD

    rig = Rig(broker, process=True, log_path=tmp_path / "bridge.log")
    try:
        rig.relays()
        hb = lambda: rig.frames(Heartbeat(), "evil")  # noqa: E731
        env = msgpack.unpackb(hb()[0])
        bad_envelopes = [
            {**env, "type": ["x"]},
            {**env, "src": 5},
            {**env, "seq": -1},
            {**env, "seq": 1.5},
            {**env, "t_sim": "now"},
            {**env, "t_sim": float("inf")},
            {**env, "v": 99},
            {**env, "arrays": "x"},
            {**env, "extra": 1},
            [env],
        ]
        payloads = [
            b"",
            b"\xc1\xff",
            msgpack.packb([1, 2]),
            msgpack.packb(2**64 - 1),
            _up(rig.coord_ep, "x"),
            _up(rig.coord_ep, ["a", "b"]),
            _up(rig.coord_ep, [b"x"]),
            _up(rig.coord_ep, [b"\xc1", b"\x80"]),
            *[_up(rig.coord_ep, [msgpack.packb(e), hb()[1]]) for e in bad_envelopes],
            _up(rig.coord_ep, rig.frames(Heartbeat(), "someone")),  # another node's name
            b"\x00" * (MAX_PAYLOAD + 1),
        ]
        for payload in payloads:
            rig.publish_up("evil", payload)
        rejected = len(payloads)
        rejected += _to_not_a_string(rig) + _metrics_not_json(rig) + _node_id_not_a_node(rig)
        rejected += _envelope_type_not_a_string(rig)
        rig.mqtt.publish(f"netmarl/{FUZZ_FLEET}/evil/status", b"\xff\xfe not UTF-8")
        _raw_publish(broker.port, f"netmarl/{FUZZ_FLEET}/evil/".encode() + b"\xff\xfe/up", _up(rig.coord_ep, hb()))
        rig.relays()
        assert rig.alive()
        rig.proc.send_signal(signal.SIGTERM)
        assert rig.proc.wait(20) == 0
        log_text = (tmp_path / "bridge.log").read_text()
        counts = ast.literal_eval(re.search(r"bridge closed: (\{.*?\})", log_text).group(1))
        assert counts["rejected"] == rejected, log_text[-3000:]
        warnings = [line for line in log_text.splitlines() if "WARNING" in line]
        assert len([line for line in warnings if "'evil'" in line]) == 1, warnings  # once per sender
        assert len([line for line in warnings if "b'medium'" in line]) == 1, warnings
    finally:
        rig.close()
        print("--- bridge log\n", (tmp_path / "bridge.log").read_text()[-4000:])
