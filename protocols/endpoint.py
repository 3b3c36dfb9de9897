"""A process's presence on the control plane: inbox, coordinator link, peer book, registration, heartbeats."""

from __future__ import annotations

import logging
import math
import os
import signal
import socket
import time
from typing import Any, Callable

import zmq

from .codec import DEFAULT_LIMITS, Limits, Stamper
from .messages import (
    BarrierArrive,
    BarrierRelease,
    Body,
    Directory,
    Heartbeat,
    Message,
    Metrics,
    Ping,
    Pong,
    Register,
    RegisterAck,
    Shutdown,
)
from .security import Curve, Gate
from .sockets import NOBLOCK, Inbox, PeerBook, PeerLink, SecureInbox

log = logging.getLogger(__name__)

COORDINATOR_ID = "coordinator"
COORDINATOR_IDENT = COORDINATOR_ID.encode()
COORDINATOR_ONLY = frozenset({"directory", "shutdown", "register_ack", "start", "barrier_release"})
MAX_BATCH = 1000
PEER_KEY_GRACE_S = 60.0  # a peer may connect before this process reads the Directory with its key (Gate)
REGISTER_AGAIN_S = 5.0  # a node not yet acknowledged announces itself again this often
BIND_ENV = "NETMARL_BIND"  # where a process's inbox listens when its start does not say (coordinator/ray_launcher.py)
COORDINATOR_QUIET_S = 3.0  # three of the coordinator's 1 s heartbeats missed: say so in the log


