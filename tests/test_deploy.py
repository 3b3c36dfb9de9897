"""Trained policies leave the run as portable files and drive vehicles again, one from a hand-started node."""

import json
import subprocess
import sys

import numpy as np
import torch
from conftest import ROOT, metrics, run_cli, start_run, wait_for
from test_rsm_run import QUICK, SCENARIO, run

from agent_node.learners.sac import SAC
from agent_node.portable_policy import PortablePolicy


def test_export_then_deploy_with_a_hand_started_node(tmp_path, reap):
    trained = tmp_path / "trained"
    run(trained, "world.agents=3", "algo.method=isac")
    policies = tmp_path / "policies"
    proc = run_cli("export", str(trained), "--out", str(policies))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in policies.iterdir()) == ["veh0.npz", "veh1.npz", "veh2.npz"]
    # the exported file acts as the checkpointed torch actor does (deterministic mean action)
    sac = SAC.from_state_dict(torch.load(trained / "checkpoints" / "veh1.pt", weights_only=False)["sac"])
    obs = np.random.default_rng(0).random((1000, 6)).astype(np.float32)
    np.testing.assert_allclose(
        PortablePolicy.load(policies / "veh1.npz").act(obs), sac.act(obs, deterministic=True)[0], rtol=1e-5, atol=1e-5
    )
    # deploy: veh0 launched by the coordinator; veh1 and veh2 join by hand as devices would, veh1 with
    # its own copy of the policy file, veh2 with none: it receives its policy from the coordinator
    deployed = tmp_path / "deployed"
    sets = [
        *QUICK,
        "world.agents=3",
        "algo.method=deploy",
        f"algo.policy_dir={policies}",
        'world.external=["veh1", "veh2"]',
        "run.register_timeout_s=120",
    ]
    coord = start_run(deployed, *sets, scenario=SCENARIO)
    reap(coord)
    wait_for(
        lambda: (
            (deployed / "coordinator.endpoint").exists() and (deployed / "coordinator.endpoint").read_text().strip()
        ),
        60,
        "coordinator endpoint",
    )
    nodes = []
    for node_id, extra in (("veh1", ["--policy", str(policies / "veh1.npz")]), ("veh2", [])):
        with open(tmp_path / f"{node_id}.log", "w") as fh:
            nodes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "agent_node",
                        "--id",
                        node_id,
                        "--role",
                        "policy",
                        *extra,
                        "--run",
                        str(deployed),
                    ],
                    cwd=ROOT,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        assert coord.wait(180) == 0, coord.stderr.read()[-3000:]
        assert [n.wait(30) for n in nodes] == [0, 0]
    finally:
        for n in nodes:
            if n.poll() is None:
                n.kill()
    recs = metrics(deployed)
    finals = {r["node"]: r for r in recs if r["kind"] == "policy_node" and r["final"]}
    assert set(finals) == {"veh0", "veh1", "veh2"}
    assert finals["veh1"]["policy"].endswith("veh1.npz")
    assert finals["veh0"]["policy"] == finals["veh2"]["policy"] == "coordinator"
    assert all(f["steps"] == 101 for f in finals.values())  # each of the 100 steps and the final observation
    summary = json.loads((deployed / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["results"]["train_episodes"] == 1
