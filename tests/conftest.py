"""Shared helpers for tests that start real netmarl runs as separate OS processes."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest

# A suite started in the background (nohup, `&` in a script) inherits SIGINT ignored, and so would every run it
# starts: a test that stops a run as Ctrl-C does before the run sets its own handler would then wait forever.
# A Python handler here is reset to the default in each child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = ROOT / "scenarios" / "figure8_beacons.toml"
NETMARL = [sys.executable, "-m", "coordinator.cli"]


# a beacon run that goes on until stopped, with 4 agents: what tests of nodes that join a run (or attack it) need
BACKGROUND = ("run.steps=100000", "world.vehicles=4", "world.agents=4")


def start_run(out: Path, *sets: str, scenario: Path = SCENARIO) -> subprocess.Popen:
    """Start `netmarl run` in the background (its own process group) writing to out."""
    args = [*NETMARL, "run", str(scenario), "--out", str(out), "--no-progress"]
    for s in sets:
        args += ["--set", s]
    return subprocess.Popen(
        args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run the netmarl CLI to completion."""
    return subprocess.run([*NETMARL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


_SHARED_RUNS: dict[tuple, tuple[Path, float]] = {}


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory):
    """shared_run(scenario, *sets, seed=None) -> (run folder, wall seconds) of `netmarl run` with those arguments, run
    once per session: tests that only read the same run share it (none may write into its folder)."""

    def get(scenario, *sets: str, seed: int | None = None, timeout: float = 400) -> tuple[Path, float]:
        key = (str(scenario), sets, seed)
        if key not in _SHARED_RUNS:
            out = tmp_path_factory.mktemp("shared") / Path(scenario).stem
            args = ["run", str(scenario), "--out", str(out), "--no-progress"]
            args += ["--seed", str(seed)] if seed is not None else []
            for s in sets:
                args += ["--set", s]
            t0 = time.monotonic()
            proc = run_cli(*args, timeout=timeout)
            assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
            _SHARED_RUNS[key] = (out, time.monotonic() - t0)
        return _SHARED_RUNS[key]

    return get


def wait_for(pred, timeout: float, what: str, interval: float = 0.05):
    """Poll pred until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def node_info(run_dir: Path, node: str) -> tuple[int, str] | None:
    """(pid, inbox endpoint) of a registered node, read from its log file."""
    log = run_dir / "logs" / f"{node}.log"
    if not log.exists():
        return None
    m = re.findall(r"pid=(\d+) INFO agent_node: \S+ registered \(inbox (tcp://[\d.:]+)\)", log.read_text())
    return (int(m[-1][0]), m[-1][1]) if m else None


def coordinator_log(run_dir: Path) -> str:
    """The coordinator's log so far ("" before it exists)."""
    path = run_dir / "logs" / "coordinator.log"
    return path.read_text() if path.exists() else ""


def metrics(run_dir: Path) -> list[dict]:
    """All complete records of metrics.jsonl (a live run may be halfway through writing its last line)."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return []
    text = path.read_text()
    lines = text.splitlines() if text.endswith("\n") else text.splitlines()[:-1]
    return [json.loads(line) for line in lines]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accepting(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is as good as dead
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def reap():
    """Kill any run a test leaves behind."""
    procs: list[subprocess.Popen] = []
    yield procs.append
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, 9)
            except ProcessLookupError:  # not a group leader (started without a session of its own)
                p.kill()
            p.wait()


def tensorboard_scalars(folder) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] read back from the TensorBoard event files (TFRecord frames of Event protos)."""
    from tensorboardX.proto import event_pb2

    out = defaultdict(list)
    for path in folder.glob("events.out.tfevents.*"):
        data, pos = path.read_bytes(), 0
        while pos < len(data):
            (size,) = struct.unpack("<Q", data[pos : pos + 8])
            event = event_pb2.Event.FromString(data[pos + 12 : pos + 12 + size])
            pos += 12 + size + 4
            for value in event.summary.value:
                out[value.tag].append((event.step, value.simple_value))
    return out
