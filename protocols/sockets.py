"""Socket helpers: the inbox ROUTER, a DEALER per peer, and Lazy Pirate request/reply."""

from __future__ import annotations

import logging
import os
import time

import zmq
from zmq.utils.monitor import recv_monitor_message

from .codec import DEFAULT_LIMITS, Limits, decode, encode
from .errors import ProtocolError, ReplyBudget
from .messages import Directory, Error, Message
from .security import Gate, KeyPair, make_client, make_server

log = logging.getLogger(__name__)

DEFAULT_LINGER_MS = 500
DEFAULT_SEND_TIMEOUT_MS = 2000
DEFAULT_HWM = 10_000
# a lost connection is retried after 0.1 s, doubling to every 2 s (one SYN each), so a link is back within
# 2 s of the network's return, well inside a node's 10 s coordinator timeout
RECONNECT_IVL_MS, RECONNECT_IVL_MAX_MS = 100, 2000
# plain ints: pyzmq's enum flags cost a conversion per call on the hot path
NOBLOCK, POLLIN, EVENTS = int(zmq.NOBLOCK), int(zmq.POLLIN), int(zmq.EVENTS)
SNDMORE = int(zmq.SNDMORE)
HANDSHAKE_EVENTS = zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
HEARTBEAT_IVL_MS, HEARTBEAT_TIMEOUT_MS = 1000, 4000  # ZMTP PING on CURVE inboxes: dead connections go


def send_frames(sock: zmq.Socket, frames, flags: int = 0) -> None:
    """send_multipart without its per-frame enum arithmetic (about 1 us less per message)."""
    more = flags | SNDMORE
    for i in range(len(frames) - 1):
        sock.send(frames[i], more)
    sock.send(frames[-1], flags)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """recv_multipart, likewise: a Frame says whether more follow, which spares a getsockopt per frame
    (pyzmq converts every option through an Enum: about 1 us a call)."""
    frame = sock.recv(flags, copy=False)
    parts = [frame.bytes]
    while frame.more:
        frame = sock.recv(0, copy=False)
        parts.append(frame.bytes)
    return parts


class Inbox:
    """A node's one ROUTER socket: everything addressed to the node arrives here."""

    authenticated = False  # whether every sender is a member of the run (a SecureInbox: admitted by key)

    def __init__(
        self,
        ctx: zmq.Context,
        bind: str = "tcp://127.0.0.1:*",
        limits: Limits = DEFAULT_LIMITS,
        pair: KeyPair | None = None,
    ):
        self.limits = limits
        self.replies = ReplyBudget()  # Error replies here and the owner's Pongs to peers it does not know
        self.sock = ctx.socket(zmq.ROUTER)
        if pair is not None:
            make_server(self.sock, pair)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # reply to a vanished peer raises instead of vanishing
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted peer may take its routing id over
        self.sock.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)  # first DoS bound, before msgpack
        self.sock.setsockopt(zmq.RCVHWM, DEFAULT_HWM)
        self.sock.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
        self.sock.bind(bind)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self._poll_items = [(self.sock, POLLIN)]
        self.rejected = 0
        self._logged_peers: set[bytes] = set()

    def recv_raw(self, flags: int = 0) -> tuple[bytes, list]:
        """Receive one multipart message undecoded: (peer identity, frames)."""
        ident, *frames = recv_frames(self.sock, flags)  # copying beats Frame objects below ~64 kB
        return ident, frames

    def recv(self, flags: int = 0) -> tuple[bytes, Message | None]:
        """Receive one message; a malformed one is answered with an Error and returned as None."""
        ident, frames = self.recv_raw(flags)
        try:
            return ident, decode(frames, self.limits)
        except ProtocolError as err:
            self.reject(ident, err)
            return ident, None

    def reject(self, ident: bytes, err: ProtocolError) -> None:
        """Count a bad message, log it once per peer (the first max_peers peers) and send the peer an Error
        reply while its ReplyBudget lasts (a flood of garbage gets a bounded number of replies)."""
        self.rejected += 1
        budget = self.replies
        if ident not in self._logged_peers and len(self._logged_peers) < budget.max_peers:
            self._logged_peers.add(ident)
            log.warning("rejected message from peer %r: %s (further ones are counted, not logged)", ident, err)
        if budget.allow(ident, known=self.authenticated):
            self.reply(ident, encode(Error(code="malformed", detail=str(err)[:500]), src="", dst="", seq=0))

    def wait(self, timeout_ms: int | None) -> bool:
        """Whether a message is waiting, after up to timeout_ms (None: for ever). zmq_poll on a ready list:
        Socket.poll builds a Poller per call, getsockopt converts its option through an Enum, a failing
        recv raises; this costs about half of each."""
        return bool(zmq.zmq_poll(self._poll_items, timeout_ms if timeout_ms is not None else -1))

    def has_more(self) -> bool:
        """Whether another message is waiting now."""
        return bool(zmq.zmq_poll(self._poll_items, 0))

    def reply(self, ident: bytes, frames) -> bool:
        """Send frames back to the peer connected as ident; False if it is gone or slow."""
        try:
            send_frames(self.sock, [ident, *frames], NOBLOCK)
            return True
        except zmq.ZMQError:
            return False

    def close(self) -> None:
        """Close the socket (lingering briefly so replies in flight go out)."""
        self.sock.close()


