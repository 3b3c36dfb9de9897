"""eSpark vs IPPO on traffic signals (RESCO Grid 4x4) and inventory (MABIM-style Standard-100), several seeds.

Every run is a real `netmarl run` of scenarios/signals_espark.toml or scenarios/inventory_espark.toml with
algo.method = "espark": K candidate functions per iteration, each guiding its own IPPO copy (a world process plus
one agent process per light or warehouse), selection, retention, reflection; the same run then tests the chosen
weights without masks and trains IPPO on the same budget and seed (compare_ippo). Generators: `files` (the
hand-written functions in scenarios/espark_functions/) and `llm` (the configured endpoint; the offline default is
SmolLM2-135M through llama.cpp). The default budget fits a 2-core machine (see BUDGET); `--full` is the paper's
(K = 16, 10 iterations, 2.4 M / 5.02 M steps: days of CPU here). Prints a table, ends with one JSON line.

    python benchmarks/espark.py                                   # both tasks, files x 3 seeds, llm x 1 seed
    python benchmarks/espark.py --tasks grid4x4 --generators llm --seeds 3
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
FUNCS = ROOT / "scenarios" / "espark_functions"
TASKS = {
    "grid4x4": {"scenario": "signals_espark.toml", "sets": ["world.map=grid4x4"],
                "files": [FUNCS / "tsc_queued.py", FUNCS / "tsc_busiest.py"],
                "metrics": (("test_delay", True), ("test_trip_time", True), ("test_waiting_time", True)),
                "paper": {"espark_delay_s": 48.36, "ippo_delay_s": 48.40}},
    "inventory": {"scenario": "inventory_espark.toml", "sets": ["world.env.skus=100", "world.env.echelons=1",
                                                                "world.env.capacity=\"standard\""],
                  "files": [FUNCS / "mabim_cover.py", FUNCS / "mabim_capacity.py"],
                  "metrics": (("test_profit", False), ("test_gross_margin", False)),
                  "paper": {"profit_gain_pct": 19.3}},
}
# episodes per lineage, iterations, K: what fits this machine (about 9 min per grid run and 5 min per inventory run)
# (slices of 8 and 60 episodes: whole numbers of 4-episode updates, so a lineage makes as many updates as IPPO)
BUDGET = {"grid4x4": {"episodes": 32, "iterations": 4, "candidates": 2},
          "inventory": {"episodes": 240, "iterations": 4, "candidates": 2}}
FULL = {"grid4x4": {"episodes": 10_000, "iterations": 10, "candidates": 16},  # 2.4 M steps / 240 per episode
        "inventory": {"episodes": 50_200, "iterations": 10, "candidates": 16}}  # 5.02 M steps / 100 per episode


def run_one(out: Path, task: str, generator: str, seed: int, budget: dict) -> dict:
    """One eSpark run (with its IPPO twin); its summary."""
    t = TASKS[task]
    files = ", ".join(f'"{f}"' for f in t["files"])
    espark = (f"candidates={budget['candidates']}, iterations={budget['iterations']}, generator=\"{generator}\""
              + (f", function_files=[{files}]" if generator == "files" else ""))
    sets = [*t["sets"], "algo.method=espark", f"world.episodes={budget['episodes']}", f"algo.espark={{{espark}}}"]
    args = [sys.executable, "-m", "coordinator.cli", "run", str(ROOT / "scenarios" / t["scenario"]), "--out",
            str(out), "--no-progress", "--seed", str(seed)]
    for s in sets:
        args += ["--set", s]
    t0 = time.monotonic()
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").exists() else {}
    if proc.returncode != 0 or summary.get("status") != "ok":
        raise RuntimeError(f"{out.name} failed ({proc.returncode}): {proc.stdout[-1500:]} {proc.stderr[-1500:]}")
    summary["bench_wall_s"] = round(time.monotonic() - t0, 1)
    return summary


def aggregate(task: str, runs: list[dict]) -> dict:
    """Per metric: eSpark and IPPO means and SDs over seeds, and eSpark's mean gain in % (+ = better)."""
    out = {"seeds": len(runs), "wall_s": float(np.mean([r["bench_wall_s"] for r in runs]))}
    for key, lower in TASKS[task]["metrics"]:
        e = np.array([r["results"][f"espark_{key}"] for r in runs], float)
        i = np.array([r["results"][f"ippo_{key}"] for r in runs], float)
        gain = 100.0 * ((i - e) if lower else (e - i)) / np.abs(i)
        out[key] = {"espark": float(e.mean()), "espark_sd": float(e.std()), "ippo": float(i.mean()),
                    "ippo_sd": float(i.std()), "gain_pct": float(gain.mean())}
        masked = [r["results"][f"espark_masked_{key}"] for r in runs if f"espark_masked_{key}" in r["results"]]
        if masked:  # the spec §9 A7 diagnostic: the same weights tested under the chosen function's mask
            out[key]["espark_under_mask"] = float(np.mean(masked))
    out["executable_fraction"] = float(np.mean([r["executable"] / max(r["drafted"], 1) for r in runs]))
    if runs[0].get("llm"):
        out["llm_model"] = runs[0]["llm"]["model"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--tasks", default="grid4x4,inventory")
    p.add_argument("--generators", default="files,llm")
    p.add_argument("--seeds", type=int, default=3, help="seeds for the files generator (llm: --llm-seeds)")
    p.add_argument("--llm-seeds", type=int, default=1)
    p.add_argument("--full", action="store_true", help="the paper's budget (K = 16, 10 iterations, full steps)")
    p.add_argument("--out", default=str(ROOT / "runs" / f"bench-espark-{time.strftime('%Y%m%d-%H%M%S')}"))
    args = p.parse_args()
    out = Path(args.out)
    results: dict[str, dict] = {}
    for task in args.tasks.split(","):
        budget = (FULL if args.full else BUDGET)[task]
        for gen in args.generators.split(","):
            seeds = args.seeds if gen == "files" else args.llm_seeds
            runs = []
            for seed in range(1, seeds + 1):
                print(f"== {task} / {gen} / seed {seed}: {budget}", flush=True)
                runs.append(run_one(out / f"{task}-{gen}-s{seed}", task, gen, seed, budget))
            results[f"{task}/{gen}"] = {**aggregate(task, runs), "budget": budget}
    print(f"\n{'task / generator':<22}{'metric':<20}{'eSpark':>18}{'IPPO':>18}{'gain':>9}")
    for name, agg in results.items():
        for key, _ in TASKS[name.split("/")[0]]["metrics"]:
            m = agg[key]
            print(f"{name:<22}{key:<20}{m['espark']:>11.2f} ± {m['espark_sd']:<5.1f}{m['ippo']:>11.2f} ± "
                  f"{m['ippo_sd']:<5.1f}{m['gain_pct']:>8.1f}%"
                  + (f"   (under its mask: {m['espark_under_mask']:.2f})" if "espark_under_mask" in m else ""))
        print(f"{'':<22}executable candidates {agg['executable_fraction']:.0%}, "
              f"{agg['wall_s']:.0f} s per run{', LLM ' + agg['llm_model'] if 'llm_model' in agg else ''}")
    print(json.dumps({"benchmark": "espark", "results": results,
                      "paper": {t: TASKS[t]["paper"] for t in args.tasks.split(",")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
