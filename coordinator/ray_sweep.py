"""Sweep points as Ray tasks: each point a whole run on one host of the cluster (its resolved config.toml run by the
`netmarl run` of that host), its run folder brought back into the sweep folder as it finishes."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Iterator

from protocols.processes import die_with_parent

from .ray_launcher import join_cluster

ROOT = Path(__file__).resolve().parents[1]  # where `netmarl run` resolves a scenario's relative paths


def run_point(config_text: str, name: str) -> tuple[int, bytes, str]:
    """On the host Ray picked: run the point in a scratch folder; (exit code, the run folder as a tar.gz, the end of
    the run's stderr)."""
    with tempfile.TemporaryDirectory(prefix="netmarl-sweep-") as scratch:
        config = Path(scratch) / "config.toml"
        config.write_text(config_text)
        out = Path(scratch) / name
        proc = subprocess.run(  # the run dies with this task's worker (a cancelled point leaves no run behind)
            [sys.executable, "-m", "coordinator.cli", "run", str(config), "--out", str(out), "--no-progress"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            preexec_fn=die_with_parent,
        )
        blob = io.BytesIO()
        if out.exists():
            with tarfile.open(fileobj=blob, mode="w:gz") as tar:
                tar.add(out, arcname=name)
        return proc.returncode, blob.getvalue(), proc.stderr[-2000:]


def run_points_on_ray(
    points: list[tuple[str, str]], out: Path, address: str, cpus: float
) -> Iterator[tuple[str, int, str]]:
    """Run (name, config text) points in parallel on the cluster at address, `cpus` reserved for each; yield
    (name, exit code, stderr tail) as each ends, its run folder unpacked under out. Ctrl-C cancels what is left."""
    ray = join_cluster(address)
    pending = {}
    try:
        task = ray.remote(num_cpus=cpus, max_retries=0)(run_point)
        pending = {task.remote(text, name): name for name, text in points}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            name = pending.pop(done[0])
            try:
                code, blob, stderr = ray.get(done[0])
            except ray.exceptions.RayError as err:  # the task's worker or host was lost
                yield name, 1, f"the point's Ray task failed: {err}"
                continue
            if blob:
                with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
                    tar.extractall(out, filter="data")
            yield name, code, stderr
    finally:
        for ref in pending:  # Ctrl-C: the points not finished stop (their runs die with their workers)
            ray.cancel(ref, force=True)
        ray.shutdown()
