"""The episodic CAV environment a world process drives: the interface, and the RSM-MASAC figure-eight."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..sumo.figure8 import build_figure8
from ..sumo.sim import OBEY_SAFE_SPEED
from .maths import cav_observation, clip_action, shared_reward

#: The figure-eight's vehicle order in the reference code: H, RL, H, RL x4, H, RL x3, H, RL, H.
PAPER_CAV_SLOTS = (1, 3, 4, 5, 6, 8, 9, 10, 12)


class CavEnv(Protocol):
    """What the CAV world needs from a scenario. Agents are fixed node ids ("slots"); on a scenario
    where vehicles come and go, a slot is bound to one vehicle at a time and is idle otherwise."""

    agent_ids: tuple[str, ...]
    horizon: int
    action_bound: float

    def reset(self, episode: int) -> None:
        """Start the simulation of one episode (seeded by the run seed and the episode)."""

    def step(self, actions: dict[str, float]) -> None:
        """Apply the accelerations of the active agents, then advance one simulation step."""

    def active(self) -> list[str]:
        """Agents bound to a vehicle in the network now (they observe, act and communicate)."""

    def observations(self) -> dict[str, np.ndarray]:
        """The 6-d observation of each active agent (RSM-MASAC paper, Sec. VI-A)."""

    def reward(self) -> float:
        """The shared reward of the last step: normalised mean speed, 0 on a collision step."""

    def collided(self) -> bool:
        """Whether a collision happened in the last step."""

    def positions(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(node ids, xy, speed) of the active agents, for the radio medium."""

    def mean_speed(self) -> float:
        """Mean speed (m/s) of every vehicle in the network."""

    def close(self) -> None:
        """Stop the simulation."""


class Figure8CavEnv:
    """14 vehicles on the figure-eight, 9 of them CAVs at the reference code's slots (RSM-MASAC paper, Sec. VI-A).

    Route positions are each vehicle's depart position plus its odometer, modulo the loop length;
    the follower and leader are the neighbours in insertion order, ring-wrapped (nothing overtakes).
    """

    def __init__(
        self,
        net_dir: Path,
        *,
        vehicles: int = 14,
        agents: int = 9,
        ring_radius: float = 30.0,
        speed_limit: float = 30.0,
        step_length: float = 0.1,
        horizon: int = 1500,
        action_bound: float = 3.0,
        seed: int = 0,
        backend: str = "libsumo",
        paper_slots: bool = True,
    ):
        slots = PAPER_CAV_SLOTS if paper_slots and (vehicles, agents) == (14, 9) else None
        self.files = build_figure8(
            net_dir,
            ring_radius=ring_radius,
            speed_limit=speed_limit,
            n_vehicles=vehicles,
            n_agents=agents,
            step_length=step_length,
            seed=seed,
            agent_slots=slots,
        )
        self.agent_ids = self.files.agent_ids
        self.vehicle_ids = self.files.vehicle_ids
        self.horizon, self.action_bound, self.speed_limit = horizon, action_bound, speed_limit
        self.seed, self.backend, self.step_length = seed, backend, step_length
        self._start = np.asarray(self.files.start_positions, dtype=np.float64)
        self.sim = None
        self._collided = False

    def reset(self, episode: int) -> None:
        from ..sumo.sim import SumoSim

        self.close()
        f = self.files
        self.sim = SumoSim(f.net, f.routes, self.step_length, self.seed * 100_003 + episode, self.backend)
        self.sim.start()
        self.sim.step()  # every vehicle departs at t = 0: after one step all are in the network
        for vid in self.sim.vehicle_ids():  # Flow's speed_mode "obey_safe_speed" for everyone (reference code): no
            self.sim._api.vehicle.setSpeedMode(vid, OBEY_SAFE_SPEED)  # right of way at the crossing, no rear-ending
        self._collided = False

    def step(self, actions: dict[str, float]) -> None:
        for node, accel in actions.items():
            self.sim.apply_acceleration(node, clip_action(accel, self.action_bound))
        self.sim.step()
        self._collided = bool(self.sim.collisions())

    def active(self) -> list[str]:
        present = set(self.sim.vehicle_ids())
        return [a for a in self.agent_ids if a in present]

    def _states(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        present = set(self.sim.vehicle_ids())
        ids = [v for v in self.vehicle_ids if v in present]
        return self.sim.states(ids)

    def observations(self) -> dict[str, np.ndarray]:
        ids, _xy, speed = self._states()
        if len(ids) < len(self.vehicle_ids):  # a vehicle was removed (teleport off): keep the order of those left
            index = {v: self.vehicle_ids.index(v) for v in ids}
            start = self._start[[index[v] for v in ids]]
        else:
            start = self._start
        length = self.files.loop_length
        x = (start + self.sim.distances(ids)) % length
        n, pos = len(ids), {v: k for k, v in enumerate(ids)}
        out = {}
        for node in self.active():
            k = pos[node]
            behind, ahead = (k - 1) % n, (k + 1) % n
            out[node] = cav_observation(
                (x[k], speed[k]),
                (x[behind], speed[behind]),
                (x[ahead], speed[ahead]),
                net_length=length,
                max_speed=self.speed_limit,
            ).astype(np.float32)
        return out

    def reward(self) -> float:
        _ids, _xy, speed = self._states()
        return shared_reward(speed, self.speed_limit, self._collided)

    def collided(self) -> bool:
        return self._collided

    def positions(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        return self.sim.states(self.active())

    def mean_speed(self) -> float:
        _ids, _xy, speed = self._states()
        return float(speed.mean()) if len(speed) else 0.0

    def close(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None
