"""The inventory (MABIM) task as eSpark's loop sees it (eSpark paper, App. I): the prompt slots, real sample states
for the sandbox check, the episode record and the test metrics."""

from __future__ import annotations

import numpy as np

from scenarios.espark.candidates import MABIM
from scenarios.espark.task import EnvDescription, Task, mabim_env

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


TASK = Task(
    "inventory",
    MABIM,
    34,
    "inventory_episode",
    "n_warehouse",
    (("test_profit", False), ("test_gross_margin", False)),
    _mabim_describe,
    _mabim_inputs,
)
