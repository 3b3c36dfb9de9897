"""Run-folder outputs: links.csv, delivery-vs-distance aggregation, plots and the printed summary."""

from __future__ import annotations

import csv
import json
import tomllib
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from netsim.channel import Channel  # noqa: E402
from netsim.config import NetsimConfig  # noqa: E402
from netsim.stats import COLUMNS, NOT_ATTEMPTS  # noqa: E402

from .run_folder import is_int, is_number  # noqa: E402


def write_links_csv(path: Path, columns: list[str], rows: list[list]) -> None:
    """Write the medium's per-link counters."""
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)


def direct_link_rows(metrics: list[dict]) -> list[list]:
    """links.csv rows for a direct-mode run, from the agents' own per-link counts in their final
    metrics (no distances: nothing stands between the peers); a sent message that was not received
    was still in flight at the end."""
    finals = {str(m.get("node")): m for m in metrics if m.get("final") and isinstance(m.get("direct_tx"), dict)}
    rows = []
    for src, rec in sorted(finals.items()):
        for key, cell in sorted(rec["direct_tx"].items()):
            if "|" not in key or not (isinstance(cell, list) and len(cell) == 2 and all(is_int(n) for n in cell)):
                continue  # not what an agent writes (the coordinator checks records as they come: run_folder)
            (dst, kind), (sent, nbytes) = key.split("|", 1), cell
            rx = finals.get(dst, {}).get("direct_rx")
            got = rx.get(f"{src}|{kind}", 0) if isinstance(rx, dict) else 0
            got = got if is_int(got) else 0
            row = dict.fromkeys(COLUMNS[4:], 0)
            row.update(
                sent=sent,
                delivered=got,
                dropped_shutdown=sent - got,
                bytes_sent=nbytes,
                bytes_delivered=nbytes * got // max(sent, 1),
            )
            rows.append([src, dst, kind, -1.0, *row.values()])
    return rows


def read_links_csv(path: Path) -> list[dict]:
    """Rows of links.csv with numbers parsed."""
    with open(path, newline="") as fh:
        return [
            {k: (v if k in ("src", "dst", "type") else float(v)) for k, v in row.items()} for row in csv.DictReader(fh)
        ]


def delivery_by_distance(rows: list[dict]) -> dict[str, dict[float, tuple[int, int, float]]]:
    """type -> distance bin -> (delivery attempts, delivered, mean bytes per message)."""
    acc: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0, 0]))
    for r in rows:
        if r["distance_m"] < 0:
            continue
        cell = acc[r["type"]][r["distance_m"]]
        cell[0] += r["sent"] - sum(r.get(c, 0) for c in NOT_ATTEMPTS)
        cell[1] += r["delivered"]
        cell[2] += r["bytes_sent"]
        cell[3] += r["sent"]
    return {
        k: {d: (int(a), int(dl), b / max(s, 1)) for d, (a, dl, b, s) in sorted(bins.items())} for k, bins in acc.items()
    }


def totals_by_type(rows: list[dict]) -> dict[str, dict[str, float]]:
    """type -> sent, delivered, ratio over channel attempts, mean latency (rows of links.csv)."""
    counts = np.array([[r.get(c, 0) for c in COLUMNS[4:]] for r in rows], np.float64).reshape(-1, len(COLUMNS) - 4)
    kinds, which = np.unique(np.array([r["type"] for r in rows], dtype=str), return_inverse=True)
    return totals_of(kinds.tolist(), which.ravel(), counts)


def totals_of(kinds: list[str], which: np.ndarray, counts: np.ndarray) -> dict[str, dict[str, float]]:
    """Per message type (row i is of type kinds[which[i]]), from counts in COLUMNS[4:] order: sent, attempts,
    delivered, delivery ratio over channel attempts, mean latency. Vectorized: the coordinator asks at each
    medium report, of a table with a row per link, type and distance bin."""
    col = {c: i for i, c in enumerate(COLUMNS[4:])}
    sums = np.zeros((len(kinds), counts.shape[1]))
    np.add.at(sums, which, counts)
    rows_of = np.bincount(which, minlength=len(kinds))
    out: dict[str, dict[str, float]] = {}
    for kind, row, n in zip(kinds, sums, rows_of):
        if not n:
            continue
        attempts = row[col["sent"]] - sum(row[col[c]] for c in NOT_ATTEMPTS)
        delivered = row[col["delivered"]]
        out[kind] = {
            "sent": float(row[col["sent"]]),
            "attempts": float(attempts),
            "delivered": float(delivered),
            "delivery_ratio": float(delivered / attempts) if attempts else float("nan"),
            "mean_latency_ms": float(1000 * row[col["latency_sum_s"]] / delivered) if delivered else float("nan"),
        }
    return out


def plot_delivery_vs_distance(
    ax, rows: list[dict], netsim: NetsimConfig, label: str = "", min_attempts: int = 5
) -> None:
    """Measured delivery ratio per distance bin (points) against the model curve (lines), per message type."""
    channel = Channel(netsim, 0)
    curves = delivery_by_distance(rows)
    dmax = max([d for bins in curves.values() for d in bins] + [netsim.range_m * 1.1, 50.0])
    grid = np.linspace(0.0, dmax, 300)
    for kind, bins in sorted(curves.items()):
        ds = np.array([d for d, (a, _, _) in bins.items() if a >= min_attempts])
        if not len(ds):
            continue
        ratio = np.array([bins[d][1] / bins[d][0] for d in ds])
        size = int(np.mean([bins[d][2] for d in ds]))
        line = ax.plot(
            grid,
            channel.expected_curve(grid, size, kind),
            "-",
            alpha=0.6,
            label=f"{label}{kind} model ({size} B, {channel.n_fragments(size)} frag.)",
        )[0]
        ax.plot(ds, ratio, "o", color=line.get_color(), ms=4, label=f"{label}{kind} measured")
    ax.set_xlabel("distance at send time [m]")
    ax.set_ylabel("delivery ratio")
    ax.set_ylim(-0.03, 1.03)
    ax.grid(alpha=0.3)


