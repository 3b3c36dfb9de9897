"""LLM service benchmark: the local models' load time and speed, the sandbox's overheads, and the rate at
which each candidate model's code executes on 20 RELED/eSpark generation tasks.

Targets (issue 5): persistent sandbox worker under 200 us per call for a small mask function. The
execution rate decides the default local model. Run: `python benchmarks/llm.py [--models smollm2,gemma3]`
(`--sandbox-only`: just the sandbox's one-shot and per-call times).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [p for p in (str(ROOT), str(ROOT / "benchmarks")) if p not in sys.path]

import numpy as np  # noqa: E402
from llm_tasks import TASKS  # noqa: E402

from scenarios.llm import LLMClient, LLMConfig, check_contract, extract_code  # noqa: E402
from scenarios.llm.local_server import LocalServer, LocalServerError  # noqa: E402
from scenarios.sandbox import PersistentWorker, Sandbox, SandboxLimits  # noqa: E402

SYSTEM = "You are a careful Python programmer. Reply with exactly one ```python code block and nothing else."
MASK = "def mask(obs):\n    return obs > 0\n"


def sandbox_overheads(calls: int = 2000) -> dict:
    """One-shot run (fresh process) and per-call time of a persistent worker, medians."""
    box = Sandbox(SandboxLimits())
    once = []
    for _ in range(10):
        t = time.perf_counter()
        assert box.run_once(MASK, "mask", (np.arange(10.0) - 5,)).ok
        once.append(time.perf_counter() - t)
    obs = np.arange(10.0) - 5
    with PersistentWorker(MASK, "mask") as worker:
        for _ in range(200):
            worker.call(obs)
        per = []
        for _ in range(calls):
            t = time.perf_counter()
            worker.call(obs)
            per.append(time.perf_counter() - t)
    last = box.run_once(MASK, "mask", (obs,))
    return {
        "one_shot_ms": round(1e3 * statistics.median(once), 2),
        "per_call_us": round(1e6 * statistics.median(per), 1),
        "isolated": last.isolated,
        "network_isolated": last.network_isolated,
    }


def run_task(client: LLMClient, task, box: Sandbox) -> dict:
    """Ask, extract, check the contract, run in the sandbox, check the answer: how far it got."""
    reply = client.complete([{"role": "system", "content": SYSTEM}, {"role": "user", "content": task.prompt()}])
    code = extract_code(reply.text)
    contract = check_contract(code or "", task.func, list(task.params))
    out = {
        "func": task.func,
        "paper": task.paper,
        "tokens": reply.completion_tokens,
        "latency_s": reply.latency_s,
        "extracted": code is not None,
        "contract": contract.ok,
        "check": contract.check,
    }
    if contract.ok:
        result = box.run_once(code, task.func, task.args)
        out.update(executed=result.ok, error=result.error)
        try:
            out["correct"] = bool(result.ok and task.check(result.value))
        except Exception:  # a malformed answer the check cannot even read is simply wrong
            out["correct"] = False
    else:
        out.update(executed=False, correct=False, error=contract.check)
    return out


def measure_model(name: str, log_dir: Path) -> dict:
    t = time.monotonic()
    with LocalServer(model=name, log_path=log_dir / f"{name}.log") as server:
        load_s = time.monotonic() - t
        cfg = LLMConfig(backend="local", base_url=server.base_url, model=name, max_tokens=1, timeout_s=600)
        long_prompt = [{"role": "user", "content": "Summarise. " + "The dispatcher polls robots in zones. " * 290}]
        first = LLMClient(cfg).complete(long_prompt)
        gen_cfg = cfg.model_copy(update={"max_tokens": 128})
        short = [{"role": "user", "content": "Count from 1 to 100, separated by spaces."}]
        gen = LLMClient(gen_cfg).complete(short)
        box = Sandbox(SandboxLimits())
        client = LLMClient(cfg.model_copy(update={"max_tokens": 400}))
        tasks = [run_task(client, task, box) for task in TASKS]
    n = len(tasks)
    return {
        "model": name,
        "load_s": round(load_s, 2),
        "prompt_tokens": first.prompt_tokens,
        "latency_2k_prompt_s": round(first.latency_s, 2),
        "prompt_tok_s": round(first.prompt_tokens / first.latency_s, 1),
        "gen_tok_s": round(gen.completion_tokens / gen.latency_s, 1),
        "extraction_rate": sum(t["extracted"] for t in tasks) / n,
        "contract_rate": sum(t["contract"] for t in tasks) / n,
        "execution_rate": sum(t["executed"] for t in tasks) / n,
        "correct_rate": sum(t["correct"] for t in tasks) / n,
        "tasks": tasks,
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="smollm2,gemma3")
    ap.add_argument("--out", default=str(ROOT / "runs" / "bench_llm"))
    ap.add_argument("--sandbox-only", action="store_true", help="measure the sandbox's overheads only")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sandbox = sandbox_overheads()
    print(
        f"sandbox: one-shot {sandbox['one_shot_ms']} ms, persistent worker {sandbox['per_call_us']} us per call "
        f"(target < 200 us), OS-isolated (bwrap): {sandbox['isolated']}"
    )
    if args.sandbox_only:
        return {"benchmark": "llm", "sandbox": sandbox}
    models = []
    for name in args.models.split(","):
        try:
            models.append(measure_model(name, out))
        except LocalServerError as err:  # e.g. gemma3's packages are not part of `make install`
            print(f"{name}: skipped: {err}")
    print(
        f"{'model':>8} {'load s':>6} {'prompt tok/s':>12} {'2k prompt s':>11} {'gen tok/s':>9} {'extract':>7} "
        f"{'contract':>8} {'executes':>8} {'correct':>7}"
    )
    for m in models:
        print(
            f"{m['model']:>8} {m['load_s']:>6} {m['prompt_tok_s']:>12} {m['latency_2k_prompt_s']:>11} "
            f"{m['gen_tok_s']:>9} {m['extraction_rate']:>7.2f} {m['contract_rate']:>8.2f} "
            f"{m['execution_rate']:>8.2f} {m['correct_rate']:>7.2f}"
        )
    best = max(models, key=lambda m: (m["execution_rate"], m["correct_rate"]))["model"] if models else None
    result = {"benchmark": "llm", "sandbox": sandbox, "models": models, "best_by_execution": best}
    (out / "results.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
