"""MABIM inventory: train/test windows, the agents' observations, the exploration-function inputs, batch acting."""

import numpy as np
import pytest

from agent_node.learners.ppo import MaskedPPO, PPOConfig
from scenarios.espark.candidates import _MABIM_PRELUDE, MABIM, validate_candidate
from scenarios.inventory.config import ACTION_MULTIPLES, N_ACTIONS, DemandConfig, InventoryConfig
from scenarios.inventory.model import InventoryEnv
from scenarios.inventory.observe import OBS_DIM, mabim_inputs, observe

ALL_ONES = """
def compute_mask(agent_states: AgentStates, supply_chain: SupplyChain, action_space: list):
    warehouses = supply_chain.get_warehouse_list()
    today = agent_states["all_warehouses", "demand", "today", "all_skus"]
    assert today.shape == (len(warehouses), len(agent_states))
    return np.ones((len(warehouses), len(agent_states), len(action_space))), {}
"""


def _env(**kw):
    cfg = dict(skus=6, echelons=2, horizon=30, lookback=21, warmup_days=21, seed=4, demand=DemandConfig(days=365))
    return InventoryEnv(InventoryConfig(**{**cfg, **kw}))


def test_test_window_is_the_last_days_and_train_windows_end_before_it():
    env = _env()
    span, days = 21 + 30, 365
    env.reset(5, split="test")
    first = env.state()
    assert env.end_day == days and env.day == days - 30  # the warm-up has run: 30 steps left
    env.reset(99, split="test")  # the seed is ignored
    np.testing.assert_array_equal(env.state()["in_stock"], first["in_stock"])
    ends = set()
    for seed in range(200):
        env.reset(seed)  # the default split is "train"
        assert env.end_day <= days - span
        ends.add(env.end_day)
    assert len(ends) > 50 and max(ends) > days - span - 30  # random windows spread up to the test window
    with pytest.raises(ValueError):
        env.reset(0, split="validation")


def test_observation_rows_features_and_one_hots():
    env = _env()
    env.reset(3)
    prev = np.arange(12).reshape(2, 6) % N_ACTIONS
    obs = observe(env, prev)
    assert obs.shape == (2, 6, OBS_DIM) and obs.dtype == np.float32 and np.isfinite(obs).all()
    np.testing.assert_array_equal(obs[..., -N_ACTIONS:].argmax(-1), prev)
    assert (obs[..., -N_ACTIONS:].sum(-1) == 1).all() and (observe(env)[..., -N_ACTIONS:] == 0).all()
    np.testing.assert_array_equal(obs[:, :, 19:22].argmax(-1), [[0] * 6, [1] * 6])  # echelon one-hot
    z = env.demand_hist.mean(-1) + 1
    np.testing.assert_allclose(obs[..., 0], env.in_stock / z, rtol=1e-5)
    np.testing.assert_allclose(obs[..., 18], 1.0)  # the whole episode is left


def test_mabim_inputs_validate_and_give_the_envs_values():
    env = _env()
    env.reset(7)
    rng = np.random.default_rng(0)
    infos = [env.step(rng.integers(0, N_ACTIONS, (2, 6)))[3] for _ in range(3)]
    args = mabim_inputs(env)
    v = validate_candidate(ALL_ONES, [args], N_ACTIONS, contract=MABIM)
    assert v.accepted, v.feedback()
    ns: dict = {}
    exec(_MABIM_PRELUDE, ns)  # the classes the sandbox wraps the plain data in
    st, chain, actions = ns["_espark_wrap"](args)
    assert actions == list(ACTION_MULTIPLES) and len(st) == 6 and st.current_step == 3 and st.durations == 30
    np.testing.assert_array_equal(st["store1", "demand", "today", "all_skus"], infos[-1]["demand"][0])
    np.testing.assert_array_equal(st["store2", "demand", "yesterday", "all_skus"], infos[-2]["demand"][1])
    np.testing.assert_array_equal(
        st["all_warehouses", "demand", "lookback_with_current", "all_skus"], np.moveaxis(env.demand_hist, -1, 1)
    )  # the window actions multiply
    for item in ("sale", "replenish", "arrived", "accepted", "excess"):
        np.testing.assert_array_equal(st["all_warehouses", item, "today", "all_skus"], infos[-1][item])
    assert st["store2", "in_stock", "today", "SKU3"] == env.in_stock[1, 3]
    np.testing.assert_array_equal(st["store1", "in_transit", "today", "all_skus"], env.pipeline.sum(-1)[0])
    np.testing.assert_array_equal(st["store2", "selling_price", "today", "all_skus"], env.params.price[1])
    np.testing.assert_array_equal(st["store1", "procurement_cost", 0, "all_skus"], env.params.cost[0])
    np.testing.assert_array_equal(st["store1", "vlt", "today", "all_skus"], env.params.vlt[0])
    assert st["store1", "demand", "history", "all_skus"].shape == (22, 6)
    assert chain.get_head() == "store1" and chain.get_tail() == "store2"
    assert chain["store1", "capacity"] == env.capacity and chain["store1", "upstream"] == "store2"
    assert chain["store2", "upstream"] == "super_vendor" and chain["store1", "downstream"] == "consumer"


def test_act_batch_follows_the_masks_and_matches_act_greedily():
    ppo = MaskedPPO(PPOConfig(obs_dim=OBS_DIM, n_actions=N_ACTIONS, seed=1))
    obs = np.random.default_rng(0).normal(size=(50, OBS_DIM)).astype(np.float32)
    masks = np.random.default_rng(1).random((50, N_ACTIONS)) < 0.3
    masks[0] = False  # an all-masked row falls back to every action
    a = ppo.act_batch(obs, masks)
    assert a.shape == (50,) and a.dtype == np.int64 and masks[np.arange(1, 50), a[1:]].all()
    greedy = ppo.act_batch(obs, masks, greedy=True)
    assert list(greedy) == [ppo.act(o, m, greedy=True)[0] for o, m in zip(obs, masks)]
