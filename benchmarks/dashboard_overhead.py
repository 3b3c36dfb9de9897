"""What watching a run costs it: the beacon scenario's steps/s without the live view, with it (live.jsonl and the
medium's reports each second), with `netmarl run --dashboard` and a client on its event stream, and with a real
browser (headless chromium) showing the page. The variants take turns (each repeated, the order rotated, a pause
between runs), on one machine, in one go; besides the world's steps/s, the CPU seconds the dashboard's server
(and the browser) used, which on a machine the run keeps busy are what it loses.

    python benchmarks/dashboard_overhead.py --steps 2000 --reps 6 --variants off,live,dashboard
    python benchmarks/dashboard_overhead.py --steps 2000 --reps 3 --variants off,browser --results .../browser
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "figure8_beacons.toml"
RESULTS = ROOT / "benchmarks" / "results" / "dashboard"
VARIANTS = ("off", "live", "dashboard", "browser")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the dashboard on port {port} never answered")


def follow_stream(url: str, stop: threading.Event, counts: list) -> None:
    """A client of the page's event stream (what a browser's EventSource receives), counting the updates."""
    while not stop.is_set():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                while not stop.is_set():
                    line = r.readline()
                    if not line:
                        break
                    if line.startswith(b"data: "):
                        counts[0] += 1
        except OSError:
            time.sleep(0.2)


def open_browser(url: str):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = shutil.which("chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)
    driver.get(url)
    return driver


def one_run(out: Path, variant: str, steps: int) -> dict:
    """One beacon run in this variant: the world's steps/s, and how many updates the watcher got."""
    args = [sys.executable, "-m", "coordinator.cli", "run", str(SCENARIO), "--out", str(out), "--no-progress"]
    args += ["--set", f"run.steps={steps}", "--set", f"run.live={'false' if variant == 'off' else 'true'}"]
    port = free_port()
    if variant in ("dashboard", "browser"):
        args += ["--dashboard", "--dashboard-port", str(port)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stop, counts, watcher, driver = threading.Event(), [0], None, None
    cpu = {"dashboard": 0.0, "browser": 0.0, "run": 0.0}
    meter = threading.Thread(target=measure_cpu, args=(proc.pid, stop, cpu), daemon=True)
    meter.start()
    try:
        if variant == "dashboard":
            wait_port(port)
            watcher = threading.Thread(
                target=follow_stream, args=(f"http://127.0.0.1:{port}/api/stream", stop, counts), daemon=True
            )
            watcher.start()
        elif variant == "browser":
            wait_port(port)
            driver = open_browser(f"http://127.0.0.1:{port}/")
        _, err = proc.communicate(timeout=3600)
        if driver is not None:
            counts[0] = driver.execute_script("return window.netmarl.updates")
            browser_cpu = [psutil.Process(driver.service.process.pid)]
            browser_cpu += browser_cpu[0].children(recursive=True)
            cpu["browser"] = sum(cpu_seconds(p) for p in browser_cpu)
    finally:
        stop.set()
        meter.join()
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            proc.kill()
    if proc.returncode != 0:
        raise SystemExit(f"{out}: exit code {proc.returncode}\n{err[-3000:]}")
    summary = json.loads((out / "summary.json").read_text())
    return {
        "variant": variant,
        "steps_per_s": summary["steps_per_s"],
        "wall_s": summary["wall_s"],
        "updates": counts[0],
        "run_cpu_s": round(cpu["run"], 2),
        "run_cpu_s_per_1000_steps": round(1000 * cpu["run"] / summary["steps"], 3),
        "dashboard_cpu_s": round(cpu["dashboard"], 2),
        "browser_cpu_s": round(cpu["browser"], 2),
    }


def cpu_seconds(process) -> float:
    try:
        t = process.cpu_times()
    except psutil.Error:
        return 0.0
    return t.user + t.system


def measure_cpu(run_pid: int, stop: threading.Event, cpu: dict) -> None:
    """The CPU seconds of every process under the run (the dashboard's apart), each read until it ends: the last
    reading of each pid stands (a process's final quarter second is missed, alike in every variant)."""
    seen: dict[int, tuple[bool, float]] = {}
    while not stop.is_set():
        try:
            kids = [psutil.Process(run_pid), *psutil.Process(run_pid).children(recursive=True)]
        except psutil.Error:
            break
        for kid in kids:
            try:
                dashboard = seen[kid.pid][0] if kid.pid in seen else "dashboard" in kid.cmdline()
                seen[kid.pid] = (dashboard, max(seen.get(kid.pid, (dashboard, 0.0))[1], cpu_seconds(kid)))
            except psutil.Error:
                continue
        time.sleep(0.25)
    cpu["dashboard"] = sum(t for dashboard, t in seen.values() if dashboard)
    cpu["run"] = sum(t for dashboard, t in seen.values() if not dashboard)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--pause", type=float, default=5.0, help="seconds between runs")
    p.add_argument("--out", default="runs/bench-dashboard")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args()
    variants = args.variants.split(",")
    base = Path(args.out)
    base.mkdir(parents=True, exist_ok=True)
    rows = []
    for rep in range(args.reps):
        order = variants[rep % len(variants) :] + variants[: rep % len(variants)]  # each variant early and late
        for variant in order:
            time.sleep(args.pause)  # what the last run left (a browser closing, files flushed) settles
            out = base / f"{variant}-{rep}-{int(time.time())}"
            row = {**one_run(out, variant, args.steps), "rep": rep}
            rows.append(row)
            print(json.dumps(row), flush=True)
    baseline = statistics.mean(r["steps_per_s"] for r in rows if r["variant"] == variants[0])
    cpu_baseline = statistics.mean(r["run_cpu_s_per_1000_steps"] for r in rows if r["variant"] == variants[0])
    table = []
    for variant in variants:
        rates = [r["steps_per_s"] for r in rows if r["variant"] == variant]
        per_step = [r["run_cpu_s_per_1000_steps"] for r in rows if r["variant"] == variant]
        mine = [r for r in rows if r["variant"] == variant]
        wall = sum(r["wall_s"] for r in mine)
        table.append(
            {
                "variant": variant,
                "steps_per_s_mean": round(statistics.mean(rates), 2),
                "steps_per_s_sd": round(statistics.stdev(rates), 2) if len(rates) > 1 else None,
                "steps_per_s_runs": rates,
                "ratio_to_" + variants[0]: round(statistics.mean(rates) / baseline, 4),
                # the run's own processes: CPU seconds per 1000 world steps (steadier than steps/s on a shared host)
                "run_cpu_s_per_1000_steps_mean": round(statistics.mean(per_step), 3),
                "run_cpu_s_per_1000_steps_sd": round(statistics.stdev(per_step), 3) if len(per_step) > 1 else None,
                "run_cpu_ratio_to_" + variants[0]: round(statistics.mean(per_step) / cpu_baseline, 4),
                # CPU the watcher took, as a share of one core over the run's wall time
                "dashboard_core_share": round(sum(r["dashboard_cpu_s"] for r in mine) / wall, 4),
                "browser_core_share": round(sum(r["browser_cpu_s"] for r in mine) / wall, 4),
            }
        )
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    (results / "overhead.json").write_text(json.dumps({"steps": args.steps, "runs": rows, "table": table}, indent=1))
    for t in table:
        print(t)
    return 0


if __name__ == "__main__":
    sys.exit(main())
