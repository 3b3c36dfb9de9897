"""The environments' PettingZoo ParallelEnv faces: parallel_api_test, and the same numbers as the native env."""

from __future__ import annotations

import numpy as np
import pytest
from pettingzoo.test import parallel_api_test

from agent_node.warehouse.layout import DISPATCHER
from agent_node.warehouse.model import WarehouseModel
from agent_node.warehouse.simulator import Simulator
from scenarios.inventory.config import InventoryConfig
from scenarios.inventory.model import InventoryEnv
from scenarios.inventory.observe import observe
from scenarios.inventory.parallel import InventoryParallelEnv
from scenarios.warehouse.parallel import WarehouseParallelEnv

# parallel_api_test's warnings are failures, but for slots never bound to a vehicle (merge): they never appear
pytestmark = pytest.mark.filterwarnings("error", "ignore:No agents present but not all possible_agents:UserWarning")


def _inventory_cfg() -> InventoryConfig:
    return InventoryConfig(skus=3, echelons=2, horizon=6, lookback=4, warmup_days=4, demand={"days": 60})


def test_inventory_passes_the_api_test():
    parallel_api_test(InventoryParallelEnv(_inventory_cfg()), num_cycles=10)


def test_inventory_steps_as_the_native_env():
    cfg = _inventory_cfg()
    par, env = InventoryParallelEnv(cfg), InventoryEnv(cfg)
    obs, _ = par.reset(seed=3)
    env.reset(3)
    assert np.array_equal(obs["agent1"], observe(env)[1])
    rng = np.random.default_rng(0)
    for _ in range(cfg.horizon):
        a = rng.integers(0, 34, (2, 3))
        obs, rew, term, trunc, _ = par.step({"agent0": a[0], "agent1": a[1]})
        _, r, done, _ = env.step(a)
        assert np.array_equal(obs["agent0"], observe(env, a)[0])
        assert rew == {"agent0": r[0].sum(), "agent1": r[1].sum()}
        assert trunc == {"agent0": done, "agent1": done} and not any(term.values())
    assert done and par.agents == []


def test_warehouse_passes_the_api_test():
    parallel_api_test(WarehouseParallelEnv(WarehouseModel(), n=6, k=3, horizon=8), num_cycles=20)


def test_warehouse_replays_the_simulator():
    """Deterministic policies through the simulator and the same actions through the ParallelEnv: same game."""
    model, n, k, horizon, seed, episode = WarehouseModel(local_transition="next"), 7, 3, 6, 5, 2
    table = np.random.default_rng(1).integers(0, 3, (model.zones, model.zones))  # a_l = table[s_l, s_g]
    pi_g = lambda s_g, counts: counts.argmax(axis=1)  # noqa: E731
    ref = Simulator(model, n, seed).run(pi_g, np.eye(3)[table], k, [episode], horizon, record=True)
    par = WarehouseParallelEnv(model, n, k, horizon, seed=0)
    obs, _ = par.reset(seed=seed, options={"episode": episode})
    for t in range(horizon):
        s_g, s_l = obs[DISPATCHER][0], np.array([obs[r][0] for r in par.robots])
        assert s_g == ref.s_g[0, t] and np.array_equal(s_l, ref.s_l[0, t])
        a_g = int(pi_g(np.array([s_g]), obs[DISPATCHER][None, 1:])[0])
        assert a_g == ref.a_g[0, t]
        obs, rew, _, trunc, _ = par.step({DISPATCHER: a_g, **{r: table[s_l[i], s_g] for i, r in enumerate(par.robots)}})
        r_l = np.array([rew[r] for r in par.robots])
        assert np.allclose(r_l, ref.r_l[0, t]) and np.isclose(rew[DISPATCHER] + r_l.mean(), ref.rewards[0, t])
    assert all(trunc.values()) and par.agents == []
    assert np.array_equal([obs[r][0] for r in par.robots], ref.s_l[0, horizon])


