"""The RSM-MASAC Merge scenario (scenarios/cav/merge_net.py, scenarios/cav/merge_env.py) on real libsumo.

libsumo runs one simulation per process: every test closes its environment before the next starts one.
"""

from __future__ import annotations

import numpy as np
import pytest

from scenarios.cav.merge_env import MergeCavEnv
from scenarios.cav.merge_net import MAIN_ROUTE, RAMP_ROUTE, build_merge


def _index(veh: str) -> int:
    return int(veh.split(".")[1])


@pytest.fixture
def make_env(tmp_path):
    envs = []

    def make(**kw):
        env = MergeCavEnv(tmp_path / "net", **kw)
        envs.append(env)
        return env

    yield make
    for env in envs:
        env.close()


def _run(env, episode, steps, policy, record=None):
    """Reset, then step `steps` times with policy(env) -> actions; return per-step snapshots."""
    env.reset(episode)
    out = []
    for _ in range(steps):
        env.step(policy(env))
        ids, xy, speed = env.sim.states()
        snap = {
            "ids": tuple(ids),
            "xy": xy.copy(),
            "speed": speed.copy(),
            "active": tuple(env.active()),
            "obs": env.observations(),
            "reward": env.reward(),
            "collided": env.collided(),
        }
        if record:
            record(env, snap)
        out.append(snap)
    return out


def _zero(env):
    return {a: 0.0 for a in env.active()}


def test_network_builds_and_is_cached(tmp_path):
    f = build_merge(tmp_path)
    for p in (f.net, f.routes, tmp_path / "merge.params.json"):
        assert p.exists()
    # Flow MergeNetwork: inflow 100 + pre-merge 200 + junction (~24.5 m, radius 10) + post-merge 100;
    # the ramp: inflow 100 + merge 100 + junction + the shared post-merge 100.
    assert 420 < f.main_length < 430 and 318 < f.ramp_length < 328
    main, ramp = dict(f.main_offsets), dict(f.ramp_offsets)
    assert [k for k in main if not k.startswith(":")] == [f"{e}_0" for e in MAIN_ROUTE]
    assert [k for k in ramp if not k.startswith(":")] == [f"{e}_0" for e in RAMP_ROUTE]
    assert main["left_0"] == pytest.approx(100.1, abs=0.05) and main["center_0"] > 300
    assert f.merge_shift == pytest.approx(main["center_0"] - ramp["center_0"])
    routes = f.routes.read_text()
    assert 'id="main"' in routes and 'vehsPerHour="2200"' in routes and 'departSpeed="10.0000"' in routes
    assert 'vehsPerHour="100"' in routes and 'departSpeed="7.5000"' in routes
    stamp = (f.net.stat().st_mtime_ns, f.routes.stat().st_mtime_ns)
    again = build_merge(tmp_path, seed=5, step_length=0.2)  # seed and step only go into the result
    assert (again.net.stat().st_mtime_ns, again.routes.stat().st_mtime_ns) == stamp
    assert again.seed == 5 and again.main_length == f.main_length
    longer = build_merge(tmp_path, pre_merge=500.0, departures="poisson")  # Flow's merge0: rebuilt
    assert longer.main_length == pytest.approx(f.main_length + 300, abs=0.5)
    assert 'period="exp(' in longer.routes.read_text()
    with pytest.raises(ValueError):
        build_merge(tmp_path, departures="uniform")


