"""What every world process does each step: sync the medium, hand out observations, collect actions."""

from __future__ import annotations

import logging
import time
from typing import Callable

from protocols.endpoint import Endpoint
from protocols.lockstep import WorldLedger
from protocols.messages import Action, Observation, Phase, Positions, Tick, Update
from protocols.security import Curve

log = logging.getLogger("scenarios.step_driver")

METRICS_EVERY_STEPS = 10
FIRST_STEP_WAIT_S = 120.0  # AgentExchange: learners import torch and build their networks when the run starts


class StepDriver:
    """The lock-step half of a world: the medium's tick and the agents' actions, with deadlines."""

    def __init__(self, ep: Endpoint, deadline_s: float):
        self.ep, self.deadline_s = ep, deadline_s
        self.late_actions = 0
        self._late_logged: set[str] = set()
        self._medium_late_logged = False
        self.t0 = time.monotonic()
        self.ledger = WorldLedger()  # the world's part of the lock-step (protocols/lockstep.py)

    def note_radio(self, actions: dict[str, Action]) -> None:
        """Remember how many radio messages each acting agent has handed to the medium so far."""
        for node, action in actions.items():
            self.ledger.note(node, action.radio_sent, self.ep.peers.endpoints.get(node))

    def forget_restarted(self) -> None:
        """A restarted agent (new endpoint) counts its radio messages from zero again."""
        self.ledger.forget_restarted(self.ep.peers.endpoints)

    def positions_for(self, step: int, ids: list[str]) -> Positions:
        """The step's positions message for the medium, with what each agent has handed to it (its tick waits)."""
        self.forget_restarted()
        return Positions(step=step, ids=ids, radio_sent=self.ledger.handed)

    def progress(self, step: int, steps: int, **values) -> None:
        """The world's progress record (drives the coordinator's bar) every few steps and at the last."""
        if step % METRICS_EVERY_STEPS == 0 or step == steps:
            self.ep.metrics(
                "world",
                {
                    "step": step,
                    "steps_per_s": step / max(time.monotonic() - self.t0, 1e-9),
                    "late_actions": self.late_actions,
                    **values,
                },
                final=step == steps,
            )

    def sync_medium(self, positions: Positions, arrays: dict) -> dict[str, int] | None:
        """Send the step's positions to the medium and wait for its Tick: by then every radio message
        sent in earlier steps is routed and whatever is due is delivered. Returns deliveries per agent
        (None without a medium, or if it does not answer in time: the run goes on unsynchronised)."""
        ep = self.ep
        mediums = ep.peers.ids("medium")
        if not mediums:
            return None
        ep.peers.send(mediums[0], ep.stamper.encode(positions, mediums[0], arrays))
        ticks: list[dict[str, int]] = []

        def take_tick(_ident: bytes, msg) -> bool:
            if isinstance(msg.body, Tick) and msg.body.step == positions.step and not ticks:
                ticks.append(msg.body.delivered)
            return True  # nothing else is awaited here: anything else (a late action, say) is dropped

        if ep.wait_for(lambda: bool(ticks), self.deadline_s, on_message=take_tick, keep=None, poll_ms=500):
            return ticks[0]
        if not self._medium_late_logged:
            log.warning(
                "step %d: the medium did not confirm within %.2f s; going on without waiting (logged once)",
                positions.step,
                self.deadline_s,
            )
            self._medium_late_logged = True
        return None

    def collect_actions(self, step: int, expected: set[str]) -> dict[str, Action]:
        """Wait for the actions of this step until the deadline; missing ones are reported."""
        actions: dict[str, Action] = {}
        self.action_arrays: dict[str, dict] = {}  # the arrays that came with each action

        def take_action(ident: bytes, msg) -> bool:
            src, body = msg.env.src, msg.body
            if isinstance(body, Action) and body.step == step and src in expected and ident == src.encode():
                actions[src] = body  # only the agent bound to a vehicle, on its own connection
                self.action_arrays[src] = msg.arrays
            return True  # anything else (an action of an earlier step, say) is dropped

        def all_in() -> bool:
            nonlocal expected
            expected = expected - self.ep.peers.down  # a node reported down is not waited for
            return not expected - actions.keys()

        self.ep.wait_for(all_in, self.deadline_s, on_message=take_action, keep=None, poll_ms=500)
        missing = expected - actions.keys()
        if missing:
            self.late_actions += len(missing)
            for node in missing - self._late_logged:
                log.warning(
                    "step %d: no action from %s within %.2f s; default action used (logged once per node)",
                    step,
                    node,
                    self.deadline_s,
                )
            self._late_logged |= missing
        return actions


def node_name(agent: int) -> str:
    """The agent process of agent index `agent` (routing: also its SUMO vehicle; signals: the agent of light i)."""
    return f"agent{agent}"


def agent_index(node: str) -> int:
    return int(node[len("agent") :])


