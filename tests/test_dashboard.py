"""The dashboard's server and feed without a browser: live.jsonl from a real run, the API on a real server,
bad folders, ports in use, hostile requests, a crashed run; and the static outputs it came with (the sweep's
small multiples and table, progress lines in a file, model curves with every loss)."""

import csv
import io
import json
import math
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
from conftest import NETMARL, ROOT, SCENARIO, accepting, free_port, run_cli, wait_for

from coordinator.dashboard.data import RunFeed
from coordinator.live import LiveView
from coordinator.progress import progress_bar
from netsim.channel import Channel
from netsim.config import NetsimConfig
from netsim.stats import NOT_ATTEMPTS, LinkStats, check_arrays


def start_dashboard(folder, port, *extra):
    return subprocess.Popen(
        [*NETMARL, "dashboard", str(folder), "--port", str(port), *extra],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def get(port, path):
    """(HTTP status, JSON body) of a GET on the dashboard."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def info_kind(port):
    """What /api/info says the folder is (None while the server cannot answer)."""
    try:
        return get(port, "/api/info")[1].get("kind")
    except (OSError, ValueError):
        return None


def no_such_pid() -> int:
    """A pid no process can have (above the kernel's pid_max)."""
    return int(open("/proc/sys/kernel/pid_max").read()) + 1


@pytest.fixture
def dashboards():
    procs = []
    yield procs.append
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
            p.wait(10)


@pytest.fixture(scope="module")
def beacon_run(shared_run):
    return shared_run(SCENARIO, "run.steps=300")[0]  # shared with test_end_to_end.py and test_tensorboard.py


def test_a_run_writes_frames_of_positions_links_and_health(beacon_run):
    frames = [json.loads(line) for line in (beacon_run / "live.jsonl").read_text().splitlines()]
    assert frames[-1] == {"wall": frames[-1]["wall"], "end": True, "status": "ok"}
    last = frames[-2]
    assert len(last["positions"]) == 14 and last["step"] > 0
    assert {n for n, r in last["nodes"].items() if r["kind"] == "agent"} == set(last["positions"])
    # the last frame is written after shutdown (every node stopped, last words awaited): ages grow meanwhile
    assert all(r["age_s"] < 30 and r["restarts"] == 0 and not r["down"] for r in last["nodes"].values())
    assert last["links"] and all(0 <= d <= a for *_, a, d in last["links"])
    # the last frame holds the medium's final report (a run shorter than a report interval shows its links):
    # what it counts is links.csv's
    sent = sum(v[0] for t in last["traffic"].values() for v in t.values())
    rows = list(csv.DictReader((beacon_run / "links.csv").open()))
    attempts = sum(int(r["sent"]) - sum(int(r[c]) for c in NOT_ATTEMPTS) for r in rows)
    assert 0 < sent == attempts


def test_the_link_window_is_the_difference_of_the_medium_s_counts(tmp_path):
    def report(*links):
        stats = LinkStats()
        for src, dst, sent, delivered, out_of_range in links:
            for n in range(sent):
                ok, far = n < delivered, n >= sent - out_of_range
                stats.record(src, dst, "beacon", 150.0 if far else 15.0, 200, ok, "range" if far else "channel")
        return stats.to_arrays()

    live = LiveView(tmp_path)
    xy = np.array([[0.0, 0.0], [10.0, 0.0]])
    live.on_link_report(*report(("a", "b", 10, 9, 0)))
    live.on_link_report(*report(("a", "b", 30, 19, 0), ("b", "a", 5, 0, 5)))
    assert live.windows[-1] == {("a", "b", "beacon"): [20, 10, 20], ("b", "a", "beacon"): [5, 0, 0]}
    assert live.links() == [["a", "b", "beacon", 30, 19]]  # b -> a was out of range throughout: not drawn
    assert live.bins["beacon"] == {15.0: [30, 19, 6000, 30], 155.0: [5, 0, 1000, 5]}
    live.on_link_report(*report(("a", "b", 4, 4, 0)))  # a new medium counts from zero
    assert live.windows[-1] == {("a", "b", "beacon"): [4, 4, 4]}
    live.on_positions(["a", "b"], xy, 3, 0.3)
    assert live.positions == {"a": [0.0, 0.0], "b": [10.0, 0.0]} and live.step == 3


def test_the_api_serves_a_run_and_refuses_paths_and_junk(beacon_run, dashboards):
    port = free_port()
    proc = start_dashboard(beacon_run, port)
    dashboards(proc)
    wait_for(lambda: accepting(port), 30, "the dashboard")
    status, info = get(port, "/api/info")
    assert status == 200 and info["kind"] == "run" and info["status"]["state"] == "ended"
    assert info["map"]["kind"] == "lanes" and len(info["map"]["lanes"][0]) > 50  # the figure-eight's lanes
    status, frame = get(port, "/api/frame?i=0")
    assert status == 200 and frame["count"] >= 2 and frame["frame"]["nodes"]
    for bad in ("/api/info?run=../../etc", "/api/info?run=%2Fetc", "/api/stream?run=..", "/api/frame?run=x"):
        status, body = get(port, bad)
        assert status in (400, 404) and "error" in body, bad
    status, body = get(port, "/api/frame?i=NaN")
    assert status == 400 and "error" in body
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/static/plotly.min.js", timeout=10) as r:
        assert r.status == 200 and len(r.read()) > 1_000_000  # shipped with the package, not from a CDN
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        page = r.read().decode()
    assert "/static/plotly.min.js" in page and "http" not in page.replace("http-equiv", "")
    # the event stream pushes at least one update a second
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/stream", timeout=10) as r:
        events, times = [], []
        while len(events) < 3:
            line = r.readline().decode()
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
                times.append(time.monotonic())
    assert times[2] - times[1] < 2.0  # after the first (everything so far), an update at least once a second
    assert "frame" in events[0] and "series" in events[0] and events[0]["summary"]["status"] == "ok"
    assert events[0]["events"]["from"] == 0 and "frame" not in events[1]  # then only what is new


def test_bad_folders_and_a_port_in_use_get_a_clear_message(tmp_path, beacon_run):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("hello")
    proc = run_cli("dashboard", str(tmp_path / "junk"), "--port", "0")
    assert proc.returncode == 2 and "neither a run folder" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("dashboard", str(tmp_path / "missing"), "--port", "0")
    assert proc.returncode == 2 and "is not a folder" in proc.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli("dashboard", str(beacon_run), "--port", str(port))
        assert proc.returncode == 2 and f"port {port}" in proc.stderr and "in use" in proc.stderr
        proc = run_cli("run", str(SCENARIO), "--out", str(tmp_path / "r"), "--dashboard", "--dashboard-port", str(port))
        assert proc.returncode == 2 and "in use" in proc.stderr and not (tmp_path / "r").exists()


def test_a_run_still_starting_and_a_crashed_run_say_so(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.toml").write_text('[world]\nkind = "figure8"\n')
    feed = RunFeed(run_dir)
    feed.poll()
    assert feed.status()["state"] == "starting"
    gone = no_such_pid()
    frame = {"wall": time.time() - 60, "pid": gone, "status": "ok", "positions": {}, "links": [], "nodes": {}}
    (run_dir / "live.jsonl").write_text(json.dumps(frame) + "\n" + '{"wall": 1, "cut by a cra')
    feed.poll()
    status = feed.status()
    assert status["state"] == "stopped" and f"pid {gone}) is gone" in status["text"] and "crashed" in status["text"]
    frame["pid"] = os.getpid()  # still there: busy or stuck, not said to have crashed
    (run_dir / "live.jsonl").write_text(json.dumps(frame) + "\n")
    feed = RunFeed(run_dir)
    feed.poll()
    assert feed.status()["state"] == "quiet" and "crashed" not in feed.status()["text"]


def test_run_dashboard_serves_beside_the_run_and_ends_with_it(tmp_path):
    port = free_port()
    out = tmp_path / "run"
    # a run that lasts until it is stopped: the page must answer while the run lives, however slow its start
    args = [*NETMARL, "run", str(SCENARIO), "--out", str(out), "--no-progress", "--set", "run.steps=100000"]
    proc = subprocess.Popen(
        [*args, "--dashboard", "--dashboard-port", str(port)], cwd=ROOT, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(lambda: accepting(port), 30, "the run's dashboard")
        wait_for(lambda: info_kind(port) == "run", 60, "the run folder on the page")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert f"dashboard: http://127.0.0.1:{port}/" in err and f"netmarl dashboard {out}" in err
    wait_for(lambda: not accepting(port), 15, "the dashboard to end with the run")


def test_progress_in_a_file_is_one_line_per_update_without_carriage_returns():
    sink = io.StringIO()
    bar = progress_bar(100, "run", True, stream=sink)
    for _ in range(100):
        bar.update(1)
    bar.close()
    text = sink.getvalue()
    assert "\r" not in text and text.count("\n") >= 2 and "100/100" in text.splitlines()[-1]


def test_the_model_curve_of_the_plots_includes_every_configured_loss():
    plain = Channel(NetsimConfig(model="unit_disk", range_m=100), 0)
    lossy = Channel(NetsimConfig(model="unit_disk", range_m=100, loss=0.3), 0)
    burst = NetsimConfig(model="unit_disk", range_m=100, burst={"enabled": True, "p_good_to_bad": 0.1})
    d = np.array([10.0, 50.0, 150.0])
    assert plain.expected_curve(d, 100).tolist() == [1.0, 1.0, 0.0]
    assert lossy.expected_curve(d, 100).tolist() == pytest.approx([0.7, 0.7, 0.0])
    chunks_only = Channel(NetsimConfig(model="unit_disk", range_m=100, loss=0.3, loss_types=["segment_response"]), 0)
    assert chunks_only.expected_curve(d, 100, "segment_response").tolist() == pytest.approx([0.7, 0.7, 0.0])
    assert chunks_only.expected_curve(d, 100, "segment_request").tolist() == [1.0, 1.0, 0.0]
    bad_share = 0.1 / (0.1 + 0.3)  # the Gilbert-Elliott chain's stationary Bad share, loss_bad = 1
    assert Channel(burst, 0).expected_curve(d, 100)[0] == pytest.approx(1 - bad_share)
    # and what the medium does agrees with it (the draws the runs make)
    ch = Channel(NetsimConfig(model="unit_disk", range_m=100, loss=0.3), 7)
    got = np.mean([ch.decide("a", "b", seq, 10.0, 100).delivered for seq in range(20_000)])
    assert math.isclose(got, 0.7, abs_tol=0.015)


def test_a_sweep_draws_a_panel_per_point_and_a_table(tmp_path):
    out = tmp_path / "sweep"
    proc = run_cli(
        "sweep",
        str(SCENARIO),
        "--grid",
        "netsim.loss=0,0.5",
        "--set",
        "run.steps=60",
        "--out",
        str(out),
        "--no-progress",
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    from matplotlib.image import imread

    assert (out / "sweep.png").exists() and (out / "sweep_table.png").exists()
    assert imread(out / "sweep.png").shape[1] > imread(out / "sweep_table.png").shape[1]  # two panels side by side
    # the page's table: its points by name, each a run to open
    from coordinator.dashboard.data import sweep_table

    table = sweep_table(out)
    assert [r["point"] for r in table["rows"]] == ["loss=0", "loss=0.5"] and table["axes"] == ["netsim.loss"]
    assert "beacon_delivery_ratio" in table["metrics"]


def test_bad_link_reports_and_positions_are_refused_before_use(tmp_path):
    stats = LinkStats()
    stats.record("a", "b", "beacon", 15.0, 200, True)
    names, arrays = stats.to_arrays()
    check_arrays(names, arrays)
    for bad in (
        {**arrays, "keys": arrays["keys"] - 1},  # -1 would silently name the last entry
        {**arrays, "keys": arrays["keys"] + 3},
        {**arrays, "counts": arrays["counts"][:, :3]},
        {**arrays, "distance": np.array([np.nan])},
        {k: v for k, v in arrays.items() if k != "counts"},
    ):
        with pytest.raises(ValueError):
            check_arrays(names, bad)
    live = LiveView(tmp_path)
    live.on_positions(["a", "b"], np.array([[0.0, np.inf], [1.0, 2.0]]), 1, 0.1)
    assert live.positions == {"b": [1.0, 2.0]}  # what cannot be drawn is left out


def test_odd_files_cannot_stall_or_break_the_page(tmp_path, monkeypatch, dashboards):
    from coordinator.dashboard import data
    from coordinator.dashboard.server import Dashboard

    monkeypatch.setattr(data, "MAX_READ_BYTES", 64)
    path = tmp_path / "f.jsonl"
    path.write_text('{"a": 1}\n' + "x" * 200 + '\n{"b": 2}\n{"c": 3}\n')
    tail = data.FileTail(path)
    got = []
    for _ in range(6):
        got += tail.lines()
    assert got == [{"a": 1}, {"b": 2}, {"c": 3}]  # an overlong line is skipped, not waited on for ever
    # a run folder being made: starting (with the page waiting for it), then an eSpark run before its espark/
    folder = tmp_path / "run"
    assert Dashboard(folder, wait=True).kind() == "starting"
    (folder / "logs").mkdir(parents=True)
    assert Dashboard(folder, wait=True).kind() == "starting"
    (folder / "config.toml").write_text('[algo]\nmethod = "espark"\n')
    assert Dashboard(folder, wait=True).kind() == "espark"
    # a frame a hostile world could cause (NaN) is served as null, not as an error
    run = tmp_path / "nan"
    run.mkdir()
    (run / "config.toml").write_text('[world]\nkind = "figure8"\n')
    frame = {"wall": time.time(), "pid": os.getpid(), "positions": {"a": [float("nan"), 1.0]}, "links": [], "nodes": {}}
    (run / "live.jsonl").write_text(json.dumps(frame) + "\n")
    port = free_port()
    dashboards(start_dashboard(run, port))
    wait_for(lambda: accepting(port), 30, "the dashboard")
    status, body = get(port, "/api/frame?i=0")
    assert status == 200 and body["frame"]["positions"] == {"a": [None, 1.0]}


def test_an_espark_run_lists_its_candidates_and_their_runs(tmp_path):
    from coordinator.dashboard.data import child_runs, espark_table, folder_kind

    run = tmp_path / "espark-run"
    (run / "espark" / "iter_01" / "cand_00").mkdir(parents=True)
    (run / "espark" / "iter_01" / "cand_00" / "config.toml").write_text("[run]\n")
    (run / "config.toml").write_text('[algo]\nmethod = "espark"\n')
    rows = [
        {"iteration": 1, "index": 0, "key": "iter_01/cand_00", "score": 12.5, "validation": {"accepted": True}},
        {"iteration": 1, "index": 1, "key": "iter_01/cand_01", "score": None, "validation": {"accepted": False,
         "cause": "exception", "message": "ValueError: cannot decide"}},
    ]  # fmt: skip
    (run / "espark" / "candidates.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json\n")
    assert folder_kind(run) == "espark" and child_runs(run) == ["espark/iter_01/cand_00"]
    table = espark_table(run)
    assert [(c["key"], c["score"], c["accepted"], c["run"]) for c in table["candidates"]] == [
        ("iter_01/cand_00", 12.5, True, "espark/iter_01/cand_00"),
        ("iter_01/cand_01", None, False, None),
    ]
    assert table["candidates"][1]["cause"] == "exception"
