"""The beacon world process (figure-eight vehicles sending beacons): owns SUMO, steps it in lock-step with the
agents, publishes positions."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from protocols.endpoint import Endpoint
from protocols.lockstep import expected_radio
from protocols.messages import Observation

from ..step_driver import StepDriver, serve_world, world_endpoint
from ..sumo.figure8 import Figure8Files, build_figure8
from .config import Figure8World

log = logging.getLogger("scenarios.beacons.world")


def prepare(world: Figure8World, seed: int, net_dir: Path) -> Figure8Files:
    """Build the world's road network and routes (done once by the coordinator, reused by the world)."""
    return build_figure8(
        net_dir,
        ring_radius=world.ring_radius,
        speed_limit=world.speed_limit,
        n_vehicles=world.vehicles,
        n_agents=world.agents,
        step_length=world.step_length,
        seed=seed,
    )


class BeaconWorldProcess(StepDriver):
    """Lock-step loop: step SUMO, send positions and observations, collect actions, apply them."""

    def __init__(self, ep: Endpoint, cfg: Figure8World, files: Figure8Files, steps: int, deadline_s: float):
        from ..sumo.sim import SumoSim

        super().__init__(ep, deadline_s)
        self.cfg, self.files, self.steps = cfg, files, steps
        self.sim = SumoSim(files.net, files.routes, cfg.step_length, files.seed, cfg.backend, cfg.gui)
        self.agents = set(files.agent_ids)
        self._refused_logged: set[str] = set()

    def apply(self, node: str, accel: float) -> None:
        """Apply an acceleration; one the simulator refuses is logged (once per node), never fatal."""
        try:
            self.sim.apply_acceleration(node, accel)
        except Exception as err:  # libsumo raises its own TraCIException types
            if node not in self._refused_logged:
                log.warning("action %r of %s refused by the simulator: %s (logged once per node)", accel, node, err)
                self._refused_logged.add(node)

    def run(self) -> bool:
        """Run the configured number of steps; True if all of them ran."""
        ep, sim = self.ep, self.sim
        sim.start()
        self.t0 = time.monotonic()  # steps/s counts from the first step
        try:
            for step in range(1, self.steps + 1):
                if ep.stopping:
                    break
                ep.t_sim = sim.step()
                ids, xy, speed = sim.states()
                present = [i for i, v in enumerate(ids) if v in self.agents]
                delivered = self.sync_medium(self.positions_for(step, ids), {"xy": xy, "speed": speed})
                expected = set()
                for i in present:
                    node = ids[i]
                    if node in ep.peers.down or not ep.peers.knows(node):
                        continue
                    obs = np.array([xy[i, 0], xy[i, 1], speed[i]])
                    body = Observation(step=step, radio_expected=expected_radio(delivered, node))
                    ep.peers.send(node, ep.stamper.encode(body, node, {"obs": obs}))
                    expected.add(node)
                actions = self.collect_actions(step, expected)
                self.note_radio(actions)
                for node, action in actions.items():
                    if action.value is not None:
                        self.apply(node, float(action.value))
                ep.maybe_heartbeat()
                self.progress(
                    step,
                    self.steps,
                    t=ep.t_sim,
                    mean_speed=float(speed.mean()) if len(speed) else 0.0,
                    collisions=len(sim.collisions()),
                )
        finally:
            sim.close()
        return step == self.steps and not ep.stopping


def run_beacon_world(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    net_dir: str,
    steps: int,
    deadline_s: float,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the world process (curve_secret and coordinator_key: CURVE, Z85)."""
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)

    def build() -> BeaconWorldProcess:
        cfg = Figure8World.model_validate(world)
        return BeaconWorldProcess(ep, cfg, prepare(cfg, seed, Path(net_dir)), steps, deadline_s)

    return serve_world(ep, build)
