"""The routing world process: RELED's Algorithm 1 over real messages (epochs, SED rounds, HPO updates, tests)."""

from __future__ import annotations

import logging
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np

from agent_node.checkpoints import save_json
from protocols.endpoint import Endpoint
from protocols.messages import Expert, Probe, Rollout, Update
from scenarios.routing.sed.feedback import format_feedback_lines, pdi_pairs, rvi_pairs
from scenarios.routing.sed.module import Generation, SedModule
from scenarios.routing.sed.navigation import road_graph

from ..step_driver import serve_world, world_endpoint
from .config import RoutingAlgo, RoutingWorld
from .env import RoutingEnv
from .maps import Trip
from .rollout import EpisodeResult, EpisodeRunner, Follower, observation_text

log = logging.getLogger("scenarios.routing")

WORLD_STATE = "world.json"  # in the checkpoint folder: epochs done, for --resume
TEST_SEED = 1_000_000  # test episodes use background seeds no training episode uses


class RoutingWorldProcess(EpisodeRunner):
    """Epoch k: episodes until the epoch's decisions are in, an SED round when due, then every agent's update."""

    def __init__(
        self,
        ep: Endpoint,
        cfg: RoutingWorld,
        algo: RoutingAlgo,
        env: RoutingEnv,
        deadline_s: float,
        seed: int,
        sed: SedModule | None,
        checkpoint_dir: Path | None,
        start_epoch: int = 0,
        start_episode: int = 0,
    ):
        super().__init__(ep, env, deadline_s)
        self.cfg, self.algo, self.seed, self.sed = cfg, algo, seed, sed
        self.checkpoint_dir, self.epoch = checkpoint_dir, start_epoch
        self.agents = [t.agent for t in env.trips]
        self.default_actions = 0  # decisions the world took itself, over the run
        self.episode = start_episode  # numbers the episodes (and their background seeds) across a resume

    def run(self) -> bool:
        cfg = self.cfg
        self.t0 = time.monotonic()
        try:
            for k in range(self.epoch + 1, cfg.epochs + 1):
                epoch = self.train_epoch(k)
                if epoch is None:
                    return False
                if self.sed is not None and self.sed.due(k) and not self.sed_round(k, epoch):
                    return False
                if not self.update(k):
                    return False
                self.epoch = k
                self.write_state()
                if cfg.test_every and k % cfg.test_every == 0 and k < cfg.epochs and not self.test(1):
                    return False
                self.report(k, final=False)
            if not self.test(cfg.test_episodes):
                return False
        finally:
            self.env.close()
            if self.sed is not None:
                self.sed.close()
        self.report(cfg.epochs, final=True)
        return True

    def report(self, step: int, final: bool) -> None:
        """The world's progress record: epochs done (the coordinator's bar) and message steps per second."""
        wall = max(time.monotonic() - self.t0, 1e-9)
        self.ep.metrics(
            "world",
            {
                "step": step,
                "epochs": self.epoch,
                "steps_done": self.step,
                "steps_per_s": self.step / wall,
                "late_actions": self.late_actions,
                "default_actions": self.default_actions,
                "wall_s": round(wall, 1),
            },
            final=final,
        )

    # ------------------------------------------------------------------ episodes
    def play_episode(self, mode: str, seed: int, followers: dict[int, Follower] | None = None) -> EpisodeResult | None:
        result = self.run_episode(mode, seed, followers)
        if result is not None:
            rec = {
                "epoch": self.epoch + (mode == "train" or mode == "subset"),
                "episode": self.episode,
                "seed": seed,
                **result.record(),
                "wall_s": round(time.monotonic() - self.t0, 2),
            }
            self.ep.metrics("routing_episode", rec)
            self.default_actions += result.defaulted
            log.info(
                "epoch %d %s episode: reward %.1f, travel time %.0f s, arrived %.0f%%, %d decisions",
                rec["epoch"],
                mode,
                rec["reward"],
                rec["travel_time"],
                100 * rec["arrival_rate"],
                result.decisions,
            )
        return result

    def train_epoch(self, k: int) -> list[EpisodeResult] | None:
        """tau^a: whole episodes until decisions_per_epoch decisions are in (the running one is finished,
        docs/reled.md RL-3)."""
        episodes, decisions = [], 0
        while decisions < self.cfg.decisions_per_epoch:
            result = self.play_episode("train", self.seed * 100_003 + self.episode)
            if result is None:
                return None
            self.episode += 1
            episodes.append(result)
            decisions += result.decisions
        return episodes

    def test(self, n: int) -> bool:
        """n greedy test episodes (docs/reled.md, RL-14), and as many with sampled actions; fresh background seeds."""
        modes = ["test"] + (["test_stochastic"] if self.cfg.test_stochastic else [])
        for mode in modes:
            for j in range(n):
                if self.play_episode(mode, TEST_SEED + self.seed * 1000 + j) is None:
                    return False
        return True

    def update(self, k: int) -> bool:
        """HPO (Alg. 1 lines 19-24): every agent updates on its own data; the world waits for all of them."""
        answers = self.request_all(
            self.agents, Update(epoch=k, K=self.cfg.epochs), deadline_s=self.cfg.update_deadline_s
        )
        if self.ep.stopping:
            return False
        alphas = [float(v) for v, _ in answers.values() if v is not None]
        self.ep.metrics(
            "hpo_epoch",
            {"epoch": k, "agents_updated": len(answers), "alpha_mean": float(np.mean(alphas)) if alphas else None},
        )
        return True

    # ------------------------------------------------------------------ SED
    def sed_round(self, k: int, epoch: list[EpisodeResult]) -> bool:
        """Plans for all agents, m subset rollouts, expert trajectories to the agents, RVI/PDI feedback
        (Alg. 1 lines 5-17)."""
        sed = self.sed
        subsets = sed.partition(self.agents)
        gen = self.in_background(sed.generate)
        if gen is None:
            return False
        lines_rvi, lines_pdi, summaries, executed = [], [], [], {a: False for a in self.agents}
        failures = {a: f"{o.cause}: {o.message}" for a, o in gen.outcomes.items() if not o.ok}
        baseline = [e.reward_series for e in epoch]
        for j, subset in enumerate(subsets):
            followers = {a: Follower(gen.outcomes[a]) for a in subset if gen.outcomes[a].ok}
            if not followers:  # nobody has a plan to follow: the rollout would be a policy episode, skip it
                continue
            if not self.announce(subset, followers):
                return False
            result = self.play_episode("subset", self.seed * 100_003 + 50_000 + self.episode, followers)
            if result is None:
                return False
            self.episode += 1
            spans = {a: f.spans for a, f in followers.items()}
            lines_rvi += rvi_pairs(
                result.reward_series,
                baseline,
                subset,
                spans,
                subset_id=j,
                states=partial(result.external_state, subset=subset),
            )
            for a, f in followers.items():
                if f.stuck:
                    failures[a] = f"not followed to the end: {f.stuck}"
                elif not result.arrived[a]:
                    failures[a] = f"followed, but the vehicle had not arrived after {self.cfg.t_max:g} s"
                elif f.outcome.incomplete:
                    failures[a] = "incomplete: the plan stopped before the destination (a final move was added)"
                executed[a] = result.arrived[a] and not f.stuck
            probs = self.send_experts(k, result, executed)
            valid = {a: p for a, p in probs.items() if len(p)}
            if valid:  # every follower with expert steps, its vehicle home or not (Eq. 24: i in A_j)
                track = result.tracks
                lines_pdi += pdi_pairs(
                    valid,
                    {a: track[a].actions for a in valid},
                    {a: track[a].times for a in valid},
                    spans,
                    subset_id=j,
                    states={a: [observation_text(o, m) for o, m in zip(track[a].obs, track[a].masks)] for a in valid},
                )
            summaries += [self.summary(a, result, followers[a]) for a in followers]
        sed.feedback(format_feedback_lines(lines_rvi, lines_pdi), summaries, failures, gen.code)
        sed.end_round(
            k,
            gen,
            executed,
            subsets=subsets,
            rvi_pairs=len(lines_rvi),
            pdi_max=max((p.value for p in lines_pdi), default=None),
        )
        return True

    def announce(self, subset: list[int], followers: dict[int, Follower]) -> bool:
        """Each agent learns its part in the subset rollout; plan followers receive their instruction lists."""
        for a in self.agents:
            plan = [i.text() for i in followers[a].outcome.instructions] if a in followers else None
            self.request_all([a], Rollout(instructions=plan, subset=a in subset))
        return not self.ep.stopping

    def send_experts(self, k: int, result: EpisodeResult, executed: dict[int, bool]) -> dict[int, np.ndarray]:
        """tau^{e,i} to each follower whose plan took its vehicle home (phase "expert": kept for training); the
        other followers' steps are only probed (phase "probe"); every policy's pi(.|o) comes back (PDI)."""
        out = {}
        for a, track in result.tracks.items():
            if not track.actions:
                continue
            dest = self.env.node_xy[self.env.states[a].trip.destination_index]
            arrays = {
                "obs": np.asarray(track.obs, np.float32),
                "mask": np.asarray(track.masks, np.uint8),
                "actions": np.asarray(track.actions, np.int64),
                "rewards": np.asarray(track.rewards, np.float64),
                "xy": np.asarray([*track.xy, dest], np.float64),
            }
            phase = Expert(epoch=k) if executed.get(a) else Probe(epoch=k)
            answer = self.request_all([a], phase, {a: arrays})
            probs = answer.get(a, (None, {}))[1].get("probs")
            ok = probs is not None and np.shape(probs) == (len(track.actions), 4) and np.all(np.isfinite(probs))
            if probs is not None and not ok:
                log.warning("agent%d answered its expert trajectory with unusable probabilities; no PDI for it", a)
            out[a] = np.asarray(probs, np.float64) if ok else np.zeros((0, 4))
        return out

    def summary(self, agent: int, result: EpisodeResult, follower: Follower) -> dict:
        track = result.tracks[agent]
        return {
            "agent": agent,
            "junctions": [int(o[0]) for o in track.obs],
            "travel_time": result.travel_times[agent],
            "ret": result.returns[agent],
            "arrived": result.arrived[agent],
            "instructions": [i.text() for i in follower.outcome.instructions],
        }

    def in_background(self, fn) -> Generation | None:
        """Run a slow call (the LLM, the sandbox) in a daemon thread while the endpoint waits (heartbeats go on,
        control messages are handled, stray answers dropped); None if the run was stopped meanwhile."""
        box: dict = {}

        def target() -> None:
            try:
                box["value"] = fn()
            except BaseException as err:  # noqa: BLE001 - handed to the world's thread below
                box["error"] = err

        thread = threading.Thread(target=target, name="sed-call", daemon=True)
        thread.start()
        if not self.ep.wait_for(lambda: not thread.is_alive(), None, keep=None, poll_ms=200):
            return None
        if "error" in box:
            raise box["error"]
        return box["value"]

    # ------------------------------------------------------------------ checkpoints
    def write_state(self) -> None:
        if self.checkpoint_dir is None:
            return
        save_json({"epochs_done": self.epoch, "episode": self.episode}, self.checkpoint_dir / WORLD_STATE)


