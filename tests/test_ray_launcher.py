"""Runs placed by Ray (run.launcher = "ray"): every process a Ray actor on a real multi-node cluster on this machine
(Ray's own test cluster: a head and a second node, each its own raylet), failures through Ray, nothing left behind."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, coordinator_log, metrics, run_cli, start_run, wait_for

ray = pytest.importorskip("ray")  # the optional [ray] extra (CI installs it)


@pytest.fixture(scope="module")
def cluster():
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
    c.add_node(num_cpus=2)
    c.wait_for_nodes()
    yield c
    c.shutdown()


def ray_processes() -> list[str]:
    """Actor worker processes of any run (their names start with ray::)."""
    return subprocess.run(["pgrep", "-f", "ray::NodeProgram"], capture_output=True, text=True).stdout.split()


def no_actor_left() -> None:
    """Ray ends a run's actors asynchronously once the run has left the cluster: none may stay."""
    wait_for(lambda: not ray_processes(), 60, "no actor of the run left on the cluster")


def test_a_beacon_run_spreads_its_processes_over_the_clusters_nodes(tmp_path, cluster):
    out = tmp_path / "run"
    proc = run_cli(
        "run", "scenarios/figure8_beacons.toml", "--out", str(out), "--no-progress", "--ray", cluster.address,
        "--set", "run.steps=100", timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "ok" and summary["steps"] == 100 and summary["node_failures"] == 0
    placement = json.loads((out / "placement.json").read_text())
    assert set(placement) == {"world", "medium", *(f"veh{i}" for i in range(14))}
    nodes = {where["ray_node"] for where in placement.values()}
    assert len(nodes) == 2 and sum(summary["placement"]["ray_node"].values()) == 16  # spread over both raylets
    registered = coordinator_log(out)
    for name, where in placement.items():  # each process registered from the actor Ray placed, its inbox listening
        assert (out / "logs" / f"{name}.log").exists()  # on its host's cluster address (not loopback)
        assert re.search(
            rf"registered {name} \(\w+, pid {where['pid']}\) at tcp://{re.escape(where['ip'])}:", registered
        )
    no_actor_left()


def test_a_killed_actor_is_reported_and_restarted_by_ray(tmp_path, cluster):
    out = tmp_path / "run"
    proc = start_run(out, "run.steps=100000", 'run.launcher="ray"', f'run.ray_address="{cluster.address}"')
    try:
        wait_for(lambda: (out / "placement.json").exists(), 120, "the run started")
        victim = json.loads((out / "placement.json").read_text())["veh4"]["pid"]
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: [m for m in metrics(out) if m.get("event") == "node_restarted" and m.get("node") == "veh4"],
            60,
            "veh4 restarted",
        )
        try:  # about 4 s quiet, 10 s with both cores taken by other work; one loaded run here once passed 60 s
            wait_for(lambda: (out / "logs" / "veh4.log").read_text().count("registered (inbox") >= 2, 120, "veh4 back")
        except AssertionError as err:  # what the new actor and the coordinator last said, to tell a fault from load
            tails = {n: (out / "logs" / f"{n}.log").read_text()[-1500:] for n in ("veh4", "coordinator")}
            raise AssertionError(f"{err}\n" + "\n".join(f"--- {n}.log:\n{t}" for n, t in tails.items())) from None
    finally:
        proc.send_signal(signal.SIGTERM)
        rc = proc.wait(90)
    assert rc == 130
    failed = [m for m in metrics(out) if m.get("event") == "node_failed"]
    assert [m["node"] for m in failed] == ["veh4"] and failed[0]["exitcode"] == -signal.SIGKILL
    no_actor_left()


