"""RELED Table II navigation: the road graph for the LLM, the SUMO-side route follower and the sandbox prelude
(RELED paper, Sec. III-D, Sec. IV-C, Table II)."""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Optional, Union

import sumolib

from scenarios.routing.observe import junction_ids, junction_index, outgoing_options

MODES = ("shortest_path", "shortest_time")
VCLASS = "passenger"
TravelTime = Union[Callable[[str], float], Mapping[str, float], None]


def _passenger_edges(net: sumolib.net.Net) -> list:
    """Non-internal edges that allow passenger cars, sorted by edge ID (the order of road_graph's edge list)."""
    return sorted(
        (e for e in net.getEdges() if e.getFunction() != "internal" and e.allows(VCLASS)), key=lambda e: e.getID()
    )


def _free_flow(edge) -> float:
    speed = edge.getSpeed()
    return edge.getLength() / speed if speed > 0 else math.inf


def _weight(value, fallback: float) -> float:
    """A travel-time value as a usable Dijkstra weight: NaN/None -> fallback, negative -> 0."""
    try:
        w = float(value)
    except (TypeError, ValueError):
        return fallback
    return fallback if math.isnan(w) else max(w, 0.0)


def road_graph(net: sumolib.net.Net, travel_times: Mapping[str, float] | None = None) -> dict:
    """Plain (msgpack-able) junction graph: {"coords": [[x, y] per junction index],
    "edges": [[from_idx, to_idx, edge_id, length_m, time_s], ...]} over passenger edges sorted by ID.

    time_s = travel_times[edge_id] when given (edges missing from it keep free flow), else length / speed limit.
    """
    index = junction_index(net)
    coords = []
    for nid in junction_ids(net):
        x, y = net.getNode(nid).getCoord()[:2]
        coords.append([float(x), float(y)])
    edges = []
    for e in _passenger_edges(net):
        free = _free_flow(e)
        t = free if travel_times is None or e.getID() not in travel_times else _weight(travel_times[e.getID()], free)
        edges.append(
            [index[e.getFromNode().getID()], index[e.getToNode().getID()], e.getID(), float(e.getLength()), float(t)]
        )
    return {"coords": coords, "edges": edges}


