"""MABIM inventory simulator: a hand-computed two-step example, the demand generator, the 34 actions, invariants."""

import numpy as np
import pytest
from pydantic import ValidationError

from scenarios.inventory.config import ACTION_MULTIPLES, N_ACTIONS, DemandConfig, InventoryConfig
from scenarios.inventory.demand import DemandParams, expected_demand, generate_demand, sample_demand
from scenarios.inventory.model import COMPONENTS, InventoryEnv, SkuParams

A = {m: ACTION_MULTIPLES.index(m) for m in (0.0, 0.5, 1.0, 1.5, 2.0, 12.0)}  # action index of a multiple


def _hand_env():
    """2 SKUs x 2 echelons, Lowest capacity: W = 2 x 25 = 50 per echelon; lookback 2, no warm-up."""
    cfg = InventoryConfig(
        skus=2, echelons=2, capacity="lowest", horizon=2, lookback=2, warmup_days=0, demand=DemandConfig(days=2)
    )
    params = SkuParams(
        # SKU0: super vendor 10, margin 50% -> echelon1 buys 10 sells 15, echelon0 buys 15 sells 22.5
        # SKU1: super vendor 4, margin 25%  -> echelon1 buys 4 sells 5,   echelon0 buys 5 sells 6.25
        price=np.array([[22.5, 6.25], [15.0, 5.0]]),
        cost=np.array([[15.0, 5.0], [10.0, 4.0]]),
        vlt=np.array([[1, 1], [2, 1]]),
        init_stock=np.array([[5, 40], [40, 0]]),
    )
    customer = np.array([[8, 3], [12, 4]])  # day 0, day 1
    env = InventoryEnv(cfg, demand=customer, params=params)
    env.reset(0)
    env.demand_hist[:] = [[[10, 10], [4, 6]], [[20, 20], [0, 0]]]  # means: e0 (10, 5), e1 (20, 0)
    env.pipeline[1, 1, 0] = 15  # 15 units of SKU1 reach echelon 1 on day 0
    env.pipeline[0, 1, 1] = 5  # 5 units of SKU1 reach echelon 0 on day 1
    return env


