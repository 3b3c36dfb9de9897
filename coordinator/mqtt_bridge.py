"""The MQTT bridge: lets nodes that reach the run only through an MQTT broker take part in it.

A zguide-style proxy. For each MQTT node (known from its first uplink message) the bridge binds a ROUTER
that stands in for the node's inbox; a Register the node sends has its endpoint rewritten to that
ROUTER's, so the coordinator's Directory sends everyone there. What arrives on the stand-in is published
on the node's downlink topic with the sender's routing identity; what the node publishes on its uplink
topic goes to the named endpoint through a DEALER whose routing identity is the node's id. The
coordinator, world and medium keep speaking ZeroMQ and need no change. Topic layout, payloads and QoS:
protocols/mqtt.py.

Checks: a message is forwarded only if its envelope source is the node id of the topic it came on, and
only to the coordinator or to an endpoint the coordinator's Directory lists (a node cannot make the
bridge connect anywhere else). Metrics and heartbeats are also republished as JSON telemetry for
dashboards (QoS 0, retained).

Run it with `netmarl bridge --coordinator tcp://... --mqtt mqtt://HOST:PORT --fleet NAME`, or let the
supervisor start it: give the scenario an [mqtt] table (scenarios/config.py).
"""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections import deque

import msgpack
import zmq

from protocols.codec import DEFAULT_LIMITS, decode, decode_envelope, wire_size
from protocols.errors import ProtocolError
from protocols.messages import Directory, Heartbeat, Metrics
from protocols.mqtt import (PREFIX, MqttLink, MqttSettings, down_topic, message_type, pack, qos_for, status_topic,
                            telemetry_topic, unpack)

log = logging.getLogger("coordinator.mqtt_bridge")

COORDINATOR_IDENT = b"coordinator"
WAKE = "inproc://netmarl-mqtt-bridge-{}"


class Proxy:
    """One MQTT node's stand-in: its ROUTER inbox and a DEALER per destination, with its identity."""

    def __init__(self, ctx: zmq.Context, node_id: str, bind_host: str):
        self.node_id = node_id
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.router.setsockopt(zmq.MAXMSGSIZE, DEFAULT_LIMITS.max_message_bytes)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.bind(f"tcp://{bind_host}:*")
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.dealers: dict[str, zmq.Socket] = {}
        self.ctx = ctx

    def dealer(self, endpoint: str) -> zmq.Socket:
        sock = self.dealers.get(endpoint)
        if sock is None:
            sock = self.dealers[endpoint] = self.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.ROUTING_ID, self.node_id.encode())
            sock.setsockopt(zmq.SNDHWM, 10_000)
            sock.setsockopt(zmq.LINGER, 500)
            sock.connect(endpoint)
        return sock

    def close(self) -> None:
        self.router.close()
        for sock in self.dealers.values():
            sock.close()


