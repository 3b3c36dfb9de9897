"""Scores, round accounting (rho, psi, mixing rate, bytes) and heatmaps of a CAV run, from its metrics."""

from __future__ import annotations

import csv
import logging
from pathlib import Path

import numpy as np

from agent_node.learners.settings import ACTOR_DIM

log = logging.getLogger("scenarios.cav")

FINAL_TESTS = 5  # the paper's final score: mean of the last five test evaluations (RSM-MASAC paper, Sec. VI-C)
GIB = 1024**3
CPM_BYTES = 4480


def episodes(metrics: list[dict], mode: str) -> list[dict]:
    """The world's episode records of one mode, in order."""
    return [m for m in metrics if m.get("kind") == "cav_episode" and m.get("mode") == mode]


def rounds(metrics: list[dict]) -> list[dict]:
    return [m for m in metrics if m.get("kind") == "rsm_round"]


def final_score(metrics: list[dict]) -> tuple[float | None, str]:
    """Mean score of the last five test episodes (or, without tests, of the last five training ones)."""
    for mode in ("test", "train"):
        scores = [e["score"] for e in episodes(metrics, mode)]
        if scores:
            return float(np.mean(scores[-FINAL_TESTS:])), mode
    return None, "none"


def accounting(metrics: list[dict], agents: list[str], d: int = ACTOR_DIM) -> dict:
    """rho_total, rho_ef, the mixing rate, psi (GB, RSM-MASAC paper, Sec. VI-B) and radio bytes of the segments."""
    rs = rounds(metrics)
    total = sum(r["replicas"] for r in rs)
    accepted = sum(r["accepted"] for r in rs)
    received = sum(r["bytes_received"] for r in rs)
    round_ids = {r["round"] for r in rs}
    chunks = sum(r["chunks_expected"] for r in rs)
    got = sum(r["chunks_received"] for r in rs)
    n = max(len(agents), 1)
    return {
        "rounds": len(round_ids),
        "agent_rounds": len(rs),
        "rho_total": total,
        "rho_ef": accepted,
        "mixing_rate": accepted / total if total else None,
        "psi_gb": total * 4 * d / GIB,  # psi = rho_total * v / (8 * 1024^3), v = 32 d bits
        "cpm_messages": got,
        "cpm_messages_paper": total * 4 * d / CPM_BYTES,
        "chunk_delivery": got / chunks if chunks else None,
        "bytes_received": received,
        "bytes_per_agent_round": received / len(rs) if rs else 0.0,
        "bytes_per_agent": received / n,
    }


