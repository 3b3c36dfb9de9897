"""Packet-loss experiments: one run per grid point, then sweep.csv and sweep.png side by side."""

from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt

from netsim.config import NetsimConfig
from scenarios.config import ConfigError, load_scenario

from . import report
from .run_folder import check_new_run_dir, config_toml
from .supervisor import Supervisor


def parse_grid(specs: list[str]) -> list[tuple[str, list[str]]]:
    """['netsim.model=a,b'] -> [('netsim.model', ['a', 'b'])]."""
    grid = []
    for spec in specs:
        key, sep, values = spec.partition("=")
        if not sep or not values:
            raise ConfigError(f"--grid {spec!r}: expected key=v1,v2,...")
        grid.append((key.strip(), [v.strip() for v in values.split(",")]))
    return grid


def finished(run_dir: Path) -> bool:
    """A point that ran to its end (ok, or degraded: it went on without a failed node)."""
    try:
        status = json.loads((run_dir / "summary.json").read_text())["status"]
    except (OSError, ValueError, KeyError):
        return False
    return status == "ok" or status.startswith("degraded")


def run_sweep(
    scenario: Path,
    grid_specs: list[str],
    overrides: list[str],
    out: Path,
    seed: int | None,
    ray_address: str | None = None,
    resume: bool = False,
    point_cpus: float = 1.0,
) -> int:
    """Validate every point first (nothing starts if one is invalid), then run them: in turn here, or in parallel as
    Ray tasks on the cluster at ray_address (each a whole run on one host, `point_cpus` reserved). A failed point is
    reported and the others go on; resume: points that finished before are read, not run again."""
    grid = parse_grid(grid_specs)
    points = [dict(zip([k for k, _ in grid], combo)) for combo in itertools.product(*[v for _, v in grid])]
    cfgs = [load_scenario(scenario, [*overrides, *(f"{k}={v}" for k, v in p.items())], seed) for p in points]
    names = ["_".join(f"{k.split('.')[-1]}={v}" for k, v in p.items()) for p in points]
    done = {name for name in names if resume and finished(out / name)}
    for cfg, name in zip(cfgs, names):
        if name in done and (out / name / "config.toml").read_text() != config_toml(cfg.model_dump(mode="json")):
            raise ConfigError(f"--resume: point {name} finished with other settings than these ({out / name})")
    for name in names:
        if name not in done:
            if resume and (out / name).exists():  # an unfinished point runs again; its old folder is kept aside
                aside = out / f"{name}.unfinished-{time.strftime('%Y%m%d-%H%M%S')}"
                while aside.exists():
                    aside = aside.with_name(aside.name + "+")
                (out / name).rename(aside)
            check_new_run_dir(out / name)
    out.mkdir(parents=True, exist_ok=True)
    todo = [(cfg, name) for cfg, name in zip(cfgs, names) if name not in done]
    if done:
        print(f"sweep: {len(done)} points finished before, read from their folders: {', '.join(sorted(done))}")
    codes = {}
    if ray_address:
        from .ray_sweep import run_points_on_ray

        texts = [(name, config_toml(cfg.model_dump(mode="json"))) for cfg, name in todo]
        print(f"sweep: {len(texts)} points as Ray tasks on {ray_address}, {point_cpus:g} CPUs each")
        try:
            for name, code, stderr in run_points_on_ray(texts, out, ray_address, point_cpus):
                codes[name] = code
                print(f"== sweep point {name}: exit code {code}" + (f"\n{stderr}" if code else ""))
        except KeyboardInterrupt:  # the points not finished were stopped; those finished are still tabulated
            print("sweep interrupted; writing the points finished so far")
            codes["interrupted"] = 130
    else:
        for cfg, name in todo:
            print(f"== sweep point {name}")
            codes[name] = Supervisor(cfg, out / name).execute()
            if codes[name] == 130:  # Ctrl-C ends the sweep; the points done so far are still tabulated
                print("sweep interrupted; writing the points finished so far")
                break
    rows = []
    fig, ax = plt.subplots(figsize=(8, 5))
    for point, cfg, name in zip(points, cfgs, names):
        run_dir = out / name
        if not (run_dir / "summary.json").exists():
            if name in codes:  # ran, but left no summary (its host was lost)
                rows.append({**point, "status": f"failed: exit code {codes[name]}, no summary.json"})
            continue
        summary = json.loads((run_dir / "summary.json").read_text())
        row = {**point, "status": summary["status"], "steps": summary["steps"]}
        for kind, t in sorted(summary["links"].items()):
            row[f"{kind}_sent"] = t["sent"]
            row[f"{kind}_delivery_ratio"] = round(t["delivery_ratio"], 4)
            row[f"{kind}_latency_ms"] = round(t["mean_latency_ms"], 3)
        row.update(report.scalar_results(summary))
        rows.append(row)
        if (run_dir / "links.csv").exists():
            report.plot_delivery_vs_distance(
                ax,
                report.read_links_csv(run_dir / "links.csv"),
                NetsimConfig.model_validate(cfg.netsim.model_dump()),
                label=f"{name}: ",
            )
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "sweep.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(rows)
    ax.set_title("delivery vs distance per sweep point")
    ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(out / "sweep.png", dpi=110)
    plt.close(fig)
    plot_results(out, rows, [k for k, _ in grid])
    print(f"sweep table: {out / 'sweep.csv'}")
    for r in rows:
        print("  " + "  ".join(f"{k}={v}" for k, v in r.items()))
    return max((code if code >= 0 else 1 for code in codes.values()), default=0)  # killed by a signal: failed


def plot_results(out: Path, rows: list[dict], keys: list[str]) -> None:
    """sweep_results.png: each headline result against the first grid key (one line per other value)."""
    wanted = [
        c
        for c in ("return_mean", "nash_gap.gap", "polls_lost", "final_score", "mixing_rate", "chunk_delivery")
        if any(c in r for r in rows)
    ]
    x_key = keys[0]
    try:
        xs_all = [float(r[x_key]) for r in rows]
    except (TypeError, ValueError):
        xs_all = []
    if not wanted or not xs_all:  # only numeric grid values make a curve
        return
    fig, axes = plt.subplots(1, len(wanted), figsize=(5 * len(wanted), 4), squeeze=False)
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(",".join(f"{k}={r[k]}" for k in keys[1:]), []).append(r)
    for ax, col in zip(axes[0], wanted):
        for label, rs in groups.items():
            pts = [(float(r[x_key]), r[col]) for r in rs if r.get(col) is not None]
            if pts:
                xs, ys = zip(*sorted(pts))
                ax.plot(xs, ys, "o-", label=label or col)
        ax.set_xlabel(x_key)
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "sweep_results.png", dpi=110)
    plt.close(fig)