class MqttBridge:
    """Forwards between the MQTT broker and the run's ZeroMQ sockets until stopped."""

    def __init__(self, settings: MqttSettings, coordinator: str, bind_host: str = "127.0.0.1"):
        self.settings, self.coordinator, self.bind_host = settings, coordinator, bind_host
        self.fleet = settings.fleet
        self.ctx = zmq.Context()
        self.wake_endpoint = WAKE.format(id(self))
        self.wake = self.ctx.socket(zmq.PULL)
        self.wake.bind(self.wake_endpoint)
        self._push: zmq.Socket | None = None  # the MQTT thread's end of the wake pipe
        self.proxies: dict[str, Proxy] = {}
        self.allowed = {coordinator}  # destinations: the coordinator and what its Directory lists
        self.poller = zmq.Poller()
        self.poller.register(self.wake, zmq.POLLIN)
        self.by_socket: dict[zmq.Socket, Proxy] = {}
        self.counts = {"up": 0, "down": 0, "rejected": 0, "undeliverable": 0}
        self._logged: set[str] = set()
        self.stopping = False
        self.online: set[str] = set()  # MQTT nodes subscribed to their downlink (their status says so)
        self.held: dict[str, deque] = {}  # QoS 1 downlink messages for nodes not online, in order
        self.incarnations: dict[str, bytes] = {}  # node id -> its last "online <incarnation>" status
        self.link = MqttLink(settings, f"{PREFIX}-{self.fleet}-bridge",
                             [(f"{PREFIX}/{self.fleet}/+/up", 1), (f"{PREFIX}/{self.fleet}/+/status", 1)],
                             on_message=self._from_mqtt, status=status_topic(self.fleet))

    # ------------------------------------------------------------ the MQTT thread
    def _from_mqtt(self, topic: str, payload: bytes) -> None:
        """Hand an uplink message to the main thread (ZeroMQ sockets stay in one thread each)."""
        if self._push is None:
            self._push = self.ctx.socket(zmq.PUSH)
            self._push.setsockopt(zmq.LINGER, 0)
            self._push.connect(self.wake_endpoint)
        self._push.send_multipart([topic.encode(), payload])

    # ------------------------------------------------------------ the main thread
    def _warn_once(self, key: str, text: str, *args) -> None:
        if key not in self._logged:
            self._logged.add(key)
            log.warning(text + " (further ones are counted, not logged)", *args)

    def proxy(self, node_id: str) -> Proxy:
        proxy = self.proxies.get(node_id)
        if proxy is None:
            proxy = self.proxies[node_id] = Proxy(self.ctx, node_id, self.bind_host)
            self.poller.register(proxy.router, zmq.POLLIN)
            self.by_socket[proxy.router] = proxy
            log.info("MQTT node %s stands in at %s", node_id, proxy.endpoint)
        return proxy

    def on_status(self, node_id: str, payload: bytes) -> None:
        """A node is online (subscribed) or offline: send what was held for it, or hold from now on.
        What was held for an earlier process of the same id (another incarnation) is dropped."""
        if not payload.startswith(b"online"):
            self.online.discard(node_id)
            return
        self.online.add(node_id)
        held = self.held.pop(node_id, ())
        if self.incarnations.get(node_id, payload) != payload:
            if held:
                log.info("MQTT node %s restarted: dropping %d messages held for its predecessor", node_id, len(held))
                self.counts["undeliverable"] += len(held)
            held = ()
        self.incarnations[node_id] = payload
        if held:
            log.info("MQTT node %s online: sending %d held messages", node_id, len(held))
        for payload_ in held:
            self.link.publish(down_topic(self.fleet, node_id), payload_, 1)

    def from_mqtt(self, topic: str, payload: bytes) -> None:
        parts = topic.split("/")
        if len(parts) == 4 and parts[3] == "status":
            self.on_status(parts[2], payload)
        elif len(parts) == 4 and parts[3] == "up":
            self.uplink(parts[2], payload)

    def uplink(self, node_id: str, payload: bytes) -> None:
        """A node's message: check it, then send it on with the node's identity."""
        try:
            msg = unpack(payload)
            frames = msg["f"]
            if wire_size(frames) > DEFAULT_LIMITS.max_message_bytes:
                raise ProtocolError("message too large")
            env = decode_envelope(frames[0])
            if env.src != node_id:
                raise ProtocolError(f"envelope source {env.src!r} is not the topic's node")
        except (ValueError, ProtocolError) as err:
            self.counts["rejected"] += 1
            self._warn_once(f"rej:{node_id}", "rejected an uplink message from %r: %s", node_id, err)
            return
        self.counts["up"] += 1
        proxy = self.proxy(node_id)
        if "re" in msg:  # a reply on a sender's connection (e.g. a Pong)
            ident = msg["re"]
            if isinstance(ident, bytes):
                try:
                    proxy.router.send_multipart([ident, *frames], zmq.NOBLOCK)
                except zmq.ZMQError:
                    self.counts["undeliverable"] += 1
            return
        dst = msg.get("to")
        if dst not in self.allowed:
            self.counts["rejected"] += 1
            self._warn_once(f"dst:{node_id}", "%s asked for %r, which is neither the coordinator nor in its directory",
                            node_id, dst)
            return
        if env.type == "register":
            try:
                frames[1] = self._rewrite_register(frames[1], proxy.endpoint)
            except Exception as err:  # noqa: BLE001 - any malformed body is refused the same way
                self.counts["rejected"] += 1
                self._warn_once(f"reg:{node_id}", "bad registration from %r: %r", node_id, err)
                return
        elif env.type in ("metrics", "heartbeat"):
            self.telemetry(node_id, frames)
        try:
            proxy.dealer(dst).send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            self.counts["undeliverable"] += 1
            self._warn_once(f"full:{dst}", "queue to %s is full; dropping", dst)

    @staticmethod
    def _rewrite_register(body_frame: bytes, endpoint: str) -> bytes:
        """The node registers with its stand-in's endpoint, the one the others can reach."""
        body = msgpack.unpackb(body_frame, raw=False, max_map_len=64)
        if not isinstance(body, dict):
            raise ProtocolError("register body is not a map")
        body["endpoint"] = endpoint
        return msgpack.packb(body, use_bin_type=True)

    def telemetry(self, node_id: str, frames) -> None:
        """Republish a metrics record or heartbeat as JSON for dashboards (QoS 0, retained)."""
        try:
            m = decode(frames)
        except ProtocolError:
            return  # the receiver answers it; telemetry just skips it
        if isinstance(m.body, Metrics):
            record = {"node": node_id, "kind": m.body.kind, "values": m.body.values, "final": m.body.final,
                      "t_sim": m.env.t_sim, "t_wall": m.env.t_wall}
            try:
                topic = telemetry_topic(self.fleet, node_id, m.body.kind)
            except ValueError:
                return
        elif isinstance(m.body, Heartbeat):
            record = {"node": node_id, "status": m.body.status, "t_wall": m.env.t_wall}
            topic = telemetry_topic(self.fleet, node_id, "heartbeat")
        else:
            return
        self.link.publish(topic, json.dumps(record, default=str).encode(), qos=0, retain=True)

    def downlink(self, proxy: Proxy, ident: bytes, frames: list[bytes]) -> None:
        """A message for an MQTT node: learn the directory from it, then publish it to the node."""
        msg_type = message_type(frames[0])
        if ident == COORDINATOR_IDENT and msg_type == "directory":
            try:
                body = decode(frames).body
                if isinstance(body, Directory):
                    self.allowed = {self.coordinator, *body.endpoints.values()}
            except ProtocolError:
                pass
        self.counts["down"] += 1
        qos, payload = qos_for(msg_type), pack({"from": ident, "f": frames})
        if proxy.node_id in self.online:
            self.link.publish(down_topic(self.fleet, proxy.node_id), payload, qos)
        elif qos:  # a heartbeat or beacon would be stale by then
            held = self.held.setdefault(proxy.node_id, deque())
            if len(held) >= self.settings.max_queued:
                held.popleft()
                self.counts["undeliverable"] += 1
            held.append(payload)

    def run(self) -> int:
        """Forward until stopped (SIGTERM, SIGINT); returns the exit code."""
        self.link.start()
        log.info("bridge for fleet %r: broker %s, coordinator %s", self.fleet, self.settings.broker, self.coordinator)
        try:
            while not self.stopping:
                if not self.link.connected.is_set():
                    self.online.clear()  # after a reconnection each node's status comes again
                for sock, _ in self.poller.poll(200):
                    for _ in range(1000):
                        try:
                            parts = sock.recv_multipart(zmq.NOBLOCK)
                        except zmq.Again:
                            break
                        if sock is self.wake:
                            self.from_mqtt(parts[0].decode(errors="replace"), parts[1])
                        elif len(parts) >= 3:
                            self.downlink(self.by_socket[sock], parts[0], parts[1:])
        finally:
            self.close()
        return 0

    def stop(self, reason: str = "") -> None:
        if not self.stopping:
            log.info("bridge stopping: %s", reason)
        self.stopping = True

    def close(self) -> None:
        self.link.close(2.0)
        if self._push is not None:
            self._push.close()
        for proxy in self.proxies.values():
            proxy.close()
        self.wake.close()
        self.ctx.term()
        log.info("bridge closed: %s, MQTT %s", self.counts, self.link.stats())


