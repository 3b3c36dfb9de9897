"""SED plan execution: Table II interfaces in the sandbox, plan validation and failures, the SUMO-side Navigator."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import sumolib

from scenarios.routing.grid_map import build_grid
from scenarios.routing.observe import junction_ids, junction_index, outgoing_options
from scenarios.routing.sed.navigation import SANDBOX_PRELUDE, Navigator, road_graph
from scenarios.routing.sed.plans import Instruction, PlanOutcome, execute_plans, scripted_plan_code
from scenarios.sandbox.limits import SandboxLimits

# build_grid(3 x 3): junctions A0..C2 (x = A,B,C; y = 0,1,2) plus 12 fringe dead ends; sorted ids give the indices.
A0, B0, C0, C2 = 0, 3, 6, 8


@pytest.fixture(scope="module")
def net(tmp_path_factory: pytest.TempPathFactory) -> sumolib.net.Net:
    g = build_grid(tmp_path_factory.mktemp("sed_grid"), junctions_x=3, junctions_y=3)
    return sumolib.net.readNet(str(g.net))


@pytest.fixture(scope="module")
def graph(net: sumolib.net.Net) -> dict:
    return road_graph(net)


@pytest.fixture(scope="module")
def nav(net: sumolib.net.Net) -> Navigator:
    return Navigator(net)


def _edge_len(graph: dict, a: int, b: int) -> float:
    return next(e[3] for e in graph["edges"] if e[0] == a and e[1] == b)


def test_road_graph(net: sumolib.net.Net, graph: dict) -> None:
    ids = junction_ids(net)
    assert ids[A0] == "A0" and ids[B0] == "B0" and ids[C0] == "C0" and ids[C2] == "C2"
    assert len(graph["coords"]) == len(ids) == 21
    assert graph["coords"][B0] == pytest.approx(list(net.getNode("B0").getCoord()[:2]))
    e = net.getEdge("A0B0")
    row = next(r for r in graph["edges"] if r[2] == "A0B0")
    assert row == [A0, B0, "A0B0", pytest.approx(e.getLength()), pytest.approx(e.getLength() / e.getSpeed())]
    slow = road_graph(net, {"A0B0": 99.0})
    assert next(r for r in slow["edges"] if r[2] == "A0B0")[4] == 99.0


def test_prelude_is_a_module_that_runs_a_plan_when_imported(graph: dict, monkeypatch) -> None:
    """prelude.py is real, linted Python: imported as a module it plans like the sandbox does, and its source is
    exactly what the sandbox runs before the plan code."""
    from scenarios.routing.sed import prelude

    monkeypatch.setattr(
        prelude, "plan", lambda agent_id: prelude.move_to_by_shortest_time(prelude.get_destination()), raising=False
    )
    assert prelude.run_plan(graph, 3, A0, C2) == {"instructions": [["shortest_time", C2, True]]}
    assert SANDBOX_PRELUDE == Path(prelude.__file__).read_text()


def test_prelude_queries_in_process(graph: dict) -> None:
    """The prelude's queries, run directly (no sandbox): distances from the graph, nearest node, coords."""
    ns: dict = {}
    exec(
        SANDBOX_PRELUDE + "\nOUT = {}\n"
        "def plan(agent_id):\n"
        "    OUT['dist'] = get_shortest_dist(get_destination())\n"
        "    OUT['time'] = get_shortest_time(get_destination())\n"
        "    OUT['near'] = get_nearest_node(*get_node_coord(4))\n"
        "    OUT['ok'] = move_to_by_shortest_path(get_destination())\n"
        "    OUT['after'] = get_shortest_dist(get_destination())\n",
        ns,
    )
    res = ns["run_plan"](graph, 7, A0, C0)
    out = ns["OUT"]
    want = _edge_len(graph, A0, B0) + _edge_len(graph, B0, C0)
    assert out["dist"] == pytest.approx(want) and out["near"] == 4 and out["ok"] is True
    assert out["time"] == pytest.approx(want / 13.89) and out["after"] == 0.0
    assert res == {"instructions": [["shortest_path", C0, True]]}


