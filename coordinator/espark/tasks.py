"""What the eSpark loop needs from each task (traffic signals, inventory): contract, prompt slots, sample inputs,
metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from scenarios.espark.candidates import MABIM, TSC, Contract

from .prompts import EnvDescription, mabim_env, tsc_env


@dataclass(frozen=True)
class Task:
    """One world kind as the loop sees it."""

    kind: str  # the world kind
    contract: Contract
    n_actions: int
    episode_kind: str  # the metrics record of one episode
    unit: str  # what each feedback value is an array over (Fig. 18)
    test_metrics: tuple[tuple[str, bool], ...]  # (summary result, lower is better) for the test table
    describe: Callable[[object], EnvDescription]  # world config -> the prompt slots
    sample_inputs: Callable[[object, int], list[tuple]]  # (world config, seed) -> inputs for the sandbox check


# ---------------------------------------------------------------------------------------------- traffic signals
TSC_TRANSITION = """\
Every 15 s of simulated time (3,600 s per episode) each intersection's agent picks one of 8 phases (action_space, \
GESA's order: 'WT-ET', 'EL-ET', 'WL-WT', 'EL-WL', 'NT-ST', 'SL-ST', 'NT-NL', 'NL-SL'; e.g. 'WT-ET' gives green to the \
west and east through movements). If the phase changes, 3 s of yellow come first. Phases whose movements do not \
exist at an intersection are never available. Vehicles follow fixed routes through the network (SUMO)."""

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
        TSC_TRANSITION,
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


SIGNALS = Task(
    "signals",
    TSC,
    8,
    "signal_episode",
    "1 (the whole network)",
    (("test_delay", True), ("test_trip_time", True), ("test_waiting_time", True), ("test_return", False)),
    _tsc_describe,
    _tsc_inputs,
)

# ---------------------------------------------------------------------------------------------- inventory
MABIM_TRANSITION = """\
A multi-echelon supply chain: warehouses store1 (sells to customers) ... storeM (orders from an infinite super \
vendor); every day each (warehouse, SKU) agent orders action_space[a] x (mean of its own demand over the last 21 \
days), floored. Each day: (1) replenish: every warehouse places its orders; the order of warehouse i is the demand \
of warehouse i+1 (its upstream) today; (2) sell: sale = min(demand, in_stock); unmet demand is lost; (3) arrive: \
what the upstream sold to warehouse i arrives after vlt days (the top warehouse's orders arrive after vlt days); \
(4) receive: if the arrivals do not fit the free capacity (capacity - sum of in_stock over SKUs), every SKU accepts \
the same fraction, floored, and the rest is excess (lost, charged overflow); (5) reward."""

MABIM_STATE = """\
agent_states[warehouse, item, date, sku] returns numpy values: warehouse is a name from \
supply_chain.get_warehouse_list() or "all_warehouses" (then the first axis is the warehouse); item is one of \
selling_price, procurement_cost, demand, sale, vlt, volume, unit_order_cost, basic_holding_cost, in_stock, \
replenish, excess, overflow_cost_ratio, in_transit, arrived, accepted, backlog_ratio; date is "today", \
"yesterday", "history" (all kept days), "lookback" (the last 21 days before today) or "lookback_with_current"; sku \
is a SKU id or "all_skus" (then the last axis is the SKU). agent_states.current_step and agent_states.durations \
give the day and the episode length, len(agent_states) the number of SKUs. supply_chain.get_warehouse_list(), \
get_head() (customer-facing), get_tail() (top), and supply_chain[warehouse, "capacity"|"upstream"|"downstream"|\
"unit_storage_cost"]. action_space is the list of the 34 order multiples."""

MABIM_REWARD = """\
Per agent per day: reward = gross_margin - excess_cost - order_cost - holding_cost - backlog_cost (the reward is \
the day's net profit), with gross_margin = sale * (selling_price - procurement_cost), excess_cost = \
procurement_cost * excess * overflow_cost_ratio (0.5), order_cost = unit_order_cost (10) if the order is \
positive, holding_cost = (basic_holding_cost + unit_storage_cost) * in_stock, backlog_cost = (selling_price - procurement_cost) * (demand - sale) * backlog_ratio (0.1)."""


def _mabim_describe(world) -> EnvDescription:
    env = world.env
    return mabim_env(
        f"We are managing the inventory of {env.skus} SKUs in {env.echelons} warehouse(s) with "
        f"capacity {env.capacity_per_echelon} units each; one reinforcement-learning agent per "
        "(warehouse, SKU) decides every day how much to order, and the goal is the highest total "
        "net profit (the sum of the rewards).",
        MABIM_TRANSITION,
        MABIM_STATE,
        MABIM_REWARD,
    )


def _mabim_inputs(world, seed: int) -> list[tuple]:
    """Real states: the start of a training episode and two later days under a mean-demand ordering policy."""
    from scenarios.inventory.model import InventoryEnv
    from scenarios.inventory.observe import mabim_inputs

    env = InventoryEnv(world.env)
    env.reset(seed)
    snaps = [mabim_inputs(env)]
    order_mean = np.full((env.m, env.n), 10)  # multiple 1.00
    for day in range(1, min(world.env.horizon, 20) + 1):
        env.step(order_mean)
        if day in (5, 20):
            snaps.append(mabim_inputs(env))
    return snaps


INVENTORY = Task(
    "inventory",
    MABIM,
    34,
    "inventory_episode",
    "n_warehouse",
    (("test_profit", False), ("test_gross_margin", False)),
    _mabim_describe,
    _mabim_inputs,
)

TASKS = {"signals": SIGNALS, "inventory": INVENTORY}
