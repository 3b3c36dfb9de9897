"""The lock-step ledger (protocols/lockstep.py): each part's counts, and the time model's invariant on a
simulated run of agents, world and medium whose messages arrive late and in any order."""

from __future__ import annotations

import random

import pytest

from protocols.lockstep import AgentLedger, MediumLedger, WorldLedger, expected_radio


def test_agent_counts_what_it_handed_and_took_in_and_a_new_medium_starts_from_zero():
    ledger = AgentLedger()
    for _ in range(3):
        ledger.hand_over()
    assert ledger.handed == 3
    assert not ledger.owes(None), "no tick this step: nothing to wait for"
    assert ledger.owes(1)
    ledger.take_in("tcp://m1")
    ledger.take_in("tcp://m1")
    assert ledger.taken_in == 2 and not ledger.owes(2) and ledger.owes(3)
    ledger.take_in("tcp://m2")  # a restarted medium counts its deliveries from 0
    assert ledger.taken_in == 1 and not ledger.owes(1) and ledger.owes(2)
    assert ledger.handed == 3, "what the agent handed over is its own count: a new medium does not reset it"


def test_world_keeps_each_agents_last_count_and_forgets_a_restarted_agent():
    world = WorldLedger()
    world.note("a", 4, "tcp://a1")
    world.note("b", 2, "tcp://b1")
    world.note("a", 6, "tcp://a1")
    world.forget_restarted({"a": "tcp://a1", "b": "tcp://b1"})
    assert world.handed == {"a": 6, "b": 2}
    world.forget_restarted({"a": "tcp://a1", "b": "tcp://b2"})  # b came back on a new endpoint
    assert world.handed == {"a": 6}
    assert expected_radio(None, "a") is None and expected_radio({"a": 3}, "a") == 3 and expected_radio({}, "a") == 0


def test_medium_ticks_when_nothing_is_missing_writes_off_and_forgets():
    medium = MediumLedger()
    medium.join({"a": 2})  # handed to a predecessor: written off
    medium.join({"a": 9})  # only the first positions count
    assert medium.written_off == {"a": 2}
    assert medium.missing({"a": 2}) == {}
    assert medium.missing({"a": 4, "b": 1}) == {"a": 2, "b": 1}
    medium.route("a")
    assert medium.missing({"a": 4, "b": 1}) == {"a": 1, "b": 1}
    medium.write_off({"a": 1, "b": 1})  # given up after the tick wait
    assert medium.missing({"a": 4, "b": 1}) == {}
    medium.deliver("b")
    medium.deliver("b")
    assert medium.delivered == {"b": 2}
    medium.forget("b")
    assert medium.delivered == {} and "b" not in medium.written_off and medium.routed == {"a": 1}


class Message:
    def __init__(self, src: str, dst: str, step: int, latency: int):
        self.src, self.dst, self.step, self.latency = src, dst, step, latency

    @property
    def due(self) -> int:
        """The first step its receiver must have it by: sent with the action of `step`, `latency` steps late."""
        return self.step + 1 + self.latency


@pytest.mark.parametrize("seed", range(20))
def test_invariant_an_agent_acts_on_step_t_only_after_taking_in_every_delivery_up_to_t(seed):
    """Each step: the world's positions carry what the agents handed over; the medium takes in their messages
    (in any order, some only after the positions) and ticks only when the ledger misses none, delivering what
    is due; each agent takes in deliveries (late, in any order) until it owes none, then acts and sends. The
    time model follows: every message is in its receiver before the receiver acts on the step it is due."""
    rng = random.Random(seed)
    agents = [f"v{i}" for i in range(4)]
    ledgers = {a: AgentLedger() for a in agents}
    world, medium = WorldLedger(), MediumLedger()
    sent: list[Message] = []
    to_medium: list[Message] = []  # handed over, not yet at the medium
    scheduled: list[Message] = []  # routed, waiting for their step
    to_agent: dict[str, list[Message]] = {a: [] for a in agents}  # delivered, not yet in the receiver's inbox
    taken: dict[str, list[Message]] = {a: [] for a in agents}
    for t in range(1, 40):
        handed = dict(world.handed)  # Positions.radio_sent
        medium.join(handed)
        rng.shuffle(to_medium)
        while medium.missing(handed):  # the medium ticks only when it misses nothing
            msg = to_medium.pop()
            medium.route(msg.src)
            scheduled.append(msg)
        assert all(msg.step == t - 1 for msg in to_medium), "only messages of the last actions may still be on the way"
        for msg in [m for m in scheduled if m.due <= t]:
            scheduled.remove(msg)
            medium.deliver(msg.dst)
            to_agent[msg.dst].append(msg)
        delivered = dict(medium.delivered)  # Tick.delivered
        for a in agents:
            expected = expected_radio(delivered, a)  # Observation.radio_expected
            inbox = to_agent[a]
            rng.shuffle(inbox)
            while ledgers[a].owes(expected):
                taken[a].append(inbox.pop())
                ledgers[a].take_in("tcp://medium")
            # the invariant, as the time model needs it: acting on t, a has every message due to it by t
            assert {id(m) for m in sent if m.dst == a and m.due <= t} == {id(m) for m in taken[a]}
            for _ in range(rng.randrange(3)):  # act: send a few (some reach the medium after the next positions)
                msg = Message(a, rng.choice([b for b in agents if b != a]), t, latency=rng.randrange(3))
                ledgers[a].hand_over()
                sent.append(msg)
                to_medium.append(msg)
            world.note(a, ledgers[a].handed, "tcp://" + a)
    assert len(sent) > 100


def test_a_medium_restart_writes_off_its_predecessors_messages():
    """A new medium does not wait for what was handed to its predecessor; the agents count its deliveries from
    0 once the first of them arrives. Until then an agent compares its count of the old medium's deliveries
    with the new one's: the invariant's one gap, the first step after a medium restart."""
    agent, world = AgentLedger(), WorldLedger()
    for _ in range(5):
        agent.hand_over()
        agent.take_in("tcp://old")
    world.note("v0", agent.handed, "tcp://v0")
    new = MediumLedger()
    new.join(world.handed)
    assert new.missing(world.handed) == {}
    new.deliver("v0")
    expected = expected_radio(new.delivered, "v0")
    assert not agent.owes(expected), "the gap: 5 of the old medium's count for 1 of the new one's"
    agent.take_in("tcp://new")
    assert agent.taken_in == 1 and not agent.owes(expected)
    new.deliver("v0")
    assert agent.owes(expected_radio(new.delivered, "v0"))
    agent.hand_over()
    world.note("v0", agent.handed, "tcp://v0")
    assert new.missing(world.handed) == {"v0": 1}
    new.route("v0")
    assert new.missing(world.handed) == {}
