"""Packet-loss experiments: one run per grid point, then sweep.csv, sweep.png (a panel per point) and
sweep_table.png (the headline metric over the grid)."""

from __future__ import annotations

import csv
import itertools
import json
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

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
    status = report.run_status(run_dir)
    return status is not None and (status == "ok" or status.startswith("degraded"))


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
    rows, panels = [], []
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
            panels.append((name, run_dir / "links.csv", NetsimConfig.model_validate(cfg.netsim.model_dump())))
    columns = list(dict.fromkeys(k for r in rows for k in r))
    with open(out / "sweep.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, columns)
        w.writeheader()
        w.writerows(rows)
    plot_links(out / "sweep.png", panels)
    plot_results(out, rows, [k for k, _ in grid])
    plot_table(out / "sweep_table.png", rows, [k for k, _ in grid])
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


def plot_links(path: Path, panels: list[tuple[str, Path, NetsimConfig]]) -> None:
    """sweep.png: delivery vs distance, one small panel per grid point (measured points and the model curve
    with every loss the point configured), on shared axes."""
    if not panels:
        return
    cols = min(3, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), sharex=True, sharey=True, squeeze=False)
    for ax, (name, links, netsim) in zip(axes.flat, panels):
        report.plot_delivery_vs_distance(ax, report.read_links_csv(links), netsim)
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=6, loc="lower left")
    for ax in axes.flat[len(panels) :]:
        ax.set_visible(False)
    for ax in axes.flat:
        ax.label_outer()
    fig.suptitle("delivery vs distance per sweep point (lines: the model with every configured loss)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def headline(rows: list[dict]) -> str | None:
    """The metric a sweep's table figure shows: a learning result if the runs have one, else the first
    message type's delivery ratio."""
    for c in ("return_mean", "final_score", "nash_gap.gap", "polls_lost", "mixing_rate", "chunk_delivery"):
        if any(c in r for r in rows):
            return c
    return next((k for r in rows for k in r if k.endswith("_delivery_ratio")), None)


def plot_table(path: Path, rows: list[dict], keys: list[str]) -> None:
    """sweep_table.png: the headline metric over the grid, the first axis down, the others across."""
    metric = headline(rows)
    if metric is None or not keys:
        return
    down = list(dict.fromkeys(str(r[keys[0]]) for r in rows if keys[0] in r))
    across = list(dict.fromkeys(", ".join(f"{k}={r[k]}" for k in keys[1:]) for r in rows)) or [""]
    cells = np.full((len(down), len(across)), np.nan)
    for r in rows:
        value = r.get(metric)
        if isinstance(value, (int, float)) and keys[0] in r:
            cells[down.index(str(r[keys[0]])), across.index(", ".join(f"{k}={r[k]}" for k in keys[1:]))] = value
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(across), 1.0 + 0.45 * len(down)))
    image = ax.imshow(cells, cmap="viridis", aspect="auto")
    for (i, j), v in np.ndenumerate(cells):
        dark = np.isnan(v) or image.norm(v) < 0.6  # white on the dark end of viridis, black on the bright
        ax.text(j, i, "-" if np.isnan(v) else f"{v:.3g}", ha="center", va="center", color="w" if dark else "k")
    ax.set_xticks(range(len(across)), across, fontsize=8, rotation=20 if len(across) > 3 else 0)
    ax.set_yticks(range(len(down)), down, fontsize=8)
    ax.set_ylabel(keys[0])
    ax.set_title(metric, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