def test_waypoint_plan(graph: dict) -> None:
    code = """
import math

def plan(agent_id: int) -> None:
    ox, oy = get_node_coord(get_origin())
    dx, dy = get_node_coord(get_destination())
    waypoint = get_nearest_node((ox + dx) / 2, (oy + dy) / 2 + 1.0)
    assert math.isfinite(get_shortest_dist(waypoint))
    move_to_by_shortest_path(waypoint)
    if agent_id == 0:
        move_to_by_shortest_time(get_destination())
"""
    out = execute_plans(code, {0: (A0, C0), 1: (A0, C0)}, graph)
    assert out[0] == PlanOutcome(0, [Instruction("shortest_path", B0), Instruction("shortest_time", C0)], True)
    assert [i.text() for i in out[0].instructions] == ["move_to_by_shortest_path(3)", "move_to_by_shortest_time(6)"]
    # agent 1 stops at the waypoint: the implicit move to the destination is appended and flagged (docs/reled.md, RL-10)
    assert out[1].ok and out[1].incomplete and "incomplete" in out[1].message
    assert out[1].instructions == [Instruction("shortest_path", B0), Instruction("shortest_time", C0)]


def test_scripted_expert_all_agents(graph: dict) -> None:
    trips = {i: (i, (i * 5 + 3) % 21) for i in range(10)}
    for mode in ("shortest_time", "shortest_path"):
        out = execute_plans(scripted_plan_code(mode), trips, graph)
        assert sorted(out) == list(range(10))
        for a, (o, d) in trips.items():
            assert out[a].ok and out[a].cause is None and not out[a].incomplete
            assert out[a].instructions == [Instruction(mode, d)]
    with pytest.raises(ValueError):
        scripted_plan_code("fastest")


def test_failures_are_per_agent(graph: dict) -> None:
    code = """
def plan(agent_id):
    if agent_id == 1:
        raise ValueError("no route for agent 1")
    if agent_id == 2:
        while True:
            pass
    if agent_id == 3:
        move_to_by_shortest_path(10**6)
    if agent_id == 4:
        return
    move_to_by_shortest_time(get_destination())
"""
    trips = {0: (A0, C2), 1: (A0, C2), 2: (A0, C2), 3: (A0, C2), 4: (A0, C2), 5: (C2, A0)}
    out = execute_plans(code, trips, graph, SandboxLimits(wall_s=1.0, cpu_s=1.0))
    assert out[1].cause == "exception" and not out[1].ok and out[1].instructions == []
    assert "ValueError: no route for agent 1" in out[1].message and "line 4 of the plan code" in out[1].message
    assert out[2].cause == "timeout" and not out[2].ok
    assert out[3].cause == "missing_node" and "1000000" in out[3].message and not out[3].ok
    assert out[3].instructions == [Instruction("shortest_time", C2)]  # the valid call is kept
    assert out[4].cause == "no_instructions" and out[4].incomplete
    assert out[4].instructions == [Instruction("shortest_time", C2)]
    for a, d in ((0, C2), (5, A0)):  # agents before and after the failures still execute
        assert out[a].ok and out[a].instructions == [Instruction("shortest_time", d)]


def test_unreachable_node() -> None:
    # 0 <-> 1 -> 2 (one way); 3 isolated
    graph = {
        "coords": [[0, 0], [100, 0], [200, 0], [300, 0]],
        "edges": [[0, 1, "a", 100.0, 10.0], [1, 0, "b", 100.0, 10.0], [1, 2, "c", 100.0, 10.0]],
    }
    code = "def plan(agent_id):\n    r = move_to_by_shortest_path(3)\n    move_to_by_shortest_path(0 if r else 2)\n"
    out = execute_plans(code, {0: (0, 2), 1: (2, 2)}, graph)
    assert out[0].cause == "unreachable_node" and "node 3 is not reachable from node 0" in out[0].message
    assert out[0].instructions == [Instruction("shortest_path", 2)] and not out[0].incomplete
    assert out[1].cause == "unreachable_node"  # from 2 nothing is reachable; the destination is 2 itself
    assert out[1].instructions == [Instruction("shortest_path", 2)]