class SecureInbox(Inbox):
    """An Inbox that is a CURVE server: its context's Gate admits known keys only, and a sender is the node
    id its key was admitted as, never what it claims. Routing ids are not identities here (a PeerLink under
    CURVE picks a random one per socket, so no one can take over another's connection by naming it); a
    message is refused unless its envelope source is its sender's node id (relays, i.e. the medium, may
    pass on other sources)."""

    authenticated = True

    def __init__(self, ctx: zmq.Context, bind: str, limits: Limits = DEFAULT_LIMITS, *, pair: KeyPair, gate: Gate):
        if not gate.is_alive():
            raise RuntimeError("start the Gate before binding a SecureInbox: without one CURVE admits every key")
        super().__init__(ctx, bind, limits, pair)
        # a connection naming a routing id in use is turned away (not handed over); ZMTP heartbeats drop a
        # dead connection within seconds, so a peer that reconnects after an outage gets its id back
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 0)
        self.sock.setsockopt(zmq.HEARTBEAT_IVL, HEARTBEAT_IVL_MS)
        self.sock.setsockopt(zmq.HEARTBEAT_TIMEOUT, HEARTBEAT_TIMEOUT_MS)
        self.pair, self.gate = pair, gate
        self.relays: frozenset[bytes] = frozenset()
        self.refused = 0
        self.routes: dict[bytes, bytes] = {}  # node id -> routing id of its latest connection (for replies)
        self._logged_forgers: set[tuple[bytes, str]] = set()

    def recv_raw(self, flags: int = 0) -> tuple[bytes, list | None]:
        """Like Inbox.recv_raw, but the sender is the node id its CURVE key was admitted as."""
        first = frame = self.sock.recv(flags, copy=False)
        frames = []
        while frame.more:
            frame = self.sock.recv(0, copy=False)
            frames.append(frame.bytes)
        try:
            user = first.get("User-Id").encode()
        except zmq.ZMQError:
            user = b""
        if not user:  # only a Gate that names every key it admits stands behind this socket
            self.refuse(user, "key", b"(none)")
            return user, None
        if self.routes.get(user) != first.bytes:
            self.routes[user] = first.bytes  # bounded: one entry per admitted key
        return user, frames

    def reply(self, ident: bytes, frames) -> bool:
        """Send frames back to the node ident over its latest connection; False if it is gone or slow."""
        route = self.routes.get(ident)
        return route is not None and super().reply(route, frames)

    def recv(self, flags: int = 0) -> tuple[bytes, Message | None]:
        """Like Inbox.recv; a message whose envelope source is not its sender's id is refused (None)."""
        ident, frames = self.recv_raw(flags)
        if frames is None:
            return ident, None
        try:
            msg = decode(frames, self.limits)
        except ProtocolError as err:
            self.reject(ident, err)
            return ident, None
        if msg.env.src.encode() != ident and ident not in self.relays:
            self.refuse(ident, "source", msg.env.src.encode())
            return ident, None
        return ident, msg

    def refuse(self, user: bytes, field: str, claimed: bytes) -> None:
        """Count a message whose routing id or source claims another sender; log it once per sender and
        field; answer nothing (a reply would go to the routing id claimed)."""
        self.rejected += 1
        self.refused += 1
        if (user, field) not in self._logged_forgers:
            self._logged_forgers.add((user, field))
            log.warning(
                "refused a message: the peer authenticated as %r gave the %s %r (further ones are counted, not logged)",
                user.decode(errors="replace"),
                field,
                claimed.decode(errors="replace"),
            )

    def close(self) -> None:
        """Close the socket, then stop the Gate."""
        super().close()
        self.gate.stop()


