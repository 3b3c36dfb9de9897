"""RELED routing maps (grid / city), fixed agent trips and background traffic (RELED paper, Sec. IV-A1; the
stand-in maps and trips: docs/reled.md, "Maps" and RL-7)."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import sumolib

from .grid_map import _binary, _run, _strip_header, background_routes, build_grid
from .observe import M_OUT, junction_index

_CITY_VERSION = 1  # bump when the city net changes for the same parameters
TARGET_KM2 = 4.0  # the paper's Hong Kong map is 3.87 km^2
_CROP_ABOVE = 1.25  # crop the city only if its bounding box exceeds TARGET_KM2 by this factor
N_BACKGROUND = {"moderate": 90, "congested": 190}  # RELED paper, Sec. IV-A1

STAND_IN = {
    "grid": "An 11x11 signalised grid generated with netgenerate (121 four-way traffic lights, about 2 km^2): "
    "a procedural stand-in for the paper's Orlando map, not a real street layout.",
    "city": "Real OSM-derived streets of Ingolstadt (RESCO ingolstadt21, shipped in the sumo-rl wheel), "
    "cropped to about 4 km^2: stands in for the paper's Hong Kong map (3.87 km^2) but is not Hong Kong.",
}


@dataclass(frozen=True)
class RoutingMap:
    """A routing network and what it stands in for; stats: junctions, signalised, edges, area_km2, max_out_degree."""

    name: Literal["grid", "city"]
    net: Path
    stand_in: str
    stats: dict = field(compare=False)


@dataclass(frozen=True)
class Trip:
    """One agent's fixed trip: leave origin_edge at depart, arrive on any edge ending at destination."""

    agent: int
    origin_edge: str
    destination: str  # SUMO node id
    destination_index: int  # junction_index(net)[destination]
    depart: float  # seconds


def _out_degree(node: sumolib.net.node.Node) -> int:
    return sum(e.allows("passenger") for e in node.getOutgoing())


def map_stats(net_path: Path) -> dict:
    """Junctions (all nodes), signalised nodes, edges, bounding-box area and max passenger out-degree."""
    net = sumolib.net.readNet(str(net_path))
    nodes = net.getNodes()
    xmin, ymin, xmax, ymax = net.getBoundary()
    return {
        "junctions": len(nodes),
        "signalised": sum(n.getType() == "traffic_light" for n in nodes),
        "edges": len(net.getEdges()),
        "area_km2": round((xmax - xmin) * (ymax - ymin) / 1e6, 4),
        "max_out_degree": max(_out_degree(n) for n in nodes),
    }


