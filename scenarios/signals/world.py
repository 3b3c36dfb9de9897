"""The traffic-signal world process: episodes of a SignalEnv, one agent process per light, IPPO updates."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from protocols.endpoint import Endpoint
from scenarios.espark.candidates import TSC
from scenarios.espark.masker import TrainingMasks

from ..parallel_world import ParallelEnvWorld
from ..step_driver import as_action, serve_world, world_endpoint
from .config import SignalWorld
from .env import FEATURES, SignalEnv
from .parallel import SignalParallelEnv
from .phases import MOVEMENTS, PHASES

log = logging.getLogger("scenarios.signals")


class SignalWorldProcess(ParallelEnvWorld):
    """Each decision: every light's observation and phase mask out, its phase back; updates between episodes."""

    def __init__(self, ep: Endpoint, cfg: SignalWorld, env: SignalEnv, deadline_s: float, seed: int):
        super().__init__(ep, deadline_s)
        self.cfg, self.env, self.seed = cfg, env, seed
        self.par = SignalParallelEnv(env, cfg.pressure)
        self.lights = list(env.tls_ids)  # agent i controls lights[i]
        self.n_agents = len(self.lights)
        self.all_masks = env.action_masks()
        self.defaulted = 0
        self.exploration = TrainingMasks(cfg.exploration, TSC, seed)  # training only, computed here, never in agents

    def close(self) -> None:
        self.env.close()
        super().close()

    def masks(self, mode: str, obs: dict, infos: dict, done: bool) -> np.ndarray:
        if (mode == "train" or (mode == "test" and self.cfg.exploration.at_test)) and not done:
            raw = {t: obs[t]["observation"] for t in self.lights}
            return self.exploration.allowed(lambda: (intersections(raw, self.lights), list(PHASES)), self.all_masks)
        return self.all_masks

    def arrays(self, agent: str, obs: dict, infos: dict, mask: np.ndarray) -> dict[str, np.ndarray]:
        return {
            "obs": np.asarray(obs[agent]["observation"], np.float32),
            "mask": mask.astype(np.uint8),
            "pressure": infos[agent]["pressure"],
        }

    def action(self, i: int, answered: bool, value, mask: np.ndarray) -> tuple[int, int | None]:
        a = as_action(value)
        if a is None or not (0 <= a < len(mask) and mask[a]):
            # the first phase the agent may take now; the agent learns from the phase that ran, not the one it asked
            self.defaulted += 1
            a = int(np.flatnonzero(mask)[0])
            return a, a
        return a, None

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        step = sum(rewards.values())
        totals["return"] = totals.get("return", 0.0) + step
        totals["peak_stopped"] = max(totals.get("peak_stopped", 0.0), -step)

    def record(self, mode: str, seed: int, k: int, totals: dict) -> dict:
        trips = totals["last_infos"][self.lights[0]].get("metrics") or {}
        record = {
            "episode": k,
            "mode": mode,
            "seed": seed,
            "return": totals.get("return", 0.0) / len(self.lights),
            **trips,
            "wall_s": round(time.monotonic() - self.t0, 2),
        }
        # the reward and the trip metrics, for eSpark's reflection statistics (eSpark paper, Sec. 4.3;
        # docs/espark.md, E-A6)
        record["components"] = {
            "reward": record["return"],
            "peak_stopped_vehicles": totals.get("peak_stopped", 0.0),
            **{key: trips.get(key) for key in ("delay", "trip_time", "waiting_time", "completed")},
        }
        self.ep.metrics("signal_episode", record)
        log.info(
            "%s episode %d: mean return %.0f, delay %.1f s, trip time %.1f s",
            mode,
            k,
            record["return"],
            record.get("delay", float("nan")),
            record.get("trip_time", float("nan")),
        )
        return record


def intersections(obs: dict, lights: list[str]) -> list[dict]:
    """The exploration function's view of each light (docs/espark.md, E-A6): its movements' features and phase."""
    out = []
    n = len(FEATURES)
    for light in lights:
        o = obs[light]
        moves = {m: dict(zip(FEATURES, map(float, o[k * n : (k + 1) * n]))) for k, m in enumerate(MOVEMENTS)}
        out.append({"id": light, "current_phase": PHASES[int(np.argmax(o[len(MOVEMENTS) * n :]))], "movements": moves})
    return out


def build_signal_world(ep: Endpoint, seed: int, world: dict, run_dir: str, deadline_s: float) -> SignalWorldProcess:
    """The world process's state, on the endpoint it talks through (the slow part: SUMO starts here)."""
    cfg = SignalWorld.model_validate(world)
    env = SignalEnv(
        cfg.map,
        seed=seed,
        delta_s=cfg.delta_s,
        yellow_s=cfg.yellow_s,
        horizon_s=cfg.horizon_s,
        backend=cfg.backend,
        run_dir=Path(run_dir) / "sumo",
        group_by=cfg.group_by,
        lights=cfg.lights,
    )
    return SignalWorldProcess(ep, cfg, env, deadline_s, seed)


def run_signal_world(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    run_dir: str,
    deadline_s: float,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the traffic-signal world process."""
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)
    return serve_world(ep, lambda: build_signal_world(ep, seed, world, run_dir, deadline_s))