def load_run(run_dir: Path) -> tuple[dict, list[dict], list[dict]]:
    """The resolved config, link rows and metrics records of a run folder."""
    cfg = tomllib.loads((run_dir / "config.toml").read_text())
    links = read_links_csv(run_dir / "links.csv") if (run_dir / "links.csv").exists() else []
    return cfg, links, read_metrics(run_dir)


def run_status(run_dir: Path) -> str | None:
    """The status its summary.json gives a run ("ok", "degraded: ...", "failed: ..."); None before it has one."""
    try:
        return json.loads((run_dir / "summary.json").read_text())["status"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_metrics(run_dir: Path) -> list[dict]:
    """The records of metrics.jsonl (lines that are not a JSON object are skipped)."""
    metrics = []
    if (run_dir / "metrics.jsonl").exists():
        for line in (run_dir / "metrics.jsonl").read_text(errors="replace").splitlines():
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, RecursionError):
                continue  # a line cut by a crash; the rest is still good
            if isinstance(record, dict):
                metrics.append(record)
    return metrics


def world_records(metrics: list[dict]) -> list[dict]:
    """The world's progress records: kind "world" with an integer step (odd ones, from older runs or
    written by hand, are left out rather than let a report fail)."""
    return [m for m in metrics if m.get("kind") == "world" and is_int(m.get("step"))]


def make_plots(run_dir: Path) -> list[Path]:
    """(Re)draw the run's plots from its files; returns the files written."""
    cfg, links, metrics = load_run(run_dir)
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    written = []
    if links:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        netsim = NetsimConfig.model_validate(cfg.get("netsim", {}))
        plot_delivery_vs_distance(ax, links, netsim)
        ax.set_title(f"delivery vs distance ({netsim.model}, range {netsim.range_m:g} m)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(plots / "delivery_vs_distance.png", dpi=110)
        plt.close(fig)
        written.append(plots / "delivery_vs_distance.png")
    world = [m for m in world_records(metrics) if is_number(m.get("t")) and is_number(m.get("mean_speed"))]
    if world:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([m["t"] for m in world], [m["mean_speed"] for m in world])
        ax.set_xlabel("simulation time [s]")
        ax.set_ylabel("mean speed [m/s]")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(plots / "world.png", dpi=110)
        plt.close(fig)
        written.append(plots / "world.png")
    return written


def summarize(run_dir: Path) -> dict:
    """Headline figures of a run (also written to summary.json by the run). Never fails on odd metrics
    records or a damaged links.csv: what cannot be read counts as absent (and is named under "errors")."""
    out = {
        "run": run_dir.name,
        "steps": 0,
        "steps_per_s": 0.0,
        "late_actions": 0,
        "links": {},
        "node_failures": 0,
        "metrics_refused": 0,
    }
    errors, links = [], []
    metrics = read_metrics(run_dir)
    try:
        links = read_links_csv(run_dir / "links.csv") if (run_dir / "links.csv").exists() else []
        out["links"] = totals_by_type(links)
    except Exception as err:  # a damaged links.csv
        errors.append(f"links.csv: {type(err).__name__}: {err}")
    world = world_records(metrics)
    if world:
        last = world[-1]
        out["steps"] = last["step"]
        if is_number(last.get("steps_per_s")):
            out["steps_per_s"] = round(float(last["steps_per_s"]), 2)
        if is_int(last.get("late_actions")):
            out["late_actions"] = last["late_actions"]
    events = [m for m in metrics if m.get("kind") == "event"]
    out["node_failures"] = sum(1 for e in events if e.get("event") == "node_failed")
    out["metrics_refused"] = sum(
        e["records"] for e in events if e.get("event") == "metrics_refused" and is_int(e.get("records"))
    )
    if errors:
        out["errors"] = errors
    return out


def format_summary(summary: dict) -> str:
    """Human-readable summary lines."""
    lines = [
        f"run {summary['run']}: {summary['steps']} steps at {summary['steps_per_s']} steps/s, "
        f"{summary['late_actions']} late actions, {summary['node_failures']} node failures"
    ]
    fmt = lambda v, spec: "-" if v is None or v != v else format(v, spec)  # noqa: E731
    for kind, t in sorted(summary["links"].items()):
        lines.append(
            f"  {kind:10s} sent {int(t['sent']):7d}  delivered {int(t['delivered']):7d}  "
            f"ratio {fmt(t['delivery_ratio'], '.3f')}  mean latency {fmt(t['mean_latency_ms'], '.2f')} ms"
        )
    scalars = scalar_results(summary)
    if scalars:
        lines.append("  results: " + ", ".join(f"{k}={fmt(v, '.4g')}" for k, v in scalars.items()))
    return "\n".join(lines)


def scalar_results(summary: dict) -> dict[str, float]:
    """The numeric entries of summary['results'], nested tables flattened with dots."""
    out: dict[str, float] = {}

    def walk(prefix: str, obj) -> None:
        if isinstance(obj, dict):
            for key, value in obj.items():
                walk(f"{prefix}{key}.", value)
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[prefix[:-1]] = obj

    walk("", summary.get("results") or {})
    return out
