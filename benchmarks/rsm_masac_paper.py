"""RSM-MASAC at the paper's budget (Table V / Fig. 14), resumable: every run advances in chunks of episodes.

Each (method, seed) is a chain of real `netmarl run`s (one process per vehicle), each chunk resuming from the
previous chunk's checkpoints (`--resume`: SAC, replay buffer, RNG, round totals). Chunks go round-robin over the
runs, so at any moment every method has the same budget behind it. Invoked again with the same --out it goes on
where it stopped: a stopped run loses at most the chunk it was in (--chunk episodes). After every chunk the
stitched results are written to --results (committed): per run summary.json, rounds.csv, curve.csv and
learning_curve.png; for all runs results.json, table.md and curves.png. A finished run whose folders are gone (a
new machine) but whose results are in --results is read from there, not run again.

    python benchmarks/rsm_masac_paper.py --scenario merge --seeds 1,2           # Table V: isac, avg, rsm
    python benchmarks/rsm_masac_paper.py --scenario figure8 --seeds 1 --loss 0.2,0.4,0.6   # + Fig. 14's sweep
    python benchmarks/rsm_masac_paper.py --scenario merge --seeds 1 --stop-after 60   # stop once all reach 60
    python benchmarks/rsm_masac_paper.py --scenario merge --seeds 1,2 --U 72,144      # + Table V's U = 72 / 144 rows
    python benchmarks/rsm_masac_paper.py --scenario figure8 --update-mode code ...  # the released code's updates
    python benchmarks/rsm_masac_paper.py ... --loss 0.4 --loss-fill self --loss-on chunks  # Fig. 14's variants
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.rsm_masac import PAPER, SCENARIOS, targets, within_loss_tolerance  # noqa: E402
from scenarios.cav import results as cav_results  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# Table V (Merge, the paper's 5 seeds), the rows of the methods run here: final score, mixing rate, rho_total, psi
TABLE_V = {
    "rsm_masac": "0.62-0.67, 40-58 %, about 30,000, 7.6 GB",
    "avg_masac": "0.4818, 100 %, 29,270, 7.4 GB",
    "rsm_masac_U72": "0.6712, 57.7 %, 2,351, 0.596 GB",
    "rsm_masac_U144": "0.6576, 57.7 %, 1,227, 0.311 GB",
}
# Fig. 14's claim: under this loss the converged score is within 10 % of the lossless one
FIG14_LOSS = "0.4"
# the loss variants' labels beside rsm_masac_loss<rate> (the defaults: zero fill, every radio message lossy)
LOSS_FILL = {"zero": ("", []), "self": ("_self", ['algo.loss_fill="self"'])}
LOSS_ON = {"all": ("", []), "chunks": ("_chunks", ['netsim.loss_types=["segment_response"]'])}
# learning speed: the first test at this fraction of the all-IDM score (Fig. 6 and 14 compare convergence speed)
REACH = 0.95


@dataclass
class Run:
    label: str
    method: str
    seed: int
    sets: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.label}-s{self.seed}"


def chunks(folder: Path) -> list[Path]:
    """The run's completed chunk folders, in order (an unfinished chunk, left by a stop, is removed)."""
    done = []
    for c in sorted(folder.glob("chunk-*")):
        if (c / "summary.json").exists() and (c / "checkpoints" / "world.json").exists():
            done.append(c)
        else:
            shutil.rmtree(c)
    return done


def episodes_done(chunk: Path) -> int:
    return json.loads((chunk / "checkpoints" / "world.json").read_text())["episodes_done"]


def committed(run: Run, out: Path, dest: Path) -> dict | None:
    """A finished run whose folders are gone (a new machine): its committed summary in dest, else None."""
    path = dest / run.name / "summary.json"
    if chunks(out / run.name) or not path.exists() or not (dest / run.name / "curve.csv").exists():
        return None
    return json.loads(path.read_text())


def progress(run: Run, out: Path, dest: Path, goal: int) -> int:
    """Training episodes behind the run: its last chunk's, or a committed finished run's (one committed at part of
    the budget, whose folders are gone, starts again from 0)."""
    if c := chunks(out / run.name):
        return episodes_done(c[-1])
    done = (committed(run, out, dest) or {}).get("train_episodes", 0)
    return done if done >= goal else 0


