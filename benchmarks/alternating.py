"""ALTERNATING-MARL benchmark, simulator part: reward vs k and Nash gap vs k at n = 1,000 (Alternating-MARL paper,
App. G.1, Fig. 6; the Nash gap: docs/alternating_marl.md, A-6).

Target: the `figure` setting (every setting of the released code, scenarios/warehouse_alternating_fig6.toml) within
2 % of the paper's Fig. 6 (read off the released code's figure: k = 1 83.3, 2 85.0, 5 85.9, 10 87.8, 20 90.2,
35 ~92, 50 93.1) at every k, on the figure's evaluation horizon of 50 (H50); the Nash gap should shrink with k like
c / sqrt(k) (the O~(1/sqrt(k)) of the paper's Theorem 4.8, fitted by least squares).

Settings, side by side:
  paper      the paper's text, the project defaults (scenarios/warehouse_alternating.toml): r_g = 4 - |s_g - a_g|,
             the robots' move reads s_g(t), L-LEARN "ps", UPDATE, pi_g(0) = 0.
  figure     the released code (scenarios/warehouse_alternating_fig6.toml): r_g = 1, the move reads s_g(t + 1),
             L-LEARN "mfvi" (softmax mean-field value iteration), the released outer loop (G-LEARN then L-MFVI per
             iteration, a 20-rollout x horizon-30 check keeps the best pair, reverts when worse by 1 %, stops on a
             < 1 % plateau, at most 5 iterations; G-VI to 1e-6 or 100 sweeps), evaluation horizon 50.
  repo       diagnostic: r_g = 1 and L-MFVI under UPDATE, move reads s_g(t).
  repo_loop  diagnostic: the figure setting with the move reading s_g(t) (the text's timing).
  Code difference that remains in "figure": G-LEARN is the m = 30 sampled operator (the code's is a rounded
  deterministic expectation, m unused). Every return is also reported truncated at t < 50 (the first 50 steps of
  the same rollouts, "H50"): that is the figure's number.

Per (setting, k): ALTERNATING-MARL trained once (training seed 0; --full: once per evaluation seed) with the
setting's AlternatingConfig; then the pair is scored on S seeds x R rollouts x horizon H
(simulator seeds 100 .. 100 + S - 1, unseen in training; defaults 15 x 50 x 100, the paper's): mean and std (ddof 0)
over seeds of the per-seed mean discounted return, and mode-tracking accuracy (a_g == mode of all n robots).
Baselines on the same episodes and pi_l: uniform-random dispatcher, mode-of-sample (same k), full-information
dispatcher (proxy: G-LEARN trained at k = 20 against pi_l, fed the whole n-robot histogram rescaled to 20 robots,
evaluated with k = n; A-6). Runtime: wall time of each training (the Fig. 6 runtime analogue) and the
G-LEARN generative-model samples.

Nash gap (paper setting, training seed 0 pair; A-6), bounded in cost: global best response by G-LEARN with
the exact kernel for k <= 10, m = 300 for k <= 20, m = 100 below 35 and m = 30 at k >= 35, at most the paper's
sweep count (tol 1e-4), warm-started from the trained Q; local best response by L-PS from the incumbent and the
MFVI table (no random restarts, 3 sweeps, 16 rollouts x horizon 50 at n); both judged on 100 paired rollouts x
horizon 100 (simulator seed 2), 95 % bootstrap CI. A lower bound on the true gap.

Budget: the default (k in {1, 2, 5, 10, 20, 35, 50}, n = 1000, 15 x 50 x 100, settings paper and figure, two worker
processes, training seed 0 only) fits in about 15 minutes on the 2-core machine; the cost is dominated by G-LEARN at
k = 35 and 50 (~k^4 histograms). --full (train per seed) multiplies the training part by S and does not fit.
--quick: k in {1, 5}, n = 200, 3 x 10 x 100, ~15 s.
Timing caveat: with --jobs 2 two trainings share the 2 cores; cpu/wall per task and the load average are recorded.

Output: a table on stdout, PNGs reward_vs_k.png, nash_gap_vs_k.png and runtime_vs_k.png plus results.json in
--out (default runs/bench_alternating/), and ONE JSON line at the end of stdout holding all figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from agent_node.learners.alternating.alternating import AlternatingConfig, alternating_marl, derive_seed  # noqa: E402
from agent_node.learners.alternating.g_learn import paper_sweeps  # noqa: E402
from agent_node.learners.alternating.nash_gap import (  # noqa: E402
    ModeOfSample,
    UniformRandomDispatcher,
    full_information_dispatcher,
    global_gap,
    local_gap,
)
from agent_node.overrides import set_fields  # noqa: E402
from agent_node.warehouse.model import WarehouseModel  # noqa: E402
from agent_node.warehouse.simulator import Simulator  # noqa: E402
from scenarios.config import load_scenario  # noqa: E402

PAPER_CURVE = {1: 83.3, 2: 85.0, 5: 85.9, 10: 87.8, 20: 90.2, 35: 92.0, 50: 93.1}  # Fig. 6 (repo figure); 35 ~
TARGET_TOL, TARGET_SETTING = 0.02, "figure"
FIGURE = load_scenario(ROOT / "scenarios" / "warehouse_alternating_fig6.toml", [])  # the preset, read not copied
SETTINGS = {  # (WarehouseModel fields, AlternatingConfig fields)
    "paper": ({}, dict(l_solver="ps", init_pi_g="zero")),
    "figure": (FIGURE.world.model.model_dump(), set_fields(FIGURE.algo.train)),
    "repo": (dict(global_reward="repo"), dict(l_solver="mfvi", init_pi_g="zero")),
    "repo_loop": ({**FIGURE.world.model.model_dump(), "local_transition": "current"}, set_fields(FIGURE.algo.train)),
}
EVAL_SEED0 = 100  # evaluation seeds 100.. (UPDATE's own evaluation set is simulator seed 1, the Nash gap's seed 2)
H_SHORT = 50  # the released code's evaluation horizon
FULL_INFO_K = 20
DEFAULTS = dict(ks="1,2,5,10,20,35,50", n=1000, seeds=15, rollouts=50, horizon=100, settings="paper,figure")
QUICK = dict(ks="1,5", n=200, seeds=3, rollouts=10, horizon=100, settings="paper,figure")
QUICK_TRAIN = dict(eval_rollouts=20, l_rollouts=8, n_steps=4)
NASH = dict(rollouts=100, horizon=100, eval_seed=2, restarts=0, sweeps=3, ps_rollouts=16, ps_horizon=50)
QUICK_NASH = dict(rollouts=20, horizon=100, eval_seed=2, restarts=0, sweeps=1, ps_rollouts=8, ps_horizon=30)


# ---------------------------------------------------------------------------------------------- training
def train(setting: str, model: WarehouseModel, n: int, k: int, seed: int, overrides: dict) -> dict:
    """One training run of the setting: {pi_g, pi_l, q, seconds, g_samples, info}."""
    cfg = AlternatingConfig(n=n, k=k, seed=seed, **{**SETTINGS[setting][1], **overrides})
    r = alternating_marl(model, cfg)
    decisions = [f"{x.player}:{x.decision}" for x in r.log]
    return dict(
        pi_g=r.pi_g,
        pi_l=r.pi_l,
        q=r.q,
        seconds=r.seconds,
        g_samples=r.g_samples,
        info={
            "loop": cfg.loop,
            "stop": r.stop,
            "sweeps": r.sweeps,
            "decisions": decisions,
            "g_accepted": sum(d == "g:accept" for d in decisions),
            "l_accepted": sum(d == "l:accept" for d in decisions),
            "l_evaluations": r.l_evaluations,
            "train_value": r.value,
            "initial_value": r.initial_value,
        },
    )


# ---------------------------------------------------------------------------------------------- evaluation
def score(
    model: WarehouseModel, n: int, k_eval: int, pairs: list, seeds: list[int], rollouts: int, horizon: int
) -> dict:
    """pairs[i] = (pi_g, pi_l) evaluated on simulator seed seeds[i]: per-seed mean return (H and H50), mode acc."""
    g = model.gamma ** np.arange(horizon)
    h50 = min(H_SHORT, horizon)
    per, per50, acc = [], [], []
    for (pi_g, pi_l), s in zip(pairs, seeds):
        r = Simulator(model, n, s).run(pi_g, pi_l, k_eval, np.arange(rollouts), horizon)
        per.append(float(r.returns.mean()))
        per50.append(float((r.rewards[:, :h50] @ g[:h50]).mean()))
        acc.append(float(r.mode_hits.mean()))
    return {
        "mean": float(np.mean(per)),
        "std": float(np.std(per)),
        "mean_h50": float(np.mean(per50)),
        "std_h50": float(np.std(per50)),
        "mode_acc": float(np.mean(acc)),
        "per_seed": per,
    }


def nash_budget(model: WarehouseModel, k: int, quick: bool) -> dict:
    """G-LEARN settings of the global best response (cost bounded at large k; see the docstring)."""
    if k <= 10:
        return dict(estimator="exact", m=1, tol=1e-6, max_sweeps=2000)
    m = 30 if quick or k >= 35 else 300 if k <= 20 else 100
    return dict(estimator="sampled", m=m, tol=1e-4, max_sweeps=paper_sweeps(model, k))


def run_task(task: dict) -> dict:
    """Train, score the pair and the baselines, and (if asked) the Nash gap, for one (setting, k)."""
    t_wall, t_cpu = time.perf_counter(), time.process_time()
    setting, k, n = task["setting"], task["k"], task["n"]
    model = WarehouseModel(**SETTINGS[setting][0])
    seeds = [EVAL_SEED0 + i for i in range(task["seeds"])]
    ev = dict(seeds=seeds, rollouts=task["rollouts"], horizon=task["horizon"])
    runs = [train(setting, model, n, k, s, task["train"]) for s in task["train_seeds"]]
    pairs = [
        (runs[i if len(runs) > 1 else 0]["pi_g"], runs[i if len(runs) > 1 else 0]["pi_l"]) for i in range(len(seeds))
    ]
    out = {
        "setting": setting,
        "k": k,
        "train_s": [r["seconds"] for r in runs],
        "g_samples": [r["g_samples"] for r in runs],
        "train_info": [r["info"] for r in runs],
        "trained": score(model, n, k, pairs, **ev),
    }
    t_base = time.perf_counter()
    if task["baselines"]:
        pil = [p[1] for p in pairs]
        out["uniform"] = score(
            model, n, k, [(UniformRandomDispatcher(model.zones, seed=s), pl) for s, pl in zip(seeds, pil)], **ev
        )
        out["mode_of_sample"] = score(model, n, k, [(ModeOfSample(), pl) for pl in pil], **ev)
        full = {
            i: full_information_dispatcher(
                model,
                runs[i]["pi_l"],
                n,
                k_max=task["full_info_k"],
                m=30,
                seed=derive_seed(task["train_seeds"][i], 3, k),
            )[0]
            for i in range(len(runs))
        }
        out["full_info"] = score(model, n, n, [(full[i if len(runs) > 1 else 0], pl) for i, pl in enumerate(pil)], **ev)
    out["baselines_s"] = time.perf_counter() - t_base
    if task["nash"]:
        nb, nk = task["nash"], nash_budget(model, k, task["quick"])
        pi_g, pi_l, q = runs[0]["pi_g"], runs[0]["pi_l"], runs[0]["q"]
        common = dict(n=n, eval_seed=nb["eval_seed"], rollouts=nb["rollouts"], horizon=nb["horizon"])
        gg = global_gap(model, pi_g, pi_l, k, q_init=q if nk["estimator"] == "sampled" else None, **nk, **common)
        lg = local_gap(
            model,
            pi_g,
            pi_l,
            k,
            restarts=nb["restarts"],
            sweeps=nb["sweeps"],
            ps_rollouts=nb["ps_rollouts"],
            ps_horizon=nb["ps_horizon"],
            **common,
        )
        out["nash"] = {
            "gap": max(gg.gap, lg.gap),
            "value": gg.value,
            "global": {
                "gap": gg.gap,
                "diff": gg.diff,
                "ci": list(gg.ci),
                "seconds": gg.seconds,
                "estimator": nk["estimator"],
                "m": nk["m"],
                "sweeps": gg.info["sweeps"],
                "residual": gg.info["residual"],
            },
            "local": {
                "gap": lg.gap,
                "diff": lg.diff,
                "ci": list(lg.ci),
                "seconds": lg.seconds,
                "evaluations": int(lg.info["evaluations"]),
            },
        }
    out["task_wall_s"] = time.perf_counter() - t_wall
    out["task_cpu_s"] = time.process_time() - t_cpu
    return out


# ---------------------------------------------------------------------------------------------- report
def fit_c(ks: list[int], gaps: list[float]) -> float | None:
    """Least-squares c of gap = c / sqrt(k)."""
    if not ks:
        return None
    x = 1.0 / np.sqrt(np.asarray(ks, dtype=float))
    return float(x @ np.asarray(gaps) / (x @ x))


def targets(results: dict) -> dict:
    """Ratio to the paper's Fig. 6 at every k of the figure for the settings with r_g = 1 (H and H50); the target is
    the `figure` setting on H50, the figure's horizon."""
    out = {}
    for setting in (st for st in SETTINGS if st != "paper"):
        rows = {}
        for k, paper in PAPER_CURVE.items():
            r = results.get(setting, {}).get(k)
            if r is None:
                continue
            ratio, ratio50 = r["trained"]["mean"] / paper, r["trained"]["mean_h50"] / paper
            rows[k] = {
                "paper": paper,
                "value": r["trained"]["mean"],
                "ratio": ratio,
                "pass": abs(ratio - 1) <= TARGET_TOL,
                "value_h50": r["trained"]["mean_h50"],
                "ratio_h50": ratio50,
                "pass_h50": abs(ratio50 - 1) <= TARGET_TOL,
            }
        if rows:
            out[setting] = {
                "ks": rows,
                "pass": all(v["pass"] for v in rows.values()),
                "pass_h50": all(v["pass_h50"] for v in rows.values()),
                "complete": len(rows) == len(PAPER_CURVE),
            }
    return out


