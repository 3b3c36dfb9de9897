"""Flow-style highway on-ramp ("Merge", RSM-MASAC paper, Sec. VI-A) built from plain XML with netconvert.

Geometry follows flow-project/flow ``flow/networks/merge.py`` (``MergeNetwork``), one lane everywhere:

- main road: ``inflow_highway`` (inflow_length, Flow's INFLOW_EDGE_LEN = 100 m) -> ``left`` (pre_merge, 200 m;
  500 m in Flow's merge0 benchmark) -> junction ``center`` -> ``center`` (post_merge, 100 m) -> network end;
- on-ramp: ``inflow_merge`` (inflow_length) -> ``bottom`` (merge_length, 100 m, at 45 degrees) -> junction
  ``center``, where it joins the main road; both routes share the ``center`` edge after the merge point.

Flow gives every edge the same (default) priority and lets netconvert pick the main direction from the
geometry; here the main road gets priority 2 and the ramp 1 explicitly, so ramp vehicles yield at the merge.

Inflows (RSM-MASAC paper, Sec. VI-A, Table III; departure speeds of Flow's merge benchmarks): 2200 veh/h on the main
road (departSpeed 10) and 100 veh/h on the ramp (departSpeed 7.5), as SUMO ``<flow>`` elements named ``main`` and
``ramp`` (vehicle ids ``main.0``, ``main.1``, ... in insertion order). ``departures`` picks how they are spaced:

- ``"fixed"`` (default): ``vehsPerHour``, equal headways as Flow's inflows. No randomness at all: the
  traffic is the same for every seed (as in Flow's merge, whose IDM humans have no noise in SUMO);
  the realised main rate is the configured one (measured: 65 vehicles in the first 105 s).
- ``"poisson"``: ``period="exp(rate)"``, exponential headways with the configured mean rate drawn from
  SUMO's RNG, so each ``--seed`` gives a different, reproducible arrival sequence. 2200 veh/h is close to
  what one lane accepts at departSpeed 10, so bunched arrivals wait in SUMO's insertion queue and the
  realised main rate falls short (measured: 55-65 vehicles in 105 s, up to 15 waiting).

Both vehicle types use SUMO's IDM with the figure-eight's parameters (accel 1, decel 1.5, tau 1, minGap 2.5,
length 5, delta 4, maxSpeed = speed limit). The CAVs are ordinary ``human`` vehicles taken over by
``SumoSim.apply_acceleration`` once the environment binds them to an agent slot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import sumolib

from ..sumo.figure8 import build_net

MAIN_ROUTE = ("inflow_highway", "left", "center")
RAMP_ROUTE = ("inflow_merge", "bottom", "center")
VEH_LENGTH = 5.0
_MIN_GAP = 2.5
_BUILD_VERSION = 1  # bump when the generated files change for the same parameters
_DEPARTURES = ("poisson", "fixed")


@dataclass(frozen=True)
class MergeFiles:
    """Paths of a built merge scenario, route geometry, and the SUMO arguments to run it (no .sumocfg)."""

    net: Path
    routes: Path
    step_length: float
    seed: int
    main_length: float  # main route, start of inflow_highway to the end of center, internal lanes included
    ramp_length: float  # ramp route, start of inflow_merge to the end of center
    main_offsets: tuple[tuple[str, float], ...]  # (lane id, start offset on the main route), internal lanes too
    ramp_offsets: tuple[tuple[str, float], ...]

    @property
    def merge_shift(self) -> float:
        """Add to a ramp route position to get the main-road coordinate (both routes share the center edge)."""
        return dict(self.main_offsets)["center_0"] - dict(self.ramp_offsets)["center_0"]

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


def _write_plain_xml(
    out: Path, pre_merge: float, post_merge: float, merge_length: float, inflow_length: float, speed: float
) -> tuple[Path, Path]:
    """Write merge.{nod,edg}.xml with Flow MergeNetwork's node coordinates and edge lengths."""
    nod, edg = out / "merge.nod.xml", out / "merge.edg.xml"
    c, s = math.cos(math.pi / 4), math.sin(math.pi / 4)
    nodes = [
        ("inflow_highway", -inflow_length, 0.0, ""),
        ("left", 0.0, 0.0, ""),
        ("center", pre_merge, 0.0, ' radius="10"'),
        ("right", pre_merge + post_merge, 0.0, ""),
        ("inflow_merge", pre_merge - (merge_length + inflow_length) * c, -(merge_length + inflow_length) * s, ""),
        ("bottom", pre_merge - merge_length * c, -merge_length * s, ""),
    ]
    nod.write_text(
        "<nodes>\n"
        + "".join(f'    <node id="{n}" x="{x:.4f}" y="{y:.4f}" type="priority"{extra}/>\n' for n, x, y, extra in nodes)
        + "</nodes>\n"
    )
    edges = [  # id, from, to, priority, length
        ("inflow_highway", "inflow_highway", "left", 2, inflow_length),
        ("left", "left", "center", 2, pre_merge),
        ("center", "center", "right", 2, post_merge),
        ("inflow_merge", "inflow_merge", "bottom", 1, inflow_length),
        ("bottom", "bottom", "center", 1, merge_length),
    ]
    edg.write_text(
        "<edges>\n"
        + "".join(
            f'    <edge id="{e}" from="{a}" to="{b}" priority="{p}" numLanes="1" speed="{speed:.4f}" '
            f'length="{length:.4f}"/>\n'
            for e, a, b, p, length in edges
        )
        + "</edges>\n"
    )
    return nod, edg