class Endpoint:
    """Everything a node, the world or the medium needs to take part in a run."""

    def __init__(
        self,
        node_id: str,
        kind: str,
        coordinator: str,
        *,
        role: str = "",
        bind: str | None = None,
        heartbeat_s: float = 0.5,
        limits: Limits = DEFAULT_LIMITS,
        coordinator_timeout_s: float = 10.0,
        link_factory=None,
        curve: Curve | None = None,
        advertise: str | None = None,
    ):
        """bind: where the inbox listens (None: $NETMARL_BIND, which a launcher placing processes on other hosts sets
        to the host's address, else loopback); advertise: the endpoint to register instead of the bound one (behind
        NAT or a relay)."""
        bind = bind or os.environ.get(BIND_ENV) or "tcp://127.0.0.1:*"
        self.node_id, self.kind, self.role = node_id, kind, role
        self.advertise = advertise
        self.ctx = zmq.Context()
        self.curve = curve
        if curve is None:
            self.inbox = Inbox(self.ctx, bind, limits)
        else:  # CURVE: admit the coordinator now, peers as its Directory vouches for them
            gate = Gate(self.ctx, {curve.coordinator_key: COORDINATOR_ID}, grace_s=PEER_KEY_GRACE_S, logger=log)
            gate.start()
            self.inbox = SecureInbox(self.ctx, bind, limits, pair=curve.pair, gate=gate)
        self.t_sim = 0.0
        self.stamper = Stamper(node_id, clock=lambda: self.t_sim)
        # link_factory(endpoint, identity) replaces the ZeroMQ links (the MQTT transport); the inbox stays
        self.coordinator = (
            link_factory(coordinator, node_id)
            if link_factory
            else PeerLink(
                self.ctx, coordinator, node_id, curve=curve and (curve.pair, curve.coordinator_key), watch_refusals=True
            )
        )
        self.peers = PeerBook(self.ctx, node_id, pair=curve and curve.pair)
        self.peers.link_factory = link_factory
        self.heartbeat_s = heartbeat_s
        self._next_heartbeat = 0.0
        self.stopping = False
        self.stop_reason = ""
        self.shutdown_requested = False
        self.ack: RegisterAck | None = None
        self.started = False
        self.before_start: list[tuple[bytes, Message]] = []  # messages that came before the start
        self.coordinator_timeout_s = coordinator_timeout_s
        self.coordinator_seen = time.monotonic()
        self.coordinator_quiet = False  # silent for over COORDINATOR_QUIET_S
        self.outages = 0  # times the coordinator went silent for over COORDINATOR_QUIET_S
        self._ignored: set[bytes] = set()  # senders of coordinator-only messages, logged once each

    # ------------------------------------------------------------ sending
    def to_coordinator(self, body: Body, arrays=None) -> bool:
        """Send a control-plane message to the coordinator."""
        return self.coordinator.send(self.stamper.encode(body, COORDINATOR_ID, arrays))

    def metrics(self, kind: str, values: dict[str, Any], final: bool = False) -> None:
        """Send one metrics record to the coordinator's sink."""
        self.to_coordinator(Metrics(kind=kind, values=values, final=final))

    def check_links(self) -> None:
        """CURVE: the link to the coordinator, if it refused our handshake, tries again and says so
        (PeerLink.check; peers never refuse a member: their gates wait for the Directory)."""
        if self.curve is not None:
            self.coordinator.check()

    def maybe_heartbeat(self) -> None:
        """Send a heartbeat if one is due (and let a refused coordinator link try again: off the hot path)."""
        now = time.monotonic()
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.heartbeat_s
            self.check_links()
            self.to_coordinator(Heartbeat())
            silent = now - self.coordinator_seen
            if self.ack is None or self.inbox.has_more():  # unread messages: this process was busy, not cut off
                return
            if silent > self.coordinator_timeout_s:
                self.stop(f"coordinator silent for over {self.coordinator_timeout_s:.0f} s")
            elif silent > COORDINATOR_QUIET_S and not self.coordinator_quiet:
                self.coordinator_quiet, self.outages = True, self.outages + 1
                log.warning(
                    "%s: coordinator silent for %.1f s; reconnecting, messages wait in the queue "
                    "(giving up after %.0f s)",
                    self.node_id,
                    silent,
                    self.coordinator_timeout_s,
                )

    # ------------------------------------------------------------ receiving
    def handle_control(self, ident: bytes, msg: Message) -> bool:
        """Handle messages every process treats alike; True if consumed.

        Directory, Shutdown, RegisterAck and Start are obeyed only from the coordinator's connection.
        """
        body = msg.body
        if ident == COORDINATOR_IDENT:
            now = time.monotonic()
            if self.coordinator_quiet:
                self.coordinator_quiet = False
                log.info("%s: coordinator back after %.1f s", self.node_id, now - self.coordinator_seen)
            self.coordinator_seen = now
            if isinstance(body, Heartbeat):
                return True
        if isinstance(body, Ping):  # peers outside the Directory get a bounded number of Pongs
            known = ident == COORDINATOR_IDENT or self.peers.knows(ident.decode(errors="replace"))
            if self.inbox.replies.allow(ident, known):
                self.inbox.reply(ident, self.stamper.encode(Pong(nonce=body.nonce), msg.env.src))
            return True
        if msg.env.type in COORDINATOR_ONLY and ident != COORDINATOR_IDENT:
            if ident not in self._ignored and len(self._ignored) < 1024:  # logged once per sender
                self._ignored.add(ident)
                log.warning(
                    "%s: ignoring %s from %r: only the coordinator may send it (further ones are not logged)",
                    self.node_id,
                    msg.env.type,
                    ident,
                )
            return True
        if isinstance(body, Directory):
            self.peers.update(body)
            if self.curve is not None:
                self.trust(body)
        elif isinstance(body, Shutdown):
            self.shutdown_requested = True
            self.stop(f"shutdown requested by the coordinator ({body.reason or 'no reason given'})")
        elif isinstance(body, RegisterAck):
            self.ack = body
        elif msg.env.type == "start":
            self.started = True
        else:
            return False
        return True

    def trust(self, directory: Directory) -> None:
        """CURVE: admit exactly the keys the coordinator vouches for; the medium may relay others' messages."""
        ids = {key: node_id for node_id, key in directory.keys.items() if node_id != COORDINATOR_ID}
        self.inbox.gate.admit_only({**ids, self.curve.coordinator_key: COORDINATOR_ID})
        self.inbox.relays = frozenset(n.encode() for n, kind in directory.kinds.items() if kind == "medium")

    def poll(self, timeout_ms: int) -> list[tuple[bytes, Message]]:
        """Wait up to timeout_ms, then take up to MAX_BATCH messages; return those not handled here."""
        out = []
        if not self.inbox.wait(timeout_ms):
            return out
        for _ in range(MAX_BATCH):
            ident, msg = self.inbox.recv(NOBLOCK)
            if msg is not None and not self.handle_control(ident, msg):
                out.append((ident, msg))
            if not self.inbox.has_more():
                break
        return out

    def wait_for(
        self,
        done: Callable[[], bool],
        timeout_s: float | None,
        *,
        keep: list | None,
        on_message: Callable[[bytes, Message], bool] | None = None,
        poll_ms: int = 100,
        heartbeat: bool = True,
        between: Callable[[], None] | None = None,
        while_stopping: bool = False,
    ) -> bool:
        """The one waiting primitive: take in messages until done() holds; True if it does, False at the
        deadline (timeout_s from now; None: none) or, unless while_stopping, as soon as this endpoint stops.

        done() is asked first, then after each batch of messages. Before each poll (at most poll_ms, never
        past the deadline) a heartbeat goes out if due (heartbeat=False: not yet registered) and between()
        runs. Messages handle_control does not consume go to on_message, which returns True if it took the
        message; the rest are appended to keep, or dropped where the caller passes keep=None: what happens
        to messages that are not the awaited ones is always the caller's explicit choice."""
        deadline = math.inf if timeout_s is None else time.monotonic() + timeout_s
        while not done():
            if self.stopping and not while_stopping:
                return False
            left_ms = (deadline - time.monotonic()) * 1000
            if left_ms <= 0:
                return False
            if heartbeat:
                self.maybe_heartbeat()  # a long wait must not look like a hang
            if between is not None:
                between()
            for ident, msg in self.poll(max(1, int(min(left_ms, poll_ms)))):
                if (on_message is None or not on_message(ident, msg)) and keep is not None:
                    keep.append((ident, msg))
        return True

    def barrier(
        self, name: str, round_: int = 0, group: list[str] = (), timeout_s: float = 60.0
    ) -> tuple[list[str], list]:
        """Wait at the coordinator's named barrier (for group, or every live agent); returns
        (members released, messages that came meanwhile, for the caller to handle)."""
        self.to_coordinator(BarrierArrive(name=name, round=round_, group=list(group)))
        released: list[list[str]] = []
        pending: list[tuple[bytes, Message]] = []

        def take_release(_ident: bytes, msg: Message) -> bool:
            body = msg.body
            if released or not isinstance(body, BarrierRelease) or (body.name, body.round) != (name, round_):
                return False
            released.append(body.members)
            return True

        if self.wait_for(lambda: bool(released), timeout_s, on_message=take_release, keep=pending):
            return released[0], pending
        if self.stopping:
            return [], pending
        raise TimeoutError(f"{self.node_id}: barrier {name!r} round {round_} not released in {timeout_s} s")

    def stop_on_signals(self) -> None:
        """SIGTERM and SIGINT ask the main loop to end; sockets then close and metrics flush."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: self.stop(f"signal {signal.Signals(signum).name}"))

    def stop(self, reason: str) -> None:
        """Ask the main loop to end."""
        if not self.stopping:
            log.info("%s stopping: %s", self.node_id, reason)
        self.stopping, self.stop_reason = True, reason

    # ------------------------------------------------------------ lifecycle
    def register(self, timeout_s: float = 60.0) -> RegisterAck:
        """Announce this process and wait for the coordinator's acknowledgement (announcing again every
        REGISTER_AGAIN_S: a Register sent on a connection the coordinator refused is lost)."""
        reg = Register(
            node_id=self.node_id,
            kind=self.kind,
            role=self.role,
            endpoint=self.advertise or self.inbox.endpoint,
            pid=os.getpid(),
            host=socket.gethostname(),
        )
        self.to_coordinator(reg)
        again = time.monotonic() + REGISTER_AGAIN_S

        def announce_again() -> None:
            nonlocal again
            if time.monotonic() > again:
                self.to_coordinator(reg)
                again = time.monotonic() + REGISTER_AGAIN_S
            self.check_links()

        acked = self.wait_for(
            lambda: self.ack is not None,
            timeout_s,
            keep=self.before_start,  # what comes before the start is handled after it (wait_start)
            poll_ms=200,
            heartbeat=False,  # not a member yet
            between=announce_again,
        )
        if not acked and not self.stopping:
            cause = (
                "; the coordinator refused our CURVE key every time: it is not on its allow-list "
                "(security.allow_dir), or --coordinator-key is not the run's"
                if getattr(self.coordinator, "refusals", 0)
                else ""
            )
            raise TimeoutError(f"{self.node_id}: no registration ack within {timeout_s} s{cause}")
        return self.ack

    def wait_start(self, timeout_s: float | None = None) -> list[tuple[bytes, Message]]:
        """Block until the coordinator says start (or goes silent: see maybe_heartbeat); return
        messages that came meanwhile."""
        pending, self.before_start = self.before_start, []
        poll_ms = int(min(500, self.heartbeat_s * 1000))  # Start wakes it at once
        if not self.wait_for(lambda: self.started, timeout_s, keep=pending, poll_ms=poll_ms) and not self.stopping:
            raise TimeoutError(f"{self.node_id}: no start within {timeout_s} s")
        return pending

    def close(self) -> None:
        """Close every socket and the context; idempotent."""
        if self.ctx.closed:
            return
        self.peers.close()
        self.coordinator.close()
        self.inbox.close()
        self.ctx.term()