def advance(run: Run, out: Path, scenario: str, budget: dict, upto: int) -> float:
    """Run the next chunk (training episodes up to `upto`); returns its wall time."""
    folder = out / run.name
    folder.mkdir(parents=True, exist_ok=True)
    prev = chunks(folder)
    if (
        prev
        and (mode := tomllib.loads((prev[-1] / "config.toml").read_text())["algo"]["update_mode"])
        != budget["update_mode"]
    ):
        raise SystemExit(f"{folder} was trained with update mode {mode!r}: resume it with --update-mode {mode}")
    dest = folder / f"chunk-{upto:04d}"
    args = [
        sys.executable,
        "-m",
        "coordinator.cli",
        "run",
        str(SCENARIOS[scenario]),
        "--out",
        str(dest),
        "--no-progress",
        "--seed",
        str(run.seed),
        "--set",
        f"algo.method={run.method}",
        "--set",
        f"world.episodes={upto}",
        "--set",
        f"world.horizon={budget['horizon']}",
        "--set",
        f"world.test_every={budget['test_every']}",
        "--set",
        f"algo.update_mode={budget['update_mode']}",
        "--set",
        "algo.checkpoint_every=0",
    ]
    for s in run.sets:
        args += ["--set", s]
    if prev:
        args += ["--resume", str(prev[-1])]
    t0 = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, stderr = proc.communicate()
    except BaseException:  # Ctrl-C or SIGTERM: let the run shut its processes down (the chunk is redone later)
        proc.terminate()
        proc.wait()
        raise
    if (
        proc.returncode != 0
        or not (dest / "summary.json").exists()
        or not (dest / "checkpoints" / "world.json").exists()
    ):
        raise RuntimeError(f"{dest} failed ({proc.returncode}): {stderr[-2000:]}")
    return time.monotonic() - t0