def largest_scc(net: sumolib.net.Net) -> set[str]:
    """Edge ids of the largest strongly connected set of passenger edges, following the net's connections."""
    succ = {
        e.getID(): sorted(o.getID() for o in e.getAllowedOutgoing("passenger") if o.allows("passenger"))
        for e in net.getEdges()
        if e.allows("passenger")
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    best: list[str] = []
    for root in sorted(succ):  # iterative Tarjan
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                index[v] = low[v] = len(index)
                stack.append(v)
                on_stack.add(v)
            for j in range(i, len(succ[v])):
                w = succ[v][j]
                if w not in index:
                    work += [(v, j + 1), (w, 0)]
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                if low[v] == index[v]:
                    comp = []
                    while not comp or comp[-1] != v:
                        comp.append(stack.pop())
                        on_stack.discard(comp[-1])
                    best = max(best, comp, key=len)
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
    return set(best)


def resco_dir() -> Path:
    """The sumo-rl wheel's nets/RESCO folder, found without importing sumo_rl (it pulls gymnasium and pandas)."""
    spec = importlib.util.find_spec("sumo_rl")
    folder = (
        None
        if spec is None
        else next((Path(p) / "nets" / "RESCO" for p in spec.submodule_search_locations or ()), None)
    )
    if folder is None or not folder.is_dir():
        raise FileNotFoundError(
            "the RESCO networks (the city routing map; the signal maps grid4x4, arterial4x4, "
            "cologne8, ingolstadt21) ship in the sumo-rl wheel: pip install sumo-rl==1.4.5"
        )
    return folder


def _ingolstadt21() -> Path:
    return resco_dir() / "ingolstadt21" / "ingolstadt21.net.xml"


def _check_m_out(net_path: Path) -> None:
    net = sumolib.net.readNet(str(net_path))
    bad = sorted(n.getID() for n in net.getNodes() if _out_degree(n) > M_OUT)
    if bad:
        raise ValueError(f"{net_path}: junctions {bad[:10]} have more than m_out = {M_OUT} outgoing passenger edges")


def _build_city(src: Path, net_out: Path, tmp: Path) -> None:
    """Passenger edges only, cropped around the centre to about TARGET_KM2, largest strongly connected component."""
    cur = tmp / "pass.net.xml"
    _run(
        [
            _binary("netconvert"),
            "-s",
            str(src),
            "--keep-edges.by-vclass",
            "passenger",
            "--remove-edges.isolated",
            "--no-warnings",
            "true",
            "-o",
            str(cur),
        ],
        "netconvert (passenger edges)",
    )
    net = sumolib.net.readNet(str(cur))
    xmin, ymin, xmax, ymax = net.getBoundary()
    keep = {e.getID() for e in net.getEdges()}
    if (xmax - xmin) * (ymax - ymin) / 1e6 > _CROP_ABOVE * TARGET_KM2:
        half = 500.0 * math.sqrt(TARGET_KM2)  # half the side of a TARGET_KM2 square, metres
        cx, cy = (xmin + xmax) / 2, (ymin + ymax) / 2
        keep = {
            e.getID()
            for e in net.getEdges()
            if all(abs(x - cx) <= half and abs(y - cy) <= half for x, y in e.getShape())
        }
    for step in range(5):  # removing edges can cut connections: repeat until the kept set is one SCC
        scc = largest_scc(net) & keep
        if scc == {e.getID() for e in net.getEdges()}:
            break
        (tmp / "keep.txt").write_text("".join(f"{e}\n" for e in sorted(scc)))
        nxt = tmp / f"scc{step}.net.xml"
        _run(
            [
                _binary("netconvert"),
                "-s",
                str(cur),
                "--keep-edges.input-file",
                str(tmp / "keep.txt"),
                "--no-warnings",
                "true",
                "-o",
                str(nxt),
            ],
            "netconvert (crop / strongly connected component)",
        )
        cur, keep = nxt, scc
        net = sumolib.net.readNet(str(cur))
    else:
        raise RuntimeError(f"{src}: could not reduce the net to one strongly connected component")
    _strip_header(cur, net_out)


def build_map(name: Literal["grid", "city"], out_dir: Path, seed: int = 0) -> RoutingMap:
    """Build (or reuse from out_dir) a routing map; the city net is named by a hash of its parameters."""
    out = Path(out_dir)
    if name == "grid":
        net = build_grid(out, seed=seed).net
    elif name == "city":
        src = _ingolstadt21()
        params = {
            "version": _CITY_VERSION,
            "source": hashlib.sha256(src.read_bytes()).hexdigest(),
            "target_km2": TARGET_KM2,
            "seed": seed,
        }
        key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
        out.mkdir(parents=True, exist_ok=True)
        net = out / f"city_{key}.net.xml"
        meta = net.with_suffix("").with_suffix(".params.json")
        cached = json.loads(meta.read_text()) if meta.exists() else None
        if cached is None or cached.get("params") != params or not net.exists():
            meta.unlink(missing_ok=True)  # written last: a half-finished build is never reused
            with tempfile.TemporaryDirectory(dir=out) as tmp:
                _build_city(src, net, Path(tmp))
            _check_m_out(net)
            meta.write_text(json.dumps({"params": params, "stats": map_stats(net)}, indent=1))
        return RoutingMap(name, net, STAND_IN[name], json.loads(meta.read_text())["stats"])
    else:
        raise ValueError(f"unknown map {name!r}: expected 'grid' or 'city'")
    _check_m_out(net)
    return RoutingMap(name, net, STAND_IN[name], map_stats(net))


def fringe_nodes(net: sumolib.net.Net, margin: float = 0.05) -> list[sumolib.net.node.Node]:
    """Dead ends (at most one neighbouring node) and nodes within margin x the shorter side of the bounding box."""
    xmin, ymin, xmax, ymax = net.getBoundary()
    m = margin * min(xmax - xmin, ymax - ymin)

    def fringe(n: sumolib.net.node.Node) -> bool:
        x, y = n.getCoord()
        neighbours = {e.getToNode() for e in n.getOutgoing()} | {e.getFromNode() for e in n.getIncoming()}
        return len(neighbours - {n}) <= 1 or min(x - xmin, xmax - x, y - ymin, ymax - y) <= m

    return sorted((n for n in net.getNodes() if fringe(n)), key=lambda n: n.getID())


def fixed_trips(net_path: Path, n_agents: int, seed: int) -> list[Trip]:
    """docs/reled.md, RL-7: seeded fringe-to-fringe trips at least 0.5 x the net diagonal apart, departing in [0, 60] s.

    The origin edge leaves the origin junction; the destination junction has an incoming passenger edge
    reachable from the origin edge. The distance rule is relaxed (x0.9 steps) if no pair meets it.
    """
    net = sumolib.net.readNet(str(net_path))
    xmin, ymin, xmax, ymax = net.getBoundary()
    fringe = fringe_nodes(net)
    starts = [n for n in fringe if any(e.allows("passenger") for e in n.getOutgoing())]
    ends = [n for n in fringe if any(e.allows("passenger") for e in n.getIncoming())]
    pairs: list = []
    need = 0.5 * math.hypot(xmax - xmin, ymax - ymin)
    while not pairs and need > 1.0:
        pairs = [(a, b) for a in starts for b in ends if a is not b and math.dist(a.getCoord(), b.getCoord()) >= need]
        need *= 0.9
    rng = random.Random(seed)
    rng.shuffle(pairs)
    index, trips = junction_index(net), []
    for a, b in pairs * (n_agents // max(len(pairs), 1) + 1):  # reuse pairs only if there are fewer than agents
        if len(trips) == n_agents:
            break
        origin = rng.choice(sorted((e for e in a.getOutgoing() if e.allows("passenger")), key=lambda e: e.getID()))
        if any(net.getShortestPath(origin, e, vClass="passenger")[0] for e in b.getIncoming() if e.allows("passenger")):
            trips.append((origin.getID(), b.getID()))
    if len(trips) < n_agents:
        raise ValueError(f"{net_path}: only {len(trips)} routable fringe trips for {n_agents} agents")
    departs = sorted(round(rng.uniform(0.0, 60.0), 1) for _ in range(n_agents))
    return [Trip(k, o, d, index[d], t) for k, ((o, d), t) in enumerate(zip(trips, departs))]


def arterial_weight(edge: sumolib.net.edge.Edge) -> float:
    """Length x passenger lanes x speed^2: draws congested traffic towards multi-lane, fast (major) roads."""
    lanes = sum(lane.allows("passenger") for lane in edge.getLanes())
    return edge.getLength() * max(lanes, 1) * edge.getSpeed() ** 2


def traffic_routes(
    net_path: Path, out: Path, level: Literal["moderate", "congested"], seed: int, horizon_s: float = 600.0
) -> Path:
    """Background traffic: 90 vehicles over horizon_s (moderate), or 190 biased to arterials over horizon_s / 2."""
    if level not in N_BACKGROUND:
        raise ValueError(f"unknown traffic level {level!r}: expected 'moderate' or 'congested'")
    if level == "moderate":
        return background_routes(net_path, out, N_BACKGROUND[level], seed, horizon_s)
    return background_routes(net_path, out, N_BACKGROUND[level], seed, horizon_s / 2, weight=arterial_weight)
