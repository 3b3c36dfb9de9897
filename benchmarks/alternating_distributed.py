"""Distributed warehouse runs at scale: one dispatcher, n robot processes, the world and the medium,
started by `netmarl run` as a user would; reports start-up time, steps/s over one 100-step episode
with k polls per step, and memory (PSS) per process and in total.

Targets at n = 1,000 with k = 50 (the wire-speed issue; the first ones were 60 s and 16 GiB): all registered
within 20 s, a 100-step episode within 10 s, at most 6 GiB PSS in all.
Run alone: `python benchmarks/alternating_distributed.py --n 100,1000 --k 50` (or through
`benchmarks/alternating.py --distributed 100,1000`). The dispatcher is the mode-of-sample rule unless
--policy-dir gives a trained pair (the step cost does not depend on which table it reads).

`--replay fig6` instead runs the preset of the paper's Fig. 6 (scenarios/warehouse_alternating_fig6.toml: trained in
the run, then --episodes episodes of its horizon 50 through the medium) and scores the run's trained pair in the
single-process simulator on the same seed and episodes: the distributed mean return must lie within the simulator's
Monte-Carlo band (1.96 standard errors over the episodes); without losses every episode is equal, not only close.
  python benchmarks/alternating_distributed.py --replay fig6 --n 1000 --k 10 --episodes 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "benchmarks")) if p not in sys.path]

import psutil  # noqa: E402
from scale import memory  # noqa: E402

from coordinator.report import load_run  # noqa: E402

SCENARIO = ROOT / "scenarios" / "warehouse_alternating.toml"
PRESETS = {"fig6": ROOT / "scenarios" / "warehouse_alternating_fig6.toml"}
TARGET_STARTUP_S, TARGET_EPISODE_S, TARGET_TOTAL_GIB = 20.0, 10.0, 6.0


def _records(run_dir: Path) -> list[dict]:
    """The run's metrics records so far (none before its config is written)."""
    return load_run(run_dir)[2] if (run_dir / "config.toml").exists() else []


