"""The world process: owns SUMO, steps it in lock-step with the agents, publishes positions."""
from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from protocols.endpoint import Endpoint
from protocols.messages import Action, Observation, Positions, Tick

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
        self._refused_logged: set[str] = set()
        self.radio_sent: dict[str, int] = {}  # per agent, as its last action said
        self.radio_endpoint: dict[str, str | None] = {}  # the agent's endpoint when it said so
        self._medium_late_logged = False

    def sync_medium(self, positions: Positions, arrays: dict) -> dict[str, int] | None:
        """Send the step's positions to the medium and wait for its Tick: by then every radio message
        sent in earlier steps is routed and whatever is due is delivered. Returns deliveries per agent
        (None without a medium, or if it does not answer in time: the run goes on unsynchronised)."""
        ep = self.ep
        mediums = ep.peers.ids("medium")
        if not mediums:
            return None
        ep.peers.send(mediums[0], ep.stamper.encode(positions, mediums[0], arrays))
        deadline = time.monotonic() + self.deadline_s
        while not ep.stopping and (left := deadline - time.monotonic()) > 0:
            for _ident, msg in ep.poll(max(1, int(left * 1000))):
                if isinstance(msg.body, Tick) and msg.body.step == positions.step:
                    return msg.body.delivered
        if not self._medium_late_logged:
            log.warning("step %d: the medium did not confirm within %.2f s; going on without waiting (logged once)",
                        positions.step, self.deadline_s)
            self._medium_late_logged = True
        return None

    def apply(self, node: str, accel: float) -> None:
        """Apply an acceleration; one the simulator refuses is logged (once per node), never fatal."""
        try:
            self.sim.apply_acceleration(node, accel)
        except Exception as err:  # libsumo raises its own TraCIException types
            if node not in self._refused_logged:
                log.warning("action %r of %s refused by the simulator: %s (logged once per node)", accel, node, err)
                self._refused_logged.add(node)

    def collect_actions(self, step: int, expected: set[str]) -> dict[str, Action]:
        """Wait for the actions of this step until the deadline; missing ones are reported."""
        actions: dict[str, Action] = {}
        deadline = time.monotonic() + self.deadline_s
        while expected - actions.keys() and not self.ep.stopping:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for ident, msg in self.ep.poll(max(1, int(left * 1000))):
                src, body = msg.env.src, msg.body
                if isinstance(body, Action) and body.step == step and src in expected and ident == src.encode():
                    actions[src] = body  # only the agent bound to a vehicle, on its own connection
            expected = expected - self.ep.peers.down
        missing = expected - actions.keys()
        if missing:
            self.late_actions += len(missing)
            for node in missing - self._late_logged:
                log.warning("step %d: no action from %s within %.2f s; default action used (logged once per node)",
                            step, node, self.deadline_s)
            self._late_logged |= missing
        return actions

    def run(self) -> bool:
        """Run the configured number of steps; True if all of them ran."""
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
                for node in [n for n, e in self.radio_endpoint.items() if ep.peers.endpoints.get(n) != e]:
                    self.radio_sent.pop(node, None)  # a restarted agent counts its messages from 0
                    self.radio_endpoint.pop(node)
                delivered = self.sync_medium(Positions(step=step, ids=ids, radio_sent=self.radio_sent),
                                             {"xy": xy, "speed": speed})
                expected = set()
                for i in present:
                    node = ids[i]
                    if node in ep.peers.down or not ep.peers.knows(node):
                        continue
                    obs = np.array([xy[i, 0], xy[i, 1], speed[i]])
                    body = Observation(step=step, radio_expected=delivered.get(node, 0) if delivered is not None else None)
                    ep.peers.send(node, ep.stamper.encode(body, node, {"obs": obs}))
                    expected.add(node)
                for node, action in self.collect_actions(step, expected).items():
                    self.radio_sent[node] = action.radio_sent
                    self.radio_endpoint[node] = ep.peers.endpoints.get(node)
                    if action.value is not None:
                        self.apply(node, float(action.value))
                ep.maybe_heartbeat()
                if step % METRICS_EVERY_STEPS == 0 or step == self.steps:
                    ep.metrics("world", {"step": step, "t": ep.t_sim, "mean_speed": float(speed.mean()) if len(speed) else 0.0,
                                         "steps_per_s": step / max(time.monotonic() - t0, 1e-9),
                                         "late_actions": self.late_actions, "collisions": len(sim.collisions())},
                               final=step == self.steps)
        finally:
            sim.close()
        return step == self.steps and not ep.stopping


def run_world(node_id: str, coordinator: str, seed: int, world: dict, net_dir: str, steps: int,
              deadline_s: float) -> int:
    """Entry point of the world process."""
    ep = Endpoint(node_id, "world", coordinator)
    ep.stop_on_signals()
    try:
        cfg = WorldConfig.model_validate(world)
        files = prepare(cfg, seed, Path(net_dir))  # the slow part before registering: no heartbeat gap
        w = World(ep, cfg, files, steps, deadline_s)
        ep.register()
        ep.wait_start()
        completed = w.run()
        if completed or ep.shutdown_requested:
            return 0
        log.error("world stopped before its last step: %s", ep.stop_reason)
        return 1  # an early stop nobody asked for is a failure the coordinator must see
    finally:
        ep.close()