def run_bridge(coordinator: str, mqtt: dict, bind_host: str = "127.0.0.1", **_ignored) -> int:
    """Entry point of a bridge process (the supervisor's launcher target, `netmarl bridge`)."""
    bridge = MqttBridge(MqttSettings.model_validate(mqtt), coordinator, bind_host)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: bridge.stop(f"signal {signal.Signals(signum).name}"))
    return bridge.run()


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Arguments of `netmarl bridge`."""
    from agent_node.cli import add_mqtt_arguments

    p.add_argument("--coordinator", help="coordinator inbox endpoint (default: read from RUN_DIR/coordinator.endpoint)")
    p.add_argument("--run-dir", help="a running run's folder, to read the coordinator endpoint from")
    p.add_argument("--bind-host", default="127.0.0.1",
                   help="interface for the stand-in inboxes (must be reachable by the run's processes)")
    add_mqtt_arguments(p)


def cmd_bridge(args: argparse.Namespace) -> int:
    """`netmarl bridge`: validate, then forward in the foreground."""
    from pathlib import Path

    from pydantic import ValidationError

    from agent_node.cli import mqtt_from_args

    coordinator = args.coordinator
    if not coordinator and args.run_dir:
        path = Path(args.run_dir) / "coordinator.endpoint"
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        coordinator = path.read_text().strip() if path.exists() else None
    if not coordinator:
        print("netmarl bridge: give --coordinator ENDPOINT or --run-dir RUN_DIR", file=sys.stderr)
        return 2
    try:
        settings = MqttSettings.model_validate(mqtt_from_args(args) or {})
    except ValidationError as err:
        print(f"netmarl bridge: invalid MQTT settings: {err}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, force=True, format="%(asctime)s bridge %(levelname)s %(name)s: %(message)s")
    return run_bridge(coordinator, settings.model_dump(), args.bind_host)
