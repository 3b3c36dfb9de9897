"""L-LEARN, the UPDATE loop of ALTERNATING-MARL, the Nash-gap estimators and the baseline dispatchers."""

from __future__ import annotations

import itertools
import json
import math
from statistics import NormalDist

import numpy as np
import pytest

from agent_node.learners.alternating.alternating import (
    ACCEPT,
    CONVERGED,
    REJECT,
    AlternatingConfig,
    StayDispatcher,
    alternate,
    alternating_marl,
    update_rule,
)
from agent_node.learners.alternating.g_learn import TablePolicy, g_learn
from agent_node.learners.alternating.l_learn import l_learn, l_mfvi, l_ps
from agent_node.learners.alternating.nash_gap import (
    ModeOfSample,
    RescaledDispatcher,
    UniformRandomDispatcher,
    global_gap,
    local_gap,
    paired_gap,
    score_dispatchers,
)
from agent_node.warehouse.model import WarehouseModel, deterministic_local_policy, uniform_local_policy
from agent_node.warehouse.simulator import Simulator

TINY = WarehouseModel(zones=2)
SMALL = WarehouseModel(zones=3)


# ------------------------------------------------------------------------------------------------ L-LEARN
def _brute_force(model, pi_g, k, n, rollouts, horizon, seed):
    sim, eps = Simulator(model, n, seed), np.arange(rollouts)
    z = model.zones
    best = (-np.inf, None)
    for flat in itertools.product(range(3), repeat=z * z):
        table = np.array(flat).reshape(z, z)
        v = sim.run(pi_g, deterministic_local_policy(table), k, eps, horizon).returns.mean()
        best = max(best, (v, flat), key=lambda t: t[0])
    return best


@pytest.mark.parametrize("pi_g", [ModeOfSample(), StayDispatcher()], ids=["mode", "stay"])
def test_lps_matches_brute_force_on_two_zones(pi_g):
    kw = dict(n=20, rollouts=6, horizon=20, seed=3)
    best_v, best_flat = _brute_force(TINY, pi_g, 2, **kw)
    res = l_ps(TINY, pi_g, 2, sweeps=6, **kw)
    assert res.value >= res.start_value
    assert all(b >= a for a, b in zip([res.start_value] + res.history, res.history))
    assert res.value == pytest.approx(best_v, abs=1e-9)


def test_lps_is_coordinatewise_optimal_and_not_worse_than_start():
    pi_g, k, kw = ModeOfSample(), 3, dict(n=30, rollouts=4, horizon=15, seed=5)
    start = np.random.default_rng(0).integers(0, 3, size=(3, 3))
    res = l_ps(SMALL, pi_g, k, start=start, sweeps=10, **kw)
    assert res.value >= res.start_value and res.sweeps < 10  # converged: the last sweep changed nothing
    sim, eps = Simulator(SMALL, kw["n"], kw["seed"]), np.arange(kw["rollouts"])

    def value(t):
        return sim.run(pi_g, deterministic_local_policy(t), k, eps, kw["horizon"]).returns.mean()

    assert value(res.actions) == pytest.approx(res.value)
    for s_l, s_g, a in itertools.product(range(3), range(3), range(3)):
        t = res.actions.copy()
        t[s_l, s_g] = a
        assert value(t) <= res.value + 1e-9


def test_mfvi_moves_robots_toward_the_priority_zone():
    res = l_learn(WarehouseModel(), StayDispatcher(), 5, n=10, solver="mfvi", pi_l=uniform_local_policy(5))
    assert res.pi_l.shape == (5, 5, 3) and np.allclose(res.pi_l.sum(-1), 1)
    assert (np.diag(res.actions) == 0).all()  # aligned robots stay
    greedy = l_mfvi(WarehouseModel(), StayDispatcher(), 5, extract="greedy")
    assert set(np.unique(greedy.pi_l)) <= {0.0, 1.0}


def test_mfvi_with_the_next_timing_solves_its_bellman_equation():
    """local_transition = "next": the robot's move reads s_g', so Q(l, g, a) = r_l + gamma sum_h P_eff(h|g)
    sum_y P_l(y|l, h, a) V(h, y), checked entry by entry on the returned Q."""
    from agent_node.learners.alternating.l_learn import mfvi_q

    model = WarehouseModel(zones=3, local_transition="next")
    q, _ = mfvi_q(model, StayDispatcher(), 2, max_iters=2000, tol=1e-12)
    v = q.max(axis=-1)  # [l, g]
    p_eff = model.P_g[np.arange(3), np.arange(3)]  # the stay dispatcher: a_g = s_g whatever it polls
    for l_, g, a in itertools.product(range(3), range(3), range(3)):
        future = sum(p_eff[g, h] * model.P_l[l_, h, a, y] * v[y, h] for h in range(3) for y in range(3))
        assert q[l_, g, a] == pytest.approx(model.r_l[l_, g, a] + model.gamma * future, abs=1e-8)
    assert not np.allclose(
        q,
        mfvi_q(
            model.model_copy(update={"local_transition": "current"}), StayDispatcher(), 2, max_iters=2000, tol=1e-12
        )[0],
    )


