"""The warehouse world process: owns the dispatcher's mode s_g and the step clock, publishes positions."""

from __future__ import annotations

import logging
import time

import numpy as np

from agent_node.warehouse.layout import DISPATCHER, positions
from protocols.endpoint import Endpoint
from protocols.messages import Observation, Positions

from ..parallel_world import ParallelEnvLoop, StepView
from ..step_driver import serve_world, world_endpoint
from .config import WarehouseWorld
from .parallel import FloorParallelEnv

log = logging.getLogger("scenarios.warehouse")


class FloorWorld(ParallelEnvLoop):
    """Episodes of the floor's global chain (FloorParallelEnv) on the one world loop. Each step: positions to the
    medium, [episode, t] and s_g so far to the dispatcher, its a_g back (a missing or invalid one keeps the priority
    zone), then r_g and s_g(t+1) ~ P_g (drawn from the same stream the simulator uses). No final observation: the
    dispatcher's episode ends with its last answer."""

    final_observation = False

    def __init__(self, ep: Endpoint, cfg: WarehouseWorld, seed: int, steps: int, deadline_s: float):
        super().__init__(ep, deadline_s)
        self.cfg, self.seed, self.steps, self.model = cfg, seed, steps, cfg.model
        self.par = FloorParallelEnv(cfg.model, cfg.horizon, seed)
        self.ids, self.xy = positions(cfg.robots, seed, cfg.ring_radius_m, cfg.ring_width_m)

    def run(self) -> bool:
        """Run the configured number of steps (episodes of cfg.horizon); True if all of them ran."""
        H = self.cfg.horizon
        self.t0 = time.monotonic()  # steps/s counts from the first step
        for episode in range(-(-self.steps // H)):
            totals = self.play("train", None, {"episode": episode, "steps": min(H, self.steps - episode * H)})
            if totals is None:
                break
            if totals["t"] == H:
                self.ep.metrics("world_episode", {"episode": episode, **totals["record"]})
        return self.step == self.steps and not self.ep.stopping

    # ---- the loop's hooks -----------------------------------------------------------------------------------
    def node_of(self, i: int, agent: str) -> str:
        return agent

    def before_observe(self) -> None:
        self.ep.t_sim = float(self.step)
        self.sync_medium(Positions(step=self.step, ids=self.ids), {"xy": self.xy, "speed": np.zeros(len(self.ids))})

    def message(self, mode: str, agent: str, node: str, mask, view: StepView) -> tuple[Observation, dict] | None:
        peers = self.ep.peers
        if not peers.knows(node) or node in peers.down:
            return None  # nobody to wait for: the step keeps the priority zone
        return super().message(mode, agent, node, mask, view)

    def arrays(self, agent: str, obs: dict, infos: dict, mask) -> dict[str, np.ndarray]:
        return {"obs": obs[agent]["clock"], "sg": obs[agent]["sg"]}

    def action(self, i: int, answered: bool, value, mask) -> tuple[int | None, None]:
        if isinstance(value, int) and 0 <= value < self.model.zones:
            return value, None
        if answered:
            log.warning("step %d: dispatcher action %r is not a zone; kept s_g", self.step, value)
        return None, None

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        record = totals.setdefault("record", {"s_g": [], "a_g": [], "r_g": []})
        for key in record:
            record[key].append(infos[DISPATCHER][key])

    def stepped(self) -> None:
        self.ep.maybe_heartbeat()
        self.progress(self.step, self.steps, episode=self.par.episode)


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
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)
    return serve_world(ep, lambda: FloorWorld(ep, WarehouseWorld.model_validate(world), seed, steps, deadline_s))
