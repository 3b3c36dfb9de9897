"""Training throughput: one process per agent (`netmarl run`) against one process for all, same learner and seed.

For each learning world, the same environment, learner, update schedule, seed and number of steps run
(a) in one process (one torch thread, no sockets): the CAV worlds as a plain SAC loop over the vehicles
(scenarios/cav/single.py), the episodic worlds (signals, routing, inventory) as their own world class
calling every agent's role directly (scenarios/one_process.py); and (b) as `netmarl run` (a world
process, a medium, one process per agent), on every core and pinned with taskset to one. Prints steps/s
of each and the ratios, and ends with one JSON line. The paper's update order learns the same numbers
both ways: the benchmark checks that the training scores agree (pipelined rows act with weights one
update older, by design, and are not compared).

    python benchmarks/training.py                               # every world, the default budget
    python benchmarks/training.py --worlds fig8-paper,fig8-code --episodes 1 --horizon 1500
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCENARIO_DIR = ROOT / "scenarios"
CORES = len(os.sched_getaffinity(0))


# ---------------------------------------------------------------------------------------------- reading the runs
def progress_of(records: list[dict]) -> list[tuple]:
    """(steps done, wall time, seconds in the agents so far or None) of the world's progress records: every 10
    steps (CAV) or after each training episode or epoch (the episodic worlds); the final record, written
    after the test episodes, is left out."""
    return [
        (r.get("steps_done", r["step"]), r["wall"], r.get("agents_s"))
        for r in records
        if r.get("kind") == "world" and "step" in r and not r.get("final")
    ]


def train_scores(records: list[dict]) -> list[float]:
    """The training episodes' scores, in order (what both ways of running must agree on)."""
    keys = ("score", "return", "reward")
    return [
        round(float(next(r[k] for k in keys if k in r)), 6)
        for r in records
        if r.get("kind", "").endswith("_episode") and r.get("mode") == "train"
    ]


def window(progress: list[tuple], warm: int) -> tuple[tuple, tuple]:
    """The measured stretch: from the first progress point at or after step `warm` to the last one (the
    warm-up, learners filling their buffers or starting their processes, left out on both sides)."""
    return next((p for p in progress if p[0] >= warm), progress[0]), progress[-1]


def rates(progress: list[tuple], warm: int) -> dict:
    """Steps/s over the window and, where the run says how long its agents took, their share of the time."""
    first, last = window(progress, warm)
    wall = max(last[1] - first[1], 1e-9)
    out = {"steps_per_s": (last[0] - first[0]) / wall, "window": [first[0], last[0]]}
    if first[2] is not None:
        out["agents_share"] = round((last[2] - first[2]) / wall, 4)
    return out


class CpuSampler:
    """Every `every` seconds, the CPU seconds used so far by each process under `root` (from /proc)."""

    def __init__(self, root: int, every: float = 0.25):
        self.root, self.every, self.samples = root, every, []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.stop = threading.Event()
        self.tick = os.sysconf("SC_CLK_TCK")
        self.thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for d in Path("/proc").iterdir():
            if d.name.isdigit():
                try:
                    children.setdefault(int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]), []).append(
                        int(d.name)
                    )
                except (OSError, IndexError, ValueError):
                    continue
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += children.get(pid, [])
        return tree

    def _run(self) -> None:
        while not self.stop.wait(self.every):
            cpu = {}
            for pid in self._tree():
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    cpu[pid] = (int(fields[11]) + int(fields[12])) / self.tick
                except (OSError, IndexError, ValueError):
                    continue
            self.samples.append((time.time(), cpu))

    def close(self) -> None:
        self.stop.set()
        self.thread.join()

    def between(self, t0: float, t1: float) -> tuple[float, float, dict[int, float]]:
        """(start, end, CPU seconds per process) between the samples just inside [t0, t1]."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            return t0, t0, {}
        (a, ca), (b, cb) = inside[0], inside[-1]
        return a, b, {pid: cb[pid] - ca.get(pid, 0.0) for pid in cb}


def steps_at(progress: list[tuple], t: float) -> float:
    """Steps done at wall time t, interpolated between progress points."""
    for (s0, t0, _), (s1, t1, _) in zip(progress, progress[1:]):
        if t0 <= t <= t1:
            return s0 + (s1 - s0) * (t - t0) / max(t1 - t0, 1e-9)
    return progress[-1][0]


def process_kinds(run_dir: Path) -> dict[int, str]:
    """pid -> world / medium / agent, from the coordinator's registration lines."""
    kinds = {}
    for m in re.finditer(r"registered (\S+) \((\w+), pid (\d+)\)", (run_dir / "logs" / "coordinator.log").read_text()):
        kinds[int(m.group(3))] = m.group(2)
    return kinds


