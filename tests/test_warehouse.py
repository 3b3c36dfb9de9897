"""The warehouse task: model tables, the vectorised simulator, and distributed runs replaying it."""

from __future__ import annotations

import json
import os
import signal

import numpy as np
import pytest
from conftest import ROOT, metrics, node_info, run_cli, start_run, wait_for

from agent_node.warehouse import streams
from agent_node.warehouse.model import WarehouseModel, cdf, uniform_local_policy
from agent_node.warehouse.simulator import Simulator, draw_polls, zone_counts
from scenarios.config import ConfigError, load_scenario
from scenarios.warehouse.results import episode_rewards

SCENARIO = ROOT / "scenarios" / "warehouse_alternating.toml"
FIG6 = ROOT / "scenarios" / "warehouse_alternating_fig6.toml"
SMALL = [
    "world.robots=20",
    "world.horizon=20",
    "algo.k=5",
    "algo.record=true",
    "run.heartbeat_timeout_s=2.0",
    "algo.train.n_steps=1",
    "algo.train.l_rollouts=4",
    "algo.train.l_horizon=20",
    "algo.train.l_sweeps=1",
    "algo.train.eval_rollouts=8",
    "algo.train.eval_horizon=20",
]


# ------------------------------------------------------------------ model and simulator
def test_tables_match_the_spec():
    m = WarehouseModel()
    assert np.allclose(m.P_g.sum(-1), 1) and np.allclose(m.P_l.sum(-1), 1)
    assert np.allclose(m.P_g[0, 2], [0.067, 0.040, 0.812, 0.040, 0.040], atol=1e-3)  # a_g != s_g
    assert np.allclose(m.P_g[1, 1, 1], 0.892, atol=1e-3)
    assert np.allclose(m.P_l[0, 0, 0], [0.918, 0.021, 0.021, 0.021, 0.021], atol=1e-3)
    assert np.allclose(m.P_l[0, 2, 1], [0.809, 0.109, 0.033, 0.024, 0.024], atol=1e-3)  # up from 0, s_g = 2
    assert m.P_l[4, 0, 1].argsort()[-2] == 0  # "up" from zone 4 wraps to zone 0
    assert m.r_l[0, 0, 0] == 10 and m.r_l[1, 0, 0] == 1.0 and np.isclose(m.r_l[2, 0, 0], 2 / 3)
    assert np.isclose(m.r_l[4, 0, 1], 1.5) and np.isclose(m.r_l[0, 0, 2], 9.7)  # ring distance, bonuses
    assert m.r_g[1, 3] == 2 and m.r_g[0, 4] == 0 and WarehouseModel(global_reward="repo").r_g[0, 4] == 1
    assert m.r_l.min() > 0 and m.r_max == 14.5


def test_one_simulator_step_by_hand():
    """Step 0 of a 3-robot episode against a hand evaluation of the same uniforms."""
    m, seed, n, k = WarehouseModel(), 11, 3, 2
    pi_l = uniform_local_policy(5)
    out = Simulator(m, n, seed).run(lambda sg, c: c.argmax(1), pi_l, k, [4], 1, record=True)
    s_g = int((streams.uniforms(seed, streams.GLOBAL_INIT, 4, 0, 0)[0] * 5))
    p = streams.generator(seed, 4, streams.POPULATION).dirichlet(np.full(5, 0.3))
    s_l = [
        int(np.searchsorted(np.cumsum(p), streams.uniforms(seed, streams.LOCAL_INIT, 4, i, 0)[0], side="right"))
        for i in range(n)
    ]
    polled = draw_polls(streams.generator(seed, 4, streams.POLLS), n, k)
    a_g = int(np.bincount([s_l[i] for i in polled], minlength=5).argmax())
    total = 0.0
    for i in range(n):
        a = int(streams.uniforms(seed, streams.LOCAL_ACTION, 4, i, 0)[0] * 3)  # uniform pi_l: thirds
        total += m.r_l[s_l[i], s_g, a]
        u = streams.uniforms(seed, streams.LOCAL_STEP, 4, i, 0)[0]
        assert out.s_l[0, 1, i] == np.searchsorted(np.cumsum(m.P_l[s_l[i], s_g, a]), u, side="right")
    assert out.s_g[0, 0] == s_g and out.s_l[0, 0].tolist() == s_l and out.a_g[0, 0] == a_g
    assert np.isclose(out.rewards[0, 0], m.r_g[s_g, a_g] + total / n)
    u = streams.uniforms(seed, streams.GLOBAL_STEP, 4, 0, 0)[0]
    assert out.s_g[0, 1] == np.searchsorted(np.cumsum(m.P_g[s_g, a_g]), u, side="right")


