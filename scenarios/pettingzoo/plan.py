"""Plan a hosted PettingZoo run: the world process with the user's environment, one learner per agent (agent<i> drives
possible_agents[i]): ippo or isac sized to its agent's spaces, or a role of your own."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent_node.learners.settings import PPOConfig, SACConfig
from agent_node.overrides import set_fields
from agent_node.roles.settings import IppoSettings, IsacSettings

from ..config import ScenarioConfig
from ..plan import RunPlan
from ..step_driver import node_name
from .config import PettingZooWorld
from .host import AgentSpaces, agent_spaces, generic_learner, load_env


def plan_pettingzoo(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    world: PettingZooWorld = cfg.world
    env = load_env(world.env, world.env_kwargs)
    try:
        names = list(env.possible_agents)
        sizes = [agent_spaces(env, a) for a in names]
    finally:
        env.close()
    nodes = [node_name(i) for i in range(len(names))]
    kwargs = dict(seed=cfg.run.seed, world=world.model_dump(mode="json"), deadline_s=cfg.run.step_deadline_s)
    notes = {"steps": world.episodes, "env": world.env, "agents": dict(zip(nodes, names))}
    entry = "scenarios.pettingzoo.world:run_pettingzoo_world"
    if cfg.algo.method == "role":  # your own role: its settings as given, the same in every agent process
        role = cfg.algo.role
        settings = {role: {"name": role, **cfg.algo.role_settings}}
        return RunPlan(
            entry, kwargs, {n: role for n in nodes}, settings, summarize=summarize, notes={**notes, "role": role}
        )
    role = generic_learner(cfg.algo.method, dict(zip(names, sizes)))
    common = {"torch_threads": cfg.algo.torch_threads, "checkpoint_dir": str(run_dir / "checkpoints")}
    if role == "ippo":
        settings = IppoSettings.model_validate(common)
        key, model, overrides = "ppo", PPOConfig, set_fields(cfg.algo.ppo)
    else:
        settings = IsacSettings.model_validate({**common, "updates_per_step": cfg.algo.updates_per_step})
        key, model, overrides = "sac", SACConfig, set_fields(cfg.algo.sac)
    per_node = {  # each learner sized to its agent's spaces
        node: model.model_validate({**overrides, **learner_size(s)}).model_dump(exclude={"init_seed", "seed"})
        for node, s in zip(nodes, sizes)
    }
    return RunPlan(
        entry,
        kwargs,
        {node: role for node in nodes},
        {role: settings.model_dump(mode="json")},
        summarize=summarize,
        notes={**notes, "role": role},
        agent_settings=lambda node: {key: per_node[node]},
    )


def learner_size(spaces: AgentSpaces) -> dict:
    """The learner's sizes for an agent's spaces; isac acts in [-1, 1], which the world maps onto the box."""
    if spaces.continuous:
        return {"obs_dim": spaces.obs_dim, "act_dim": spaces.act_dim, "action_bound": 1.0}
    return {"obs_dim": spaces.obs_dim, "n_actions": spaces.n_actions}


def summarize(run_dir: Path, metrics: list[dict]) -> dict:
    """summary.json's results: the mean return per agent of the test episodes and of the last training ones."""
    eps = [m for m in metrics if m.get("kind") == "pettingzoo_episode"]
    test = [e["return"] for e in eps if e["mode"] == "test"]
    train = [e["return"] for e in eps if e["mode"] == "train"]
    return {
        "test_return": float(np.mean(test)) if test else None,
        "test_return_std": float(np.std(test)) if test else None,
        "train_return_last": float(np.mean(train[-5:])) if train else None,
        "train_return_first": float(np.mean(train[:5])) if train else None,
        "train_episodes": len(train),
    }
