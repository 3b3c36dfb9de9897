"""Results of a routing run from its metrics: final test figures, SED execution rates, curves and plots."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

CURVES = (
    ("reward", "average episode reward"),
    ("travel_time", "average travel time (s)"),
    ("arrival_rate", "arrival rate"),
)


def episodes(metrics: list[dict], mode: str) -> list[dict]:
    return [m for m in metrics if m.get("kind") == "routing_episode" and m.get("mode") == mode]


def of_kind(metrics: list[dict], kind: str) -> list[dict]:
    return [m for m in metrics if m.get("kind") == kind]


def _mean(rows: list[dict], key: str) -> float | None:
    values = [r[key] for r in rows if r.get(key) is not None]
    return float(np.mean(values)) if values else None


def _spread(prefix: str, rows: list[dict]) -> dict:
    """Mean and standard deviation over the test episodes of each curve (the paper: "over 20 independent runs")."""
    out = {}
    for key, _label in CURVES:
        values = [r[key] for r in rows if r.get(key) is not None]
        out[f"{prefix}_{key}"] = float(np.mean(values)) if values else None
        out[f"{prefix}_{key}_std"] = float(np.std(values)) if values else None
    return out


def summarize(run_dir: Path, metrics: list[dict]) -> dict:
    """summary.json's results: the final greedy tests, the last epoch's training figures, SED rounds, alpha."""
    train, test = episodes(metrics, "train"), episodes(metrics, "test")
    last_epoch = max((e["epoch"] for e in train), default=None)
    last = [e for e in train if e["epoch"] == last_epoch]
    final_tests = [e for e in test if e["epoch"] == max((t["epoch"] for t in test), default=None)]
    sampled = [e for e in episodes(metrics, "test_stochastic") if final_tests and e["epoch"] == final_tests[0]["epoch"]]
    rounds = of_kind(metrics, "sed_round")
    agents = of_kind(metrics, "router_epoch")
    write_csv(run_dir / "episodes.csv", [m for m in metrics if m.get("kind") == "routing_episode"])
    write_csv(run_dir / "sed_rounds.csv", rounds)
    return {
        **_spread("test", final_tests),
        "test_episodes": len(final_tests),
        **_spread("test_stochastic", sampled),
        "test_stochastic_episodes": len(sampled),
        "last_epoch": last_epoch,
        "train_reward_last_epoch": _mean(last, "reward"),
        "train_travel_time_last_epoch": _mean(last, "travel_time"),
        "train_arrival_rate_last_epoch": _mean(last, "arrival_rate"),
        "train_episodes": len(train),
        "train_decisions": sum(e["decisions"] for e in train),
        "subset_rollouts": len(episodes(metrics, "subset")),
        "sed_rounds": len(rounds),
        "execution_rate": _mean(rounds, "execution_rate"),
        "plans_ok_rate": _mean(rounds, "plans_ok"),
        "expert_source": rounds[0]["source"] if rounds else None,
        "alpha_last_epoch": _mean([a for a in agents if a["epoch"] == last_epoch], "alpha"),
        "teleports": sum(e.get("teleports", 0) for e in train + test),
    }


def write_csv(path: Path, rows: list[dict]) -> None:
    keys = sorted({k for r in rows for k in r if not isinstance(r[k], (dict, list))})
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def epoch_curve(metrics: list[dict], key: str) -> tuple[list[int], list[float]]:
    """Per epoch: the mean of key over that epoch's training episodes."""
    by_epoch: dict[int, list[float]] = {}
    for e in episodes(metrics, "train"):
        by_epoch.setdefault(e["epoch"], []).append(e[key])
    xs = sorted(by_epoch)
    return xs, [float(np.mean(by_epoch[x])) for x in xs]


def _save(fig, ax, path: Path, xlabel: str, ylabel: str, out: list[Path], **legend) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(**legend)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    out.append(path)


def plot(run_dir: Path, metrics: list[dict]) -> list[Path]:
    """plots/learning_curves.png (reward, travel time, arrival rate), plots/alpha.png, plots/execution_rate.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    out: list[Path] = []
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    tests = episodes(metrics, "test")
    for ax, (key, label) in zip(axes, CURVES):
        ax.plot(*epoch_curve(metrics, key), "-", label="train")
        if tests:
            ax.plot([t["epoch"] for t in tests], [t[key] for t in tests], "o", ms=3, label="test (greedy)")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(plots / "learning_curves.png", dpi=110)
    out.append(plots / "learning_curves.png")
    plt.close(fig)
    agents = of_kind(metrics, "router_epoch")
    if agents:
        fig, ax = plt.subplots(figsize=(7, 4))
        for node in sorted({a["node"] for a in agents}):
            rows = [a for a in agents if a["node"] == node]
            ax.plot([r["epoch"] for r in rows], [r["alpha"] for r in rows], label=node, lw=1)
        _save(fig, ax, plots / "alpha.png", "epoch", "alpha (agent-loss weight)", out, fontsize=6, ncol=2)
        plt.close(fig)
    rounds = of_kind(metrics, "sed_round")
    if rounds:
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.plot([r["round"] for r in rounds], [r["execution_rate"] for r in rounds], "o-", label="executed")
        ax.plot([r["round"] for r in rounds], [r["plans_ok"] for r in rounds], "s--", label="plan code ran")
        ax.set_ylim(-0.05, 1.05)
        _save(fig, ax, plots / "execution_rate.png", "SED round", "rate", out)
        plt.close(fig)
    return out
