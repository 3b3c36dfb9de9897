"""GESA's 8 standard phases (eSpark.md §2.3) mapped onto any SUMO traffic light by arm and turn of its links."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import sumolib

#: GESA order: A..H. "WT" = vehicles arriving from the west arm going through, "EL" = from the east arm turning left.
PHASES = ("WT-ET", "EL-ET", "WL-WT", "EL-WL", "NT-ST", "SL-ST", "NT-NL", "NL-SL")
#: The 8 movements of the observation, in GESA's order: north, west, south, east x (left, through).
MOVEMENTS = ("NL", "NT", "WL", "WT", "SL", "ST", "EL", "ET")
ARMS = {"E": 0.0, "N": 90.0, "W": 180.0, "S": 270.0}  # bearing (degrees) from the junction to each arm
_TURN = {"s": "T", "l": "L", "L": "L", "r": "R", "R": "R", "t": "U", "T": "U"}  # SUMO link direction -> turn
_BACK_M = 25.0  # how far back along an incoming edge its approach bearing is taken


@dataclass(frozen=True)
class Link:
    """One SUMO connection controlled by a traffic light: its signal index, incoming lane, arm and turn."""

    index: int
    in_lane: str
    arm: str  # "N", "E", "S" or "W"
    turn: str  # "L" left, "T" through, "R" right, "U" U-turn

    @property
    def movement(self) -> str | None:
        """"WT", "EL", ... for through and left turns; None for right and U-turns (not part of the 8 movements)."""
        return self.arm + self.turn if self.turn in "LT" else None


def approach_bearing(shape: list[tuple[float, float]]) -> float:
    """Bearing (degrees, 0 = east, counter-clockwise) from the end of an incoming edge back along its last _BACK_M m."""
    x1, y1 = shape[-1]
    x0, y0, walked = x1, y1, 0.0
    for (xa, ya), (xb, yb) in zip(reversed(shape[:-1]), reversed(shape[1:])):
        x0, y0 = xa, ya
        walked += math.dist((xa, ya), (xb, yb))
        if walked >= _BACK_M:
            break
    return math.degrees(math.atan2(y0 - y1, x0 - x1)) % 360.0


def _gap(a: float, b: float) -> float:
    return abs((a - b + 180.0) % 360.0 - 180.0)


def assign_arms(bearings: dict[str, float]) -> dict[str, str]:
    """Give each incoming edge a compass arm: distinct arms with the least total angular error for up to four
    edges (so a skewed junction still gets N/E/S/W), the nearest arm for each edge beyond four."""
    edges = sorted(bearings)
    if len(edges) > len(ARMS):
        return {e: min(ARMS, key=lambda a: _gap(bearings[e], ARMS[a])) for e in edges}
    best = min(itertools.permutations(ARMS, len(edges)),
               key=lambda arms: sum(_gap(bearings[e], ARMS[a]) for e, a in zip(edges, arms)))
    return dict(zip(edges, best))


def tls_links(net: sumolib.net.Net, tls_id: str) -> list[Link]:
    """The links of traffic light tls_id (sumolib net read with withPrograms or not), sorted by signal index."""
    conns = [c for node in net.getNodes() for e in node.getIncoming() for lane in e.getLanes()
             for c in lane.getOutgoing() if c.getTLSID() == tls_id]
    if not conns:
        raise ValueError(f"traffic light {tls_id!r} controls no connections in this net")
    bearings = {c.getFrom().getID(): approach_bearing(c.getFrom().getShape()) for c in conns}
    arms = assign_arms(bearings)
    return sorted((Link(c.getTLLinkIndex(), c.getFromLane().getID(), arms[c.getFrom().getID()],
                        _TURN.get(c.getDirection(), "T")) for c in conns), key=lambda lk: (lk.index, lk.in_lane))


def phase_movements(phase: int) -> tuple[str, str]:
    return tuple(PHASES[phase].split("-"))  # type: ignore[return-value]


def phase_mask(links: list[Link]) -> np.ndarray:
    """(8,) bool: a phase exists unless neither of its two movements exists here (GESA's unava_index rule)."""
    present = {lk.movement for lk in links}
    return np.array([any(m in present for m in phase_movements(p)) for p in range(len(PHASES))], dtype=bool)


def n_signals(links: list[Link]) -> int:
    return max(lk.index for lk in links) + 1


def phase_state(links: list[Link], phase: int) -> str:
    """SUMO red/yellow/green state of standard phase `phase`.

    A signal index is 'G' if one of its links makes a movement of the phase; otherwise 'g' (green, yield) if
    all its links turn right or make a U-turn whose arm's left turn is in the phase (right turns are always
    allowed, as in GESA); otherwise 'r'. Indices that several links share are green only if all are.
    """
    moves = set(phase_movements(phase))
    state = ["r"] * n_signals(links)
    by_index: dict[int, list[Link]] = {}
    for lk in links:
        by_index.setdefault(lk.index, []).append(lk)
    for i, group in by_index.items():
        ok = [lk.movement in moves or lk.turn == "R" or (lk.turn == "U" and lk.arm + "L" in moves) for lk in group]
        if all(ok):
            state[i] = "G" if any(lk.movement in moves for lk in group) else "g"
    return "".join(state)


def yellow_state(current: str, nxt: str) -> str:
    """Transition from state current to nxt: green links that turn red show 'y', links green in both stay green."""
    return "".join(("y" if n in "rs" else c) if c in "Gg" else "r" for c, n in zip(current, nxt))


def movement_lanes(links: list[Link]) -> dict[str, tuple[str, ...]]:
    """For each of MOVEMENTS, the incoming lanes with a link of that movement (empty where it does not exist)."""
    return {m: tuple(sorted({lk.in_lane for lk in links if lk.movement == m})) for m in MOVEMENTS}
