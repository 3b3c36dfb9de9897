"""Endpoint.wait_for, the one waiting primitive: done first, then batches; deadline, stop, and the caller's
choice of what becomes of the messages it does not await (handled, kept, dropped)."""

from __future__ import annotations

import time

import pytest
import zmq

from protocols.codec import Stamper
from protocols.endpoint import Endpoint
from protocols.messages import BarrierRelease, Ping, RegisterAck, Tick


@pytest.fixture
def wired():
    """An endpoint, and a send(sender, body) that reaches its inbox from a DEALER named sender."""
    ep = Endpoint("n1", "agent", "tcp://127.0.0.1:1", heartbeat_s=60.0)
    socks = {}

    def send(sender: str, body) -> None:
        if sender not in socks:
            sock = ep.ctx.socket(zmq.DEALER)
            sock.setsockopt(zmq.ROUTING_ID, sender.encode())
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(ep.inbox.endpoint)
            socks[sender] = (sock, Stamper(sender))
        sock, stamper = socks[sender]
        sock.send_multipart(stamper.encode(body, "n1"))

    yield ep, send
    for sock, _ in socks.values():
        sock.close()
    ep.close()


def test_done_is_asked_first_and_nothing_is_read(wired):
    ep, send = wired
    send("peer", Tick(step=1))
    time.sleep(0.1)
    kept: list = []
    assert ep.wait_for(lambda: True, 0.0, keep=kept)
    assert not kept and ep.inbox.wait(5000)  # the message is still in the inbox


def test_awaited_taken_others_kept_control_consumed(wired):
    ep, send = wired
    got: list = []

    def take(_ident, msg) -> bool:
        if isinstance(msg.body, Tick) and msg.body.step == 2:
            got.append(msg.body.step)
            return True
        return False

    send("peer", Tick(step=1))
    send("peer", Ping(nonce=7))  # control: answered by the endpoint, never seen by the caller
    send("peer", Tick(step=2))
    send("peer", Tick(step=3))  # after the awaited one, in the same batch or later: still kept
    kept: list = []
    assert ep.wait_for(lambda: bool(got), 5.0, on_message=take, keep=kept)
    time.sleep(0.05)
    kept += ep.poll(50)
    assert got == [2] and [m.body.step for _, m in kept] == [1, 3]


def test_keep_none_drops_what_is_not_taken(wired):
    ep, send = wired
    send("peer", Tick(step=1))
    assert not ep.wait_for(lambda: False, 0.3, on_message=lambda i, m: False, keep=None)
    assert ep.poll(50) == []


def test_deadline_and_heartbeat_off(wired):
    ep, _send = wired
    t0 = time.monotonic()
    assert not ep.wait_for(lambda: False, 0.25, keep=[], heartbeat=False, poll_ms=50)
    assert 0.2 <= time.monotonic() - t0 < 2.0


def test_between_runs_before_each_poll(wired):
    ep, _send = wired
    calls: list = []
    assert not ep.wait_for(lambda: False, 0.2, keep=[], poll_ms=20, between=lambda: calls.append(1))
    assert len(calls) >= 2


def test_stopping_ends_the_wait_unless_while_stopping(wired):
    ep, _send = wired
    ep.stop("test")
    t0 = time.monotonic()
    assert not ep.wait_for(lambda: False, 5.0, keep=[])
    assert time.monotonic() - t0 < 0.5
    assert not ep.wait_for(lambda: False, 0.2, keep=[], while_stopping=True, poll_ms=20)
    assert time.monotonic() - t0 >= 0.2


def test_coordinator_messages_reach_the_endpoint_state(wired):
    """What the coordinator sends is obeyed while waiting; that is how register and wait_start end."""
    ep, send = wired
    send("coordinator", RegisterAck(run_id="r", seed=3))
    assert ep.wait_for(lambda: ep.ack is not None, 5.0, keep=None, heartbeat=False)
    assert ep.ack.seed == 3


def test_barrier_keeps_what_came_meanwhile_and_times_out(wired):
    ep, send = wired
    send("peer", Tick(step=1))
    assert ep.inbox.wait(5000)  # in the inbox before the release is sent: it came meanwhile
    send("coordinator", BarrierRelease(name="other", round=0))
    send("coordinator", BarrierRelease(name="b", round=1, members=["n1", "n2"]))
    members, pending = ep.barrier("b", 1, timeout_s=5.0)
    assert members == ["n1", "n2"]
    # two senders' connections: the order between them is not defined, only that both are kept
    assert sorted(type(m.body).__name__ for _, m in pending) == ["BarrierRelease", "Tick"]
    with pytest.raises(TimeoutError, match="barrier 'b' round 2 not released in 0.2 s"):
        ep.barrier("b", 2, timeout_s=0.2)
    ep.stop("test")
    assert ep.barrier("b", 3, timeout_s=0.2) == ([], [])