def fmt(s: dict | None, key: str = "mean") -> str:
    if s is None:
        return "-"
    std = s["std" if key == "mean" else "std_h50"]
    return f"{s[key]:6.1f}±{std:3.1f}"


def print_tables(results: dict, ks: list[int], settings: list[str], tgt: dict, c: float | None) -> None:
    print(
        "\nReward vs k: mean ± std over seeds of the per-seed mean discounted return (H = horizon; H50 = first 50 "
        "steps of the same rollouts)"
    )
    head = f"{'k':>3} {'paper':>6}"
    for st in settings:
        head += f" {st + ' H':>13} {st + ' H50':>13}"
    print(head)
    for k in ks:
        line = f"{k:>3} {PAPER_CURVE.get(k, float('nan')):>6.1f}"
        for st in settings:
            r = results.get(st, {}).get(k)
            line += f" {fmt(r and r['trained']):>13} {fmt(r and r['trained'], 'mean_h50'):>13}"
        print(line)
    for st in settings:
        if not any("uniform" in results[st].get(k, {}) for k in ks):
            continue
        print(f"\nBaselines, setting {st} (same episodes and pi_l; mean ± std over seeds, H; mode-tracking accuracy)")
        print(
            f"{'k':>3} {'trained':>12} {'uniform':>12} {'mode-of-smp':>12} {'full-info':>12} "
            f"{'acc tr':>6} {'acc unif':>8} {'acc mos':>7} {'acc full':>8}"
        )
        for k in ks:
            r = results[st].get(k)
            if r is None or "uniform" not in r:
                continue
            print(
                f"{k:>3} {fmt(r['trained']):>12} {fmt(r['uniform']):>12} {fmt(r['mode_of_sample']):>12} "
                f"{fmt(r['full_info']):>12} {r['trained']['mode_acc']:>6.2f} {r['uniform']['mode_acc']:>8.2f} "
                f"{r['mode_of_sample']['mode_acc']:>7.2f} {r['full_info']['mode_acc']:>8.2f}"
            )
    nash = {k: results["paper"][k]["nash"] for k in ks if "nash" in results.get("paper", {}).get(k, {})}
    if nash:
        print("\nNash gap, paper setting (lower bound; 95 % bootstrap CI): max(global, local), fit c/sqrt(k)")
        print("(dev-inc = mean paired return of the best-response deviation minus the incumbent; gap = max(0, it))")
        print(
            f"{'k':>3} {'global':>7} {'CI':>15} {'dev-inc':>8} {'BR':>13} {'local':>7} {'CI':>15} {'dev-inc':>8} "
            f"{'gap':>7} {'c/sqrt k':>8} {'gap s':>6}"
        )
        for k, g in nash.items():
            gg, lg = g["global"], g["local"]
            br = f"{gg['estimator'][:5]} m={gg['m']}" if gg["estimator"] == "sampled" else "exact"
            print(
                f"{k:>3} {gg['gap']:>7.2f} {'[%.2f, %.2f]' % tuple(gg['ci']):>15} {gg['diff']:>8.2f} {br:>13} "
                f"{lg['gap']:>7.2f} {'[%.2f, %.2f]' % tuple(lg['ci']):>15} {lg['diff']:>8.2f} {g['gap']:>7.2f} "
                f"{(c / math.sqrt(k) if c is not None else float('nan')):>8.2f} "
                f"{gg['seconds'] + lg['seconds']:>6.0f}"
            )
        print(f"least-squares c = {c:.3f}" if c is not None else "")
    print(
        "\nTraining runtime (Fig. 6 analogue; seed 0): wall s, G-LEARN samples, UPDATE decisions / loop iterations; "
        "task cpu/wall"
    )
    for st in settings:
        print(f"  setting {st}")
        for k in ks:
            r = results[st].get(k)
            if r is None:
                continue
            info = r["train_info"][0]
            what = f"loop={info['loop']} stop={info['stop']} sweeps={info['sweeps']}"
            if info["loop"] == "update":
                what += f" G acc={info['g_accepted']} L acc={info['l_accepted']}"
            print(
                f"  {k:>3} {r['train_s'][0]:>8.1f} s {r['g_samples'][0]:>11,d} samples  {what}  "
                f"task {r['task_wall_s']:.0f} s, cpu/wall {r['task_cpu_s'] / r['task_wall_s']:.2f}"
            )
    for st, t in tgt.items():
        parts = [
            f"k={k}: H50 {v['value_h50']:.1f}/{v['paper']:.1f} = {v['ratio_h50']:.3f} "
            f"({'ok' if v['pass_h50'] else 'MISS'}); H {v['value']:.1f} = {v['ratio']:.3f}"
            for k, v in t["ks"].items()
        ]
        label = "TARGET" if st == TARGET_SETTING else "diagnostic"
        verdict = ("PASS" if t["pass_h50"] else "MISS") if t["complete"] else "incomplete"
        print(f"{label} ({st}) reward within {TARGET_TOL:.0%} of Fig. 6 at every k, horizon 50: {verdict}")
        for p in parts:
            print("   " + p)


