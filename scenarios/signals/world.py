"""The traffic-signal world process: episodes of a SignalEnv, one agent process per light, IPPO updates."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from protocols.endpoint import Endpoint
from protocols.messages import Observation
from protocols.security import Curve
from scenarios.espark.candidates import TSC
from scenarios.espark.masker import TrainingMasks

from ..step_driver import EpisodicWorld, as_action, serve_world
from .config import SignalWorld
from .env import FEATURES, SignalEnv
from .phases import MOVEMENTS, PHASES

log = logging.getLogger("scenarios.signals")


class SignalWorldProcess(EpisodicWorld):
    """Each decision: every light's observation and phase mask out, its phase back; updates between episodes."""

    def __init__(self, ep: Endpoint, cfg: SignalWorld, env: SignalEnv, deadline_s: float, seed: int):
        super().__init__(ep, deadline_s)
        self.cfg, self.env, self.seed = cfg, env, seed
        self.lights = list(env.tls_ids)  # agent i controls lights[i]
        self.n_agents = len(self.lights)
        self.masks = env.action_masks()
        self.defaulted = 0
        self.exploration = TrainingMasks(cfg.exploration, TSC, seed)  # training only, computed here, never in agents

    def close(self) -> None:
        self.env.close()
        super().close()

    def episode(self, mode: str, seed: int, k: int) -> dict | None:
        """One episode; its record (returns, the tripinfo metrics); None if the run was stopped."""
        obs = self.env.reset(seed)
        rewards = {t: 0.0 for t in self.lights}
        total, stopped_peak = 0.0, 0.0
        applied: dict[str, int] = {}
        done = False
        while True:
            if self.ep.stopping:
                return None
            self.step += 1
            expected = set()
            pressure = self.env.pressures(self.cfg.pressure)
            masks = self.masks
            if (mode == "train" or (mode == "test" and self.cfg.exploration.at_test)) and not done:
                masks = self.exploration.allowed(lambda: (intersections(obs, self.lights), list(PHASES)), self.masks)
            for i, light in enumerate(self.lights):
                said = {"phase": "act", "mode": mode}
                if light in applied:  # the agent learns from the phase that ran, not the one it asked for
                    said["applied"] = applied.pop(light)
                body = Observation(step=self.step, reward=rewards[light], done=done, info=said)
                arrays = {
                    "obs": np.asarray(obs[light], np.float32),
                    "mask": masks[i].astype(np.uint8),
                    "pressure": pressure[light],
                }
                expected.add(self.send(i, body, arrays))
            answers = self.collect(expected)
            if done:
                break
            actions = {}
            for i, light in enumerate(self.lights):
                a = as_action(answers.get(i))
                if a is None or not (0 <= a < masks.shape[1] and masks[i][a]):
                    a = int(np.flatnonzero(masks[i])[0])  # the first phase the agent may take now; counted
                    self.defaulted += 1
                    applied[light] = a
                actions[light] = a
            obs, rewards, done, info = self.env.step(actions)
            total += sum(rewards.values())
            stopped_peak = max(stopped_peak, -sum(rewards.values()))
        trips = info.get("metrics") or {}
        record = {
            "episode": k,
            "mode": mode,
            "seed": seed,
            "return": total / len(self.lights),
            **trips,
            "wall_s": round(time.monotonic() - self.t0, 2),
        }
        # the reward and the trip metrics, for eSpark's reflection statistics (eSpark paper, Sec. 4.3;
        # docs/espark.md, E-A6)
        record["components"] = {
            "reward": record["return"],
            "peak_stopped_vehicles": stopped_peak,
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
    ep = Endpoint(
        node_id, "world", coordinator, curve=Curve.from_settings(curve_secret, coordinator_key=coordinator_key)
    )
    return serve_world(ep, lambda: build_signal_world(ep, seed, world, run_dir, deadline_s))
