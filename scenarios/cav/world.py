"""The CAV world process: episodes of a CavEnv in lock-step with the agents, positions to the medium."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from agent_node.checkpoints import save_json
from protocols.endpoint import Endpoint
from protocols.lockstep import expected_radio
from protocols.messages import Act

from ..parallel_world import ParallelEnvLoop, StepView
from ..step_driver import TEST_SEED, serve_world, world_endpoint
from .config import CavWorld
from .parallel import CavParallelEnv

log = logging.getLogger("scenarios.cav")

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


class CavWorldProcess(ParallelEnvLoop):
    """Runs the episode schedule over the env's ParallelEnv; each step: positions to the medium, observations out,
    accelerations in (an agent that does not answer in time is left out of the step: the env's default)."""

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
        self.par = CavParallelEnv(env, cfg.end_on_collision)
        self.checkpoint_dir, self.checkpoint_every = checkpoint_dir, checkpoint_every
        self.schedule = cfg.schedule(start_episode)
        self.total_steps = len(self.schedule) * (cfg.steps_per_episode + 1)  # + each episode's first observation
        self.trained = start_episode
        self.episode_no, self.final = 0, False
        self.delivered: dict[str, int] | None = None
        self.xy: dict[str, np.ndarray] = {}

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
        self.episode_no, self.final = episode, final
        totals = self.play(mode, episode if mode == "train" else TEST_SEED + episode)
        if totals is None:
            return None
        record = {
            "episode": episode,
            "mode": mode,
            "score": totals.get("score", 0.0) / self.cfg.steps_per_episode,
            "steps": totals["t"],
            "collided": self.par.collided,
            "mean_speed": self.env.mean_speed(),
            "wall_s": round(time.monotonic() - self.t0, 2),
        }
        self.ep.metrics("cav_episode", record)
        log.info(
            "episode %d (%s): score %.4f in %d steps%s",
            episode,
            mode,
            record["score"],
            record["steps"],
            ", collision" if record["collided"] else "",
        )
        return record

    # ---- the loop's hooks -----------------------------------------------------------------------------------
    def node_of(self, i: int, agent: str) -> str:
        return agent  # a slot's process has the slot's name

    def before_observe(self) -> None:
        """The medium gets the step's positions and confirms its deliveries before anyone observes."""
        self.ep.t_sim = round(self.step * self.cfg.step_length, 6)  # one clock across episodes, for the medium
        ids, xy, speed = self.env.positions()
        self.delivered = self.sync_medium(self.positions_for(self.step, ids), {"xy": xy, "speed": speed})
        self.xy = {n: xy[i] for i, n in enumerate(ids)}

    def phase(self, mode: str, agent: str, view: StepView, applied) -> Act:
        # terminal: the episode ended in a state with no future (a collision); the horizon and a vehicle leaving
        # the road are truncations, from which the learners bootstrap
        return Act(
            episode=self.episode_no,
            mode=mode,
            t=view.t,
            first=view.t == 0,
            final=self.final and view.done,
            terminal=view.terms.get(agent, False),
            left=view.infos.get(agent, {}).get("left", False),
        )

    def radio_expected(self, node: str) -> int | None:
        return expected_radio(self.delivered, node)

    def arrays(self, agent: str, obs: dict, infos: dict, mask) -> dict[str, np.ndarray]:
        arrays = {"obs": np.asarray(obs[agent], np.float32)}
        if agent in self.xy and not infos.get(agent, {}).get("left", False):
            arrays["xy"] = np.asarray(self.xy[agent], np.float64)
        return arrays

    def action(self, i: int, answered: bool, value, mask) -> tuple[float | None, None]:
        return (None if value is None else float(value)), None

    def accumulate(self, totals: dict, rewards: dict, infos: dict) -> None:
        totals["score"] = totals.get("score", 0.0) + self.par.reward

    def episode_over(self) -> bool:
        return self.par.done

    def stepped(self) -> None:
        self.progress(self.step, self.total_steps + 1, episode=self.episode_no)  # the run's end is sent by run()

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
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)

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
