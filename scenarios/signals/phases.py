"""GESA's 8 standard phases (eSpark paper, App. C.2) mapped onto any SUMO traffic light by arm and turn of its links.

Movements are lane groups as in GESA (the reference implementation eSpark's setup follows; its
intersection.py): an incoming lane with a straight link is a through lane with all its links, a lane with
no straight link but a left turn (or only a U-turn) is a left lane, right-only lanes are no movement. The
older per-link grouping (each link its own turn) stays as `group_by="link"`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, replace

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
    out_lane: str = ""
    group: str | None = None  # the movement ("WT", "EL", ...) this link is green with; None: right turns

    @property
    def movement(self) -> str | None:
        """ "WT", "EL", ... for through and left turns; None for right and U-turns (not part of the 8 movements)."""
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
    best = min(
        itertools.permutations(ARMS, len(edges)),
        key=lambda arms: sum(_gap(bearings[e], ARMS[a]) for e, a in zip(edges, arms)),
    )
    return dict(zip(edges, best))


def tls_links(net: sumolib.net.Net, tls_id: str, group_by: str = "lane") -> list[Link]:
    """The links of traffic light tls_id (sumolib net read with withPrograms or not), sorted by signal index,
    each with its movement group (`group_lanes`)."""
    conns = [
        c
        for node in net.getNodes()
        for e in node.getIncoming()
        for lane in e.getLanes()
        for c in lane.getOutgoing()
        if c.getTLSID() == tls_id
    ]
    if not conns:
        raise ValueError(f"traffic light {tls_id!r} controls no connections in this net")
    bearings = {c.getFrom().getID(): approach_bearing(c.getFrom().getShape()) for c in conns}
    arms = assign_arms(bearings)
    links = [
        Link(
            c.getTLLinkIndex(),
            c.getFromLane().getID(),
            arms[c.getFrom().getID()],
            _TURN.get(c.getDirection(), "T"),
            c.getToLane().getID(),
        )
        for c in conns
    ]
    return sorted(group_lanes(links, group_by), key=lambda lk: (lk.index, lk.in_lane))


def group_lanes(links: list[Link], group_by: str = "lane") -> list[Link]:
    """Set each link's movement group. "lane" (GESA): a lane with a through link groups all its links as the
    arm's through movement; else a lane with a left link, or with nothing but U-turns, is the arm's left
    movement; right-only lanes have none. "link": each through or left link is its own turn's movement, and a
    U-turn goes with its arm's left turn (the project's first mapping)."""
    if group_by not in ("lane", "link"):
        raise ValueError(f"group_by must be 'lane' or 'link', got {group_by!r}")
    turns: dict[str, set[str]] = {}
    for lk in links:
        turns.setdefault(lk.in_lane, set()).add(lk.turn)
    out = []
    for lk in links:
        if group_by == "link":
            group = lk.movement or (lk.arm + "L" if lk.turn == "U" else None)
        else:
            t = turns[lk.in_lane]
            group = lk.arm + "T" if "T" in t else lk.arm + "L" if "L" in t or t == {"U"} else None
        out.append(replace(lk, group=None if lk.turn == "R" else group))
    return out


def phase_movements(phase: int) -> tuple[str, str]:
    return tuple(PHASES[phase].split("-"))  # type: ignore[return-value]


def phase_mask(links: list[Link]) -> np.ndarray:
    """(8,) bool: a phase exists unless neither of its two movements exists here (GESA's unava_index rule)."""
    present = {lk.group for lk in links}
    return np.array([any(m in present for m in phase_movements(p)) for p in range(len(PHASES))], dtype=bool)


def n_signals(links: list[Link]) -> int:
    return max(lk.index for lk in links) + 1


def phase_state(links: list[Link], phase: int) -> str:
    """SUMO red/yellow/green state of standard phase `phase`.

    A signal index is 'G' if one of its links is in a movement group of the phase; otherwise 'g' (green, yield)
    if all its links turn right (right turns are always allowed, as in GESA); otherwise 'r'. Indices that
    several links share are green only if all are.
    """
    moves = set(phase_movements(phase))
    state = ["r"] * n_signals(links)
    for i, group in _by_index(links).items():
        if all(lk.group in moves or lk.turn == "R" for lk in group):
            state[i] = "G" if any(lk.group in moves for lk in group) else "g"
    return "".join(state)


def _by_index(links: list[Link]) -> dict[int, list[Link]]:
    by_index: dict[int, list[Link]] = {}
    for lk in links:
        by_index.setdefault(lk.index, []).append(lk)
    return by_index


def yellow_state(links: list[Link], phase: int) -> str:
    """GESA's yellow after phase `phase`: every green signal of the phase shows 'y' (also those green in the next
    phase; no all-red), except right-turn-only signals, which stay 'g'."""
    right = {i for i, group in _by_index(links).items() if all(lk.turn == "R" for lk in group)}
    return "".join(
        "g" if i in right and c in "Gg" else "y" if c in "Gg" else "r" for i, c in enumerate(phase_state(links, phase))
    )


def movement_lanes(links: list[Link]) -> dict[str, tuple[str, ...]]:
    """For each of MOVEMENTS, the incoming lanes of that movement group (empty where it does not exist)."""
    return {m: tuple(sorted({lk.in_lane for lk in links if lk.group == m})) for m in MOVEMENTS}


def phase_lanes(links: list[Link], phase: int) -> tuple[set[str], set[str]]:
    """The incoming lanes of the phase's two movement groups and the outgoing lanes their links lead to."""
    moves = set(phase_movements(phase))
    grouped = [lk for lk in links if lk.group in moves]
    return {lk.in_lane for lk in grouped}, {lk.out_lane for lk in grouped}
