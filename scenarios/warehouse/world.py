"""The warehouse world process: owns the dispatcher's mode s_g and the step clock, publishes positions."""

from __future__ import annotations

import logging
import time

import numpy as np

from agent_node.warehouse.layout import DISPATCHER, positions
from protocols.endpoint import Endpoint
from protocols.messages import Observation, Positions
from protocols.security import Curve

from ..step_driver import StepDriver, serve_world
from .config import WarehouseWorld

log = logging.getLogger("scenarios.warehouse")


class FloorWorld(StepDriver):
    """Each step: positions to the medium, [episode, t, s_g] to the dispatcher, its a_g back, then
    r_g and s_g(t+1) ~ P_g (drawn from the same stream the simulator uses)."""

    def __init__(self, ep: Endpoint, cfg: WarehouseWorld, seed: int, steps: int, deadline_s: float):
        super().__init__(ep, deadline_s)
        self.cfg, self.seed, self.steps, self.model = cfg, seed, steps, cfg.model
        self.ids, self.xy = positions(cfg.robots, seed, cfg.ring_radius_m, cfg.ring_width_m)

    def run(self) -> bool:
        """Run the configured number of steps (episodes of cfg.horizon); True if all of them ran."""
        ep, model, H = self.ep, self.model, self.cfg.horizon
        self.t0, step = time.monotonic(), 0  # steps/s counts from the first step
        record: dict[str, list] = {}
        for step in range(1, self.steps + 1):
            if ep.stopping:
                break
            episode, t = divmod(step - 1, H)
            if t == 0:
                s_g = int(model.initial_global(self.seed, episode)[0])
                record = {"s_g": [], "a_g": [], "r_g": []}
            ep.t_sim = float(step)
            self.sync_medium(Positions(step=step, ids=self.ids), {"xy": self.xy, "speed": np.zeros(len(self.ids))})
            obs = np.array([episode, t], dtype=np.int64)
            history = np.array([*record["s_g"][-63:], s_g], dtype=np.int64)  # s_g so far this episode, up to 64
            a_g = s_g  # if the dispatcher misses the deadline: keep the priority zone
            if ep.peers.knows(DISPATCHER) and DISPATCHER not in ep.peers.down:
                ep.peers.send(
                    DISPATCHER, ep.stamper.encode(Observation(step=step), DISPATCHER, {"obs": obs, "sg": history})
                )
                action = self.collect_actions(step, {DISPATCHER}).get(DISPATCHER)
                if action is not None and isinstance(action.value, int) and 0 <= action.value < model.zones:
                    a_g = action.value
                elif action is not None:
                    log.warning("step %d: dispatcher action %r is not a zone; kept s_g", step, action.value)
            record["s_g"].append(s_g)
            record["a_g"].append(a_g)
            record["r_g"].append(float(model.r_g[s_g, a_g]))
            s_g = int(model.global_step(self.seed, episode, t, np.array([s_g]), np.array([a_g]))[0])
            if t == H - 1:
                ep.metrics("world_episode", {"episode": episode, **record})
            ep.maybe_heartbeat()
            self.progress(step, self.steps, episode=episode)
        return step == self.steps and not ep.stopping


def run_floor(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    steps: int,
    deadline_s: float,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the warehouse world process (curve_secret and coordinator_key: CURVE, Z85)."""
    ep = Endpoint(
        node_id, "world", coordinator, curve=Curve.from_settings(curve_secret, coordinator_key=coordinator_key)
    )
    return serve_world(ep, lambda: FloorWorld(ep, WarehouseWorld.model_validate(world), seed, steps, deadline_s))
