"""Which ends of a CAV episode stop the bootstrap: a collision does; the horizon and leaving the road are
truncations (issue: Merge exit is not a terminal state)."""

import numpy as np
import torch
from conftest import ROOT, metrics, run_cli

from agent_node.node import agent_rng
from agent_node.roles.base import NodeContext
from agent_node.roles.cav import CavRole
from protocols.messages import Act, Envelope, Message, Observation


def role():
    settings = {"name": "cav", "method": "isac", "sac": {"learning_starts": 10_000}}
    ctx = NodeContext("cav0", agent_rng(1, "cav0"), None, lambda kind, values: None, {"role": settings}, seed=1)
    return CavRole(ctx, settings)


def observe(r, step, done=False, **info):
    body = Observation(step=step, reward=0.5, done=done, info=Act(episode=0, mode="train", **info))
    env = Envelope(type=body.TYPE, src="world", dst="cav0", seq=step, t_sim=step * 0.1)
    obs = np.full(6, 0.1 * step, np.float32)
    return r.on_observation(Message(env, body, {"obs": obs, "xy": np.zeros(2)}))


def stored_done(**end):
    r = role()
    observe(r, 1, first=True)
    observe(r, 2)
    observe(r, 3, done=True, **end)
    return [float(d) for d in r.buf.done[: len(r.buf)]]


def test_the_role_stores_only_terminal_ends_as_done():
    assert stored_done(terminal=False, left=True) == [0.0, 0.0]  # left the road: bootstrap
    assert stored_done(terminal=False) == [0.0, 0.0]  # the horizon: bootstrap
    assert stored_done(terminal=True) == [0.0, 1.0]  # a collision: no future
    assert stored_done() == [0.0, 1.0]  # a world that does not say: every end is terminal, as before


def test_merge_vehicles_that_leave_and_the_horizon_give_truncations(tmp_path):
    out = tmp_path / "merge"
    args = ["run", str(ROOT / "scenarios" / "merge_rsm_masac.toml"), "--out", str(out), "--no-progress", "--seed", "2"]
    for s in [
        "world.episodes=1",
        "world.horizon=600",
        "world.test_every=0",
        "algo.method=isac",
        "algo.sac={learning_starts=100000}",
        "algo.checkpoint_every=1",
    ]:
        args += ["--set", s]
    proc = run_cli(*args, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    episode = next(r for r in metrics(out) if r["kind"] == "cav_episode")
    assert not episode["collided"]
    sizes, dones = [], []
    for path in sorted((out / "checkpoints").glob("cav*.pt")):
        buf = torch.load(path, weights_only=False)["buffer"]
        sizes.append(buf["size"])
        dones.append(float(buf["done"][: buf["size"]].sum()))
    assert len(sizes) >= 8 and min(sizes) > 0  # CAVs are chosen at random as they enter: not every slot fills
    assert dones == [0.0] * len(sizes), "no collision: every transition bootstraps, the last ones included"
