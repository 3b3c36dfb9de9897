"""Pure RSM-MASAC CAV environment maths: 6-d observation, shared reward, termination, action clip."""

from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple

import numpy as np

# RSM-MASAC paper, Table III (per scenario); normalised by the 30 m/s speed limit (docs/rsm_masac.md, R-A15).
# Below, "Sec." and "Table" are the paper's, R-A labels docs/rsm_masac.md's.
ACTION_BOUNDS = {"figure8": 3.0, "merge": 1.5}
HORIZONS = {"figure8": 1500, "merge": 750}
SPEED_LIMIT = 30.0

# (route position in metres, speed in m/s); None means "no such vehicle".
VehState = Optional[Tuple[float, float]]


def _norm(value: float, scale: float) -> float:
    """value / scale clipped to [0, 1] (the normalised observation entries live in [0, 1])."""
    return float(min(1.0, max(0.0, float(value) / scale)))


def cav_observation(
    ego: Tuple[float, float], follower: VehState, leader: VehState, *, net_length: float, max_speed: float = SPEED_LIMIT
) -> np.ndarray:
    """The 6-d observation of one CAV (Sec. VI-A; the reference code's `modify()`).

    Order [x_self, v_self, x_behind, v_behind, x_ahead, v_ahead] (float64, shape (6,)):
    - positions are the 1-D route position divided by the network length ``net_length`` (as the reference code);
    - speeds are divided by the network max speed ``max_speed`` (30 m/s, R-A15);
    - a missing follower or leader (``None``) contributes zeros for both its entries (R-A16,
      as Flow's MergePOEnv);
    - each entry is clipped to [0, 1], the normalised range (not in the paper: guards a speedFactor > 1
      or a position at the loop end).

    On the figure-eight the caller supplies the adjacent vehicles in insertion order, ring-wrapped
    (as the reference code); HDVs count as neighbours.
    """
    if not net_length > 0 or not max_speed > 0:
        raise ValueError(f"net_length and max_speed must be > 0, got {net_length}, {max_speed}")
    out = np.zeros(6, dtype=np.float64)
    for k, veh in enumerate((ego, follower, leader)):
        if veh is None:
            if k == 0:
                raise ValueError("the ego vehicle's state is required")
            continue  # zeros: R-A16
        x, v = veh
        out[2 * k] = _norm(x, net_length)
        out[2 * k + 1] = _norm(v, max_speed)
    return out


def shared_reward(speeds: Sequence[float], target_speed: float = SPEED_LIMIT, collided: bool = False) -> float:
    """The shared team reward of one step (Sec. VI-A; the reference code's `compute_reward`).

    mean(speeds of ALL vehicles, HDVs included) / target_speed, where target_speed is the network
    max speed used for normalisation (30 m/s, R-A15 — not the 20 m/s desired velocity).
    It is 0 on a collision step, with no vehicles, or if any speed is below -100 (the code's
    fail checks). The same scalar goes to every agent.
    """
    if not target_speed > 0:
        raise ValueError(f"target_speed must be > 0, got {target_speed}")
    v = np.asarray(speeds, dtype=np.float64).reshape(-1)
    if collided or v.size == 0 or bool(np.any(v < -100)):
        return 0.0
    return float(v.mean() / target_speed)


def terminated(step: int, horizon: int, collided: bool, *, end_on_collision: bool = True) -> bool:
    """Whether the epoch ends after ``step`` (1-based count of steps taken) (Sec. VI-A).

    True once a collision occurred on this step (the paper, and the default: R-A14;
    ``end_on_collision=False`` is the reference-code behaviour) or when ``step`` reaches the horizon
    T (1500 figure-eight, 750 merge; Table III). The episode score stays Σ r_t / T.
    """
    if horizon < 1:
        raise ValueError(f"horizon must be >= 1, got {horizon}")
    return bool((collided and end_on_collision) or step >= horizon)


def clip_action(a: float, bound: float) -> float:
    """Clamp an acceleration to [-bound, bound] (Sec. VI-A; bound 3 figure-eight, 1.5 merge).

    A NaN action raises ValueError rather than being passed to the simulator.
    """
    if not bound > 0:
        raise ValueError(f"bound must be > 0, got {bound}")
    a = float(a)
    if math.isnan(a):
        raise ValueError("action is NaN")
    return min(bound, max(-bound, a))
