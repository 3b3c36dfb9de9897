"""Flow's figure-eight (the geometry of its FigureEightNetwork) and routes, built from plain XML with netconvert."""

from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import sumo  # noqa: F401  (sets SUMO_HOME before sumolib looks for binaries)
import sumolib

#: The closed loop every vehicle drives, in driving order.
LOOP = ("bottom", "top", "upper_ring", "right", "left", "lower_ring")
_RESOLUTION = 40  # points per ring shape, as Flow's FigureEightNetwork
_VEH_LENGTH = 5.0
_MIN_GAP = 2.5
_BUILD_VERSION = 2  # bump when the generated files change for the same parameters


@dataclass(frozen=True)
class Figure8Files:
    """Paths of a built figure-eight and the SUMO arguments to run it (no .sumocfg is written)."""

    net: Path
    routes: Path
    step_length: float
    seed: int
    vehicle_ids: tuple[str, ...]
    agent_ids: tuple[str, ...]
    loop_length: float
    start_positions: tuple[float, ...] = ()  # each vehicle's front at depart, as a distance along the loop

    @property
    def sumo_args(self) -> list[str]:
        """Command-line arguments for sumo/libsumo that load this scenario."""
        return [
            "-n",
            str(self.net),
            "-r",
            str(self.routes),
            "--step-length",
            repr(self.step_length),
            "--seed",
            str(self.seed),
        ]


def _netconvert() -> str:
    """Path of the netconvert shipped with the pinned eclipse-sumo wheel."""
    exe = os.path.join(sumo.SUMO_HOME, "bin", "netconvert")
    return exe if os.path.exists(exe) else sumolib.checkBinary("netconvert")


def build_net(nod: Path, edg: Path, net: Path, con: Path | None = None) -> None:
    """netconvert plain XML (nodes, edges, optional connections) into net, one lane as written, no U-turns;
    RuntimeError with netconvert's message when it fails."""
    args = [_netconvert(), "-n", str(nod), "-e", str(edg), *(["-x", str(con)] if con is not None else [])]
    args += ["--no-turnarounds", "true", "--no-internal-links", "false", "--no-warnings", "true", "-o", str(net)]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"netconvert failed ({proc.returncode}): {proc.stderr.strip()}")


def _shape(points: list[tuple[float, float]]) -> str:
    return " ".join(f"{x:.4f},{y:.4f}" for x, y in points)


def _write_plain_xml(out: Path, r: float, speed: float) -> tuple[Path, Path, Path]:
    """Write fig8.{nod,edg,con}.xml for ring radius r and speed limit speed (m/s)."""
    nod, edg, con = out / "fig8.nod.xml", out / "fig8.edg.xml", out / "fig8.con.xml"
    nodes = {"center": (0, 0), "right": (r, 0), "top": (0, r), "left": (-r, 0), "bottom": (0, -r)}
    nod.write_text(
        "<nodes>\n"
        + "".join(f'    <node id="{n}" x="{x:.4f}" y="{y:.4f}" type="priority"/>\n' for n, (x, y) in nodes.items())
        + "</nodes>\n"
    )
    ring = 3 * math.pi * r / 2
    ts_up = [3 * math.pi / 2 * i / (_RESOLUTION - 1) for i in range(_RESOLUTION)]
    ts_lo = [math.pi / 2 + 3 * math.pi / 2 * i / (_RESOLUTION - 1) for i in range(_RESOLUTION)]
    upper = [(r * (1 - math.cos(t)), r * (1 + math.sin(t))) for t in ts_up]
    lower = [(-r + r * math.cos(t), -r + r * math.sin(t)) for t in ts_lo]
    edges = [  # id, from, to, priority, length, shape
        ("bottom", "bottom", "center", 78, r, None),
        ("top", "center", "top", 78, r, None),
        ("right", "right", "center", 46, r, None),
        ("left", "center", "left", 46, r, None),
        ("upper_ring", "top", "right", 1, ring, upper),
        ("lower_ring", "left", "bottom", 1, ring, lower),
    ]
    lines = []
    for eid, a, b, prio, length, shape in edges:
        s = f' shape="{_shape(shape)}"' if shape else ""
        lines.append(
            f'    <edge id="{eid}" from="{a}" to="{b}" priority="{prio}" numLanes="1" '
            f'speed="{speed:.4f}" length="{length:.4f}"{s}/>\n'
        )
    edg.write_text("<edges>\n" + "".join(lines) + "</edges>\n")
    con.write_text(
        "<connections>\n"
        '    <connection from="bottom" to="top" fromLane="0" toLane="0"/>\n'
        '    <connection from="right" to="left" fromLane="0" toLane="0"/>\n'
        "</connections>\n"
    )
    return nod, edg, con