def test_hand_computed_two_steps():
    env = _hand_env()
    assert env.capacity == 50
    # ---- Step 1 (day 0). Orders: e0 SKU0 2.0x10=20, SKU1 1.5x5=7.5->7; e1 SKU0 0.5x20=10, SKU1 12x0=0.
    obs, r, done, info = env.step(np.array([[A[2.0], A[1.5]], [A[0.5], A[12.0]]]))
    c = info["components"]
    np.testing.assert_array_equal(info["replenish"], [[20, 7], [10, 0]])
    # Demand: e0 = customers (8, 3); e1 = e0's orders (20, 7).
    np.testing.assert_array_equal(info["demand"], [[8, 3], [20, 7]])
    # Sales: e0 SKU0 min(8, 5) = 5 (limited by stock); SKU1 3. e1 SKU0 20; SKU1 min(7, 0) = 0.
    np.testing.assert_array_equal(info["sale"], [[5, 3], [20, 0]])
    # Arrivals: only the preloaded 15 of SKU1 at e1; space 50 - (20 + 0) = 30 >= 15 so all accepted.
    np.testing.assert_array_equal(info["arrived"], [[0, 0], [0, 15]])
    np.testing.assert_array_equal(info["accepted"], [[0, 0], [0, 15]])
    # Stock: e0 (5-5, 40-3) = (0, 37); e1 (40-20, 0+15) = (20, 15).
    np.testing.assert_array_equal(obs["in_stock"], [[0, 37], [20, 15]])
    # In transit: e1's sale (20, 0) to e0 (vlt 1) plus the preloaded 5; e1's order (10, 0) from the vendor.
    np.testing.assert_array_equal(obs["in_transit"], [[20, 5], [10, 0]])
    # Margins: e0 (7.5, 1.25), e1 (5, 1).
    np.testing.assert_allclose(c["gross_margin"], [[5 * 7.5, 3 * 1.25], [20 * 5, 0]])  # 37.5, 3.75, 100, 0
    np.testing.assert_allclose(c["excess_cost"], [[0, 0], [0, 0]])
    np.testing.assert_allclose(c["order_cost"], [[10, 10], [10, 0]])  # 10 per positive order; e1 SKU1 ordered 0
    np.testing.assert_allclose(c["holding_cost"], [[0, 0.003 * 37], [0.003 * 20, 0.003 * 15]])  # 0.001+0.002/unit
    np.testing.assert_allclose(c["backlog_cost"], [[7.5 * 3 * 0.1, 0], [0, 1 * 7 * 0.1]])  # 2.25, 0.7
    # reward = gross margin - excess - order - holding - backlog
    np.testing.assert_allclose(r, [[37.5 - 10 - 2.25, 3.75 - 10 - 0.111], [100 - 10 - 0.06, -0.045 - 0.7]])
    assert not done
    # Window now (10, 8) and (6, 3) at e0 -> means (9, 4.5); (20, 20) and (0, 7) at e1 -> means (20, 3.5).
    # ---- Step 2 (day 1). Orders: e0 SKU0 1.0x9=9, SKU1 0; e1 SKU0 0, SKU1 2.0x3.5=7.
    obs, r, done, info = env.step(np.array([[A[1.0], A[0.0]], [A[0.0], A[2.0]]]))
    c = info["components"]
    np.testing.assert_array_equal(info["replenish"], [[9, 0], [0, 7]])
    np.testing.assert_array_equal(info["demand"], [[12, 4], [9, 0]])
    # Sales: e0 SKU0 min(12, 0) = 0 (stock-out), SKU1 4; e1 SKU0 9, SKU1 0. Stock after sale e0 (0, 33).
    np.testing.assert_array_equal(info["sale"], [[0, 4], [9, 0]])
    # Arrive after the lead time: e1's day-0 sale of 20 SKU0 (vlt 1) plus the preloaded 5 SKU1 at e0.
    np.testing.assert_array_equal(info["arrived"], [[20, 5], [0, 0]])
    # Rationing at e0: space 50 - 33 = 17 < 25 arrived -> gamma = 17/25 = 0.68;
    # accepted floor(20 x 0.68) = floor(13.6) = 13, floor(5 x 0.68) = floor(3.4) = 3; excess (7, 2).
    np.testing.assert_array_equal(info["accepted"], [[13, 3], [0, 0]])
    np.testing.assert_array_equal(info["excess"], [[7, 2], [0, 0]])
    np.testing.assert_array_equal(obs["in_stock"], [[13, 36], [11, 15]])  # 49 <= 50 at e0
    # In transit: e1's day-1 sale 9 SKU0 to e0; e1's day-0 vendor order 10 SKU0 (vlt 2), day-1 order 7 SKU1.
    np.testing.assert_array_equal(obs["in_transit"], [[9, 0], [10, 7]])
    np.testing.assert_allclose(c["gross_margin"], [[0, 4 * 1.25], [9 * 5, 0]])  # 0, 5, 45, 0
    np.testing.assert_allclose(c["excess_cost"], [[15 * 7 * 0.5, 5 * 2 * 0.5], [0, 0]])  # cost x excess x 0.5
    np.testing.assert_allclose(c["order_cost"], [[10, 0], [0, 10]])
    np.testing.assert_allclose(c["holding_cost"], [[0.003 * 13, 0.003 * 36], [0.003 * 11, 0.003 * 15]])
    np.testing.assert_allclose(c["backlog_cost"], [[7.5 * 12 * 0.1, 0], [0, 0]])  # 9: the whole 12 unmet
    np.testing.assert_allclose(r, [[-52.5 - 10 - 0.039 - 9, 5 - 5 - 0.108], [45 - 0.033, -10 - 0.045]])
    assert done
    with pytest.raises(AssertionError):
        env.step(np.zeros((2, 2), dtype=int))


def test_34_actions_map_to_documented_quantities():
    assert N_ACTIONS == 34 and ACTION_MULTIPLES[0] == 0.0 and ACTION_MULTIPLES[-1] == 12.0
    env = _hand_env()
    env.demand_hist[:] = 10  # mean demand 10 everywhere -> order floor(multiple x 10)
    expected = [
        0,
        1,
        3,
        4,
        4,
        5,
        5,
        6,
        6,
        8,
        10,
        11,
        13,
        15,
        16,
        18,
        20,
        21,
        23,
        25,
        26,
        28,
        30,
        31,
        33,
        35,
        36,
        38,
        40,
        50,
        60,
        70,
        90,
        120,
    ]
    got = [int(env.order_quantities(np.full((2, 2), a))[0, 0]) for a in range(N_ACTIONS)]
    assert got == expected
    with pytest.raises(AssertionError):
        env.order_quantities(np.full((2, 2), 34))