def make_env(cfg: RoutingWorld, net: Path, routes: Path, trips: list[Trip]) -> RoutingEnv:
    return RoutingEnv(net, routes, trips, cfg.t_max, cfg.time_to_teleport, cfg.backend)


def build_routing_world(
    ep: Endpoint,
    seed: int,
    world: dict,
    algo: dict,
    net: str,
    routes: str,
    trips: list[dict],
    run_dir: str,
    deadline_s: float,
    start_epoch: int = 0,
    start_episode: int = 0,
) -> RoutingWorldProcess:
    """The world process's state, on the endpoint it talks through (SED's metrics go out through it too)."""
    cfg, settings = RoutingWorld.model_validate(world), RoutingAlgo.model_validate(algo)
    trip_list = [Trip(**t) for t in trips]
    env = make_env(cfg, Path(net), Path(routes), trip_list)
    sed = None
    if settings.method == "reled":
        graph = road_graph(env.net)
        sed_trips = [
            (t.agent, env.index[env.net.getEdge(t.origin_edge).getFromNode().getID()], t.destination_index, t.depart)
            for t in trip_list
        ]
        sed_cfg = settings.sed
        done = sum(
            1
            for k in range(1, start_epoch + 1)  # rounds held before a resume
            if k % sed_cfg.q == 0 or (k == 1 and sed_cfg.sed_at_start)
        )
        sed = SedModule(settings.sed, Path(run_dir), graph, sed_trips, seed, send_metrics=ep.metrics, rounds=done)
    checkpoints = Path(run_dir) / "checkpoints"
    return RoutingWorldProcess(ep, cfg, settings, env, deadline_s, seed, sed, checkpoints, start_epoch, start_episode)


def run_routing_world(
    node_id: str,
    coordinator: str,
    seed: int,
    world: dict,
    algo: dict,
    net: str,
    routes: str,
    trips: list[dict],
    run_dir: str,
    deadline_s: float,
    start_epoch: int = 0,
    start_episode: int = 0,
    curve_secret: str | None = None,
    coordinator_key: str | None = None,
) -> int:
    """Entry point of the routing world process (curve_secret and coordinator_key: CURVE, Z85)."""
    ep = world_endpoint(node_id, coordinator, curve_secret, coordinator_key)
    return serve_world(
        ep,
        lambda: build_routing_world(
            ep, seed, world, algo, net, routes, trips, run_dir, deadline_s, start_epoch, start_episode
        ),
    )
