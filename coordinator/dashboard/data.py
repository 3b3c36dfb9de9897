"""What the dashboard shows, read from run and sweep folders: which a folder is, the map, the model curves,
and a RunFeed that follows a run's files (metrics.jsonl, live.jsonl, summary.json) as they grow."""

from __future__ import annotations

import csv
import json
import math
import os
import time
import tomllib
from array import array
from pathlib import Path

import numpy as np

from netsim.channel import Channel
from netsim.config import NetsimConfig

from ..live import LIVE_FILE
from ..tensorboard import STEP_KEYS, number, scalars

MAX_READ_BYTES = 16 << 20  # per poll and file: a huge backlog is read over several polls, never at once
MAX_FRAMES = 1_000_000  # frames the slider reaches, kept as file offsets (past this, every other one is dropped)
MAX_POINTS = 2000  # per series (past this, every other point is dropped: the curve keeps its shape)
MAX_SERIES = 100  # series per node
MAX_EVENTS = 500
MAX_LANES = 20_000
STALE_S = 30.0  # no frame for this long and no summary.json: the run is not writing (3 x a thinned file's frame gap)


class NotARunError(ValueError):
    """A folder the dashboard cannot show; the text says why."""


def folder_kind(path: Path) -> str:
    """'run', 'sweep' or 'espark' (an eSpark run: rounds of candidate runs); NotARunError otherwise."""
    path = Path(path)
    if not path.is_dir():
        raise NotARunError(f"{path} is not a folder")
    if (path / "espark" / "candidates.jsonl").exists() or (path / "espark").is_dir():
        return "espark"
    if (path / "config.toml").exists():
        return "run"
    if (path / "sweep.csv").exists() or sweep_points(path):
        return "sweep"
    raise NotARunError(
        f"{path} is neither a run folder (no config.toml) nor a sweep folder (no sweep.csv, no point folders)"
    )


def latest_run(base: Path) -> Path | None:
    """The newest run or sweep folder under base (netmarl dashboard without a folder)."""
    found = []
    for p in Path(base).glob("*"):
        try:
            folder_kind(p)
            found.append((p.stat().st_mtime, p))
        except (NotARunError, OSError):
            continue
    return max(found)[1] if found else None


def sweep_points(path: Path) -> list[str]:
    """The point folders of a sweep (each a run folder), by name."""
    try:
        return sorted(p.name for p in Path(path).iterdir() if p.is_dir() and (p / "config.toml").exists())
    except OSError:
        return []


def child_runs(path: Path) -> list[str]:
    """The runs a page may open below the folder shown: a sweep's points, an eSpark run's candidate, IPPO and
    test runs (espark/iter_01/cand_00, ...), as paths relative to it."""
    path = Path(path)
    if not (path / "espark").is_dir():
        return sweep_points(path)
    found = [p for p in (path / "espark").glob("*") if (p / "config.toml").exists()]
    found += [p for p in (path / "espark").glob("iter_*/*") if (p / "config.toml").exists()]
    return sorted(str(p.relative_to(path)) for p in found)


def espark_table(path: Path) -> dict:
    """An eSpark run's candidates (espark/candidates.jsonl): iteration, G, accepted or why not, pruned share."""
    rows = []
    try:
        lines = (Path(path) / "espark" / "candidates.jsonl").read_text(errors="replace").splitlines()[:10_000]
    except OSError:
        lines = []
    runs = set(child_runs(path))
    for line in lines:
        try:
            r = json.loads(line)
            validation = r.get("validation") or {}
            key = str(r.get("key", ""))
            rows.append(
                {
                    "key": key,
                    "iteration": r.get("iteration"),
                    "score": r.get("score"),
                    "accepted": validation.get("accepted"),
                    "cause": validation.get("cause"),
                    "message": str(validation.get("message") or "")[:200],
                    "pruned_fraction": validation.get("pruned_fraction"),
                    "run": f"espark/{key}" if f"espark/{key}" in runs else None,
                }
            )
        except (ValueError, AttributeError, TypeError):
            continue
    return {"candidates": rows, "runs": sorted(runs)}


