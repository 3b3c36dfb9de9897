"""Hosting a third-party PettingZoo ParallelEnv (MPE's simple_spread from mpe2): the world process runs it, each
agent is a process of its own with the ippo learner (discrete actions) or the isac learner (continuous ones); a wrong
environment is a clear error before anything starts."""

from __future__ import annotations

import json
import os
import subprocess

import numpy as np
import pytest
from conftest import NETMARL, ROOT, run_cli, tensorboard_scalars

SCENARIO = ROOT / "scenarios" / "pettingzoo_spread.toml"


def records(out, kind: str) -> list[dict]:
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == kind]


@pytest.mark.timeout(300)
def test_simple_spread_runs_as_one_process_per_agent_and_learns_between_episodes(tmp_path):
    out = tmp_path / "spread"
    proc = run_cli(
        "run", str(SCENARIO), "--out", str(out), "--no-progress",
        "--set", "world.episodes=8", "--set", "world.test_episodes=2", "--set", "world.update_every=4", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["results"]["train_episodes"] == 8
    episodes = records(out, "pettingzoo_episode")
    assert [e["mode"] for e in episodes] == ["train"] * 8 + ["test"] * 2
    assert all(e["steps"] == 25 and set(e["returns"]) == {"agent_0", "agent_1", "agent_2"} for e in episodes)
    updates = records(out, "ippo_epoch")  # two updates (every 4 episodes) per agent process, on 4 x 25 decisions
    assert sorted((u["node"], u["epoch"]) for u in updates) == [(f"agent{i}", k) for i in range(3) for k in (4, 8)]
    assert all(u["n"] == 100 for u in updates)
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["agent0.pt", "agent1.pt", "agent2.pt"]
    # the same numbers as TensorBoard scalars, read back from the event files
    board = tensorboard_scalars(out / "tensorboard")
    train = sorted(board["pettingzoo_episode/train/return"])
    assert [step for step, _ in train] == list(range(1, 9))
    assert [v for _, v in train] == pytest.approx([e["return"] for e in episodes[:8]], rel=1e-6)
    assert sorted(step for step, _ in board["ippo_epoch/agent2/policy_loss"]) == [4, 8]


@pytest.mark.timeout(300)
def test_continuous_simple_spread_runs_the_isac_learner_and_its_actions_move_the_agents(tmp_path):
    """Box actions: method "auto" gives every agent process the isac role (SAC); it answers action vectors in
    [-1, 1] that the world maps onto the box, keeps a transition per decision and takes gradient steps once its
    buffer is warm, and reports them at each update."""
    out = tmp_path / "spread"
    proc = run_cli(
        "run", str(SCENARIO), "--out", str(out), "--no-progress",
        "--set", "world.env_kwargs={N=3,max_cycles=25,continuous_actions=true}", "--set", "algo.method=auto",
        "--set", "algo.sac={hidden=32,batch_size=32,learning_starts=60}",
        "--set", "world.episodes=4", "--set", "world.test_episodes=1", "--set", "world.update_every=2", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["results"]["train_episodes"] == 4
    world = [r for r in records(out, "world") if r.get("final")]
    assert world and world[-1]["default_actions"] == 0 and world[-1]["late_actions"] == 0  # every vector was usable
    updates = sorted(records(out, "isac_epoch"), key=lambda u: (u["node"], u["epoch"]))
    assert [(u["node"], u["epoch"]) for u in updates] == [(f"agent{i}", k) for i in range(3) for k in (2, 4)]
    # 50 transitions by the first update (no gradient step yet: more than 60 to warm up); a step after each decision
    # from the one that finds 61 (the 12th of episode 3) on: 14 + 25
    assert [(u["buffer"], u["gradient_steps"]) for u in updates[:2]] == [(50, 0), (100, 39)]
    assert all(np.isfinite(u["q1_loss"]) for u in updates[1::2])
    episodes = records(out, "pettingzoo_episode")
    assert len({round(e["return"], 6) for e in episodes}) == len(episodes) == 5  # the agents' actions matter
    assert sorted(p.name for p in (out / "checkpoints").glob("*.pt")) == ["agent0.pt", "agent1.pt", "agent2.pt"]


def test_a_box_action_maps_onto_its_bounds():
    from scenarios.pettingzoo.host import AgentSpaces

    sp = AgentSpaces(obs_dim=4, n_actions=0, masked=False, act_dim=2, low=(0.0, -2.0), high=(1.0, 2.0))
    assert sp.continuous
    assert sp.to_env(np.array([-1.0, 1.0])).tolist() == [0.0, 2.0]
    assert sp.to_env(np.array([0.0, 0.0])).tolist() == [0.5, 0.0]
    assert sp.to_env(np.array([5.0, -7.0])).tolist() == [1.0, -2.0]  # clipped into [-1, 1] first


@pytest.mark.parametrize(
    "setting, message",
    [
        ('world.env="nosuchmodule.sub:env"', "cannot import 'nosuchmodule.sub'"),
        ('world.env="mpe2.simple_spread_v3:no_such_env"', "has no 'no_such_env'"),
        ('world.env="mpe2.simple_spread_v3:env"', "not a pettingzoo.ParallelEnv"),  # the AEC face
        ("world.env_kwargs={N=3,continuous_actions=true}", "have Box actions; ippo takes Discrete"),
        ("world.env_kwargs={N=3,no_such_argument=1}", "raised TypeError"),
        ('world.positions="scenarios.pettingzoo.spread_radio:positions"', 'set netsim.mode = "emulated"'),
    ],
)
def test_an_environment_that_cannot_be_hosted_is_a_config_error(tmp_path, setting, message):
    proc = run_cli("run", str(SCENARIO), "--out", str(tmp_path / "bad"), "--set", setting, timeout=120)
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr
    assert not (tmp_path / "bad").exists()  # nothing started, nothing written


def test_the_documented_example_of_a_netmarl_env_in_another_library_runs(capsys):
    """docs/pettingzoo.md's python block, run as written."""
    text = (ROOT / "docs" / "pettingzoo.md").read_text()
    (code,) = [block.split("```", 1)[0] for block in text.split("```python example\n")[1:]]
    exec(compile(code, "docs/pettingzoo.md", "exec"), {})
    assert "one episode of random actions: return" in capsys.readouterr().out


def test_a_role_of_your_own_runs_in_every_agent_process(tmp_path):
    """docs/pettingzoo.md's role file, on PYTHONPATH, named by import path; bad settings are refused up front."""
    text = (ROOT / "docs" / "pettingzoo.md").read_text()
    (code,) = [block.split("```", 1)[0] for block in text.split("```python\n")[1:]]
    (tmp_path / "my_roles.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    base = [*NETMARL, "run", str(SCENARIO), "--no-progress", "--set", 'algo.method="role"']
    base += ["--set", 'algo.role="my_roles:FixedRole"', "--set", "world.episodes=2", "--set", "world.test_episodes=1"]
    out = tmp_path / "run"
    proc = subprocess.run(
        [*base, "--out", str(out), "--set", "algo.role_settings={action=1}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    finals = records(out, "fixed_node")
    assert sorted(r["node"] for r in finals) == ["agent0", "agent1", "agent2"]
    assert all(r["decisions"] == 3 * 25 for r in finals)  # 2 training + 1 test episode of 25 steps
    bad = subprocess.run(
        [*base, "--out", str(tmp_path / "bad"), "--set", "algo.role_settings={action=-1}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert bad.returncode == 2 and "algo.role_settings.action" in bad.stderr, bad.stderr
    missing = subprocess.run(
        [*base, "--out", str(tmp_path / "bad"), "--set", 'algo.role="my_roles:NoSuchRole"'],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert missing.returncode == 2 and "cannot be imported" in missing.stderr, missing.stderr


@pytest.mark.timeout(300)
@pytest.mark.parametrize("loss", [0.0, 0.5])
def test_agents_broadcast_through_the_medium_and_its_loss_reaches_what_they_hear(tmp_path, loss):
    """scenarios/pettingzoo_spread_radio.toml: each agent process broadcasts its position every step from its role
    (the radio API the paper roles use); the medium places the agents where the positions function says and drops
    netsim.loss of the broadcasts; every delivered one, and only those, reaches a role's on_radio."""
    out = tmp_path / "radio"
    proc = run_cli(
        "run", str(ROOT / "scenarios" / "pettingzoo_spread_radio.toml"), "--out", str(out), "--no-progress",
        "--set", f"netsim.loss={loss}", "--set", "world.episodes=4", "--set", "world.test_episodes=1", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    payload = summary["links"]["payload"]
    assert payload["sent"] == 5 * 25 * 3 * 2  # 5 episodes of 25 steps, 3 agents, each to the 2 others
    finals = records(out, "radio_positions_node")
    assert sorted(r["node"] for r in finals) == ["agent0", "agent1", "agent2"]
    assert sum(r["heard"] for r in finals) == payload["delivered"] and not any(r["refused"] for r in finals)
    ages = [r["mean_age_s"] for r in finals]  # what a role knows of the others is one 0.1 s step old, or older
    if loss == 0:
        assert payload["delivery_ratio"] == 1.0
        assert ages == pytest.approx([0.1] * 3) and all(r["never_heard"] == pytest.approx(1 / 25) for r in finals)
    else:
        assert 0.4 < payload["delivery_ratio"] < 0.6
        assert all(a > 0.15 for a in ages) and all(r["never_heard"] > 1 / 25 for r in finals)


@pytest.mark.timeout(300)
def test_sumo_rl_traffic_signal_environment_runs_one_process_per_light(tmp_path):
    """sumo-rl's own PettingZoo environment (its 2x2 grid, four lights), hosted: each light an agent process with
    the ippo learner, SUMO in the world process."""
    out = tmp_path / "lights"
    proc = run_cli(
        "run", str(ROOT / "scenarios" / "pettingzoo_sumo_rl.toml"), "--out", str(out), "--no-progress",
        "--set", "world.env_kwargs={net='2x2grid',num_seconds=100,delta_time=5,sumo_warnings=false}",
        "--set", "world.episodes=2", "--set", "world.test_episodes=1", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["notes"]["agents"] == {
        "agent0": "1",
        "agent1": "2",
        "agent2": "5",
        "agent3": "6",
    }
    episodes = records(out, "pettingzoo_episode")
    assert [e["mode"] for e in episodes] == ["train", "train", "test"]
    assert all(e["steps"] == 20 and set(e["returns"]) == {"1", "2", "5", "6"} for e in episodes)  # 100 s / 5 s
    updates = records(out, "ippo_epoch")
    assert sorted((u["node"], u["epoch"]) for u in updates) == [(f"agent{i}", k) for i in range(4) for k in (1, 2)]


@pytest.mark.timeout(300)
def test_a_positions_function_that_fails_at_run_time_fails_the_run_naming_the_agent_and_the_step(tmp_path):
    """It imports (checked before anything starts), but returns nothing for the agents: the world stops at the first
    step with the cause in its log, the run fails and its folder is complete."""
    (tmp_path / "bad_positions.py").write_text("def positions(env):\n    return {}\n")
    out = tmp_path / "run"
    proc = subprocess.run(
        [*NETMARL, "run", str(ROOT / "scenarios" / "pettingzoo_spread_radio.toml"), "--out", str(out), "--no-progress",
         "--set", 'world.positions="bad_positions:positions"', "--set", "world.episodes=2"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"].startswith("failed") and "world" in summary["status"]
    log = (out / "logs" / "world.log").read_text()
    assert "world.positions gave no (x, y) for agent 'agent_0' at step 1" in log
