"""The world-kind registry: every kind is one folder and one entry, and nothing central names a kind."""

from __future__ import annotations

import ast
import sys
import textwrap
import tomllib

import pytest
from conftest import ROOT

from scenarios import config, kinds, plan
from scenarios.config import ConfigError, load_scenario

CENTRAL = ["scenarios/config.py", "scenarios/plan.py", "coordinator/launcher.py", "coordinator/supervisor.py"]


@pytest.mark.parametrize("name", sorted(kinds.KINDS))
def test_every_registered_kind_is_one_folder(name):
    kind = kinds.world_kind(name)
    assert kind.name == name and kind.world.model_fields["kind"].default == name
    assert kinds.KINDS[name].startswith(f"scenarios.{kind.plan.__name__.split('.')[1]}.kind:")
    model = config.scenario_model(name)
    assert model.model_fields["world"].annotation is kind.world
    if kind.algo is not None:
        assert model.model_fields["algo"].annotation is kind.algo


@pytest.mark.parametrize("path", CENTRAL)
def test_central_modules_name_no_kind(path):
    strings = {
        node.value
        for node in ast.walk(ast.parse((ROOT / path).read_text()))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    assert not strings & set(kinds.KINDS), f"{path} names a world kind: {strings & set(kinds.KINDS)}"


def test_a_new_kind_needs_only_its_folder_and_one_entry(tmp_path, monkeypatch):
    """A kind defined outside the project, registered by one line, is parsed, checked and planned."""
    (tmp_path / "toy_kind.py").write_text(
        textwrap.dedent(
            """
            from typing import Literal
            from pydantic import BaseModel, ConfigDict
            from scenarios.config import ConfigError
            from scenarios.kinds import WorldKind
            from scenarios.plan import RunPlan

            class ToyWorld(BaseModel):
                model_config = ConfigDict(extra="forbid")
                kind: Literal["toy"] = "toy"
                toys: int = 2

            class ToyAlgo(BaseModel):
                model_config = ConfigDict(extra="forbid")
                speed: float = 1.0

            def check(cfg, where):
                if cfg.algo.speed > 10:
                    raise ConfigError(f"{where}: algo.speed: too fast")

            def plan(cfg, run_dir, resume=None):
                agents = {f"toy{i}": "beacon" for i in range(cfg.world.toys)}
                return RunPlan("toy_kind:run_world", {}, agents, {"beacon": {"name": "beacon"}})

            KIND = WorldKind("toy", ToyWorld, ToyAlgo, plan, check, preload=("toy_kind",))
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(kinds.KINDS, "toy", "toy_kind:KIND")
    for cached in (kinds.world_kind, config.scenario_model):
        cached.cache_clear()
    try:
        path = tmp_path / "toy.toml"
        path.write_text('[world]\nkind = "toy"\ntoys = 3\n[algo]\nspeed = 2.0\n')
        cfg = load_scenario(path)
        assert (cfg.world.toys, cfg.algo.speed) == (3, 2.0)
        assert plan.preload_modules(cfg) == ["toy_kind"]
        assert sorted(plan.plan_run(cfg, tmp_path).agents) == ["toy0", "toy1", "toy2"]
        with pytest.raises(ValueError, match="no checkpoints"):
            plan.plan_run(cfg, tmp_path, resume=tmp_path)
        with pytest.raises(ConfigError, match="algo.speed: too fast"):
            load_scenario(path, ["algo.speed=11"])
        with pytest.raises(ConfigError, match="algo.colour"):
            load_scenario(path, ["algo.colour=1"])
    finally:
        for cached in (kinds.world_kind, config.scenario_model):
            cached.cache_clear()
        sys.modules.pop("toy_kind", None)


def test_an_unknown_kind_names_the_registered_ones(tmp_path):
    path = tmp_path / "moon.toml"
    path.write_text('[world]\nkind = "moon"\n')
    with pytest.raises(ConfigError, match="world.kind: must be one of: figure8, warehouse, cav"):
        load_scenario(path)


@pytest.mark.parametrize(
    "scenario, table, value",
    [
        ("signals_espark.toml", "ppo", ("lr", 0.001)),
        ("merge_rsm_masac.toml", "sac", ("batch_size", 128)),
        ("warehouse_alternating.toml", "train", ("l_sweeps", 2)),
    ],
)
def test_override_tables_are_typed_and_keep_only_what_was_set(scenario, table, value):
    """[algo.ppo] / [algo.sac] / [algo.train] are the learners' models: a wrong field is named where it is, and
    only the fields set travel (the plan and the agents fill in the rest, as with the old plain tables)."""
    from agent_node.overrides import set_fields
    from coordinator.run_folder import config_toml

    field, number = value
    cfg = load_scenario(ROOT / "scenarios" / scenario, [f"algo.{table}.{field}={number}"])
    assert set_fields(getattr(cfg.algo, table))[field] == number
    written = tomllib.loads(config_toml(cfg.model_dump(mode="json")))  # what the run folder's config.toml holds
    assert written["algo"][table] == set_fields(getattr(cfg.algo, table))
    with pytest.raises(ConfigError, match=f"algo.{table}.{field}"):
        load_scenario(ROOT / "scenarios" / scenario, [f'algo.{table}.{field}="many"'])
    with pytest.raises(ConfigError, match=f"algo.{table}.colour"):
        load_scenario(ROOT / "scenarios" / scenario, [f"algo.{table}.colour=1"])


def test_the_scenario_reference_is_generated_from_the_models():
    """docs/scenario_reference.md is what the models say (regenerate: python -m scenarios.reference)."""
    from scenarios.reference import reference

    committed = (ROOT / "docs" / "scenario_reference.md").read_text()
    assert committed == reference(), "run: python -m scenarios.reference > docs/scenario_reference.md"
