"""eSpark against its baselines (Table 1 / Table 2 rows) on traffic signals and inventory, several seeds, resumable.

Every cell is a real `netmarl run` of scenarios/signals_espark.toml or scenarios/inventory_espark.toml:
- signals (RESCO Grid 4x4, Cologne8): FTC and MaxPressure (no training; the calibrated world), IPPO, random
  pruning, eSpark with the hand-written functions (scenarios/espark_functions/tsc_*.py) and with the local LLM.
  The paper prints no traffic-signal function, so there is no "paper's functions" row for signals;
- inventory (MABIM-style Standard-100, Lower-100): IPPO, random pruning, eSpark with the paper's own function
  (Fig. 21, scenarios/espark_functions/mabim_paper_fig21.py), with the hand-written ones and with the local LLM.
Every method of a (task, seed) trains the same number of episodes on the same traffic / demand seeds, with
eSpark's IPPO settings (scenarios/espark/settings.py); tests are greedy and unmasked, as the paper deploys.
The eSpark runs skip their own IPPO twin (compare_ippo = false): the IPPO row is that twin, run once.

A cell whose run folder holds an "ok" summary.json is not run again, so the same command goes on where it
stopped; nor is a cell recorded under --results/records/ (its test figures, one JSON file a cell, written when it
finishes), so results outlive the run folders and seeds can be added one session at a time. After every cell
the table is rewritten to --results (comparison.md, comparison.json); --table-only rewrites it from the records
alone (after a stopped run, say), running nothing.

    python benchmarks/espark.py                                   # 4 tasks x 3 seeds, every method
    python benchmarks/espark.py --tasks grid4x4 --methods ippo,espark_files --seeds 1
    python benchmarks/espark.py --full                            # the paper's budget (days of CPU here)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from coordinator.report import read_metrics, run_status

ROOT = Path(__file__).resolve().parents[1]
FUNCS = ROOT / "scenarios" / "espark_functions"
SIGNALS = (("test_delay", True), ("test_trip_time", True), ("test_waiting_time", True))
COSTS = ("excess_cost", "order_cost", "holding_cost", "backlog_cost")  # reward2's charges (profit = margin - costs)
INVENTORY = (("test_profit", False), ("test_gross_margin", False), *((f"test_{c}", True) for c in COSTS))
_INV = ["world.env.skus=100", "world.env.echelons=1"]
TASKS = {  # the paper's IPPO and eSpark figures: Table 2 delay (s), Table 1 profit (K)
    "grid4x4": {
        "scenario": "signals_espark.toml",
        "sets": ["world.map=grid4x4"],
        "metrics": SIGNALS,
        "files": [FUNCS / "tsc_queued.py", FUNCS / "tsc_busiest.py"],
        "paper_files": [],
        "paper": {"ftc": 161.14, "max_pressure": 63.39, "ippo": 48.40, "espark": 48.36},
    },
    "cologne8": {
        "scenario": "signals_espark.toml",
        "sets": ["world.map=cologne8"],
        "metrics": SIGNALS,
        "files": [FUNCS / "tsc_queued.py", FUNCS / "tsc_busiest.py"],
        "paper_files": [],
        "paper": {"ftc": 85.27, "max_pressure": 31.63, "ippo": 27.60, "espark": 25.39},
    },
    "inventory": {
        "scenario": "inventory_espark.toml",
        "sets": [*_INV, 'world.env.capacity="standard"'],
        "metrics": INVENTORY,
        "files": [FUNCS / "mabim_cover.py", FUNCS / "mabim_capacity.py"],
        "paper_files": [FUNCS / "mabim_paper_fig21.py"],
        "paper": {"ippo": 690.6, "espark": 823.7},
    },
    "inventory_lower": {
        "scenario": "inventory_espark.toml",
        "sets": [*_INV, 'world.env.capacity="lower"'],
        "metrics": INVENTORY,
        "files": [FUNCS / "mabim_cover.py", FUNCS / "mabim_capacity.py"],
        "paper_files": [FUNCS / "mabim_paper_fig21.py"],
        "paper": {"ippo": 431.1, "espark": 579.5},
    },
}
METHODS = ("ftc", "max_pressure", "ippo", "random_pruning", "espark_paper", "espark_files", "espark_llm")
# What fits a 2-core machine: episodes per method (eSpark: per lineage), split into 4 iterations of K = 2; slices of
# 8 and 60 episodes, whole numbers of 4-episode updates. Each copy is validated after every update (fewer updates
# than the released 16 checkpoints) on one greedy unmasked episode; G averages the last 5. Decisions per episode:
# 240 (an hour at 15 s) and 100 days.
BUDGET = {
    "signals": {"episodes": 32, "iterations": 4, "candidates": 2, "eval_episodes": 1, "decisions": 240},
    "inventory": {"episodes": 240, "iterations": 4, "candidates": 2, "eval_episodes": 1, "decisions": 100},
}
FULL = {
    "signals": {"episodes": 10_000, "iterations": 10, "candidates": 16, "eval_episodes": 2, "decisions": 240},
    "inventory": {"episodes": 50_200, "iterations": 10, "candidates": 16, "eval_episodes": 2, "decisions": 100},
}
# the released epsilon floor anneals over 250,000 of its 5,020,000 steps: the same fraction of a smaller budget
EPS_FRACTION = 250_000 / 5_020_000


def kind(task: str) -> str:
    return "signals" if TASKS[task]["metrics"] is SIGNALS else "inventory"


def settings(task: str, method: str, budget: dict) -> list[str] | None:
    """The --set list of one cell; None when the method does not apply to the task."""
    t = TASKS[task]
    steps = max(round(EPS_FRACTION * budget["episodes"] * budget["decisions"]), 1)
    sets = [*t["sets"], f"world.episodes={budget['episodes']}", f"algo.ppo={{explore_eps_steps={steps}}}"]
    if method in ("ftc", "max_pressure"):
        return None if kind(task) != "signals" else [*t["sets"], f"algo.method={method}", "world.episodes=0"]
    if method in ("ippo", "random_pruning"):
        return [*sets, f"algo.method={method}"]
    files = {"espark_paper": t["paper_files"], "espark_files": t["files"], "espark_llm": None}[method]
    if files == []:
        return None
    espark = (
        f"candidates={budget['candidates']}, iterations={budget['iterations']}, compare_ippo=false, "
        f'eval_episodes={budget["eval_episodes"]}, generator="{"llm" if files is None else "files"}"'
    )
    if files:
        espark += ", function_files=[" + ", ".join(f'"{f}"' for f in files) + "]"
    return [*sets, "algo.method=espark", f"algo.espark={{{espark}}}"]


def run_cell(out: Path, task: str, sets: list[str], seed: int) -> dict:
    """One run (or its finished summary when it is already there)."""
    done = out / "summary.json"
    if run_status(out) == "ok":
        return json.loads(done.read_text())
    shutil.rmtree(out, ignore_errors=True)  # an unfinished cell starts again
    args = [
        sys.executable,
        "-m",
        "coordinator.cli",
        "run",
        str(ROOT / "scenarios" / TASKS[task]["scenario"]),
        "--out",
        str(out),
        "--no-progress",
        "--seed",
        str(seed),
    ]
    for s in sets:
        args += ["--set", s]
    t0 = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    summary = json.loads(done.read_text()) if done.exists() else {}
    if proc.returncode != 0 or summary.get("status") != "ok":
        raise RuntimeError(f"{out} failed ({proc.returncode}): {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    summary["bench_wall_s"] = round(time.monotonic() - t0, 1)
    done.write_text(json.dumps(summary, indent=2, default=str))
    return summary


def test_metrics(summary: dict, run_dir: Path) -> dict:
    """test_* results of a plain run, or the chosen lineage's (espark_test_*) of an eSpark run; on inventory also
    the test episodes' costs, which summary.json leaves out (read from the test run's metrics.jsonl)."""
    res = summary.get("results", {})
    espark = summary.get("method") == "espark"
    if espark:
        out = {k[len("espark_") :]: v for k, v in res.items() if k.startswith("espark_test_")}
    else:
        out = {k: v for k, v in res.items() if k.startswith("test_")}
    if "test_profit" in out:
        rows = read_metrics(run_dir / "espark" / "test" if espark else run_dir)
        tests = [r["components"] for r in rows if r.get("kind") == "inventory_episode" and r.get("mode") == "test"]
        out |= {f"test_{c}": float(np.mean([sum(t[c]) for t in tests])) for c in COSTS}
    return out


def table(cells: dict, tasks: list[str], methods: list[str]) -> tuple[str, dict]:
    """Markdown and JSON: per task and method, mean ± SD over the finished seeds; gain vs IPPO (+ = better). A figure
    that only some seeds' records hold (one added after they were made) says from how many, "(n)"."""
    lines, out = [], {}
    for task in tasks:
        metrics, paper = TASKS[task]["metrics"], TASKS[task]["paper"]
        head = " | ".join(m[len("test_") :] for m, _ in metrics)
        lines += [
            f"\n### {task}\n",
            f"| method | seeds | {head} | vs IPPO ({metrics[0][0][5:]}) | paper |",
            "|---" * (len(metrics) + 4) + "|",
        ]
        ippo = np.mean([c[metrics[0][0]] for c in cells.get((task, "ippo"), [])] or [np.nan])
        for method in methods:
            runs = cells.get((task, method), [])
            if not runs:
                continue
            vals = {m: [r[m] for r in runs if r.get(m) is not None] for m, _ in metrics}
            row = {m: (float(np.mean(v)), float(np.std(v))) if v else (np.nan, np.nan) for m, v in vals.items()}
            first, lower = metrics[0]
            gain = 100.0 * ((ippo - row[first][0]) if lower else (row[first][0] - ippo)) / abs(ippo)
            out.setdefault(task, {})[method] = {
                "seeds": len(runs),
                **{m: None if np.isnan(v[0]) else v[0] for m, v in row.items()},
                **{f"{m}_sd": None if np.isnan(v[1]) else v[1] for m, v in row.items()},
                "gain_pct": gain,
            }
            ref = paper.get(method.split("_")[0] if method.startswith("espark") else method)
            cells_txt = " | ".join(
                f"{v[0]:,.1f} ± {v[1]:,.1f}" + (f" ({len(vals[m])})" if 0 < len(vals[m]) < len(runs) else "")
                if vals[m]
                else "-"
                for m, v in row.items()
            )
            lines.append(
                f"| {method} | {len(runs)} | {cells_txt} | "
                f"{'' if method == 'ippo' or np.isnan(gain) else f'{gain:+.1f} %'} | "
                f"{'' if ref is None else ref} |"
            )
    return "\n".join(lines) + "\n", out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default=",".join(TASKS))
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--full", action="store_true", help="the paper's budget (K = 16, 10 iterations, full steps)")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-espark"), help="run folders; the same --out resumes")
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "espark"))
    p.add_argument("--table-only", action="store_true", help="rewrite the table from the records; run nothing")
    args = p.parse_args()
    tasks, methods = args.tasks.split(","), args.methods.split(",")
    unknown = sorted(set(tasks) - set(TASKS)) + sorted(set(methods) - set(METHODS))
    if unknown:
        p.error(f"unknown task or method: {unknown}")
    out, results = Path(args.out), Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    cells: dict[tuple, list] = {}
    for seed in range(1, args.seeds + 1):  # seed-major: every method has a first seed before any has a second
        for task in tasks:
            budget = (FULL if args.full else BUDGET)[kind(task)]
            for method in methods:
                sets = settings(task, method, budget)
                if sets is None:
                    continue
                t0 = time.monotonic()
                record = results / "records" / task / f"{method}-s{seed}.json"
                run_dir = out / task / f"{method}-s{seed}"
                portable = [x.replace(str(ROOT), "<root>") for x in sets]  # the same cell from another checkout
                if record.exists() and (args.table_only or run_status(run_dir) != "ok"):
                    metrics = json.loads(record.read_text())
                    if metrics.get("settings") != portable:
                        p.error(f"{record} was run with other settings: use another --results")
                elif args.table_only:
                    continue
                else:
                    metrics = test_metrics(run_cell(run_dir, task, sets, seed), run_dir)
                    record.parent.mkdir(parents=True, exist_ok=True)
                    record.write_text(json.dumps({**metrics, "settings": portable}))
                cells.setdefault((task, method), []).append(metrics)
                print(
                    f"{time.strftime('%H:%M:%S')} {task} {method} seed {seed}: "
                    f"{ {k: round(v, 1) for k, v in metrics.items() if isinstance(v, (int, float))} } "
                    f"({time.monotonic() - t0:.0f} s)",
                    flush=True,
                )
                md, js = table(cells, tasks, methods)
                budgets = {k: (FULL if args.full else BUDGET)[k] for k in ("signals", "inventory")}
                (results / "comparison.md").write_text(
                    f"# eSpark against its baselines\n\nCommand: `python benchmarks/espark.py "
                    f"{' '.join(a for a in sys.argv[1:] if a != '--table-only')}`\n\n"
                    f"Budget: {json.dumps(budgets)}\n{md}"
                )
                (results / "comparison.json").write_text(
                    json.dumps(
                        {"budget": budgets, "results": js, "paper": {t: TASKS[t]["paper"] for t in tasks}}, indent=2
                    )
                )
    print(table(cells, tasks, methods)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
