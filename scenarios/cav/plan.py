"""Plan a CAV run: build the road, say which world and which agents to launch, and where to resume from."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path

from agent_node.overrides import set_fields
from agent_node.roles.settings import CavSettings

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
    algo = cfg.algo
    settings = algo.model_dump(mode="json")
    settings["sac"] = {"action_bound": world.bound, **set_fields(algo.sac)}
    settings["checkpoint_dir"] = str(run_dir / "checkpoints")
    start = 0
    if resume is not None:
        state = resume / "checkpoints" / WORLD_STATE
        if not state.exists():
            raise ConfigError(f"--resume {resume}: no {state.relative_to(resume)} (no checkpoint was written)")
        start = json.loads(state.read_text())["episodes_done"]
        settings["resume_dir"] = str(resume / "checkpoints")
    unknown = sorted(set(world.external) - set(agents))
    if unknown:
        raise ConfigError(f"world.external: {unknown} are not agents of this scenario (agents: {agents})")
    if algo.method == "deploy":
        return plan_deploy(cfg, run_dir, agents, algo)
    kwargs = dict(
        seed=cfg.run.seed,
        world=world.model_dump(mode="json"),
        net_dir=str(net_dir),
        deadline_s=cfg.run.step_deadline_s,
        checkpoint_dir=str(run_dir / "checkpoints"),
        checkpoint_every=algo.checkpoint_every,
        start_episode=start,
    )
    n = len(world.schedule(start))
    return RunPlan(
        "scenarios.cav.world:run_cav_world",
        kwargs,
        {a: "cav" for a in agents},
        {"cav": settings},
        summarize=partial(results.summarize, agents=agents),
        plot=partial(results.plot, agents=agents),
        notes={"steps": n * (world.steps_per_episode + 1), "start_episode": start},
        external=set(world.external),
    )


def plan_deploy(cfg: ScenarioConfig, run_dir: Path, agents: list[str], algo: CavSettings) -> RunPlan:
    """Exported policies acting, no learning: each agent's policy travels to it at registration (a
    hand-started device node may use its own file with `--policy`)."""
    world: CavWorld = cfg.world
    if not algo.policy_dir:
        raise ConfigError('algo.policy_dir: method = "deploy" needs the folder of exported policies (netmarl export)')
    policy_dir = Path(algo.policy_dir)
    missing = [a for a in agents if not (policy_dir / f"{a}.npz").exists()]
    if missing:
        raise ConfigError(f"algo.policy_dir: {policy_dir} has no policy for {missing} (expected AGENT.npz files)")
    kwargs = dict(
        seed=cfg.run.seed,
        world=world.model_dump(mode="json"),
        net_dir=str(run_dir / "net"),
        deadline_s=cfg.run.step_deadline_s,
        checkpoint_dir=None,
        checkpoint_every=0,
    )
    n = len(world.schedule())
    return RunPlan(
        "scenarios.cav.world:run_cav_world",
        kwargs,
        {a: "policy" for a in agents},
        {"policy": {"name": "policy"}},
        summarize=partial(results.summarize, agents=agents),
        plot=partial(results.plot, agents=agents),
        notes={"steps": n * (world.steps_per_episode + 1)},
        external=set(world.external),
        agent_settings=lambda agent: {"policy_npz": (policy_dir / f"{agent}.npz").read_bytes()},
    )
