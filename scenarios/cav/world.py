"""The CAV world process: episodes of a CavEnv in lock-step with the agents, positions to the medium."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import msgspec
import numpy as np

from agent_node.checkpoints import save_json
from protocols.endpoint import Endpoint
from protocols.lockstep import expected_radio
from protocols.messages import Act, Observation
from protocols.security import Curve

from ..step_driver import StepDriver, serve_world
from .config import CavWorld
from .maths import terminated

log = logging.getLogger("scenarios.cav")

FIRST_STEP_WAIT_S = 60.0
WORLD_STATE = "world.json"  # in the checkpoint folder: training episodes done, for --resume


def make_env(cfg: CavWorld, net_dir: Path, seed: int):
    """The scenario's environment (the network is built, or reused, in net_dir)."""
    common = dict(
        speed_limit=cfg.speed_limit,
        step_length=cfg.step_length,
        horizon=cfg.steps_per_episode,
        action_bound=cfg.bound,
        seed=seed,
        backend=cfg.backend,
    )
    if cfg.scenario == "merge":
        from .merge_env import MergeCavEnv

        return MergeCavEnv(
            net_dir,
            agents=cfg.n_agents,
            pre_merge=cfg.pre_merge,
            binding=cfg.binding,
            bind_prob=cfg.bind_prob,
            **common,
        )
    from .env import Figure8CavEnv

    return Figure8CavEnv(
        net_dir,
        vehicles=cfg.vehicles,
        agents=cfg.n_agents,
        ring_radius=cfg.ring_radius,
        paper_slots=cfg.paper_slots,
        **common,
    )