def run_one(n: int, k: int, out_root: Path, steps: int = 100, policy_dir: str = "") -> dict:
    """One `netmarl run` of one episode; memory sampled once, halfway through the episode."""
    run_dir = out_root / f"n{n}_k{k}"
    sets = [
        f"world.robots={n}",
        f"algo.k={k}",
        f"run.steps={steps}",
        f"world.horizon={steps}",
        "algo.dispatcher=" + ("learned" if policy_dir else "mode"),
    ] + ([f"algo.policy_dir={policy_dir}"] if policy_dir else [])
    cmd = [sys.executable, "-m", "coordinator.cli", "run", str(SCENARIO), "--out", str(run_dir), "--no-progress"]
    for s in sets:
        cmd += ["--set", s]
    t0 = time.time()
    proc = subprocess.Popen(
        cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    started = mem = None
    while proc.poll() is None:
        recs = _records(run_dir)
        if started is None:
            started = next((r["wall"] for r in recs if r.get("event") == "started"), None)
        step = max((r["step"] for r in recs if r.get("kind") == "world"), default=0)
        if mem is None and step >= steps // 2:
            tree = psutil.Process(proc.pid).children(recursive=True)
            mem = memory([c.pid for c in tree])
            mem["coordinator_pss_mib"] = memory([proc.pid])["pss_total_mib"]
        time.sleep(0.5)
    output = proc.stdout.read()
    summary = json.loads((run_dir / "summary.json").read_text())
    res = summary.get("results", {})
    steps_per_s = summary["steps_per_s"] or float("nan")
    out = {
        "n": n,
        "k": k,
        "status": summary["status"],
        "steps": summary["steps"],
        "startup_s": round(started - t0, 2) if started else None,
        "episode_s": round(summary["steps"] / steps_per_s, 2) if summary["steps"] else None,
        "steps_per_s": steps_per_s,
        "wall_s": round(time.time() - t0, 2),
        "return": res.get("return_mean"),
        "polls_sent": res.get("polls_sent"),
        "polls_lost": res.get("polls_lost"),
    }
    if mem:
        out.update(
            processes=mem["measured"],
            pss_node_mean_mib=round(mem["pss_mean_mib"], 2),
            pss_total_gib=round((mem["pss_total_mib"] + mem["coordinator_pss_mib"]) / 1024, 3),
        )
    if proc.returncode != 0:
        out["output_tail"] = output[-2000:]
    return out


def run_distributed(ns: list[int], k: int, steps: int = 100, policy_dir: str = "", out: Path | None = None) -> dict:
    """All sizes in turn; returns {"runs": [...], "targets": {...}}."""
    out = Path(out or tempfile.mkdtemp(prefix="bench_alt_dist_"))
    runs = [run_one(n, min(k, n), out, steps, policy_dir) for n in ns]
    big = [r for r in runs if r["n"] >= 1000 and r["status"] == "ok"]
    targets = {}
    if big:
        r = big[-1]
        targets = {
            "startup_within_20s": bool(r["startup_s"] is not None and r["startup_s"] <= TARGET_STARTUP_S),
            "episode_within_10s": bool(r["episode_s"] is not None and r["episode_s"] <= TARGET_EPISODE_S),
            "total_within_6gib": bool(r.get("pss_total_gib") is not None and r["pss_total_gib"] <= TARGET_TOTAL_GIB),
        }
    return {"runs": runs, "targets": targets, "run_folders": str(out)}


def replay(preset: str, n: int, k: int, episodes: int, out_root: Path) -> dict:
    """One `netmarl run` of the preset (its own training, then `episodes` episodes), and the simulator on the run's
    pair, seed and episodes."""
    import numpy as np

    from agent_node.learners.alternating.g_learn import TablePolicy
    from agent_node.warehouse.simulator import Simulator
    from scenarios.config import load_scenario
    from scenarios.warehouse.results import episode_rewards

    scenario, run_dir = PRESETS[preset], out_root / f"{preset}_n{n}_k{k}"
    horizon = load_scenario(scenario, []).world.horizon
    sets = [f"world.robots={n}", f"algo.k={k}", f"run.steps={episodes * horizon}"]
    cmd = [sys.executable, "-m", "coordinator.cli", "run", str(scenario), "--out", str(run_dir), "--no-progress"]
    t0 = time.time()
    proc = subprocess.run(cmd + [a for s in sets for a in ("--set", s)], cwd=ROOT, capture_output=True, text=True)
    summary = json.loads((run_dir / "summary.json").read_text())
    cfg = load_scenario(scenario, sets)
    distributed = [e["return"] for e in episode_rewards(load_run(run_dir)[2], cfg.world.model.gamma)]
    pi_g, pi_l = TablePolicy.load(run_dir / "policy" / "pi_g.npz"), np.load(run_dir / "policy" / "pi_l.npy")
    sim = Simulator(cfg.world.model, n, cfg.run.seed).run(pi_g, pi_l, k, np.arange(episodes), horizon).returns
    band = 1.96 * float(sim.std(ddof=1)) / np.sqrt(episodes)
    res = summary.get("results", {})
    out = {
        "preset": preset,
        "n": n,
        "k": k,
        "episodes": episodes,
        "status": summary["status"],
        "wall_s": round(time.time() - t0, 1),
        "distributed_mean": float(np.mean(distributed)),
        "simulator_mean": float(sim.mean()),
        "band_95": band,
        "within_band": bool(abs(np.mean(distributed) - sim.mean()) <= band),
        "max_episode_diff": float(np.abs(np.asarray(distributed) - sim).max())
        if len(distributed) == episodes
        else None,
        "polls_sent": res.get("polls_sent"),
        "polls_lost": res.get("polls_lost"),
        "desync_steps": res.get("desync_steps"),
        "run_folder": str(run_dir),
    }
    if proc.returncode != 0:
        out["output_tail"] = (proc.stdout + proc.stderr)[-2000:]
    return out


def print_table(result: dict) -> None:
    print(
        f"{'n':>5} {'k':>3} {'status':>8} {'start-up s':>10} {'episode s':>9} {'steps/s':>8} {'PSS/node MiB':>12} "
        f"{'PSS total GiB':>13} {'polls':>6} {'lost':>5}"
    )
    for r in result["runs"]:
        print(
            f"{r['n']:>5} {r['k']:>3} {r['status'][:8]:>8} {r['startup_s'] or float('nan'):>10.1f} "
            f"{r['episode_s'] or float('nan'):>9.1f} {r['steps_per_s']:>8.2f} "
            f"{r.get('pss_node_mean_mib', float('nan')):>12.1f} "
            f"{r.get('pss_total_gib', float('nan')):>13.2f} {r['polls_sent'] or 0:>6} {r['polls_lost'] or 0:>5}"
        )
    if result["targets"]:
        print("targets at n=1000:", result["targets"])


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", default="100,1000", help="robot counts, comma-separated")
    ap.add_argument("--k", type=int, default=50)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--policy-dir", default="", help="a run's policy/ folder with a pi_g.npz trained for this k")
    ap.add_argument("--out", default=None)
    ap.add_argument("--replay", choices=sorted(PRESETS), help="run a preset and score it against the simulator")
    ap.add_argument("--episodes", type=int, default=10, help="episodes of the --replay run")
    args = ap.parse_args(argv)
    if args.replay:
        result = replay(
            args.replay,
            int(args.n.split(",")[-1]),
            args.k,
            args.episodes,
            Path(args.out or tempfile.mkdtemp(prefix="bench_alt_replay_")),
        )
        print(json.dumps(result))
        return result
    result = run_distributed([int(v) for v in args.n.split(",")], args.k, args.steps, args.policy_dir, args.out)
    print_table(result)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
