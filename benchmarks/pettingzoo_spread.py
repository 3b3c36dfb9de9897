"""A hosted third-party environment learns: MPE's simple_spread (mpe2) as one process per agent, IPPO, against the
random policy on the same test episodes; and the same agents knowing each other only through the emulated radio,
lossless and at 50 % loss.

Each seed of each variant is a real `netmarl run` (world process with the environment, three agent processes); its
greedy test episodes use the seeds the world gives test episodes, and the random policy is scored here on exactly
those episodes (the environment in this process, uniform actions). A run folder holding an "ok" summary.json is read,
not run again. Variants:
  ippo        scenarios/pettingzoo_spread.toml: the environment's observations, no radio
  radio-0     scenarios/pettingzoo_spread_radio.toml: the other agents' positions only from their broadcasts
  radio-50    the same with netsim.loss = 0.5
  radio-none  the same role with nothing about the others (the lower bound)

    python benchmarks/pettingzoo_spread.py                                          # ippo, 3,000 episodes, seeds 1-3
    python benchmarks/pettingzoo_spread.py --variants radio-0,radio-50,radio-none --seeds 1 \
        --results benchmarks/results/pettingzoo/spread_radio
    python benchmarks/pettingzoo_spread.py --episodes 300 --seeds 1                 # a quick look
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

from coordinator.report import run_status  # noqa: E402
from scenarios.config import load_scenario  # noqa: E402
from scenarios.pettingzoo.host import load_env  # noqa: E402
from scenarios.step_driver import TEST_SEED  # noqa: E402

SCENARIO = ROOT / "scenarios" / "pettingzoo_spread.toml"
RADIO = ROOT / "scenarios" / "pettingzoo_spread_radio.toml"
VARIANTS = {  # name -> (scenario, --set overrides)
    "ippo": (SCENARIO, []),
    "radio-0": (RADIO, ["netsim.loss=0.0"]),
    "radio-50": (RADIO, ["netsim.loss=0.5"]),
    "radio-none": (RADIO, ['algo.role_settings.source="none"']),
    "radio-env": (RADIO, ['algo.role_settings.source="env"']),
}


def run(out: Path, variant: str, seed: int, episodes: int, tests: int) -> list[dict]:
    """The run's episode records (running it first unless its folder holds a finished run)."""
    if run_status(out) != "ok":
        scenario, sets = VARIANTS[variant]
        cmd = [sys.executable, "-m", "coordinator.cli", "run", str(scenario), "--out", str(out), "--no-progress"]
        cmd += ["--seed", str(seed), "--set", f"world.episodes={episodes}", "--set", f"world.test_episodes={tests}"]
        for s in sets:
            cmd += ["--set", s]
        if out.exists():
            raise SystemExit(f"{out} holds an unfinished run: remove it to run again")
        subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True)
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("kind") == "pettingzoo_episode"]


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
    p.add_argument("--variants", default="ippo", help=f"comma-separated, of {', '.join(VARIANTS)}")
    p.add_argument("--out", default=str(ROOT / "runs" / "bench-pettingzoo-spread"))
    p.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "pettingzoo" / "spread"))
    args = p.parse_args()
    out, dest = Path(args.out), Path(args.results)
    dest.mkdir(parents=True, exist_ok=True)
    seeds, variants = [int(s) for s in args.seeds.split(",")], args.variants.split(",")
    table, curve = {}, []
    for seed in seeds:
        rand = float(np.mean(random_policy(seed, args.tests)))
        table[seed] = {"random_test": rand}
        for variant in variants:
            eps = run(out / f"{variant}-s{seed}", variant, seed, args.episodes, args.tests)
            test = float(np.mean([e["return"] for e in eps if e["mode"] == "test"]))
            table[seed][f"{variant}_test"] = test
            curve += [(variant, seed, e["episode"], e["return"]) for e in eps if e["mode"] == "train"]
            print(f"seed {seed}: {variant} test {test:.2f}, random {rand:.2f} ({args.tests} episodes each)", flush=True)
    summary = {
        "command": " ".join(sys.argv),
        "budget": {"episodes": args.episodes, "steps_per_episode": 25, "agents": 3, "test_episodes": args.tests},
        "seeds": table,
        **{
            key: [float(np.mean(v)), float(np.std(v))]
            for key in [f"{v}_test" for v in variants] + ["random_test"]
            for v in [[row[key] for row in table.values()]]
        },
    }
    (dest / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    with (dest / "train_curve.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["variant", "seed", "episode", "mean_return"])
        w.writerows((v, s, e, round(r, 4)) for v, s, e, r in curve)
    plot(curve, summary, dest / "curve.png")
    print(json.dumps({k: v for k, v in summary.items() if k.endswith("_test")}))
    return 0


def plot(curve: list, summary: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for variant, seed in sorted({(v, s) for v, s, _, _ in curve}):
        xs, ys = zip(*[(e, r) for v, s, e, r in curve if (v, s) == (variant, seed)])
        window = min(50, len(ys))
        smooth = np.convolve(ys, np.ones(window) / window, mode="valid")
        ax.plot(xs[len(xs) - len(smooth) :], smooth, lw=1, label=f"{variant} training, seed {seed}")
    ax.axhline(summary["random_test"][0], color="grey", ls="--", label="random policy (test episodes)")
    ax.set_xlabel("training episode")
    ax.set_ylabel("mean return per agent (50-episode mean)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main())
