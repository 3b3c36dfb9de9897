"""The edge install (issue 8): the base install and the `edge` extra pull neither torch nor SUMO, and a node
runs (joins a real run, acts with a portable policy) in an interpreter where importing torch, SUMO,
matplotlib, the scenarios or the coordinator fails, as on a device with only `pip install netmarl[edge]`."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
from conftest import BACKGROUND, ROOT, coordinator_log, start_run, wait_for

HEAVY = ("torch", "sumo", "libsumo", "traci", "sumolib", "matplotlib")  # what a device must not need
# what the node's import path must not touch (`python -m agent_node`); `netmarl node` is coordinator.cli's
# command, so there only the heavy packages are blocked
NODE_BLOCKED = (*HEAVY, "scenarios", "coordinator")

BLOCKER = '''\
"""Installed by tests/test_edge_install.py: importing a blocked package raises ImportError, as on an edge
install where it is absent; each attempt is appended to $NETMARL_BLOCKED_LOG."""
import os
import sys

_BLOCKED = frozenset({blocked!r})


class _EdgeBlocker:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in _BLOCKED:
            log = os.environ.get("NETMARL_BLOCKED_LOG")
            if log:
                with open(log, "a") as fh:
                    fh.write(name + "\\n")
            raise ImportError(f"{{name}} is not installed (blocked: edge install)", name=name)
        return None


sys.meta_path.insert(0, _EdgeBlocker())
'''


def blocked_env(folder: Path, blocked=NODE_BLOCKED) -> dict[str, str]:
    """Environment for a subprocess in which importing any of `blocked` fails: a sitecustomize.py in folder,
    first on PYTHONPATH (the project root follows it). Attempts are logged to folder/blocked.log."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER.format(blocked=tuple(blocked)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder), str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["NETMARL_BLOCKED_LOG"] = str(folder / "blocked.log")
    return env


def _attempts(folder: Path) -> list[str]:
    log = folder / "blocked.log"
    return log.read_text().split() if log.exists() else []


def _requirement_name(req: str) -> str:
    return re.split(r"[\s\[<>=!~;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_base_and_edge_dependencies_are_torch_and_sumo_free():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    edge = {_requirement_name(r) for r in [*project["dependencies"], *extras["edge"]]}
    heavy = {"torch", "eclipse-sumo", "libsumo", "traci", "sumolib", "matplotlib"}
    assert not edge & heavy, f"the edge install would pull {sorted(edge & heavy)}"
    assert {"pyzmq", "msgpack", "pydantic", "numpy", "aiomqtt"} <= edge
    assert heavy <= {_requirement_name(r) for r in extras["sim"]}, "the sim extra keeps the simulation stack"


def test_blocker_blocks(tmp_path):
    env = blocked_env(tmp_path / "site")
    code = (
        "import importlib\nfor m in %r:\n    try:\n        importlib.import_module(m)\n    except ImportError:\n"
        "        pass\n    else:\n        raise SystemExit(m + ' imported')\nprint('ok')" % (NODE_BLOCKED,)
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
    assert set(_attempts(tmp_path / "site")) == set(NODE_BLOCKED)


def test_node_help_without_torch(tmp_path):
    site = tmp_path / "site"
    env = blocked_env(site)
    r = subprocess.run(
        [sys.executable, "-m", "agent_node", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "--coordinator" in r.stdout, r.stderr
    env = blocked_env(tmp_path / "site2", HEAVY)  # `netmarl node`: the console script is coordinator.cli
    r = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "node", "--help"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and "--coordinator" in r.stdout, r.stderr
    assert _attempts(site) == [] and _attempts(tmp_path / "site2") == []


def test_nodes_join_a_run_without_torch_sumo_or_coordinator_code(tmp_path, reap):
    """`python -m agent_node` (scenarios and coordinator blocked too) and `netmarl node` each join a real run,
    heartbeat, and stop cleanly; none of them so much as tries to import a blocked package."""
    run_dir = tmp_path / "run"
    proc = start_run(run_dir, *BACKGROUND, "run.heartbeat_timeout_s=5")
    reap(proc)
    wait_for(lambda: "run started" in coordinator_log(run_dir), 60, "run started")
    commands = {
        "edge1": ([sys.executable, "-m", "agent_node"], NODE_BLOCKED),
        "edge2": ([sys.executable, "-m", "coordinator.cli", "node"], HEAVY),
    }
    nodes = {}
    try:
        for node_id, (cmd, blocked) in commands.items():
            env = blocked_env(tmp_path / node_id, blocked)
            with open(tmp_path / f"{node_id}.log", "w") as fh:
                nodes[node_id] = subprocess.Popen(
                    [*cmd, "--id", node_id, "--run", str(run_dir)],
                    cwd=tmp_path,
                    env=env,
                    stdout=fh,
                    stderr=subprocess.STDOUT,
                    text=True,
                )
        for node_id, node in nodes.items():
            log = tmp_path / f"{node_id}.log"
            wait_for(lambda: f"registered {node_id} (agent" in coordinator_log(run_dir), 30, f"{node_id} registered")
            wait_for(lambda: "registered (inbox" in log.read_text(), 20, f"{node_id} has its acknowledgement")
        wait_for(lambda: all(n.poll() is None for n in nodes.values()), 1, "nodes running")
        for node_id, node in nodes.items():
            node.send_signal(signal.SIGTERM)
            assert node.wait(15) == 0, (tmp_path / f"{node_id}.log").read_text()[-2000:]
            assert _attempts(tmp_path / node_id) == [], f"{node_id} tried to import {_attempts(tmp_path / node_id)}"
    finally:
        for node in nodes.values():
            if node.poll() is None:
                node.kill()
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 130


def test_exported_policy_acts_without_torch(tmp_path):
    """export_actor (here, with torch) writes a file that a torch-free interpreter loads and acts with: the same
    actions as the torch actor's deterministic bound * tanh(mu)."""
    import torch

    from agent_node.learners.rsm.export import export_actor
    from agent_node.learners.sac import Actor

    torch.manual_seed(3)
    actor, bound = Actor(), 3.0
    path = export_actor(actor, bound, tmp_path / "policy.npz", meta={"test": "edge"})
    obs = np.random.default_rng(0).normal(size=(64, 6)).astype(np.float32)
    np.save(tmp_path / "obs.npy", obs)
    with torch.no_grad():
        expected = (bound * torch.tanh(actor(torch.from_numpy(obs))[0])).numpy()
    code = (
        "import json, sys\nimport numpy as np\nfrom agent_node.portable_policy import PortablePolicy\n"
        f"p = PortablePolicy.load({str(path)!r})\nobs = np.load({str(tmp_path / 'obs.npy')!r})\n"
        "print(json.dumps([p.act(o).tolist() for o in obs]))\n"
        "assert not [m for m in sys.modules if m.partition('.')[0] in ('torch', 'scenarios', 'coordinator')]"
    )
    site = tmp_path / "site"
    r = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=blocked_env(site), capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, r.stderr
    got = np.array(json.loads(r.stdout))
    assert got.shape == (64, 1)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert _attempts(site) == []
