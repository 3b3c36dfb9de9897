"""Observation and reward on a tiny hand-built network against hand-computed values (RELED paper, Sec. IV-A)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import sumolib

from scenarios.routing.grid_map import _binary, _run, build_grid
from scenarios.routing.observe import (
    M_OUT,
    R_TERM,
    EdgeStats,
    Option,
    action_mask,
    distance,
    edge_score,
    junction_ids,
    junction_index,
    observation,
    outgoing_options,
    step_reward,
)

# build_grid(2 x 2, spacing 100, arms 50) names and places the nodes like this (y up):
#   left1(0,150)  A1(50,150) ------ B1(150,150)  right1(200,150)      top0 (50,200), top1 (150,200)
#   left0(0, 50)  A0(50, 50) ------ B0(150, 50)  right0(200, 50)      bottom0(50,0), bottom1(150,0)
# Edge ids are from-node + to-node ("A0B0"). Sorted node ids give the junction IDs (docs/reled.md, RL-4):
JIDS = ["A0", "A1", "B0", "B1", "bottom0", "bottom1", "left0", "left1", "right0", "right1", "top0", "top1"]
#        0     1     2     3     4          5          6        7        8         9         10      11


@pytest.fixture(scope="module")
def grid_net(tmp_path_factory: pytest.TempPathFactory) -> sumolib.net.Net:
    g = build_grid(
        tmp_path_factory.mktemp("tiny"), junctions_x=2, junctions_y=2, spacing_m=100.0, attach_m=50.0, speed_limit=10.0
    )
    return sumolib.net.readNet(str(g.net))


def test_junction_ids(grid_net: sumolib.net.Net) -> None:
    assert junction_ids(grid_net) == JIDS
    assert junction_index(grid_net)["B0"] == 2 and junction_index(grid_net)["top1"] == 11


def test_four_way_options_observation_mask(grid_net: sumolib.net.Net) -> None:
    # A vehicle on A0B0 approaches B0, whose outgoing edges sorted by ID are
    # B0A0 (back to A0: the net has the turnaround), B0B1, B0bottom1, B0right0 -- all 4 slots used.
    opts = outgoing_options(grid_net, "A0B0", M_OUT)
    assert opts == [
        Option("B0A0", "A0", 0, True),
        Option("B0B1", "B1", 3, True),
        Option("B0bottom1", "bottom1", 5, True),
        Option("B0right0", "right0", 8, True),
    ]
    stats = {
        "B0A0": EdgeStats(100.0, 10.0, 20.0),  # free flow 100/10 = 10 s, est. 20 s -> 10/20 = 0.5
        "B0B1": (100.0, 10.0, 10.0),  # 10/10 = 1.0 (triples work too)
        "B0bottom1": EdgeStats(50.0, 10.0, 4.0),  # 5/4 = 1.25 -> clipped to 1.0
        "B0right0": EdgeStats(40.0, 10.0, 8000.0),  # 4/8000 = 5e-4 -> clipped to 1e-3
    }
    # current junction B0 = 2, destination top1 = 11
    obs = observation(opts, stats, position=2, destination=11, m_out=M_OUT)
    expected = [
        2,
        11,  # current junction, destination junction
        0.5,
        1.0,
        1.0,
        1e-3,  # scores of slots 0..3
        0,
        3,
        5,
        8,
    ]  # end junctions A0, B1, bottom1, right0
    assert obs.shape == (2 * M_OUT + 2,) == (10,) and obs.dtype == np.float32
    np.testing.assert_allclose(obs, expected, rtol=1e-6)
    np.testing.assert_array_equal(action_mask(opts), [True, True, True, True])


def test_dead_end_padding_and_mask(grid_net: sumolib.net.Net) -> None:
    # On B0right0 the vehicle approaches the dead end right0; its only outgoing edge is right0B0
    # (the turnaround back to B0 = 2); slots 1..3 are padding.
    opts = outgoing_options(grid_net, "B0right0", M_OUT)
    assert opts == [Option("right0B0", "B0", 2, True), None, None, None]
    obs = observation(opts, {"right0B0": EdgeStats(50.0, 10.0, 10.0)}, position=8, destination=4)
    # 5 s free flow / 10 s estimated = 0.5; everything for the 3 missing edges is -1
    np.testing.assert_allclose(obs, [8, 4, 0.5, -1, -1, -1, 2, -1, -1, -1])
    mask = action_mask(opts)
    np.testing.assert_array_equal(mask, [True, False, False, False])
    assert [j for j in range(M_OUT) if not mask[j]] == [j for j, o in enumerate(opts) if o is None]


def test_unconnected_edge_is_observed_but_masked(tmp_path: Path) -> None:
    # Hand-written T junction: a(0,0) -> c(100,0), c -> n(100,100), c -> s(100,-100), c -> a; the
    # connection ac -> cs is deleted and turnarounds are off, so from "ac" only "cn" is drivable.
    (tmp_path / "t.nod.xml").write_text(
        '<nodes><node id="a" x="0" y="0"/><node id="c" x="100" y="0" type="priority"/>'
        '<node id="n" x="100" y="100"/><node id="s" x="100" y="-100"/></nodes>'
    )
    (tmp_path / "t.edg.xml").write_text(
        '<edges><edge id="ac" from="a" to="c" speed="10"/><edge id="ca" from="c" to="a" speed="10"/>'
        '<edge id="cn" from="c" to="n" speed="10"/><edge id="cs" from="c" to="s" speed="10"/></edges>'
    )
    (tmp_path / "t.con.xml").write_text('<connections><delete from="ac" to="cs"/></connections>')
    net_file = tmp_path / "t.net.xml"
    _run(
        [
            _binary("netconvert"),
            "-n",
            str(tmp_path / "t.nod.xml"),
            "-e",
            str(tmp_path / "t.edg.xml"),
            "-x",
            str(tmp_path / "t.con.xml"),
            "--no-turnarounds",
            "true",
            "--no-warnings",
            "true",
            "-o",
            str(net_file),
        ],
        "netconvert",
    )
    net = sumolib.net.readNet(str(net_file))
    # junction IDs: a=0, c=1, n=2, s=3; slots sorted by edge ID: ca, cn, cs, then padding
    opts = outgoing_options(net, "ac", M_OUT)
    assert opts == [Option("ca", "a", 0, False), Option("cn", "n", 2, True), Option("cs", "s", 3, False), None]
    stats = {e: EdgeStats(80.0, 10.0, 16.0) for e in ("ca", "cn", "cs")}  # 8/16 = 0.5 each
    obs = observation(opts, stats, position=1, destination=2)
    np.testing.assert_allclose(obs, [1, 2, 0.5, 0.5, 0.5, -1, 0, 2, 3, -1])  # unconnected edges stay visible
    np.testing.assert_array_equal(action_mask(opts), [False, True, False, False])


def test_edge_score_edges() -> None:
    assert edge_score(100.0, 10.0, 40.0) == pytest.approx(0.25)
    assert edge_score(100.0, 10.0, 0.0) == 1.0  # no travel-time estimate: free flow
    assert edge_score(100.0, 10.0, math.inf) == 1e-3  # standing queue: floor


def test_eq32_normal_step_and_arrival(grid_net: sumolib.net.Net) -> None:
    coords = {n.getID(): n.getCoord() for n in grid_net.getNodes()}
    dest = coords["top1"]  # (150, 200)
    d_a0 = distance(coords["A0"], dest)  # hypot(100, 150) = 180.2776 m
    d_b0 = distance(coords["B0"], dest)  # 150 m straight up
    assert d_a0 == pytest.approx(math.hypot(100.0, 150.0)) and d_b0 == pytest.approx(150.0)
    # normal step: decision at A0 at t = 0, next decision at B0 at t = 12 s
    # R = -(12 - 0) + 1 * (180.2776 - 150) = 18.2776
    assert step_reward(0.0, 12.0, d_a0, d_b0) == pytest.approx(-12.0 + math.hypot(100.0, 150.0) - 150.0)
    assert step_reward(0.0, 12.0, d_a0, d_b0) == pytest.approx(18.27760, abs=1e-4)
    # moving away: t 12 -> 20, d 150 -> 180.2776: R = -8 - 30.2776 = -38.2776
    assert step_reward(12.0, 20.0, d_b0, d_a0) == pytest.approx(-38.27760, abs=1e-4)
    # arrival step: t 30 -> 41, d 180 -> 0, plus R_term = 0.1 * 2400 = 240: R = -11 + 180 + 240 = 409
    assert R_TERM == 240.0
    assert step_reward(30.0, 41.0, 180.0, 0.0, arrived=True) == pytest.approx(409.0)
    assert step_reward(30.0, 41.0, 180.0, 0.0, arrived=False) == pytest.approx(169.0)
    # whole-episode telescoping (docs/reled.md, RL-6): return = -(travel time) + d_0 + 240
    steps = [(0.0, 12.0, d_a0, d_b0, False), (12.0, 41.0, d_b0, 0.0, True)]
    assert sum(step_reward(*s) for s in steps) == pytest.approx(-41.0 + d_a0 + 240.0)
    with pytest.raises(ValueError):
        step_reward(5.0, 4.0, 0.0, 0.0)
