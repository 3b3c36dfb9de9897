"""The run's live view: a frame a second appended to live.jsonl (positions, the radio links of the last
seconds, node health, pace) that the dashboard follows while the run goes on and replays after it."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections import deque
from pathlib import Path

import numpy as np

from netsim.stats import COLUMNS, NOT_ATTEMPTS

log = logging.getLogger("coordinator.live")

LIVE_FILE = "live.jsonl"
FRAME_EVERY_S = 1.0
WINDOW_REPORTS = 2  # the links drawn: what the medium's last two reports (one each 2 s) counted
MAX_LINKS = 4000  # per frame, the links with the most attempts
MAX_FILE_BYTES = 256 << 20  # past this, one frame in THIN_EVERY is written (a run of many hours stays readable)
THIN_EVERY = 10
_COL = {c: i for i, c in enumerate(COLUMNS[4:])}  # the columns of a LinkReport's counts
_NOT_ATTEMPTS = [_COL[c] for c in NOT_ATTEMPTS]


def link_counts(names: list[str], arrays: dict) -> tuple[dict[tuple, list[int]], dict[str, dict[float, list[int]]]]:
    """From a medium report's cumulative counters (LinkStats.to_arrays): per (src, dst, type) [attempts,
    delivered, in range], and per type and distance bin [attempts, delivered, bytes sent, messages sent] (the
    delivery-vs-distance chart: its points, and the message size its model curve is drawn for). Vectorized:
    the table has a row per link, type and 10 m bin, thousands a second."""
    keys, distance, counts = arrays["keys"], arrays["distance"], arrays["counts"]
    if not len(keys):
        return {}, {}
    attempts = counts[:, _COL["sent"]] - counts[:, _NOT_ATTEMPTS].sum(axis=1)
    per_row = np.stack(
        [attempts, counts[:, _COL["delivered"]], attempts - counts[:, _COL["dropped_range"]]], axis=1
    ).astype(np.int64)
    n = len(names)
    code = (keys[:, 0].astype(np.int64) * n + keys[:, 1]) * n + keys[:, 2]  # one integer per (src, dst, type)
    link_codes, which = np.unique(code, return_inverse=True)
    sums = np.zeros((len(link_codes), 3), np.int64)
    np.add.at(sums, which, per_row)
    links = {
        (names[c // (n * n)], names[c // n % n], names[c % n]): cell
        for c, cell in zip(link_codes.tolist(), sums.tolist())
    }
    measured = distance >= 0
    dists, dist_of = np.unique(distance[measured], return_inverse=True)
    bin_codes, which = np.unique(keys[measured, 2].astype(np.int64) * len(dists) + dist_of, return_inverse=True)
    sizes = counts[measured][:, [_COL["bytes_sent"], _COL["sent"]]].astype(np.int64)
    bin_sums = np.zeros((len(bin_codes), 4), np.int64)
    np.add.at(bin_sums, which, np.concatenate([per_row[measured, :2], sizes], axis=1))
    bins: dict[str, dict[float, list[int]]] = {}
    for c, cell in zip(bin_codes.tolist(), bin_sums.tolist()):
        bins.setdefault(names[c // len(dists)], {})[float(dists[c % len(dists)])] = cell
    return links, bins


class LiveView:
    """Keeps what the coordinator learns as the run goes (the medium's reports, the world's pace) and writes
    one frame per FRAME_EVERY_S to live.jsonl; never blocks the run (a file append a second)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LIVE_FILE
        self.fh = open(self.path, "a", buffering=1)
        self.positions: dict[str, list[float]] = {}
        self.step, self.t_sim = -1, 0.0
        self.previous: dict[tuple, list[int]] = {}
        self.windows: deque[dict[tuple, list[int]]] = deque(maxlen=WINDOW_REPORTS)
        self.bins: dict[str, dict[float, list[int]]] = {}
        self.traffic: dict[str, dict[str, list[int]]] = {}  # node -> type -> [sent, received] so far
        self.pace: dict = {}
        self.frames = 0
        self._next = 0.0
        self._thinned = False

    def on_link_report(self, names: list[str], arrays: dict) -> None:
        """A medium report (names and arrays as LinkStats.to_arrays makes them): the links' counts since the
        previous report."""
        counts, self.bins = link_counts(names, arrays)
        traffic: dict[str, dict[str, list[int]]] = {}
        for (src, dst, kind), (a, d, _r) in counts.items():
            traffic.setdefault(src, {}).setdefault(kind, [0, 0])[0] += a
            traffic.setdefault(dst, {}).setdefault(kind, [0, 0])[1] += d
        self.traffic = traffic
        window = {}
        for key, (a, d, r) in counts.items():
            pa, pd, pr = self.previous.get(key, (0, 0, 0))
            if a < pa:  # a new medium counts from zero again
                pa, pd, pr = 0, 0, 0
            if a > pa:
                window[key] = [a - pa, d - pd, r - pr]
        self.previous = counts
        if window:  # a quiet spell (the world paused, or ended) keeps the links last seen
            self.windows.append(window)

    def on_positions(self, ids: list[str], xy, step: int, t_sim: float) -> None:
        """The newest positions the medium routes by (what cannot be drawn, NaN or infinite, is left out)."""
        self.positions = {
            i: [round(float(x), 2), round(float(y), 2)] for i, (x, y) in zip(ids, xy) if np.isfinite(x + y)
        }
        self.step, self.t_sim = step, t_sim

    def links(self) -> list[list]:
        """[src, dst, type, attempts, delivered] over the window, links that were in range at least once."""
        acc: dict[tuple, list[int]] = {}
        for window in self.windows:
            for key, (a, d, r) in window.items():
                cell = acc.setdefault(key, [0, 0, 0])
                cell[0] += a
                cell[1] += d
                cell[2] += r
        rows = [[*key, a, d] for key, (a, d, r) in acc.items() if r > 0]
        if len(rows) > MAX_LINKS:
            rows = sorted(rows, key=lambda row: -row[3])[:MAX_LINKS]
        return rows

    def maybe_write(self, registry, children: dict, status: str, world_step: int) -> None:
        """Write a frame if one is due: positions, links, each node's health, the world's pace."""
        now = time.monotonic()
        if now < self._next or self.fh.closed:
            return
        self._next = now + FRAME_EVERY_S
        self.frames += 1
        self._guarded(registry, children, status, world_step, now, last=False)

    def last_frame(self, registry, children: dict, status: str, world_step: int) -> None:
        """A frame once the medium's final report is in (however soon after the previous one), so a run shorter
        than a report interval still shows its links and the last frame counts what links.csv does."""
        if not self.fh.closed:
            self._guarded(registry, children, status, world_step, time.monotonic(), last=True)

    def _guarded(self, registry, children: dict, status: str, world_step: int, now: float, last: bool) -> None:
        try:
            if not self._thinned and self.fh.tell() > MAX_FILE_BYTES:
                self._thinned = True
                log.warning("live.jsonl passed %d MiB: from now on one frame in %d", MAX_FILE_BYTES >> 20, THIN_EVERY)
            if last or not self._thinned or self.frames % THIN_EVERY == 0:
                self.write(registry, children, status, world_step, now)
        except (OSError, ValueError) as err:  # a full disk: the run goes on without its live view
            log.error("live.jsonl: %s; no more frames are written", err)
            with contextlib.suppress(OSError):
                self.fh.close()

    def write(self, registry, children: dict, status: str, world_step: int, now: float) -> None:
        """One frame, one line."""
        nodes = {
            n: {
                "kind": r.kind,
                "age_s": round(now - r.last_seen, 2),
                "down": r.down,
                "restarts": getattr(children.get(n), "restarts", 0),
                "host": r.host,
            }
            for n, r in registry.nodes.items()
        }
        frame = {
            "wall": round(time.time(), 3),
            "pid": os.getpid(),
            "status": status,
            "world_step": world_step,
            "step": self.step,
            "t_sim": round(self.t_sim, 3),
            **self.pace,
            "positions": self.positions,
            "links": self.links(),
            "bins": {t: [[d, *cell] for d, cell in sorted(b.items())] for t, b in self.bins.items()},
            "traffic": self.traffic,
            "nodes": nodes,
        }
        self.fh.write(json.dumps(frame) + "\n")

    def close(self, status: str) -> None:
        """The last line says how the run ended (the dashboard stops waiting for frames)."""
        if not self.fh.closed:
            try:
                self.fh.write(json.dumps({"wall": round(time.time(), 3), "end": True, "status": status}) + "\n")
                self.fh.close()
            except (OSError, ValueError) as err:
                log.error("live.jsonl: %s", err)
                with contextlib.suppress(OSError):
                    self.fh.close()