class CavWorldProcess(StepDriver):
    """Runs the episode schedule; each step: positions to the medium, observations out, actions in."""

    def __init__(
        self,
        ep: Endpoint,
        cfg: CavWorld,
        env,
        deadline_s: float,
        checkpoint_dir: Path | None,
        checkpoint_every: int,
        start_episode: int = 0,
    ):
        super().__init__(ep, deadline_s)
        self.cfg, self.env = cfg, env
        self.checkpoint_dir, self.checkpoint_every = checkpoint_dir, checkpoint_every
        self.schedule = cfg.schedule(start_episode)
        self.total_steps = len(self.schedule) * (cfg.steps_per_episode + 1)  # + each episode's first observation
        self.step = 0
        self.last_obs: dict[str, np.ndarray] = {}
        self.trained = start_episode

    def run(self) -> bool:
        self.t0 = time.monotonic()
        try:
            for k, (episode, mode) in enumerate(self.schedule):
                if self.ep.stopping:
                    return False
                final = k == len(self.schedule) - 1
                score = self.run_episode(episode, mode, final)
                if score is None:
                    return False
                if mode == "train":
                    self.trained = episode + 1
                every = self.checkpoint_every
                due = mode == "train" and every and self.trained % every == 0
                if self.checkpoint_dir and (final or due):  # final: also when the schedule ends with a test
                    self.write_state()
        finally:
            self.env.close()
        rate = self.step / max(time.monotonic() - self.t0, 1e-9)
        self.ep.metrics(
            "world",
            {
                "step": self.total_steps,
                "episodes": self.trained,
                "steps_per_s": rate,
                "late_actions": self.late_actions,
            },
            final=True,
        )
        return True

    def run_episode(self, episode: int, mode: str, final: bool) -> dict | None:
        """One episode; returns its record (None if the run was stopped meanwhile)."""
        cfg, env, ep = self.cfg, self.env, self.ep
        env.reset(episode if mode == "train" else 1_000_000 + episode)
        horizon, t, reward, done, total, collided = cfg.steps_per_episode, 0, 0.0, False, 0.0, False
        active_before: set[str] = set()
        while not ep.stopping:
            self.step += 1
            ep.t_sim = round(self.step * cfg.step_length, 6)  # one clock across episodes, for the medium
            ids, xy, speed = env.positions()
            delivered = self.sync_medium(self.positions_for(self.step, ids), {"xy": xy, "speed": speed})
            observations = env.observations()
            positions = {n: xy[i] for i, n in enumerate(ids)}
            # terminal: the episode ended in a state with no future (a collision); the horizon and a vehicle
            # leaving the road are truncations, from which the learners bootstrap
            info = Act(
                episode=episode,
                mode=mode,
                t=t,
                first=t == 0,
                final=final and done,
                terminal=done and collided and cfg.end_on_collision,
            )
            expected = set()
            for node, obs in observations.items():
                self.send(node, obs, positions.get(node), reward, done, info, delivered)
                expected.add(node)
            for node in active_before - observations.keys():  # its vehicle left: the end of its episode (a truncation)
                self.send(
                    node,
                    self.last_obs[node],
                    None,
                    reward,
                    True,
                    msgspec.structs.replace(info, left=True, terminal=False),
                    delivered,
                )
                expected.add(node)
            self.last_obs.update(observations)
            active_before = set(observations)
            actions = self.collect_step(expected)
            self.note_radio(actions)
            if done:
                break
            env.step({n: float(a.value) for n, a in actions.items() if a.value is not None and n in observations})
            t += 1
            reward, collided = env.reward(), env.collided()
            total += reward
            done = terminated(t, horizon, collided, end_on_collision=cfg.end_on_collision)
            self.progress(self.step, self.total_steps + 1, episode=episode)  # the run's end is sent by run()
        else:
            return None
        record = {
            "episode": episode,
            "mode": mode,
            "score": total / horizon,
            "steps": t,
            "collided": collided,
            "mean_speed": env.mean_speed(),
            "wall_s": round(time.monotonic() - self.t0, 2),
        }
        ep.metrics("cav_episode", record)
        log.info(
            "episode %d (%s): score %.4f in %d steps%s",
            episode,
            mode,
            record["score"],
            t,
            ", collision" if collided else "",
        )
        return record

    def collect_step(self, expected: set[str]) -> dict:
        """The step's actions; the run's first step waits longer (learners build their networks on start)."""
        if self.step > 1:
            return self.collect_actions(self.step, expected)
        deadline, self.deadline_s = self.deadline_s, max(self.deadline_s, FIRST_STEP_WAIT_S)
        try:
            return self.collect_actions(self.step, expected)
        finally:
            self.deadline_s = deadline

    def send(self, node: str, obs, xy, reward: float, done: bool, info: Act, delivered) -> None:
        ep = self.ep
        if node in ep.peers.down or not ep.peers.knows(node):
            return
        body = Observation(
            step=self.step,
            reward=reward,
            done=done,
            info=info,
            radio_expected=expected_radio(delivered, node),
        )
        arrays = {"obs": np.asarray(obs, np.float32)}
        if xy is not None:
            arrays["xy"] = np.asarray(xy, np.float64)
        ep.peers.send(node, ep.stamper.encode(body, node, arrays))

    def write_state(self) -> None:
        save_json({"episodes_done": self.trained, "step": self.step}, self.checkpoint_dir / WORLD_STATE)


def run_cav_world(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    net_dir: str,
    deadline_s: float,
    checkpoint_dir: str | None,
    checkpoint_every: int,
    start_episode: int = 0,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the CAV world process (curve_secret and coordinator_key: CURVE, Z85)."""
    ep = Endpoint(
        node_id, "world", coordinator, curve=Curve.from_settings(curve_secret, coordinator_key=coordinator_key)
    )

    def build() -> CavWorldProcess:
        cfg = CavWorld.model_validate(world)
        return CavWorldProcess(
            ep,
            cfg,
            make_env(cfg, Path(net_dir), seed),
            deadline_s,
            Path(checkpoint_dir) if checkpoint_dir else None,
            checkpoint_every,
            start_episode,
        )

    return serve_world(ep, build)
