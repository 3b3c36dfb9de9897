"""The MABIM inventory world process: episodes of an InventoryEnv, one agent process per warehouse, IPPO updates."""

from __future__ import annotations

import logging
import time

import numpy as np

from protocols.endpoint import Endpoint
from scenarios.espark.candidates import MABIM
from scenarios.espark.masker import TrainingMasks

from ..parallel_world import ParallelEnvWorld
from ..step_driver import node_name, serve_world, world_endpoint
from .config import ACTION_MULTIPLES, N_ACTIONS, InventoryWorld
from .model import COMPONENTS, InventoryEnv
from .observe import mabim_inputs
from .parallel import InventoryParallelEnv

log = logging.getLogger("scenarios.inventory")

DEFAULT_ACTION = ACTION_MULTIPLES.index(1.00)  # 10: order the mean demand, for a warehouse without a valid answer


class InventoryWorldProcess(ParallelEnvWorld):
    """Each day: every warehouse's per-SKU observations and masks out, its N actions back; periodic updates."""

    def __init__(self, ep: Endpoint, cfg: InventoryWorld, env: InventoryEnv, deadline_s: float, seed: int):
        super().__init__(ep, deadline_s)
        self.cfg, self.env, self.seed = cfg, env, seed
        self.par = InventoryParallelEnv(cfg.env, env)
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

    def reset_options(self, mode: str) -> dict:
        return {"split": "test" if mode == "test" else "train"}  # train: a random window; test: the test window

    def masks(self, mode: str, obs: dict, infos: dict, done: bool) -> np.ndarray:
        """Training (and test with exploration.at_test): the exploration's pruning; otherwise every order."""
        ones = np.ones((self.env.m, self.env.n, N_ACTIONS), bool)
        masked = mode == "train" or (mode == "test" and self.cfg.exploration.at_test)
        return self.exploration.allowed(lambda: mabim_inputs(self.env), ones) if masked and not done else ones

    def arrays(self, agent: str, obs: dict, infos: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
        rewards = infos[agent].get("rewards", np.zeros(self.env.n))  # per SKU; none before the first day
        return {"obs": obs[agent], "mask": mask.astype(np.uint8), "rewards": np.asarray(rewards, np.float32)}

    def reward_of(self, agent: str, rewards: dict, infos: dict) -> float:
        return float(np.sum(infos[agent].get("rewards", 0.0)))  # the SKUs' rewards summed as float64, as the env does

    def action(self, i: int, answered: bool, value, mask: np.ndarray) -> tuple[np.ndarray, None]:
        return self.actions_of(i, answered), None  # the default order is counted, not told

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        agents = self.par.possible_agents
        for key, values in [("reward", [infos[a]["rewards"] for a in agents])] + [
            (c, [infos[a]["components"][c] for a in agents]) for c in COMPONENTS
        ]:
            totals[key] = totals.get(key, np.zeros(self.env.m)) + np.stack(values).sum(1)

    def record(self, mode: str, seed: int, k: int, totals: dict) -> dict:
        sums = {c: totals.get(c, np.zeros(self.env.m)) for c in ("reward", *COMPONENTS)}
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
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)
    return serve_world(ep, lambda: build_inventory_world(ep, seed, world, run_dir, deadline_s))
