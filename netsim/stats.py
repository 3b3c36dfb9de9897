"""Per-link, per-message-type counters binned by the distance at send time."""

from __future__ import annotations

from collections import defaultdict

import numpy as np

CAUSES = ("range", "channel", "burst", "loss", "queue", "no_position", "unknown_dst", "shutdown")
COLUMNS = [
    "src",
    "dst",
    "type",
    "distance_m",
    "sent",
    "delivered",
    *(f"dropped_{c}" for c in CAUSES),
    "bytes_sent",
    "bytes_delivered",
    "latency_sum_s",
]
# not delivery attempts: before positions were known, to an unregistered id, or in flight at shutdown
NOT_ATTEMPTS = ("dropped_no_position", "dropped_unknown_dst", "dropped_shutdown")
_IDX = {c: i for i, c in enumerate(COLUMNS[4:])}
_BYTES_SENT, _BYTES_DELIVERED, _LATENCY = _IDX["bytes_sent"], _IDX["bytes_delivered"], _IDX["latency_sum_s"]
_DROPPED = {c: _IDX[f"dropped_{c}"] for c in CAUSES}


class LinkStats:
    """Counters keyed by (src, dst, type, distance bin); rows go to links.csv."""

    def __init__(self, bin_m: float = 10.0):
        self.bin_m = bin_m
        self.table: dict[tuple, list[float]] = defaultdict(lambda: [0] * (len(COLUMNS) - 4))

    def record(
        self,
        src: str,
        dst: str,
        kind: str,
        distance_m: float,
        size: int,
        delivered: bool,
        cause: str = "ok",
        latency_s: float = 0.0,
    ) -> None:
        """Count one send attempt on one link and its outcome."""
        d = -1.0 if distance_m != distance_m or distance_m < 0 else (int(distance_m // self.bin_m) + 0.5) * self.bin_m
        row = self.table[(src, dst, kind, d)]
        row[0] += 1
        row[_BYTES_SENT] += size
        if delivered:
            row[1] += 1
            row[_BYTES_DELIVERED] += size
            row[_LATENCY] += latency_s
        else:
            row[_DROPPED[cause]] += 1

    def to_arrays(self) -> tuple[list[str], dict[str, np.ndarray]]:
        """The table as a string table and arrays (keys, distance, counts) for a LinkReport."""
        names: dict[str, int] = {}
        items = sorted(self.table.items())
        keys = np.array([[names.setdefault(k, len(names)) for k in key[:3]] for key, _ in items], np.int32).reshape(
            -1, 3
        )
        distance = np.array([key[3] for key, _ in items], np.float64)
        counts = np.array([vals for _, vals in items], np.float64).reshape(-1, len(COLUMNS) - 4)
        return list(names), {"keys": keys, "distance": distance, "counts": counts}


def merge_rows(tables: list[list[list]]) -> list[list]:
    """Sum several row tables (e.g. of successive medium processes) key by key."""
    acc: dict[tuple, list] = {}
    for rows in tables:
        for row in rows:
            key, vals = tuple(row[:4]), row[4:]
            acc[key] = [a + b for a, b in zip(acc[key], vals)] if key in acc else list(vals)
    return [[*k, *v] for k, v in sorted(acc.items())]


def check_arrays(names: list[str], arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError unless a LinkReport's arrays fit together: keys (n, 3) indexing names, distance (n,),
    counts (n, len(COLUMNS) - 4), all finite (what rows_from_arrays and the live view index without checks)."""
    keys, distance, counts = arrays.get("keys"), arrays.get("distance"), arrays.get("counts")
    if keys is None or distance is None or counts is None:
        raise ValueError("a link report needs the arrays keys, distance and counts")
    n = len(keys)
    if keys.ndim != 2 or keys.shape[1] != 3 or distance.shape != (n,) or counts.shape != (n, len(COLUMNS) - 4):
        raise ValueError(f"link report arrays of shapes {keys.shape}, {distance.shape}, {counts.shape} do not fit")
    if n and (keys.min() < 0 or keys.max() >= len(names)):
        raise ValueError("link report keys outside its names")
    if not (np.isfinite(distance).all() and np.isfinite(counts).all()):
        raise ValueError("link report with a value that is not finite")


def rows_from_arrays(names: list[str], arrays: dict[str, np.ndarray]) -> list[list]:
    """Inverse of LinkStats.to_arrays: rows in COLUMNS order."""
    is_int = [c != "latency_sum_s" for c in COLUMNS[4:]]
    return [
        [names[s], names[d], names[t], float(dist), *(int(c) if i else float(c) for c, i in zip(counts, is_int))]
        for (s, d, t), dist, counts in zip(arrays["keys"].tolist(), arrays["distance"], arrays["counts"])
    ]
