"""The eSpark run folder's figures and table: candidate scores per iteration, learning curves, test metrics vs IPPO."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .evolution import CandidateRecord, select_best  # noqa: E402


def plot_candidate_scores(records: list[CandidateRecord], last_n: int, path: Path) -> None:
    """Each candidate's G per iteration (dots), the chosen one (star); rejected candidates counted under the axis."""
    fig, ax = plt.subplots(figsize=(7, 4))
    iterations = sorted({r.iteration for r in records})
    for it in iterations:
        rows = [r for r in records if r.iteration == it]
        scored = [r.score(last_n) for r in rows if math.isfinite(r.score(last_n))]
        ax.scatter([it] * len(scored), scored, color="tab:blue", alpha=0.6, label="candidate" if it == 1 else None)
        best = select_best(rows, last_n)
        if best is not None:
            ax.scatter(
                [it],
                [best.score(last_n)],
                marker="*",
                s=180,
                color="tab:red",
                label="chosen" if it == iterations[0] else None,
            )
        failed = len(rows) - len(scored)
        if failed:
            ax.annotate(
                f"{failed} rejected",
                (it, 0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                fontsize=8,
            )
    ax.set_xlabel("iteration")
    ax.set_ylabel(f"G (mean task reward, last {last_n} episodes)")
    ax.set_xticks(iterations)
    ax.set_title("eSpark candidates")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_learning_curves(lineage: list[dict], ippo: list[dict], path: Path) -> None:
    """Training-episode return of the chosen lineage (each iteration's best copy in turn) and of IPPO."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for rows, label in ((lineage, "eSpark (chosen copies)"), (ippo, "IPPO")):
        if rows:
            ax.plot(range(1, len(rows) + 1), [r["return"] for r in rows], label=label)
    ax.set_xlabel("training episode of the lineage")
    ax.set_ylabel("episode return (task reward)")
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def test_table(results: dict, metrics: tuple[tuple[str, bool], ...], path: Path) -> list[dict]:
    """test_table.csv (and .md): each test metric for eSpark and IPPO, eSpark's change in % (+ = better), and the
    E-A7 diagnostic (docs/espark.md): eSpark's weights tested under the chosen function's mask (not the result: it
    deploys without one)."""
    rows = []
    for key, lower_better in metrics:
        e, i = results.get(f"espark_{key}"), results.get(f"ippo_{key}")
        gain = None
        if e is not None and i is not None and i != 0:
            gain = round(100.0 * (i - e if lower_better else e - i) / abs(i), 2)
        rows.append(
            {
                "metric": key,
                "espark": e,
                "ippo": i,
                "lower_is_better": lower_better,
                "espark_gain_pct": gain,
                "espark_with_mask": results.get(f"espark_masked_{key}"),
            }
        )
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    fmt = lambda v: "-" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))  # noqa: E731
    lines = [
        "| metric | eSpark | IPPO | eSpark better by | eSpark tested under its mask (diagnostic) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['metric']} | {fmt(r['espark'])} | {fmt(r['ippo'])} | {fmt(r['espark_gain_pct'])} % | "
        f"{fmt(r['espark_with_mask'])} |"
        for r in rows
    ]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return rows


def describe_run(run_dir: Path) -> str:
    """`netmarl report` for an eSpark run: status, candidates, rejections, the chosen functions and the test table."""
    summary = json.loads((run_dir / "summary.json").read_text()) if (run_dir / "summary.json").exists() else {}
    chosen = (
        [json.loads(line) for line in (run_dir / "espark" / "iterations.jsonl").read_text().splitlines()]
        if (run_dir / "espark" / "iterations.jsonl").exists()
        else []
    )
    lines = [
        f"eSpark run {run_dir.name}: {summary.get('status', 'no summary (still running or killed)')}",
        f"  candidates drafted {summary.get('drafted')}, executable {summary.get('executable')}, "
        f"rejected by cause {summary.get('rejections')}",
    ]
    lines += [f"  iteration {c['iteration']}: chosen {c['best']} (G = {c['score']})" for c in chosen]
    table = run_dir / "test_table.md"
    if table.exists():
        lines.append(table.read_text().rstrip())
    lines += [f"plot: {p}" for p in sorted((run_dir / "plots").glob("*.png"))]
    return "\n".join(lines)
