"""Named barriers with rounds: release everyone once every expected live member has arrived."""

from __future__ import annotations

from collections import defaultdict


class Barriers:
    """Tracks arrivals per (name, round); returns the members to release when a barrier completes.

    A barrier waits for its group (as the arrivals name it) or, with no group, for every live agent;
    a member that dies is no longer waited for.
    """

    def __init__(self):
        self.arrived: dict[tuple[str, int], set[str]] = defaultdict(set)
        self.groups: dict[tuple[str, int], set[str]] = {}

    def arrive(self, name: str, round_: int, node_id: str, live: set[str], group=()) -> list[str] | None:
        """Record node_id at (name, round); the member list once all expected live members are in."""
        key = (name, round_)
        self.arrived[key].add(node_id)
        if group:
            self.groups[key] = set(group)
        return self.check(key, live)

    def check(self, key: tuple[str, int], live: set[str]) -> list[str] | None:
        """Release if every expected live member arrived."""
        group = self.groups.get(key)
        expected = live & group if group else live
        if key in self.arrived and expected <= self.arrived[key]:
            self.groups.pop(key, None)
            return sorted(self.arrived.pop(key))
        return None

    def recheck(self, live: set[str]) -> list[tuple[tuple[str, int], list[str]]]:
        """After a node went down: barriers that can now be released."""
        done = []
        for key in list(self.arrived):
            members = self.check(key, live)
            if members is not None:
                done.append((key, members))
        return done
