"""Orlando-like signalised grid built with netgenerate, plus seeded background routes (docs/reled.md, "Maps")."""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import sumolib

from scenarios.sumo.figure8 import _netconvert  # the wheel's bin dir lookup (also imports sumo -> SUMO_HOME)

_BUILD_VERSION = 1  # bump when the generated files change for the same parameters
_HEADER = re.compile(r"<!-- generated on .*?-->\s*", re.DOTALL)  # timestamped generator header


@dataclass(frozen=True)
class GridFiles:
    """A built grid net and its counts (read back from the net file with sumolib)."""

    net: Path
    params: dict
    n_junctions: int  # all nodes: the grid's junctions plus the dead ends of the fringe arms
    n_tls: int  # traffic-light-controlled nodes
    n_four_way_tls: int  # traffic-light nodes with 4 incoming and 4 outgoing edges
    n_edges: int  # directed normal edges
    area_km2: float  # of the net boundary

    @property
    def sumo_args(self) -> list[str]:
        """Arguments that load the net (add "-r", routes for traffic)."""
        return ["-n", str(self.net), "--seed", str(self.params["seed"])]


def _binary(name: str) -> str:
    """A binary next to figure8's netconvert (the pinned eclipse-sumo wheel's bin dir)."""
    exe = Path(_netconvert()).with_name(name)
    return str(exe) if exe.exists() else sumolib.checkBinary(name)


def _run(args: list[str], what: str) -> None:
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {proc.stderr.strip()}")


def _strip_header(src: Path, dst: Path) -> None:
    """Copy src to dst without the timestamped header comment, so equal inputs give equal bytes."""
    dst.write_text(_HEADER.sub("", src.read_text(), count=1))


def _stats(net_file: Path) -> dict:
    net = sumolib.net.readNet(str(net_file))
    nodes = net.getNodes()
    tls = [n for n in nodes if n.getType() == "traffic_light"]
    xmin, ymin, xmax, ymax = net.getBoundary()
    return {
        "n_junctions": len(nodes),
        "n_tls": len(tls),
        "n_four_way_tls": sum(len(n.getIncoming()) == 4 and len(n.getOutgoing()) == 4 for n in tls),
        "n_edges": len(net.getEdges()),
        "area_km2": (xmax - xmin) * (ymax - ymin) / 1e6,
    }


def build_grid(
    out_dir: Path,
    *,
    junctions_x: int = 11,
    junctions_y: int = 11,
    spacing_m: float = 125.0,
    attach_m: float = 80.0,
    lanes: int = 1,
    speed_limit: float = 13.89,
    seed: int = 0,
) -> GridFiles:
    """Build (or reuse from out_dir) a junctions_x x junctions_y grid with a traffic light on every junction.

    Every grid junction gets a fringe arm of attach_m metres on each side where it has no neighbour,
    so all junctions_x*junctions_y junctions are signalised four-way crossings; the arms end in
    2*(junctions_x+junctions_y) unsignalised dead ends (with turnarounds) where trips can start/end.
    Defaults: 121 signalised four-way junctions, 165 nodes, 528 directed edges (264 two-way road
    segments), boundary 1410 m x 1410 m = 1.988 km^2 -- the paper's Orlando has 115 / 269 / 1.99 km^2.
    The net is named by a hash of the arguments and rebuilt only if missing.
    """
    if junctions_x < 2 or junctions_y < 2 or spacing_m <= 0 or attach_m < 0 or lanes < 1 or speed_limit <= 0:
        raise ValueError("need junctions_x, junctions_y >= 2, spacing_m, speed_limit > 0, attach_m >= 0, lanes >= 1")
    params = {
        "version": _BUILD_VERSION,
        "junctions_x": junctions_x,
        "junctions_y": junctions_y,
        "spacing_m": spacing_m,
        "attach_m": attach_m,
        "lanes": lanes,
        "speed_limit": speed_limit,
        "seed": seed,
    }
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    net, meta = out / f"grid_{key}.net.xml", out / f"grid_{key}.params.json"
    cached = json.loads(meta.read_text()) if meta.exists() else None
    if cached is None or cached.get("params") != params or not net.exists():
        meta.unlink(missing_ok=True)  # written last: a half-finished build is never reused
        with tempfile.TemporaryDirectory(dir=out) as tmp:
            raw = Path(tmp) / "grid.net.xml"
            _run(
                [
                    _binary("netgenerate"),
                    "--grid",
                    "--grid.x-number",
                    str(junctions_x),
                    "--grid.y-number",
                    str(junctions_y),
                    "--grid.length",
                    repr(float(spacing_m)),
                    "--grid.attach-length",
                    repr(float(attach_m)),
                    "-L",
                    str(lanes),
                    "-S",
                    repr(float(speed_limit)),
                    "--tls.guess",
                    "true",
                    "--tls.guess.threshold",
                    "0",
                    "--seed",
                    str(seed),
                    "--no-warnings",
                    "true",
                    "-o",
                    str(raw),
                ],
                "netgenerate",
            )
            _strip_header(raw, net)
        cached = {"params": params, "stats": _stats(net)}
        meta.write_text(json.dumps(cached, indent=1))
    return GridFiles(net=net, params=params, **cached["stats"])


