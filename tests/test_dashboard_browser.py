"""The dashboard in a real browser (Debian's chromium, headless, driven by selenium): a live beacon run, link
colours that follow the configured loss, a finished RSM-MASAC run's learning curves, a sweep's points.
Each test saves a screenshot into its temporary folder."""

import json
import os
import shutil
import signal
import subprocess
import time

import pytest
from conftest import NETMARL, ROOT, SCENARIO, accepting, free_port, run_cli, wait_for

CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and its driver are not installed (`make install` installs them from Debian)",
)


@pytest.fixture(scope="module")
def browser():
    """One headless chromium for the file's tests (each loads its own page)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1400,1100",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def serve():
    """serve(folder) -> the page's address, from `netmarl dashboard` (stopped after the test)."""
    procs = []

    def start(folder):
        port = free_port()
        proc = subprocess.Popen(
            [*NETMARL, "dashboard", str(folder), "--port", str(port)],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        procs.append(proc)
        line = proc.stderr.readline()
        assert f"127.0.0.1:{port}" in line, line
        wait_for(lambda: accepting(port), 30, "the dashboard's port")  # the address is printed before it listens
        return f"http://127.0.0.1:{port}/"

    yield start
    for p in procs:
        os.killpg(p.pid, signal.SIGTERM)
        p.wait(10)


def page_state(driver, expr):
    """expr evaluated in the page (None while the page is between two loads, its script not there yet, or while
    the frame it reads is being fetched)."""
    from selenium.common.exceptions import JavascriptException

    try:
        return driver.execute_script(f"return {expr};")
    except JavascriptException as err:
        if any(s in str(err) for s in ("Cannot read properties of undefined", "of null", "is not defined")):
            return None
        raise


def link_bins(driver):
    """The map's link traces as drawn: {ratio bin: links}."""
    return page_state(
        driver,
        "(document.getElementById('map').data || []).filter(t => t.meta && t.meta.ratioBin)"
        ".reduce((o, t) => (o[t.meta.ratioBin] = t.meta.links, o), {})",
    )


def test_a_live_beacon_run_shows_its_14_agents_moving_and_its_links(tmp_path, browser):
    port = free_port()
    proc = subprocess.Popen(
        [
            *NETMARL,
            "run",
            str(SCENARIO),
            "--out",
            str(tmp_path / "run"),
            "--no-progress",
            "--set",
            "run.steps=100000",
            "--dashboard",
            "--dashboard-port",
            str(port),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for(lambda: accepting(port), 60, "the dashboard's port")
        browser.get(url)
        agents = "((document.getElementById('map').data || []).find(t => t.name === 'agents') || {x: [], y: []})"
        wait_for(lambda: page_state(browser, f"{agents}.x.length") == 14, 60, "14 agents on the map")
        first = page_state(browser, f"{agents}.x.concat({agents}.y)")
        step = page_state(browser, "window.netmarl.frame.world_step")
        wait_for(lambda: page_state(browser, "window.netmarl.frame.world_step") > step, 20, "a newer frame")
        updates = page_state(browser, "window.netmarl.updates")
        wait_for(lambda: page_state(browser, "window.netmarl.updates") >= updates + 2, 20, "updates pushed")
        wait_for(lambda: page_state(browser, f"{agents}.x.concat({agents}.y)") != first, 20, "the agents to move")
        assert page_state(browser, f"{agents}.x.length") == 14
        assert page_state(browser, "window.netmarl.info.map.kind") == "lanes"
        wait_for(lambda: sum((link_bins(browser) or {}).values()), 20, "the map's links")
        bins = link_bins(browser)
        assert bins[">=0.8"] > sum(v for k, v in bins.items() if k != ">=0.8"), bins  # no extra loss: mostly green
        assert page_state(browser, "document.getElementById('traffic').rows.length") >= 2  # beacons sent, received
        browser.save_screenshot(str(tmp_path / "live.png"))
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(60)
    wait_for(lambda: not accepting(port), 15, "the dashboard to end with the run")


def test_links_turn_red_when_the_run_loses_most_messages(tmp_path, browser, serve):
    out = tmp_path / "lossy"
    proc = run_cli(
        "run", str(SCENARIO), "--out", str(out), "--no-progress", "--set", "run.steps=250", "--set", "netsim.loss=0.9"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    # what a hostile agent could get into metrics.jsonl (the coordinator checks types, not names): shown as text
    script = "<img src=x onerror='window.pwned=1'><script>window.pwned=2</script>"
    with open(out / "metrics.jsonl", "a") as fh:
        fh.write(json.dumps({"wall": 1.0, "node": "veh0", "kind": "beacon_node", "final": False, script: 1}) + "\n")
        fh.write(json.dumps({"wall": 1.0, "node": "coordinator", "kind": "event", "event": script, script: script}))
        fh.write("\n")
    browser.get(serve(out))
    wait_for(lambda: sum((link_bins(browser) or {}).values()), 30, "the map's links")
    bins = link_bins(browser)
    assert bins["<0.2"] > 0 and bins["<0.2"] > 4 * sum(v for k, v in bins.items() if k != "<0.2"), bins
    banner = "document.getElementById('banner').textContent"
    wait_for(lambda: "ended: ok" in (page_state(browser, banner) or ""), 10, "the banner to say the run ended")
    browser.save_screenshot(str(tmp_path / "lossy.png"))
    browser.execute_script(
        "const s = document.getElementById('node-select'); s.value = 'veh0'; s.dispatchEvent(new Event('change'));"
        "const k = document.getElementById('series-select'); k.value = arguments[0];"
        "k.dispatchEvent(new Event('change'))",
        "beacon_node." + script,
    )
    events = "document.getElementById('events').textContent"
    wait_for(lambda: script in (page_state(browser, events) or ""), 10, "the event")
    assert page_state(browser, "document.getElementById('series-select').value") == "beacon_node." + script
    time.sleep(1.0)
    assert page_state(browser, "window.pwned") is None
    # the same run as if its coordinator had been killed: no summary, no closing line, a pid that is gone
    crashed = tmp_path / "crashed"
    shutil.copytree(out, crashed)
    (crashed / "summary.json").unlink()
    gone = int(open("/proc/sys/kernel/pid_max").read()) + 1  # a pid no process can have
    frames = [json.loads(line) for line in (crashed / "live.jsonl").read_text().splitlines()][:-1]
    late = time.time() - 120 - frames[-1]["wall"]  # the last frame two minutes ago
    lines = [json.dumps({**f, "pid": gone, "wall": f["wall"] + late}) + "\n" for f in frames]
    (crashed / "live.jsonl").write_text("".join(lines))
    browser.get(serve(crashed))
    wait_for(lambda: "crashed" in (page_state(browser, banner) or ""), 20, "the page to say the run crashed")
    assert f"pid {gone}) is gone" in page_state(browser, banner)
    # the time slider goes back to the first frame
    browser.execute_script(
        "const s = document.getElementById('slider'); s.value = 0; s.dispatchEvent(new Event('input'))"
    )
    step = lambda: page_state(browser, "window.netmarl.frame.world_step")  # noqa: E731
    wait_for(lambda: (s := step()) is not None and s < 50, 10, "the first frame")


def test_a_finished_rsm_masac_run_shows_its_learning_curves(tmp_path, browser, serve):
    out = tmp_path / "rsm"
    sets = [
        "world.episodes=2",
        "world.horizon=100",
        "world.test_every=0",
        "world.agents=4",
        "algo.U=2",
        "algo.sac={learning_starts=20, batch_size=32}",
    ]
    args = ["run", str(ROOT / "scenarios" / "figure8_rsm_masac.toml"), "--out", str(out), "--no-progress"]
    proc = run_cli(*args, *[a for s in sets for a in ("--set", s)], timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    browser.get(serve(out))
    options = "[...document.getElementById('node-select').options].map(o => o.value)"
    wait_for(lambda: {"world", "veh0"} <= set(page_state(browser, options) or []), 30, "the nodes in the list")
    browser.execute_script(
        "const s = document.getElementById('node-select'); s.value = 'world'; s.dispatchEvent(new Event('change'))"
    )
    key = page_state(browser, "document.getElementById('series-select').value")
    assert key == "cav_episode.score", key  # the episode score is what the curve shows first
    points = page_state(browser, "document.getElementById('node-chart').data[0].y")
    assert len(points) == 2 and all(0 <= p <= 1 for p in points)
    browser.execute_script(
        "const s = document.getElementById('node-select'); s.value = 'veh0'; s.dispatchEvent(new Event('change'))"
    )
    keys = page_state(browser, "[...document.getElementById('series-select').options].map(o => o.value)")
    assert any(k.startswith("rsm_round.") for k in keys) and any(k.startswith("cav_agent_episode.") for k in keys)
    assert page_state(browser, "document.getElementById('node-chart').data[0].y.length") >= 1
    browser.save_screenshot(str(tmp_path / "rsm.png"))


def test_a_sweep_page_lists_its_points_and_opens_them(tmp_path, browser, serve):
    out = tmp_path / "sweep"
    proc = run_cli(
        "sweep", str(SCENARIO), "--grid", "netsim.range_m=60,250", "--set", "run.steps=80", "--out", str(out),
        "--no-progress", timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    browser.get(serve(out))
    rows = "[...document.querySelectorAll('#sweep-table tr.sweep-point a')].map(a => a.textContent)"
    wait_for(lambda: page_state(browser, rows), 30, "the sweep's table")
    assert page_state(browser, rows) == ["range_m=60", "range_m=250"]
    chart = page_state(browser, "document.getElementById('sweep-chart').data.map(t => t.x.length)")
    assert chart == [2]
    browser.save_screenshot(str(tmp_path / "sweep.png"))
    browser.execute_script("document.querySelector('#sweep-table tr.sweep-point a').click()")
    wait_for(lambda: page_state(browser, "window.netmarl.info && window.netmarl.info.kind") == "run", 30, "the point")
    wait_for(lambda: page_state(browser, "window.netmarl.frame"), 30, "the point's frames")
    assert "range_m%3D60" in browser.current_url or "range_m=60" in browser.current_url
    assert page_state(browser, "window.netmarl.status.state") == "ended"
