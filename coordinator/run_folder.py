"""The run folder's writers: a fresh folder, the resolved config.toml, and the metrics.jsonl sink (which
checks every record that comes in from another process before it writes it)."""

from __future__ import annotations

import json
import logging
import math
import re
import time
from pathlib import Path

import tomli_w

from scenarios.config import ConfigError, ScenarioConfig


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to mix two runs in one folder."""
    if (Path(run_dir) / "config.toml").exists():
        raise ConfigError(f"{run_dir} already holds a run; choose another --out or remove it")


def _drop_none(obj):
    """TOML has no null: leave unset optional fields out."""
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def config_toml(data: dict) -> str:
    """A configuration as TOML text (unset optional fields left out)."""
    return tomli_w.dumps(_drop_none(data))


def write_config(run_dir: Path, cfg: ScenarioConfig) -> None:
    """The resolved configuration (file, --set and --seed applied) as config.toml."""
    (Path(run_dir) / "config.toml").write_text(config_toml(cfg.model_dump(mode="json")))


RESERVED_KEYS = ("wall", "node", "kind", "final")  # every record's own; a record's values may not set them
COORDINATOR = "coordinator"
# kinds only one kind of process may send: the world's records drive the progress bar, the end of the run,
# summary.json and each scenario's results; the coordinator writes the events (failures, restarts)
KIND_SENDERS = {
    "world": "world",
    "world_episode": "world",
    "cav_episode": "world",
    "routing_episode": "world",
    "hpo_epoch": "world",
    "signal_episode": "world",
    "inventory_episode": "world",
    "llm_round": "world",
    "sed_round": "world",
    "event": COORDINATOR,
}
KIND_PATTERN = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
MAX_RECORD_ITEMS = 20_000  # entries of all the lists and maps of one record's values together
MAX_RECORD_DEPTH = 6  # values -> a map -> a list -> ...: levels of nesting
MAX_LOGGED_SENDERS = 1000
_SCALARS = (str, int, float, bool, type(None))

log = logging.getLogger("coordinator.metrics")


class RecordError(ValueError):
    """A metrics record that is not written; the text says why."""


def is_int(v) -> bool:
    """An int that is not a bool (JSON's integers)."""
    return isinstance(v, int) and not isinstance(v, bool)


def strict_json(obj):
    """NaN and infinities as null, so summary.json (and what the dashboard sends) is valid JSON."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [strict_json(v) for v in obj]
    return None if isinstance(obj, float) and not math.isfinite(obj) else obj


def is_number(v) -> bool:
    """An int or float that is not a bool (JSON's numbers)."""
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_json(values: dict) -> None:
    """JSON-able (maps with string keys, lists, strings, numbers, booleans, null), at most MAX_RECORD_DEPTH
    levels deep and MAX_RECORD_ITEMS entries in all; stops at the first fault, so the cost is bounded."""
    items, stack = 0, [(values, 1, "values")]
    while stack:
        obj, depth, where = stack.pop()
        if depth > MAX_RECORD_DEPTH:
            raise RecordError(f"{where}: nested deeper than {MAX_RECORD_DEPTH} levels")
        items += len(obj)
        if items > MAX_RECORD_ITEMS:
            raise RecordError(f"more than {MAX_RECORD_ITEMS} entries")
        pairs = obj.items() if isinstance(obj, dict) else enumerate(obj)
        for key, v in pairs:
            if isinstance(obj, dict) and not isinstance(key, str):
                raise RecordError(f"{where}: a {type(key).__name__} key")
            if isinstance(v, (dict, list)):
                stack.append((v, depth + 1, f"{where}.{key}"[:200]))
            elif not isinstance(v, _SCALARS):
                raise RecordError(f"{where}.{key}: a {type(v).__name__} is not JSON"[:300])


def _check_fields(kind: str, values: dict) -> None:
    """The fields the coordinator and the reports read (report.py, report.direct_link_rows): present and typed."""
    if kind == "world":
        if not is_int(values.get("step")) or values["step"] < 0:
            raise RecordError(f"a world record needs an integer step >= 0, got {values.get('step')!r:.40}")
        for key in ("steps_per_s", "t", "mean_speed"):
            if key in values and not is_number(values[key]):
                raise RecordError(f"world record: {key} must be a number, got {values[key]!r:.40}")
        if "late_actions" in values and (not is_int(values["late_actions"]) or values["late_actions"] < 0):
            raise RecordError(f"world record: late_actions must be an integer >= 0, got {values['late_actions']!r:.40}")
    tx, rx = values.get("direct_tx"), values.get("direct_rx")
    if tx is not None and not (
        isinstance(tx, dict)
        and all(
            "|" in k and isinstance(v, list) and len(v) == 2 and all(is_int(n) and n >= 0 for n in v)
            for k, v in tx.items()
        )
    ):
        raise RecordError("direct_tx must map 'peer|type' to [messages, bytes]")
    if rx is not None and not (isinstance(rx, dict) and all(is_int(n) and n >= 0 for n in rx.values())):
        raise RecordError("direct_rx must map 'peer|type' to a count")


def check_record(sender_kind: str | None, kind: str, values: dict) -> None:
    """Raise RecordError unless a record from a process registered as sender_kind (None: not registered)
    may be written: a known sender, a kind it may send, values that are JSON-able, bounded and do not set
    a record's own keys, and the fields its kind is read for."""
    if sender_kind is None:
        raise RecordError("the sender is not registered")
    if not isinstance(kind, str) or not KIND_PATTERN.fullmatch(kind):
        raise RecordError(f"kind {kind!r:.80} is not a name of letters, digits and _.:-")
    owner = KIND_SENDERS.get(kind)
    if owner is not None and owner != sender_kind:
        raise RecordError(f"only the {owner} may send {kind!r} records; the sender registered as {sender_kind!r}")
    if not isinstance(values, dict):
        raise RecordError("values must be a map")
    reserved = [k for k in RESERVED_KEYS if k in values]
    if reserved:
        raise RecordError(f"values may not set the record's own {', '.join(reserved)}")
    _check_json(values)
    _check_fields(kind, values)


class MetricsSink:
    """Appends every metrics record to metrics.jsonl, one JSON object per line, flushed per line, and (tensorboard:
    a folder) its numbers to TensorBoard event files there. Records from other processes come through accept(),
    which checks them first (check_record)."""

    def __init__(self, path: Path, tensorboard: Path | None = None):
        self.fh = open(path, "a", buffering=1)
        self.tensorboard = None
        if tensorboard is not None:
            from .tensorboard import TensorBoardLog

            self.tensorboard = TensorBoardLog(tensorboard)
        self.refused = 0
        self.refused_by: dict[str, int] = {}  # at most MAX_LOGGED_SENDERS senders, each logged once

    def accept(self, node: str, sender_kind: str | None, kind: str, values: dict, final: bool = False) -> bool:
        """Write a record from node (registered as sender_kind, None if not registered) if check_record
        allows it; otherwise count it, log it once per sender, and return False."""
        try:
            check_record(sender_kind, kind, values)
        except RecordError as err:
            self.refused += 1
            if node in self.refused_by:
                self.refused_by[node] += 1
            elif len(self.refused_by) < MAX_LOGGED_SENDERS:
                self.refused_by[node] = 1
                log.warning(
                    "refused a metrics record from %r (%s, kind %r): %s (further ones are counted, not logged)",
                    node[:128],
                    sender_kind or "unregistered",
                    str(kind)[:64],
                    err,
                )
            return False
        self.write(node, kind, values, final)
        return True

    def write(self, node: str, kind: str, values: dict, final: bool = False) -> None:
        """Append one record; values never replace its wall, kind and final, and its node only in the
        coordinator's own events, where "node" names the node the event is about."""
        record = {"wall": round(time.time(), 3), "node": node, "kind": kind, "final": bool(final)}
        for key, value in values.items():
            if key not in record or (key == "node" and node == COORDINATOR and kind == "event"):
                record[key] = value
        self.fh.write(json.dumps(record, default=str) + "\n")
        if self.tensorboard is not None:
            self.tensorboard.add(record)

    def close(self) -> None:
        """Record how many records were refused, if any, then close the file."""
        if self.refused and not self.fh.closed:
            top = dict(sorted(self.refused_by.items(), key=lambda kv: -kv[1])[:20])
            self.write(COORDINATOR, "event", {"event": "metrics_refused", "records": self.refused, "by_sender": top})
        self.fh.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
