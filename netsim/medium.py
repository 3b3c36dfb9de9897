"""The medium process: routes radio-plane messages, dropping, delaying or cutting them per the channel."""

from __future__ import annotations

import heapq
import itertools
import logging
import math
import time

import numpy as np

from protocols.codec import decode, decode_envelope, wire_size
from protocols.endpoint import COORDINATOR_IDENT, MAX_BATCH, Endpoint
from protocols.errors import ProtocolError
from protocols.lockstep import MediumLedger
from protocols.messages import BROADCAST, REGISTRY, Directory, LinkReport, Positions, Tick
from protocols.security import Curve
from protocols.sockets import NOBLOCK, POLLIN

from .channel import Channel
from .config import NetsimConfig
from .stats import COLUMNS, LinkStats

log = logging.getLogger("netsim.medium")

CONTROL_TYPES = frozenset({"directory", "shutdown", "positions", "register_ack", "start", "ping", "heartbeat"})
POSITION_HISTORY = 64
REPORT_EVERY_S = 2.0  # link counters (and positions) to the coordinator
POSITIONS_EVERY_S = 1.0  # positions alone in between, when the run keeps a live view (run.live: the dashboard's feed)
TICK_WAIT_S = 0.5  # longest wait for an agent's announced radio messages before they are written off


