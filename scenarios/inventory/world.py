"""The MABIM inventory world process: episodes of an InventoryEnv, one agent process per warehouse, IPPO updates."""

from __future__ import annotations

import logging
import time

import numpy as np

from protocols.endpoint import Endpoint
from protocols.messages import Observation
from protocols.security import Curve
from scenarios.espark.candidates import MABIM
from scenarios.espark.masker import TrainingMasks

from ..step_driver import EpisodicWorld, node_name, serve_world
from .config import ACTION_MULTIPLES, N_ACTIONS, InventoryWorld
from .model import COMPONENTS, InventoryEnv
from .observe import mabim_inputs, observe

log = logging.getLogger("scenarios.inventory")

DEFAULT_ACTION = ACTION_MULTIPLES.index(1.00)  # 10: order the mean demand, for a warehouse without a valid answer


class InventoryWorldProcess(EpisodicWorld):
    """Each day: every warehouse's per-SKU observations and masks out, its N actions back; periodic updates."""

    def __init__(self, ep: Endpoint, cfg: InventoryWorld, env: InventoryEnv, deadline_s: float, seed: int):
        super().__init__(ep, deadline_s)
        self.cfg, self.env, self.seed = cfg, env, seed
        self.n_agents = env.m
        self.exploration = TrainingMasks(cfg.exploration, MABIM, seed)  # training only, computed here
        self.defaulted = 0
        self._bad_logged: set[int] = set()

    def actions_of(self, i: int, answered: bool) -> np.ndarray:
        """Warehouse i's (N,) actions, or the order-the-mean default if its answer is missing or malformed."""
        a = self.action_arrays.get(node_name(i), {}).get("actions") if answered else None
        ok = (
            isinstance(a, np.ndarray)
            and a.shape == (self.env.n,)
            and np.issubdtype(a.dtype, np.integer)
            and a.size
            and 0 <= a.min()
            and a.max() < N_ACTIONS
        )
        if ok:
            return a.astype(np.int64)
        self.defaulted += 1
        if answered and i not in self._bad_logged:
            log.warning(
                "warehouse %d answered no valid (N,) int actions in [0, %d); the default action %d is used "
                "(logged once)",
                i,
                N_ACTIONS,
                DEFAULT_ACTION,
            )
            self._bad_logged.add(i)
        return np.full(self.env.n, DEFAULT_ACTION, np.int64)

    def episode(self, mode: str, seed: int, k: int) -> dict | None:
        """One episode (train: random window, sampled, masked; test: the test window, greedy, unmasked)."""
        env, m, n = self.env, self.env.m, self.env.n
        env.reset(seed, split="test" if mode == "test" else "train")
        prev = None
        rewards = np.zeros((m, n))
        sums = {c: np.zeros(m) for c in ("reward", *COMPONENTS)}
        done = False
        while True:
            if self.ep.stopping:
                return None
            self.step += 1
            obs = observe(env, prev)
            ones = np.ones((m, n, N_ACTIONS), bool)
            masked = mode == "train" or (mode == "test" and self.cfg.exploration.at_test)
            mask = self.exploration.allowed(lambda: mabim_inputs(env), ones) if masked and not done else ones
            expected = set()
            for i in range(m):
                body = Observation(
                    step=self.step, reward=float(rewards[i].sum()), done=done, info={"phase": "act", "mode": mode}
                )
                arrays = {"obs": obs[i], "mask": mask[i].astype(np.uint8), "rewards": rewards[i].astype(np.float32)}
                expected.add(self.send(i, body, arrays))
            answers = self.collect(expected)
            if done:
                break
            prev = np.stack([self.actions_of(i, i in answers) for i in range(m)])
            _, rewards, done, info = env.step(prev)
            sums["reward"] += rewards.sum(1)
            for c in COMPONENTS:
                sums[c] += info["components"][c].sum(1)
        record = {
            "episode": k,
            "mode": mode,
            "seed": seed,
            "return": float(sums["reward"].sum()),
            "profit": float(sums["reward"].sum()),  # reward2: the paper's profit
            "gross_margin": float(sums["gross_margin"].sum()),
            "components": {c: v.tolist() for c, v in sums.items()},
            "wall_s": round(time.monotonic() - self.t0, 2),
        }
        self.ep.metrics("inventory_episode", record)
        log.info(
            "%s episode %d: profit (reward2) %.0f, gross margin %.0f", mode, k, record["profit"], record["gross_margin"]
        )
        return record


def build_inventory_world(
    ep: Endpoint, seed: int, world: dict, run_dir: str, deadline_s: float
) -> InventoryWorldProcess:
    """The world process's state, on the endpoint it talks through."""
    cfg = InventoryWorld.model_validate(world)
    return InventoryWorldProcess(ep, cfg, InventoryEnv(cfg.env), deadline_s, seed)


def run_inventory_world(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    run_dir: str,
    deadline_s: float,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the inventory world process."""
    curve = Curve.from_settings(curve_secret, coordinator_key=coordinator_key)
    ep = Endpoint(node_id, "world", coordinator, curve=curve)
    return serve_world(ep, lambda: build_inventory_world(ep, seed, world, run_dir, deadline_s))
