"""The four RESCO signal-control maps of eSpark (eSpark paper, App. C.2, Table 11), located in the sumo-rl wheel."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..routing.maps import resco_dir


@dataclass(frozen=True)
class SignalMap:
    """A RESCO map: net and route files, and the simulated time window [begin_s, end_s) RESCO runs it over."""

    name: str  # RESCO folder name, e.g. "grid4x4"
    title: str  # the paper's name, e.g. "Grid 4x4"
    net: Path
    routes: tuple[Path, ...]
    begin_s: float
    end_s: float
    count_undeparted: bool = False  # the paper's delay counts vehicles that never entered (its code: these two maps)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.begin_s


# name -> (paper title, route file names, begin, end); times as in the maps' .sumocfg and sumo-rl's resco_envs
_MAPS = {
    "grid4x4": ("Grid 4x4", ("grid4x4_1.rou.xml",), 0.0, 3600.0),
    "arterial4x4": ("Arterial 4x4", ("arterial4x4_1.rou.xml",), 0.0, 3600.0),
    "cologne8": ("Cologne8", ("cologne8.rou.xml",), 25200.0, 28800.0),
    "ingolstadt21": ("Ingolstadt21", ("ingolstadt21.rou.xml",), 57600.0, 61200.0),
}
SIGNAL_MAPS = tuple(_MAPS)


def signal_map(name: str) -> SignalMap:
    """One of SIGNAL_MAPS by RESCO name (or paper title, e.g. "Grid 4x4")."""
    key = {v[0].lower(): k for k, v in _MAPS.items()}.get(name.lower(), name)
    if key not in _MAPS:
        raise ValueError(f"unknown signal map {name!r}: expected one of {', '.join(SIGNAL_MAPS)}")
    title, routes, begin, end = _MAPS[key]
    folder = resco_dir() / key
    m = SignalMap(
        key,
        title,
        folder / f"{key}.net.xml",
        tuple(folder / r for r in routes),
        begin,
        end,
        key in ("cologne8", "ingolstadt21"),
    )
    missing = [p for p in (m.net, *m.routes) if not p.exists()]
    if missing:
        raise FileNotFoundError(f"RESCO map {key}: missing {', '.join(map(str, missing))} (sumo-rl==1.4.5 expected)")
    return m


def controlled_lights(net, which: str = "all") -> list[str]:
    """The traffic lights the agents control, sorted: every light of the net ("all"), or only those whose id is a
    junction id ("junctions", GESA's selection: on Ingolstadt21 six joined lights keep their SUMO programs)."""
    if which not in ("all", "junctions"):
        raise ValueError(f"lights must be 'all' or 'junctions', got {which!r}")
    ids = sorted(t.getID() for t in net.getTrafficLights())
    return [t for t in ids if which == "all" or net.hasNode(t)]
