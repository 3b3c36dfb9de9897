"""Plan a CAV run: build the road, say which world and which agents to launch, and where to resume from."""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from agent_node.roles.cav import CavSettings

from ..config import ConfigError, ScenarioConfig
from ..plan import RunPlan
from . import results
from .config import CavWorld
from .world import WORLD_STATE, make_env


def plan_cav(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    world: CavWorld = cfg.world
    net_dir = run_dir / "net"
    env = make_env(world, net_dir, cfg.run.seed)  # builds the network once; the world process reuses it
    agents = list(env.agent_ids)
    algo = CavSettings.model_validate({"name": "cav", **cfg.algo})
    settings = algo.model_dump(mode="json")
    settings["sac"] = {"action_bound": world.bound, **algo.sac}
    settings["checkpoint_dir"] = str(run_dir / "checkpoints")
    start = 0
    if resume is not None:
        state = resume / "checkpoints" / WORLD_STATE
        if not state.exists():
            raise ConfigError(f"--resume {resume}: no {state.relative_to(resume)} (no checkpoint was written)")
        start = json.loads(state.read_text())["episodes_done"]
        settings["resume_dir"] = str(resume / "checkpoints")
    kwargs = dict(seed=cfg.run.seed, world=world.model_dump(mode="json"), net_dir=str(net_dir),
                  deadline_s=cfg.run.step_deadline_s, checkpoint_dir=str(run_dir / "checkpoints"),
                  checkpoint_every=algo.checkpoint_every, start_episode=start)
    n = len(world.schedule(start))
    return RunPlan("scenarios.cav.world:run_cav_world", kwargs, {a: "cav" for a in agents}, {"cav": settings},
                   summarize=partial(results.summarize, agents=agents), plot=partial(results.plot, agents=agents),
                   notes={"steps": n * (world.steps_per_episode + 1), "start_episode": start})
