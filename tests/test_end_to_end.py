"""End to end: `netmarl run` and `netmarl sweep` of the beacon scenario, checked against the channel model."""

from __future__ import annotations

import csv
import json
import math

from conftest import SCENARIO, metrics, run_cli

from coordinator.report import delivery_by_distance, read_links_csv, run_status
from coordinator.sweep import finished
from netsim.channel import Channel
from scenarios.config import load_scenario


def _check_against_model(run_dir, min_attempts=300):
    """Every well-populated distance bin agrees with the model curve (binomial error + bin-width slack)."""
    cfg = load_scenario(run_dir / "config.toml")
    channel = Channel(cfg.netsim, 0)
    checked = 0
    for kind, bins in delivery_by_distance(read_links_csv(run_dir / "links.csv")).items():
        for d, (attempts, delivered, size) in bins.items():
            if attempts < min_attempts:
                continue
            lo, hi = (
                channel.message_probability(max(d - 5, 0), int(size)),
                channel.message_probability(d + 5, int(size)),
            )
            p = channel.message_probability(d, int(size))
            se = math.sqrt(max(p * (1 - p), 1e-4) / attempts)
            measured = delivered / attempts
            assert min(lo, hi) - 4.5 * se <= measured <= max(lo, hi) + 4.5 * se, (kind, d, measured, p)
            checked += 1
    return checked


def test_beacon_run_under_a_minute_matches_model(shared_run):
    out, elapsed = shared_run(SCENARIO, "run.steps=300")  # shared with test_dashboard.py and test_tensorboard.py
    assert elapsed < 60, f"took {elapsed:.1f} s"
    for name in ("config.toml", "metrics.jsonl", "links.csv", "summary.json", "plots/delivery_vs_distance.png"):
        assert (out / name).exists(), name
    assert len(list((out / "logs").glob("*.log"))) == 17  # coordinator, world, medium, 14 agents
    assert "run started" in (out / "logs" / "coordinator.log").read_text()
    assert _check_against_model(out) >= 8
    rows = list(csv.DictReader(open(out / "links.csv")))
    assert {r["type"] for r in rows} == {"beacon", "payload"}
    summary = json.loads((out / "summary.json").read_text())
    beacon, payload = summary["links"]["beacon"], summary["links"]["payload"]
    assert beacon["sent"] == 14 * 300 * 13  # every node beacons every step to 13 others
    assert payload["delivery_ratio"] < beacon["delivery_ratio"]  # fragmentation of 50 kB into 34 fragments
    # what the medium delivered is exactly what the agents counted as received
    finals = [m for m in metrics(out) if m["kind"] == "beacon_node" and m["final"]]
    received = sum(m["beacons_rx"] for m in finals)
    assert len(finals) == 14
    assert beacon["delivered"] == received
    # the time model: sent at step t with latency L, read at the first step >= t + L (here the next one)
    assert all(abs(m["beacon_age_ms"] - 100.0) < 1e-6 for m in finals)


def test_same_seed_same_drops(tmp_path):
    runs = []
    for name in ("a", "b"):
        out = tmp_path / name
        res = run_cli("run", str(SCENARIO), "--out", str(out), "--set", "run.steps=80", "--seed", "5", "--no-progress")
        assert res.returncode == 0, res.stderr[-2000:]
        runs.append([r for r in csv.DictReader(open(out / "links.csv")) if r["type"] == "beacon"])
    strip = lambda rows: [{k: v for k, v in r.items() if k != "latency_sum_s"} for r in rows]  # noqa: E731
    assert strip(runs[0]) == strip(runs[1])
    assert sum(int(r["delivered"]) for r in runs[0]) < sum(int(r["sent"]) for r in runs[0])  # something was dropped