def background_routes(
    net: Path,
    out: Path,
    n_vehicles: int,
    seed: int,
    horizon_s: float,
    min_distance_m: float = 500.0,
    vtype: str = "background",
    weight: Optional[Callable[[sumolib.net.edge.Edge], float]] = None,
) -> Path:
    """Write n_vehicles routed background vehicles bg0..bg{n-1} to out, reproducibly from seed.

    Origin and destination edges are drawn (random.Random(seed)) with probability proportional to
    weight(edge) (default: edge length; e.g. favour arterials for congested traffic), redrawn until
    their straight-line distance is at least min_distance_m (relaxed if the net is too small); departures are uniform
    on [0, horizon_s) and sorted; departLane is "random". duarouter (--seed seed) computes the fastest routes; a trip
    it cannot route is an error.
    """
    if n_vehicles < 0 or horizon_s <= 0:
        raise ValueError(f"need n_vehicles >= 0 and horizon_s > 0, got {n_vehicles}, {horizon_s}")
    sumo_net = sumolib.net.readNet(str(net))
    edges = sorted((e for e in sumo_net.getEdges() if e.allows("passenger")), key=lambda e: e.getID())
    if len(edges) < 2:
        raise ValueError(f"{net} has fewer than two passenger edges")
    weights = [(weight or sumolib.net.edge.Edge.getLength)(e) for e in edges]
    rng = random.Random(seed)
    trips = []
    for _ in range(n_vehicles):
        need = min_distance_m
        for tries in range(1000):
            a, b = rng.choices(edges, weights, k=2)
            (ax, ay), (bx, by) = a.getFromNode().getCoord(), b.getToNode().getCoord()
            if a is not b and math.hypot(bx - ax, by - ay) >= need:
                break
            if tries % 100 == 99:
                need /= 2  # net too small for min_distance_m: relax it
        trips.append((round(rng.uniform(0.0, horizon_s), 1), a.getID(), b.getID()))
    trips.sort(key=lambda t: t[0])  # stable: equal times keep their draw order
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
        trips_file, routed = Path(tmp) / "bg.trips.xml", Path(tmp) / "bg.rou.xml"
        trips_file.write_text(
            "<routes>\n"
            f'    <vType id="{vtype}" vClass="passenger"/>\n'
            + "".join(
                f'    <trip id="bg{i}" type="{vtype}" depart="{t:.1f}" from="{a}" to="{b}" '
                'departLane="random" departSpeed="max"/>\n'
                for i, (t, a, b) in enumerate(trips)
            )
            + "</routes>\n"
        )
        _run(
            [
                _binary("duarouter"),
                "-n",
                str(net),
                "--route-files",
                str(trips_file),
                "-o",
                str(routed),
                "--seed",
                str(seed),
                "--no-step-log",
                "true",
                "--no-warnings",
                "true",
            ],
            "duarouter",
        )
        _strip_header(routed, out)
    return out