def test_the_warehouse_floor_passes_the_api_test_and_follows_the_global_chain():
    """The world's one-agent env: the simulator's s_g stream, a_g = s_g when the dispatcher does not answer."""
    from scenarios.warehouse.parallel import FloorParallelEnv

    model = WarehouseModel()
    parallel_api_test(FloorParallelEnv(model, horizon=8, seed=3), num_cycles=20)
    par = FloorParallelEnv(model, horizon=8, seed=3)
    obs, _ = par.reset(options={"episode": 4, "steps": 5})
    s_g = int(model.initial_global(3, 4)[0])
    for t in range(5):
        assert list(obs[DISPATCHER]["clock"]) == [4, t] and obs[DISPATCHER]["sg"][-1] == s_g
        a_g = (s_g + 1) % model.zones if t % 2 else None
        obs, rew, _, trunc, infos = par.step({} if a_g is None else {DISPATCHER: a_g})
        a_g = s_g if a_g is None else a_g
        r_g = float(model.r_g[s_g, a_g])
        assert infos[DISPATCHER] == {"s_g": s_g, "a_g": a_g, "r_g": r_g} and rew[DISPATCHER] == r_g
        s_g = int(model.global_step(3, 4, t, np.array([s_g]), np.array([a_g]))[0])
    assert trunc[DISPATCHER] and par.agents == [] and len(obs[DISPATCHER]["sg"]) == 6


def _signal_env(tmp_path):
    from scenarios.signals.env import SignalEnv

    return SignalEnv("grid4x4", seed=1, horizon_s=45, run_dir=tmp_path)


def test_signals_pass_the_api_test(tmp_path):
    from scenarios.signals.parallel import SignalParallelEnv

    par = SignalParallelEnv(_signal_env(tmp_path))
    try:
        parallel_api_test(par, num_cycles=5)
    finally:
        par.close()


def test_signals_step_as_the_native_env(tmp_path):
    from scenarios.signals.parallel import SignalParallelEnv

    env = _signal_env(tmp_path / "native")
    rng = np.random.default_rng(0)
    lights = list(env.tls_ids)
    plan = [{t: int(rng.choice(np.flatnonzero(env.masks[t]))) for t in lights} for _ in range(3)]
    native = [env.reset(4)]
    for actions in plan:
        obs, rew, done, info = env.step(actions)
        native.append((obs, rew, done))
    par = SignalParallelEnv(_signal_env(tmp_path / "par"))
    obs, infos = par.reset(seed=4)
    assert all(np.array_equal(obs[t]["observation"], native[0][t]) for t in lights)
    assert all(np.array_equal(infos[t]["action_mask"], env.masks[t]) for t in lights)
    for actions, (n_obs, n_rew, n_done) in zip(plan, native[1:]):
        obs, rew, _, trunc, infos = par.step(actions)
        assert all(np.array_equal(obs[t]["observation"], n_obs[t]) for t in lights)
        assert rew == n_rew and all(v == n_done for v in trunc.values())
    assert n_done and par.agents == [] and "metrics" in infos[lights[0]]


def _cav_runs(make, actions_of, episode, steps):
    """(observations, reward) per step of a CavEnv driven directly, then of its ParallelEnv, with the same actions."""
    from scenarios.cav.parallel import CavParallelEnv

    env, runs = make(), []
    env.reset(episode)
    native = [(env.observations(), None)]
    for t in range(steps):
        env.step({a: actions_of(a, t) for a in env.observations()})
        native.append((env.observations(), env.reward()))
    env.close()
    par = CavParallelEnv(make())
    obs, _ = par.reset(seed=episode)
    runs = [(obs, None)]
    for t in range(steps):
        obs, rew, _, _, _ = par.step({a: np.array([actions_of(a, t)], np.float32) for a in par.agents})
        runs.append(({a: obs[a] for a in par.agents}, next(iter(rew.values()), None)))
    par.close()
    return native, runs


def _same(native, runs):
    for (n_obs, n_rew), (p_obs, p_rew) in zip(native, runs):
        assert n_obs.keys() == p_obs.keys() and all(np.array_equal(n_obs[a], p_obs[a]) for a in n_obs)
        assert n_rew == p_rew or n_rew is None


def test_figure_eight_passes_the_api_test_and_steps_as_the_native_env(tmp_path):
    from scenarios.cav.env import Figure8CavEnv
    from scenarios.cav.parallel import CavParallelEnv

    make = lambda: Figure8CavEnv(tmp_path, vehicles=5, agents=2, horizon=6)  # noqa: E731
    par = CavParallelEnv(make())
    try:
        parallel_api_test(par, num_cycles=10)
    finally:
        par.close()
    _same(*_cav_runs(make, lambda a, t: 1.0 if a.endswith("0") else -0.5 * t, episode=3, steps=5))


