"""The event-driven routing environment on SUMO: 1 s ticks, a decision whenever an agent enters a road
(docs/reled.md, RL-2)."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np
import sumolib

from ..sumo.sim import sumo_binary
from .maps import Trip
from .observe import (
    M_OUT,
    TERMINAL_FRACTION,
    EdgeStats,
    Option,
    action_mask,
    distance,
    junction_index,
    observation,
    outgoing_options,
    step_reward,
)

if TYPE_CHECKING:
    from .sed.navigation import Navigator

log = logging.getLogger("scenarios.routing")

LOOKAHEAD_S = 1.5  # decide for a junction this many seconds of driving before reaching it, at the latest


@dataclass
class Decision:
    """An agent at a decision point: what it observes and which roads it may take."""

    agent: int
    edge: str  # the road it has just entered
    junction: int  # the junction that road ends at (observation index 0)
    obs: np.ndarray
    mask: np.ndarray
    options: list[Option | None]
    reward: float  # Eq. 32 for its previous decision (0 at the first)
    xy: tuple[float, float]  # coordinates of `junction`


@dataclass
class Ending:
    """An agent's episode ended: arrival, lost (SUMO removed it elsewhere) or truncation at t_max."""

    agent: int
    reward: float  # Eq. 32 for its last decision (with R_term on arrival)
    arrived: bool
    truncated: bool
    obs: np.ndarray | None = None  # truncation: the observation to bootstrap from
    mask: np.ndarray | None = None


@dataclass
class AgentState:
    """What the environment tracks per agent vehicle in one episode."""

    trip: Trip
    departed: bool = False
    finished: bool = False
    arrived: bool = False
    edge: str | None = None  # last normal edge seen
    decided_on: str | None = None  # the edge of its last decision
    bonus_at: int | None = None  # the second of arrival (where R_term belongs)
    route_end: str | None = None  # the last edge of its route (where SUMO will let it arrive)
    t_prev: float = 0.0  # time and distance at its last decision (Eq. 32)
    d_prev: float = 0.0
    d_last: float = 0.0  # distance at the last tick (per-second reward pieces, docs/reled.md RL-8)
    depart_t: float = 0.0
    end_t: float | None = None
    decisions: int = 0
    per_second: dict[int, float] = field(default_factory=dict)  # sim second -> r_s (docs/reled.md, RL-8)


