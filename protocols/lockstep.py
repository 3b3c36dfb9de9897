"""The lock-step ledger of the time model: which process counts which radio messages, and when each may move on.

Agents, world and medium keep one ledger between them, each process its own part. Every count is per agent,
cumulative, and starts again from 0 when the process it counts restarts (a new endpoint):

    agent a   AgentLedger.handed       radio messages a's radio handed to the medium (only those that left a)
              AgentLedger.taken_in     deliveries of the (current) medium that a has taken in
    world     WorldLedger.handed[a]    a's `handed` as its last action said, passed on with the positions
    medium    MediumLedger.routed[a]   messages from a that the medium has taken in (routed now, or held until
                                       the positions of the step they were sent at)
              MediumLedger.written_off[a]  messages announced for a that will not come: sent before this medium
                                       took part (a restarted medium), or given up on after netsim's TICK_WAIT_S
              MediumLedger.delivered[a]  messages the medium delivered to a, sent back with each tick

A step's boundary is the world's positions for it. The invariant:

    1. the medium ticks step t only once, for every agent a, routed[a] + written_off[a] >= handed[a] as of a's
       last action before t (MediumLedger.missing is empty), and it delivers what is due by t before it ticks;
    2. an agent acts on step t only after it has taken in every radio message the medium delivered to it up
       to step t: taken_in >= delivered[a] of t's tick (AgentLedger.owes is False).

So a message handed over with an agent's action of step s is routed before step s + 1, and whatever of it is
due by step t (latency L: the first step >= its send time + L) is in its receiver before the receiver acts on
t. Each wait is bounded (the medium's TICK_WAIT_S, the agent's radio_wait_s, the world's step deadline): a
message that never comes is written off and logged, so one loss does not stall the run. One gap (tested):
after a medium restart an agent compares its count of the old medium's deliveries with the new one's until
the first delivery of the new one arrives (take_in starts from 0 then), so on that step it may not wait.

On the wire the counts keep their old names: Action.radio_sent is `handed`, Positions.radio_sent the world's
`handed` map, Tick.delivered the medium's `delivered`, and Observation.radio_expected is delivered[a] (None:
no medium tick this step, nothing to wait for). Not a lock-step count: Radio.sent_by_type, the per message
type sequence numbers (they count sends that failed too; the node's final `radio_sent_by_type` metrics record).
"""

from __future__ import annotations

from collections.abc import Mapping


def expected_radio(delivered: Mapping[str, int] | None, node: str) -> int | None:
    """What the world puts in a node's observation (Observation.radio_expected): delivered[node] from the step's
    tick, None when there was no tick (no medium, or it did not answer in time: the step goes on unsynchronised)."""
    return None if delivered is None else delivered.get(node, 0)


class AgentLedger:
    """An agent's part: what it handed to the medium, and what of the medium's deliveries it has taken in."""

    def __init__(self) -> None:
        self.handed = 0
        self.taken_in = 0
        self.medium: str | None = None  # the endpoint of the medium whose deliveries taken_in counts

    def hand_over(self) -> None:
        """One radio message reached the medium's queue (announced to the lock-step with the next action)."""
        self.handed += 1

    def take_in(self, medium_endpoint: str | None) -> None:
        """One delivery from the medium at medium_endpoint; a restarted medium counts its deliveries from 0."""
        if medium_endpoint != self.medium:
            self.medium, self.taken_in = medium_endpoint, 0
        self.taken_in += 1

    def owes(self, expected: int | None) -> bool:
        """Whether deliveries the medium counted (expected: Observation.radio_expected) are still to be taken in."""
        return expected is not None and self.taken_in < expected


class WorldLedger:
    """The world's part: each agent's `handed` as its last action said, for the medium's next tick."""

    def __init__(self) -> None:
        self.handed: dict[str, int] = {}
        self.endpoint: dict[str, str | None] = {}  # the agent's endpoint when it said so

    def note(self, node: str, handed: int, endpoint: str | None) -> None:
        """An action of node (at endpoint) said it has handed `handed` messages to the medium so far."""
        self.handed[node] = handed
        self.endpoint[node] = endpoint

    def forget_restarted(self, endpoints: Mapping[str, str]) -> None:
        """A restarted agent (a new endpoint) counts its messages from zero again."""
        for node in [n for n, e in self.endpoint.items() if endpoints.get(n) != e]:
            self.handed.pop(node, None)
            self.endpoint.pop(node)


class MediumLedger:
    """The medium's part: messages routed from, written off for and delivered to each agent."""

    def __init__(self) -> None:
        self.routed: dict[str, int] = {}
        self.written_off: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.joined = False  # has seen a step's positions

    def join(self, handed: Mapping[str, int]) -> None:
        """At the first positions this medium sees: what was handed before belongs to a predecessor (a restart)."""
        if not self.joined:
            self.written_off = dict(handed)
            self.joined = True

    def route(self, src: str) -> None:
        """One radio message from src taken in."""
        self.routed[src] = self.routed.get(src, 0) + 1

    def deliver(self, dst: str) -> None:
        """One radio message handed to dst's inbox."""
        self.delivered[dst] = self.delivered.get(dst, 0) + 1

    def missing(self, handed: Mapping[str, int]) -> dict[str, int]:
        """Per agent, messages handed over (as the world's positions say) that have not come; empty: tick."""
        missing = {a: n - self.written_off.get(a, 0) - self.routed.get(a, 0) for a, n in handed.items()}
        return {a: m for a, m in missing.items() if m > 0}

    def write_off(self, missing: Mapping[str, int]) -> None:
        """Give up on messages that have not come (the wait ran past its limit)."""
        for a, m in missing.items():
            self.written_off[a] = self.written_off.get(a, 0) + m

    def forget(self, node: str) -> None:
        """A node that came back (a new endpoint) counts from zero again."""
        for counts in (self.routed, self.delivered, self.written_off):
            counts.pop(node, None)
