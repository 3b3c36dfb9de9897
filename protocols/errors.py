"""The one exception type raised for anything wrong on the wire, and the budget of replies to peers."""

from __future__ import annotations

import time


class ProtocolError(Exception):
    """A message could not be decoded or validated; the text says what was wrong."""


class ReplyBudget:
    """How many replies (an Error to a bad message, a Pong to a Ping) a process sends to peers it does not
    know, so that a flood of garbage or pings gets a bounded number of answers, not one each.

    Each peer identity has a token bucket (burst, then rate per second), kept in a table of at most
    max_peers identities (the least recently seen is forgotten first: bounded memory); every reply also
    takes a token from one bucket all unknown peers share (shared_burst, shared_rate per second), which
    bounds the answers to a flood from many identities. A peer the caller knows (known=True: the
    coordinator, a node in the Directory) is answered always.
    """

    def __init__(
        self,
        burst: float = 10,
        rate: float = 1.0,
        shared_burst: float = 50,
        shared_rate: float = 10.0,
        max_peers: int = 1024,
        clock=time.monotonic,
    ):
        self.burst, self.rate, self.shared_burst, self.shared_rate = burst, rate, shared_burst, shared_rate
        self.max_peers, self.clock = max_peers, clock
        self.peers: dict[bytes, tuple[float, float]] = {}  # identity -> (tokens, when); insertion order = LRU
        self.shared, self.shared_at = float(shared_burst), clock()
        self.withheld = 0  # replies not sent

    def allow(self, ident: bytes, known: bool = False) -> bool:
        """Whether to answer ident now (taking a token if so)."""
        if known:
            return True
        now = self.clock()
        tokens, then = self.peers.pop(ident, (self.burst, now))  # re-inserted below: most recently seen last
        tokens = min(self.burst, tokens + (now - then) * self.rate)
        self.shared = min(self.shared_burst, self.shared + (now - self.shared_at) * self.shared_rate)
        self.shared_at = now
        ok = tokens >= 1 and self.shared >= 1
        if ok:
            tokens -= 1
            self.shared -= 1
        else:
            self.withheld += 1
        self.peers[ident] = (tokens, now)
        if len(self.peers) > self.max_peers:
            del self.peers[next(iter(self.peers))]
        return ok
