"""The radio plane as seen by an agent: send to a peer or broadcast, through the medium or directly."""

from __future__ import annotations

import numpy as np
from zmq import NOBLOCK

from protocols.codec import Stamper, encode, wire_size
from protocols.lockstep import AgentLedger
from protocols.messages import BROADCAST, Body
from protocols.sockets import PeerBook


class Radio:
    """Sends radio-plane messages; emulated mode hands everything to the medium, direct mode to peers.

    Each message type has its own sequence numbers, so the medium's drop decisions for, say, beacons
    (a function of seed, link and sequence) do not shift when a timing-dependent payload is sent.
    """

    def __init__(self, peers: PeerBook, stamper: Stamper, mode: str = "emulated", ledger: AgentLedger | None = None):
        self.peers, self.stamper, self.mode = peers, stamper, mode
        self.sent_by_type: dict[str, int] = {}  # each type's sequence numbers: every send, whether it left or not
        self.ledger = ledger if ledger is not None else AgentLedger()  # the lock-step's count (protocols/lockstep.py)
        self.direct_tx: dict[str, list[int]] = {}  # direct mode: "dst|type" -> [messages, bytes] sent

    def encode(self, body: Body, dst: str, arrays: dict[str, np.ndarray] | None = None) -> list:
        """Frames for a radio message, numbered in its type's own sequence."""
        seq = self.sent_by_type.get(body.TYPE, 0)
        return encode(body, src=self.stamper.src, dst=dst, seq=seq, t_sim=self.stamper.clock(), arrays=arrays)

    def medium_id(self) -> str | None:
        """Id of the medium process, if one is registered."""
        ids = self.peers.ids("medium")
        return ids[0] if ids else None

    def send(self, dst: str, body: Body, arrays: dict[str, np.ndarray] | None = None) -> bool:
        """Send body to dst (a node id or BROADCAST); True if it left this process."""
        frames = self.encode(body, dst, arrays)
        self.sent_by_type[body.TYPE] = self.sent_by_type.get(body.TYPE, 0) + 1  # the sequence moves on regardless
        if self.mode == "emulated":
            medium = self.medium_id()
            ok = medium is not None and self.peers.send(medium, frames)
            if ok:  # only what reached the medium's queue is announced to the lock-step
                self.ledger.hand_over()
            return ok
        peers = [dst] if dst != BROADCAST else [p for p in self.peers.ids("agent") if p != self.stamper.src]
        ok, size = True, wire_size(frames)
        for peer in peers:
            if self.peers.send(peer, frames, NOBLOCK):  # a peer that cannot take it loses it: a radio never waits
                cell = self.direct_tx.setdefault(f"{peer}|{body.TYPE}", [0, 0])
                cell[0] += 1
                cell[1] += size
            else:
                ok = False
        return ok

    def broadcast(self, body: Body, arrays: dict[str, np.ndarray] | None = None) -> bool:
        """Send body to every agent in range."""
        return self.send(BROADCAST, body, arrays)
