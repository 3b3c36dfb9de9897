"""A CAV world trained in one process: every vehicle's SAC in one loop, the code a user would write without netmarl.

The benchmark's baseline (benchmarks/training.py) and the reference the lock-step run is checked against: with
the paper's update order, `netmarl run` (isac, no communication) learns exactly these numbers. It follows the
world process's order (observations, terminal transitions of vehicles that left, rewards) and the CAV role's
per-agent seeds and update schedule.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from agent_node.learners.sac import SAC, ReplayBuffer, SACConfig, update_flags
from agent_node.node import agent_rng
from agent_node.overrides import set_fields

from ..config import ScenarioConfig
from .maths import terminated
from .world import make_env


def train_in_one_process(cfg: ScenarioConfig, seed: int, net_dir: Path) -> dict:
    """Train world.episodes episodes; {"steps", "progress": [(step, wall time, seconds spent in the learners
    so far)] every 10 steps, "scores", "learners": {vehicle: its SAC}}."""
    torch.set_num_threads(1)
    world = cfg.world
    algo = cfg.algo
    env = make_env(world, net_dir, seed)
    sacs, bufs, learning_steps = {}, {}, {}
    for node in env.agent_ids:
        s = int(agent_rng(seed, node).integers(2**31))
        sacs[node] = SAC(
            SACConfig.model_validate(
                {"init_seed": seed, "seed": s, "action_bound": world.bound, **set_fields(algo.sac)}
            )
        )
        bufs[node] = ReplayBuffer(sacs[node].cfg.buffer_size, sacs[node].cfg.obs_dim, sacs[node].cfg.act_dim, seed=s)
        learning_steps[node] = 0

    busy = 0.0  # seconds in the learners (acting, storing, updating): the part other cores could share

    def store_and_learn(node: str, transition: tuple, last: bool) -> None:
        nonlocal busy
        t0 = time.perf_counter()
        learn(node, transition, last)
        busy += time.perf_counter() - t0

    def learn(node: str, transition: tuple, last: bool) -> None:
        sac, buf = sacs[node], bufs[node]
        buf.add(*transition)
        if not sac.ready(len(buf)):
            return
        critic, policy = update_flags(
            algo.update_mode, learning_steps[node], algo.code_update_every, sac.cfg.policy_delay, last
        )
        if critic:
            sac.update(buf.sample(sac.cfg.batch_size), update_policy=policy)
        learning_steps[node] += 1

    scores, steps, progress = [], 0, [(0, time.time(), 0.0)]
    for episode in range(world.episodes):
        env.reset(episode)
        prev, last_obs, active_before = {}, {}, set()
        t, reward, done, collided, total = 0, 0.0, False, False, 0.0
        while True:
            steps += 1
            if steps % 10 == 0:
                progress.append((steps, time.time(), busy))
            observations = env.observations()
            actions = {}
            terminal = done and collided and world.end_on_collision  # the horizon is a truncation
            for node, obs in observations.items():
                if node in prev:
                    s, a, logp = prev.pop(node)
                    store_and_learn(node, (s, a, reward, obs, terminal, logp), last=done)
                if not done:
                    t0 = time.perf_counter()
                    a, logp = sacs[node].act(obs)
                    busy += time.perf_counter() - t0
                    prev[node] = (obs, a, logp)
                    actions[node] = float(a[0])
            for node in active_before - observations.keys():  # its vehicle left the road: a truncation
                if node in prev:
                    s, a, logp = prev.pop(node)
                    store_and_learn(node, (s, a, reward, last_obs[node], False, logp), last=True)
            last_obs.update(observations)
            active_before = set(observations)
            if done:
                break
            env.step(actions)
            t += 1
            reward, collided = env.reward(), env.collided()
            total += reward
            done = terminated(t, world.steps_per_episode, collided, end_on_collision=world.end_on_collision)
        scores.append(round(total / world.steps_per_episode, 6))
    progress.append((steps, time.time(), busy))
    env.close()
    return {"steps": steps, "progress": progress, "scores": scores, "learners": sacs}