def read_config(run_dir: Path) -> dict:
    """The run's resolved config.toml ({} if it cannot be read yet)."""
    try:
        return tomllib.loads((Path(run_dir) / "config.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def read_summary(run_dir: Path) -> dict | None:
    """summary.json once the run has written it."""
    try:
        summary = json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return summary if isinstance(summary, dict) else None


# ------------------------------------------------------------------ the map
def net_file(run_dir: Path, cfg: dict) -> Path | None:
    """The SUMO network a run drives on: the one its plan wrote into RUN/net, or a signal map's."""
    nets = sorted((Path(run_dir) / "net").glob("*.net.xml"))
    if nets:
        return nets[0]
    world = cfg.get("world", {})
    if world.get("kind") == "signals" and world.get("map"):
        try:
            from scenarios.signals.maps import signal_map

            return Path(signal_map(world["map"]).net)
        except Exception:  # an unknown map name: the page draws positions only
            return None
    return None


def lane_lines(net: Path) -> list[list[float] | None]:
    """Every lane's shape of a SUMO net as x and y lists joined by None (one line trace draws them all)."""
    import sumolib

    xs: list[float | None] = []
    ys: list[float | None] = []
    for n, lane in enumerate(lane for edge in sumolib.net.readNet(str(net)).getEdges() for lane in edge.getLanes()):
        if n >= MAX_LANES:
            break
        for x, y in lane.getShape():
            xs.append(round(x, 1))
            ys.append(round(y, 1))
        xs.append(None)
        ys.append(None)
    return [xs, ys]


def schematic(cfg: dict) -> dict:
    """The map behind the agents: a SUMO net's lanes (kind 'lanes'), the warehouse's ring of zones
    ('ring'), the inventory chain of warehouses ('chain'), or nothing but the positions ('none')."""
    world = cfg.get("world", {})
    kind = world.get("kind")
    if kind == "warehouse":
        return {"kind": "ring", "radius_m": world.get("ring_radius_m", 40.0), "width_m": world.get("ring_width_m", 0)}
    if kind == "inventory":
        echelons = int(world.get("env", {}).get("echelons", 1))
        return {"kind": "chain", "echelons": echelons, "skus": world.get("env", {}).get("skus")}
    return {"kind": "none"}


def map_info(run_dir: Path, cfg: dict) -> dict:
    """The map the page draws (lanes from the net file when the run has one)."""
    net = net_file(run_dir, cfg)
    if net is not None and net.exists():
        try:
            return {"kind": "lanes", "lanes": lane_lines(net), "net": net.name}
        except Exception as err:  # a damaged net file: the positions are still drawn
            return {"kind": "none", "error": f"{net.name}: {type(err).__name__}: {err}"}
    return schematic(cfg)


def chain_positions(nodes: list[str]) -> dict[str, list[float]]:
    """Inventory: warehouse i at x = -100 i (0 faces the customers), the vendor and the customers at the ends."""
    out = {}
    for n, node in enumerate(sorted(nodes)):
        digits = "".join(ch for ch in node if ch.isdigit())
        out[node] = [-100.0 * (int(digits) if digits else n), 0.0]
    return out


def model_curves(cfg: dict, bins: dict, dmax: float) -> dict[str, list]:
    """Per message type, the delivery ratio the run's channel predicts for its mean message size, with
    every configured loss (netsim.loss and the burst model's) in: [distances, ratios]."""
    try:
        netsim = NetsimConfig.model_validate(cfg.get("netsim", {}))
    except ValueError:
        return {}
    channel = Channel(netsim, 0)
    grid = np.linspace(0.0, max(dmax, netsim.range_m * 1.1, 50.0), 120)
    out = {}
    for kind, cells in bins.items():
        sent = sum(c[4] for c in cells if len(c) >= 5)
        size = int(sum(c[3] for c in cells if len(c) >= 5) / sent) if sent else 0
        out[kind] = [np.round(grid, 1).tolist(), np.round(channel.expected_curve(grid, size, kind), 4).tolist()]
    return out


# ------------------------------------------------------------------ following a run
class FileTail:
    """The complete lines appended to a file since the last read (at most MAX_READ_BYTES a call), each with its
    offset; a line longer than that is skipped, not waited on for ever."""

    def __init__(self, path: Path):
        self.path, self.offset, self.inode, self.skipping = path, 0, None, False

    def raw_lines(self) -> list[tuple[int, bytes]]:
        try:
            with open(self.path, "rb") as fh:
                inode = os.fstat(fh.fileno()).st_ino
                if inode != self.inode:  # a new file under the same name: from its start
                    self.inode, self.offset, self.skipping = inode, 0, False
                fh.seek(self.offset)
                chunk = fh.read(MAX_READ_BYTES)
        except OSError:
            return []
        start = self.offset
        if self.skipping:  # the rest of an overlong line
            cut = chunk.find(b"\n")
            if cut < 0:
                self.offset += len(chunk)
                return []
            chunk, start, self.skipping = chunk[cut + 1 :], start + cut + 1, False
            self.offset = start
        end = chunk.rfind(b"\n")
        if end < 0:
            if len(chunk) >= MAX_READ_BYTES:
                self.offset, self.skipping = start + len(chunk), True
            return []
        self.offset = start + end + 1
        out, pos = [], start
        for line in chunk[: end + 1].split(b"\n")[:-1]:
            out.append((pos, line))
            pos += len(line) + 1
        return out

    def lines(self) -> list[dict]:
        """The new lines that are JSON objects (a line cut by a crash is left out)."""
        return [r for r in (_json_object(line) for _, line in self.raw_lines()) if r is not None]

    def read_at(self, offset: int) -> dict | None:
        """The JSON object on the line that starts at offset (a frame the slider asks for)."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(offset)
                return _json_object(fh.readline(MAX_READ_BYTES))
        except OSError:
            return None


def _json_object(line: bytes) -> dict | None:
    try:
        record = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


class RunFeed:
    """One run folder as the page sees it, brought up to date by poll(): series per node (each numeric field
    of each record kind), frames (live.jsonl), events, summary. Bounded whatever the files hold."""

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.metrics = FileTail(self.run_dir / "metrics.jsonl")
        self.live = FileTail(self.run_dir / LIVE_FILE)
        self.series: dict[str, dict[str, list[list[float]]]] = {}  # node -> "kind.field" -> [[x, y], ...]
        self.thinned: dict[tuple[str, str], int] = {}  # (node, key) -> times its points were halved
        self.counts: dict[tuple[str, str], int] = {}
        self.offsets = array("q")  # where each frame of live.jsonl starts (read again when the slider asks)
        self.newest: dict | None = None  # the last frame, parsed
        self.events: list[dict] = []
        self.rounds: list[dict] = []  # SED / LLM rounds (the world's sed_round and llm_round records)
        self.pace: list[list[float]] = []  # [wall, steps/s]
        self.summary: dict | None = None
        self.ended: dict | None = None  # live.jsonl's last line
        self.cfg: dict = {}
        self._map: dict | None = None

    # -------------------------------------------------------- reading
    def poll(self) -> bool:
        """Read what was appended; True if anything changed."""
        if not self.cfg:
            self.cfg = read_config(self.run_dir)
        changed = False
        for record in self.metrics.lines():
            self.add_record(record)
            changed = True
        new = self.live.raw_lines()
        for offset, line in new:
            if b'"end": true' in line[:80]:
                self.ended = _json_object(line)
            else:
                self.add_frame(offset)
        frames = [line for _, line in new if b'"end": true' not in line[:80]]
        if frames:
            self.newest = _json_object(frames[-1]) or self.newest
        changed = changed or bool(new)
        if self.summary is None and (self.run_dir / "summary.json").exists():
            self.summary = read_summary(self.run_dir)
            changed = changed or self.summary is not None
        return changed

    def add_record(self, record: dict) -> None:
        node, kind = str(record.get("node", "?"))[:128], str(record.get("kind", "?"))[:64]
        if kind == "event":
            if len(self.events) < MAX_EVENTS:
                self.events.append({k: v for k, v in record.items() if k not in ("kind", "final")})
            return
        if kind in ("sed_round", "llm_round") and len(self.rounds) < MAX_EVENTS:
            self.rounds.append(record)
        if kind == "world" and isinstance(record.get("steps_per_s"), (int, float)):
            self.pace.append([record.get("wall", 0), record["steps_per_s"]])
            if len(self.pace) > MAX_POINTS:
                self.pace = self.pace[::2]
                self.thinned[("world", "pace")] = self.thinned.get(("world", "pace"), 0) + 1
        n = self.counts.get((node, kind), 0) + 1
        if n > 1 or len(self.counts) < MAX_SERIES * 1000:  # a record count per node and kind (bounded)
            self.counts[(node, kind)] = n
        x = next((record[k] for k in STEP_KEYS if number(record.get(k))), n)  # as TensorBoard's step
        series = self.series.setdefault(node, {})
        for field, y in scalars(record):
            key = f"{kind}.{field}"
            points = series.get(key)
            if points is None:
                if len(series) >= MAX_SERIES:
                    continue
                points = series[key] = []
            points.append([x, y])
            if len(points) > MAX_POINTS:
                series[key] = points[::2]
                self.thinned[(node, key)] = self.thinned.get((node, key), 0) + 1

    def add_frame(self, offset: int) -> None:
        self.offsets.append(offset)
        if len(self.offsets) > MAX_FRAMES:  # every other one goes: the slider keeps the whole run, coarser
            self.offsets = self.offsets[::2]

    @property
    def count(self) -> int:
        return len(self.offsets)

    # -------------------------------------------------------- views
    def status(self) -> dict:
        """How the run stands: starting, running, ended (ok / failed ...) or gone without a word."""
        if self.summary is not None:
            return {"state": "ended", "status": self.summary.get("status", "?")}
        if self.ended is not None:
            return {"state": "ended", "status": self.ended.get("status", "?")}
        last = self.newest
        if last is None:
            return {"state": "starting", "text": "the run is starting: waiting for its first frame"}
        wall = last.get("wall")
        age = time.time() - wall if isinstance(wall, (int, float)) else 0.0
        if age > STALE_S:
            pid = last.get("pid")
            if isinstance(pid, int) and not _alive(pid):
                text = f"no frame for {age:.0f} s, no summary.json, and its coordinator (pid {pid}) is gone:"
                return {"state": "stopped", "text": f"{text} the run crashed or was killed"}
            return {"state": "quiet", "text": f"no frame for {age:.0f} s: the run is busy, stuck or on another host"}
        return {"state": "running", "status": last.get("status", "ok")}

    def map(self) -> dict:
        """The map, read once the run is under way (its plan writes the net files as it starts)."""
        if self._map is not None:
            return self._map
        found = map_info(self.run_dir, self.cfg) if self.cfg else {"kind": "none"}
        if self.newest is not None or self.summary is not None or self.ended is not None:
            self._map = found
        return found

    def curves(self) -> dict:
        bins = self.newest.get("bins", {}) if self.newest else {}
        if not isinstance(bins, dict):
            return {}
        dmax = max([c[0] for cells in bins.values() for c in cells if c and math.isfinite(c[0])] + [0.0])
        return model_curves(self.cfg, bins, dmax) if bins else {}

    def frame(self, i: int) -> dict | None:
        """Frame i of those kept (-1: the newest); chain worlds get their schematic positions."""
        if not self.offsets:
            return None
        if i < 0 or i >= self.count - 1:
            frame = self.newest
        else:
            frame = self.live.read_at(self.offsets[i])
        if frame and not frame.get("positions") and self.map().get("kind") == "chain":
            agents = [n for n, r in frame.get("nodes", {}).items() if r.get("kind") == "agent"]
            frame = {**frame, "positions": chain_positions(agents)}
        return frame

    def info(self) -> dict:
        """What the page needs once: names, the settings shown, the map."""
        netsim = self.cfg.get("netsim", {})
        return {
            "name": self.run_dir.name,
            "world": self.cfg.get("world", {}).get("kind"),
            "method": self.cfg.get("algo", {}).get("method"),
            "netsim": {k: netsim.get(k) for k in ("mode", "model", "range_m", "loss", "loss_types") if k in netsim},
            "range_m": netsim.get("range_m", NetsimConfig().range_m),
            "map": self.map(),
        }


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def sweep_table(sweep_dir: Path) -> dict:
    """sweep.csv's rows with the grid's axes (its columns before 'status') and its numeric result columns; while
    the sweep is under way (no sweep.csv yet), one row per point folder with its status so far."""
    sweep_dir = Path(sweep_dir)
    points = sweep_points(sweep_dir)
    rows: list[dict] = []
    columns: list[str] = []
    if (sweep_dir / "sweep.csv").exists():
        with open(sweep_dir / "sweep.csv", newline="") as fh:
            reader = csv.DictReader(fh)
            rows, columns = list(reader)[:10_000], list(reader.fieldnames or [])
    axes = columns[: columns.index("status")] if "status" in columns else []
    for r in rows:
        name = "_".join(f"{k.split('.')[-1]}={r.get(k)}" for k in axes)
        r["point"] = name if name in points else None
    listed = {r["point"] for r in rows}
    for name in points:
        if name not in listed:  # under way, or not in the table yet
            summary = read_summary(sweep_dir / name) or {}
            rows.append({"point": name, "status": summary.get("status", "running")})
    metrics = [c for c in columns[len(axes) + 1 :] if _numeric(rows, c)]
    return {"rows": rows, "axes": axes, "metrics": metrics, "points": points}


def _numeric(rows: list[dict], key: str) -> bool:
    values = [r.get(key) for r in rows if r.get(key) not in (None, "")]
    try:
        [float(v) for v in values]
    except (TypeError, ValueError):
        return False
    return bool(values)