def stitched_metrics(folder: Path) -> list[dict]:
    """Every chunk's metrics records, in order: one run's whole history."""
    out = []
    for c in chunks(folder):
        out += [json.loads(line) for line in (c / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return out


def agent_ids(metrics: list[dict]) -> list[str]:
    nodes = {m["node"] for m in metrics if m.get("kind") == "cav_agent_episode" and "node" in m}
    return sorted(nodes, key=lambda n: (len(n), n))


def write_run(run: Run, out: Path, dest: Path) -> dict:
    """The run's stitched results into dest/<run>/; returns its summary."""
    metrics = stitched_metrics(out / run.name)
    agents = agent_ids(metrics)
    target = dest / run.name
    target.mkdir(parents=True, exist_ok=True)
    summary = cav_results.summarize(target, metrics, agents)
    summary["wall_s"] = sum(
        json.loads((c / "summary.json").read_text()).get("wall_s", 0) or 0 for c in chunks(out / run.name)
    )
    with (target / "curve.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["episode", "mode", "score", "collided", "mean_speed", "steps"])
        for e in metrics:
            if e.get("kind") == "cav_episode":
                w.writerow(
                    [
                        e["episode"],
                        e["mode"],
                        round(e["score"], 6),
                        e["collided"],
                        round(e.get("mean_speed") or 0.0, 4),
                        e["steps"],
                    ]
                )
    cav_results.plot(target, metrics, agents)
    (target / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def aggregate(summaries: list[dict]) -> dict:
    def stat(key):
        vals = [s[key] for s in summaries if s.get(key) is not None]
        return [float(np.mean(vals)), float(np.std(vals))] if vals else [None, None]

    return {
        "final_score": stat("final_score"),
        "mixing_rate": stat("mixing_rate")[0],
        "rho_total": stat("rho_total")[0],
        "psi_gb": stat("psi_gb")[0],
        "bytes_per_agent_round": stat("bytes_per_agent_round")[0],
        "train_episodes": min(s["train_episodes"] for s in summaries),
        "seeds": len(summaries),
    }


def read_curve(folder: Path) -> list[tuple]:
    """A committed run's test and training scores: (episode, mode, score) rows of its curve.csv."""
    rows = list(csv.DictReader((folder / "curve.csv").open()))
    return [(int(r["episode"]), r["mode"], float(r["score"])) for r in rows]


def reaches(curve: list[tuple], level: float) -> int | None:
    """The first training episode after which a test scored at least level (None: never)."""
    return next((e for e, mode, score in curve if mode == "test" and score >= level), None)


def write_all(
    runs: list[Run], out: Path, dest: Path, scenario: str, budget: dict, losses: list[str], idm: float | None
):
    by_label: dict[str, list[dict]] = {}
    curves: dict[str, list[list]] = {}
    for run in runs:
        if (summary := committed(run, out, dest)) is None:
            if not chunks(out / run.name):
                continue
            summary = write_run(run, out, dest)
        by_label.setdefault(run.label, []).append(summary)
        curves.setdefault(run.label, []).append(read_curve(dest / run.name))
    # runs committed here by other invocations (one method a session) stay in the table as they are
    names = {run.name for run in runs}
    for folder in sorted(p for p in dest.iterdir() if p.is_dir() and p.name not in names):
        if (folder / "summary.json").exists() and (folder / "curve.csv").exists():
            label = folder.name.rsplit("-s", 1)[0]
            by_label.setdefault(label, []).append(json.loads((folder / "summary.json").read_text()))
            curves.setdefault(label, []).append(read_curve(folder))
    table = {label: aggregate(s) for label, s in by_label.items()}
    if idm is not None:  # how fast each learns to the all-IDM line ("always accelerate" scores it)
        for label, runs_curves in curves.items():
            hits = [reaches(c, REACH * idm) for c in runs_curves]
            table[label]["reaches_idm_at"] = None if None in hits else float(np.mean(hits))
    loss = FIG14_LOSS if FIG14_LOSS in losses or f"rsm_masac_loss{FIG14_LOSS}" in table else (losses or ["0"])[0]
    checks = targets({k: {**v, "final_score": v["final_score"][0]} for k, v in table.items()}, float(loss))
    if lossless := table.get("rsm_masac", {}).get("final_score", [None])[0]:  # Fig. 14 for every lossy run,
        checks["loss_within_10pct_by_run"] = {  # with its budget (an unfinished run may still get there)
            label: {
                "within_10pct": within_loss_tolerance(r["final_score"][0], lossless),
                "train_episodes": r["train_episodes"],
            }
            for label, r in table.items()
            if label.startswith("rsm_masac_loss") and r["final_score"][0] is not None
        }
    (dest / "results.json").write_text(
        json.dumps(
            {"scenario": scenario, "budget": budget, "idm_score": idm, "results": table, "targets": checks}, indent=1
        )
    )
    paper = TABLE_V if scenario == "merge" else None  # Table V's rows sit beside Merge's
    lines = [
        f"| method | training episodes (of {budget['episodes']}) | seeds | final score (last 5 tests) | "
        f"first test at {REACH:.0%} of all-IDM (episode) | mixing rate | rho_total | psi (GB) | bytes / agent / round |"
        + (" Table V |" if paper else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if paper else ""),
    ]
    for label, r in table.items():
        s, sd = r["final_score"]
        mix = "-" if r["mixing_rate"] is None else f"{100 * r['mixing_rate']:.1f} %"
        reach = "-" if r.get("reaches_idm_at") is None else f"{r['reaches_idm_at']:.0f}"
        lines.append(
            f"| {label} | {r['train_episodes']} | {r['seeds']} | {s:.4f} ± {sd:.4f} | {reach} | {mix} | "
            f"{r['rho_total'] or 0:.0f} | {r['psi_gb'] or 0:.3f} | {r['bytes_per_agent_round'] or 0:.0f} |"
            + (f" {paper.get(label, '-')} |" if paper else "")
        )
    if idm is not None:
        lines.append(f"| all-IDM reference | - | - | {idm:.4f} | - | - | - | - | - |" + (" - |" if paper else ""))
    (dest / "table.md").write_text("\n".join(lines) + "\n")
    plot_curves(curves, idm, dest / "curves.png")
    return table


def plot_curves(curves: dict, idm: float | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, runs in curves.items():
        tests = [[(e, s) for e, m, s in run if m == "test"] for run in runs]
        n = min(len(t) for t in tests)
        if n:
            xs = [e for e, _ in tests[0][:n]]
            ax.plot(
                xs,
                np.mean([[s for _, s in t[:n]] for t in tests], axis=0),
                "o-",
                ms=3,
                label=f"{label} (test, mean of {len(tests)} seeds)",
            )
    if idm is not None:
        ax.axhline(idm, color="grey", ls="--", label="all-IDM")
    ax.set_xlabel("training episode")
    ax.set_ylabel("test score (sum r / T)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def idm_score(out: Path, scenario: str, budget: dict, episodes: int = 5) -> float:
    """Mean score of every vehicle driven by IDM (the paper's reference line), over `episodes` episodes."""
    dest = out / "idm"
    if not (dest / "summary.json").exists():
        shutil.rmtree(dest, ignore_errors=True)
        subprocess.run(
            [
                sys.executable,
                "-m",
                "coordinator.cli",
                "run",
                str(SCENARIOS[scenario]),
                "--out",
                str(dest),
                "--no-progress",
                "--set",
                "world.idm_reference=true",
                "--set",
                f"world.episodes={episodes}",
                "--set",
                f"world.horizon={budget['horizon']}",
                "--set",
                "world.test_every=0",
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
    metrics = [json.loads(line) for line in (dest / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return float(np.mean([e["score"] for e in cav_results.episodes(metrics, "train")]))


def main() -> int:
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop as Ctrl-C does: the current run is ended
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default="merge")
    p.add_argument("--methods", default="rsm_masac,avg_masac,isac")
    p.add_argument("--seeds", default="1,2")
    p.add_argument("--loss", default="", help="comma-separated extra loss rates for rsm_masac runs (Fig. 14)")
    p.add_argument(
        "--loss-fill",
        choices=sorted(LOSS_FILL),
        default="zero",
        help="a lost chunk's values in the --loss runs: zeros (the released code's) or the agent's own",
    )
    p.add_argument(
        "--loss-on",
        choices=sorted(LOSS_ON),
        default="all",
        help="what --loss drops: every radio message (requests too), or only the segment chunks (the released code's)",
    )
    p.add_argument("--U", default="", help="comma-separated extra communication intervals for rsm_masac runs (Table V)")
    p.add_argument("--episodes", type=int, help="training episodes (default: the paper's 260 / 300)")
    p.add_argument("--horizon", type=int, help="steps per episode (default: the paper's 750 / 1,500)")
    p.add_argument(
        "--update-mode",
        choices=("paper", "code"),
        default="paper",
        help="Alg. 1's critic update every step (the paper), or the released code's one update every 10 steps",
    )
    p.add_argument("--chunk", type=int, default=10, help="training episodes per resumed chunk")
    p.add_argument("--stop-after", type=int, help="stop once every run has this many training episodes")
    p.add_argument("--out", help="run folders (default runs/rsm-paper-<scenario>); the same --out resumes")
    p.add_argument("--results", help="where the stitched results go (default benchmarks/results/rsm_masac/<scenario>)")
    args = p.parse_args()
    budget = dict(PAPER[args.scenario], test_every=10, update_mode=args.update_mode)
    if args.episodes:
        budget["episodes"] = args.episodes
    if args.horizon:
        budget["horizon"] = args.horizon
    out = Path(args.out or ROOT / "runs" / f"rsm-paper-{args.scenario}")
    dest = Path(args.results or ROOT / "benchmarks" / "results" / "rsm_masac" / args.scenario)
    dest.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    losses = [f"{float(x):g}" for x in filter(None, args.loss.split(","))]  # labels as targets() spells them
    runs = [Run(m, m, s) for s in seeds for m in args.methods.split(",")]
    (fill, fill_sets), (on, on_sets) = LOSS_FILL[args.loss_fill], LOSS_ON[args.loss_on]
    runs += [
        Run(f"rsm_masac_loss{x}{fill}{on}", "rsm_masac", s, [f"netsim.loss={x}", *fill_sets, *on_sets])
        for x in losses
        for s in seeds
    ]
    runs += [
        Run(f"rsm_masac_U{u}", "rsm_masac", s, [f"algo.U={u}"])
        for u in (int(u) for u in filter(None, args.U.split(",")))
        for s in seeds
    ]
    idm = idm_score(out, args.scenario, budget)
    print(
        f"{args.scenario}: {len(runs)} runs to {budget['episodes']} episodes in chunks of {args.chunk}; "
        f"all-IDM {idm:.4f}; run folders {out}; results {dest}",
        flush=True,
    )
    goal = min(budget["episodes"], args.stop_after or budget["episodes"])
    while True:
        pending = [(progress(r, out, dest, goal), k, r) for k, r in enumerate(runs)]
        pending = [x for x in pending if x[0] < goal]
        if not pending:
            break
        done, _, run = min(pending, key=lambda x: (x[0], x[1]))
        upto = min(done + args.chunk, goal)
        wall = advance(run, out, args.scenario, budget, upto)
        table = write_all(runs, out, dest, args.scenario, budget, losses, idm)
        score = table[run.label]["final_score"][0]
        print(
            f"{time.strftime('%H:%M:%S')} {run.name}: {upto} episodes ({wall:.0f} s for the chunk); "
            f"final score so far {score:.4f}",
            flush=True,
        )
    print((dest / "table.md").read_text())
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("stopped: the chunk under way is redone when the same command is run again", file=sys.stderr)
        sys.exit(130)