def _route_offsets(net_file: Path, route: tuple[str, ...]) -> tuple[list[tuple[str, float]], float]:
    """(lane id, start offset) for each lane a vehicle on route drives through (internal lanes included),
    and the route's total length."""
    net = sumolib.net.readNet(str(net_file), withInternal=True)
    out, s = [], 0.0
    for k, eid in enumerate(route):
        lane = net.getEdge(eid).getLane(0)
        out.append((lane.getID(), s))
        s += lane.getLength()
        if k + 1 == len(route):
            break
        (conn,) = net.getEdge(eid).getConnections(net.getEdge(route[k + 1]))
        via = conn.getViaLaneID()
        while via:  # the junction may be split into several internal lanes: follow the chain
            ilane = net.getLane(via)
            out.append((via, s))
            s += ilane.getLength()
            nxt = [c.getToLane() for c in ilane.getOutgoing()]
            via = nxt[0].getID() if nxt and nxt[0].getID().startswith(":") else ""
    return out, s


def _write_routes(
    path: Path,
    speed: float,
    main_rate: float,
    ramp_rate: float,
    departures: str,
    main_depart_speed: float,
    ramp_depart_speed: float,
) -> None:
    vtype = (
        'carFollowModel="IDM" accel="1.0" decel="1.5" emergencyDecel="9.0" tau="1.0" '
        f'minGap="{_MIN_GAP}" length="{VEH_LENGTH}" delta="4" maxSpeed="{speed:.4f}" '
        'speedFactor="1.0" speedDev="0.0"'
    )

    def spacing(rate: float) -> str:
        return f'period="exp({rate / 3600:.10g})"' if departures == "poisson" else f'vehsPerHour="{rate:.10g}"'

    lines = [
        "<routes>\n",
        f'    <vType id="human" {vtype} color="1,1,1"/>\n',
        f'    <route id="main" edges="{" ".join(MAIN_ROUTE)}"/>\n',
        f'    <route id="ramp" edges="{" ".join(RAMP_ROUTE)}"/>\n',
    ]
    for fid, rate, dspeed in (("main", main_rate, main_depart_speed), ("ramp", ramp_rate, ramp_depart_speed)):
        if rate > 0:
            lines.append(
                f'    <flow id="{fid}" type="human" route="{fid}" begin="0" end="86400" {spacing(rate)} '
                f'departLane="free" departPos="base" departSpeed="{dspeed:.4f}"/>\n'
            )
    lines.append("</routes>\n")
    path.write_text("".join(lines))


def build_merge(
    out_dir: Path,
    pre_merge: float = 200.0,
    post_merge: float = 100.0,
    merge_length: float = 100.0,
    inflow_length: float = 100.0,
    speed_limit: float = 30.0,
    main_rate: float = 2200.0,
    ramp_rate: float = 100.0,
    main_depart_speed: float = 10.0,
    ramp_depart_speed: float = 7.5,
    departures: str = "fixed",
    step_length: float = 0.1,
    seed: int = 0,
) -> MergeFiles:
    """Build (or reuse from out_dir) the merge net and its inflow routes; rates in veh/h, lengths in m.

    Files are rebuilt only when a parameter that shapes them changes (merge.params.json, written last so a
    half-finished build is never reused); step_length and seed only go into the result (SUMO's --seed
    drives the Poisson departures).
    """
    if departures not in _DEPARTURES:
        raise ValueError(f"departures must be one of {_DEPARTURES}, not {departures!r}")
    if min(pre_merge, post_merge, merge_length, inflow_length) <= 0 or main_rate < 0 or ramp_rate < 0:
        raise ValueError("lengths must be > 0 and rates >= 0")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "version": _BUILD_VERSION,
        "pre_merge": pre_merge,
        "post_merge": post_merge,
        "merge_length": merge_length,
        "inflow_length": inflow_length,
        "speed_limit": speed_limit,
        "main_rate": main_rate,
        "ramp_rate": ramp_rate,
        "main_depart_speed": main_depart_speed,
        "ramp_depart_speed": ramp_depart_speed,
        "departures": departures,
    }
    net, routes, meta = out / "merge.net.xml", out / "merge.rou.xml", out / "merge.params.json"
    cached = json.loads(meta.read_text()) if meta.exists() else None
    if cached is None or cached.get("params") != params or not (net.exists() and routes.exists()):
        meta.unlink(missing_ok=True)
        nod, edg = _write_plain_xml(out, pre_merge, post_merge, merge_length, inflow_length, speed_limit)
        build_net(nod, edg, net)
        _write_routes(routes, speed_limit, main_rate, ramp_rate, departures, main_depart_speed, ramp_depart_speed)
        main_off, main_len = _route_offsets(net, MAIN_ROUTE)
        ramp_off, ramp_len = _route_offsets(net, RAMP_ROUTE)
        cached = {
            "params": params,
            "main_length": main_len,
            "ramp_length": ramp_len,
            "main_offsets": main_off,
            "ramp_offsets": ramp_off,
        }
        meta.write_text(json.dumps(cached, indent=1))
    return MergeFiles(
        net=net,
        routes=routes,
        step_length=step_length,
        seed=seed,
        main_length=cached["main_length"],
        ramp_length=cached["ramp_length"],
        main_offsets=tuple((k, v) for k, v in cached["main_offsets"]),
        ramp_offsets=tuple((k, v) for k, v in cached["ramp_offsets"]),
    )