def test_released_loop_keeps_the_best_checked_pair_and_stops_on_a_plateau():
    """The released code's outer loop: every iteration's pair is checked; a drop of more than rtol reverts to the
    best so far; two checks within rtol end it."""
    from agent_node.learners.alternating.alternating import released_loop

    checks = iter([10.0, 8.0, 10.05, 10.0])  # best, revert, best, keep (within 1 % of the best): a plateau
    outcome = released_loop(
        lambda g, l_: (g + 1, {}),
        lambda g, l_: (l_ + 1, {}),
        lambda g, l_: np.array([float(g + l_)]),
        0,
        0,
        n_steps=10,
        rtol=0.01,
        check=lambda it, g, l_: next(checks),
    )
    assert [r.decision for r in outcome.log] == ["best", "revert", "best", "keep"]
    assert outcome.stop == "plateau" and outcome.sweeps == 4 and outcome.initial_value == 0.0
    assert (outcome.pi_g, outcome.pi_l) == (3, 3)  # iteration 2 reverted to (1, 1); 3 gave (2, 2), 4 kept (3, 3)


# ------------------------------------------------------------------------------------------------ UPDATE
def test_update_rule_thresholds():
    conf = 1 - 0.05 / 20
    z = NormalDist().inv_cdf(0.5 + conf / 2)
    assert z == pytest.approx(3.0233, abs=1e-3)

    def const(v):
        return np.full(30, v)

    assert update_rule(const(1.0), 0.5, conf).decision == ACCEPT  # 1.0 >= 2 * 0.5
    assert update_rule(const(0.999), 0.5, conf).decision == CONVERGED
    assert update_rule(const(-1.0), 0.5, conf).decision == REJECT
    rng = np.random.default_rng(1)
    for _ in range(500):
        d = rng.normal(rng.normal(0, 1), rng.uniform(0.1, 3), size=int(rng.integers(5, 60)))
        dec = update_rule(d, 0.2, conf)
        assert dec.eta == max(0.2, z * d.std(ddof=1) / math.sqrt(d.size))
        assert (dec.decision == ACCEPT) == (d.mean() >= 2 * dec.eta)
        assert (dec.decision == REJECT) == (d.mean() <= -2 * dec.eta)


def _stub_game(g_values, l_values, noise=0.05, episodes=40):
    """Policies are numbers (their value); proposals are scripted; returns = g + l + common episode noise."""
    common = np.random.default_rng(0).normal(0, 5, episodes)
    own = np.random.default_rng(1)
    gs, ls = iter(g_values), iter(l_values)

    def evaluate(g, loc):
        return g + loc + common + own.normal(0, noise, episodes)

    return (lambda g, loc: (next(gs), {})), (lambda g, loc: (next(ls), {})), evaluate


def test_update_loop_accepts_only_clear_improvements_and_stops_on_a_quiet_sweep():
    g_vals = [3.0, 2.5, 3.05, 9.0]  # accept, reject (clearly worse), within tolerance
    l_vals = [1.0, 1.5, 1.52, 9.0]  # accept, accept, within tolerance
    pg, pl, ev = _stub_game(g_vals, l_vals)
    pi_g, pi_l, log, stop, sweeps, cur, initial = alternate(pg, pl, ev, 0.0, 0.0, n_steps=10, eta_0=0.1, delta=0.05)
    assert [r.decision for r in log] == [ACCEPT, ACCEPT, REJECT, ACCEPT, CONVERGED, CONVERGED]
    assert stop == "terminated" and sweeps == 3 and (pi_g, pi_l) == (3.0, 1.5)
    potential = [initial]
    for r in log:
        assert r.decision != ACCEPT or r.diff >= 2 * r.eta
        assert r.eta >= 0.1
        if r.decision == ACCEPT:
            assert r.value_new >= potential[-1]
            potential.append(r.value_new)
    assert float(cur.mean()) == pytest.approx(potential[-1])


def test_update_loop_keeps_going_while_one_player_accepts_and_respects_n_steps():
    pg, pl, ev = _stub_game([0.0] * 4, [1.0, 2.0, 3.0, 4.0])  # g never improves, l always does
    *_, log, stop, sweeps, _cur, _init = alternate(pg, pl, ev, 0.0, 0.0, n_steps=4, eta_0=0.1, delta=0.05)
    assert stop == "n_steps" and sweeps == 4
    assert [r.decision for r in log if r.player == "l"] == [ACCEPT] * 4
    assert [r.decision for r in log if r.player == "g"] == [CONVERGED] * 4


