"""RELED routing-env pure functions: junction options, the 2*m_out+2 observation, action mask, Eq. 32 reward
(RELED paper, Sec. IV-A3 to IV-A5, Table I; docs/reled.md, RL-4 to RL-6, whose labels are cited below)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence, Union

import numpy as np
import sumolib

M_OUT = 4  # RELED paper, Sec. IV-A5: the maximum number of outgoing edges at any junction, both maps
T_MAX = 2400.0  # RELED paper, Sec. IV-A1: episode limit in sim steps; 1 s steps (RL-2) make it seconds
OMEGA_D = 1.0  # RELED paper, Sec. IV-A3: omega_d = 1
TERMINAL_FRACTION = 0.1  # RELED paper, Sec. IV-A3: R_term = 0.1 * T_max
R_TERM = TERMINAL_FRACTION * T_MAX  # = 240 (RL-6)
PAD = -1.0  # RELED paper, Sec. IV-A5: missing option -> -1 (score_j = -1 and end_j = -1, RL-4)
SCORE_MIN = 1e-3  # RL-4: clip the score to [1e-3, 1]


@dataclass(frozen=True)
class Option:
    """One outgoing edge of the junction the vehicle is approaching."""

    edge_id: str
    end_node: str  # SUMO id of the edge's to-node
    end_junction: int  # index of end_node in junction_ids(net) (RL-4)
    connected: bool  # a SUMO connection leads from the incoming edge to this edge (RL-5)


@dataclass(frozen=True)
class EdgeStats:
    """What the edge score needs: length (m), speed limit (m/s), estimated travel time (s)."""

    length: float
    max_speed: float
    travel_time: float  # RL-4: traci.edge.getTraveltime(e) = length / current mean speed


def junction_ids(net: sumolib.net.Net) -> list[str]:
    """All node ids of the net, sorted: junction k of the observation is junction_ids(net)[k]
    (RL-4)."""
    return sorted(node.getID() for node in net.getNodes())


def junction_index(net: sumolib.net.Net) -> dict[str, int]:
    """SUMO node id -> integer junction ID used in the observation (index into junction_ids(net))."""
    return {nid: k for k, nid in enumerate(junction_ids(net))}


def outgoing_options(
    net: sumolib.net.Net, edge_id: str, m_out: int = M_OUT, vclass: Optional[str] = "passenger"
) -> list[Optional[Option]]:
    """The m_out action slots at the junction ending edge_id: its outgoing edges, then None padding.

    Slots hold every outgoing (non-internal) edge of the to-node of edge_id that allows vclass
    (vclass=None: all), sorted by edge ID (RL-4); the observation and the action index use this same
    order. Option.connected says whether the net has a connection from edge_id to that edge (RL-5:
    follow the SUMO net's connections; U-turns count iff the net has them).
    Raises ValueError if the junction has more than m_out such edges (Sec. IV-A5: m_out is the maximum).
    """
    if m_out < 1:
        raise ValueError(f"m_out must be >= 1, got {m_out}")
    edge = net.getEdge(edge_id)
    node = edge.getToNode()
    index = junction_index(net)
    reachable = {e.getID() for e in edge.getOutgoing()}
    outs = sorted((e for e in node.getOutgoing() if vclass is None or e.allows(vclass)), key=lambda e: e.getID())
    if len(outs) > m_out:
        raise ValueError(f"junction {node.getID()} has {len(outs)} outgoing edges > m_out = {m_out}")
    options: list[Optional[Option]] = [
        Option(
            edge_id=e.getID(),
            end_node=e.getToNode().getID(),
            end_junction=index[e.getToNode().getID()],
            connected=e.getID() in reachable,
        )
        for e in outs
    ]
    return options + [None] * (m_out - len(options))


def edge_score(length: float, max_speed: float, travel_time: float) -> float:
    """score = (length / max_speed) / travel_time, clipped to [1e-3, 1] (RELED paper, Sec. IV-A4; RL-4).

    1 means free flow, lower means congested. A travel time that is not positive counts as free
    flow (1.0); an infinite/NaN one (a standing queue) gives the floor 1e-3.
    """
    if length < 0 or max_speed <= 0:
        raise ValueError(f"need length >= 0 and max_speed > 0, got {length}, {max_speed}")
    if math.isnan(travel_time) or math.isinf(travel_time):
        return SCORE_MIN
    if travel_time <= 0:
        return 1.0
    return float(min(1.0, max(SCORE_MIN, (length / max_speed) / travel_time)))


StatsLike = Union[EdgeStats, Sequence[float]]


def observation(
    options: Sequence[Optional[Option]],
    edge_stats: Mapping[str, StatsLike],
    position: int,
    destination: int,
    m_out: int = M_OUT,
) -> np.ndarray:
    """The 2*m_out+2 observation of the RELED paper, Sec. IV-A4 and Table I (element order: RL-4), float32.

    [0] position: the current junction ID (the to-node of the current edge), [1] destination:
    the destination junction ID -- both integer indices from junction_index(net) (RL-4:
    the env emits raw indices; normalising them is the policy preprocessor's job).
    [2 .. 2+m_out-1] score_j of slot j (edge_score of edge_stats[edge_id], given as EdgeStats or
    a (length, max_speed, travel_time) triple); [2+m_out .. 2*m_out+1] end-junction ID of slot j.
    A missing slot (None) gets -1 in both places. A present but unconnected slot is observed
    normally; only action_mask hides it.
    """
    if len(options) != m_out:
        raise ValueError(f"expected {m_out} option slots, got {len(options)}")
    obs = np.full(2 * m_out + 2, PAD, dtype=np.float32)
    obs[0], obs[1] = position, destination
    for j, opt in enumerate(options):
        if opt is None:
            continue
        st = edge_stats[opt.edge_id]
        length, max_speed, tt = (st.length, st.max_speed, st.travel_time) if isinstance(st, EdgeStats) else st
        obs[2 + j] = edge_score(length, max_speed, tt)
        obs[2 + m_out + j] = opt.end_junction
    return obs


def action_mask(options: Sequence[Optional[Option]]) -> np.ndarray:
    """Boolean mask over the m_out actions: True = selectable (RL-5).

    False for -1 padding slots and for edges with no connection from the incoming edge;
    the policy sets the logits of False entries to -inf.
    """
    return np.array([opt is not None and opt.connected for opt in options], dtype=bool)


def distance(a: Sequence[float], b: Sequence[float]) -> float:
    """Euclidean (straight-line) distance in metres, the d of Eq. 32 (RELED paper, Sec. IV-A3)."""
    return float(math.hypot(a[0] - b[0], a[1] - b[1]))


def step_reward(
    t_prev: float,
    t_now: float,
    d_prev: float,
    d_now: float,
    arrived: bool = False,
    *,
    omega_d: float = OMEGA_D,
    t_max: float = T_MAX,
    terminal_fraction: float = TERMINAL_FRACTION,
) -> float:
    """Eq. 32: R_k = -(t_k - t_{k-1}) + omega_d * (d_{k-1} - d_k), plus R_term = 0.1 * T_max if arrived.

    RELED paper, Sec. IV-A3: t in sim seconds (the times of decisions k-1 and k, or of arrival/truncation,
    RL-2), d the straight-line distance in metres from the vehicle to its destination;
    omega_d = 1 and T_max = 2400 give R_term = 240. No further normalisation (RL-6): the paper's rewards fit
    the raw return -(travel time) + d_0 + 240.
    """
    if t_now < t_prev:
        raise ValueError(f"time went backwards: {t_prev} -> {t_now}")
    reward = -(t_now - t_prev) + omega_d * (d_prev - d_now)
    if arrived:
        reward += terminal_fraction * t_max
    return float(reward)
