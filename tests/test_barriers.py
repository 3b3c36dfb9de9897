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
