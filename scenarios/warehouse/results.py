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
        taken = np.zeros(len(r_g))  # robots that took each step (a robot that missed an episode's
        total = np.zeros(len(r_g))  # last broadcasts reports only the steps it took)
        for r in rows:
            r = np.asarray(r[:len(r_g)], dtype=float)
            taken[:len(r)] += 1
            total[:len(r)] += r
        with np.errstate(invalid="ignore", divide="ignore"):
            r = r_g + total / taken
        out.append({"episode": episode, "robots": len(rows), "complete": int((taken == taken.max(initial=0)).all()),
                    "reward": r.tolist(), "return": float(r @ gamma ** np.arange(len(r)))})
    return out


def summarize(run_dir: Path, metrics: list[dict], gamma: float) -> dict:
    """Headline results: mean discounted return over episodes, poll counters, training figures."""
    episodes = episode_rewards(metrics, gamma)
    returns = [e["return"] for e in episodes]
    disp = [m for m in metrics if m.get("kind") == "dispatcher_episode"]
    last = disp[-1] if disp else {}
    out = {
        "episodes": len(episodes),
        "return_mean": float(np.mean(returns)) if returns else None,
        "return_std": float(np.std(returns)) if returns else None,
        "robots_reporting_min": min((e["robots"] for e in episodes), default=0),
        **{key: last.get(key) for key in ("polls_sent", "polls_lost", "polls_replaced", "late_replies",
                                          "short_steps", "blind_steps")},
    }
    for name in ("training.json", "nash_gap.json"):
        path = run_dir / "policy" / name
        if path.exists():
            out[name.removesuffix(".json")] = json.loads(path.read_text())
    return out


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
