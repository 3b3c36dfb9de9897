"""Barriers: release only when every expected live member arrived; rounds are independent."""

from coordinator.barriers import Barriers


def test_release_when_all_arrive_and_rounds_are_separate():
    b = Barriers()
    expected = {"a", "b", "c"}
    assert b.arrive("sync", 0, "a", expected) is None
    assert b.arrive("sync", 1, "b", expected) is None  # another round does not count
    assert b.arrive("sync", 0, "b", expected) is None
    assert b.arrive("sync", 0, "c", expected) == ["a", "b", "c"]
    assert b.arrive("sync", 0, "a", expected) is None  # a released barrier starts over


def test_a_member_that_dies_no_longer_holds_the_barrier():
    b = Barriers()
    assert b.arrive("x", 3, "a", {"a", "b"}) is None
    assert b.recheck({"a"}) == [(("x", 3), ["a"])]
    assert b.recheck({"a"}) == []


def test_a_group_barrier_waits_for_its_group_only():
    b = Barriers()
    live = {"a", "b", "c", "d"}
    assert b.arrive("seg", 0, "a", live, group=["a", "b"]) is None
    assert b.arrive("seg", 0, "b", live, group=["a", "b"]) == ["a", "b"]
    assert b.arrive("seg", 1, "a", live, group=["a", "b"]) is None
    assert b.recheck({"a", "c", "d"}) == [(("seg", 1), ["a"])]  # b died: a is released


def test_barrier_through_a_running_coordinator(tmp_path, reap):
    """Two processes' endpoints meet at a barrier held by the real coordinator of a running run."""
    import threading

    from conftest import BACKGROUND, start_run, wait_for

    from protocols.endpoint import Endpoint
    from protocols.security import Curve, KeyPair, join_run

    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND)
    reap(proc)
    wait_for(
        lambda: (
            "run started"
            in (
                (run_dir / "logs" / "coordinator.log").read_text()
                if (run_dir / "logs" / "coordinator.log").exists()
                else ""
            )
        ),
        60,
        "run started",
    )
    eps = []
    for name in ("b1", "b2"):  # each joins as `netmarl node --run` does: a key of its own left in RUN/allow/
        coordinator, coordinator_key, secret = join_run(run_dir, name)
        eps.append(Endpoint(name, "agent", coordinator, curve=Curve(KeyPair.from_secret(secret), coordinator_key)))
    results = {}
    try:
        for ep in eps:
            ep.register(10)

        def meet(ep, delay):
            import time

            time.sleep(delay)
            results[ep.node_id] = ep.barrier("sync", 4, group=["b1", "b2"], timeout_s=10)[0]

        threads = [threading.Thread(target=meet, args=(ep, d)) for ep, d in zip(eps, (0.0, 0.5))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(15)
    finally:
        for ep in eps:
            ep.close()
    assert results == {"b1": ["b1", "b2"], "b2": ["b1", "b2"]}
    proc.send_signal(2)
    proc.wait(30)