class RoutingEnv:
    """One SUMO simulation per episode; agents are vehicles agent0..agent{n-1} added with their fixed trips."""

    def __init__(
        self,
        net_file: Path,
        routes_file: Path,
        trips: Sequence[Trip],
        t_max: float = 2400.0,
        time_to_teleport: float = 300.0,
        backend: str = "libsumo",
    ):
        self.net_file, self.routes_file = Path(net_file), Path(routes_file)
        self.net = sumolib.net.readNet(str(net_file), withInternal=False)
        self.index = junction_index(self.net)
        self.node_xy = {self.index[n.getID()]: n.getCoord() for n in self.net.getNodes()}
        self.trips, self.t_max, self.backend = list(trips), float(t_max), backend
        self.time_to_teleport = time_to_teleport
        self._options: dict[str, list[Option | None]] = {}
        self.api = None
        self.states: dict[int, AgentState] = {}
        self.t = 0.0
        self.teleports = 0

    # ------------------------------------------------------------------ life cycle
    def reset(self, seed: int) -> None:
        """Start a fresh episode: background traffic from the route file (its randomness from seed), agents added."""
        self.close()
        args = [
            "-n",
            str(self.net_file),
            "-r",
            str(self.routes_file),
            "--step-length",
            "1",
            "--seed",
            str(seed),
            "--time-to-teleport",
            repr(float(self.time_to_teleport)),
            "--no-step-log",
            "true",
            "--no-warnings",
            "true",
            "--random-depart-offset",
            "30",
        ]
        if self.backend == "libsumo":
            import libsumo

            libsumo.start(["sumo", *args])
            self.api = libsumo
        else:
            import traci

            label = f"routing{id(self)}"
            traci.start([sumo_binary(), *args], label=label)
            self.api = traci.getConnection(label)
        self.states = {}
        for trip in self.trips:
            vid, rid = f"agent{trip.agent}", f"route_agent{trip.agent}"
            self.api.route.add(rid, [trip.origin_edge])
            self.api.vehicle.add(vid, rid, depart=f"{trip.depart:.1f}", departLane="best", departSpeed="max")
            self.states[trip.agent] = AgentState(trip)
        self.t, self.teleports = 0.0, 0

    def close(self) -> None:
        if self.api is not None:
            with contextlib.suppress(Exception):
                self.api.close()
            self.api = None

    @property
    def done(self) -> bool:
        return self.t >= self.t_max or all(s.finished for s in self.states.values())

    # ------------------------------------------------------------------ one tick
    def tick(self) -> tuple[list[Decision], list[Ending]]:
        """Advance SUMO by one second; return the agents that must decide now and those whose episode ended."""
        api = self.api
        api.simulationStep()
        self.t = float(api.simulation.getTime())
        self.teleports += api.simulation.getStartingTeleportNumber()
        arrived = set(api.simulation.getArrivedIDList())
        present = set(api.vehicle.getIDList())
        decisions, endings = [], []
        for agent, s in self.states.items():
            if s.finished:
                continue
            vid = f"agent{agent}"
            if vid in arrived:
                endings.append(self._arrive(s))
                continue
            if vid not in present:
                continue
            x, y = api.vehicle.getPosition(vid)
            d = distance((x, y), self.node_xy[s.trip.destination_index])
            if not s.departed:
                s.departed, s.depart_t, s.t_prev, s.d_prev, s.d_last = True, self.t, self.t, d, d
            else:
                s.per_second[int(self.t)] = -1.0 + (s.d_last - d)
                s.d_last = d
            road = api.vehicle.getRoadID(vid)
            if road and not road.startswith(":"):
                s.edge = road
            decision = self._due(s, road, d) if self.t < self.t_max else None  # at the limit: truncation only
            if decision is not None:
                decisions.append(decision)
        if self.t >= self.t_max:
            endings += [self._truncate(s) for s in self.states.values() if not s.finished]
        return decisions, endings

    def follow_ups(self, agents) -> list[Decision]:
        """Decisions due again within the same tick: a road just chosen may itself end within LOOKAHEAD_S
        (chains of very short roads in real street networks)."""
        out = []
        for agent in agents:
            s = self.states[agent]
            vid = f"agent{agent}"
            if s.finished or self.t >= self.t_max or vid not in self.api.vehicle.getIDList():
                continue
            decision = self._due(s, self.api.vehicle.getRoadID(vid), s.d_last)
            if decision is not None:
                out.append(decision)
        return out

    def _due(self, s: AgentState, road: str, d: float) -> Decision | None:
        """The decision for the end of the vehicle's last route road, once it is on it or about to reach its end."""
        ahead = s.route_end or s.trip.origin_edge  # the road whose end junction is the next decision
        if ahead == s.decided_on or self.net.getEdge(ahead).getToNode().getID() == s.trip.destination:
            return None
        if road == ahead or self._near_end(f"agent{s.trip.agent}", ahead):
            return self._decide(s, ahead, d)
        return None

    def reward(self, t_prev: float, t_now: float, d_prev: float, d_now: float, arrived: bool = False) -> float:
        """Eq. 32 with R_term = 0.1 * this world's T_max."""
        return step_reward(t_prev, t_now, d_prev, d_now, arrived, t_max=self.t_max)

    def _near_end(self, vid: str, edge: str) -> bool:
        """Whether the vehicle reaches the end of `edge` (the last road of its route) within LOOKAHEAD_S: on a
        road shorter than a second's drive it would otherwise pass the junction, and leave the net, between
        two ticks; the decision for that junction is then taken just before the vehicle enters the road."""
        api = self.api
        left = api.vehicle.getDrivingDistance(vid, edge, self.net.getEdge(edge).getLength())
        speed = max(api.vehicle.getSpeed(vid), self.net.getEdge(edge).getSpeed())
        return 0 <= left <= speed * LOOKAHEAD_S

    def _decide(self, s: AgentState, road: str, d: float) -> Decision:
        reward = self.reward(s.t_prev, self.t, s.d_prev, d) if s.decisions else 0.0
        s.decided_on, s.t_prev, s.d_prev = road, self.t, d
        s.decisions += 1
        obs, mask, options = self.observe(road, s.trip.destination_index)
        junction = int(obs[0])
        return Decision(s.trip.agent, road, junction, obs, mask, options, reward, self.node_xy[junction])

    def _arrive(self, s: AgentState) -> Ending:
        """SUMO removed the vehicle: at its destination (the end of its route) or, lost, anywhere else."""
        last = s.route_end or s.edge or s.trip.origin_edge
        at_goal = self.net.getEdge(last).getToNode().getID() == s.trip.destination
        if at_goal:
            s.per_second[int(self.t)] = -1.0 + s.d_last  # the arrival bonus is kept apart (reward_series)
            s.bonus_at = int(self.t)
            reward = self.reward(s.t_prev, self.t, s.d_prev, 0.0, arrived=True)
        else:  # lost: as if it stood where it left until the episode's end (docs/reled.md, RL-5),
            # so leaving the net early never pays (IPPO learnt to exit through dead ends when it did)
            for sec in range(int(self.t), int(self.t_max) + 1):
                s.per_second[sec] = -1.0
            reward = self.reward(s.t_prev, self.t_max, s.d_prev, s.d_last)
        s.finished, s.arrived, s.end_t = True, at_goal, self.t
        if not at_goal:
            log.info("agent%d left the net at the end of %s, not at its destination", s.trip.agent, last)
        return Ending(s.trip.agent, reward, at_goal, truncated=False)

    def _truncate(self, s: AgentState) -> Ending:
        s.finished, s.end_t = True, self.t_max
        if not s.departed:
            return Ending(s.trip.agent, 0.0, False, truncated=True)
        reward = self.reward(s.t_prev, self.t, s.d_prev, s.d_last)
        road = s.edge or s.trip.origin_edge
        obs, mask, _ = self.observe(road, s.trip.destination_index)
        return Ending(s.trip.agent, reward, False, truncated=True, obs=obs, mask=mask)

    # ------------------------------------------------------------------ observations and actions
    def options(self, edge: str) -> list[Option | None]:
        if edge not in self._options:
            self._options[edge] = outgoing_options(self.net, edge, M_OUT)
        return self._options[edge]

    def observe(self, edge: str, destination: int) -> tuple[np.ndarray, np.ndarray, list[Option | None]]:
        """The 2*m_out+2 observation (live edge travel times) and the action mask at the end of edge."""
        options = self.options(edge)
        stats = {}
        for opt in options:
            if opt is not None:
                e = self.net.getEdge(opt.edge_id)
                stats[opt.edge_id] = EdgeStats(e.getLength(), e.getSpeed(), self.travel_time(opt.edge_id))
        position = self.index[self.net.getEdge(edge).getToNode().getID()]
        return observation(options, stats, position, destination), action_mask(options), options

    def travel_time(self, edge: str) -> float:
        """SUMO's current estimate: length / mean speed on the edge (free flow when empty)."""
        return float(self.api.edge.getTraveltime(edge))

    def apply(self, agent: int, edge: str, options: list[Option | None], action: int) -> bool:
        """Route agent from edge onto option `action`; False (and nothing changed) if that is not a road it may take."""
        if not 0 <= action < len(options) or options[action] is None or not options[action].connected:
            return False
        vid = f"agent{agent}"
        try:  # the route the vehicle still has to drive (it ends with `edge`), then the chosen road
            route = list(self.api.vehicle.getRoute(vid))[max(self.api.vehicle.getRouteIndex(vid), 0) :]
            if not route or route[-1] != edge:
                route = [edge]
            self.api.vehicle.setRoute(vid, route + [options[action].edge_id])
        except Exception as err:  # noqa: BLE001 - libsumo/traci raise their own exception types
            log.warning("agent%d: setRoute %s -> %s refused: %s", agent, edge, options[action].edge_id, err)
            return False
        self.states[agent].route_end = options[action].edge_id
        return True

    # ------------------------------------------------------------------ episode results
    def travel_times(self) -> dict[int, float]:
        """Arrival minus departure; T_max minus departure for vehicles that did not arrive (docs/reled.md, RL-6)."""
        out = {}
        for agent, s in self.states.items():
            start = s.depart_t if s.departed else s.trip.depart
            out[agent] = (s.end_t if s.arrived else self.t_max) - start
        return out

    def reward_series(self, include_terminal: bool = False) -> dict[int, np.ndarray]:
        """Per-agent per-second rewards on the shared clock (docs/reled.md, RL-8); NaN while an agent is off the road.

        Without include_terminal the arrival bonus is left out: it is what RVI (Eqs. 17-19) compares, and a +240
        spike would make the policy-only threshold max |r^{A_-j}| at least 240, far above anything driving
        can lose in a second, so no step would ever be flagged (a deviation from the literal Eq. 18)."""
        length = int(self.t_max) + 1
        out = {}
        for agent, s in self.states.items():
            series = np.full(length, np.nan)
            for sec, r in s.per_second.items():
                if sec < length:
                    series[sec] = r
            if include_terminal and s.bonus_at is not None and s.bonus_at < length:
                series[s.bonus_at] += TERMINAL_FRACTION * self.t_max
            out[agent] = series
        return out


def fallback_road(env: RoutingEnv, nav: Navigator, d: Decision) -> int:
    """No usable choice for decision d: the fastest road to the destination (or the first allowed one), applied."""
    dest = env.states[d.agent].trip.destination_index
    action = nav.action_for(d.edge, dest, "shortest_time", env.travel_time)
    if action is None or not env.apply(d.agent, d.edge, d.options, action):
        allowed = np.flatnonzero(d.mask)
        action = int(allowed[0]) if len(allowed) else 0
        env.apply(d.agent, d.edge, d.options, action)
    return action
