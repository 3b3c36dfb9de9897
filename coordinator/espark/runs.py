"""Candidate runs: one `netmarl run` child per trained copy (its world and agent processes), run a few at a time."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from coordinator.run_folder import config_toml
from protocols.processes import die_with_parent

log = logging.getLogger("coordinator.espark")


@dataclass
class ChildRun:
    """A full run of the scenario with overridden settings, in its own run folder; results read from its files."""

    name: str
    run_dir: Path
    config: dict
    timeout_s: float
    proc: subprocess.Popen | None = None
    started: float = 0.0
    returncode: int | None = None
    timed_out: bool = False
    records: list[dict] = field(default_factory=list)

    @classmethod
    def finished(cls, name: str, run_dir: Path) -> "ChildRun":
        """A copy that trained before this process started (the finished iterations of a resumed loop)."""
        return cls(name, run_dir, {}, 0.0, returncode=0, records=read_jsonl(run_dir / "metrics.jsonl"))

    def start(self) -> None:
        self.run_dir.parent.mkdir(parents=True, exist_ok=True)
        scenario = self.run_dir.with_suffix(".toml")
        scenario.write_text(config_toml(self.config))
        out = open(self.run_dir.with_suffix(".log"), "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coordinator.cli",
                "run",
                str(scenario),
                "--out",
                str(self.run_dir),
                "--no-progress",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
            preexec_fn=die_with_parent,
        )
        out.close()
        self.started = time.monotonic()

    def poll(self) -> bool:
        """True once finished (a run past its timeout is stopped: SIGTERM, then SIGKILL)."""
        if self.returncode is not None:
            return True
        code = self.proc.poll()
        if code is None and time.monotonic() - self.started > self.timeout_s:
            log.warning("%s ran past %.0f s; stopping it", self.name, self.timeout_s)
            self.timed_out = True
            self.stop()
            code = self.proc.returncode
        if code is None:
            return False
        self.returncode = code
        self.records = read_jsonl(self.run_dir / "metrics.jsonl")
        return True

    def stop(self) -> None:
        """SIGTERM (the child run ends cleanly, keeping its files), SIGKILL after 30 s."""
        self.terminate()
        if self.proc is not None:
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def terminate(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def episodes(self, kind: str, mode: str) -> list[dict]:
        return [r for r in self.records if r.get("kind") == kind and r.get("mode") == mode]

    def world_final(self) -> dict:
        finals = [r for r in self.records if r.get("kind") == "world" and r.get("final")]
        return finals[-1] if finals else {}

    def summary(self) -> dict:
        path = self.run_dir / "summary.json"
        return json.loads(path.read_text()) if path.exists() else {}

    def failure(self) -> str:
        """The end of the child's log, to say why it failed."""
        path = self.run_dir.with_suffix(".log")
        tail = path.read_text()[-1500:] if path.exists() else ""
        return f"exit code {self.returncode}{' (timed out)' if self.timed_out else ''}: {tail}"


def read_jsonl(path: Path) -> list[dict]:
    """The records of a JSON-lines file (none when it is missing)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line cut by a killed writer
    return out


# Set by the loop's SIGTERM handler. Its KeyboardInterrupt can be swallowed when Python runs the handler inside a
# finalizer (a Popen's __del__, "Exception ignored in ..."), so the loop also checks this between steps.
stop_requested = threading.Event()


def check_stop() -> None:
    """Raise KeyboardInterrupt if a stop was asked for (however its first raise went)."""
    if stop_requested.is_set():
        raise KeyboardInterrupt


def run_all(runs: list[ChildRun], parallel: int, on_done=lambda run: None) -> None:
    """Run the children, at most `parallel` at a time; on_done(run) as each finishes. Ctrl-C stops them all."""
    pending, active = list(runs), []
    try:
        while pending or active:
            check_stop()
            while pending and len(active) < parallel:
                run = pending.pop(0)
                run.start()
                active.append(run)
            for run in [r for r in active if r.poll()]:
                active.remove(run)
                on_done(run)
            time.sleep(0.2)
    finally:  # ask every child to stop before waiting for any of them
        for run in active:
            run.terminate()
        for run in active:
            run.stop()