def secure_inbox(
    ctx: zmq.Context, admit: dict[str, str], bind: str = "tcp://127.0.0.1:*", pair: KeyPair | None = None
) -> SecureInbox:
    """A SecureInbox (fresh key pair unless given) whose started Gate admits {public key: node id}; a client
    connects with PeerLink(ctx, inbox.endpoint, node_id, curve=(its pair, inbox.pair.public)). For tests and
    benchmarks; close() stops the Gate too."""
    gate = Gate(ctx, admit)
    gate.start()
    return SecureInbox(ctx, bind, pair=pair or KeyPair.generate(), gate=gate)


class PeerLink:
    """A DEALER connected to one peer's inbox; send-only, bounded queue, bounded blocking.

    While the connection is down (a network outage, a peer restarting) ZeroMQ reconnects by itself with
    exponential backoff, and messages sent meanwhile wait in the queue (ZMQ_IMMEDIATE stays 0) and go out,
    in order, after reconnection. Lost are only those already handed to the kernel when a connection is
    reset (what TCP had in flight, at most a socket buffer) and, once DEFAULT_HWM are queued, those
    that find the queue full past the send timeout (send() returns False and counts them).
    """

    def __init__(
        self,
        ctx: zmq.Context,
        endpoint: str,
        identity: str,
        send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS,
        curve: tuple[KeyPair, str] | None = None,
        watch_refusals: bool = False,
    ):
        """curve: (own key pair, the peer's public key) to make the link a CURVE client; watch_refusals: also
        watch for a refused handshake, which check() then retries (a node's link to the coordinator)."""
        self.endpoint = endpoint
        self.server_key = curve[1] if curve else None
        self.sock = ctx.socket(zmq.DEALER)
        self.monitor: zmq.Socket | None = None
        self.refusals = 0
        self._retry_at: float | None = None
        if curve is not None:
            make_client(self.sock, *curve)
            # the server knows us by our key; a random routing id leaves no name for anyone to take over
            self.sock.setsockopt(zmq.ROUTING_ID, identity.encode() + b"#" + os.urandom(8).hex().encode())
            if watch_refusals:  # libzmq gives up on a connection whose handshake was refused: check() retries
                self.monitor = self.sock.get_monitor_socket(HANDSHAKE_EVENTS)  # (two more sockets: only on request)
        else:
            self.sock.setsockopt(zmq.ROUTING_ID, identity.encode())
        self.sock.setsockopt(zmq.SNDHWM, DEFAULT_HWM)
        self.sock.setsockopt(zmq.SNDTIMEO, send_timeout_ms)
        self.sock.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
        self.sock.setsockopt(zmq.RECONNECT_IVL, RECONNECT_IVL_MS)
        self.sock.setsockopt(zmq.RECONNECT_IVL_MAX, RECONNECT_IVL_MAX_MS)
        self.sock.connect(endpoint)
        self.failed = 0

    def check(self) -> None:
        """CURVE: reconnect after the server refused our handshake (libzmq would not try again), backing
        off from 0.1 s to every 2 s, and say so once: a key the server does not (yet) know, or the wrong
        server key. Messages queued on the refused connection are lost. Cheap when nothing happened."""
        mon = self.monitor
        if mon is None:
            return
        while mon.getsockopt(EVENTS) & POLLIN:
            event = recv_monitor_message(mon, NOBLOCK)["event"]
            if event == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                if self.refusals:
                    log.info("%s accepted our CURVE handshake after %d refusals", self.endpoint, self.refusals)
                self.refusals, self._retry_at = 0, None
            elif self._retry_at is None:  # a refusal
                self.refusals += 1
                if self.refusals == 1:
                    log.warning(
                        "%s refused our CURVE handshake (it does not know our key yet, or we hold "
                        "the wrong server key); retrying with backoff",
                        self.endpoint,
                    )
                backoff = min(RECONNECT_IVL_MAX_MS, RECONNECT_IVL_MS * 2 ** min(self.refusals - 1, 8)) / 1000
                self._retry_at = time.monotonic() + backoff
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            self._retry_at = None
            try:
                self.sock.disconnect(self.endpoint)
            except zmq.ZMQError:
                pass
            self.sock.connect(self.endpoint)

    def send(self, frames, flags: int = 0) -> bool:
        """Send one multipart message; False (and counted) if the queue stays full past the timeout
        (or at once with zmq.NOBLOCK)."""
        try:
            send_frames(self.sock, frames, flags)
            return True
        except zmq.Again:
            self.failed += 1
            return False

    def close(self, linger_ms: int | None = None) -> None:
        """Close the socket (and its monitor)."""
        if self.monitor is not None:
            self.sock.disable_monitor()
            self.monitor.close(0)
            self.monitor = None
        self.sock.close(linger=linger_ms)


