"""RELED's navigation interfaces (Table II) as the LLM's plan code calls them: this module's source runs inside the
sandbox worker, in the same namespace as the plan code that follows it (navigation.SANDBOX_PRELUDE). Only math and
heapq are imported; the host calls run_plan(graph, agent_id, origin, destination) once per agent. Imported directly
(tests), it is a plain module: set `plan` on it, then call run_plan."""

import heapq as _heapq
import math as _math

_MAX_INSTRUCTIONS = 256
_S = {"n": 0, "coords": [], "adj": [], "origin": 0, "destination": 0, "pos": 0, "instructions": []}


def _node(node_id):
    """The junction index for node_id, or None when it is not a valid junction ID."""
    if isinstance(node_id, bool):
        return None
    try:
        k = int(node_id)
        if k != node_id:
            return None
    except Exception:
        return None
    return k if 0 <= k < _S["n"] else None


def _require(node_id):
    k = _node(node_id)
    if k is None:
        raise ValueError("unknown node id %r: node IDs are the integers 0..%d" % (node_id, _S["n"] - 1))
    return k


def _dijkstra(source, target, col):
    """Cheapest cost from junction source to junction target (col 0: length, 1: time); inf if unreachable."""
    if source == target:
        return 0.0
    dist = {source: 0.0}
    heap = [(0.0, source)]
    while heap:
        d, u = _heapq.heappop(heap)
        if u == target:
            return d
        if d > dist.get(u, _math.inf):
            continue
        for v, cost in _S["adj"][u]:
            nd = d + cost[col]
            if nd < dist.get(v, _math.inf):
                dist[v] = nd
                _heapq.heappush(heap, (nd, v))
    return _math.inf


def _move(kind, node_id):
    if len(_S["instructions"]) >= _MAX_INSTRUCTIONS:
        raise RuntimeError("too many move_to_* calls (limit %d per agent)" % _MAX_INSTRUCTIONS)
    k = _node(node_id)
    ok = k is not None and _dijkstra(_S["pos"], k, 0) < _math.inf
    if isinstance(node_id, (bool, int, float, str)):
        shown = node_id if k is None else k
    else:
        shown = repr(node_id)[:80]
    _S["instructions"].append([kind, shown, ok])
    if ok:
        _S["pos"] = k
    return ok


def move_to_by_shortest_path(node_id):
    """Move to target node via shortest distance path."""
    return _move("shortest_path", node_id)


def move_to_by_shortest_time(node_id):
    """Move to target node via shortest time path."""
    return _move("shortest_time", node_id)


def get_origin():
    """Return the current agent's origin node ID."""
    return _S["origin"]


def get_destination():
    """Return the current agent's destination node ID."""
    return _S["destination"]


def get_shortest_dist(target_node_id):
    """Shortest path distance (m) from where the previous instruction ended to the target node."""
    return _dijkstra(_S["pos"], _require(target_node_id), 0)


def get_shortest_time(target_node_id):
    """Shortest travel time (s) from where the previous instruction ended to the target node."""
    return _dijkstra(_S["pos"], _require(target_node_id), 1)


def get_nearest_node(x, y):
    """Node ID closest to coordinates (x, y)."""
    x, y = float(x), float(y)
    best, best_d = 0, _math.inf
    for k, (cx, cy) in enumerate(_S["coords"]):
        d = (cx - x) ** 2 + (cy - y) ** 2
        if d < best_d:
            best, best_d = k, d
    return best


def get_node_coord(node_id):
    """Coordinates (x, y) of the node."""
    x, y = _S["coords"][_require(node_id)]
    return (x, y)


_API = {
    f.__name__: f
    for f in (
        move_to_by_shortest_path,
        move_to_by_shortest_time,
        get_origin,
        get_destination,
        get_shortest_dist,
        get_shortest_time,
        get_nearest_node,
        get_node_coord,
    )
}


def run_plan(graph, agent_id, origin, destination):
    """Reset the state for this agent, call the user's plan(agent_id), return its recorded instructions."""
    coords = [(float(c[0]), float(c[1])) for c in graph["coords"]]
    adj = [[] for _ in coords]
    for a, b, _eid, length, time in graph["edges"]:
        adj[int(a)].append((int(b), (float(length), float(time))))
    _S.update(
        n=len(coords),
        coords=coords,
        adj=adj,
        origin=int(origin),
        destination=int(destination),
        pos=int(origin),
        instructions=[],
    )
    g = globals()
    g.update(_API)  # the interfaces win over same-named user definitions
    fn = g.get("plan")
    if not callable(fn):
        raise NameError("no function plan(agent_id) defined")
    fn(int(agent_id))
    return {"instructions": list(_S["instructions"])}