def plot(results: dict, ks: list[int], settings: list[str], c: float | None, out: Path) -> list[str]:
    """reward_vs_k.png, nash_gap_vs_k.png, runtime_vs_k.png."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    panels = [st for st in ("paper", "figure") if st in settings] or settings[:1]
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    for ax, st in zip(axes[0], panels):
        pk = sorted(PAPER_CURVE)
        if SETTINGS[st][0].get("global_reward") == "repo":  # the figure is the released code's (r_g = 1)
            ax.plot(pk, [PAPER_CURVE[k] for k in pk], "k*--", label="paper Fig. 6 (H = 50)")
            ax.fill_between(
                pk,
                [PAPER_CURVE[k] * (1 - TARGET_TOL) for k in pk],
                [PAPER_CURVE[k] * (1 + TARGET_TOL) for k in pk],
                color="0.85",
                label="±2 %",
            )
        series = [(st, "trained", "o-", "C0", f"{st}: ALTERNATING-MARL")]
        if st == "figure" and "repo_loop" in settings:
            series.append(("repo_loop", "trained", "s-", "C1", "repo_loop (move reads s_g(t))"))
        series += [
            (st, "uniform", "x:", "C2", "uniform random"),
            (st, "mode_of_sample", "^:", "C3", "mode of sample"),
            (st, "full_info", "v:", "C4", "full information (proxy)"),
        ]
        for src, key, style, color, label in series:
            pts = [(k, results[src][k][key]) for k in ks if key in results.get(src, {}).get(k, {})]
            if pts:
                ax.errorbar(
                    [p[0] for p in pts],
                    [p[1]["mean"] for p in pts],
                    yerr=[p[1]["std"] for p in pts],
                    fmt=style,
                    color=color,
                    capsize=3,
                    label=label + " (H)",
                )
                if key == "trained":
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1]["mean_h50"] for p in pts],
                        style[0] + "--",
                        alpha=0.5,
                        color=color,
                        label=label + " (H50)",
                    )
        ax.set_xlabel("k (robots polled per step)")
        ax.set_ylabel("discounted return")
        ax.set_title(f"setting {st}")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(str(out / "reward_vs_k.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)

    nash = {k: results["paper"][k]["nash"] for k in ks if "nash" in results.get("paper", {}).get(k, {})}
    if nash:
        fig, ax = plt.subplots(figsize=(6.5, 4.5))
        kk = np.array(list(nash))
        for key, style in (("global", "o"), ("local", "s")):
            v = np.array([nash[k][key]["gap"] for k in kk])
            ci = np.array([nash[k][key]["ci"] for k in kk])
            ax.errorbar(kk, v, yerr=[v - ci[:, 0], ci[:, 1] - v], fmt=style, capsize=3, label=f"{key} gap")
        ax.plot(kk, [nash[k]["gap"] for k in kk], "k-", alpha=0.4, label="Nash gap = max")
        if c is not None:
            x = np.linspace(kk.min(), kk.max(), 200)
            ax.plot(x, c / np.sqrt(x), "r--", label=f"c/sqrt(k), c = {c:.2f}")
        ax.set_xlabel("k")
        ax.set_ylabel("gap (discounted return)")
        ax.set_title("empirical Nash gap, paper setting (lower bound)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        paths.append(str(out / "nash_gap_vs_k.png"))
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for st in settings:
        pts = [(k, results[st][k]["train_s"][0]) for k in ks if k in results.get(st, {})]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=st)
    ax.set_yscale("log")
    ax.set_xlabel("k")
    ax.set_ylabel("training wall time (s)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    paths.append(str(out / "runtime_vs_k.png"))
    fig.savefig(paths[-1], dpi=120)
    plt.close(fig)
    return paths


def load_distributed():
    """benchmarks/alternating_distributed.py (imported before the sweep, so that a missing module fails fast)."""
    here = str(Path(__file__).resolve().parent)
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        mod = importlib.import_module("alternating_distributed")
    except ModuleNotFoundError as e:
        if e.name != "alternating_distributed":
            raise
        raise SystemExit(
            "--distributed needs benchmarks/alternating_distributed.py (exposing "
            "run_distributed(ns: list[int], k: int) -> dict); it is not there"
        ) from None
    if not callable(getattr(mod, "run_distributed", None)):
        raise SystemExit("benchmarks/alternating_distributed.py has no run_distributed(ns, k)")
    return mod


# ---------------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    """Run the sweep, print the tables and one JSON line; return that dict."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: k 1,5, n 200, 3 seeds x 10 rollouts")
    ap.add_argument("--full", action="store_true", help="paper budget: train once per evaluation seed")
    ap.add_argument("--ks", help=f"comma-separated k values (default {DEFAULTS['ks']})")
    ap.add_argument("--n", type=int, help="robots (default 1000)")
    ap.add_argument("--seeds", type=int, help="evaluation seeds S (default 15)")
    ap.add_argument("--rollouts", type=int, help="rollouts per seed R (default 50)")
    ap.add_argument("--horizon", type=int, help="evaluation horizon H (default 100)")
    ap.add_argument("--settings", help=f"comma-separated, of {','.join(SETTINGS)} (default all)")
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument("--no-nash", action="store_true")
    ap.add_argument("--full-info-k", type=int, default=FULL_INFO_K, help="k the full-information proxy is trained at")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes, one (setting, k) task each (1: in-process)")
    ap.add_argument("--out", default="runs/bench_alternating", help="folder for the PNGs and results.json")
    ap.add_argument("--distributed", help="N1,N2,...: also run benchmarks/alternating_distributed.run_distributed")
    ap.add_argument("--distributed-k", type=int, default=10, help="k for --distributed")
    args = ap.parse_args(argv)
    base = QUICK if args.quick else DEFAULTS
    ks = [int(x) for x in (args.ks or base["ks"]).split(",") if x]
    n = args.n or base["n"]
    n_seeds, rollouts, horizon = (
        args.seeds or base["seeds"],
        args.rollouts or base["rollouts"],
        args.horizon or base["horizon"],
    )
    settings = [s for s in (args.settings or base["settings"]).split(",") if s]
    bad = [s for s in settings if s not in SETTINGS] + [k for k in ks if not 1 <= k <= n]
    if bad:
        ap.error(f"unknown setting or k out of 1..n: {bad}")
    dist_ns = [int(x) for x in args.distributed.split(",") if x] if args.distributed else []
    dist_mod = load_distributed() if dist_ns else None
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t0, load0 = time.perf_counter(), os.getloadavg()
    train_overrides = QUICK_TRAIN if args.quick else {}
    nash_cfg = QUICK_NASH if args.quick else NASH
    tasks = [
        dict(
            setting=st,
            k=k,
            n=n,
            seeds=n_seeds,
            rollouts=rollouts,
            horizon=horizon,
            quick=args.quick,
            train_seeds=list(range(n_seeds)) if args.full else [0],
            train=train_overrides,
            baselines=not args.no_baselines and st != "repo_loop",
            full_info_k=args.full_info_k,
            nash=nash_cfg if st == "paper" and not args.no_nash else None,
        )
        for st in settings
        for k in ks
    ]
    tasks.sort(key=lambda t: (-t["k"], t["setting"]))  # the costly large k first: better packing on the workers
    results: dict[str, dict[int, dict]] = {st: {} for st in settings}

    def done(r: dict) -> None:
        results[r["setting"]][r["k"]] = r
        print(
            f"[{time.perf_counter() - t0:7.1f} s] {r['setting']:<9} k={r['k']:<3} trained "
            f"{r['trained']['mean']:.2f} (H50 {r['trained']['mean_h50']:.2f})  train {r['train_s'][0]:.1f} s  "
            f"task {r['task_wall_s']:.0f} s",
            file=sys.stderr,
            flush=True,
        )

    if args.jobs <= 1:
        for t in tasks:
            done(run_task(t))
    else:
        saved = {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ.update(dict.fromkeys(saved, "1"))  # one core per worker (inherited by the spawned children)
        try:
            with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
                for fut in as_completed([pool.submit(run_task, t) for t in tasks]):
                    done(fut.result())
        finally:
            for v, old in saved.items():
                if old is None:
                    os.environ.pop(v, None)
                else:
                    os.environ[v] = old

    nash_ks = [k for k in ks if "nash" in results.get("paper", {}).get(k, {})]
    c = fit_c(nash_ks, [results["paper"][k]["nash"]["gap"] for k in nash_ks])
    tgt = targets(results)
    print_tables(results, ks, settings, tgt, c)
    pngs = plot(results, ks, settings, c, out)
    wall = time.perf_counter() - t0
    distributed = None
    if dist_mod is not None:
        distributed = dist_mod.run_distributed(dist_ns, args.distributed_k)
        print(f"distributed part (k = {args.distributed_k}, n = {dist_ns}): {time.perf_counter() - t0 - wall:.0f} s")
    load1 = os.getloadavg()
    busy = sum(r["task_wall_s"] for st in results.values() for r in st.values())
    print(
        f"\nwall time {wall:.0f} s ({wall / 60:.1f} min) with {args.jobs} worker(s); summed task time {busy:.0f} s; "
        f"load average at start {load0[0]:.2f}, at end {load1[0]:.2f} (cpus {os.cpu_count()})"
    )
    print(f"figures: {', '.join(pngs)}")

    def slim(r: dict) -> dict:
        return {key: v for key, v in r.items() if key not in ("setting", "k")}

    report = {
        "benchmark": "alternating",
        "mode": "quick" if args.quick else "full" if args.full else "default",
        "n": n,
        "ks": ks,
        "seeds": n_seeds,
        "rollouts": rollouts,
        "horizon": horizon,
        "settings": settings,
        "train_seeds": "per evaluation seed" if args.full else [0],
        "eval_seeds": [EVAL_SEED0, EVAL_SEED0 + n_seeds - 1],
        "train_overrides": train_overrides,
        "nash_budget": nash_cfg if not args.no_nash else None,
        "full_info_k": args.full_info_k,
        "paper_curve": PAPER_CURVE,
        "results": {st: {str(k): slim(r) for k, r in sorted(v.items())} for st, v in results.items()},
        "nash_fit_c": c,
        "target": tgt,
        "wall_s": wall,
        "jobs": args.jobs,
        "task_s_sum": busy,
        "loadavg_start": load0,
        "loadavg_end": load1,
        "cpus": os.cpu_count(),
        "figures": pngs,
    }
    if distributed is not None:
        report["distributed"] = distributed
    (out / "results.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
    sys.exit(0)
