"""MQTT transport: the radio and control planes through a broker, for fleets whose members cannot reach
each other directly (NAT, cellular, firewalls). Built on aiomqtt 2.x (pinned `>=2.5,<3`: v3 is MQTT 5
only and still alpha); the broker is mosquitto.

Everything else in a run keeps speaking ZeroMQ. An MQTT node reaches it through a bridge
(`coordinator/mqtt_bridge.py`) next to the coordinator: per node the bridge binds a ROUTER that stands
in for the node's inbox (that endpoint is what the coordinator's Directory lists), publishes what
arrives there on the node's downlink topic, and sends what the node publishes on its uplink topic
through a DEALER whose routing identity is the node's id. So the coordinator, the medium and the world
need no change, and the coordinator's checks (routing identity == envelope source) still hold.

Topic layout (`<fleet>` names one bridge and its nodes, so several runs can share a broker):

    netmarl/<fleet>/<node_id>/up                  node -> bridge: messages the node sends
    netmarl/<fleet>/<node_id>/down                bridge -> node: messages sent to the node
    netmarl/<fleet>/telemetry/<node_id>/<kind>    bridge -> dashboards: JSON metrics record (retained)
    netmarl/<fleet>/telemetry/<node_id>/heartbeat bridge -> dashboards: JSON liveness (retained)
    netmarl/<fleet>/<node_id>/status              node's "online <incarnation>" / "offline" (retained; will)
    netmarl/<fleet>/bridge/status                 the bridge's "online" / "offline", likewise

A dashboard subscribes to `netmarl/<fleet>/telemetry/#` and gets plain JSON:
`{"node", "kind", "values", "final", "t_sim", "t_wall"}` (heartbeats: `{"node", "status", "t_wall"}`).

Payloads on up/down are msgpack maps that carry the ZeroMQ frames unchanged (no pickle):
    up:   {"to": <destination endpoint>, "f": [envelope, body, *arrays]}
          {"re": <routing identity>, "f": frames}   (a reply on that sender's connection, e.g. a Pong)
    down: {"from": <sender's routing identity>, "f": frames}

QoS per message type: 0 for heartbeats and beacons (worthless when late: the next one follows) and
for the JSON telemetry; 1 for everything else (register, directory, start, shutdown, observations,
actions, barriers, requests, replies, and the metrics records the run folder keeps). Messages wait in
a bounded queue while the broker is away and go out in order after reconnection (with backoff from
0.1 s to 2 s); QoS 0 ones that waited longer than `stale_s` are dropped instead, and counted.
Delivery is at least once for QoS 1 (a message whose acknowledgement was lost is sent again).
Sessions are clean (a restarted node must not get its predecessor's Shutdown), so a subscriber that
is away misses what is published meanwhile; hence each side sends only while the other says
"online" on its status topic (published once its subscriptions are in place): a node holds its
uplink while the bridge is not online, the bridge holds (QoS 1) downlink messages per node while that
node is not, and sends them when the same node process (its incarnation) is back; a restarted node
gets none of its predecessor's. What was handed to a broker in the instant it died can still be lost.

Security: use `mqtts://` with a CA file (and a client certificate for mutual TLS), a username and
password per node, and broker ACLs so that a node may publish only `netmarl/<fleet>/<its id>/up` and
read only `.../<its id>/down`, and only the bridge may publish `down` topics. The bridge also checks
that each message's envelope source equals the node id of the topic it came on, and refuses node ids
that cannot be a topic level or are reserved (RESERVED_IDS: "coordinator", "bridge"). A malformed
message (of any shape or types, or over MAX_PAYLOAD) is refused and counted; it never ends the bridge
(see coordinator/mqtt_bridge.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import socket
import ssl
import threading
import time
from collections import deque
from typing import Any, Callable
from urllib.parse import urlsplit

import msgpack
import zmq
import zmq.asyncio
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

log = logging.getLogger(__name__)
# aiomqtt's and paho's own logger: it warns at every publish while more than 10 await their
# acknowledgement, which the window below does by design; connection trouble is logged by MqttLink
client_log = logging.getLogger(__name__ + ".client")
client_log.setLevel(logging.ERROR)

PREFIX = "netmarl"
QOS0_TYPES = frozenset({"heartbeat", "beacon"})
_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")  # no '/', '+', '#' in a topic level
MAX_PAYLOAD = 64 * 1024 * 1024 + 64 * 1024  # a maximal ZeroMQ message plus the wrapper
MAX_ENVELOPE = 8 * 1024  # codec's Limits.max_header_bytes: a longer envelope frame is refused everywhere
MAX_ENDPOINT = 1024  # an uplink's "to": an endpoint (a Register's is at most 206 characters, a host name 253)
MAX_JSON_DEPTH = 32  # telemetry: values nested deeper are refused (json.dumps recurses per level)
# node ids an MQTT node may not use: messages sent as "coordinator" would be trusted as the coordinator's,
# and "bridge" names the bridge's own status topic
RESERVED_IDS = frozenset({"coordinator", "bridge"})
WINDOW = 64  # messages published and not yet acknowledged, per link


def check_name(name: str, what: str = "node id") -> str:
    """A fleet name or node id usable as one topic level."""
    if not _NAME.match(name):
        raise ValueError(f"{what} {name!r} cannot be an MQTT topic level: use letters, digits, '_', '.', ':', '-'")
    return name


def up_topic(fleet: str, node_id: str) -> str:
    return f"{PREFIX}/{fleet}/{check_name(node_id)}/up"


def down_topic(fleet: str, node_id: str) -> str:
    return f"{PREFIX}/{fleet}/{check_name(node_id)}/down"


def telemetry_topic(fleet: str, node_id: str, kind: str) -> str:
    return f"{PREFIX}/{fleet}/telemetry/{check_name(node_id)}/{check_name(kind, 'metrics kind')}"


def status_topic(fleet: str) -> str:
    return f"{PREFIX}/{fleet}/bridge/status"


def node_status_topic(fleet: str, node_id: str) -> str:
    return f"{PREFIX}/{fleet}/{check_name(node_id)}/status"


def message_type(envelope_frame) -> str:
    """The type named in an envelope frame, read without validating the rest: always a str, '' if the
    frame is not a msgpack map (of at most MAX_ENVELOPE bytes) whose "type" is a string."""
    try:
        if memoryview(envelope_frame).nbytes > MAX_ENVELOPE:
            return ""
        env = msgpack.unpackb(envelope_frame, raw=False, max_map_len=64, max_array_len=64)
        kind = env.get("type") if isinstance(env, dict) else None
        return kind if isinstance(kind, str) else ""
    except Exception:  # noqa: BLE001 - msgpack raises several types; all mean "unreadable"
        return ""


def qos_for(msg_type) -> int:
    """QoS for a message type: 0 for heartbeats and beacons, 1 for everything else (anything that is
    not one of those names, whatever its type)."""
    return 0 if isinstance(msg_type, str) and msg_type in QOS0_TYPES else 1


def node_from_topic(node_id: str) -> str:
    """A node id read from a topic level: ValueError unless it is a usable name and not reserved."""
    check_name(node_id)
    if node_id in RESERVED_IDS:
        raise ValueError(f"{node_id!r} is not a node id an MQTT node may use")
    return node_id


def to_json(obj, max_depth: int = MAX_JSON_DEPTH) -> bytes:
    """obj as JSON (values JSON does not know written as str), or ValueError: nested deeper than
    max_depth (json itself would hit RecursionError near 1,000), or a map key that is not a string."""
    stack = [(obj, 0)]
    while stack:  # iterative: the check itself must not recurse
        value, depth = stack.pop()
        if isinstance(value, dict):
            if depth >= max_depth:
                raise ValueError(f"nested deeper than {max_depth}")
            for key, item in value.items():
                if not isinstance(key, str):
                    raise ValueError(f"a map key is {type(key).__name__}, not a string")
                stack.append((item, depth + 1))
        elif isinstance(value, (list, tuple)):
            if depth >= max_depth:
                raise ValueError(f"nested deeper than {max_depth}")
            stack.extend((item, depth + 1) for item in value)
    try:
        return json.dumps(obj, default=str).encode()
    except (ValueError, TypeError, RecursionError) as err:  # what the walk above did not foresee
        raise ValueError(f"not JSON ({type(err).__name__}: {err})") from None


def pack(obj: dict) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def unpack(payload: bytes) -> dict:
    """A bounded decode of an up/down payload; ValueError if it is not a map with a frame list."""
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    try:
        obj = msgpack.unpackb(payload, raw=False, max_array_len=1024, max_map_len=8)
    except Exception as exc:  # noqa: BLE001 - msgpack raises several types; all mean "malformed"
        raise ValueError(f"payload is not valid msgpack ({type(exc).__name__})") from None
    frames = obj.get("f") if isinstance(obj, dict) else None
    if not isinstance(frames, list) or len(frames) < 2 or not all(isinstance(f, bytes) for f in frames):
        raise ValueError("payload has no frame list")
    return obj


def unpack_up(payload: bytes) -> dict:
    """unpack() for an uplink payload, which must also name where it goes: either "to", an endpoint
    (str), or "re", the routing identity (1 to 255 bytes) of the connection it answers; ValueError if not."""
    msg = unpack(payload)
    if "re" in msg:
        ident = msg["re"]
        if not isinstance(ident, bytes) or not 0 < len(ident) <= 255:
            raise ValueError(f'"re" is {type(ident).__name__} (length {_len(ident)}), not a routing identity')
    else:
        to = msg.get("to")
        if not isinstance(to, str) or not 0 < len(to) <= MAX_ENDPOINT:
            raise ValueError(f'"to" is {type(to).__name__} (length {_len(to)}), not an endpoint')
    return msg


def _len(value) -> int | None:
    try:
        return len(value)
    except TypeError:
        return None


class MqttSettings(BaseModel):
    """How to reach the broker (the [mqtt] table of a scenario or node file, or the --mqtt flags)."""

    model_config = ConfigDict(extra="forbid")
    broker: str = Field(description="mqtt://HOST[:PORT] (default port 1883) or mqtts://HOST[:PORT] (8883)")
    fleet: str = Field("default", description="topic namespace shared by one bridge and its nodes")
    username: str | None = None  # broker user name (with password)
    password: SecretStr | None = Field(None, description="default: $NETMARL_MQTT_PASSWORD; never written out")
    tls_ca: str | None = Field(None, description="CA file that signed the broker's certificate (enables TLS)")
    tls_cert: str | None = Field(None, description="client certificate, for mutual TLS")
    tls_key: str | None = Field(None, description="client key, for mutual TLS")
    tls_insecure: bool = Field(False, description="skip the broker host name check (testing only)")
    # MQTT keep-alive, s: the client pings the broker when it has sent nothing for this long
    keepalive_s: int = Field(5, ge=1, le=3600)
    max_queued: int = Field(10_000, ge=1, description="messages held while the broker is away")
    stale_s: float = Field(2.0, gt=0, description="QoS 0 messages older than this are dropped, not sent")

    @field_validator("broker")
    @classmethod
    def _url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"broker {url!r} must look like mqtt://HOST[:PORT] or mqtts://HOST[:PORT]")
        try:
            parts.port
        except ValueError as err:
            raise ValueError(f"broker {url!r}: {err}") from None
        return url

    @field_validator("fleet")
    @classmethod
    def _fleet(cls, name: str) -> str:
        return check_name(name, "fleet")

    @property
    def host(self) -> str:
        return urlsplit(self.broker).hostname

    @property
    def port(self) -> int:
        parts = urlsplit(self.broker)
        return parts.port or (8883 if parts.scheme == "mqtts" else 1883)

    @property
    def tls(self) -> bool:
        return urlsplit(self.broker).scheme == "mqtts" or self.tls_ca is not None

    def tls_context(self) -> ssl.SSLContext | None:
        """The client TLS context (system CAs unless tls_ca is given), or None for plain TCP."""
        if not self.tls:
            return None
        context = ssl.create_default_context(cafile=self.tls_ca)
        if self.tls_cert:
            context.load_cert_chain(self.tls_cert, self.tls_key)
        if self.tls_insecure:
            context.check_hostname = False
        return context


class MqttLink:
    """One MQTT client in a background thread with its own asyncio loop, reconnecting forever.

    publish() may be called from any thread: it queues (bounded) and returns at once. Messages leave in
    order, one QoS 1 acknowledgement at a time, and stay queued while the broker is away. on_message
    (topic, payload) runs in the link's thread (it may be a coroutine function).
    """

    def __init__(
        self,
        settings: MqttSettings,
        client_id: str,
        subscriptions: list[tuple[str, int]],
        on_message: Callable[[str, bytes], Any] | None = None,
        status: str | None = None,
        gate: asyncio.Event | None = None,
        online: bytes = b"online",
    ):
        self.settings, self.client_id = settings, client_id
        settings.tls_context()  # a missing or bad CA, certificate or key fails here, not in the thread
        self.subscriptions, self.on_message = subscriptions, on_message
        # status: a topic that reads "online" (published, retained, as soon as the subscriptions are in
        # place) or "offline" (the will, or a clean close). gate: while it is clear nothing is sent (the
        # owner opens it when the far end is listening); every disconnection closes it.
        self.status, self.gate, self.online = status, gate, online
        self.loop = asyncio.new_event_loop()
        self.connected = threading.Event()
        self.events: deque[tuple[str, float, str]] = deque(maxlen=1000)  # (event, monotonic time, detail)
        self.connects = self.disconnects = self.published = self.dropped = self.stale_dropped = 0
        self._pending: deque[tuple[str, bytes, int, bool, float]] = deque()
        self._inflight: deque[tuple[tuple, asyncio.Future]] = deque()  # sent, not yet acknowledged
        self._lock = threading.Lock()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task | None = None
        self._current = None  # the connected aiomqtt client, if any
        self._thread = threading.Thread(target=self._run, name=f"mqtt-{client_id}", daemon=True)
        self._logged_error = ""

    # ------------------------------------------------------------ any thread
    def start(self) -> None:
        self._thread.start()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> bool:
        """Queue one message; False (and counted) if the queue is full."""
        with self._lock:
            if len(self._pending) >= self.settings.max_queued:
                self.dropped += 1
                return False
            self._pending.append((topic, payload, qos, retain, time.monotonic()))
        try:
            self.loop.call_soon_threadsafe(self._wake.set)
        except RuntimeError:  # the loop is closed: the link was stopped
            return False
        return True

    @property
    def queued(self) -> int:
        return len(self._pending) + len(self._inflight)

    def stats(self) -> dict[str, int]:
        return {
            "connects": self.connects,
            "disconnects": self.disconnects,
            "published": self.published,
            "queued": self.queued,
            "dropped": self.dropped,
            "stale_dropped": self.stale_dropped,
        }

    def wait_connected(self, timeout_s: float) -> bool:
        return self.connected.wait(timeout_s)

    def close(self, drain_s: float = 5.0) -> None:
        """Send what is queued (waiting up to drain_s, also for a broker that is away), then stop."""
        if not self._thread.is_alive():
            return
        deadline = time.monotonic() + drain_s
        while (self._pending or self._inflight) and time.monotonic() < deadline:
            time.sleep(0.01)
        if self._pending or self._inflight:
            log.warning("%s: %d queued MQTT messages not sent within %.1f s", self.client_id, self.queued, drain_s)
        self._stopping = True
        try:
            asyncio.run_coroutine_threadsafe(self._goodbye(), self.loop)
        except RuntimeError:
            pass
        self._thread.join(5.0)

    # ------------------------------------------------------------ the link's thread
    async def _goodbye(self) -> None:
        """A clean disconnection sends no will: say "offline" ourselves, then stop."""
        client = self._current
        if client is not None and self.status and self.connected.is_set():
            try:
                await asyncio.wait_for(client.publish(self.status, b"offline", qos=1, retain=True), 2.0)
            except Exception:  # noqa: BLE001 - best effort; the broker may be gone
                pass
        if self._task is not None:
            self._task.cancel()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self._task = self.loop.create_task(self._main())
        try:
            self.loop.run_until_complete(self._task)
        except asyncio.CancelledError:
            pass
        finally:
            for task in asyncio.all_tasks(self.loop):
                task.cancel()
            self.loop.run_until_complete(asyncio.sleep(0))
            self.loop.close()

    def _client(self):
        import aiomqtt  # imported here: a node without --mqtt never needs it

        s = self.settings
        will = aiomqtt.Will(self.status, b"offline", 1, True) if self.status else None
        password = s.password.get_secret_value() if s.password else os.environ.get("NETMARL_MQTT_PASSWORD")
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=password,
            identifier=self.client_id,
            will=will,
            keepalive=s.keepalive_s,
            timeout=5,
            clean_session=True,
            tls_context=s.tls_context(),
            tls_insecure=s.tls_insecure if s.tls else None,
            max_queued_incoming_messages=100_000,
            max_inflight_messages=WINDOW,
            # paho leaves Nagle on: a PUBACK then waits for the peer's delayed ACK (~40 ms)
            socket_options=((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),),
            logger=client_log,
        )

    async def _main(self) -> None:
        import aiomqtt

        backoff, down_since = 0.1, None
        while not self._stopping:
            try:
                async with self._client() as client:
                    self._current = client
                    for topic, qos in self.subscriptions:
                        await client.subscribe(topic, qos)
                    self.connects += 1
                    outage = 0.0 if down_since is None else time.monotonic() - down_since
                    self.events.append(("connected", time.monotonic(), f"{outage:.2f}"))
                    log.info("%s: connected to %s:%d", self.client_id, self.settings.host, self.settings.port)
                    if self.status:
                        await client.publish(self.status, self.online, qos=1, retain=True)
                    self.connected.set()
                    backoff, self._logged_error = 0.1, ""
                    await self._serve(client)
            except Exception as err:  # noqa: BLE001 - MqttError mostly; whatever it is, retry, never die
                if not isinstance(err, aiomqtt.MqttError):
                    err = f"{type(err).__name__}: {err}"
                if str(err) != self._logged_error:
                    log.warning(
                        "%s: broker %s:%d: %s (retrying)", self.client_id, self.settings.host, self.settings.port, err
                    )
                    self._logged_error = str(err)
            self._current = None
            if self.gate is not None:
                self.gate.clear()
            if self.connected.is_set():
                self.connected.clear()
                self.disconnects += 1
                down_since = time.monotonic()
                self.events.append(("disconnected", down_since, ""))
            elif down_since is None:
                down_since = time.monotonic()
            if not self._stopping:
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def _serve(self, client) -> None:
        """Send and receive until the connection fails (MqttError) or the link stops."""
        sender = asyncio.ensure_future(self._send(client))
        receiver = asyncio.ensure_future(self._receive(client))
        try:
            done, _ = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises the MqttError that ended it
        finally:
            for task in (sender, receiver):
                task.cancel()
            await asyncio.gather(sender, receiver, return_exceptions=True)

    async def _receive(self, client) -> None:
        async for message in client.messages:
            try:
                result = self.on_message(message.topic.value, bytes(message.payload)) if self.on_message else None
                if asyncio.iscoroutine(result):
                    await result
            except Exception:  # a bad message must not end the link
                log.exception("%s: handling a message on %s failed", self.client_id, message.topic.value)

    async def _send(self, client) -> None:
        """Publish queued messages in order, up to WINDOW awaiting their acknowledgement at once (one at
        a time would cap a node at one QoS 1 message per round trip). Unacknowledged ones go back to the
        front of the queue when the connection fails, to be sent again after reconnection."""
        pending, inflight, stale_s = self._pending, self._inflight, self.settings.stale_s
        try:
            while True:
                while inflight and inflight[0][1].done():
                    inflight[0][1].result()  # an MqttError ends the connection; the finally re-queues
                    inflight.popleft()
                    self.published += 1
                if self.gate is not None and not self.gate.is_set():
                    await self._wait_any(self.gate.wait(), inflight)
                    continue
                if not pending or len(inflight) >= WINDOW:
                    self._wake.clear()
                    if not pending or len(inflight) >= WINDOW:
                        await self._wait_any(self._wake.wait() if len(inflight) < WINDOW else None, inflight)
                    continue
                with self._lock:
                    item = pending.popleft()
                topic, payload, qos, retain, t_queued = item
                if qos == 0 and time.monotonic() - t_queued > stale_s:
                    self.stale_dropped += 1
                    continue
                inflight.append(
                    (item, asyncio.ensure_future(client.publish(topic, payload, qos=qos, retain=retain, timeout=30)))
                )
        finally:
            with self._lock:
                while inflight:
                    item, task = inflight.pop()
                    if task.done() and not task.cancelled() and task.exception() is None:
                        self.published += 1
                    else:
                        task.cancel()
                        pending.appendleft(item)

    @staticmethod
    async def _wait_any(awaitable, inflight) -> None:
        """Wait for awaitable (if any) or for the oldest message in flight to be acknowledged."""
        waits = [asyncio.ensure_future(awaitable)] if awaitable is not None else []
        if inflight:
            waits.append(inflight[0][1])
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if awaitable is not None:
                waits[0].cancel()


class MqttPeerLink:
    """Stands in for a PeerLink (same send/close/endpoint/failed): publishes on the node's uplink topic."""

    def __init__(self, transport: "NodeTransport", endpoint: str):
        self.transport, self.endpoint, self.failed = transport, endpoint, 0

    def send(self, frames, flags: int = 0) -> bool:
        ok = self.transport.send({"to": self.endpoint}, frames)
        self.failed += not ok
        return ok

    def close(self, linger_ms: int | None = None) -> None:
        pass