def test_simulated_transitions_follow_the_tables():
    m = WarehouseModel()
    u = streams.uniforms(3, streams.LOCAL_STEP, 0, np.arange(200_000), 0)
    freq = np.bincount(streams.pick(m.P_l_cdf[0, 2, 1], u), minlength=5) / len(u)
    assert np.allclose(freq, m.P_l[0, 2, 1], atol=0.005)


def test_exactly_k_distinct_polls_each_step():
    out = Simulator(WarehouseModel(), 50, 0).run(
        lambda sg, c: sg, uniform_local_policy(5), 7, range(3), 30, record=True
    )
    assert out.polled.shape == (3, 30, 7)
    assert all(len(set(row)) == 7 for row in out.polled.reshape(-1, 7).tolist())
    assert (zone_counts(np.zeros((2, 7), int), 5).sum(-1) == 7).all()


def test_common_random_numbers_pair_policies():
    sim = Simulator(WarehouseModel(), 30, 5)
    a = sim.run(lambda sg, c: c.argmax(1), uniform_local_policy(5), 3, range(4), 10, record=True)
    b = sim.run(lambda sg, c: c.argmax(1), uniform_local_policy(5), 3, range(4), 10, record=True)
    assert np.array_equal(a.s_l, b.s_l) and np.array_equal(a.returns, b.returns)


# ------------------------------------------------------------------ configuration
@pytest.mark.parametrize(
    "override, words",
    [
        ("algo.k=500", ["algo.k", "500"]),
        ("algo.colour=1", ["algo.colour"]),
        ("algo.train.n_steps=0", ["algo.train.n_steps"]),
        ("world.robots=0", ["world.robots"]),
        ("world.model.global_reward=other", ["world.model.global_reward"]),
        ("netsim.clock=sim", ["netsim.clock", "wall"]),
        ("algo.policy_dir=/nonexistent", ["algo.policy_dir"]),
        ("run.step_deadline_s=0.5", ["run.step_deadline_s", "algo.poll_timeout_s"]),
        ("algo.nash_gap=true", None),
        ("role.name=beacon", ["role", "fixed"]),
    ],
)
def test_invalid_warehouse_settings_name_the_field(override, words):
    if words is None:  # valid on its own; the baseline dispatcher below makes it invalid
        load_scenario(SCENARIO, [override])
        override, words = [override, "algo.dispatcher=mode"], ["algo.nash_gap", "learned"]
    with pytest.raises(ConfigError) as info:
        load_scenario(SCENARIO, override if isinstance(override, list) else [override])
    for word in words:
        assert word in str(info.value)


def test_policy_dir_trained_for_another_k_is_refused(tmp_path):
    from agent_node.learners.alternating.g_learn import TablePolicy

    TablePolicy.tabulate(3, 5, lambda s_g, counts: s_g).save(tmp_path / "pi_g.npz")
    with pytest.raises(ConfigError, match="no usable robot policy"):
        load_scenario(SCENARIO, [f"algo.policy_dir={tmp_path}", "algo.k=3"])
    np.save(tmp_path / "pi_l.npy", np.ones((5, 5, 3)))  # rows do not sum to 1
    with pytest.raises(ConfigError, match="probabilities"):
        load_scenario(SCENARIO, [f"algo.policy_dir={tmp_path}", "algo.k=3"])
    np.save(tmp_path / "pi_l.npy", uniform_local_policy(5))
    assert load_scenario(SCENARIO, [f"algo.policy_dir={tmp_path}", "algo.k=3"]).algo.k == 3
    with pytest.raises(ConfigError, match="trained for k = 3"):
        load_scenario(SCENARIO, [f"algo.policy_dir={tmp_path}", "algo.k=4"])
    (tmp_path / "pi_g.npz").write_bytes(b"not a table")
    with pytest.raises(ConfigError, match="cannot read"):
        load_scenario(SCENARIO, [f"algo.policy_dir={tmp_path}", "algo.k=3"])