def test_inflows_binding_observations_release(make_env):
    env = make_env(warmup_steps=0)
    assert env.agent_ids == tuple(f"cav{i}" for i in range(13))
    assert (env.horizon, env.action_bound) == (750, 1.5)
    order: list[str] = []  # departure order over the episode
    ever_active: dict[str, list[bool]] = {a: [] for a in env.agent_ids}
    checks = {"no_leader": 0, "no_follower": 0, "x_checked": 0}
    main_off = dict(env.files.main_offsets)
    seen: set[str] = set()

    def record(env, snap):
        api = env.sim._api
        order.extend(v for v in snap["ids"] if v not in seen)
        seen.update(snap["ids"])
        for a in env.agent_ids:
            ever_active[a].append(a in snap["active"])
        assert len(env.bindings) <= 13
        assert 0.0 <= snap["reward"] <= 1.0 and not snap["collided"]
        assert sorted(snap["obs"]) == sorted(snap["active"])
        for slot, obs in snap["obs"].items():
            veh = env.vehicle_of(slot)
            assert obs.shape == (6,) and np.all((obs >= 0) & (obs <= 1))
            lead = api.vehicle.getLeader(veh, env.net_length)
            foll = api.vehicle.getFollower(veh, env.net_length)
            if not lead or not lead[0]:  # libsumo: None for no leader, ("", -1) for no follower
                assert obs[4] == obs[5] == 0.0
                checks["no_leader"] += 1
            if not foll or not foll[0]:
                assert obs[2] == obs[3] == 0.0
                checks["no_follower"] += 1
            lane = api.vehicle.getLaneID(veh)
            if lane in main_off:  # x = position along the main route / its length
                x = (main_off[lane] + api.vehicle.getLanePosition(veh)) / env.net_length
                assert obs[0] == pytest.approx(x, abs=1e-4)
                assert obs[1] == pytest.approx(api.vehicle.getSpeed(veh) / 30.0, abs=1e-4)
                checks["x_checked"] += 1
        ids, xy, speed = env.positions()
        assert ids == list(snap["active"]) and xy.shape == (len(ids), 2) and speed.shape == (len(ids),)

    _run(env, 0, 750, _zero, record)
    main = [v for v in order if v.startswith("main.")]
    ramp = [v for v in order if v.startswith("ramp.")]
    # 75 s at 2200 veh/h = 45.8 main vehicles; zero accelerations hold the CAVs at their departSpeed of
    # 10 m/s, and at 10 m/s a lane takes a vehicle every 1.75 s at most (IDM: tau 1 s + 7.5 m), so insertion
    # falls a little behind (43 measured). 100 veh/h with a fixed period of 36 s from t=0: 3 on the ramp.
    assert 41 <= len(main) <= 47 and len(ramp) == 3
    # No warm-up: the first 13 main-road vehicles, in order of entry, to cav0..cav12; no more after that.
    assert env.bindings == {f"cav{k}": main[k] for k in range(13)}
    assert main == sorted(main, key=_index)
    for a, flags in ever_active.items():  # each slot active for one unbroken stretch, then never again
        first, last = flags.index(True), len(flags) - 1 - flags[::-1].index(True)
        assert all(flags[first : last + 1])
    assert all(ever_active[f"cav{k}"].index(True) <= ever_active[f"cav{k + 1}"].index(True) for k in range(12))
    assert checks["no_leader"] > 0 and checks["no_follower"] > 0 and checks["x_checked"] > 100
    # Release: cav0's vehicle (at 10 m/s with zero accelerations) crossed the 425 m road in ~43 s and left.
    assert not ever_active["cav0"][-1] and "cav0" not in env.active() and env.vehicle_of("cav0") is None
    assert env.bindings["cav0"] not in env.sim.vehicle_ids()
    assert env.bindings["cav0"] not in env.sim._controlled
    assert env.exhausted() == (not env.active())
    # Without commands (every vehicle on SUMO's IDM) the fixed-period inflow enters at exactly its rate.
    entered: set[str] = set()
    _run(env, 0, 750, lambda env: {}, lambda env, snap: entered.update(snap["ids"]))
    assert sum(v.startswith("main.") for v in entered) == 46  # departures at 0, 1.636, ..., 73.6 s


