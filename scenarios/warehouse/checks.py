"""Checks of a warehouse scenario beyond its models' own: cross-field rules and the policy files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import ValidationError

from ..config import ConfigError, ScenarioConfig, explain


def check_warehouse(cfg: ScenarioConfig, where: str) -> None:
    """The warehouse's cross-field rules and policy files; ConfigError names the field."""
    if "role" in cfg.model_fields_set:
        raise ConfigError(f"{where}: role: the warehouse's roles are fixed (dispatcher, robot); set them in [algo]")
    algo = cfg.algo
    if algo.k > cfg.world.robots:
        raise ConfigError(f"{where}: algo.k: the dispatcher cannot poll {algo.k} of {cfg.world.robots} robots")
    if cfg.netsim.mode == "emulated" and cfg.netsim.clock != "wall":
        raise ConfigError(
            f"{where}: netsim.clock: the warehouse's polls are answered within a step, "
            'so the medium must run on the wall clock (netsim.clock = "wall")'
        )
    if cfg.run.step_deadline_s <= algo.poll_timeout_s:
        raise ConfigError(
            f"{where}: run.step_deadline_s ({cfg.run.step_deadline_s:g} s) must exceed "
            f"algo.poll_timeout_s ({algo.poll_timeout_s:g} s): the world waits for the polls"
        )
    if algo.policy_dir and not Path(algo.policy_dir).is_dir():
        raise ConfigError(f"{where}: algo.policy_dir: no such folder {algo.policy_dir!r}")
    if algo.nash_gap and algo.dispatcher != "learned" and not algo.policy_dir:
        raise ConfigError(
            f'{where}: algo.nash_gap: needs a learned pair (algo.dispatcher = "learned" or algo.policy_dir)'
        )
    if algo.policy_dir:
        path = Path(algo.policy_dir) / "pi_l.npy"
        try:
            cfg.world.model.check_local_policy(np.load(path, allow_pickle=False))
        except (OSError, ValueError) as err:
            raise ConfigError(f"{where}: algo.policy_dir: no usable robot policy in {path}: {err}") from None
    if algo.policy_dir and algo.dispatcher == "learned":
        from agent_node.learners.alternating.g_learn import TablePolicy

        path = Path(algo.policy_dir) / "pi_g.npz"
        try:
            table = TablePolicy.load(path)
        except (OSError, ValueError, KeyError) as err:
            raise ConfigError(f"{where}: algo.policy_dir: cannot read a dispatcher table from {path}: {err}") from None
        if (table.k, table.zones) != (algo.k, cfg.world.model.zones):
            raise ConfigError(
                f"{where}: algo.policy_dir: {path} was trained for k = {table.k} and "
                f"{table.zones} zones, this run has k = {algo.k} and {cfg.world.model.zones} zones"
            )
    from .plan import training_config

    try:
        training_config(cfg, algo)
    except ValidationError as err:
        raise ConfigError(explain(err, where, "algo.train.")) from None