@pytest.mark.parametrize(
    "code, cause",
    [
        (None, "no_code"),
        ("def plan(agent_id):\n    move_to_by_shortest_time(get_destination()\n", "syntax"),
        ("def route(agent_id):\n    pass\n", "missing_function"),
        ("def plan():\n    pass\n", "signature"),
    ],
)
def test_contract_failures(graph: dict, code, cause) -> None:
    out = execute_plans(code, {0: (A0, C0), 1: (C0, A0)}, graph)
    assert sorted(out) == [0, 1]
    assert all(o.cause == cause and not o.ok and o.instructions == [] and o.message for o in out.values())


def test_load_failures_and_hijack(graph: dict) -> None:
    out = execute_plans("import os\ndef plan(agent_id):\n    pass\n", {0: (A0, C0)}, graph)
    assert out[0].cause == "forbidden_import"
    # a redefined interface does not bypass the recorder; __future__ imports are tolerated
    code = (
        "from __future__ import annotations\n"
        "def move_to_by_shortest_path(node_id):\n    return True\n"
        "def plan(agent_id: int) -> None:\n    move_to_by_shortest_path(get_destination())\n"
    )
    out = execute_plans(code, {0: (A0, C0)}, graph)
    assert out[0].ok and out[0].instructions == [Instruction("shortest_path", C0)]


def _drive(net: sumolib.net.Net, nav: Navigator, edge: str, target: int, mode: str, travel_time=None) -> list[str]:
    """Follow the expert actions slot by slot, as the world would, until the vehicle enters `target`."""
    path = []
    while not nav.arrived(edge, target):
        slot = nav.action_for(edge, target, mode, travel_time)
        assert slot is not None and len(path) < 50
        opt = outgoing_options(net, edge)[slot]
        assert opt is not None and opt.connected
        edge = opt.edge_id
        path.append(edge)
    return path


def test_navigator_follows_shortest_route(net: sumolib.net.Net, nav: Navigator) -> None:
    index = junction_index(net)
    starts = sorted(e.getID() for e in net.getEdges() if e.getFromNode().getID().startswith(("left", "bottom")))
    for start in starts:
        origin = net.getEdge(start)
        for target in range(len(index)):
            if index[origin.getToNode().getID()] == target:
                continue
            path = _drive(net, nav, start, target, "shortest_path")
            assert path and index[net.getEdge(path[-1]).getToNode().getID()] == target
            node = net.getNode(junction_ids(net)[target])
            best = min(net.getShortestPath(origin, e_in, vClass="passenger")[1] for e_in in node.getIncoming())
            assert nav.cost(path) == pytest.approx(best - origin.getLength())
            assert nav.route(start, target, "shortest_path") == path
            assert nav.next_edge(start, target, "shortest_path") == path[0]
    assert nav.route("left0A0", A0) == []


def test_navigator_travel_times(net: sumolib.net.Net, nav: Navigator) -> None:
    free = _drive(net, nav, "left0A0", C0, "shortest_time")
    assert free == ["A0B0", "B0C0"]
    jam = {"A0B0": 1e4}
    mapped = _drive(net, nav, "left0A0", C0, "shortest_time", jam)
    assert "A0B0" not in mapped and mapped[-1].endswith("C0")
    assert _drive(net, nav, "left0A0", C0, "shortest_time", lambda e: jam.get(e, 10.0)) == mapped
    assert _drive(net, nav, "left0A0", C0, "shortest_path", jam) == free  # lengths ignore travel times
    assert nav.cost(free, "shortest_time") == pytest.approx(sum(net.getEdge(e).getLength() for e in free) / 13.89)
    with pytest.raises(ValueError):
        nav.next_edge("left0A0", 10**6)
    with pytest.raises(ValueError):
        nav.next_edge("left0A0", C0, "fastest")
    assert math.isfinite(nav.cost(mapped))
