"""Plan a routing run: build the map, fix the trips and traffic, say which world and which routers to launch."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from agent_node.overrides import set_fields
from agent_node.roles.settings import RouterSettings

from ..config import ConfigError, ScenarioConfig
from ..plan import RunPlan
from ..step_driver import node_name
from . import results
from .config import RoutingWorld
from .maps import build_map, fixed_trips, traffic_routes
from .observe import junction_ids
from .world import WORLD_STATE


def plan_routing(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> RunPlan:
    world: RoutingWorld = cfg.world
    algo = cfg.algo
    road = build_map(world.map, run_dir / "net", seed=0)
    trips = fixed_trips(road.net, world.agents, world.trips_seed)
    routes = traffic_routes(road.net, run_dir / "net" / f"{world.traffic}.rou.xml", world.traffic, cfg.run.seed)
    import sumolib

    n_junctions = len(junction_ids(sumolib.net.readNet(str(road.net))))
    settings = RouterSettings.model_validate(
        {
            "name": "router",
            "method": algo.method,
            "alpha_mode": algo.alpha_mode,
            "alpha_fixed": algo.alpha_fixed,
            "dtw_repr": algo.dtw_repr,
            "dtw_scale": algo.dtw_scale,
            "ppo": set_fields(algo.ppo),
            "n_junctions": n_junctions,
            "torch_threads": algo.torch_threads,
            "checkpoint_dir": str(run_dir / "checkpoints"),
        }
    ).model_dump(mode="json")
    start = start_episode = 0
    if resume is not None:
        state = resume / "checkpoints" / WORLD_STATE
        if not state.exists():
            raise ConfigError(f"--resume {resume}: no {state.relative_to(resume)} (no checkpoint was written)")
        saved = json.loads(state.read_text())
        start, start_episode = saved["epochs_done"], saved["episode"]
        settings["resume_dir"] = str(resume / "checkpoints")
    kwargs = dict(
        seed=cfg.run.seed,
        world=world.model_dump(mode="json"),
        algo=algo.model_dump(mode="json"),
        net=str(road.net),
        routes=str(routes),
        trips=[dataclasses.asdict(t) for t in trips],
        run_dir=str(run_dir),
        deadline_s=cfg.run.step_deadline_s,
        start_epoch=start,
        start_episode=start_episode,
    )
    agents = [node_name(t.agent) for t in trips]
    return RunPlan(
        "scenarios.routing.world:run_routing_world",
        kwargs,
        {a: "router" for a in agents},
        {"router": settings},
        summarize=results.summarize,
        plot=results.plot,
        notes={"steps": world.epochs, "start_epoch": start, "map": road.stand_in},
    )