class PeerBook:
    """Peers by node id, kept in step with the coordinator's Directory; a link opens on first send.
    With a key pair every link is a CURVE client, and a peer is known only with its public key."""

    link_factory = None  # (endpoint, identity) -> link; None: a PeerLink (ZeroMQ). The MQTT transport sets it.

    def __init__(
        self,
        ctx: zmq.Context,
        identity: str,
        send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS,
        pair: KeyPair | None = None,
    ):
        self.ctx, self.identity, self.send_timeout_ms = ctx, identity, send_timeout_ms
        self.pair = pair
        self.keys: dict[str, str] = {}  # node id -> public key (CURVE only)
        self.endpoints: dict[str, str] = {}
        self.links: dict[str, PeerLink] = {}
        self.kinds: dict[str, str] = {}
        self.down: set[str] = set()
        self._ids_cache: dict[str | None, list[str]] = {}  # ids() runs per routed message in the medium

    def connect(self, node_id: str, endpoint: str) -> PeerLink | None:
        """Return the link to node_id, (re)connecting if its endpoint changed; None under CURVE while the
        coordinator has given no key for node_id (no key, no link)."""
        key = self.keys.get(node_id) if self.pair is not None else None
        if self.pair is not None and key is None:
            return None
        if node_id not in self.endpoints:
            self._ids_cache.clear()
        self.endpoints[node_id] = endpoint
        link = self.links.get(node_id)
        if link is None or link.endpoint != endpoint or getattr(link, "server_key", None) != key:
            if link is not None:
                link.close(0)
            link = self.links[node_id] = (
                self.link_factory(endpoint, self.identity)
                if self.link_factory
                else PeerLink(self.ctx, endpoint, self.identity, self.send_timeout_ms, key and (self.pair, key))
            )
        return link

    def update(self, directory: Directory) -> None:
        """Apply a Directory: remember endpoints (moved or re-keyed peers reconnect), kinds and who is down."""
        if self.pair is not None:
            self.keys.update(directory.keys)
        for node_id, endpoint in directory.endpoints.items():
            if node_id == self.identity or (self.pair is not None and node_id not in self.keys):
                continue  # under CURVE a peer the coordinator gave no key for stays unknown
            self.endpoints[node_id] = endpoint
            link = self.links.get(node_id)
            if link is not None and (
                link.endpoint != endpoint or getattr(link, "server_key", None) != self.keys.get(node_id)
            ):
                self.connect(node_id, endpoint)
        self.kinds.update(directory.kinds)
        self.down = set(directory.down)
        self._ids_cache.clear()

    def ids(self, kind: str | None = None) -> list[str]:
        """Known live peers, optionally of one kind."""
        cache = self._ids_cache
        if kind not in cache:
            cache[kind] = [
                n for n in self.endpoints if n not in self.down and (kind is None or self.kinds.get(n) == kind)
            ]
        return cache[kind]

    def knows(self, node_id: str) -> bool:
        """Whether node_id has an endpoint."""
        return node_id in self.endpoints

    def send(self, node_id: str, frames, flags: int = 0) -> bool:
        """Send to a known peer (connecting on first use); False if unknown or its queue is full."""
        link = self.links.get(node_id)
        if link is None:
            endpoint = self.endpoints.get(node_id)
            if endpoint is None:
                return False
            link = self.connect(node_id, endpoint)
            if link is None:
                return False
        return link.send(frames, flags)

    def close(self, linger_ms: int | None = None) -> None:
        """Close every link (linger_ms = 0: drop what is still queued, for peers known to be gone)."""
        for link in self.links.values():
            link.close(linger_ms)
        self.links.clear()


def request(
    ctx: zmq.Context,
    endpoint: str,
    frames,
    *,
    timeout_ms: int = 2500,
    retries: int = 3,
    limits: Limits = DEFAULT_LIMITS,
    identity: str | None = None,
) -> Message:
    """Lazy Pirate: send, wait up to timeout_ms, on silence reopen the socket and resend; give up after retries."""
    for attempt in range(1, retries + 1):
        sock = ctx.socket(zmq.DEALER)
        if identity:
            sock.setsockopt(zmq.ROUTING_ID, identity.encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        try:
            sock.send_multipart(frames)
            if sock.poll(timeout_ms, zmq.POLLIN):
                return decode(sock.recv_multipart(), limits)
            log.debug("request to %s: no reply in %d ms (attempt %d/%d)", endpoint, timeout_ms, attempt, retries)
        finally:
            sock.close()
    raise TimeoutError(f"no reply from {endpoint} after {retries} attempts of {timeout_ms} ms")
