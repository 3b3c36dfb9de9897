"""RELED routing maps: the cropped Ingolstadt city net, fixed agent trips, background traffic, a libsumo run."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import sumolib

from scenarios.routing.maps import RoutingMap, Trip, build_map, fixed_trips, fringe_nodes, traffic_routes


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory) -> RoutingMap:
    return build_map("city", tmp_path_factory.mktemp("city"))


@pytest.fixture(scope="module")
def city_net(city: RoutingMap) -> sumolib.net.Net:
    return sumolib.net.readNet(str(city.net))


@pytest.fixture(scope="module")
def congested(city: RoutingMap) -> Path:
    return traffic_routes(city.net, city.net.parent / "congested.rou.xml", "congested", seed=3)


def _reach(start: str, step: dict[str, list[str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in step[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_city_map_stats_m_out_and_strong_connectivity(city: RoutingMap, city_net: sumolib.net.Net) -> None:
    assert city.name == "city" and "Ingolstadt" in city.stand_in and "Hong Kong" in city.stand_in
    nodes, edges = city_net.getNodes(), city_net.getEdges()
    assert all(e.allows("passenger") for e in edges)
    assert max(sum(e.allows("passenger") for e in n.getOutgoing()) for n in nodes) <= 4  # m_out = 4
    xmin, ymin, xmax, ymax = city_net.getBoundary()
    area = (xmax - xmin) * (ymax - ymin) / 1e6
    assert 3.0 <= area <= 5.0 and area == pytest.approx(city.stats["area_km2"], abs=1e-3)  # paper HK: 3.87 km^2
    assert city.stats["junctions"] == len(nodes) > 150 and city.stats["edges"] == len(edges) > 300
    assert city.stats["signalised"] == sum(n.getType() == "traffic_light" for n in nodes) > 5
    fwd = {e.getID(): [o.getID() for o in e.getAllowedOutgoing("passenger")] for e in edges}
    back: dict[str, list[str]] = {e: [] for e in fwd}
    for a, outs in fwd.items():
        for b in outs:
            back[b].append(a)
    first = edges[0].getID()
    assert _reach(first, fwd) == set(fwd) == _reach(first, back)  # every edge reaches every edge


def test_city_map_cached_and_deterministic(city: RoutingMap, tmp_path: Path) -> None:
    mtime = city.net.stat().st_mtime_ns
    t0 = time.perf_counter()
    again = build_map("city", city.net.parent)
    assert time.perf_counter() - t0 < 0.5 and again.net.stat().st_mtime_ns == mtime and again == city
    fresh = build_map("city", tmp_path)
    assert fresh.net.name == city.net.name and fresh.net.read_bytes() == city.net.read_bytes()
    with pytest.raises(ValueError):
        build_map("hongkong", tmp_path)  # type: ignore[arg-type]


def test_fixed_trips(city: RoutingMap, city_net: sumolib.net.Net) -> None:
    trips = fixed_trips(city.net, 10, seed=0)
    assert trips == fixed_trips(city.net, 10, seed=0) and trips != fixed_trips(city.net, 10, seed=1)
    assert [t.agent for t in trips] == list(range(10)) and all(isinstance(t, Trip) for t in trips)
    departs = [t.depart for t in trips]
    assert departs == sorted(departs) and 0.0 <= departs[0] and departs[-1] <= 60.0
    xmin, ymin, xmax, ymax = city_net.getBoundary()
    fringe = {n.getID() for n in fringe_nodes(city_net)}
    ids = sorted(n.getID() for n in city_net.getNodes())
    for t in trips:
        origin = city_net.getEdge(t.origin_edge).getFromNode()
        dest = city_net.getNode(t.destination)
        assert origin.getID() in fringe and t.destination in fringe and ids[t.destination_index] == t.destination
        assert math.dist(origin.getCoord(), dest.getCoord()) >= 0.5 * math.hypot(xmax - xmin, ymax - ymin)
        assert any(
            city_net.getShortestPath(city_net.getEdge(t.origin_edge), e, vClass="passenger")[0]
            for e in dest.getIncoming()
        )


def test_fixed_trips_on_grid(tmp_path: Path) -> None:
    grid = build_map("grid", tmp_path)
    assert grid.stats["max_out_degree"] == 4 and grid.stats["signalised"] == 121
    trips = fixed_trips(grid.net, 10, seed=5)
    net = sumolib.net.readNet(str(grid.net))
    dead_ends = {n.getID() for n in net.getNodes() if len(n.getIncoming()) == 1}  # the 44 fringe-arm ends
    assert all(
        net.getEdge(t.origin_edge).getFromNode().getID() in dead_ends and t.destination in dead_ends for t in trips
    )


def test_traffic_routes(city: RoutingMap, congested: Path, city_net: sumolib.net.Net) -> None:
    moderate = traffic_routes(city.net, city.net.parent / "moderate.rou.xml", "moderate", seed=3)
    mod = list(sumolib.xml.parse(str(moderate), "vehicle"))
    con = list(sumolib.xml.parse(str(congested), "vehicle"))
    assert len(mod) == 90 and len(con) == 190
    assert max(float(v.depart) for v in con) < 300.0 < max(float(v.depart) for v in mod) < 600.0

    def fast_share(vs: list) -> float:  # share of route starts/ends on fast multi-lane roads
        ends = [e for v in vs for e in (v.route[0].edges.split()[0], v.route[0].edges.split()[-1])]
        return sum(city_net.getEdge(e).getSpeed() >= 13.8 for e in ends) / len(ends)

    assert fast_share(con) > fast_share(mod)
    with pytest.raises(ValueError):
        traffic_routes(city.net, city.net.parent / "x.rou.xml", "jammed", seed=3)  # type: ignore[arg-type]


def test_libsumo_runs_city_congested_60s(city: RoutingMap, congested: Path) -> None:
    import libsumo

    libsumo.start(
        [
            sumolib.checkBinary("sumo"),
            "-n",
            str(city.net),
            "-r",
            str(congested),
            "--seed",
            "0",
            "--step-length",
            "1",
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
        ]
    )
    try:
        for t in fixed_trips(city.net, 10, seed=0):
            libsumo.route.add(f"r{t.agent}", [t.origin_edge])
            libsumo.vehicle.add(f"agent{t.agent}", f"r{t.agent}", depart=f"{t.depart:.1f}", departLane="best")
        seen = set()
        for _ in range(60):
            libsumo.simulationStep()
            seen.update(libsumo.vehicle.getIDList())
        assert libsumo.simulation.getTime() == pytest.approx(60.0)
        assert len(libsumo.trafficlight.getIDList()) > 0
        assert {f"agent{k}" for k in range(10)} <= seen and len(seen) > 10
    finally:
        libsumo.close()
