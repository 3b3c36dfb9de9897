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

import pytest
import zmq

from conftest import ROOT, coordinator_log, free_port, metrics, start_run, wait_for
from protocols.codec import encode
from protocols.messages import Ping, Pong
from protocols.mqtt import MqttLink, MqttSettings, qos_for, telemetry_topic, up_topic
from protocols.sockets import request

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (`make install` installs it from Debian)")


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
    for bad in ({"broker": "tcp://x:1"}, {"broker": "mqtt://x:1", "fleet": "a/b"}, {"broker": "mqtt://x:1", "fleet": "#"}):
        with pytest.raises(ValueError):
            MqttSettings(**bad)
    with pytest.raises(ValueError):
        up_topic("f", "veh+")
    assert (qos_for("beacon"), qos_for("heartbeat"), qos_for("register"), qos_for("action"), qos_for("metrics")) == (0, 0, 1, 1, 1)


def test_username_and_password(tmp_path):
    passwords = tmp_path / "passwords"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwords), "robot", "s3cret"], check=True, capture_output=True)
    b = Broker(tmp_path, f"allow_anonymous false\npassword_file {passwords}\n")
    b.start()
    try:
        _only_good_connects(MqttSettings(broker=b.url, username="robot", password="s3cret"),
                            MqttSettings(broker=b.url, username="robot", password="wrong"))
    finally:
        b.stop()


@pytest.mark.parametrize("bridge_by", ["scenario", "cli"])
def test_node_over_mqtt_joins_and_survives_a_broker_outage(tmp_path, reap, broker, bridge_by):
    """bridge_by: the supervisor starts the bridge for the scenario's [mqtt] table, or `netmarl bridge` does."""
    run_dir = tmp_path / "run"
    mqtt = ["--mqtt", broker.url, "--fleet", "t1"]
    sets = [f"mqtt.broker={broker.url!r}", "mqtt.fleet='t1'"] if bridge_by == "scenario" else []
    proc = start_run(run_dir, "run.steps=100000", "run.heartbeat_timeout_s=8", *sets)
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
            bridge = subprocess.Popen([sys.executable, "-m", "coordinator.cli", "bridge", "--run-dir", str(run_dir), *mqtt],
                                      cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, text=True)
    with open(node_log, "w") as fh:  # no route to the coordinator but through the broker
        node = subprocess.Popen([sys.executable, "-m", "agent_node", "--id", "edge1", "--coordinator", endpoint, *mqtt],
                                cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, text=True)
    try:
        registered = wait_for(lambda: re.search(r"registered edge1 \(agent, pid \d+\) at (\S+)", coordinator_log(run_dir)),
                              30, "edge1 registered")
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
        back = wait_for(lambda: _records(run_dir, "mqtt_link", lambda r: r["event"] == "connected" and r["outage_s"] > 0),
                        20, "reconnection record")
        assert back[0]["outage_s"] >= 4.0 and back[0]["dropped"] == 0
        assert _ping(stand_in, 8).body.nonce == 8  # it resumed
        assert not [m for m in metrics(run_dir) if m.get("event") == "node_failed" and m["node"] == "edge1"]

        node.send_signal(signal.SIGTERM)  # a clean stop flushes its last metrics through the broker
        assert node.wait(15) == 0
        final = wait_for(lambda: _records(run_dir, "beacon_node", lambda r: r["final"]), 10, "final metrics")
        assert final[0]["mqtt"]["disconnects"] >= 1
        wait_for(lambda: telemetry.find("netmarl/t1/telemetry/edge1/beacon_node", lambda r: r["final"]), 10,
                 "final metrics telemetry")
        wait_for(lambda: telemetry.find("netmarl/t1/edge1/status", lambda r: r == "offline"), 5, "node offline")
    finally:
        telemetry.close()
        print("--- node log\n", node_log.read_text()[-3000:], "\n--- bridge log\n",
              bridge_log.read_text()[-3000:] if bridge_log.exists() else "")
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
    from protocols.endpoint import Endpoint
    from protocols.messages import Beacon, Directory, Register
    from protocols.mqtt import NodeTransport
    from protocols.codec import decode

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
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "1",
        "-subj", "/CN=netmarl test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (tmp_path / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "server.crt", "-days", "1", "-extfile", "san.ext")
    b = Broker(tmp_path, f"allow_anonymous true\ncafile {tmp_path / 'ca.crt'}\ncertfile {tmp_path / 'server.crt'}\n"
                         f"keyfile {tmp_path / 'server.key'}\n")
    b.start()
    try:
        url = f"mqtts://127.0.0.1:{b.port}"
        _only_good_connects(MqttSettings(broker=url, tls_ca=str(tmp_path / "ca.crt")),
                            MqttSettings(broker=url))  # the system CAs do not know ours
    finally:
        b.stop()
