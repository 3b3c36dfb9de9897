"""What RELED's and IPPO's agents did while they learned: per window of epochs, the world's epoch figures and the
agents' update statistics (alpha, DTW, policy entropy, value losses, KL, clip fraction), from run folders.

    python benchmarks/reled_diagnostics.py runs/bench-reled-full-grid/reled_scripted-s1 [more run folders]
        [--window 50] [--csv benchmarks/results/reled/grid/diagnostics.csv]

Reads each run's metrics.jsonl (the agents' `router_epoch` records, the world's training `routing_episode` ones);
prints one table per run and writes all rows to --csv.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

AGENT_KEYS = ("alpha", "dtw", "entropy", "value_loss_agent", "value_loss_expert", "approx_kl", "clipfrac", "n_expert")
WORLD_KEYS = ("reward", "travel_time", "arrival_rate")


def read(run: Path) -> tuple[list[dict], list[dict]]:
    """The agents' update records and the world's training-episode records of one run folder."""
    agents, world = [], []
    with (run / "metrics.jsonl").open() as fh:
        for line in fh:
            r = json.loads(line)
            if r.get("kind") == "router_epoch":
                agents.append(r)
            elif r.get("kind") == "routing_episode" and r.get("mode") == "train":
                world.append(r)
    return agents, world


def windows(run: Path, width: int) -> list[dict]:
    """One row per window of `width` epochs: means over agents and epochs; alpha_above_0_1 is the share of
    updates whose agent-loss weight exceeded 0.1 (an update mostly on the agent's own data)."""
    agents, world = read(run)
    last = max([r["epoch"] for r in agents] + [r.get("epoch", 0) for r in world] + [0])
    rows = []
    for start in range(1, last + 1, width):
        end = start + width - 1
        a = [r for r in agents if start <= r["epoch"] <= end]
        w = [r for r in world if start <= r.get("epoch", 0) <= end]
        row = {"run": run.name, "epochs": f"{start}-{min(end, last)}"}
        for k in WORLD_KEYS:
            vals = [r[k] for r in w if r.get(k) is not None]
            row[k] = float(np.mean(vals)) if vals else None
        for k in AGENT_KEYS:
            vals = [r[k] for r in a if r.get(k) is not None]
            row[k] = float(np.mean(vals)) if vals else None
        alphas = [r["alpha"] for r in a if r.get("n_expert")]
        row["alpha_above_0_1"] = float(np.mean([x > 0.1 for x in alphas])) if alphas else None
        rows.append(row)
    return rows


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--window", type=int, default=50)
    p.add_argument("--csv", type=Path, default=None)
    args = p.parse_args()
    all_rows = []
    for run in args.runs:
        rows = windows(run, args.window)
        all_rows += rows
        print(f"\n{run}")
        cols = ["epochs", *WORLD_KEYS, *AGENT_KEYS, "alpha_above_0_1"]
        print(" ".join(f"{c[:12]:>12}" for c in cols))
        for row in rows:
            print(
                " ".join(
                    f"{'-' if row[c] is None else (row[c] if isinstance(row[c], str) else f'{row[c]:.4g}'):>12}"
                    for c in cols
                )
            )
    if args.csv:
        args.csv.parent.mkdir(parents=True, exist_ok=True)
        with args.csv.open("w", newline="") as fh:
            w = csv.DictWriter(fh, list(all_rows[0]))
            w.writeheader()
            w.writerows(all_rows)
        print(f"\nrows: {args.csv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