def as_action(value) -> int | None:
    """An agent's answer as an action index, None if it is not a whole number (bad input is not fatal)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or int(value) != value:
        return None
    return int(value)


class AgentExchange(StepDriver):
    """Message rounds with agent processes agent0..agentN: control observations out, their answers back."""

    def __init__(self, ep, deadline_s: float):
        super().__init__(ep, deadline_s)
        self.step = 0

    def send(self, agent: int, body: Observation, arrays: dict) -> str:
        return self.send_to(node_name(agent), body, arrays)

    def send_to(self, node: str, body: Observation, arrays: dict) -> str:
        """One message to node, unless it is down or not yet known; returns node (awaited either way)."""
        ep = self.ep
        if node not in ep.peers.down and ep.peers.knows(node):
            ep.peers.send(node, ep.stamper.encode(body, node, arrays))
        return node

    def collect_nodes(self, expected: set[str], deadline_s: float | None = None) -> dict[str, Action]:
        """The answers to this step's messages, by node; the run's first step waits longer."""
        wait = deadline_s or (self.deadline_s if self.step > 1 else max(self.deadline_s, FIRST_STEP_WAIT_S))
        saved, self.deadline_s = self.deadline_s, wait
        try:
            return self.collect_actions(self.step, expected)
        finally:
            self.deadline_s = saved

    def collect(self, expected: set[str], deadline_s: float | None = None) -> dict[int, int | float | None]:
        """The agents' answers to this step's messages (their Action values), by agent index."""
        return {agent_index(n): a.value for n, a in self.collect_nodes(expected, deadline_s).items()}

    def request_all(
        self,
        agents: list[int],
        info: Phase,
        arrays_by_agent: dict[int, dict] | None = None,
        deadline_s: float | None = None,
    ) -> dict[int, tuple]:
        """Send one control observation (its phase) to each agent; their answers as (value, arrays)."""
        self.step += 1
        expected = {
            self.send(a, Observation(step=self.step, info=info), (arrays_by_agent or {}).get(a, {})) for a in agents
        }
        values = self.collect(expected, deadline_s)
        return {a: (v, self.action_arrays.get(node_name(a), {})) for a, v in values.items()}


TEST_SEED = 1_000_000  # test episodes: seeds no training episode uses
EVAL_SEED = 2_000_000  # evaluation episodes (eSpark's selection): the same for every copy of one run seed


class EpisodicWorld(AgentExchange):
    """The learning worlds' schedule (signals, inventory): training episodes first_episode.. with an update every
    cfg.update_every and after the last, greedy evaluation episodes every cfg.eval_every (0: none) and after the
    last, then the test episodes. Subclasses set n_agents,
    exploration (TrainingMasks, or None) and defaulted, and play one episode in episode(mode, seed, k)."""

    n_agents: int

    def run(self) -> bool:
        cfg = self.cfg
        self.t0 = time.monotonic()
        try:
            last = cfg.first_episode + cfg.episodes - 1
            for k in range(cfg.first_episode, last + 1):
                if self.episode("train", self.seed * 100_003 + k, k) is None:
                    return False
                done = k - cfg.first_episode + 1
                if (done % cfg.update_every == 0 or k == last) and not self.update(k, last):
                    return False
                if cfg.eval_every and done % cfg.eval_every == 0 and k != last and not self.evaluate("eval", k):
                    return False
                self.ep.metrics(
                    "world",
                    {"step": k, "steps_done": self.step, "steps_per_s": self.rate(), "late_actions": self.late_actions},
                    final=False,
                )
            if not (self.evaluate("eval", last) and self.evaluate("test", last)):
                return False
        finally:
            self.close()
        self.ep.metrics(
            "world",
            {
                "step": cfg.episodes,
                "steps_done": self.step,
                "steps_per_s": self.rate(),
                "late_actions": self.late_actions,
                "default_actions": self.defaulted,
                "exploration": self.exploration.stats() if self.exploration else None,
            },
            final=True,
        )
        return True

    def episode(self, mode: str, seed: int, k: int) -> dict | None:
        raise NotImplementedError

    def evaluate(self, mode: str, k: int) -> bool:
        """The greedy episodes of one checkpoint after training episode k: "eval" (cfg.eval_episodes, the same
        seeds at every checkpoint) or "test" (cfg.test_episodes); False if the run stopped."""
        base, n = (EVAL_SEED, self.cfg.eval_episodes) if mode == "eval" else (TEST_SEED, self.cfg.test_episodes)
        return all(self.episode(mode, base + self.seed * 1000 + j, k) is not None for j in range(n))

    def update(self, k: int, last: int) -> bool:
        """Every agent's learning step on what it gathered since the last one; the world waits for all of them."""
        self.request_all(
            list(range(self.n_agents)),
            Update(epoch=k, K=last),
            deadline_s=self.cfg.update_deadline_s,
        )
        return not self.ep.stopping

    def rate(self) -> float:
        return self.step / max(time.monotonic() - self.t0, 1e-9)

    def close(self) -> None:
        if self.exploration:
            self.exploration.close()


def world_endpoint(node_id: str, coordinator: str, curve_secret: str | None, coordinator_key: str | None) -> Endpoint:
    """A world process's endpoint (curve_secret and coordinator_key: CURVE, Z85)."""
    return Endpoint(
        node_id, "world", coordinator, curve=Curve.from_settings(curve_secret, coordinator_key=coordinator_key)
    )


def serve_world(ep: Endpoint, build: Callable[[], StepDriver]) -> int:
    """A world process's life: build (the slow part, before registering: no heartbeat gap), register,
    wait for the start, run. 0 if it ran to the end or was told to stop; 1 for an early stop nobody asked
    for, a failure the coordinator must see."""
    ep.stop_on_signals()
    try:
        world = build()
        ep.register()
        ep.wait_start()
        if world.run() or ep.shutdown_requested:
            return 0
        log.error("world stopped before its end: %s", ep.stop_reason)
        return 1
    finally:
        ep.close()
