"""Plan a traffic-signal run: one ippo-role learner (the masked PPO) per light of the chosen RESCO map, or one
signal_controller (FTC / MaxPressure, no learning) per light."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import sumolib

from agent_node.learners.settings import PPOConfig
from agent_node.overrides import set_fields
from agent_node.roles.settings import IppoSettings
from agent_node.roles.signal_controller import SignalControllerSettings
from scenarios.espark.masker import ExplorationSpec
from scenarios.espark.settings import IPPO_DEFAULTS

from ..config import ScenarioConfig
from ..plan import RunPlan
from ..step_driver import node_name
from .config import SignalWorld
from .env import OBS_DIM
from .maps import controlled_lights, signal_map
from .phases import PHASES


def plan_signals(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    world: SignalWorld = cfg.world
    algo = cfg.algo
    if algo.method == "random_pruning":  # eSpark paper App. D.3.1: IPPO guided by random masks during training
        world = world.model_copy(update={"exploration": ExplorationSpec(kind="random")})
    road = signal_map(world.map)
    lights = controlled_lights(sumolib.net.readNet(str(road.net)), world.lights)
    if algo.method in ("ftc", "max_pressure"):  # rules, nothing to train: the test episodes only
        hold = algo.ftc_phase_s / world.delta_s
        if algo.method == "ftc" and (hold < 1 or abs(hold - round(hold)) > 1e-9):
            raise ValueError(
                f"algo.ftc_phase_s = {algo.ftc_phase_s} must be a multiple of world.delta_s = {world.delta_s}"
            )
        world = world.model_copy(update={"episodes": 0, "eval_episodes": 0})
        role = "signal_controller"
        settings = SignalControllerSettings(method=algo.method, hold=round(hold)).model_dump(mode="json")
    else:
        ppo = PPOConfig.model_validate(
            {**IPPO_DEFAULTS, "obs_dim": OBS_DIM, "n_actions": len(PHASES), **set_fields(algo.ppo)}
        )
        role = "ippo"
        settings = IppoSettings.model_validate(
            {
                "ppo": ppo.model_dump(exclude={"init_seed", "seed"}),
                "torch_threads": algo.torch_threads,
                "checkpoint_dir": str(run_dir / "checkpoints"),
                "resume_dir": algo.init_weights,
            }
        ).model_dump(mode="json")
    kwargs = dict(
        seed=cfg.run.seed, world=world.model_dump(mode="json"), run_dir=str(run_dir), deadline_s=cfg.run.step_deadline_s
    )
    agents = [node_name(i) for i in range(len(lights))]
    return RunPlan(
        "scenarios.signals.world:run_signal_world",
        kwargs,
        {a: role for a in agents},
        {role: settings},
        summarize=summarize,
        notes={"steps": world.episodes, "lights": dict(zip(agents, lights)), "map": road.title, "method": algo.method},
    )


def summarize(run_dir: Path, metrics: list[dict]) -> dict:
    """summary.json's results: the test episodes' delay, trip time and waiting time (and the last training one)."""
    eps = [m for m in metrics if m.get("kind") == "signal_episode"]
    out = {}
    for mode in ("train", "test"):
        rows = [e for e in eps if e["mode"] == mode]
        if mode == "train":
            rows = rows[-1:]
        for key in (
            "delay",
            "trip_time",
            "waiting_time",
            "return",
            "delay_finished",
            "trip_time_finished",
            "waiting_time_finished",
            "undeparted",
        ):
            vals = [r[key] for r in rows if r.get(key) is not None]
            out[f"{mode}_{key}"] = float(np.mean(vals)) if vals else None
    out["train_episodes"] = sum(e["mode"] == "train" for e in eps)
    return out
