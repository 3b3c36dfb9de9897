"""The MABIM step, vectorised over (echelon, SKU): replenish -> sell -> receive with rationing -> reward2.

reward2 is the net profit the paper reports (its "Avg. profits"; the released code sets profit = reward2):
the gross margin sale x (price - cost) less the excess, order, holding and backlog costs.

Follows the eSpark paper's App. C.1 and MABIM's ReplenishmentEnv semantics. Choices where neither fixes one:
- Same-step upstream demand: the orders R_i^t placed at step t are echelon i+1's demand at step t, as in the
  reference code's step order (replenish -> sell); the paper's D_{i+1}^{t+1} = R_i^t is the same chain indexed
  one step later. Unfilled orders are lost (no backorders); their cost is the upstream's backlog_cost.
- Shipping: echelon i+1's sale S_{i+1}^t ships to echelon i and arrives at step t + vlt_i (the downstream's
  vlt); the top echelon's order arrives from the infinite super vendor at t + vlt_top. vlt 0 arrives at once.
- Rationing (`equal_accept`): gamma_i = min(space_i / sum_j A_ij, 1) with space_i = W_i - sum_j I_ij taken
  after the sale (the reference code's order; the paper prints I^t) and clipped at 0; B_ij = floor(A_ij gamma_i)
  computed in integers; the rejected A - B ("excess") is lost and charged overflow. Volume is 1 for every SKU.
- Action a orders floor(ACTION_MULTIPLES[a] x mean of the echelon's own demand over the last `lookback`
  steps, today excluded) (`demand_mean_discrete`).
- reset() runs `warmup_days` steps of "replenish_by_last_demand" (order yesterday's own demand) from the
  initial stock and an empty pipeline, so the demand window and the pipeline are filled at step 0.
- Prices (our choice): echelon i buys at echelon i+1's selling price, the top echelon at the super-vendor price.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .config import ACTION_MULTIPLES, N_ACTIONS, InventoryConfig
from .demand import generate_demand

COMPONENTS = ("gross_margin", "excess_cost", "order_cost", "holding_cost", "backlog_cost")
HISTORY = ("demand", "sale", "replenish", "arrived", "accepted", "excess", "in_stock", "in_transit")  # env.history


class SkuParams(NamedTuple):
    """Static per-(echelon, SKU) data, each shaped (echelons, skus)."""

    price: np.ndarray  # selling price of echelon i
    cost: np.ndarray  # procurement cost of echelon i (= price of echelon i+1; super-vendor price at the top)
    vlt: np.ndarray  # lead time (steps) of shipments into echelon i
    init_stock: np.ndarray  # stock at the start of the warm-up


def make_params(cfg: InventoryConfig, mean_demand: np.ndarray, rng: np.random.Generator) -> SkuParams:
    """Draw prices, margins and lead times; initial stock = init_stock_days x mean demand, fitted to capacity."""
    m, n = cfg.echelons, cfg.skus
    base_cost = rng.uniform(cfg.cost_min, cfg.cost_max, n)
    margin = rng.uniform(cfg.margin_min, cfg.margin_max, n)
    level = np.arange(m)[:, None]  # price_i = c (1+m)^(M-i), cost_i = c (1+m)^(M-1-i)
    price = base_cost * (1 + margin) ** (m - level)
    cost = base_cost * (1 + margin) ** (m - 1 - level)
    vlt = rng.integers(cfg.vlt_min, cfg.vlt_max + 1, (m, n))
    stock = np.round(cfg.init_stock_days * mean_demand).astype(np.int64)
    cap = cfg.capacity_per_echelon
    if stock.sum() > cap:
        stock = stock * cap // stock.sum()
    return SkuParams(price, cost, vlt, np.tile(stock, (m, 1)))


def ration(arrived: np.ndarray, in_stock: np.ndarray, capacity: int) -> np.ndarray:
    """Accepted units B = floor(A * min(space / sum A, 1)) per echelon, in exact integer arithmetic."""
    total = arrived.sum(axis=1, keepdims=True)
    space = np.maximum(capacity - in_stock.sum(axis=1, keepdims=True), 0)
    return np.where(total > space, arrived * space // np.maximum(total, 1), arrived)


class InventoryEnv:
    """M echelons x N SKUs, one agent per cell; step(actions (M, N) ints in [0, 34)) -> obs, reward, done, info."""

    def __init__(self, cfg: InventoryConfig, demand: np.ndarray | None = None, params: SkuParams | None = None):
        self.cfg = cfg
        self.m, self.n = cfg.echelons, cfg.skus
        self.capacity = cfg.capacity_per_echelon
        if demand is None:
            demand, _ = generate_demand(cfg.demand, cfg.skus, cfg.seed)
        assert demand.shape[1] == self.n and len(demand) >= cfg.warmup_days + cfg.horizon
        self.customer_demand = np.asarray(demand, dtype=np.int64)  # (days, N)
        if params is None:
            params = make_params(cfg, self.customer_demand.mean(0), np.random.default_rng([cfg.seed, 1]))
        self.params = params
        self.multiples = np.asarray(ACTION_MULTIPLES)
        self._cells = np.indices((self.m, self.n))  # (echelon, sku) index grids for pipeline writes
        self.reset(0)

    def reset(self, seed: int | None = None, split: str = "train") -> dict:
        """Pick a window of warmup_days + horizon days, then run the warm-up; returns the state.

        split "test": the LAST span days of the series (fixed; the seed is ignored). split "train": a random
        window (from seed) that ends where the test window starts; a series shorter than two spans has no
        separate test window, so train windows are then drawn from the whole series.
        """
        span = self.cfg.warmup_days + self.cfg.horizon
        days = len(self.customer_demand)
        if split == "test":
            self.day = days - span
        elif split == "train":
            last = days - 2 * span if days >= 2 * span else days - span  # latest start day allowed
            self.day = int(np.random.default_rng(seed).integers(0, last + 1))
        else:
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        self.end_day = self.day + span
        self.in_stock = self.params.init_stock.astype(np.int64).copy()
        self.pipeline = np.zeros((self.m, self.n, int(self.params.vlt.max()) + 1), dtype=np.int64)
        self.demand_hist = np.zeros((self.m, self.n, self.cfg.lookback), dtype=np.int64)  # oldest first
        # lookback + 1 days of per-day records (oldest first; last = the latest simulated day), for observe.py
        self.history = {k: np.zeros((self.m, self.n, self.cfg.lookback + 1), dtype=np.int64) for k in HISTORY}
        for _ in range(self.cfg.warmup_days):
            self.advance(self.demand_hist[..., -1].copy())  # replenish_by_last_demand
        return self.state()

    def state(self) -> dict:
        """Raw per-(echelon, SKU) arrays for observation wrappers and exploration functions."""
        return {
            "in_stock": self.in_stock.copy(),
            "in_transit": self.pipeline.sum(-1),
            "demand_hist": self.demand_hist.copy(),
            "steps_left": self.end_day - self.day,
        }

    def order_quantities(self, actions: np.ndarray) -> np.ndarray:
        """R = floor(ACTION_MULTIPLES[a] x mean demand over the lookback window), shape (M, N)."""
        actions = np.asarray(actions)
        assert actions.shape == (self.m, self.n) and actions.min() >= 0 and actions.max() < N_ACTIONS
        return np.floor(self.multiples[actions] * self.demand_hist.mean(-1)).astype(np.int64)

    def step(self, actions: np.ndarray):
        """One day with action indices (M, N); reward and each info["components"][k] are (M, N) arrays."""
        assert self.day < self.end_day, "episode is over; call reset()"
        return self.advance(self.order_quantities(actions))

    def advance(self, replenish: np.ndarray):
        """One day with explicit order quantities (M, N): replenish -> sell -> receive -> reward."""
        p, cfg = self.params, self.cfg
        replenish = np.asarray(replenish, dtype=np.int64)
        # Replenish: echelon 0 faces customers; echelon i+1's demand is echelon i's order.
        demand = np.concatenate([self.customer_demand[self.day][None], replenish[:-1]])
        # Sell what stock allows.
        sale = np.minimum(demand, self.in_stock)
        self.in_stock -= sale
        # Ship: upstream sales go down with the downstream vlt; the top's order comes from the super vendor.
        shipped = np.concatenate([sale[1:], replenish[-1:]])
        self.pipeline[self._cells[0], self._cells[1], p.vlt] += shipped
        # Receive today's arrivals, rationed to the free capacity.
        arrived = self.pipeline[..., 0].copy()
        self.pipeline[..., :-1] = self.pipeline[..., 1:]
        self.pipeline[..., -1] = 0
        accepted = ration(arrived, self.in_stock, self.capacity)
        excess = arrived - accepted
        self.in_stock += accepted
        # reward2 (MABIM's ReplenishmentEnv), per (echelon, SKU).
        margin = p.price - p.cost
        components = {
            "gross_margin": sale * margin,
            "excess_cost": p.cost * excess * cfg.overflow_cost_ratio,
            "order_cost": cfg.unit_order_cost * (replenish > 0),
            "holding_cost": (cfg.basic_holding_cost + cfg.unit_storage_cost * 1.0) * self.in_stock,
            "backlog_cost": np.maximum(0.0, margin * (demand - sale) * cfg.backlog_ratio),
        }
        reward = components["gross_margin"] - sum(components[k] for k in COMPONENTS[1:])
        self.demand_hist = np.concatenate([self.demand_hist[..., 1:], demand[..., None]], axis=-1)
        today = {
            "demand": demand,
            "sale": sale,
            "replenish": replenish,
            "arrived": arrived,
            "accepted": accepted,
            "excess": excess,
            "in_stock": self.in_stock,
            "in_transit": self.pipeline.sum(-1),
        }
        for k, ring in self.history.items():
            ring[..., :-1] = ring[..., 1:]
            ring[..., -1] = today[k]
        self.day += 1
        info = {
            "components": components,
            "demand": demand,
            "sale": sale,
            "replenish": replenish,
            "arrived": arrived,
            "accepted": accepted,
            "excess": excess,
        }
        return self.state(), reward, self.day >= self.end_day, info
