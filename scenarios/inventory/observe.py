"""What the warehouse agents see (per-SKU feature vectors) and the plain-data inputs of exploration functions."""

from __future__ import annotations

import numpy as np

from .config import ACTION_MULTIPLES, N_ACTIONS
from .model import InventoryEnv

FEATURES = 22
OBS_DIM = FEATURES + N_ACTIONS  # 56: the features, then the one-hot of the previous action
MAX_ECHELONS = 3


def observe(env: InventoryEnv, prev_actions: np.ndarray | None = None) -> np.ndarray:
    """(M, N, OBS_DIM) float32, one row per (echelon, SKU), in the spirit of MABIM's ObservationWrapper4OldCode.

    With mu, sd = mean and std of the echelon's own demand over the lookback window (the mu that actions multiply)
    and z = mu + 1, the features are:
      0 in_stock / z               1 in_transit / z            2 (in_stock + in_transit) / z
      3 mu / z                     4 sd / z                    5-11 the last 7 days of demand / z (oldest first)
      12 cost / price              13 (price - cost) / price (the margin)
      14 unit_order_cost / ((price - cost) z): the fixed order cost against a day's margin
      15 vlt / 7                   16 days of cover after the lead time, ((in_stock + in_transit) / z - vlt) / 10
      17 the echelon's stock / its capacity (the same for all its SKUs)
      18 fraction of the episode left (steps_left / horizon)
      19-21 the echelon one-hot, padded to 3 echelons
    then 22-55 the one-hot of the previous action (all zero at the episode's first step or when prev_actions is None).
    """
    p, m, n = env.params, env.m, env.n
    hist = env.demand_hist.astype(np.float64)
    mu, sd = hist.mean(-1), hist.std(-1)
    z = mu + 1.0
    stock, transit = env.in_stock.astype(np.float64), env.pipeline.sum(-1).astype(np.float64)
    last7 = np.zeros((m, n, 7))
    k = min(7, hist.shape[-1])
    last7[..., 7 - k :] = hist[..., -k:]
    margin = p.price - p.cost
    fill = np.broadcast_to(stock.sum(1, keepdims=True) / env.capacity, (m, n))
    left = np.full((m, n), (env.end_day - env.day) / env.cfg.horizon)
    onehot = np.zeros((m, n, MAX_ECHELONS))
    onehot[np.arange(m), :, np.arange(m)] = 1.0
    feats = np.concatenate(
        [
            np.stack([stock / z, transit / z, (stock + transit) / z, mu / z, sd / z], -1),
            last7 / z[..., None],
            np.stack(
                [
                    p.cost / p.price,
                    margin / p.price,
                    env.cfg.unit_order_cost / (np.maximum(margin, 1e-6) * z),
                    p.vlt / 7.0,
                    ((stock + transit) / z - p.vlt) / 10.0,
                    fill,
                    left,
                ],
                -1,
            ),
            onehot,
        ],
        -1,
    )
    prev = np.zeros((m, n, N_ACTIONS))
    if prev_actions is not None:
        prev[np.arange(m)[:, None], np.arange(n)[None, :], np.asarray(prev_actions, np.int64)] = 1.0
    return np.concatenate([feats, prev], -1).astype(np.float32)


def mabim_inputs(env: InventoryEnv) -> tuple[dict, dict, list]:
    """(agent_states, supply_chain, action_space) as plain data, the format of candidates.mabim_sample_inputs.

    states[item] is (M, T, N) float with T = lookback + 1 days, the last one "today" = the latest simulated day
    (so agent_states[w, "demand", "lookback_with_current", s] is the window that actions multiply, and in_stock /
    in_transit "today" are the current levels). Warehouses store1..storeM, store1 = echelon 0 (customer-facing).
    """
    cfg, p, m, n = env.cfg, env.params, env.m, env.n
    t = cfg.lookback + 1
    wh = [f"store{i + 1}" for i in range(m)]
    days = lambda a: np.ascontiguousarray(np.moveaxis(np.asarray(a, np.float64), -1, 1))  # noqa: E731
    static = lambda a: np.repeat(np.asarray(a, np.float64)[:, None, :], t, axis=1)  # noqa: E731
    const = lambda v: np.full((m, t, n), float(v))  # noqa: E731
    states = {
        k: days(env.history[k])
        for k in ("demand", "sale", "in_stock", "in_transit", "replenish", "arrived", "accepted", "excess")
    }
    states.update(
        {
            "selling_price": static(p.price),
            "procurement_cost": static(p.cost),
            "vlt": static(p.vlt),
            "volume": const(1),
            "unit_order_cost": const(cfg.unit_order_cost),
            "basic_holding_cost": const(cfg.basic_holding_cost),
            "overflow_cost_ratio": const(cfg.overflow_cost_ratio),
            "backlog_ratio": const(cfg.backlog_ratio),
        }
    )
    chain = {
        "warehouses": wh,
        "capacity": {w: env.capacity for w in wh},
        "unit_storage_cost": {w: cfg.unit_storage_cost for w in wh},
        "upstream": {w: (wh[i + 1] if i + 1 < m else "super_vendor") for i, w in enumerate(wh)},
        "downstream": {w: (wh[i - 1] if i > 0 else "consumer") for i, w in enumerate(wh)},
    }
    agents = {
        "warehouses": wh,
        "skus": [f"SKU{j}" for j in range(n)],
        "current_step": cfg.horizon - (env.end_day - env.day),
        "durations": cfg.horizon,
        "lookback": cfg.lookback,
        "states": states,
    }
    return agents, chain, [float(a) for a in ACTION_MULTIPLES]