def test_config_forbids_unknown_fields_and_has_paper_defaults():
    cfg = AlternatingConfig()
    assert (cfg.n, cfg.m, cfg.n_steps, cfg.eval_rollouts, cfg.eval_horizon) == (1000, 30, 10, 50, 100)
    assert AlternatingConfig(k=4, eta_c=1.0).eta_0 == pytest.approx(0.5)
    with pytest.raises(Exception):
        AlternatingConfig(bogus=1)


def test_alternating_marl_end_to_end(tmp_path):
    cfg = AlternatingConfig(
        n=50,
        k=5,
        m=10,
        n_steps=3,
        g_tol=1e-2,
        l_sweeps=1,
        l_rollouts=6,
        l_horizon=30,
        eval_rollouts=12,
        eval_horizon=40,
    )
    log_path = tmp_path / "log.jsonl"
    res = alternating_marl(WarehouseModel(), cfg, log_path=log_path, g_learn_fn=g_learn)
    assert res.value >= res.initial_value
    assert [r.player for r in res.log[:2]] == ["g", "l"]
    lines = [json.loads(x) for x in log_path.read_text().splitlines()]
    assert len(lines) == len(res.log) and {"player", "decision", "diff", "eta", "learn_seconds"} <= set(lines[0])
    for r in res.log:
        assert r.decision != ACCEPT or r.diff >= 2 * r.eta
    assert res.stop in ("terminated", "n_steps") and res.pi_l.shape == (5, 5, 3)
    fresh = Simulator(WarehouseModel(), 50, cfg.eval_seed).run(res.pi_g, res.pi_l, 5, range(12), 40).returns.mean()
    assert fresh == pytest.approx(res.value)  # the reported value is the evaluation-set potential
    res.pi_g.save(tmp_path / "pi_g.npz")  # always a TablePolicy, deployable by the dispatcher
    assert (TablePolicy.load(tmp_path / "pi_g.npz").actions == res.pi_g.actions).all()


# ------------------------------------------------------------------------------------------------ gaps, baselines
def test_mode_of_sample_with_k_equal_n_tracks_the_true_mode():
    model, n = WarehouseModel(), 40
    sim = Simulator(model, n, 0)
    full = sim.run(ModeOfSample(), uniform_local_policy(5), n, range(5), 20)
    assert full.mode_hits.all()
    part = sim.run(ModeOfSample(), uniform_local_policy(5), 1, range(5), 20)
    rnd = sim.run(UniformRandomDispatcher(5, 0), uniform_local_policy(5), 1, range(5), 20)
    assert part.mode_hits.mean() < 1 and rnd.mode_hits.mean() < part.mode_hits.mean()


def test_rescaled_dispatcher_sees_the_full_histogram_at_lower_resolution():
    seen = {}

    def inner(s_g, counts):
        seen["counts"] = counts
        return counts.argmax(-1)

    pol = RescaledDispatcher(inner, 10)
    out = pol(np.array([0, 1]), np.array([[500, 300, 100, 50, 50], [0, 0, 999, 1, 0]]))
    assert (seen["counts"].sum(-1) == 10).all() and list(out) == [0, 2]
    assert seen["counts"][0].tolist() == [5, 3, 1, 1, 0]


def test_gap_estimators():
    gap, diff, (lo, hi) = paired_gap(np.array([1.0, 2.0, 3.0]), np.array([2.0, 3.0, 4.0]))
    assert gap == 0 and diff == -1 and lo == hi == 0
    model, k, n = SMALL, 2, 20
    kw = dict(n=n, eval_seed=4, rollouts=10, horizon=25)
    loc = local_gap(
        model, ModeOfSample(), uniform_local_policy(3), k, restarts=1, sweeps=2, ps_rollouts=4, ps_horizon=20, **kw
    )
    assert loc.gap > 0 and loc.ci[0] <= loc.gap <= loc.ci[1]  # a learned table beats uniform robots
    glob = global_gap(
        model, UniformRandomDispatcher(3, 0), uniform_local_policy(3), k, m=10, tol=1e-3, g_learn_fn=g_learn, **kw
    )
    assert glob.gap > 0 and glob.deviation_value > glob.value
    scores = score_dispatchers(
        model,
        uniform_local_policy(3),
        {"mode_k": (ModeOfSample(), k), "full": (ModeOfSample(), n)},
        n=n,
        rollouts=10,
        horizon=25,
    )
    assert scores["full"].mode_accuracy == 1.0
