"""Plan a warehouse run: train (or load) the policies, then one dispatcher and n robot processes."""

from __future__ import annotations

import json
import logging
import shutil
from functools import partial
from pathlib import Path

import numpy as np

from agent_node.overrides import set_fields
from agent_node.warehouse.layout import DISPATCHER, robot_id
from agent_node.warehouse.model import uniform_local_policy

from ..config import ScenarioConfig
from ..plan import RunPlan
from . import results
from .config import WarehouseAlgo

log = logging.getLogger("scenarios.warehouse")


def plan_warehouse(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    world, algo = cfg.world, cfg.algo
    model, n, seed = world.model, world.robots, cfg.run.seed
    policy = run_dir / "policy"
    policy.mkdir(parents=True, exist_ok=True)
    if algo.policy_dir:
        for name in ("pi_g.npz", "pi_l.npy", "training.json"):
            if (Path(algo.policy_dir) / name).exists():
                shutil.copy(Path(algo.policy_dir) / name, policy / name)
    elif algo.dispatcher == "learned":
        train(cfg, algo, policy)
    if not (policy / "pi_l.npy").exists():  # a baseline dispatcher without a trained pair: uniform robots
        np.save(policy / "pi_l.npy", uniform_local_policy(model.zones))
    if algo.dispatcher == "learned" and not (policy / "pi_g.npz").exists():
        raise FileNotFoundError(f"{algo.policy_dir}: no pi_g.npz for a learned dispatcher")
    if algo.nash_gap:
        write_nash_gap(cfg, algo, policy)
    full = algo.dispatcher == "full_information"
    model_dict = model.model_dump(mode="json")
    dispatcher = dict(
        name="dispatcher",
        n=n,
        k=n if full else algo.k,
        horizon=world.horizon,
        policy="mode" if full else algo.dispatcher,
        policy_file=str(policy / "pi_g.npz"),
        model=model_dict,
        poll_timeout_s=algo.poll_timeout_s,
        replace_lost=algo.replace_lost_polls,
        window=algo.window,
        record_polls=algo.record,
        step_budget_s=max(cfg.run.step_deadline_s - 2 * algo.poll_timeout_s, algo.poll_timeout_s),
    )
    robot = dict(
        name="robot", horizon=world.horizon, policy=str(policy / "pi_l.npy"), model=model_dict, record_zones=algo.record
    )
    agents = {DISPATCHER: "dispatcher", **{robot_id(i): "robot" for i in range(n)}}
    kwargs = dict(
        seed=seed, world=world.model_dump(mode="json"), steps=cfg.run.steps, deadline_s=cfg.run.step_deadline_s
    )
    return RunPlan(
        "scenarios.warehouse.world:run_floor",
        kwargs,
        agents,
        {"dispatcher": dispatcher, "robot": robot},
        summarize=partial(results.summarize, gamma=model.gamma),
        plot=partial(results.plot, gamma=model.gamma),
    )


def train(cfg: ScenarioConfig, algo: WarehouseAlgo, policy: Path) -> None:
    """ALTERNATING-MARL against the known model (the offline trainer), written to policy/."""
    from agent_node.learners.alternating.alternating import alternating_marl

    acfg = training_config(cfg, algo)
    log.info("training ALTERNATING-MARL: n=%d k=%d", acfg.n, acfg.k)
    out = alternating_marl(cfg.world.model, acfg, log_path=policy / "training.jsonl")
    out.pi_g.save(policy / "pi_g.npz")
    np.save(policy / "pi_l.npy", out.pi_l)
    summary = {
        "value": out.value,
        "initial_value": out.initial_value,
        "stop": out.stop,
        "sweeps": out.sweeps,
        "seconds": round(out.seconds, 2),
        "g_samples": out.g_samples,
        "l_evaluations": out.l_evaluations,
        "accepted": sum(1 for r in out.log if r.decision == "accept"),
    }
    (policy / "training.json").write_text(json.dumps(summary))


def training_config(cfg: ScenarioConfig, algo: WarehouseAlgo):
    """[algo.train] as an AlternatingConfig: n and seed from the scenario unless set there, k always algo.k."""
    from agent_node.learners.alternating.alternating import AlternatingConfig

    return AlternatingConfig.model_validate(
        {"n": cfg.world.robots, "seed": cfg.run.seed, **set_fields(algo.train), "k": algo.k}
    )


def write_nash_gap(cfg: ScenarioConfig, algo: WarehouseAlgo, policy: Path) -> None:
    """The empirical Nash gap of the pair in policy/ (docs/alternating_marl.md, A-6), by the one-process simulator."""
    from agent_node.learners.alternating.g_learn import TablePolicy
    from agent_node.learners.alternating.nash_gap import nash_gap

    pi_g = TablePolicy.load(policy / "pi_g.npz")
    pi_l = np.load(policy / "pi_l.npy", allow_pickle=False)
    gap = nash_gap(cfg.world.model, pi_g, pi_l, algo.k, n=cfg.world.robots)
    (policy / "nash_gap.json").write_text(
        json.dumps(
            {
                "gap": gap.gap,
                "global": gap.global_.gap,
                "global_ci": list(gap.global_.ci),
                "local": gap.local.gap,
                "local_ci": list(gap.local.ci),
                "value": gap.global_.value,
            }
        )
    )