class Medium:
    """Per message and per receiver: look up both positions, ask the channel, schedule or drop, count."""

    def __init__(self, ep: Endpoint, cfg: NetsimConfig, seed: int, live: bool = False):
        self.ep, self.cfg = ep, cfg
        self.live = live
        self.channel = Channel(cfg, seed)
        self.stats = LinkStats()
        self.positions: dict[float, dict[str, tuple[float, float]]] = {}
        self.latest: dict[str, tuple[float, float]] = {}
        self.step = -1  # the world's step of the newest positions
        self.now_sim = 0.0
        self.queue: list[tuple] = []
        self._tiebreak = itertools.count()
        self.forwarded = 0
        self.ahead_of_positions: list[
            tuple[bytes, list, object]
        ] = []  # sent at a step whose positions have not arrived yet
        self.step_s: float | None = None  # sim time between the last two steps' positions
        self.held: dict[str, int] = {}  # per sender: its messages in early plus its entries in queue
        self.ledger = MediumLedger()  # lock-step with the world (sim clock): protocols/lockstep.py
        self.pending: tuple | None = None  # (world id, positions message) waiting for the agents' messages
        self.pending_since = 0.0
        self.endpoints: dict[str, str] = {}
        self._cap_for, self._cap = None, 0  # sender_cap() and the agent list it was worked out for

    # ------------------------------------------------------------ positions and clock
    def on_positions(self, world: str, msg) -> None:
        """Take the world's positions for a step once every radio message sent before it has arrived."""
        if self.pending is not None:  # the world gave up waiting for the previous step
            self.try_tick(give_up=True)
        self.ledger.join(msg.body.radio_sent)  # joined mid-run (a restart): what was sent before is written off
        self.pending, self.pending_since = (world, msg), time.monotonic()
        self.try_tick()

    def try_tick(self, give_up: bool = False) -> None:
        """Advance to the pending step once each agent's messages (as counted in its last action) are in.

        give_up: the wait ran past TICK_WAIT_S; messages still missing (sent to a medium that has since
        been replaced, say) are written off and logged, so one loss cannot stall every later step.
        """
        world, msg = self.pending
        missing = self.ledger.missing(msg.body.radio_sent)
        if missing and not give_up:
            return
        self.ledger.write_off(missing)
        for a, m in missing.items():
            log.warning("step %d: %d radio messages from %s never arrived; written off", msg.body.step, m, a)
        self.pending = None
        self.advance(msg)
        tick = Tick(step=msg.body.step, delivered=self.ledger.delivered)
        self.ep.peers.send(world, self.ep.stamper.encode(tick, world))

    def on_directory(self, directory) -> None:
        """A node that came back (new endpoint) counts its messages from zero again."""
        for node, endpoint in directory.endpoints.items():
            if self.endpoints.get(node, endpoint) != endpoint:
                self.ledger.forget(node)
        self.endpoints.update(directory.endpoints)
        for node, endpoint in directory.endpoints.items():  # connect now: not all at once on the first broadcast
            if directory.kinds.get(node) == "agent" and node not in directory.down:
                self.ep.peers.connect(node, endpoint)

    def advance(self, msg) -> None:
        """Store the positions of this step and release the deliveries now due."""
        xy = msg.arrays["xy"]
        if self.positions and msg.env.t_sim > self.now_sim:
            self.step_s = msg.env.t_sim - self.now_sim
        self.latest = {node: (float(x), float(y)) for node, (x, y) in zip(msg.body.ids, xy)}
        self.step = msg.body.step
        self.positions[round(msg.env.t_sim, 6)] = self.latest
        if len(self.positions) > POSITION_HISTORY:
            del self.positions[min(self.positions)]
        self.now_sim = max(self.now_sim, msg.env.t_sim)
        ahead, self.ahead_of_positions = self.ahead_of_positions, []
        for _ident, frames, env in ahead:  # drop-decision inputs are now the same whatever the arrival order
            self.held[env.src] -= 1
            self.forward(env, frames)
        self.release()

    def now(self) -> float:
        """Current time on the configured clock."""
        return self.now_sim if self.cfg.clock == "sim" else time.monotonic()

    # ------------------------------------------------------------ routing
    def route(self, ident: bytes, frames) -> None:
        """Handle one incoming multipart message: control messages here, radio ones to forward()."""
        if frames is None:  # CURVE: a sender claiming another's id, refused and counted by the inbox
            return
        try:
            if not frames:
                raise ProtocolError("empty message")
            env = decode_envelope(frames[0], self.ep.inbox.limits)
            if env.type in CONTROL_TYPES:
                msg = decode(frames, self.ep.inbox.limits)
                if isinstance(msg.body, Positions):
                    world = ident.decode(errors="replace")
                    if self.ep.peers.kinds.get(world) != "world":
                        raise ProtocolError(f"positions from {ident!r}, which is not a world process")
                    self.on_positions(world, msg)
                    return
                self.ep.handle_control(ident, msg)  # first: a Directory's keys are stored before we connect
                if isinstance(msg.body, Directory) and ident == COORDINATOR_IDENT:
                    self.on_directory(msg.body)
                return
            if env.type not in REGISTRY:
                raise ProtocolError(f"unknown message type {env.type!r}")
            if ident != env.src.encode():
                raise ProtocolError(f"envelope source {env.src!r} does not match the connection {ident!r}")
            if self.ep.peers.kinds.get(env.src) != "agent":
                raise ProtocolError(f"radio message from {env.src!r}, which is not a registered agent")
        except ProtocolError as err:
            self.ep.inbox.reject(ident, err)
            return
        self.ledger.route(env.src)
        if self.cfg.clock == "sim" and env.t_sim > self.now_sim and self.is_early(env):
            self.ahead_of_positions.append(
                (ident, frames, env)
            )  # the world's positions for that step are still on their way
            self.held[env.src] = self.held.get(env.src, 0) + 1
            return
        self.forward(env, frames)
        if self.pending is not None:
            self.try_tick()

    def is_early(self, env) -> bool:
        """Whether a message stamped after now_sim waits in early for its step's positions: only if it is at
        most one step ahead of the newest positions (an agent acts on the step it was last shown, so an
        honest one is never further ahead), those positions have not come, and its sender's share of the
        queue is not used up. Anything else is sent now (forward() clamps its send time to now_sim)."""
        if (
            round(env.t_sim, 6) in self.positions
            or len(self.ahead_of_positions) >= self.cfg.max_queue
            or self.held.get(env.src, 0) >= self.sender_cap()
        ):
            return False
        if self.step_s is None:  # fewer than two steps seen: one step's length is not known yet
            return True
        newest = max(self.now_sim, self.pending[1].env.t_sim if self.pending is not None else self.now_sim)
        return env.t_sim <= newest + self.step_s * (1 + 1e-6)

    def sender_cap(self) -> int:
        """Entries of early and queue one sender may hold: an even share of max_queue among the agents, but
        at least four broadcasts' worth; so a flood from one sender cannot fill the queue for the others.
        (Worked out again only when the list of agents is a new one: it is asked per routed message.)"""
        agents = self.ep.peers.ids("agent")
        if agents is not self._cap_for:
            n = max(1, len(agents))
            self._cap_for, self._cap = agents, min(self.cfg.max_queue, max(self.cfg.max_queue // n, 4 * n))
        return self._cap

    def forward(self, env, frames) -> None:
        """Per receiver: distance at send time, channel decision, then schedule or drop, and count.

        On the sim clock a message is sent at its own stamp, but never later than the medium's clock
        (now_sim): one stamped in the future (only a misbehaving agent's; an honest one waits in early until
        its step's positions come) is sent now, and cannot sit in the queue for ever."""
        size = wire_size(frames)
        t_sent = min(env.t_sim, self.now_sim)
        pos = self.positions.get(round(t_sent, 6), self.latest)
        src_xy = pos.get(env.src)
        if env.dst == BROADCAST:
            dsts = [p for p in self.ep.peers.ids("agent") if p != env.src]
        else:
            dsts = [env.dst]
        sent_at = t_sent if self.cfg.clock == "sim" else time.monotonic()
        cap = self.sender_cap()
        for dst in dsts:
            dst_xy = pos.get(dst)
            if not self.ep.peers.knows(dst):  # one catch-all row: peers cannot grow the table at will
                self.stats.record(env.src, "?", env.type, math.nan, size, False, "unknown_dst")
                continue
            if src_xy is None or dst_xy is None:
                self.stats.record(env.src, dst, env.type, math.nan, size, False, "no_position")
                continue
            d = math.hypot(src_xy[0] - dst_xy[0], src_xy[1] - dst_xy[1])
            dec = self.channel.decide(env.src, dst, env.seq, d, size, env.type)
            if not dec.delivered:
                self.stats.record(env.src, dst, env.type, d, size, False, dec.cause)
            elif len(self.queue) >= self.cfg.max_queue or self.held.get(env.src, 0) >= cap:
                self.stats.record(env.src, dst, env.type, d, size, False, "queue")
            else:
                due, meta = sent_at + dec.latency_s, (env.src, env.type, d, size, dec.latency_s)
                if not self.queue and due <= self.now():
                    self.deliver(dst, frames, meta)  # already due and nothing ahead of it: skip the heap
                else:
                    heapq.heappush(self.queue, (due, next(self._tiebreak), dst, frames, meta))
                    self.held[env.src] = self.held.get(env.src, 0) + 1
        self.release()

    def release(self) -> None:
        """Deliver every scheduled message whose arrival time has come."""
        q = self.queue
        if not q:
            return
        now = self.now() + 1e-9
        while q and q[0][0] <= now:
            _, _, dst, frames, meta = heapq.heappop(q)
            self.held[meta[0]] -= 1
            self.deliver(dst, frames, meta)

    def deliver(self, dst: str, frames, meta: tuple) -> None:
        """Hand a message to its receiver's inbox and count it."""
        src, kind, d, size, lat = meta
        if self.ep.peers.send(dst, frames, NOBLOCK):  # a stalled receiver must not stall the medium
            self.stats.record(src, dst, kind, d, size, True, "ok", lat)
            self.ledger.deliver(dst)
            self.forwarded += 1
        else:
            self.stats.record(src, dst, kind, d, size, False, "queue")

    def report(self, final: bool = False, positions_only: bool = False) -> None:
        """Send the link counters to the coordinator, with the newest positions (positions_only: just those,
        a small message; the table's cost grows with the links, so it goes every REPORT_EVERY_S only)."""
        ids = list(self.latest)
        names, arrays = ([], {}) if positions_only else self.stats.to_arrays()
        arrays["xy"] = np.array([self.latest[i] for i in ids], np.float64).reshape(-1, 2)
        body = LinkReport(
            names=names,
            columns=COLUMNS[4:],
            final=final,
            ids=ids,
            step=self.step,
            t_sim=self.now_sim,
            positions_only=positions_only,
        )
        self.ep.to_coordinator(body, arrays)

    def drain(self, quiet_ms: int = 200, max_s: float = 5.0) -> None:
        """After the stop: route what is still queued (a backlog can trail the coordinator's
        Shutdown), until the inbox stays quiet for quiet_ms, so the final counts are complete.
        (Not Endpoint.wait_for: the medium reads raw frames and decodes only the envelope, and this waits
        for silence, not for a condition.)"""
        deadline = time.monotonic() + max_s
        while time.monotonic() < deadline and self.ep.inbox.sock.poll(quiet_ms, POLLIN):
            ident, frames = self.ep.inbox.recv_raw(NOBLOCK)
            self.route(ident, frames)

    def run(self) -> int:
        """Main loop until shutdown."""
        ep = self.ep
        next_report = next_positions = time.monotonic() + REPORT_EVERY_S
        while not ep.stopping:
            ep.maybe_heartbeat()
            timeout = 100
            if self.cfg.clock == "wall" and self.queue:
                timeout = max(0, min(timeout, math.ceil((self.queue[0][0] - time.monotonic()) * 1000)))
            if ep.inbox.wait(timeout):
                for _ in range(MAX_BATCH):  # bounded burst, then heartbeats and timers get their turn
                    ident, frames = ep.inbox.recv_raw(NOBLOCK)
                    self.route(ident, frames)
                    if not ep.inbox.has_more():
                        break
            if self.cfg.clock == "wall":
                self.release()
            if self.pending is not None and time.monotonic() - self.pending_since > TICK_WAIT_S:
                self.try_tick(give_up=True)
            now = time.monotonic()
            if now >= next_report:
                self.report()
                next_report, next_positions = now + REPORT_EVERY_S, now + POSITIONS_EVERY_S
            elif self.live and now >= next_positions:
                self.report(positions_only=True)
                next_positions = now + POSITIONS_EVERY_S
        self.drain()
        for _ident, frames, env in self.ahead_of_positions:  # their step's positions never came
            self.stats.record(env.src, env.dst, env.type, math.nan, wire_size(frames), False, "shutdown")
        self.ahead_of_positions.clear()
        for _, _, dst, _, (src, kind, d, size, _lat) in self.queue:
            self.stats.record(src, dst, kind, d, size, False, "shutdown")
        self.queue.clear()
        self.held.clear()
        self.report(final=True)
        log.info("medium done: %d deliveries, %d rejected messages", self.forwarded, ep.inbox.rejected)
        return 0


def run_medium(
    node_id: str,
    coordinator: str,
    seed: int,
    netsim: dict,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
    live: bool = False,
) -> int:
    """Entry point of the medium process (curve_secret and coordinator_key: CURVE, Z85; live: report each
    positions each POSITIONS_EVERY_S for the run's live view)."""
    ep = Endpoint(
        node_id, "medium", coordinator, curve=Curve.from_settings(curve_secret, coordinator_key=coordinator_key)
    )
    ep.stop_on_signals()
    try:
        ep.register()
        medium = Medium(ep, NetsimConfig.model_validate(netsim), seed, live=live)
        pending = ep.wait_start()
        medium.on_directory(
            Directory(endpoints=dict(ep.peers.endpoints), kinds=dict(ep.peers.kinds), down=sorted(ep.peers.down))
        )  # the one that came with Start
        for ident, msg in pending:  # the world may send its first positions as Start arrives here
            if isinstance(msg.body, Positions) and ep.peers.kinds.get(ident.decode(errors="replace")) == "world":
                medium.on_positions(ident.decode(), msg)
            else:
                log.warning("dropped %s from %r: it came before the start", msg.env.type, ident)
        return medium.run()
    finally:
        ep.close()