@pytest.mark.parametrize(
    "setting, message",
    [
        ('run.ray_address="127.0.0.1:1"', "cannot join the Ray cluster"),
        ("run.ray_cpus=1.0", "need 16 CPUs; the Ray cluster has 4"),
        ('run.ray_world_resource="sumo"', "no host of the Ray cluster has that resource"),
    ],
)
def test_a_run_ray_cannot_place_is_refused_with_exit_code_2(tmp_path, cluster, setting, message):
    out = tmp_path / "bad"
    proc = run_cli(
        "run", "scenarios/figure8_beacons.toml", "--out", str(out), "--no-progress", "--set", 'run.launcher="ray"',
        "--set", f'run.ray_address="{cluster.address}"', "--set", setting, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and message in proc.stderr, proc.stderr[-2000:]
    no_actor_left()


SWEEP = ["--grid", "netsim.range_m=60,120", "--grid", "netsim.loss=0,0.3", "--set", "run.steps=60"]
SAME = ("status", "steps", "beacon_sent", "beacon_delivery_ratio", "payload_delivery_ratio")


def sweep_rows(folder) -> list[dict]:
    with open(folder / "sweep.csv") as fh:
        return list(csv.DictReader(fh))


def test_a_sweep_on_ray_runs_its_points_as_tasks_and_gives_the_local_numbers(tmp_path, cluster):
    """4 points as Ray tasks across the two-node cluster, each a whole run on one host, its folder brought back:
    the same numbers as the same points run here one after the other (same seeds); --resume reads finished points."""
    args = ["sweep", "scenarios/figure8_beacons.toml", *SWEEP, "--no-progress"]
    here = run_cli(*args, "--out", str(tmp_path / "local"), timeout=300)
    assert here.returncode == 0, here.stderr[-2000:]
    on_ray = run_cli(*args, "--out", str(tmp_path / "ray"), "--ray", cluster.address, "--point-cpus", "1", timeout=300)
    assert on_ray.returncode == 0, on_ray.stderr[-2000:] + on_ray.stdout[-2000:]
    local, remote = sweep_rows(tmp_path / "local"), sweep_rows(tmp_path / "ray")
    assert len(local) == 4 and [{k: r[k] for k in SAME} for r in remote] == [{k: r[k] for k in SAME} for r in local]
    assert all((tmp_path / "ray" / f"range_m={m}_loss={x}" / "links.csv").exists() for m in (60, 120) for x in (0, 0.3))
    assert "4 points as Ray tasks" in on_ray.stdout
    no_actor_left()
    # one point lost its summary (as a run cut short would): --resume runs that point only
    (tmp_path / "ray" / "range_m=120_loss=0.3" / "summary.json").unlink()
    again = run_cli(*args, "--out", str(tmp_path / "ray"), "--ray", cluster.address, "--resume", timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "3 points finished before" in again.stdout and "1 points as Ray tasks" in again.stdout
    assert [{k: r[k] for k in SAME} for r in sweep_rows(tmp_path / "ray")] == [{k: r[k] for k in SAME} for r in local]
    assert list((tmp_path / "ray").glob("range_m=120_loss=0.3.unfinished-*"))


def test_a_hosts_log_comes_back_when_the_host_does_not_see_the_run_folder(tmp_path):
    """The actor's program, as a host without the run folder runs it (no marker file there): its log goes to that
    host's temp folder and comes back with the exit code, and the temp folder is removed."""
    result = tmp_path / "result.json"
    script = (
        "import json, sys\n"
        "from coordinator.ray_launcher import NodeProgram\n"
        "out = NodeProgram().run('veh7', 'logging:warning', {'msg': 'hello from the node'}, "
        f"'{tmp_path}/run/logs/veh7.log', '{tmp_path}/run/logs/.netmarl-run-folder')\n"
        f"open('{result}', 'w').write(json.dumps(out))\n"
    )
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, check=True, timeout=60)
    out = json.loads(result.read_text())
    assert out["code"] == 0 and "veh7 pid=" in out["log"] and "hello from the node" in out["log"]
    assert not (tmp_path / "run").exists()  # nothing written where this host cannot see


def test_a_coordinator_crash_leaves_no_actor_on_the_cluster(tmp_path, cluster):
    """SIGKILL to the coordinator mid-run: its Ray driver is gone, and no actor of the run stays on the cluster (Ray
    ends the actors a dead driver owned; the node programs would also stop on their own, the coordinator silent)."""
    out = tmp_path / "run"
    proc = start_run(out, "run.steps=100000", 'run.launcher="ray"', f'run.ray_address="{cluster.address}"')
    try:
        wait_for(lambda: (out / "placement.json").exists(), 120, "the run started")
        assert len(ray_processes()) == 16
    finally:
        proc.kill()
        proc.wait(30)
    wait_for(lambda: not ray_processes(), 90, "the run's actors ended with their driver")


def test_without_ray_installed_a_ray_run_is_refused_with_exit_code_2(tmp_path):
    """A `ray` package that cannot be imported (first on the path) stands for a machine without the [ray] extra."""
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text("raise ImportError('no ray here')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "coordinator.cli", "run", "scenarios/figure8_beacons.toml", "--out", str(tmp_path / "x"),
         "--no-progress", "--ray", "local"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(tmp_path)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2 and 'pip install "netmarl[ray]"' in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "x").exists()