# ---------------------------------------------------------------------------------------------- (b) netmarl run
def netmarl_run(scenario: str, sets: list[str], seed: int, out: Path, cores: str | None, warm: int) -> dict:
    """One `netmarl run` (taskset to `cores` if given): its world's steps/s, training scores, and where the
    CPU went over the measured stretch (cores busy and milliseconds a step, by kind of process)."""
    args = [
        sys.executable,
        "-m",
        "coordinator.cli",
        "run",
        str(SCENARIO_DIR / scenario),
        "--out",
        str(out),
        "--no-progress",
        "--seed",
        str(seed),
    ]
    for s in sets:
        args += ["--set", s]
    if cores:
        args = ["taskset", "-c", cores, *args]
    t0 = time.monotonic()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    sampler = CpuSampler(proc.pid)
    _, err = proc.communicate()
    sampler.close()
    wall = time.monotonic() - t0
    if proc.returncode != 0 or not (out / "summary.json").exists():
        raise RuntimeError(f"{out.name} failed ({proc.returncode}): {err[-2000:]}")
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    progress = progress_of(records)
    res = {**rates(progress, warm), "steps": progress[-1][0], "wall_s": round(wall, 1), "scores": train_scores(records)}
    first, last = window(progress, warm)
    a, b, cpu = sampler.between(first[1], last[1])
    steps = steps_at(progress, b) - steps_at(progress, a)
    if steps > 0:
        kinds = process_kinds(out)
        by_kind: dict[str, float] = {}
        for pid, used in cpu.items():
            kind = kinds.get(pid, "coordinator and launcher")
            by_kind[kind] = by_kind.get(kind, 0.0) + used
        per_step = 1000 / steps
        res["cores_busy"] = round(sum(by_kind.values()) / (b - a), 2)
        res["cpu_ms_per_step"] = {k: round(v * per_step, 3) for k, v in sorted(by_kind.items())}
        res["agents"] = sum(1 for k in kinds.values() if k == "agent")
    return res


# ---------------------------------------------------------------------------------------------- (a) single process
def single_process(scenario: str, sets: list[str], seed: int, out: Path, warm: int) -> dict:
    """The same scenario in this one process: the CAV worlds by a plain SAC loop (scenarios/cav/single.py),
    the episodic worlds by their own world class calling the agents' roles directly (scenarios/one_process.py)."""
    import torch

    from scenarios.config import load_scenario

    torch.set_num_threads(1)  # one torch thread per learner, as in the agents
    cfg = load_scenario(SCENARIO_DIR / scenario, [*sets, f"run.seed={seed}"])
    t0 = time.monotonic()
    if cfg.world.kind == "cav":
        from scenarios.cav.single import train_in_one_process

        res = train_in_one_process(cfg, seed, out / "net")
        progress, scores = res["progress"], res["scores"]
    else:
        from scenarios.one_process import run_in_one_process

        records = run_in_one_process(cfg, out)
        progress, scores = progress_of(records), train_scores(records)
    return {
        **rates(progress, warm),
        "steps": progress[-1][0],
        "wall_s": round(time.monotonic() - t0, 1),
        "scores": scores,
    }


# ---------------------------------------------------------------------------------------------- the worlds
CAV = ["world.test_every=0", "algo.method=isac", "algo.checkpoint_every=0", "world.episodes=1"]
CAV_WARM = 600  # steps: every SAC learns from step 514 on (its buffer holds > 512 transitions)
EPISODIC_WARM = 1  # from the end of the first episode or epoch (the agents' start-up left out)
SIGNALS = ["algo.method=ippo", "world.episodes=8", "world.update_every=4", "world.test_episodes=1"]
INVENTORY = ["algo.method=ippo", "world.episodes=8", "world.update_every=4", "world.env.echelons=3"]
ROUTING = ["algo.method=ippo", "world.epochs=4", "world.test_episodes=1"]
WORLDS = {
    # name: (scenario file, --set overrides, first step of the measured stretch)
    "fig8-paper": ("figure8_rsm_masac.toml", [*CAV, "algo.update_mode=paper"], CAV_WARM),
    "fig8-code": ("figure8_rsm_masac.toml", [*CAV, "algo.update_mode=code"], CAV_WARM),
    "fig8-paper-pipelined": (
        "figure8_rsm_masac.toml",
        [*CAV, "algo.update_mode=paper", "algo.learn=pipelined"],
        CAV_WARM,
    ),
    "fig8-code-pipelined": (
        "figure8_rsm_masac.toml",
        [*CAV, "algo.update_mode=code", "algo.learn=pipelined"],
        CAV_WARM,
    ),
    "merge-paper": ("merge_rsm_masac.toml", [*CAV, "world.episodes=2", "algo.update_mode=paper"], CAV_WARM),
    "signals-ippo": ("signals_espark.toml", SIGNALS, EPISODIC_WARM),
    "routing-ppo": ("grid_reled.toml", ROUTING, EPISODIC_WARM),
    "inventory-ippo": ("inventory_espark.toml", INVENTORY, EPISODIC_WARM),
}
PIPELINED = "algo.learn=pipelined"  # the single-process loop is the paper's order: pipelined rows share its baseline


