"""The RSM-MASAC "Merge" CAV environment: a highway on-ramp where agent slots bind to entering vehicles.

RSM-MASAC paper, Sec. VI-A and Table III (Merge; observation, action, reward, termination); the Merge details
the paper leaves out are decided in docs/rsm_masac.md, R-A16. Implements the ``CavEnv`` protocol of
``scenarios/cav/env.py``.

Binding (R-A16). The agents are 13 persistent slots ``cav0`` .. ``cav12``. Vehicles that depart on the main
road after ``warmup_steps`` are bound in order of entry: the k-th chosen vehicle goes to slot ``cav{k}``.
``binding="first"`` (default) chooses every entering main-road vehicle until all slots are used (the
first 13 main-road vehicles that enter after a warm-up);
``binding="random"`` chooses each entering main-road vehicle with probability ``bind_prob`` from a numpy rng
seeded by (seed, episode) (the paper's "13 vehicles are chosen at random, as they enter one after another").
Each slot is bound at most once per episode (13 vehicles per epoch, as the paper). When its vehicle leaves the
network the slot becomes inactive for the rest of the episode and the vehicle's control is released.
Ramp vehicles are never bound; they are HDVs, observed as neighbours.

Observation (Sec. VI-A): [x_self, v_self, x_behind, v_behind, x_ahead, v_ahead] via ``cav_observation``. x is the route
position (depart position + odometer), normalised by the main route length (inflow edge + pre-merge + junction +
post-merge, 424.6 m with the defaults). Not in the paper: ``ramp_positions="main"`` (default) puts ramp vehicles on the
main road's coordinate (their route position + the difference of the two routes' offsets of the shared ``center`` edge),
so that a ramp vehicle that merged in front of a CAV is also ahead of it in x; ``ramp_positions="own"`` keeps the ramp
route's own position. The leader and follower are SUMO's ``getLeader`` / ``getFollower`` with a search distance of the
main route length (they include a ramp vehicle on the merging junction lane); a missing one gives zeros (R-A16, as
Flow's MergePOEnv fills them).

Human driving (not in the paper): every vehicle gets SUMO speed mode ``human_speed_mode`` (default 1, Flow's
"obey_safe_speed", which Flow's merge benchmarks set for humans and RL vehicles alike): ramp vehicles force
their way in at the merge instead of waiting for a gap, which causes the braking waves the agents should damp.
With SUMO's default mode (31, ``human_speed_mode=None``) ramp vehicles wait at the junction, often for the
whole episode, because 2200 veh/h leave no gap.

Reward: ``shared_reward`` over every vehicle in the network, 0 on a collision step. Horizon 750, action bound
1.5 m/s^2 (Table III). Termination is the caller's (``scenarios.cav.maths.terminated``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..sumo.sim import OBEY_SAFE_SPEED
from .maths import cav_observation, clip_action, shared_reward
from .merge_net import build_merge

_BINDINGS = ("first", "random")
_RAMP_POSITIONS = ("main", "own")


class MergeCavEnv:
    """Flow-like highway on-ramp with 2200 veh/h main and 100 veh/h ramp inflow; 13 agent slots (paper Sec. VI-A)."""

    def __init__(
        self,
        net_dir: Path,
        *,
        agents: int = 13,
        horizon: int = 750,
        action_bound: float = 1.5,
        speed_limit: float = 30.0,
        step_length: float = 0.1,
        seed: int = 0,
        backend: str = "libsumo",
        warmup_steps: int = 300,
        pre_merge: float = 200.0,
        post_merge: float = 100.0,
        merge_length: float = 100.0,
        main_rate: float = 2200.0,
        ramp_rate: float = 100.0,
        departures: str = "fixed",
        binding: str = "first",
        bind_prob: float = 0.5,
        ramp_positions: str = "main",
        human_speed_mode: int | None = OBEY_SAFE_SPEED,
    ):
        if binding not in _BINDINGS:
            raise ValueError(f"binding must be one of {_BINDINGS}, not {binding!r}")
        if ramp_positions not in _RAMP_POSITIONS:
            raise ValueError(f"ramp_positions must be one of {_RAMP_POSITIONS}, not {ramp_positions!r}")
        if agents < 0 or warmup_steps < 0 or not 0 < bind_prob <= 1:  # agents = 0: every vehicle an IDM driver
            raise ValueError("need agents >= 0, warmup_steps >= 0 and 0 < bind_prob <= 1")
        self.files = build_merge(
            net_dir,
            pre_merge=pre_merge,
            post_merge=post_merge,
            merge_length=merge_length,
            speed_limit=speed_limit,
            main_rate=main_rate,
            ramp_rate=ramp_rate,
            departures=departures,
            step_length=step_length,
            seed=seed,
        )
        self.agent_ids = tuple(f"cav{i}" for i in range(agents))
        self.horizon, self.action_bound, self.speed_limit = horizon, action_bound, speed_limit
        self.seed, self.backend, self.step_length = seed, backend, step_length
        self.warmup_steps, self.binding, self.bind_prob = warmup_steps, binding, bind_prob
        self.human_speed_mode = human_speed_mode
        self.net_length = self.files.main_length
        self._lane_offset = {"main": dict(self.files.main_offsets), "ramp": dict(self.files.ramp_offsets)}
        self._route_shift = {"main": 0.0, "ramp": self.files.merge_shift if ramp_positions == "main" else 0.0}
        self.sim = None
        self._collided = False
        self._reset_episode_state()

    # -- episode bookkeeping -------------------------------------------------------------------------------

    def _reset_episode_state(self) -> None:
        self.bindings: dict[str, str] = {}  # slot -> vehicle, every binding of this episode (left ones too)
        self._active: dict[str, str] = {}  # slot -> vehicle, bound and in the network now
        self._seen: set[str] = set()
        self._x0: dict[str, float] = {}  # vehicle -> route position at departure (main-road coordinate)
        self._binding_open = False

    def reset(self, episode: int) -> None:
        """New SUMO run seeded by (seed, episode); run the warm-up (no bindings), then bindings open."""
        from ..sumo.sim import SumoSim

        self.close()
        f = self.files
        self._rng = np.random.default_rng([self.seed, episode])
        self.sim = SumoSim(f.net, f.routes, self.step_length, self.seed * 100_003 + episode, self.backend)
        self.sim.start()
        self._reset_episode_state()
        self._collided = False
        for _ in range(self.warmup_steps):
            self.sim.step()
            self._update()
        self._binding_open = True

    def _update(self) -> None:
        """After a simulation step: free the slots whose vehicle left, then register (and bind) departures."""
        present = self.sim.vehicle_ids()  # departure order
        here = set(present)
        for slot, veh in list(self._active.items()):
            if veh not in here:
                del self._active[slot]
                self.sim.release_control(veh)  # no-op once SUMO removed it; kept for a vehicle removed otherwise
        for gone in [v for v in self._x0 if v not in here]:
            del self._x0[gone]
        api = self.sim._api  # lane queries once per departure; SumoSim subscribes position/speed/distance only
        for veh in present:
            if veh in self._seen:
                continue
            self._seen.add(veh)
            route = self._route(veh)
            if self.human_speed_mode is not None:
                api.vehicle.setSpeedMode(veh, self.human_speed_mode)
            lane_pos = self._lane_offset[route].get(api.vehicle.getLaneID(veh), 0.0) + api.vehicle.getLanePosition(veh)
            self._x0[veh] = lane_pos - float(self.sim.distances([veh])[0]) + self._route_shift[route]
            if self._binding_open and route == "main" and len(self.bindings) < len(self.agent_ids):
                if self.binding == "first" or self._rng.random() < self.bind_prob:
                    slot = self.agent_ids[len(self.bindings)]
                    self.bindings[slot] = veh
                    self._active[slot] = veh
                    api.vehicle.setColor(veh, (255, 0, 0, 255))

    @staticmethod
    def _route(veh: str) -> str:
        return "ramp" if veh.startswith("ramp.") else "main"

    # -- CavEnv ------------------------------------------------------------------------------------------

    def step(self, actions: dict[str, float]) -> None:
        """Apply the (clipped) accelerations of the active slots, advance one step, update the bindings.

        Actions of slots that are not active now (not yet bound, or their vehicle left) are ignored."""
        unknown = set(actions) - set(self.agent_ids)
        if unknown:
            raise KeyError(f"unknown agent slots {sorted(unknown)}")
        for slot, accel in actions.items():
            veh = self._active.get(slot)
            if veh is not None:
                self.sim.apply_acceleration(veh, clip_action(accel, self.action_bound))
        self.sim.step()
        self._collided = bool(self.sim.collisions())
        self._update()

    def active(self) -> list[str]:
        return [a for a in self.agent_ids if a in self._active]

    def vehicle_of(self, slot: str) -> str | None:
        """The vehicle the slot drives now, or None."""
        return self._active.get(slot)

    def exhausted(self) -> bool:
        """Every slot has been bound and has left: no agent will act again this episode."""
        return len(self.bindings) == len(self.agent_ids) and not self._active

    def _neighbour(self, veh: str, leader: bool) -> tuple[float, float] | None:
        api = self.sim._api
        res = (api.vehicle.getLeader if leader else api.vehicle.getFollower)(veh, self.net_length)
        other = res[0] if res else ""  # libsumo: ("", -1) when none; traci: None for no leader
        if not other or other == veh or other not in self._x0:
            return None
        return self._x(other), float(self.sim.states([other])[2][0])

    def _x(self, veh: str) -> float:
        return self._x0[veh] + float(self.sim.distances([veh])[0])

    def observations(self) -> dict[str, np.ndarray]:
        out = {}
        for slot in self.active():
            veh = self._active[slot]
            ego = (self._x(veh), float(self.sim.states([veh])[2][0]))
            out[slot] = cav_observation(
                ego,
                self._neighbour(veh, False),
                self._neighbour(veh, True),
                net_length=self.net_length,
                max_speed=self.speed_limit,
            ).astype(np.float32)
        return out

    def reward(self) -> float:
        _ids, _xy, speed = self.sim.states()
        return shared_reward(speed, self.speed_limit, self._collided)

    def collided(self) -> bool:
        return self._collided

    def positions(self) -> tuple[list[str], np.ndarray, np.ndarray]:
        slots = self.active()
        _ids, xy, speed = self.sim.states([self._active[s] for s in slots])
        return slots, xy, speed

    def mean_speed(self) -> float:
        _ids, _xy, speed = self.sim.states()
        return float(speed.mean()) if len(speed) else 0.0

    def close(self) -> None:
        if self.sim is not None:
            self.sim.close()
            self.sim = None
