"""Orlando-like grid builder and background routes: counts, area, determinism, route validity, libsumo run."""

from __future__ import annotations

from pathlib import Path

import pytest
import sumolib

from scenarios.routing.grid_map import GridFiles, background_routes, build_grid

FOUR_WAY_TLS_RANGE = (110, 125)  # "about 115 signalised four-way junctions"; the defaults give 121


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory) -> GridFiles:
    return build_grid(tmp_path_factory.mktemp("grid"))


@pytest.fixture(scope="module")
def routes90(grid: GridFiles) -> Path:
    return background_routes(grid.net, grid.net.parent / "bg90.rou.xml", 90, seed=7, horizon_s=600)


def _vehicle_routes(path: Path) -> dict[str, list[str]]:
    return {v.id: v.route[0].edges.split() for v in sumolib.xml.parse(str(path), "vehicle")}


def test_counts_and_area(grid: GridFiles) -> None:
    net = sumolib.net.readNet(str(grid.net))
    nodes = net.getNodes()
    # 11 x 11 grid junctions plus one dead end per fringe arm (2 * (11 + 11))
    assert len(nodes) == grid.n_junctions == 11 * 11 + 2 * (11 + 11)
    tls4 = [
        n for n in nodes if n.getType() == "traffic_light" and len(n.getIncoming()) == 4 and len(n.getOutgoing()) == 4
    ]
    assert FOUR_WAY_TLS_RANGE[0] <= len(tls4) == grid.n_four_way_tls <= FOUR_WAY_TLS_RANGE[1]
    assert len(net.getTrafficLights()) == grid.n_tls == len(tls4)  # only the four-way crossings have lights
    assert len(net.getEdges()) == grid.n_edges == 528  # 264 two-way segments (paper: 269 edges)
    xmin, ymin, xmax, ymax = net.getBoundary()
    area = (xmax - xmin) * (ymax - ymin) / 1e6
    assert 1.9 <= area <= 2.1 and area == pytest.approx(grid.area_km2)  # paper: 1.99 km^2
    assert max(len(n.getOutgoing()) for n in nodes) == 4  # m_out = 4


def test_same_arguments_same_files_and_cache(grid: GridFiles, tmp_path: Path) -> None:
    other = build_grid(tmp_path)
    assert other.net.name == grid.net.name
    assert other.net.read_bytes() == grid.net.read_bytes()
    mtime = other.net.stat().st_mtime_ns
    assert build_grid(tmp_path).net.stat().st_mtime_ns == mtime  # reused, not rebuilt
    small = build_grid(tmp_path, junctions_x=3, junctions_y=2, spacing_m=100.0, attach_m=50.0)
    assert small.net != other.net and small.n_four_way_tls == 6 and small.n_junctions == 6 + 10


def test_background_routes_valid_and_reproducible(grid: GridFiles, routes90: Path, tmp_path: Path) -> None:
    net = sumolib.net.readNet(str(grid.net))
    routes = _vehicle_routes(routes90)
    assert list(routes) == [f"bg{i}" for i in range(90)]
    for vid, edges in routes.items():
        assert len(edges) >= 2, vid
        for a, b in zip(edges, edges[1:]):
            assert net.getEdge(a).getConnections(net.getEdge(b)), f"{vid}: {a} -> {b} not connected"
    departs = [float(v.depart) for v in sumolib.xml.parse(str(routes90), "vehicle")]
    assert departs == sorted(departs) and 0 <= departs[0] and departs[-1] < 600
    again = background_routes(grid.net, tmp_path / "again.rou.xml", 90, seed=7, horizon_s=600)
    assert again.read_bytes() == routes90.read_bytes()
    other = background_routes(grid.net, tmp_path / "other.rou.xml", 90, seed=8, horizon_s=600)
    assert _vehicle_routes(other) != routes
    congested = background_routes(grid.net, tmp_path / "bg190.rou.xml", 190, seed=7, horizon_s=600)
    assert len(_vehicle_routes(congested)) == 190


def test_libsumo_runs_60s(grid: GridFiles, routes90: Path) -> None:
    import libsumo

    libsumo.start(
        [
            sumolib.checkBinary("sumo"),
            "-n",
            str(grid.net),
            "-r",
            str(routes90),
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
        seen = set()
        for _ in range(60):
            libsumo.simulationStep()
            seen.update(libsumo.vehicle.getIDList())
        assert libsumo.simulation.getTime() == pytest.approx(60.0)
        assert len(libsumo.trafficlight.getIDList()) == grid.n_tls
        assert seen  # vehicles were inserted and driving
    finally:
        libsumo.close()