class Navigator:
    """World-process side of the execution function f: which outgoing edge a move_to_*(target) takes next.

    Routes follow the net's connections (docs/reled.md, RL-5): the first edge is one current_edge connects to
    (outgoing_options(...).connected) and every later hop is an edge.getOutgoing() successor. Weights are
    lengths (shortest_path) or travel times (shortest_time; default free flow = length / speed limit).
    A route ends at the first edge whose to-node is the target junction. Static weights (shortest_path,
    free-flow shortest_time) use a cached reverse Dijkstra per target; live travel times run a forward
    Dijkstra that stops at the target and asks travel_time only for the edges it settles.
    """

    def __init__(self, net: sumolib.net.Net):
        self.net = net
        self.n_junctions = len(junction_ids(net))
        index = junction_index(net)
        edges = _passenger_edges(net)
        self.edge_ids: list[str] = [e.getID() for e in edges]
        self._k = {eid: k for k, eid in enumerate(self.edge_ids)}
        self._to = [index[e.getToNode().getID()] for e in edges]
        self._length = [float(e.getLength()) for e in edges]
        self._free = [_free_flow(e) for e in edges]
        self._succ: list[list[int]] = []
        for e in edges:
            outs = {o.getID() for o in e.getOutgoing()}
            self._succ.append(sorted(self._k[o] for o in outs if o in self._k))
        self._pred: list[list[int]] = [[] for _ in edges]
        for k, succ in enumerate(self._succ):
            for j in succ:
                self._pred[j].append(k)
        self._first: dict[str, list[tuple[int, int]]] = {}  # current edge -> [(slot, edge k)] of connected options
        self._dist: dict[tuple[int, str], list[float]] = {}  # (target, mode) -> cost-to-target per edge

    # ------------------------------------------------------------------ static parts
    def _candidates(self, current_edge: str) -> list[tuple[int, int]]:
        cand = self._first.get(current_edge)
        if cand is None:
            cand = [
                (slot, self._k[o.edge_id])
                for slot, o in enumerate(outgoing_options(self.net, current_edge))
                if o is not None and o.connected and o.edge_id in self._k
            ]
            self._first[current_edge] = cand
        return cand

    def _static_dist(self, target: int, mode: str) -> list[float]:
        """Reverse Dijkstra: cost of the cheapest route that starts with edge k and ends entering `target`."""
        key = (target, mode)
        dist = self._dist.get(key)
        if dist is not None:
            return dist
        w = self._length if mode == "shortest_path" else self._free
        dist = [math.inf] * len(w)
        heap = []
        for k, to in enumerate(self._to):
            if to == target:
                dist[k] = w[k]
                heap.append((w[k], k))
        heapq.heapify(heap)
        while heap:
            d, k = heapq.heappop(heap)
            if d > dist[k]:
                continue
            for p in self._pred[k]:
                nd = w[p] + d
                if nd < dist[p]:
                    dist[p] = nd
                    heapq.heappush(heap, (nd, p))
        self._dist[key] = dist
        return dist

    def _check(self, target: int, mode: str) -> int:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        target = int(target)
        if not 0 <= target < self.n_junctions:
            raise ValueError(f"junction {target} outside 0..{self.n_junctions - 1}")
        return target

    # ------------------------------------------------------------------ queries
    def arrived(self, current_edge: str, target: int) -> bool:
        """True if current_edge ends at junction `target` (the move_to_* instruction is complete)."""
        return self._to[self._k[current_edge]] == int(target)

    def next_edge(
        self, current_edge: str, target: int, mode: str = "shortest_time", travel_time: TravelTime = None
    ) -> Optional[str]:
        """First edge of the best route from the end of current_edge to junction `target`; None if unreachable.

        travel_time (shortest_time only): a callable edge_id -> seconds (e.g. traci.edge.getTraveltime) or a
        mapping (edges missing from it keep free flow); None = free flow. The route has at least one edge, so
        call arrived() first: when current_edge already ends at target this returns the best loop back to it.
        """
        k = self._best(current_edge, self._check(target, mode), mode, travel_time)
        return None if k is None else self.edge_ids[k]

    def action_for(
        self, current_edge: str, target: int, mode: str = "shortest_time", travel_time: TravelTime = None
    ) -> Optional[int]:
        """The expert action: the slot of next_edge(...) in outgoing_options(net, current_edge); None if unreachable."""
        target = self._check(target, mode)
        k = self._best(current_edge, target, mode, travel_time)
        if k is None:
            return None
        return next(slot for slot, j in self._candidates(current_edge) if j == k)

    def route(
        self, current_edge: str, target: int, mode: str = "shortest_time", travel_time: TravelTime = None
    ) -> Optional[list[str]]:
        """The edges after current_edge up to and including the one entering target ([] if already there)."""
        target = self._check(target, mode)
        path: list[str] = []
        edge = current_edge
        while not self.arrived(edge, target):
            if len(path) > len(self.edge_ids):
                return None
            nxt = self.next_edge(edge, target, mode, travel_time)
            if nxt is None:
                return None
            path.append(nxt)
            edge = nxt
        return path

    def cost(self, edges: list[str], mode: str = "shortest_path") -> float:
        """Total length (shortest_path) or free-flow time (shortest_time) of a list of edges."""
        w = self._length if mode == "shortest_path" else self._free
        return float(sum(w[self._k[e]] for e in edges))

    def _best(self, current_edge: str, target: int, mode: str, travel_time: TravelTime) -> Optional[int]:
        cand = self._candidates(current_edge)
        if mode == "shortest_path" or travel_time is None:
            dist = self._static_dist(target, mode)
            best = min(cand, key=lambda sk: (dist[sk[1]], sk[0]), default=None)
            return None if best is None or dist[best[1]] == math.inf else best[1]
        return self._forward(cand, target, travel_time)

    def _forward(self, cand: list[tuple[int, int]], target: int, travel_time) -> Optional[int]:
        """Forward Dijkstra over live weights, stopping at the first settled edge that enters target."""
        if isinstance(travel_time, Mapping):

            def weight(k: int) -> float:
                v = travel_time.get(self.edge_ids[k])
                return self._free[k] if v is None else _weight(v, self._free[k])
        else:

            def weight(k: int) -> float:
                return _weight(travel_time(self.edge_ids[k]), self._free[k])

        memo: dict[int, float] = {}

        def w(k: int) -> float:
            v = memo.get(k)
            if v is None:
                v = memo[k] = weight(k)
            return v

        best: dict[int, float] = {}
        heap = [(w(k), i, k) for i, (_slot, k) in enumerate(cand)]
        heapq.heapify(heap)
        done: set[int] = set()
        while heap:
            d, i, k = heapq.heappop(heap)
            if k in done:
                continue
            done.add(k)
            if self._to[k] == target:
                return cand[i][1]
            for j in self._succ[k]:
                if j in done:
                    continue
                nd = d + w(j)
                if nd < best.get(j, math.inf):
                    best[j] = nd
                    heapq.heappush(heap, (nd, i, j))
        return None


# The source of prelude.py runs inside the sandbox worker, before the LLM's code, in one namespace.
SANDBOX_PRELUDE = (Path(__file__).parent / "prelude.py").read_text()