def test_capacity_variants_follow_table_10():
    for skus, variant, cap in [
        (100, "standard", 10_000),
        (100, "lower", 5_000),
        (100, "lowest", 2_500),
        (500, "standard", 50_000),
        (500, "lower", 25_000),
        (500, "lowest", 12_500),
    ]:
        assert InventoryConfig(skus=skus, capacity=variant).capacity_per_echelon == cap
    with pytest.raises(ValidationError):
        InventoryConfig(echelons=4)


def test_demand_reproducible_nonnegative_with_trend_and_seasonality():
    cfg = DemandConfig(days=730)
    d1, p1 = generate_demand(cfg, 200, seed=7)
    d2, _ = generate_demand(cfg, 200, seed=7)
    d3, _ = generate_demand(cfg, 200, seed=8)
    np.testing.assert_array_equal(d1, d2)
    assert not np.array_equal(d1, d3)
    assert d1.dtype == np.int64 and d1.min() >= 0 and d1.shape == (730, 200)
    mu = expected_demand(p1, np.arange(730))
    assert abs(d1.mean() / mu.mean() - 1) < 0.02  # unbiased noise around the expected demand
    # The stated formula on one hand-picked SKU: base 10, trend +36.5 %/year, weekly 0.2, annual 0.5, phases 0.
    one = DemandParams(*(np.array([v]) for v in (10.0, 0.365, 0.2, 0.0, 0.5, 0.0)))
    t = np.array([0.0, 1.75, 91.25, 365.0])
    w = 1 + 0.2 * np.sin(2 * np.pi * t / 7)
    y = 1 + 0.5 * np.sin(2 * np.pi * t / 365)
    np.testing.assert_allclose(expected_demand(one, t)[:, 0], 10 * (1 + 0.001 * t) * w * y)
    assert expected_demand(one, np.array([0.0]))[0, 0] == 10.0  # every sine is 0 on day 0
    # Trend shows in the data: growing SKUs sell more in year 2 than in year 1 (full years cancel the season).
    up, down = p1.trend > 0.3, p1.trend < -0.2
    assert (d1[365:, up].mean(0) > d1[:365, up].mean(0)).all()
    assert (d1[365:, down].mean(0) < d1[:365, down].mean(0)).all()
    # Weekly seasonality: the realised weekday profile follows sin(2 pi (t + p_j) / 7).
    j = int(np.argmax(p1.weekly_amp * p1.base))
    days = np.arange(728)
    corr = np.corrcoef(d1[:728, j].reshape(-1, 7).mean(0), np.sin(2 * np.pi * (days[:7] + p1.weekly_phase[j]) / 7))
    assert corr[0, 1] > 0.8
    # Noise: negative binomial, variance mu + mu^2 / k.
    s = sample_demand(np.full(200_000, 10.0), 5.0, np.random.default_rng(0))
    assert abs(s.mean() - 10) < 0.1 and abs(s.var() / (10 + 100 / 5) - 1) < 0.05


@pytest.mark.parametrize("capacity", ["standard", "lowest"])
def test_invariants_random_100_sku_3_echelons(capacity):
    env = InventoryEnv(InventoryConfig(skus=100, echelons=3, capacity=capacity, seed=3))
    rng = np.random.default_rng(0)
    obs, done, steps, excess = env.reset(seed=11), False, 0, 0
    assert (obs["in_stock"].sum(1) <= env.capacity).all()
    while not done:
        before = obs["in_stock"]
        obs, r, done, info = env.step(rng.integers(0, N_ACTIONS, (3, 100)))
        steps += 1
        excess += info["excess"].sum()
        c = info["components"]
        assert obs["in_stock"].min() >= 0 and obs["in_transit"].min() >= 0
        assert (info["sale"] <= info["demand"]).all() and (info["sale"] <= before).all()
        assert (0 <= info["accepted"]).all() and (info["accepted"] <= info["arrived"]).all()
        assert (obs["in_stock"].sum(1) <= env.capacity).all()  # rationing never exceeds capacity
        np.testing.assert_array_equal(obs["in_stock"], before - info["sale"] + info["accepted"])
        np.testing.assert_allclose(c["gross_margin"] - sum(c[k] for k in COMPONENTS[1:]), r)
        assert all(c[k].shape == (3, 100) for k in COMPONENTS) and min(c[k].min() for k in COMPONENTS) >= 0
    assert steps == 100
    if capacity == "lowest":
        assert excess > 0  # random orders overflow the 2,500 units, so rationing was exercised