def pair_counts(metrics: list[dict], agents: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(communication counts, effective-mixture counts) per pair (requester i, donor j): RSM-MASAC paper, Fig. 8."""
    index = {a: k for k, a in enumerate(agents)}
    comm, mixed = np.zeros((len(agents),) * 2, int), np.zeros((len(agents),) * 2, int)
    for r in rounds(metrics):
        i = index.get(r["node"])
        if i is None:
            continue
        for donors in r["donors"]:
            for j in donors:
                if j in index:
                    comm[i, index[j]] += 1
        for donors in r["accepted_donors"]:
            for j in donors:
                if j in index:
                    mixed[i, index[j]] += 1
    return comm, mixed


def summarize(run_dir: Path, metrics: list[dict], agents: list[str]) -> dict:
    """summary.json's results: final score, curves' lengths, accounting; writes rounds.csv too."""
    score, source = final_score(metrics)
    train, test = episodes(metrics, "train"), episodes(metrics, "test")
    write_rounds_csv(run_dir / "rounds.csv", metrics)
    return {
        "final_score": score,
        "final_score_from": source,
        "train_episodes": len(train),
        "test_episodes": len(test),
        "collisions": sum(1 for e in train + test if e["collided"]),
        "mean_train_score": float(np.mean([e["score"] for e in train])) if train else None,
        **accounting(metrics, agents),
        "zeta": zeta_distribution(metrics),
    }


def accepted_zetas(r: dict) -> list[tuple[float, float]]:
    """(zeta, zeta_max) of each replica a round record mixed (zeta_max may be inf: q = 0)."""
    maxes = r.get("zeta_max") or [None] * len(r.get("zeta", []))
    return [(z, float(m)) for z, m in zip(r.get("zeta", []), maxes) if z > 0 and m is not None]


def zeta_distribution(metrics: list[dict], cap: float = 0.8) -> dict | None:
    """How Theorem 2 regulated the mixing: accepted replicas, the share held at the cap, quartiles of zeta and
    zeta_max (None for runs without regulated rounds)."""
    pairs = [p for r in rounds(metrics) for p in accepted_zetas(r)]
    if not pairs:
        return None
    z, m = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    q = lambda v: [float(x) for x in np.quantile(v, [0.25, 0.5, 0.75])]  # noqa: E731
    return {
        "accepted": len(pairs),
        "at_cap": round(float(np.mean(z >= cap - 1e-9)), 4),
        "zeta_quartiles": q(z),
        "zeta_max_quartiles": q(m[np.isfinite(m)]) if np.isfinite(m).any() else None,
    }


def write_rounds_csv(path: Path, metrics: list[dict]) -> None:
    """Per round (all agents together): replicas, accepted, mixing rate, bytes received, and the zeta and
    zeta_max of every accepted replica (space-separated)."""
    by_round: dict[int, dict] = {}
    for r in rounds(metrics):
        row = by_round.setdefault(
            r["round"],
            {
                "round": r["round"],
                "episode": r["episode"],
                "agents": 0,
                "replicas": 0,
                "accepted": 0,
                "bytes_received": 0,
                "zeta": [],
                "zeta_max": [],
            },
        )
        row["agents"] += 1
        for key in ("replicas", "accepted", "bytes_received"):
            row[key] += r[key]
        for z, m in accepted_zetas(r):
            row["zeta"].append(f"{z:.6g}")
            row["zeta_max"].append(f"{m:.6g}")
    with path.open("w", newline="") as fh:
        w = csv.DictWriter(
            fh,
            ["round", "episode", "agents", "replicas", "accepted", "mixing_rate", "bytes_received", "zeta", "zeta_max"],
        )
        w.writeheader()
        for k in sorted(by_round):
            row = by_round[k]
            w.writerow(
                dict(
                    row,
                    mixing_rate=round(row["accepted"] / row["replicas"], 4) if row["replicas"] else "",
                    zeta=" ".join(row["zeta"]),
                    zeta_max=" ".join(row["zeta_max"]),
                )
            )


def plot(run_dir: Path, metrics: list[dict], agents: list[str]) -> list[Path]:
    """plots/learning_curve.png and, when there were rounds, plots/heatmaps.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    plots = run_dir / "plots"
    plots.mkdir(exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4))
    for mode, style in (("train", "-"), ("test", "o-")):
        eps = episodes(metrics, mode)
        if eps:
            ax.plot([e["episode"] for e in eps], [e["score"] for e in eps], style, label=mode, ms=3)
    ax.set_xlabel("training episode")
    ax.set_ylabel("score (sum r / T)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(plots / "learning_curve.png", dpi=110)
    plt.close(fig)
    out.append(plots / "learning_curve.png")
    if rounds(metrics) and agents:
        comm, mixed = pair_counts(metrics, agents)
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.8))
        for ax, data, title in (
            (axes[0], comm, "segments requested (i from j)"),
            (axes[1], mixed, "segments in accepted replicas"),
        ):
            im = ax.imshow(data, cmap="viridis")
            ax.set_xticks(range(len(agents)), agents, rotation=90, fontsize=7)
            ax.set_yticks(range(len(agents)), agents, fontsize=7)
            ax.set_xlabel("donor j")
            ax.set_ylabel("requester i")
            ax.set_title(title)
            fig.colorbar(im, ax=ax, shrink=0.8)
        fig.tight_layout()
        fig.savefig(plots / "heatmaps.png", dpi=110)
        plt.close(fig)
        out.append(plots / "heatmaps.png")
    return out