def test_merge_passes_the_api_test_and_steps_as_the_native_env(tmp_path):
    """Short warm-up and horizon: slots join as vehicles are bound (none leaves this early)."""
    from scenarios.cav.merge_env import MergeCavEnv
    from scenarios.cav.parallel import CavParallelEnv

    make = lambda: MergeCavEnv(tmp_path, agents=3, horizon=40, warmup_steps=50, binding="first")  # noqa: E731
    par = CavParallelEnv(make())
    try:
        parallel_api_test(par, num_cycles=40)
    finally:
        par.close()
    _same(*_cav_runs(make, lambda a, t: 0.5, episode=2, steps=30))


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """The 2 x 2 routing grid of tests/test_routing_env.py, three vehicles, no background traffic."""
    from scenarios.routing.grid_map import build_grid
    from scenarios.routing.maps import Trip

    out = tmp_path_factory.mktemp("routing_parallel")
    g = build_grid(out, junctions_x=2, junctions_y=2, spacing_m=100.0, attach_m=50.0, speed_limit=10.0)
    (out / "none.rou.xml").write_text("<routes/>\n")
    trips = [
        Trip(0, "left0A0", "right1", 9, 2.0),
        Trip(1, "left1A1", "right0", 8, 0.0),
        Trip(2, "top0A1", "bottom1", 5, 4.0),
    ]
    return g.net, out / "none.rou.xml", trips


def _routing_choice(agent: int, obs: np.ndarray, mask: np.ndarray) -> int:
    """A deterministic rule on what an agent sees: one of its allowed roads, picked by its position and id."""
    allowed = np.flatnonzero(mask)
    return int(allowed[(int(obs[0]) + agent) % len(allowed)])


def test_routing_passes_the_api_test(tiny_grid):
    from scenarios.routing.env import RoutingEnv
    from scenarios.routing.parallel import RoutingParallelEnv

    net, routes, trips = tiny_grid
    par = RoutingParallelEnv(RoutingEnv(net, routes, trips, t_max=150.0))
    try:
        parallel_api_test(par, num_cycles=400)
    finally:
        par.close()


def test_routing_steps_as_the_native_env(tiny_grid):
    """The same rule through the event-driven env (as the world drives it) and the ParallelEnv: same decisions,
    same rewards, same travel times; only deciding agents have a selectable action."""
    from scenarios.routing.env import RoutingEnv
    from scenarios.routing.parallel import RoutingParallelEnv

    net, routes, trips = tiny_grid
    env = RoutingEnv(net, routes, trips, t_max=300.0)
    env.reset(3)
    seen, returns = [], dict.fromkeys(range(3), 0.0)
    try:
        while not env.done:
            pending, endings = env.tick()
            while pending or endings:
                for e in endings:
                    returns[e.agent] += e.reward
                for d in pending:
                    returns[d.agent] += d.reward
                    seen.append((env.t, d.agent, d.junction))
                    assert env.apply(d.agent, d.edge, d.options, _routing_choice(d.agent, d.obs, d.mask))
                pending, endings = env.follow_ups([d.agent for d in pending]), []
        native_times = env.travel_times()
    finally:
        env.close()

    par = RoutingParallelEnv(RoutingEnv(net, routes, trips, t_max=300.0))
    par_seen, par_returns = [], dict.fromkeys(range(3), 0.0)
    try:
        obs, infos = par.reset(seed=3)
        while par.agents:
            deciding = [a for a in par.agents if infos[a]["deciding"]]
            assert all(obs[a]["action_mask"].any() == (a in deciding) for a in par.agents)
            for a in deciding:
                par_seen.append((par.env.t, int(a[5:]), infos[a]["junction"]))
            actions = {a: _routing_choice(int(a[5:]), obs[a]["observation"], obs[a]["action_mask"]) for a in deciding}
            obs, rewards, term, trunc, infos = par.step(actions)
            assert not any("applied" in i for i in infos.values())
            for a, r in rewards.items():
                par_returns[int(a[5:])] += r
        assert par.env.travel_times() == native_times
    finally:
        par.close()
    assert par_seen == seen and len(seen) > 6
    assert par_returns == pytest.approx(returns, abs=1e-9)