# ------------------------------------------------------------------ distributed runs
@pytest.mark.parametrize("scenario", [SCENARIO, FIG6], ids=["paper", "fig6"])
def test_distributed_run_replays_the_simulator(tmp_path, scenario):
    """Train, then run 1 dispatcher + 20 robot processes over the medium: every step equals the simulator's,
    with the paper's text (the robots' move reads s_g(t)) and with the released code's settings (the preset of
    Fig. 6: the move reads s_g(t + 1), r_g = 1, trained by the released outer loop)."""
    from agent_node.learners.alternating.g_learn import TablePolicy

    out = tmp_path / "run"
    sets = [*SMALL, "run.steps=40", "algo.nash_gap=true", "world.horizon=20"]
    proc = run_cli(
        "run", str(scenario), "--out", str(out), "--no-progress", *sum((["--set", s] for s in sets), []), timeout=240
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    recs = metrics(out)
    pi_g = TablePolicy.load(out / "policy" / "pi_g.npz")
    pi_l = np.load(out / "policy" / "pi_l.npy")
    model = load_scenario(scenario, sets).world.model
    timing = model.local_transition
    assert timing == ("current" if scenario == SCENARIO else "next")
    loops = {json.loads(line)["player"] for line in (out / "policy" / "training.jsonl").read_text().splitlines()}
    assert loops == ({"g+l"} if scenario == FIG6 else {"g", "l"})
    sim = Simulator(model, 20, 0).run(pi_g, pi_l, 5, [0, 1], 20, record=True)
    other = Simulator(
        model.model_copy(update={"local_transition": {"current": "next", "next": "current"}[timing]}), 20, 0
    ).run(pi_g, pi_l, 5, [0, 1], 20, record=True)
    assert not np.array_equal(other.s_l, sim.s_l)  # the two timings are told apart
    for e in (0, 1):
        world = next(r for r in recs if r["kind"] == "world_episode" and r["episode"] == e)
        disp = next(r for r in recs if r["kind"] == "dispatcher_episode" and r["episode"] == e)
        robots = {r["robot"]: r for r in recs if r["kind"] == "robot_episode" and r["episode"] == e}
        assert world["s_g"] == sim.s_g[e, :20].tolist() and world["a_g"] == sim.a_g[e].tolist()
        assert [sorted(p) for p in disp["polled"]] == [sorted(p) for p in sim.polled[e].tolist()]
        assert all(len(set(p)) == 5 for p in disp["polled"])  # exactly k distinct answers per step
        assert sorted(robots) == list(range(20))
        for i, rec in robots.items():
            # "next": the last move would read s_g(horizon), which no broadcast carries; every reward is there
            moves = 20 if timing == "current" else 19
            assert rec["zones"] == sim.s_l[e, : moves + 1, i].tolist() and np.allclose(rec["r_l"], sim.r_l[e, :, i])
    returns = [e["return"] for e in episode_rewards(recs, 0.95)]
    assert np.allclose(returns, sim.returns)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["results"]["polls_sent"] == 40 * 5 and summary["results"]["polls_lost"] == 0
    assert np.isclose(summary["results"]["return_mean"], sim.returns.mean())
    assert (out / "policy" / "training.jsonl").exists() and (out / "plots" / "reward.png").exists()
    gap = json.loads((out / "policy" / "nash_gap.json").read_text())
    assert gap["gap"] >= 0 and summary["results"]["nash_gap"]["gap"] == gap["gap"]


def run_and_kill(out, reap, robot: str, at_step: int, *sets: str) -> None:
    """A 2-episode run with the mode dispatcher in which `robot` is SIGKILLed at `at_step`; it must end ok, or
    (on_node_failure = "continue", the scenario's) degraded: it went on without the robot, and says so."""
    p = start_run(
        out,
        *SMALL,
        "run.steps=200",
        "world.horizon=100",
        "algo.dispatcher=mode",
        "algo.poll_timeout_s=0.3",
        "run.step_deadline_s=10",
        *sets,
        scenario=SCENARIO,
    )
    reap(p)
    pid = wait_for(lambda: node_info(out, robot), 60, f"{robot} to register")[0]
    wait_for(lambda: any(m.get("kind") == "world" and m["step"] >= at_step for m in metrics(out)), 60, "steps")
    os.kill(pid, signal.SIGKILL)
    stdout, stderr = p.communicate(timeout=180)
    restarted = "run.on_node_failure=restart" in sets
    assert p.returncode == (0 if restarted else 3), stdout + stderr
    status = json.loads((out / "summary.json").read_text())["status"]
    assert status == "ok" if restarted else status == f"degraded: {robot} exited with code -9 and was not restarted"


def test_killed_robot_is_detected_and_its_polls_replaced(tmp_path, reap):
    out = tmp_path / "run"
    run_and_kill(out, reap, "robot0003", 20)
    summary = json.loads((out / "summary.json").read_text())
    res = summary["results"]
    assert summary["node_failures"] == 1 and summary["steps"] == 200
    assert res["polls_lost"] >= 1 and res["polls_replaced"] == res["polls_lost"] and res["short_steps"] == 0
    disp = [m for m in metrics(out) if m["kind"] == "dispatcher_episode"]
    answered = [p for m in disp for p in m["polled"]]
    asked = [a for m in disp for a in m["asked"]]
    assert all(len(set(p)) == 5 for p in answered)  # k distinct answers every step
    lost = [set(a) - set(p) for a, p in zip(asked, answered)]
    assert any(lost) and all(s <= {3} for s in lost)  # only the dead robot's polls went unanswered
    assert "robot0003" in (out / "logs" / "coordinator.log").read_text()


def test_lost_polls_without_replacement_leave_short_steps(tmp_path):
    out = tmp_path / "run"
    proc = run_cli(
        "run",
        str(SCENARIO),
        "--out",
        str(out),
        "--no-progress",
        *sum(
            (
                ["--set", s]
                for s in [
                    *SMALL,
                    "run.steps=40",
                    "algo.dispatcher=mode",
                    "netsim.loss=0.3",
                    "algo.replace_lost_polls=false",
                    "algo.poll_timeout_s=0.2",
                ]
            ),
            [],
        ),
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    res = json.loads((out / "summary.json").read_text())["results"]
    assert res["polls_lost"] > 0 and res["polls_replaced"] == 0 and res["short_steps"] > 0
    disp = [m for m in metrics(out) if m["kind"] == "dispatcher_episode"]
    answers = [a for m in disp for a in m["answers"]]
    assert min(answers) < 5 and max(answers) <= 5  # never more than k, even when late answers come in
    recs = metrics(out)
    robots = [m for m in recs if m["kind"] == "robot_episode"]
    assert len(robots) == 40  # a robot that missed broadcasts catches up from the s_g window or reports at the end
    # robots that missed broadcasts but never more than the window took exactly the simulator's steps
    model, pi_l_cdf = WarehouseModel(), cdf(uniform_local_policy(5))
    in_sync = {m["robot"] for m in recs if m["kind"] == "robot_node" and m["final"] and m["desync_steps"] == 0}
    world = {m["episode"]: m["s_g"] for m in recs if m["kind"] == "world_episode"}
    assert len(in_sync) >= 10
    for rec in robots:
        if rec["robot"] not in in_sync:
            continue
        zone = model.initial_local(0, rec["episode"], rec["robot"])
        zones = [int(zone[0])]
        for t, s_g in enumerate(world[rec["episode"]][: len(rec["zones"]) - 1]):
            _a, _r, zone = model.local_step(0, rec["episode"], rec["robot"], t, zone, np.array([s_g]), pi_l_cdf)
            zones.append(int(zone[0]))
        assert rec["zones"] == zones


def test_dispatcher_counts_only_answers_to_open_polls():
    """Unit test of the poll round: a late answer to a replaced poll is not counted (exactly k)."""
    from types import SimpleNamespace

    from agent_node.roles.base import NodeContext
    from agent_node.roles.dispatcher import DispatcherRole
    from agent_node.warehouse.layout import robot_id, robot_index
    from protocols.messages import Poll, PollReply

    sent: list = []

    class Radio:
        total_sent = 0
        peers = SimpleNamespace(down={robot_id(29)})  # a robot the directory marks down: never drawn

        def broadcast(self, body):
            pass

        def send(self, dst, body):
            sent.append((dst, body))

    def reply(i: int, step: int = 0):
        env = SimpleNamespace(src=robot_id(i), type="poll_reply")
        role.on_radio(SimpleNamespace(env=env, body=PollReply(episode=0, step=step, zone=i % 5)))

    first: list[int] = []

    def wait(done, _seconds):
        polls = [robot_index(d) for d, b in sent if isinstance(b, Poll)]
        if len(polls) == 4:  # round 1: nobody answers; remember who was asked
            first[:] = polls
            return done()
        reply(first[0])  # late answer from a replaced poll: must not count
        for i in polls[len(first) :]:
            reply(i)
        return done()

    ctx = NodeContext("dispatcher", np.random.default_rng(0), Radio(), lambda *a: None, {}, seed=0, wait=wait)
    role = DispatcherRole(ctx, {"n": 30, "k": 4, "horizon": 5, "policy": "mode", "poll_timeout_s": 0.01})
    obs = SimpleNamespace(arrays={"obs": np.array([0, 0]), "sg": np.array([2])}, body=SimpleNamespace(step=1))
    role.on_observation(obs)
    assert len(first) == 4 and len(role.answers) == 4 and not set(first) & set(role.answers)
    assert role.counters["polls_lost"] == 4 and role.counters["polls_replaced"] == 4
    assert role.counters["late_replies"] >= 1 and role.counters["polls_sent"] == 8 and 29 not in role.asked


def test_randomised_global_policy_matches_eq20():
    """a_g frequencies of the executed policy (fresh uniform k-subset each step) equal Eq. (20): the
    average of pi_hat over all C(n, k) subsets of the robots."""
    from itertools import combinations

    from agent_node.learners.alternating.g_learn import TablePolicy

    n, k, s_g = 7, 3, 2
    zones = np.array([0, 0, 1, 1, 1, 4, 2])
    table = TablePolicy.tabulate(k, 5, lambda sg, c: (c * np.arange(1, 6)).sum(1) % 5)  # an arbitrary table
    exact = np.zeros(5)
    for subset in combinations(range(n), k):
        exact[table(np.array([s_g]), zone_counts(zones[list(subset)][None], 5))[0]] += 1
    exact /= exact.sum()
    rng = np.random.default_rng(0)
    draws = np.stack([draw_polls(rng, n, k) for _ in range(20_000)])
    actions = table(np.full(len(draws), s_g), zone_counts(zones[draws], 5))
    assert np.allclose(np.bincount(actions, minlength=5) / len(draws), exact, atol=0.01)


def test_restarted_robot_rejoins_and_results_stay_finite(tmp_path, reap):
    """A robot killed under on_node_failure=restart comes back, catches up from the next broadcast, and
    the steps it could not know are left out of the results rather than invented."""
    out = tmp_path / "run"
    run_and_kill(out, reap, "robot0007", 30, "run.on_node_failure=restart")
    recs = metrics(out)
    assert any(m.get("event") == "node_restarted" and m.get("node") == "robot0007" for m in recs)
    res = json.loads((out / "summary.json").read_text())["results"]
    assert res["episodes"] == 2 and np.isfinite(res["return_mean"]) and res["desync_steps"] > 0
    mine = [m for m in recs if m["kind"] == "robot_episode" and m["robot"] == 7]
    assert any(v is None for m in mine for v in m["r_l"])  # steps taken without knowing s_g: not counted


def test_one_robot_step_in_plain_python_matches_the_vectorised_step():
    """A robot process steps with local_act_one / local_move_one (plain Python): the same draws, actions,
    rewards and zones as the simulator's vectorised local_step, bit for bit."""
    rng = np.random.default_rng(3)
    model = WarehouseModel(zones=5)
    pi_l_cdf = cdf(rng.dirichlet(np.ones(3), size=(5, 5)))
    for _ in range(300):
        seed, episode, robot, t = (int(v) for v in rng.integers(0, 2**31, 4))
        s_l, s_g = (int(v) for v in rng.integers(0, 5, 2))
        a, r, nxt = model.local_step(seed, episode, robot, t, np.array([s_l]), np.array([s_g]), pi_l_cdf)
        a1, r1 = model.local_act_one(seed, episode, robot, t, s_l, s_g, pi_l_cdf.tolist())
        assert (a1, r1, model.local_move_one(seed, episode, robot, t, s_l, s_g, a1)) == (a[0], r[0], nxt[0])
    for args in [(0, 1, 0, 0, 0), (2**63 - 1, 5, 2**40, 999, 7), (3, 4, -1, 2, -9)]:
        assert streams.uniform(*args) == streams.uniforms(*args)[0]