def test_warmup_then_binding_and_inactive_actions_ignored(make_env):
    env = make_env()  # default warm-up: 300 steps (30 s)
    env.reset(0)
    present_main = [v for v in env.sim.vehicle_ids() if v.startswith("main.")]
    assert env.active() == [] and env.bindings == {} and env.observations() == {}
    first_free = max(_index(v) for v in present_main) + 1
    env.close()

    def loud(env):  # full braking for every slot that is not active: must change nothing
        acts = {a: -1.5 for a in env.agent_ids}
        acts.update(_zero(env))
        return acts

    quiet_run = _run(env, 0, 300, _zero)
    assert env.bindings["cav0"] == f"main.{first_free}"
    assert [_index(v) for v in env.bindings.values()] == list(range(first_free, first_free + len(env.bindings)))
    loud_run = _run(env, 0, 300, loud)
    for a, b in zip(quiet_run, loud_run):
        assert a["ids"] == b["ids"] and a["active"] == b["active"]
        np.testing.assert_array_equal(a["speed"], b["speed"])
    with pytest.raises(KeyError):
        env.step({"cav99": 0.0})


def test_same_episode_is_deterministic_and_actions_act(make_env):
    env = make_env(warmup_steps=100)
    rng_a, rng_b = np.random.default_rng(7), np.random.default_rng(7)

    def random_policy(rng):
        return lambda env: {a: float(rng.uniform(-3, 3)) for a in env.agent_ids}  # clipped to +-1.5

    a = _run(env, 3, 400, random_policy(rng_a))
    b = _run(env, 3, 400, random_policy(rng_b))
    for sa, sb in zip(a, b):
        assert sa["ids"] == sb["ids"] and sa["active"] == sb["active"] and sa["reward"] == sb["reward"]
        np.testing.assert_array_equal(sa["xy"], sb["xy"])
        for slot in sa["obs"]:
            np.testing.assert_array_equal(sa["obs"][slot], sb["obs"][slot])
    c = _run(env, 3, 400, _zero)  # the agents' accelerations change the traffic
    assert any(not np.array_equal(sa["speed"], sc["speed"]) for sa, sc in zip(a, c) if sa["ids"] == sc["ids"])


def test_random_binding_and_poisson_departures(make_env):
    env = make_env(warmup_steps=50, binding="random", bind_prob=0.5, departures="poisson", seed=1)
    runs = {}
    for ep in (0, 0, 1):
        _run(env, ep, 400, _zero)
        runs.setdefault(ep, []).append(dict(env.bindings))
        idx = [_index(v) for v in env.bindings.values()]
        assert idx == sorted(idx) and all(v.startswith("main.") for v in env.bindings.values())
        assert len(idx) < idx[-1] - idx[0] + 1  # some entering main-road vehicles were skipped
    assert runs[0][0] == runs[0][1]  # same episode: same choice (and the same SUMO departures)
    assert runs[0][0] != runs[1][0]
    with pytest.raises(ValueError):
        MergeCavEnv(env.files.net.parent, binding="all")


def test_the_scenario_chooses_cavs_at_random_by_default_and_first_on_request(tmp_path):
    """The paper: "13 vehicles are randomly chosen ... as they sequentially enter"; a [world] field."""
    from pathlib import Path

    from scenarios.cav.world import make_env as world_env
    from scenarios.config import load_scenario

    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "merge_rsm_masac.toml"
    env = world_env(load_scenario(scenario, []).world, tmp_path / "net", seed=3)
    assert (env.binding, env.bind_prob) == ("random", 0.5)
    env = world_env(load_scenario(scenario, ["world.binding=first"]).world, tmp_path / "net", seed=3)
    assert env.binding == "first"  # what each binding does: test_warmup_then_binding..., test_random_binding...


def test_the_all_idm_reference_line_runs_on_the_merge(tmp_path):
    """world.idm_reference = true: no agents, every vehicle an IDM driver (the paper's reference line); the
    random binding used to refuse zero agents, so the Merge had no reference line."""
    from pathlib import Path

    from scenarios.cav.world import make_env as world_env
    from scenarios.config import load_scenario

    scenario = Path(__file__).resolve().parents[1] / "scenarios" / "merge_rsm_masac.toml"
    env = world_env(load_scenario(scenario, ["world.idm_reference=true"]).world, tmp_path / "net", seed=3)
    try:
        snaps = _run(env, 0, 40, lambda e: {})
        assert env.agent_ids == () and all(s["active"] == () for s in snaps)
        assert len(snaps[-1]["ids"]) > 0 and 0 < snaps[-1]["reward"] <= 1
    finally:
        env.close()
