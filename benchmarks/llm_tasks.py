"""Twenty code-generation tasks in the shapes RELED (route plans) and eSpark (action masks) ask for,
each with a call to make in the sandbox and a check of the answer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

GRID = {"A": ["B", "D"], "B": ["A", "C", "E"], "C": ["B", "F"], "D": ["A", "E"], "E": ["B", "D", "F"], "F": ["C", "E"]}
TIMES = {u: {v: 1.0 + (ord(u) + ord(v)) % 3 for v in vs} for u, vs in GRID.items()}


def _valid_path(path, origin, destination, graph=GRID, blocked=()) -> bool:
    return (
        isinstance(path, list)
        and len(path) >= 1
        and path[0] == origin
        and path[-1] == destination
        and all(b in graph[a] for a, b in zip(path, path[1:]))
        and not set(path) & set(blocked)
    )


def _path_time(path) -> float:
    return sum(TIMES[a][b] for a, b in zip(path, path[1:]))


def _bools(n: int, expected=None) -> Callable[[Any], bool]:
    def check(v) -> bool:
        v = list(v) if hasattr(v, "__iter__") else v
        return (
            isinstance(v, list)
            and len(v) == n
            and all(x in (True, False, 0, 1) for x in v)
            and (expected is None or [bool(x) for x in v] == expected)
        )

    return check


@dataclass(frozen=True)
class Task:
    """One generation task: what to ask, what to call, how to judge the answer."""

    paper: str
    func: str
    params: tuple[str, ...]
    text: str
    args: tuple
    check: Callable[[Any], bool]

    def prompt(self) -> str:
        return (
            f"Write a Python function `{self.func}({', '.join(self.params)})`. {self.text} "
            "Use only the standard library or numpy. Answer with one ```python code block."
        )


Q = [3, 0, 5, 1, 0, 7, 2, 0]
TASKS = [
    Task(
        "eSpark",
        "mask_phases",
        ("queue",),
        "queue is a list of 8 waiting-vehicle counts, one per signal phase. "
        "Return a list of 8 booleans, True where the count is greater than 0.",
        (Q,),
        _bools(8, [q > 0 for q in Q]),
    ),
    Task(
        "eSpark",
        "mask_phases",
        ("queue", "current"),
        "queue is a list of 8 counts; current is the index of the "
        "current phase. Return 8 booleans: True for the current phase and for phases whose count is at least half "
        "the largest count.",
        (Q, 1),
        _bools(8, [i == 1 or q >= max(Q) / 2 for i, q in enumerate(Q)]),
    ),
    Task(
        "eSpark",
        "mask_phases",
        ("queue", "missing"),
        "queue is a list of 8 counts; missing is a list of phase "
        "indices that do not exist at this intersection. Return 8 booleans, False exactly for the missing phases.",
        (Q, [2, 6]),
        _bools(8, [i not in (2, 6) for i in range(8)]),
    ),
    Task(
        "eSpark",
        "mask_top3",
        ("queue",),
        "queue is a list of 8 counts with no ties. Return 8 booleans, True for "
        "the three phases with the largest counts.",
        ([3, 0, 5, 1, 4, 7, 2, 6],),
        _bools(8, [i in (5, 7, 2) for i in range(8)]),
    ),
    Task(
        "eSpark",
        "mask_min_green",
        ("elapsed", "current"),
        "A signal has 8 phases. If elapsed (seconds in the "
        "current phase) is below 10, return 8 booleans allowing only the current phase; otherwise allow all 8.",
        (4, 3),
        _bools(8, [i == 3 for i in range(8)]),
    ),
    Task(
        "eSpark",
        "mask_order",
        ("stock", "demand", "capacity"),
        "There are 34 order actions; action j orders "
        "j * 0.5 * demand units. Return 34 booleans, True where stock plus the order does not exceed capacity.",
        (10.0, 4.0, 30.0),
        _bools(34, [10 + j * 2.0 <= 30 for j in range(34)]),
    ),
    Task(
        "eSpark",
        "mask_order",
        ("stock", "demand"),
        "There are 34 order actions (0 means order nothing). If stock "
        "exceeds 3 times demand, return 34 booleans allowing only action 0; otherwise allow all.",
        (20.0, 5.0),
        _bools(34, [j == 0 for j in range(34)]),
    ),
    Task(
        "eSpark",
        "mask_order",
        ("stock", "in_transit", "demand"),
        "34 order actions; action j orders j * 0.5 * "
        "demand units. Return 34 booleans, True where stock + in_transit + order lies between demand and 4 times "
        "demand inclusive.",
        (2.0, 1.0, 2.0),
        _bools(34, [2 <= 3 + j <= 8 for j in range(34)]),
    ),
    Task(
        "eSpark",
        "mask_small_orders",
        ("n",),
        "Return a list of n booleans, True for the first 11 entries (indices 0 to 10) and False for the rest.",
        (34,),
        _bools(34, [j <= 10 for j in range(34)]),
    ),
    Task(
        "eSpark",
        "mask_margin",
        ("margin",),
        "There are 34 order actions. If margin is negative, return 34 "
        "booleans allowing only action 0; otherwise allow all 34.",
        (-1.5,),
        _bools(34, [j == 0 for j in range(34)]),
    ),
    Task(
        "RELED",
        "plan_route",
        ("graph", "origin", "destination"),
        "graph maps each junction to a list of "
        "neighbouring junctions. Return a list of junctions from origin to destination (a shortest path by hops).",
        (GRID, "A", "F"),
        lambda v: _valid_path(v, "A", "F") and len(v) == 4,
    ),
    Task(
        "RELED",
        "fastest_route",
        ("times", "origin", "destination"),
        "times maps each junction to a dict "
        "{neighbour: travel time}. Return the list of junctions of the fastest route from origin to destination.",
        (TIMES, "A", "F"),
        lambda v: (
            _valid_path(v, "A", "F")
            and _path_time(v)
            == min(_path_time(p) for p in (["A", "B", "C", "F"], ["A", "B", "E", "F"], ["A", "D", "E", "F"]))
        ),
    ),
    Task(
        "RELED",
        "route_edges",
        ("path",),
        "path is a list of junctions. Return the list of consecutive pairs [u, v] along it.",
        (["A", "B", "E"],),
        lambda v: [list(e) for e in v] == [["A", "B"], ["B", "E"]],
    ),
    Task(
        "RELED",
        "plan_avoiding",
        ("graph", "origin", "destination", "blocked"),
        "graph maps each junction to its "
        "neighbours. Return a path (list of junctions) from origin to destination that avoids every junction in "
        "the list blocked.",
        (GRID, "A", "F", ["B"]),
        lambda v: _valid_path(v, "A", "F", blocked=["B"]),
    ),
    Task(
        "RELED",
        "travel_time",
        ("path", "times"),
        "times[u][v] is the travel time from junction u to neighbour v. Return the total travel time along path.",
        (["A", "B", "C"], TIMES),
        lambda v: abs(float(v) - _path_time(["A", "B", "C"])) < 1e-9,
    ),
    Task(
        "RELED",
        "plan_all",
        ("graph", "trips"),
        "graph maps junctions to neighbours; trips is a list of "
        "[origin, destination] pairs, one per vehicle. Return a list with one path (list of junctions) per trip.",
        (GRID, [["A", "F"], ["D", "C"]]),
        lambda v: isinstance(v, list) and len(v) == 2 and _valid_path(v[0], "A", "F") and _valid_path(v[1], "D", "C"),
    ),
    Task(
        "RELED",
        "choose_turn",
        ("options", "congestion"),
        "options is a list of outgoing roads; congestion maps "
        "each road to a number. Return the index in options of the least congested road.",
        (["e1", "e2", "e3"], {"e1": 0.7, "e2": 0.2, "e3": 0.9}),
        lambda v: v == 1,
    ),
    Task(
        "RELED",
        "split_agents",
        ("n_agents", "m"),
        "Split the agent ids 0..n_agents-1 into m lists whose sizes differ by at most one; return the list of lists.",
        (10, 3),
        lambda v: (
            isinstance(v, list)
            and len(v) == 3
            and sorted(x for g in v for x in g) == list(range(10))
            and max(map(len, v)) - min(map(len, v)) <= 1
        ),
    ),
    Task(
        "RELED",
        "count_hops",
        ("path",),
        "Return the number of road segments in path, a list of junctions.",
        (["A", "B", "E", "F"],),
        lambda v: v == 3,
    ),
    Task(
        "RELED",
        "first_departure",
        ("departures",),
        "departures is a list of departure times, one per vehicle. Return the index of the vehicle that leaves first.",
        ([30.0, 5.5, 12.0],),
        lambda v: v == 1,
    ),
]
