"""The traffic-signal task as eSpark's loop sees it (eSpark paper, App. D/I): the prompt slots, real sample states
for the sandbox check, the episode record and the test metrics."""

from __future__ import annotations

import numpy as np

from scenarios.espark.candidates import TSC
from scenarios.espark.task import EnvDescription, Task, tsc_env

TSC_TRANSITION = """\
Every {delta:g} s of simulated time ({horizon:,.0f} s per episode) each intersection's agent picks one of 8 phases \
(action_space, GESA's order: 'WT-ET', 'EL-ET', 'WL-WT', 'EL-WL', 'NT-ST', 'SL-ST', 'NT-NL', 'NL-SL'; e.g. 'WT-ET' gives \
green to the west and east through movements). If the phase changes, {yellow:g} s of yellow come first. Phases whose \
movements do not exist at an intersection are never available. Vehicles follow fixed routes through the network \
(SUMO)."""

TSC_STATE = """\
intersections is a list with one dict per intersection (agent), in agent order: {"id": str, "current_phase": str \
(one of action_space), "movements": {name: {"exists": 0/1, "green": 0/1 (green in the current phase), "car_num": \
float (vehicles per incoming lane of the movement), "stop_car_num": float (halted vehicles per lane, speed < 0.1 \
m/s), "occupancy": float in [0, 1]}}} where the movement names are 'NL', 'NT', 'WL', 'WT', 'SL', 'ST', 'EL', 'ET' \
(approach N/W/S/E, L = left turn, T = through). action_space is the list of the 8 phase names. The function must \
return total_mask with shape (len(intersections), 8)."""

TSC_REWARD = "Each agent's reward is minus the number of stopped vehicles on its incoming lanes after each step."


def _tsc_describe(world) -> EnvDescription:
    from scenarios.signals.maps import signal_map

    title = signal_map(world.map).title
    return tsc_env(
        f"We are controlling the traffic lights of the {title} network: one reinforcement-learning agent "
        "per signalised intersection chooses its signal phase, and the goal is to keep as few vehicles "
        "waiting as possible (lower delay, trip time and waiting time).",
        TSC_TRANSITION.format(delta=world.delta_s, horizon=world.horizon_s, yellow=world.yellow_s),
        TSC_STATE,
        TSC_REWARD,
    )


def _tsc_inputs(world, seed: int) -> list[tuple]:
    """Real states: a short fixed-cycle episode of the map, three snapshots (start, middle, end)."""
    from scenarios.signals.env import SignalEnv
    from scenarios.signals.phases import PHASES
    from scenarios.signals.world import intersections

    env = SignalEnv(
        world.map,
        seed=seed,
        delta_s=world.delta_s,
        yellow_s=world.yellow_s,
        horizon_s=min(world.horizon_s, 600.0),
        backend=world.backend,
    )
    lights, masks = list(env.tls_ids), env.action_masks()
    obs, snaps, step, done = env.reset(seed), [], 0, False
    snaps.append(obs)
    while not done:
        step += 1
        obs, _, done, _ = env.step(
            {t: int(np.flatnonzero(masks[i])[step // 2 % masks[i].sum()]) for i, t in enumerate(lights)}
        )
        if step == 10 or done:
            snaps.append(obs)
    env.close()
    return [(intersections(o, lights), list(PHASES)) for o in snaps]


TASK = Task(
    "signals",
    TSC,
    8,
    "signal_episode",
    "1 (the whole network)",
    (("test_delay", True), ("test_trip_time", True), ("test_waiting_time", True), ("test_return", False)),
    _tsc_describe,
    _tsc_inputs,
)
