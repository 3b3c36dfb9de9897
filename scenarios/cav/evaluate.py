"""`netmarl eval`: run a CAV run's checkpointed actors on fresh episodes, in one process, and score them."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from .config import CavWorld
from .world import make_env

EVAL_EPISODE_BASE = 2_000_000  # evaluation episodes use seeds no training or test episode used


def load_actors(checkpoints: Path, agents) -> dict:
    """Each agent's SAC, restored from its checkpoint file."""
    import torch

    from agent_node.learners.sac import SAC

    out = {}
    for agent in agents:
        path = checkpoints / f"{agent}.pt"
        if not path.exists():
            raise FileNotFoundError(f"no checkpoint for agent {agent} ({path})")
        out[agent] = SAC.from_state_dict(torch.load(path, weights_only=False)["sac"])
    return out


def evaluate_run(run_dir: Path, episodes: int = 3, deterministic: bool = True) -> dict:
    """Score (sum r / T per episode) of the run's saved policies on `episodes` unseen episodes."""
    cfg_path = run_dir / "config.toml"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.toml)")
    data = tomllib.loads(cfg_path.read_text())
    if data.get("world", {}).get("kind") != "cav":
        raise ValueError(f"{run_dir} is not a CAV run (world.kind is {data.get('world', {}).get('kind')!r})")
    world = CavWorld.model_validate(data["world"])
    env = make_env(world, run_dir / "net", int(data.get("run", {}).get("seed", 0)))
    policies = load_actors(run_dir / "checkpoints", env.agent_ids)
    rows = []
    try:
        for k in range(episodes):
            rows.append(run_episode(env, world, policies, EVAL_EPISODE_BASE + k, deterministic))
    finally:
        env.close()
    return {"score": float(np.mean([r["score"] for r in rows])), "episodes": rows, "agents": list(policies)}


def run_episode(env, world: CavWorld, policies: dict, episode: int, deterministic: bool) -> dict:
    from .maths import terminated

    env.reset(episode)
    total, t, collided = 0.0, 0, False
    while True:
        obs = env.observations()
        actions = {a: float(policies[a].act(o, deterministic=deterministic)[0][0]) for a, o in obs.items()}
        env.step(actions)
        t += 1
        total += env.reward()
        collided = env.collided()
        if terminated(t, world.steps_per_episode, collided, end_on_collision=world.end_on_collision):
            break
    return {"episode": episode, "score": total / world.steps_per_episode, "steps": t, "collided": collided}