class NodeTransport:
    """A node's side of the MQTT transport.

    Outgoing: link_factory(endpoint, identity) gives the Endpoint links that publish on the node's
    uplink. Incoming: each downlink message is handed to the node's own inbox through a loopback
    DEALER whose routing identity is the original sender's, so the Endpoint's checks (Directory,
    Start and Shutdown only from b"coordinator") work unchanged; what the node answers on such a
    connection (a Pong) goes back up as a reply.
    """

    def __init__(self, settings: MqttSettings, node_id: str):
        self.settings, self.node_id = settings, node_id
        self.up = up_topic(settings.fleet, node_id)
        self.actx = zmq.asyncio.Context()
        self.inbox_endpoint: str | None = None
        self.injectors: dict[bytes, zmq.asyncio.Socket] = {}
        self.rejected = self.injected_dropped = 0
        self.bridge_online = threading.Event()  # wait_bridge() waits for it; the gate holds the uplink
        self._gate = asyncio.Event()
        self._down, self._status = down_topic(settings.fleet, node_id), status_topic(settings.fleet)
        # "online <incarnation>": the bridge sends a node what it held for it only if it is the same process
        self.incarnation = f"{os.getpid()}-{os.urandom(4).hex()}"
        self.link = MqttLink(
            settings,
            f"{PREFIX}-{settings.fleet}-{node_id}",
            [(self._down, 1), (self._status, 1)],
            on_message=self._downlink,
            status=node_status_topic(settings.fleet, node_id),
            gate=self._gate,
            online=f"online {self.incarnation}".encode(),
        )

    def link_factory(self, endpoint: str, identity: str = "") -> MqttPeerLink:
        return MqttPeerLink(self, endpoint)

    def start(self, inbox_endpoint: str) -> None:
        """Begin: downlink messages go to the inbox bound at inbox_endpoint."""
        self.inbox_endpoint = inbox_endpoint
        self.link.start()

    def wait_bridge(self, timeout_s: float, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Wait until the bridge says it is online (its retained status), so the registration is heard."""
        deadline = time.monotonic() + timeout_s
        while not self.bridge_online.wait(0.1):
            if cancelled():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{self.node_id}: no netmarl bridge online on {self._status} "
                    f"at {self.settings.broker} within {timeout_s} s"
                )

    def send(self, head: dict, frames) -> bool:
        frames = [bytes(f) for f in frames]
        return self.link.publish(self.up, pack({**head, "f": frames}), qos_for(message_type(frames[0])))

    async def _downlink(self, topic: str, payload: bytes) -> None:
        if topic == self._status:  # send only while the bridge listens: what it cannot hear waits here
            if payload == b"online":
                self.bridge_online.set()
                self._gate.set()
            else:
                self.bridge_online.clear()
                self._gate.clear()
            return
        try:
            msg = unpack(payload)
            ident = msg.get("from")
            if not isinstance(ident, bytes) or not 0 < len(ident) <= 255:
                raise ValueError("no sender identity")
        except ValueError as err:
            self.rejected += 1
            if self.rejected <= 10:
                log.warning("%s: rejected a downlink message: %s", self.node_id, err)
            return
        sock = self.injectors.get(ident)
        if sock is None:
            sock = self.injectors[ident] = self.actx.socket(zmq.DEALER)
            sock.setsockopt(zmq.ROUTING_ID, ident)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 100_000)
            sock.connect(self.inbox_endpoint)
            asyncio.ensure_future(self._replies(ident, sock))
        try:
            await sock.send_multipart(msg["f"], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.injected_dropped += 1

    async def _replies(self, ident: bytes, sock) -> None:
        while True:
            frames = await sock.recv_multipart()
            self.send({"re": ident}, frames)

    def close(self, drain_s: float = 5.0) -> None:
        """Send what is queued (up to drain_s), then stop the link and close the loopback sockets."""
        self.link.close(drain_s)
        for sock in self.injectors.values():
            sock.close(0)
        self.actx.term()
