"""Who is where on the warehouse floor: node ids, robot indices and radio positions around the dispatcher."""

from __future__ import annotations

import numpy as np

from . import streams

DISPATCHER = "dispatcher"
_PREFIX = "robot"


def robot_id(i: int) -> str:
    """Node id of robot i."""
    return f"{_PREFIX}{i:04d}"


def robot_index(node_id: str) -> int:
    """Index of a robot from its node id (ValueError if it is not exactly a robot id)."""
    i = robot_index_or_none(node_id)
    if i is None:
        raise ValueError(f"{node_id!r} is not a robot id (robotNNNN)")
    return i


def robot_index_or_none(node_id: str) -> int | None:
    """Index of a robot from its node id, None for any other id."""
    digits = node_id[len(_PREFIX) :]
    if not node_id.startswith(_PREFIX) or not digits.isdigit() or robot_id(int(digits)) != node_id:
        return None
    return int(digits)


def positions(n: int, seed: int, ring_radius_m: float, ring_width_m: float) -> tuple[list[str], np.ndarray]:
    """The dispatcher at the centre; robot i at a fixed radius within the ring of zones.

    A robot's zone sets only its angle on the ring, and its distance to the centre (the one link
    that matters: robots talk only to the dispatcher) is fixed per robot, so these positions hold
    for the whole run.
    """
    i = np.arange(n)
    radius = ring_radius_m + ring_width_m * (streams.uniforms(seed, streams.LAYOUT, 0, i, 0) - 0.5)
    angle = 2 * np.pi * i / max(n, 1)
    xy = np.vstack([[0.0, 0.0], np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])])
    return [DISPATCHER, *(robot_id(j) for j in i)], xy