def measure(name: str, args, out: Path, baselines: dict) -> dict:
    scenario, sets, warm = WORLDS[name]
    if scenario.startswith(("figure8", "merge")):
        sets = [
            *sets,
            *([f"world.episodes={args.episodes}"] if args.episodes else []),
            *([f"world.horizon={args.horizon}"] if args.horizon else []),
        ]
    sets = [*sets, *args.set]
    row: dict = {"world": name, "sets": sets, "measured_from_step": warm}
    key = (scenario, tuple(s for s in sets if s != PIPELINED))
    if key not in baselines:
        baselines[key] = single_process(scenario, sets, args.seed, out / f"{name}-single", warm)
        print(f"  {name} single process: {baselines[key]['steps_per_s']:.1f} steps/s", flush=True)
    row["single"] = one = baselines[key]
    every = ",".join(map(str, sorted(os.sched_getaffinity(0))))
    runs = [("multi", every)] + ([] if args.no_scaling else [("multi_1core", every.split(",")[0])])
    for label, cores in runs:
        res = netmarl_run(scenario, sets, args.seed, out / f"{name}-{label}", cores, warm)
        row[label] = res
        print(f"  {name} netmarl run on cores {cores}: {res['steps_per_s']:.1f} steps/s", flush=True)
    row["ratio"] = round(row["multi"]["steps_per_s"] / one["steps_per_s"], 3)
    if "multi_1core" in row:
        row["scaling"] = round(row["multi"]["steps_per_s"] / row["multi_1core"]["steps_per_s"], 3)
    # the paper's order computes what the single process computes; pipelined acts with older weights, by design
    row["same_scores"] = None if PIPELINED in sets else row["multi"]["scores"] == one["scores"]
    share, agents = one.get("agents_share"), row["multi"].get("agents")
    if share is not None:  # Amdahl: the world's part stays serial, the agents' part is shared by c cores
        row["bound"] = {str(c): round(1 / ((1 - share) + share / c), 3) for c in sorted({CORES, agents or CORES})}
    return row


def profile_line(r: dict) -> str:
    one, multi = r["single"], r["multi"]
    parts = [f"single {1000 / one['steps_per_s']:.2f} ms a step"]
    if "agents_share" in one:
        parts[0] += f" ({100 * one['agents_share']:.0f} % in the agents)"
    if "cpu_ms_per_step" in multi:
        cpu = ", ".join(f"{k} {v:.2f}" for k, v in multi["cpu_ms_per_step"].items())
        parts.append(
            f"netmarl {sum(multi['cpu_ms_per_step'].values()):.2f} ms CPU a step ({cpu}) on "
            f"{multi['cores_busy']:.2f} cores busy"
        )
    if "bound" in r:
        parts.append("Amdahl bound " + ", ".join(f"{v:.2f}x on {c} cores" for c, v in r["bound"].items()))
    return f"  {r['world']}: " + "; ".join(parts)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--worlds", default=",".join(WORLDS))
    p.add_argument("--episodes", type=int, default=None, help="CAV worlds: episodes (default: 1, merge 2)")
    p.add_argument("--horizon", type=int, default=None, help="steps per episode (default: the scenario's)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--set", action="append", default=[], help="an extra override for every run")
    p.add_argument("--no-scaling", action="store_true", help="skip the one-core runs")
    p.add_argument("--out", default=None, help="keep the run folders here (default: a temporary folder)")
    args = p.parse_args()
    rows, baselines = [], {}
    with tempfile.TemporaryDirectory(prefix="netmarl-training-") as tmp:
        out = Path(args.out or tmp)
        print(f"{CORES} cores; runs in {out}", flush=True)
        for name in args.worlds.split(","):
            rows.append(measure(name, args, out, baselines))
    print(f"\n{'world':22} {'single':>8} {'netmarl':>8} {'ratio':>6} {'1 core':>8} {'scaling':>7} same scores")
    for r in rows:
        one = r.get("multi_1core", {}).get("steps_per_s")
        print(
            f"{r['world']:22} {r['single']['steps_per_s']:8.1f} {r['multi']['steps_per_s']:8.1f} {r['ratio']:6.2f} "
            f"{one or 0:8.1f} {r.get('scaling', 0):7.2f} {r['same_scores']}"
        )
    print("\nwhere the time goes (CPU milliseconds a step by kind of process, over the measured stretch):")
    for r in rows:
        print(profile_line(r))
    print(json.dumps({"benchmark": "training", "cores": CORES, "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
