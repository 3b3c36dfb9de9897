"""A run's world and agents in one process: the same world schedule and learner roles, called directly.

The single-process baseline of benchmarks/training.py for the episodic learning worlds (signals, inventory,
routing): the world process's own class plays its episodes, and where it would send an observation to an
agent process it calls that agent's role here instead, one agent after the other. No sockets, no
processes, no radio: what is left is the computation a run cannot avoid, done on one core. With the same
seed it learns what `netmarl run` learns (each role draws from its own stream whatever order it answers in).
"""

from __future__ import annotations

import importlib
import time
from pathlib import Path

import numpy as np

from agent_node.node import agent_rng
from agent_node.roles import load_role
from agent_node.roles.base import NodeContext
from protocols.messages import Action, Envelope, Message

from .config import ScenarioConfig
from .plan import RunPlan, plan_run


class InProcessEndpoint:
    """What a world uses of its Endpoint, kept here: records go to a list (each with the seconds spent in the
    agents so far), nothing ever stops it."""

    stopping = False

    def __init__(self):
        self.records: list[dict] = []
        self.t_sim = 0.0
        self.agents_s = 0.0

    def metrics(self, kind: str, values: dict, final: bool = False) -> None:
        self.records.append({"kind": kind, "wall": time.time(), "final": final, "agents_s": self.agents_s, **values})

    def maybe_heartbeat(self) -> None:
        pass


class InProcessAgents:
    """The plan's agents as role objects, built as their processes would build them (settings, seeds)."""

    def __init__(self, plan: RunPlan, seed: int, ep: InProcessEndpoint):
        self.ep, self.roles = ep, {}
        for node, role_name in plan.agents.items():
            role = dict(plan.role_settings[role_name])
            if plan.agent_settings:
                role.update(plan.agent_settings(node))
            send = lambda kind, values, node=node: ep.metrics(kind, {"node": node, **values})  # noqa: E731
            ctx = NodeContext(node, agent_rng(seed, node), None, send, {"role": role}, seed=seed)
            self.roles[node] = load_role(role_name)(ctx, role)

    def answer(self, node: str, body, arrays: dict, t_sim: float) -> tuple[Action, dict]:
        """The role's answer to one observation (arrays copied, as they would arrive off the wire)."""
        t0 = time.perf_counter()
        env = Envelope(type=body.TYPE, src="world", dst=node, seq=0, t_sim=t_sim)
        role = self.roles[node]
        action, out = role.on_observation(Message(env, body, {k: np.array(v) for k, v in arrays.items()}))
        role.after_action()
        self.ep.agents_s += time.perf_counter() - t0
        return action, out or {}


class DirectExchange:
    """Mixed in before a world class: its send_to() and collect_actions() call the in-process agents."""

    in_process: InProcessAgents

    def send_to(self, node: str, body, arrays: dict) -> str:
        self.outbox[node] = (body, arrays)
        return node

    def note_radio(self, actions: dict) -> None:
        pass  # no radio in one process

    def collect_actions(self, step: int, expected: set[str]) -> dict[str, Action]:
        actions, self.action_arrays = {}, {}
        for node in sorted(expected):
            body, arrays = self.outbox.pop(node)
            actions[node], self.action_arrays[node] = self.in_process.answer(node, body, arrays, self.ep.t_sim)
        return actions


def run_in_one_process(cfg: ScenarioConfig, run_dir: Path) -> list[dict]:
    """Run the scenario's whole schedule here; its metrics records (world progress with wall times, episodes)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_run(cfg, run_dir)
    module, target = plan.world_target.split(":")
    if not target.startswith("run_"):
        raise ValueError(f"{plan.world_target}: a world entry point is named run_<world>")
    build = getattr(importlib.import_module(module), "build_" + target[len("run_") :], None)
    if build is None:
        raise ValueError(f"world kind {cfg.world.kind!r} has no build_ function to run in one process")
    ep = InProcessEndpoint()
    world = build(ep, **plan.world_kwargs)
    world.__class__ = type("InProcess" + type(world).__name__, (DirectExchange, type(world)), {})
    world.outbox, world.in_process = {}, InProcessAgents(plan, cfg.run.seed, ep)
    if not world.run():
        raise RuntimeError("the world stopped before its end")
    return ep.records
