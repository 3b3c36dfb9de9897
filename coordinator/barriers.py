"""Named barriers with rounds: release everyone once every expected member has arrived."""
from __future__ import annotations

from collections import defaultdict


class Barriers:
    """Tracks arrivals per (name, round); returns the members to release when a barrier completes."""

    def __init__(self):
        self.arrived: dict[tuple[str, int], set[str]] = defaultdict(set)

    def arrive(self, name: str, round_: int, node_id: str, expected: set[str]) -> list[str] | None:
        """Record node_id at (name, round); the member list once all expected live members are in."""
        key = (name, round_)
        self.arrived[key].add(node_id)
        return self.check(key, expected)

    def check(self, key: tuple[str, int], expected: set[str]) -> list[str] | None:
        """Release if every expected member arrived (members that died are no longer expected)."""
        if key in self.arrived and expected <= self.arrived[key]:
            return sorted(self.arrived.pop(key))
        return None

    def recheck(self, expected: set[str]) -> list[tuple[tuple[str, int], list[str]]]:
        """After a node went down: barriers that can now be released."""
        done = []
        for key in list(self.arrived):
            members = self.check(key, expected)
            if members is not None:
                done.append((key, members))
        return done