def test_direct_mode_bypasses_the_medium(tmp_path):
    out = tmp_path / "direct"
    res = run_cli(
        "run", str(SCENARIO), "--out", str(out), "--set", "run.steps=60", "--set", "netsim.mode=direct", "--no-progress"
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert not (out / "logs" / "medium.log").exists()
    finals = [m for m in metrics(out) if m["kind"] == "beacon_node" and m["final"]]
    assert len(finals) == 14
    assert all(m["beacons_rx"] >= 13 * 55 for m in finals)  # lossless: nearly every beacon of 13 peers
    links = json.loads((out / "summary.json").read_text())["links"]  # per-link counts from the agents
    assert links["beacon"]["sent"] == 14 * 13 * 60 and links["beacon"]["delivered"] >= 14 * 13 * 59


def test_sweep_over_channel_models(tmp_path):
    out = tmp_path / "sweep"
    res = run_cli(
        "sweep",
        str(SCENARIO),
        "--grid",
        "netsim.model=unit_disk,ieee80211p,cv2x",
        "--set",
        "run.steps=60",
        "--set",
        "netsim.range_m=90",
        "--out",
        str(out),
        "--no-progress",
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    rows = list(csv.DictReader(open(out / "sweep.csv")))
    assert [r["netsim.model"] for r in rows] == ["unit_disk", "ieee80211p", "cv2x"]
    assert (out / "sweep.png").stat().st_size > 10_000
    ratio = {r["netsim.model"]: float(r["beacon_delivery_ratio"]) for r in rows}
    assert ratio["ieee80211p"] < ratio["cv2x"] < ratio["unit_disk"] < 1.0  # the 90 m cut drops far pairs
    for row in read_links_csv(out / "model=unit_disk" / "links.csv"):  # unit disk: all or nothing at 90 m
        if row["distance_m"] < 90:
            assert row["delivered"] == row["sent"] - row["dropped_shutdown"], row
        else:
            assert row["delivered"] == 0 and row["dropped_range"] == row["sent"], row
    report = run_cli("report", str(out / "model=cv2x"))
    assert report.returncode == 0 and "beacon" in report.stdout


def test_a_run_counts_as_finished_by_its_summary_status(tmp_path):
    """A sweep (and the benchmarks) resume past a point only when its summary.json says it ended."""
    cases = {"none": None, "torn": '{"status": "o', "ok": '{"status": "ok"}', "failed": '{"status": "failed: x"}'}
    cases["degraded"] = '{"status": "degraded: veh2 lost"}'
    for name, text in cases.items():
        (tmp_path / name).mkdir()
        if text is not None:
            (tmp_path / name / "summary.json").write_text(text)
    assert [run_status(tmp_path / n) for n in cases] == [None, None, "ok", "failed: x", "degraded: veh2 lost"]
    assert [finished(tmp_path / n) for n in cases] == [False, False, True, False, True]


def test_traci_backend_and_wall_clock_medium(tmp_path):
    out = tmp_path / "wall"
    res = run_cli(
        "run",
        str(SCENARIO),
        "--out",
        str(out),
        "--set",
        "run.steps=60",
        "--set",
        "world.backend=traci",
        "--set",
        "netsim.clock=wall",
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 60
    beacon = summary["links"]["beacon"]
    assert beacon["sent"] == 14 * 60 * 13 and 0.3 < beacon["delivery_ratio"] < 1.0
    assert abs(beacon["mean_latency_ms"] - (1.0 + 8 * 200 / 6e6 * 1e3)) < 0.05  # base + 200 B at 6 Mb/s


def test_latency_delays_delivery_to_the_first_step_after_it(tmp_path):
    out = tmp_path / "slow"
    res = run_cli(
        "run",
        str(SCENARIO),
        "--out",
        str(out),
        "--set",
        "run.steps=60",
        "--set",
        "netsim.latency_base_s=0.25",
        "--no-progress",
    )
    assert res.returncode == 0, res.stderr[-2000:]
    finals = [m for m in metrics(out) if m["kind"] == "beacon_node" and m["final"]]
    assert len(finals) == 14 and all(abs(m["beacon_age_ms"] - 300.0) < 1e-6 for m in finals)  # 0.25 s -> 3 steps
