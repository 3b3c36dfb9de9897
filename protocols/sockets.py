"""Socket helpers: the inbox ROUTER, a DEALER per peer, and Lazy Pirate request/reply."""
from __future__ import annotations

import logging

import zmq

from .codec import DEFAULT_LIMITS, Limits, decode, encode
from .errors import ProtocolError
from .messages import Directory, Error, Message

log = logging.getLogger(__name__)

DEFAULT_LINGER_MS = 500
DEFAULT_SEND_TIMEOUT_MS = 2000
DEFAULT_HWM = 10_000
# plain ints: pyzmq's enum flags cost a conversion per call on the hot path
NOBLOCK, POLLIN, EVENTS = int(zmq.NOBLOCK), int(zmq.POLLIN), int(zmq.EVENTS)
SNDMORE, RCVMORE = int(zmq.SNDMORE), int(zmq.RCVMORE)


def send_frames(sock: zmq.Socket, frames, flags: int = 0) -> None:
    """send_multipart without its per-frame enum arithmetic (about 1 us less per message)."""
    last = len(frames) - 1
    for i, frame in enumerate(frames):
        sock.send(frame, flags | SNDMORE if i < last else flags)


def recv_frames(sock: zmq.Socket, flags: int = 0) -> list[bytes]:
    """recv_multipart, likewise."""
    parts = [sock.recv(flags)]
    while sock.getsockopt(RCVMORE):
        parts.append(sock.recv(0))
    return parts


class Inbox:
    """A node's one ROUTER socket: everything addressed to the node arrives here."""

    def __init__(self, ctx: zmq.Context, bind: str = "tcp://127.0.0.1:*", limits: Limits = DEFAULT_LIMITS):
        self.limits = limits
        self.sock = ctx.socket(zmq.ROUTER)
        self.sock.setsockopt(zmq.ROUTER_MANDATORY, 1)  # reply to a vanished peer raises instead of vanishing
        self.sock.setsockopt(zmq.ROUTER_HANDOVER, 1)  # a restarted peer may take its routing id over
        self.sock.setsockopt(zmq.MAXMSGSIZE, limits.max_message_bytes)  # first DoS bound, before msgpack
        self.sock.setsockopt(zmq.RCVHWM, DEFAULT_HWM)
        self.sock.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
        self.sock.bind(bind)
        self.endpoint = self.sock.getsockopt_string(zmq.LAST_ENDPOINT)
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
        """Count a bad message, log it once per peer and send the peer an Error reply."""
        self.rejected += 1
        if ident not in self._logged_peers:
            self._logged_peers.add(ident)
            log.warning("rejected message from peer %r: %s (further ones are counted, not logged)", ident, err)
        self.reply(ident, encode(Error(code="malformed", detail=str(err)[:500]), src="", dst="", seq=0))

    def has_more(self) -> bool:
        """Whether another message is waiting (cheaper than a failing non-blocking recv)."""
        return bool(self.sock.getsockopt(EVENTS) & POLLIN)

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


class PeerLink:
    """A DEALER connected to one peer's inbox; send-only, bounded queue, bounded blocking."""

    def __init__(self, ctx: zmq.Context, endpoint: str, identity: str,
                 send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS, curve: dict | None = None):
        self.endpoint = endpoint
        self.sock = ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.ROUTING_ID, identity.encode())
        self.sock.setsockopt(zmq.SNDHWM, DEFAULT_HWM)
        self.sock.setsockopt(zmq.SNDTIMEO, send_timeout_ms)
        self.sock.setsockopt(zmq.LINGER, DEFAULT_LINGER_MS)
        self.sock.connect(endpoint)
        self.failed = 0

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
        """Close the socket."""
        self.sock.close(linger=linger_ms)


class PeerBook:
    """Peers by node id, kept in step with the coordinator's Directory; a link opens on first send."""

    def __init__(self, ctx: zmq.Context, identity: str, send_timeout_ms: int = DEFAULT_SEND_TIMEOUT_MS):
        self.ctx, self.identity, self.send_timeout_ms = ctx, identity, send_timeout_ms
        self.endpoints: dict[str, str] = {}
        self.links: dict[str, PeerLink] = {}
        self.kinds: dict[str, str] = {}
        self.down: set[str] = set()
        self._ids_cache: dict[str | None, list[str]] = {}  # ids() runs per routed message in the medium

    def connect(self, node_id: str, endpoint: str) -> PeerLink:
        """Return the link to node_id, (re)connecting if its endpoint changed."""
        if node_id not in self.endpoints:
            self._ids_cache.clear()
        self.endpoints[node_id] = endpoint
        link = self.links.get(node_id)
        if link is None or link.endpoint != endpoint:
            if link is not None:
                link.close(0)
            link = self.links[node_id] = PeerLink(self.ctx, endpoint, self.identity, self.send_timeout_ms)
        return link

    def update(self, directory: Directory) -> None:
        """Apply a Directory: remember endpoints (moved peers reconnect), kinds and who is down."""
        for node_id, endpoint in directory.endpoints.items():
            if node_id == self.identity:
                continue
            self.endpoints[node_id] = endpoint
            link = self.links.get(node_id)
            if link is not None and link.endpoint != endpoint:
                self.connect(node_id, endpoint)
        self.kinds.update(directory.kinds)
        self.down = set(directory.down)
        self._ids_cache.clear()

    def ids(self, kind: str | None = None) -> list[str]:
        """Known live peers, optionally of one kind."""
        cache = self._ids_cache
        if kind not in cache:
            cache[kind] = [n for n in self.endpoints
                           if n not in self.down and (kind is None or self.kinds.get(n) == kind)]
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
        return link.send(frames, flags)

    def close(self) -> None:
        """Close every link."""
        for link in self.links.values():
            link.close()
        self.links.clear()


def request(ctx: zmq.Context, endpoint: str, frames, *, timeout_ms: int = 2500, retries: int = 3,
            limits: Limits = DEFAULT_LIMITS, identity: str | None = None) -> Message:
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
