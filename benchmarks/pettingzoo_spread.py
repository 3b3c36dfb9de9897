"""A hosted third-party environment learns: MPE's simple_spread (mpe2) as one process per agent, IPPO, against the
random policy on the same test episodes.

Each seed is a real `netmarl run scenarios/pettingzoo_spread.toml` (world process with the environment, three ippo
agent processes); its greedy test episodes use the seeds the world gives test episodes, and the random policy is
scored here on exactly those episodes (the environment in this process, uniform actions). A seed whose run folder
holds an "ok" summary.json is read, not run again.

    python benchmarks/pettingzoo_spread.py                              # 3,000 episodes, seeds 1-3
    python benchmarks/pettingzoo_spread.py --episodes 300 --seeds 1     # a quick look
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scenarios.config import load_scenario  # noqa: E402
from scenarios.pettingzoo.host import load_env  # noqa: E402
from scenarios.step_driver import TEST_SEED  # noqa: E402

SCENARIO = ROOT / "scenarios" / "pettingzoo_spread.toml"


def run(out: Path, seed: int, episodes: int, tests: int) -> dict:
    if not (out / "summary.json").exists() or json.loads((out / "summary.json").read_text())["status"] != "ok":
        cmd = [sys.executable, "-m", "coordinator.cli", "run", str(SCENARIO), "--out", str(out), "--no-progress"]
        cmd += ["--seed", str(seed), "--set", f"world.episodes={episodes}", "--set", f"world.test_episodes={tests}"]
        if out.exists():
            raise SystemExit(f"{out} holds an unfinished run: remove it to run again")
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return {"episodes": [r for r in rows if r.get("kind") == "pettingzoo_episode"]}


def random_policy(seed: int, tests: int) -> list[float]:
    """Mean return over the agents of uniform random actions, on the run's test episodes (same reset seeds)."""
    cfg = load_scenario(str(SCENARIO), [], seed).world
    env, rng, out = load_env(cfg.env, cfg.env_kwargs), np.random.default_rng(seed), []
    for j in range(tests):
        env.reset(seed=TEST_SEED + seed * 1000 + j)
        total = dict.fromkeys(env.possible_agents, 0.0)
        while env.agents:
            _, rewards, _, _, _ = env.step({a: int(rng.integers(env.action_space(a).n)) for a in env.agents})
            for a, r in rewards.items():
                total[a] += r
        out.append(float(np.mean(list(total.values()))))
    env.close()
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=3000)
    p.add_argument("--tests", type=int, default=20)
    p.add_argument("--seeds", default="1,2,3")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-pettingzoo-spread"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "pettingzoo" / "spread"))
    args = p.parse_args()
    out, dest = Path(args.out), Path(args.results)
    dest.mkdir(parents=True, exist_ok=True)
    table, curve = {}, []
    for seed in (int(s) for s in args.seeds.split(",")):
        eps = run(out / f"ippo-s{seed}", seed, args.episodes, args.tests)["episodes"]
        test = [e["return"] for e in eps if e["mode"] == "test"]
        rand = random_policy(seed, args.tests)
        table[seed] = {"ippo_test": float(np.mean(test)), "random_test": float(np.mean(rand))}
        curve += [(seed, e["episode"], e["return"]) for e in eps if e["mode"] == "train"]
        print(f"seed {seed}: IPPO test {np.mean(test):.2f}, random {np.mean(rand):.2f} ({args.tests} episodes each)")
    ippo, rand = [v["ippo_test"] for v in table.values()], [v["random_test"] for v in table.values()]
    summary = {
        "command": " ".join(sys.argv),
        "budget": {"episodes": args.episodes, "steps_per_episode": 25, "agents": 3, "test_episodes": args.tests},
        "seeds": table,
        "ippo_test": [float(np.mean(ippo)), float(np.std(ippo))],
        "random_test": [float(np.mean(rand)), float(np.std(rand))],
    }
    (dest / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    with (dest / "train_curve.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["seed", "episode", "mean_return"])
        w.writerows((s, e, round(r, 4)) for s, e, r in curve)
    plot(curve, summary, dest / "curve.png")
    print(json.dumps({k: summary[k] for k in ("ippo_test", "random_test")}))
    return 0


def plot(curve: list, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for seed in sorted({s for s, _, _ in curve}):
        xs, ys = zip(*[(e, r) for s, e, r in curve if s == seed])
        smooth = np.convolve(ys, np.ones(10) / 10, mode="valid")
        ax.plot(xs[len(xs) - len(smooth) :], smooth, label=f"IPPO training, seed {seed} (10-episode mean)")
    ax.axhline(summary["random_test"][0], color="grey", ls="--", label="random policy (test episodes)")
    ax.axhline(summary["ippo_test"][0], color="black", ls=":", label="IPPO greedy test (mean of seeds)")
    ax.set_xlabel("training episode")
    ax.set_ylabel("mean return per agent")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
