"""TensorBoard event files for a run folder (`tensorboard --logdir runs/`): every numeric field of every metrics
record, and the medium's delivery ratio per message type, as scalars, written by tensorboardX beside metrics.jsonl,
which stays the record of the run."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

log = logging.getLogger("coordinator.tensorboard")

STEP_KEYS = ("episode", "epoch", "round", "step", "iteration")  # the first one a record has is its x axis
MAX_TAGS_PER_NODE = 400  # a peer cannot flood the event file with new tags: further ones are counted, not written
WORLD_NODES = ("world", "coordinator", "medium")  # their records' tags carry no node name


def summary_writer():
    """tensorboardX's SummaryWriter class, imported without torch where torch is not loaded yet: tensorboardX imports
    torch, if installed, only to accept its tensors, and that import is 2-3 s of every run's start in a coordinator
    that has no tensors. A None entry in sys.modules makes that optional import fail as if torch were absent."""
    if "torch" in sys.modules or "tensorboardX" in sys.modules:
        from tensorboardX import SummaryWriter

        return SummaryWriter
    sys.modules["torch"] = None  # type: ignore[assignment]
    try:
        from tensorboardX import SummaryWriter
    finally:
        if sys.modules.get("torch", 0) is None:  # not if another thread has imported torch meanwhile
            del sys.modules["torch"]
    return SummaryWriter


class TensorBoardLog:
    """Scalars from metrics records, tagged `<kind>/<mode>/<node>/<field>` (mode and node where the record has them;
    a nested map's numbers as `<field>.<key>`), at the step of the record's episode, epoch, round or step (else the
    count of such records so far)."""

    def __init__(self, folder: Path):
        self.writer = summary_writer()(str(folder), flush_secs=10)
        self.tags: dict[str, set[str]] = {}
        self.counts: dict[tuple[str, str], int] = {}
        self.dropped = 0

    def add(self, record: dict) -> None:
        node, kind = str(record.get("node", "")), str(record.get("kind", ""))
        if kind == "event":
            return
        step = next((record[k] for k in STEP_KEYS if isinstance(record.get(k), int)), None)
        if step is None:
            key = (node, kind)
            step = self.counts[key] = self.counts.get(key, -1) + 1
        prefix = "/".join(
            p for p in (kind, str(record.get("mode", "")), "" if node.startswith(WORLD_NODES) else node) if p
        )
        for name, value in scalars(record):
            self.scalar(node, f"{prefix}/{name}", value, step)

    def scalar(self, node: str, tag: str, value: float, step: int) -> None:
        seen = self.tags.setdefault(node, set())
        if tag not in seen:
            if len(seen) >= MAX_TAGS_PER_NODE:
                self.dropped += 1
                return
            seen.add(tag)
        self.writer.add_scalar(tag, value, step)

    def links(self, totals: dict[str, dict[str, float]], step: int) -> None:
        """The medium's counts per message type (report.totals_by_type) as `links/<type>/<field>` at step."""
        for kind, fields in totals.items():
            for name in ("delivery_ratio", "sent", "delivered", "mean_latency_ms"):
                if number(fields.get(name)):
                    self.scalar("medium", f"links/{kind}/{name}", float(fields[name]), step)

    def close(self) -> None:
        if self.dropped:
            log.warning("%d scalars were not written: a node reached %d tags", self.dropped, MAX_TAGS_PER_NODE)
        self.writer.close()


def scalars(record: dict):
    """(name, value) of the record's finite numbers, one level into nested maps; the record's own fields and its
    step fields left out."""
    skip = {"wall", "node", "kind", "final", "mode", *STEP_KEYS}
    for key, value in record.items():
        if key in skip:
            continue
        if isinstance(value, dict):
            for sub, inner in value.items():
                if number(inner):
                    yield f"{key}.{sub}", float(inner)
        elif number(value):
            yield key, float(value)


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
