"""The registry of node endpoints and their liveness, and the Directory it hands out."""

from __future__ import annotations

import time
from dataclasses import dataclass

from protocols.messages import Directory, Register


@dataclass
class NodeRecord:
    """What the coordinator knows about one registered process."""

    node_id: str
    kind: str
    endpoint: str
    pid: int
    host: str
    last_seen: float
    down: bool = False
    down_at: float = 0.0  # monotonic time it was marked down


class Registry:
    """Node id -> record; the source of every Directory message."""

    def __init__(self):
        self.nodes: dict[str, NodeRecord] = {}

    def register(self, reg: Register) -> NodeRecord:
        """Add or replace (after a restart) a node's record."""
        rec = NodeRecord(reg.node_id, reg.kind, reg.endpoint, reg.pid, reg.host, time.monotonic())
        self.nodes[reg.node_id] = rec
        return rec

    def seen(self, node_id: str) -> None:
        """Any message from a node counts as a heartbeat."""
        rec = self.nodes.get(node_id)
        if rec is not None:
            rec.last_seen = time.monotonic()

    def mark_down(self, node_id: str) -> None:
        """Record that a node is gone."""
        if node_id in self.nodes:
            self.nodes[node_id].down, self.nodes[node_id].down_at = True, time.monotonic()

    def silent(self, timeout_s: float) -> list[NodeRecord]:
        """Live nodes not heard from for longer than timeout_s."""
        now = time.monotonic()
        return [r for r in self.nodes.values() if not r.down and now - r.last_seen > timeout_s]

    def directory(self) -> Directory:
        """Endpoints, kinds and the down list of every known node."""
        return Directory(
            endpoints={n: r.endpoint for n, r in self.nodes.items()},
            kinds={n: r.kind for n, r in self.nodes.items()},
            down=sorted(n for n, r in self.nodes.items() if r.down),
        )
