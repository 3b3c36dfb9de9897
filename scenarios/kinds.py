"""The registry of world kinds: each kind is one folder of scenarios/ whose `kind.py` declares a WorldKind, and
one line of KINDS here. Nothing else names a kind: the config, the plan and the fork server's preloads ask here."""

from __future__ import annotations

import importlib
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel

if TYPE_CHECKING:
    from .config import ScenarioConfig
    from .espark.task import Task
    from .plan import RunPlan

#: kind name -> "module:attribute" of its WorldKind (imported when a scenario of that kind is loaded)
KINDS: dict[str, str] = {
    "figure8": "scenarios.beacons.kind:KIND",
    "warehouse": "scenarios.warehouse.kind:KIND",
    "cav": "scenarios.cav.kind:KIND",
    "routing": "scenarios.routing.kind:KIND",
    "signals": "scenarios.signals.kind:KIND",
    "inventory": "scenarios.inventory.kind:KIND",
    "pettingzoo": "scenarios.pettingzoo.kind:KIND",
}
DEFAULT_KIND = "figure8"  # a scenario file without world.kind


@dataclass(frozen=True)
class WorldKind:
    """What a world kind is made of: its [world] and [algo] tables, the checks across tables, what to launch,
    what its processes preload and whether a run of it resumes from checkpoints."""

    name: str
    world: type[BaseModel]  # the [world] table (its `kind` field is the name)
    algo: type[BaseModel] | None  # the [algo] table; None: the kind takes no [algo] and its agents use [role]
    plan: Callable[..., RunPlan]  # (cfg, run_dir, resume) -> RunPlan; imported lazily through `plan_target`
    check: Callable[[ScenarioConfig, str], None] | None = None  # rules across tables, raising ConfigError
    preload: tuple[str, ...] = ()  # modules the fork server imports once for this kind's processes
    resumable: bool = False  # whether `netmarl run --resume` can start a run of it from checkpoints
    espark: str | None = None  # "module:attribute" of its eSpark Task (scenarios/espark/task.py); None: no eSpark
    # `netmarl export` / `netmarl eval` on a run of this kind: "module:function" (None: the kind has no such tool)
    export: str | None = None  # (run_dir, agent or None, out) -> {agent: written path}
    evaluate: str | None = None  # (run_dir, episodes=, deterministic=) -> {"episodes": [...], "score": ..., "agents"}


def lazy(target: str) -> Callable[..., Any]:
    """A function given by "module:attribute", imported on its first call (plans import SUMO, torch...)."""

    def call(*args, **kwargs):
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    call.__qualname__ = call.__name__ = target
    return call


@cache
def world_kind(name: str) -> WorldKind:
    """The registered kind called name; KeyError if there is none."""
    module, attr = KINDS[name].split(":")
    kind = getattr(importlib.import_module(module), attr)
    assert kind.name == name, f"{KINDS[name]} declares kind {kind.name!r}, registered as {name!r}"
    return kind


def espark_task(name: str) -> Task:
    """The eSpark Task of world kind name; ValueError if the kind does not support eSpark."""
    target = world_kind(name).espark
    if target is None:
        supported = sorted(k for k in KINDS if world_kind(k).espark)
        raise ValueError(f"world kind {name!r} has no eSpark task (eSpark runs on: {', '.join(supported)})")
    module, attr = target.split(":")
    return getattr(importlib.import_module(module), attr)


def run_tool(run_dir: Path, tool: str) -> Callable[..., Any]:
    """The `tool` ("export" or "evaluate") of the world kind of the run in run_dir: FileNotFoundError if run_dir
    is not a run folder, ValueError if its kind has no such tool."""
    path = run_dir / "config.toml"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run folder (no config.toml)")
    name = tomllib.loads(path.read_text()).get("world", {}).get("kind", DEFAULT_KIND)
    target = getattr(world_kind(name), tool) if name in KINDS else None
    if target is None:
        have = sorted(k for k in KINDS if getattr(world_kind(k), tool))
        raise ValueError(f"{run_dir} is a {name!r} run; `{tool}` is for runs of kind {', '.join(have)}")
    return lazy(target)
