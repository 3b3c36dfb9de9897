"""Plan an inventory run: one stocker-role learner (parameter-shared IPPO over its SKUs) per MABIM warehouse."""

from __future__ import annotations

from pathlib import Path

from agent_node.learners.settings import PPOConfig
from agent_node.overrides import set_fields
from agent_node.roles.settings import StockerSettings
from scenarios.espark.masker import ExplorationSpec
from scenarios.espark.settings import IPPO_DEFAULTS

from ..config import ScenarioConfig
from ..plan import RunPlan
from ..step_driver import node_name
from .config import N_ACTIONS, InventoryWorld
from .observe import OBS_DIM


def plan_inventory(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    """resume: a run folder whose checkpoints the warehouses start from (else algo.init_weights, if set)."""
    world: InventoryWorld = cfg.world
    algo = cfg.algo
    if algo.method == "random_pruning":  # eSpark paper App. D.3.1: IPPO guided by random masks during training
        world = world.model_copy(update={"exploration": ExplorationSpec(kind="random")})
    ppo = PPOConfig.model_validate(
        {**IPPO_DEFAULTS, "obs_dim": OBS_DIM, "n_actions": N_ACTIONS, **set_fields(algo.ppo)}
    )
    resume_dir = str(resume / "checkpoints") if resume is not None else algo.init_weights
    settings = StockerSettings.model_validate(
        {
            "name": "stocker",
            "ppo": ppo.model_dump(exclude={"init_seed", "seed"}),
            "torch_threads": algo.torch_threads,
            "checkpoint_dir": str(run_dir / "checkpoints"),
            "resume_dir": resume_dir,
        }
    ).model_dump(mode="json")
    kwargs = dict(
        seed=cfg.run.seed, world=world.model_dump(mode="json"), run_dir=str(run_dir), deadline_s=cfg.run.step_deadline_s
    )
    agents = [node_name(i) for i in range(world.env.echelons)]
    return RunPlan(
        "scenarios.inventory.world:run_inventory_world",
        kwargs,
        {a: "stocker" for a in agents},
        {"stocker": settings},
        summarize=summarize,
        notes={
            "steps": world.episodes,
            "skus": world.env.skus,
            "warehouses": len(agents),
            "method": algo.method,
            "exploration": world.exploration.kind,
        },
    )


def summarize(run_dir: Path, metrics: list[dict]) -> dict:
    """summary.json's results: mean test profit (reward2, the paper's) and gross margin, the last training episode's
    return, exploration stats."""
    eps = [m for m in metrics if m.get("kind") == "inventory_episode"]
    test = [e for e in eps if e["mode"] == "test"]
    train = [e for e in eps if e["mode"] == "train"]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows) if rows else None  # noqa: E731
    final = [m for m in metrics if m.get("kind") == "world" and m.get("final") and "exploration" in m]
    return {
        "test_profit": mean(test, "profit"),
        "test_gross_margin": mean(test, "gross_margin"),
        "train_return": train[-1]["return"] if train else None,
        "train_episodes": len(train),
        "exploration": final[-1]["exploration"] if final else None,
    }
