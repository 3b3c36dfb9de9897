"""Hosting a third-party PettingZoo ParallelEnv (MPE's simple_spread from mpe2): the world process runs it, each
agent is a process of its own with the ippo learner; a wrong environment is a clear error before anything starts."""

from __future__ import annotations

import json
import os
import struct
import subprocess
from collections import defaultdict

import pytest
from conftest import NETMARL, ROOT, run_cli

SCENARIO = ROOT / "scenarios" / "pettingzoo_spread.toml"


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] read back from the TensorBoard event files (TFRecord frames of Event protos)."""
    from tensorboardX.proto import event_pb2

    out = defaultdict(list)
    for path in folder.glob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (size,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + size])
            pos += 12 + size + 4
            for value in event.summary.value:
                out[value.tag].append((event.step, value.simple_value))
    return out


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


@pytest.mark.parametrize(
    "setting, message",
    [
        ('world.env="nosuchmodule.sub:env"', "cannot import 'nosuchmodule.sub'"),
        ('world.env="mpe2.simple_spread_v3:no_such_env"', "has no 'no_such_env'"),
        ('world.env="mpe2.simple_spread_v3:env"', "not a pettingzoo.ParallelEnv"),  # the AEC face
        ("world.env_kwargs={N=3,continuous_actions=true}", "is not Discrete"),
        ("world.env_kwargs={N=3,no_such_argument=1}", "raised TypeError"),
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
