"""The world process: owns SUMO, steps it in lock-step with the agents, publishes positions."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from protocols.endpoint import Endpoint
from protocols.messages import Action, Observation, Positions

from .config import WorldConfig
from .figure8 import Figure8Files, build_figure8

log = logging.getLogger("scenarios.world")

METRICS_EVERY_STEPS = 10


def prepare(world: WorldConfig, seed: int, net_dir: Path) -> Figure8Files:
    """Build the world's road network and routes (done once by the coordinator, reused by the world)."""
    return build_figure8(net_dir, ring_radius=world.ring_radius, speed_limit=world.speed_limit,
                         n_vehicles=world.vehicles, n_agents=world.agents,
                         step_length=world.step_length, seed=seed)


class World:
    """Lock-step loop: step SUMO, send positions and observations, collect actions, apply them."""

    def __init__(self, ep: Endpoint, cfg: WorldConfig, files: Figure8Files, steps: int, deadline_s: float):
        from .sumo_sim import SumoSim

        self.ep, self.cfg, self.files, self.steps, self.deadline_s = ep, cfg, files, steps, deadline_s
        self.sim = SumoSim(files.net, files.routes, cfg.step_length, files.seed, cfg.backend, cfg.gui)
        self.agents = set(files.agent_ids)
        self.late_actions = 0
        self._late_logged: set[str] = set()

    def collect_actions(self, step: int, expected: set[str]) -> dict[str, Action]:
        """Wait for the actions of this step until the deadline; missing ones are reported."""
        actions: dict[str, Action] = {}
        deadline = time.monotonic() + self.deadline_s
        while expected - actions.keys() and not self.ep.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for _ident, msg in self.ep.poll(max(1, int(left * 1000))):
                if isinstance(msg.body, Action) and msg.body.step == step:
                    actions[msg.env.src] = msg.body
            expected = expected - self.ep.peers.down
        missing = expected - actions.keys()
        if missing:
            self.late_actions += len(missing)
            for node in missing - self._late_logged:
                log.warning("step %d: no action from %s within %.2f s; default action used (logged once per node)",
                            step, node, self.deadline_s)
            self._late_logged |= missing
        return actions

    def run(self) -> int:
        """Run the configured number of steps."""
        ep, sim = self.ep, self.sim
        sim.start()
        t0 = time.monotonic()
        try:
            for step in range(1, self.steps + 1):
                if ep.stopping:
                    break
                ep.t_sim = sim.step()
                ids, xy, speed = sim.states()
                present = [i for i, v in enumerate(ids) if v in self.agents]
                pos_frames = ep.stamper.encode(Positions(step=step, ids=ids), "*", {"xy": xy, "speed": speed})
                for medium in ep.peers.ids("medium"):
                    ep.peers.send(medium, pos_frames)
                expected = set()
                for i in present:
                    node = ids[i]
                    if node in ep.peers.down or not ep.peers.knows(node):
                        continue
                    obs = np.array([xy[i, 0], xy[i, 1], speed[i]])
                    ep.peers.send(node, ep.stamper.encode(Observation(step=step), node, {"obs": obs}))
                    expected.add(node)
                for node, action in self.collect_actions(step, expected).items():
                    if action.value is not None:
                        sim.apply_acceleration(node, float(action.value))
                ep.maybe_heartbeat()
                if step % METRICS_EVERY_STEPS == 0 or step == self.steps:
                    ep.metrics("world", {"step": step, "t": ep.t_sim, "mean_speed": float(speed.mean()) if len(speed) else 0.0,
                                         "steps_per_s": step / max(time.monotonic() - t0, 1e-9),
                                         "late_actions": self.late_actions, "collisions": len(sim.collisions())},
                               final=step == self.steps)
        finally:
            sim.close()
        return 0


def run_world(node_id: str, coordinator: str, seed: int, world: dict, net_dir: str, steps: int,
              deadline_s: float) -> int:
    """Entry point of the world process."""
    ep = Endpoint(node_id, "world", coordinator)
    ep.stop_on_signals()
    try:
        ep.register()
        cfg = WorldConfig.model_validate(world)
        files = prepare(cfg, seed, Path(net_dir))
        w = World(ep, cfg, files, steps, deadline_s)
        ep.wait_start()
        return w.run()
    finally:
        ep.close()
