"""Episode returns and poll statistics of a warehouse run, from its metrics.jsonl records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def episode_rewards(metrics: list[dict], gamma: float) -> list[dict]:
    """Per episode: r(t) = r_g(t) + mean over the robots that reported of r_l(t), and its return."""
    worlds = {m["episode"]: m for m in metrics if m.get("kind") == "world_episode"}
    robots: dict[int, list[list[float]]] = {}
    for m in metrics:
        if m.get("kind") == "robot_episode":
            robots.setdefault(m["episode"], []).append(m["r_l"])
    out = []
    for episode in sorted(worlds):
        r_g = np.asarray(worlds[episode]["r_g"], dtype=float)
        rows = robots.get(episode, [])
        taken = np.zeros(len(r_g))  # robots that took each step: one that missed an episode's last
        total = np.zeros(len(r_g))  # broadcasts, or joined late, reports only the steps it took (NaN: not taken)
        for r in rows:
            r = np.asarray([np.nan if v is None else v for v in r[: len(r_g)]], dtype=float)
            ok = np.isfinite(r)
            taken[: len(r)] += ok
            total[: len(r)] += np.where(ok, r, 0.0)
        seen = taken > 0  # a step no robot took (the dispatcher was down, say) is left out, and counted
        r = r_g + np.divide(total, taken, out=np.zeros_like(total), where=seen)
        discount = np.where(seen, gamma ** np.arange(len(r)), 0.0)
        out.append(
            {
                "episode": episode,
                "robots": len(rows),
                "missing_steps": int((~seen).sum()),
                "reward": np.where(seen, r, np.nan).tolist(),
                "return": float(r @ discount),
            }
        )
    return out


def summarize(run_dir: Path, metrics: list[dict], gamma: float) -> dict:
    """Headline results: mean discounted return over episodes, poll counters, training figures."""
    episodes = episode_rewards(metrics, gamma)
    returns = [e["return"] for e in episodes]
    out = {
        "episodes": len(episodes),
        "return_mean": float(np.mean(returns)) if returns else None,
        "return_std": float(np.std(returns)) if returns else None,
        "robots_reporting_min": min((e["robots"] for e in episodes), default=0),
        "missing_steps": sum(e["missing_steps"] for e in episodes),
        **dispatcher_counters(metrics),
        "desync_steps": sum(
            m.get("desync_steps", 0) for m in metrics if m.get("kind") == "robot_node" and m.get("final")
        ),
    }
    for name in ("training.json", "nash_gap.json"):
        path = run_dir / "policy" / name
        if path.exists():
            out[name.removesuffix(".json")] = json.loads(path.read_text())
    return out


def dispatcher_counters(metrics: list[dict]) -> dict:
    """Poll counters summed over every dispatcher process of the run (a restarted one counts from 0)."""
    keys = ("polls_sent", "polls_lost", "polls_replaced", "late_replies", "short_steps", "blind_steps")
    finals = [m for m in metrics if m.get("kind") == "dispatcher_node" and m.get("final")]
    if not finals:  # killed outright: its last per-episode record is the best there is
        finals = [m for m in metrics if m.get("kind") == "dispatcher_episode"][-1:]
    return {key: sum(m.get(key, 0) for m in finals) if finals else None for key in keys}


def plot(run_dir: Path, metrics: list[dict], gamma: float) -> Path | None:
    """plots/reward.png: r(t) per episode."""
    import matplotlib.pyplot as plt

    episodes = episode_rewards(metrics, gamma)
    if not episodes:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for e in episodes[:20]:
        ax.plot(e["reward"], lw=0.8, label=f"episode {e['episode']}: return {e['return']:.1f}")
    ax.set_xlabel("step")
    ax.set_ylabel("r_g + mean r_l")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=6)
    fig.tight_layout()
    path = run_dir / "plots" / "reward.png"
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
