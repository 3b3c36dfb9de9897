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

Bad messages: one malformed or hostile message, from MQTT or on a stand-in inbox, must not end the
bridge. Each is checked where it enters (the uplink's shape and types, the node id in its topic, the
envelope, metrics values that JSON cannot hold or nested deeper than MAX_JSON_DEPTH, a stand-in
message whose envelope is unreadable), and whatever still goes wrong while handling one message is
caught around that message. Either way it is refused, counted in `rejected` and logged once per sender
(as protocols/sockets.py's Inbox.reject does), and the bridge goes on; the counts are in its last log line.

Run it with `netmarl bridge --coordinator tcp://... --mqtt mqtt://HOST:PORT --fleet NAME`, or let the
supervisor start it: give the scenario an [mqtt] table (scenarios/config.py).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import time
from collections import deque

import msgpack
import zmq

from protocols.codec import DEFAULT_LIMITS, decode, decode_envelope, encode, wire_size
from protocols.errors import ProtocolError
from protocols.messages import Directory, Error, Heartbeat, Metrics
from protocols.mqtt import (
    PREFIX,
    MqttLink,
    MqttSettings,
    down_topic,
    message_type,
    node_from_topic,
    pack,
    qos_for,
    status_topic,
    telemetry_topic,
    to_json,
    unpack_up,
)

log = logging.getLogger("coordinator.mqtt_bridge")

COORDINATOR_IDENT = b"coordinator"
WAKE = "inproc://netmarl-mqtt-bridge-{}"
MAX_LOGGED = 1000  # senders whose first bad message is logged; later ones are only counted


class Proxy:
    """One MQTT node's stand-in: its ROUTER inbox and a DEALER per destination, with its identity."""

    def __init__(self, ctx: zmq.Context, node_id: str, bind_host: str):
        self.node_id = node_id
        self.router = ctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.ROUTER_HANDOVER, 1)
        self.router.setsockopt(zmq.MAXMSGSIZE, DEFAULT_LIMITS.max_message_bytes)
        self.router.setsockopt(zmq.LINGER, 0)
        try:
            self.router.bind(f"tcp://{bind_host}:*")
        except zmq.ZMQError:  # e.g. out of file descriptors: refuse this message, keep no half-made proxy
            self.router.close(0)
            raise
        self.endpoint = self.router.getsockopt_string(zmq.LAST_ENDPOINT)
        self.dealers: dict[str, zmq.Socket] = {}
        self.ctx = ctx

    def dealer(self, endpoint: str) -> zmq.Socket:
        """The DEALER to endpoint (ZMQError if ZeroMQ cannot connect there; nothing is kept then)."""
        sock = self.dealers.get(endpoint)
        if sock is None:
            sock = self.ctx.socket(zmq.DEALER)
            try:
                sock.setsockopt(zmq.ROUTING_ID, self.node_id.encode())
                sock.setsockopt(zmq.SNDHWM, 10_000)
                sock.setsockopt(zmq.LINGER, 500)
                sock.connect(endpoint)
            except zmq.ZMQError:
                sock.close(0)
                raise
            self.dealers[endpoint] = sock
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
        self.link = MqttLink(
            settings,
            f"{PREFIX}-{self.fleet}-bridge",
            [(f"{PREFIX}/{self.fleet}/+/up", 1), (f"{PREFIX}/{self.fleet}/+/status", 1)],
            on_message=self._from_mqtt,
            status=status_topic(self.fleet),
        )

    # ------------------------------------------------------------ the MQTT thread
    def _from_mqtt(self, topic: str, payload: bytes) -> None:
        """Hand an uplink message to the main thread (ZeroMQ sockets stay in one thread each)."""
        if self._push is None:
            self._push = self.ctx.socket(zmq.PUSH)
            self._push.setsockopt(zmq.LINGER, 0)
            self._push.connect(self.wake_endpoint)
        self._push.send_multipart([topic.encode(errors="replace"), payload])

    # ------------------------------------------------------------ the main thread
    def _warn_once(self, key: str, text: str, *args) -> None:
        if key not in self._logged and len(self._logged) < MAX_LOGGED:
            self._logged.add(key)
            log.warning(text + " (further ones are counted, not logged)", *args)

    def reject(self, sender, reason) -> None:
        """Count a bad message and log it once per sender (a node id, or a stand-in's peer identity)."""
        self.counts["rejected"] += 1
        self._warn_once(f"rej:{sender!r}", "rejected a message from %r: %s", sender, reason)

    def _failed(self, sender, err: Exception) -> None:
        """The last resort: handling one message raised what no check foresaw. Refuse it like any bad
        one (the traceback is logged once per sender: it is a bug to fix) and go on."""
        self.counts["rejected"] += 1
        key = f"err:{sender!r}"
        if key not in self._logged and len(self._logged) < MAX_LOGGED:
            self._logged.add(key)
            log.error(
                "could not handle a message from %r: %r (further ones are counted, not logged)",
                sender,
                err,
                exc_info=err,
            )

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
        if len(parts) != 4 or parts[3] not in ("status", "up"):
            return  # not a topic of ours (the subscriptions give no other)
        if parts[3] == "status" and topic == status_topic(self.fleet):
            return  # the bridge's own
        try:
            node_id = node_from_topic(parts[2])
        except ValueError as err:
            self.reject(parts[2], err)
            return
        if parts[3] == "status":
            self.on_status(node_id, payload)
        else:
            self.uplink(node_id, payload)

    def uplink(self, node_id: str, payload: bytes) -> None:
        """A node's message: check it, then send it on with the node's identity."""
        try:
            msg = unpack_up(payload)
            frames = msg["f"]
            if wire_size(frames) > DEFAULT_LIMITS.max_message_bytes:
                raise ProtocolError("message too large")
            env = decode_envelope(frames[0])
            if env.src != node_id:
                raise ProtocolError(f"envelope source {env.src!r} is not the topic's node")
            if "re" not in msg and msg["to"] not in self.allowed:
                raise ProtocolError(
                    f"it asked for {msg['to']!r}, which is neither the coordinator nor in its directory"
                )
            telemetry = self.telemetry(node_id, frames) if env.type in ("metrics", "heartbeat") else None
        except (ValueError, ProtocolError) as err:
            self.reject(node_id, err)
            return
        proxy = self.proxy(node_id)
        if "re" in msg:  # a reply on a sender's connection (e.g. a Pong)
            self.counts["up"] += 1
            try:
                proxy.router.send_multipart([msg["re"], *frames], zmq.NOBLOCK)
            except zmq.ZMQError:
                self.counts["undeliverable"] += 1
            return
        dst = msg["to"]
        if env.type == "register":
            try:
                frames[1] = self._rewrite_register(frames[1], proxy.endpoint)
            except Exception as err:  # noqa: BLE001 - any malformed body is refused the same way
                self.reject(node_id, f"bad registration: {err!r}")
                return
        try:
            sock = proxy.dealer(dst)
        except zmq.ZMQError as err:  # listed by the coordinator, but not an address ZeroMQ can connect to
            self.counts["undeliverable"] += 1
            self._warn_once(f"bad:{dst}", "cannot connect to %r (%s); dropping what is sent there", dst, err)
            return
        self.counts["up"] += 1
        if telemetry is not None:
            self.link.publish(*telemetry, qos=0, retain=True)
        try:
            sock.send_multipart(frames, zmq.NOBLOCK)
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

    def telemetry(self, node_id: str, frames) -> tuple[str, bytes] | None:
        """The (topic, JSON) that republishes a metrics record or heartbeat for dashboards; None if there is
        none to publish. ValueError for a record nested deeper than MAX_JSON_DEPTH (no record of the
        project comes near; about 1,000 levels make json.dumps raise RecursionError, here as in the run's
        metrics.jsonl) or with a map key that is not a string (JSON cannot hold it): the message is refused."""
        try:
            m = decode(frames)
        except ProtocolError:
            return None  # the receiver answers it; telemetry just skips it
        if isinstance(m.body, Metrics):
            record = {
                "node": node_id,
                "kind": m.body.kind,
                "values": m.body.values,
                "final": m.body.final,
                "t_sim": m.env.t_sim,
                "t_wall": m.env.t_wall,
            }
            try:
                topic = telemetry_topic(self.fleet, node_id, m.body.kind)
            except ValueError:
                topic = None  # a kind that cannot be a topic level: no telemetry, the record still goes on
        elif isinstance(m.body, Heartbeat):
            record = {"node": node_id, "status": m.body.status, "t_wall": m.env.t_wall}
            topic = telemetry_topic(self.fleet, node_id, "heartbeat")
        else:
            return None
        try:
            text = to_json(record)
        except ValueError as err:
            raise ValueError(f"its {m.env.type} record cannot be JSON: {err}") from None
        return (topic, text) if topic is not None else None

    def downlink(self, proxy: Proxy, ident: bytes, frames: list[bytes]) -> None:
        """A message for an MQTT node: learn the directory from it, then publish it to the node. One
        without a readable envelope (not a map whose type is a string, or fewer than two frames) is
        refused here, as the node's inbox would: counted, logged once per sender, answered with an Error."""
        msg_type = message_type(frames[0]) if len(frames) >= 2 else ""
        if not msg_type:
            self.reject(ident, "no readable envelope" if len(frames) >= 2 else f"{len(frames)} frame(s), not 2 or more")
            try:
                proxy.router.send_multipart(
                    [ident, *encode(Error(code="malformed", detail="no readable envelope"), src="", dst="", seq=0)],
                    zmq.NOBLOCK,
                )
            except zmq.ZMQError:
                pass
            return
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
                        self.handle(sock, parts)
        finally:
            self.close()
        return 0

    def handle(self, sock: zmq.Socket, parts: list[bytes]) -> None:
        """One message, from MQTT (the wake pipe: topic, payload) or on a stand-in (identity, frames).
        Whatever it raises is caught here: one message, however malformed, cannot end the bridge."""
        sender = None
        try:
            if sock is self.wake:
                topic = parts[0].decode(errors="replace")
                sender = topic.split("/")[2] if topic.count("/") >= 3 else topic
                self.from_mqtt(topic, parts[1])
            else:
                sender = parts[0]
                self.downlink(self.by_socket[sock], parts[0], parts[1:])
        except Exception as err:  # noqa: BLE001 - the last resort, see _failed
            self._failed(sender, err)

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
    p.add_argument(
        "--bind-host",
        default="127.0.0.1",
        help="interface for the stand-in inboxes (must be reachable by the run's processes)",
    )
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
        if (Path(args.run_dir) / "coordinator.key").exists():
            print(
                "netmarl bridge: this run authenticates its processes (CURVE), which the bridge does not speak; "
                'run it with security.curve = "off" (or give the scenario an [mqtt] table)',
                file=sys.stderr,
            )
            return 2
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
