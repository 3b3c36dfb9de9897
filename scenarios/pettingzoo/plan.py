"""Plan a hosted PettingZoo run: the world process with the user's environment, one ippo-role learner per agent
(agent<i> drives possible_agents[i]), each sized to its agent's spaces."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agent_node.learners.ppo import PPOConfig
from agent_node.overrides import set_fields
from agent_node.roles.ippo import IppoSettings

from ..config import ScenarioConfig
from ..plan import RunPlan
from ..step_driver import node_name
from .config import PettingZooWorld
from .host import agent_spaces, load_env


def plan_pettingzoo(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    world: PettingZooWorld = cfg.world
    env = load_env(world.env, world.env_kwargs)
    try:
        names = list(env.possible_agents)
        sizes = [agent_spaces(env, a) for a in names]
    finally:
        env.close()
    nodes = [node_name(i) for i in range(len(names))]
    ppo = {
        node: PPOConfig.model_validate(
            {"obs_dim": s.obs_dim, "n_actions": s.n_actions, **set_fields(cfg.algo.ppo)}
        ).model_dump(exclude={"init_seed", "seed"})
        for node, s in zip(nodes, sizes)
    }
    settings = IppoSettings.model_validate(
        {
            "torch_threads": cfg.algo.torch_threads,
            "checkpoint_dir": str(run_dir / "checkpoints"),
        }
    ).model_dump(mode="json")
    kwargs = dict(seed=cfg.run.seed, world=world.model_dump(mode="json"), deadline_s=cfg.run.step_deadline_s)
    notes = {"steps": world.episodes, "env": world.env, "agents": dict(zip(nodes, names)), "role": "ippo"}
    if cfg.algo.method == "role":  # your own role: its settings as given, the same in every agent process
        role = cfg.algo.role
        return RunPlan(
            "scenarios.pettingzoo.world:run_pettingzoo_world",
            kwargs,
            {node: role for node in nodes},
            {role: {"name": role, **cfg.algo.role_settings}},
            summarize=summarize,
            notes={**notes, "role": role},
        )
    return RunPlan(
        "scenarios.pettingzoo.world:run_pettingzoo_world",
        kwargs,
        {node: "ippo" for node in nodes},
        {"ippo": settings},
        summarize=summarize,
        notes=notes,
        agent_settings=lambda node: {"ppo": ppo[node]},
    )


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
