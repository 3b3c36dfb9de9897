"""The cost of placing a run with Ray: the beacon scenario with N agents started by the local fork server and by Ray
on the same machine (start-up time, steps/s), and a sweep's points as Ray tasks on a two-node test cluster against
the same points one after the other.

Each run is a real `netmarl run scenarios/figure8_beacons.toml` (N vehicles and agents on the figure-eight, the
medium emulated); start-up is the wall time from the command to the coordinator's "run started" event (all
processes registered), steps/s the world's rate over the run. The sweep is `netmarl sweep` over a grid of range and
loss, run here (`--out .../local`) and on Ray's own test cluster (`ray.cluster_utils.Cluster`, two raylets).

    python benchmarks/ray_scale.py --agents 14,100 --steps 300          # the runs
    python benchmarks/ray_scale.py --agents 14 --sweep                   # and the 8-point sweep
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "figure8_beacons.toml"
SWEEP_GRID = ["--grid", "netsim.range_m=60,120", "--grid", "netsim.loss=0,0.1,0.3,0.5", "--set", "run.steps=200"]


def netmarl(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "coordinator.cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def one_run(out: Path, agents: int, steps: int, ray: str | None) -> dict:
    """A beacon run with `agents` vehicles and agents: its start-up time and steps/s."""
    sets = [f"world.vehicles={agents}", f"world.agents={agents}", f"run.steps={steps}", "run.register_timeout_s=600"]
    sets.append(f"world.ring_radius={max(30.0, 0.7 * agents)}")  # room for them on the figure-eight (49 at 30 m)
    args = ["run", str(SCENARIO), "--out", str(out), "--no-progress", *(a for s in sets for a in ("--set", s))]
    t0 = time.time()
    if ray:  # this machine's CPUs shared by all the run's processes (Ray refuses a run that reserves more)
        args += ["--ray", ray, "--set", f"run.ray_cpus={min(0.1, int(1000 * os.cpu_count() / (agents + 2)) / 1000)}"]
    proc = netmarl(*args)
    wall = time.time() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{out}: exit code {proc.returncode}\n{proc.stderr[-3000:]}")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    started = next(r["wall"] for r in rows if r.get("event") == "started")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "agents": agents,
        "startup_s": round(started - t0, 2),
        "steps_per_s": summary["steps_per_s"],
        "wall_s": round(wall, 1),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="14,100")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--sweep", action="store_true", help="also the 8-point sweep, here and on a two-node test cluster")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-ray-scale"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "ray" / "scale.json"))
    args = p.parse_args()
    out = Path(args.out) / time.strftime("%Y%m%d-%H%M%S")
    results: dict = {"command": " ".join(sys.argv), "runs": []}
    for n in (int(a) for a in args.agents.split(",")):
        for launcher, ray in (("local", None), ("ray", "local")):
            row = {"launcher": launcher, **one_run(out / f"{launcher}-{n}", n, args.steps, ray)}
            results["runs"].append(row)
            print(json.dumps(row), flush=True)
    if args.sweep:
        from ray.cluster_utils import Cluster

        t0 = time.time()
        here = netmarl("sweep", str(SCENARIO), *SWEEP_GRID, "--no-progress", "--out", str(out / "sweep-local"))
        local_s = time.time() - t0
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False})
        cluster.add_node(num_cpus=2)
        try:
            t0 = time.time()
            on_ray = netmarl(
                "sweep", str(SCENARIO), *SWEEP_GRID, "--no-progress", "--out", str(out / "sweep-ray"),
                "--ray", cluster.address, "--point-cpus", "1",
            )  # fmt: skip
            ray_s = time.time() - t0
        finally:
            cluster.shutdown()
        if here.returncode or on_ray.returncode:
            raise SystemExit(f"sweep failed: {here.stderr[-2000:]} {on_ray.stderr[-2000:]}")
        results["sweep"] = {"points": 8, "local_s": round(local_s, 1), "ray_two_nodes_s": round(ray_s, 1)}
        print(json.dumps(results["sweep"]), flush=True)
    dest = Path(args.results)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
