"""RELED vs IPPO on the routing grid (or city), several seeds, through real processes.

Every run is a real `netmarl run` of scenarios/grid_reled.toml (one process per vehicle, plans and expert
trajectories as messages, libsumo). Variants: `ippo`; `reled_scripted` (the scripted shortest-time expert, no
LLM); `reled_llm` (the configured LLM; the offline default is SmolLM2-135M through llama.cpp); the ablations of the
paper's Table III / Fig. 8 that need no LLM, on the scripted expert: `reled_w02` and `reled_w05` (the expert's
weight fixed at 0.2 / 0.5 instead of the DTW alpha). ("w/o refinement" needs an LLM: the scripted expert does not
read the feedback, so with it that ablation is reled_scripted itself.) The default budget fits a 2-core machine
(60 epochs x 1,000 decisions); `--full` is the paper's 500 epochs. Final tests: 20 greedy and 20 sampled episodes
(the paper: "tested over 20 independent runs"), mean and spread. Resumable: a run whose folder has an ok
summary.json is read, not run again (the same --out), and so is a run recorded in --results/records/ (one JSON file a
run, written when it finishes: results outlive the run folders). Prints a table, writes summary.json, per_epoch.csv and
curves.png to --results, ends with one JSON line.

    python benchmarks/reled.py                             # grid, moderate: ippo and reled_scripted x 3 seeds,
                                                           # reled_llm x 1 seed
    python benchmarks/reled.py --map city --seeds 1
    python benchmarks/reled.py --full --variants ippo,reled_scripted,reled_w02,reled_w05 --ablation-seeds 1 \
        --out runs/bench-reled-full-grid --results benchmarks/results/reled/grid
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from coordinator.report import run_status

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "grid_reled.toml"
VARIANTS = {
    "ippo": ["algo.method=ippo"],
    "reled_scripted": ["algo.sed.expert=scripted"],
    "reled_llm": ["algo.sed.expert=llm"],
    "reled_w02": ["algo.sed.expert=scripted", "algo.alpha_mode=fixed_expert", "algo.alpha_fixed=0.2"],
    "reled_w05": ["algo.sed.expert=scripted", "algo.alpha_mode=fixed_expert", "algo.alpha_fixed=0.5"],
}
ABLATIONS = ("reled_w02", "reled_w05")
FINAL_EPOCHS = 5  # the end of training: the mean over the last five epochs' episodes
PAPER_GAIN = {"grid": 0.6245, "city": 0.7255}  # Table IV: RELED / IPPO - 1 (Orlando-M, HK-M)


def run_one(out: Path, variant: str, seed: int, sets: list[str], records: Path) -> dict:
    """One `netmarl run` (or the finished one already in `out`, or its record in `records`); its summary results,
    end-of-training figures and per-epoch curves. Every finished run is recorded in `records` (one small JSON file),
    so results outlive the run folders: a later call with the same --results reads the record, not a new run."""
    summary = out / "summary.json"
    record = records / f"{out.name}.json"
    done = run_status(out) == "ok"
    settings = [*VARIANTS[variant], *sets]
    if not done and record.exists():
        res = json.loads(record.read_text())
        if res.get("settings") != settings:
            raise SystemExit(f"{record} was run with {res.get('settings')}, not {settings}: use another --results")
        res["curve"] = [row["reward"] for row in res["epochs"]]
        return res
    wall = None
    if not done:
        if out.exists():
            shutil.rmtree(out)  # an interrupted run starts again
        args = [
            sys.executable,
            "-m",
            "coordinator.cli",
            "run",
            str(SCENARIO),
            "--out",
            str(out),
            "--no-progress",
            "--seed",
            str(seed),
        ]
        for s in [*VARIANTS[variant], *sets]:
            args += ["--set", s]
        t0 = time.monotonic()
        proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
        wall = time.monotonic() - t0
        if proc.returncode != 0 or not summary.exists():
            raise RuntimeError(f"{out.name} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    full = json.loads(summary.read_text())
    res = full["results"]
    wall = wall if wall is not None else full.get("wall_s")
    train = [
        json.loads(line)
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if '"routing_episode"' in line and '"mode": "train"' in line
    ]
    last = max(e["epoch"] for e in train)
    end = [e for e in train if e["epoch"] > last - FINAL_EPOCHS]
    res.update(
        wall_s=None if wall is None else round(wall, 1),
        decisions=sum(e["decisions"] for e in train),
        final_reward=float(np.mean([e["reward"] for e in end])),
        final_travel_time=float(np.mean([e["travel_time"] for e in end])),
        final_arrival_rate=float(np.mean([e["arrival_rate"] for e in end])),
    )
    by_epoch: dict[int, list[dict]] = {}
    for e in train:
        by_epoch.setdefault(e["epoch"], []).append(e)
    res["epochs"] = [
        {"epoch": k, **{key: float(np.mean([e[key] for e in by_epoch[k]])) for key in CURVE_KEYS}}
        for k in sorted(by_epoch)
    ]
    res["settings"] = settings
    records.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(res))
    res["curve"] = [row["reward"] for row in res["epochs"]]
    return res


CURVE_KEYS = ("reward", "travel_time", "arrival_rate")


KEYS = (
    "final_reward",
    "final_travel_time",
    "final_arrival_rate",
    "test_reward",
    "test_travel_time",
    "test_arrival_rate",
    "test_reward_std",
    "test_travel_time_std",
    "test_arrival_rate_std",
    "test_stochastic_reward",
    "test_stochastic_travel_time",
    "test_stochastic_arrival_rate",
    "test_stochastic_reward_std",
    "execution_rate",
    "wall_s",
)


def aggregate(rows: list[dict]) -> dict:
    """Mean and standard deviation over seeds."""
    out = {"seeds": len(rows)}
    for key in KEYS:
        vals = [r[key] for r in rows if r.get(key) is not None]
        out[key] = float(np.mean(vals)) if vals else None
        out[key + "_sd"] = float(np.std(vals)) if vals else None
        out[key + "_n"] = len(vals)  # seeds behind this figure (a record may lack one)
    return out


def plot(curves: dict[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, runs in curves.items():
        n = min(len(r) for r in runs)
        ax.plot(range(1, n + 1), np.mean([r[:n] for r in runs], axis=0), label=f"{label} (mean of {len(runs)})")
    ax.set_xlabel("epoch (1,000 decisions)")
    ax.set_ylabel("average episode reward (train)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def gain(results: dict, variant: str, key: str = "final_reward") -> float | None:
    """(RELED - IPPO) / |IPPO| of the mean figure: the paper's +62 % / +72 % is this ratio."""
    a, b = results.get(variant, {}).get(key), results.get("ippo", {}).get(key)
    return None if a is None or b is None or b == 0 else (a - b) / abs(b)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--map", choices=("grid", "city"), default="grid")
    p.add_argument("--traffic", choices=("moderate", "congested"), default="moderate")
    p.add_argument("--variants", default="ippo,reled_scripted,reled_llm")
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--llm-seeds", default="1", help="seeds of the reled_llm variant (each SED round is a slow call)")
    p.add_argument("--ablation-seeds", default="1", help=f"seeds of the ablations {', '.join(ABLATIONS)}")
    p.add_argument(
        "--results", default=None, help="folder for summary.json, per_epoch.csv and curves.png (default: --out)"
    )
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--full", action="store_true", help="the paper's 500 epochs x 1,000 decisions")
    p.add_argument("--out", default=str(ROOT / "runs" / f"bench-reled-{time.strftime('%Y%m%d-%H%M%S')}"))
    args = p.parse_args()
    epochs = 500 if args.full else args.epochs
    sets = [
        f"world.map={args.map}",
        f"world.traffic={args.traffic}",
        f"world.epochs={epochs}",
        "world.decisions_per_epoch=1000",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results_dir = Path(args.results) if args.results else out
    results_dir.mkdir(parents=True, exist_ok=True)
    per_epoch: list[dict] = []
    print(f"map {args.map}, {args.traffic}; {epochs} epochs x 1,000 decisions; runs in {out}", flush=True)
    results, curves = {}, {}
    for variant in args.variants.split(","):
        seeds = [
            int(s)
            for s in (
                args.llm_seeds
                if variant == "reled_llm"
                else args.ablation_seeds
                if variant in ABLATIONS
                else args.seeds
            ).split(",")
        ]
        rows = []
        for seed in seeds:
            res = run_one(out / f"{variant}-s{seed}", variant, seed, sets, results_dir / "records")
            print(
                f"  {variant} seed {seed}: final reward {res['final_reward']:.1f}, travel time "
                f"{res['final_travel_time']:.0f} s, arrived {res['final_arrival_rate']:.2f}; greedy test "
                f"{res['test_reward']:.1f}; execution rate {res.get('execution_rate')}; {res['wall_s']} s",
                flush=True,
            )
            rows.append(res)
            per_epoch += [{"variant": variant, "seed": seed, **row} for row in res["epochs"]]
        results[variant] = aggregate(rows)
        curves[variant] = [r["curve"] for r in rows]
    plot(curves, results_dir / "curves.png")
    with (results_dir / "per_epoch.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["variant", "seed", "epoch", *CURVE_KEYS])
        w.writeheader()
        w.writerows(per_epoch)

    print(
        f"\n{'variant':16} {'final reward':>16} {'travel time':>12} {'arrival':>8} {'greedy test (sd)':>18} "
        f"{'sampled test':>12} {'exec rate':>9} {'wall s':>7}"
    )
    for v, r in results.items():
        f = lambda k, fmt: "-" if r.get(k) is None else format(r[k], fmt)  # noqa: E731
        print(
            f"{v:16} {f('final_reward', '.1f'):>8}±{f('final_reward_sd', '.1f'):<7} "
            f"{f('final_travel_time', '.0f'):>12} "
            f"{f('final_arrival_rate', '.2f'):>8} {f('test_reward', '.1f'):>10} ({f('test_reward_std', '.1f'):>5}) "
            f"{f('test_stochastic_reward', '.1f'):>12} "
            f"{f('execution_rate', '.2f'):>9} {f('wall_s', '.0f'):>7}"
        )
    gains = {v: gain(results, v) for v in results if v != "ippo"}
    for v, g in gains.items():
        print(
            f"target RELED above IPPO at equal decisions ({v}): "
            + (
                "not measured"
                if g is None
                else f"{100 * g:+.1f} % reward ({'met' if g > 0 else 'NOT met'}; "
                f"paper {100 * PAPER_GAIN[args.map]:+.1f} %)"
            )
        )
    print(f"curves: {results_dir / 'curves.png'}")
    report = {
        "benchmark": "reled",
        "map": args.map,
        "traffic": args.traffic,
        "epochs": epochs,
        "command": " ".join(sys.argv),
        "results": results,
        "gain_vs_ippo": gains,
    }
    (results_dir / "summary.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