def _segments(net_file: Path) -> list[tuple[str, float, float]]:
    """(edge, start offset on the loop, length) for each normal edge; internal lanes fill the gaps."""
    net = sumolib.net.readNet(str(net_file), withInternal=True)
    out, s = [], 0.0
    for k, eid in enumerate(LOOP):
        edge = net.getEdge(eid)
        length = edge.getLane(0).getLength()
        out.append((eid, s, length))
        s += length
        nxt = net.getEdge(LOOP[(k + 1) % len(LOOP)])
        (conn,) = edge.getConnections(nxt)
        via = conn.getViaLaneID()
        while via:  # internal lanes may be split at the crossing: follow the chain
            lane = net.getLane(via)
            s += lane.getLength()
            nxt_via = [c.getToLane() for c in lane.getOutgoing()]
            via = nxt_via[0].getID() if nxt_via and nxt_via[0].getID().startswith(":") else ""
    out.append(("", s, 0.0))  # sentinel: total loop length
    return out


def max_vehicles(ring_radius: float) -> int:
    """How many vehicles fit on a figure-eight of this radius (its six edges: 4r + 3*pi*r in all)."""
    room = ring_radius * (4 + 3 * math.pi) - 6 * (_VEH_LENGTH + 0.01)
    return max(0, int(room // (_VEH_LENGTH + _MIN_GAP)))


def _place(segments: list[tuple[str, float, float]], n: int) -> list[tuple[str, float]]:
    """Spread n vehicle fronts evenly on the loop, every car wholly on a normal edge.

    The phase of the even spacing is searched so that no front lands inside a junction or within a
    car length of an edge start; if no phase fits (dense traffic), the fronts are spread evenly over
    the usable part of each edge instead.
    """
    total = segments[-1][1]
    usable = [(eid, start + _VEH_LENGTH, start + length - 0.01) for eid, start, length in segments[:-1]]
    room = sum(hi - lo for _, lo, hi in usable)
    if n * (_VEH_LENGTH + _MIN_GAP) > room:
        raise ValueError(f"{n} vehicles do not fit on a {total:.0f} m figure-eight")

    def locate(x: float) -> tuple[str, float, float] | None:
        """(edge, departPos, margin to the usable range's ends) for loop position x, or None."""
        x %= total
        for eid, lo, hi in usable:
            if lo <= x <= hi:
                return eid, x - (lo - _VEH_LENGTH), min(x - lo, hi - x)
        return None

    spacing = total / n
    best: tuple[float, list[tuple[str, float]]] | None = None
    for k in range(max(1, int(spacing / 0.05))):
        hits = [locate(k * 0.05 + i * spacing) for i in range(n)]
        if all(hits):
            margin = min(h[2] for h in hits)
            if best is None or margin > best[0]:
                best = (margin, [(h[0], h[1]) for h in hits])
    if best is not None:
        return best[1]
    placed, acc = [], 0.0
    for eid, lo, hi in usable:  # even spacing over the concatenated usable ranges
        while len(placed) < n and len(placed) * room / n < acc + (hi - lo):
            placed.append((eid, len(placed) * room / n - acc + _VEH_LENGTH))
        acc += hi - lo
    return placed


def _write_routes(path: Path, placed: list[tuple[str, float]], agent_slots: set[int], speed: float) -> list[str]:
    """Write vTypes, the six rotation routes and one vehicle per slot; return the vehicle ids."""
    vtype = (
        'carFollowModel="IDM" accel="1.0" decel="1.5" emergencyDecel="9.0" tau="1.0" '
        f'minGap="{_MIN_GAP}" length="{_VEH_LENGTH}" delta="4" maxSpeed="{speed:.4f}" '
        'speedFactor="1.0" speedDev="0.0"'
    )
    lines = [
        "<routes>\n",
        f'    <vType id="cav" {vtype} color="1,0,0"/>\n',
        f'    <vType id="human" {vtype} color="1,1,1"/>\n',
    ]
    for k, eid in enumerate(LOOP):
        rot = LOOP[k:] + LOOP[:k]
        lines.append(f'    <route id="route_{eid}" edges="{" ".join(rot)}" repeat="1000"/>\n')
    ids = []
    for i, (eid, pos) in enumerate(placed):
        vid, typ = f"veh{i}", "cav" if i in agent_slots else "human"
        ids.append(vid)
        lines.append(
            f'    <vehicle id="{vid}" type="{typ}" route="route_{eid}" depart="0" '
            f'departLane="0" departPos="{pos:.3f}" departSpeed="0"/>\n'
        )
    lines.append("</routes>\n")
    path.write_text("".join(lines))
    return ids


def build_figure8(
    out_dir: Path,
    ring_radius: float = 30.0,
    speed_limit: float = 30.0,
    n_vehicles: int = 14,
    n_agents: int = 14,
    step_length: float = 0.1,
    seed: int = 0,
    agent_slots: tuple[int, ...] | None = None,
) -> Figure8Files:
    """Build (or reuse from out_dir) the figure-eight net and a routes file with n_vehicles evenly spread.

    veh0..veh{n-1} depart at t=0 with speed 0, in driving order: veh{i+1} is veh{i}'s leader and
    veh0 follows the last one (nothing overtakes on the one-lane loop). The vehicles at agent_slots
    (default: the first n_agents) are vType "cav", the rest "human"; both use SUMO's IDM. Files are rebuilt only
    when a parameter that shapes them changes (fig8.params.json); step_length and seed only go into the result.
    """
    if n_vehicles < 1 or not 0 <= n_agents <= n_vehicles:
        raise ValueError(f"need 1 <= n_vehicles and 0 <= n_agents <= n_vehicles, got {n_vehicles}, {n_agents}")
    slots = tuple(range(n_agents)) if agent_slots is None else tuple(sorted(set(agent_slots)))
    if len(slots) != n_agents or any(not 0 <= i < n_vehicles for i in slots):
        raise ValueError(f"agent_slots {agent_slots} must be {n_agents} distinct indices below {n_vehicles}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "version": _BUILD_VERSION,
        "ring_radius": ring_radius,
        "speed_limit": speed_limit,
        "n_vehicles": n_vehicles,
        "n_agents": n_agents,
        "agent_slots": list(slots),
    }
    net, routes, meta = out / "fig8.net.xml", out / "fig8.rou.xml", out / "fig8.params.json"
    cached = json.loads(meta.read_text()) if meta.exists() else None
    if cached is None or cached.get("params") != params or not (net.exists() and routes.exists()):
        meta.unlink(missing_ok=True)  # written last: a half-finished build is never reused
        nod, edg, con = _write_plain_xml(out, ring_radius, speed_limit)
        build_net(nod, edg, net, con)
        segments = _segments(net)
        placed = _place(segments, n_vehicles)
        ids = _write_routes(routes, placed, set(slots), speed_limit)
        start = {eid: s0 for eid, s0, _ in segments}
        cached = {
            "params": params,
            "vehicle_ids": ids,
            "loop_length": segments[-1][1],
            "start_positions": [start[eid] + pos for eid, pos in placed],
        }
        meta.write_text(json.dumps(cached, indent=1))
    ids = tuple(cached["vehicle_ids"])
    return Figure8Files(
        net=net,
        routes=routes,
        step_length=step_length,
        seed=seed,
        vehicle_ids=ids,
        agent_ids=tuple(ids[i] for i in slots),
        loop_length=cached["loop_length"],
        start_positions=tuple(cached["start_positions"]),
    )
