"""Places a run's processes on a Ray cluster: each node program runs in a Ray actor of its own (one OS process, on the
host Ray's scheduler picks), reaped, restarted and stopped like the fork-server launcher's children."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path

from protocols.endpoint import BIND_ENV
from scenarios.config import ConfigError

from .launcher import Child, call_target, log_to_file

log = logging.getLogger("coordinator.ray_launcher")

MAX_LOG_BYTES = 2 * 1024 * 1024  # the end of a process's log that comes back from a host without the run folder
MARKER = ".netmarl-run-folder"  # in logs/: a host that sees it writes the logs there itself


class RayLaunchError(ConfigError):
    """Ray cannot place the run (not installed, no cluster at the address, not enough resources): exit code 2."""


def check_reachable(address: str | None, timeout_s: float = 5.0) -> None:
    """A HOST:PORT address must answer within timeout_s (Ray itself would keep retrying for minutes)."""
    if address is None or address in ("auto", "local") or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as err:
        raise RayLaunchError(f"run.ray_address = {address!r}: cannot join the Ray cluster ({err})") from None


def join_cluster(address: str | None):
    """Ray, joined to the cluster at address ("HOST:PORT", "auto"; None or "local": a new Ray instance on this
    machine, never one that happens to be running); RayLaunchError if Ray is missing or no cluster answers."""
    try:
        import ray
    except ImportError:
        raise RayLaunchError('Ray is not installed: pip install "netmarl[ray]"') from None
    address = address or "local"
    check_reachable(address)
    try:
        ray.init(
            address=address, include_dashboard=False, log_to_driver=False, configure_logging=False, namespace="netmarl"
        )
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise RayLaunchError(f"Ray address {address!r}: cannot join the Ray cluster ({err})") from None
    return ray


class NodeProgram:
    """A Ray actor's body: where it runs, then one node program (world, medium or agent) in the actor's own process,
    its log in the run folder's logs/, its exit code returned."""

    def where(self) -> dict:
        import ray

        return {
            "pid": os.getpid(),
            "hostname": socket.gethostname(),
            "ip": ray.util.get_node_ip_address(),
            "ray_node": ray.get_runtime_context().get_node_id(),
        }

    def run(self, name: str, target: str, kwargs: dict, log_path: str, marker: str) -> dict:
        """The node program's exit code, and its log when this host does not see the run folder (no `marker` file
        here: the log went to this host's temp folder and travels back; at most its last MAX_LOG_BYTES)."""
        import ray

        shared = Path(marker).exists()
        path = Path(log_path) if shared else Path(tempfile.mkdtemp(prefix="netmarl-log-")) / f"{name}.log"
        log_to_file(name, str(path))
        os.environ[BIND_ENV] = f"tcp://{ray.util.get_node_ip_address()}:*"  # an inbox the cluster's hosts reach
        try:  # Ray starts its workers at nice 15: a lock-step run goes at its slowest process's pace, so back to 0
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        except OSError:  # not allowed on this host (neither root nor RLIMIT_NICE): it stays where Ray put it
            pass
        try:
            code = call_target(target, kwargs)
        except SystemExit as stop:
            code = 0 if stop.code is None else stop.code if isinstance(stop.code, int) else 1
        except BaseException:  # noqa: BLE001 - the node's failure goes to its log and its exit code
            logging.getLogger("coordinator.ray_launcher").exception("%s failed", name)
            code = 1
        if shared:
            return {"code": code, "log": None}
        with open(path, "rb") as fh:
            fh.seek(max(0, path.stat().st_size - MAX_LOG_BYTES))
            text = fh.read().decode(errors="replace")
        shutil.rmtree(path.parent, ignore_errors=True)
        return {"code": code, "log": text}


def _signal(pid: int, signum: int) -> bool:
    """A Ray task on the process's host: send it a signal (False: it is gone)."""
    try:
        os.kill(pid, signum)
        return True
    except ProcessLookupError:
        return False


class RayProcess:
    """The face of one actor that the supervisor uses (pid, is_alive, exitcode, join, terminate, kill)."""

    def __init__(self, ray, actor, where_ref, run_ref):
        self.ray, self.actor, self.where_ref, self.run_ref = ray, actor, where_ref, run_ref
        self._where: dict | None = None
        self._exitcode: int | None = None
        self.log_text: str | None = None  # the log, brought back from a host that does not see the run folder

    def where_now(self, timeout: float = 0.0) -> dict | None:
        """Where the actor runs, once it has said so (None: not placed yet, or gone before it could say)."""
        if self._where is None:
            try:
                ready, _ = self.ray.wait([self.where_ref], timeout=timeout)
                if ready:
                    self._where = self.ray.get(self.where_ref)
            except self.ray.exceptions.RayError:
                return None
        return self._where

    @property
    def pid(self) -> int | None:
        where = self.where_now(timeout=5.0)  # a registering process has said where it runs before it started
        return None if where is None else where["pid"]

    def is_alive(self) -> bool:
        if self._exitcode is not None:
            return False
        ready, _ = self.ray.wait([self.run_ref], timeout=0)
        return not ready

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None and not self.is_alive():
            try:
                result = self.ray.get(self.run_ref)
                self._exitcode, self.log_text = int(result["code"]), result["log"]
            except self.ray.exceptions.RayError:  # the actor died (killed, its host lost)
                self._exitcode = -signal.SIGKILL
        return self._exitcode

    def join(self, timeout: float | None = None) -> None:
        self.ray.wait([self.run_ref], timeout=timeout)

    def terminate(self) -> None:
        """SIGTERM to the node program, on its host (it stops as on a local SIGTERM)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        where = self.where_now()
        if where is None:  # not placed yet, or gone: nothing to stop gently
            return self.kill()
        strategy = NodeAffinitySchedulingStrategy(where["ray_node"], soft=False)
        signal_task = self.ray.remote(num_cpus=0)(_signal).options(scheduling_strategy=strategy)
        signal_task.remote(where["pid"], signal.SIGTERM)

    def kill(self) -> None:
        self.ray.kill(self.actor, no_restart=True)


class RayLauncher:
    """Launcher on Ray: `start` places one actor per process (num_cpus each, spread over the cluster's hosts or
    packed, the world only on hosts with world_resource), `reap` reports those that ended, `stop_all` stops them and
    leaves the cluster. address None starts a new Ray instance on this machine for the run."""

    def __init__(
        self,
        log_dir: Path,
        address: str | None = None,
        cpus: float = 0.1,
        placement: str = "spread",
        world_resource: str | None = None,
    ):
        self.ray, self.log_dir = join_cluster(address), Path(log_dir)  # logs/ made by the first start
        self.cpus, self.world_resource = cpus, world_resource
        self.strategy = "SPREAD" if placement == "spread" else "DEFAULT"
        try:
            self.check_resources()
        except RayLaunchError:
            self.ray.shutdown()
            raise
        self.actor_class = self.ray.remote(NodeProgram)
        self.children: dict[str, Child] = {}
        self.closed = False

    def check_resources(self) -> None:
        """A world resource no host has would leave the world waiting for ever: refuse it now."""
        if self.world_resource and not self.ray.cluster_resources().get(self.world_resource):
            raise RayLaunchError(
                f"run.ray_world_resource = {self.world_resource!r}: no host of the Ray cluster has that resource "
                "(give it to the hosts that can run the world: `ray start --resources '{\"NAME\": 1}'`)"
            )

    def reachable(self, endpoint: str) -> str:
        """The coordinator's endpoint as the cluster's hosts reach it: a wildcard bind (tcp://0.0.0.0:PORT) becomes
        this host's address in the cluster; a loopback one, with hosts at other addresses, is refused."""
        here = self.ray.util.get_node_ip_address()
        elsewhere = {n["NodeManagerAddress"] for n in self.ray.nodes() if n.get("Alive")} - {here}
        if elsewhere and ("://127." in endpoint or "://localhost:" in endpoint):
            raise RayLaunchError(
                f"the coordinator listens on {endpoint}, which hosts {sorted(elsewhere)[:3]} cannot reach: set "
                'run.coordinator_bind = "tcp://0.0.0.0:PORT"'
            )
        return endpoint.replace("://0.0.0.0:", f"://{here}:")

    def check_capacity(self, processes: int) -> None:
        """Refuse a run the cluster cannot place at all (every process reserves `cpus`)."""
        have = self.ray.cluster_resources().get("CPU", 0.0)
        if processes * self.cpus > have + 1e-9:
            raise RayLaunchError(
                f"{processes} processes x run.ray_cpus = {self.cpus} CPUs each need {processes * self.cpus:g} CPUs; "
                f"the Ray cluster has {have:g} (lower run.ray_cpus or add hosts)"
            )

    def start(self, name: str, target: str, **kwargs) -> Child:
        """Place (or place again) the process called name."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / MARKER).touch()
        child = self.children.get(name) or Child(name, target, kwargs, self.log_dir / f"{name}.log")
        resources = {self.world_resource: 0.001} if name == "world" and self.world_resource else {}
        actor = self.actor_class.options(
            num_cpus=self.cpus, resources=resources, scheduling_strategy=self.strategy, max_restarts=0
        ).remote()
        where = actor.where.remote()  # first: an actor runs its calls in order, and run() lasts the whole run
        run = actor.run.remote(name, target, kwargs, str(child.log_path), str(self.log_dir / MARKER))
        child.process = RayProcess(self.ray, actor, where, run)
        child.reaped = False
        self.children[name] = child
        return child

    def reap(self, timeout: float = 0.0) -> list[Child]:
        """Children whose node program has ended since the last call (waits up to timeout for all to end)."""
        if self.closed:
            return []
        running = {c.process.run_ref: c for c in self.children.values() if c.process and not c.reaped}
        if not running:
            return []
        ready, _ = self.ray.wait(list(running), num_returns=len(running), timeout=timeout)
        for ref in ready:
            self.bring_back_log(running[ref])
        return [running[ref] for ref in ready]

    def bring_back_log(self, child: Child) -> None:
        """An ended process's log from a host without the run folder, appended to its file in logs/."""
        child.reaped = True
        child.process.exitcode  # noqa: B018 - fetches the result, the log with it
        if child.process.log_text:
            with open(child.log_path, "a") as fh:
                fh.write(child.process.log_text)

    def alive(self) -> list[Child]:
        return [c for c in self.children.values() if c.process and c.process.is_alive()]

    def placement(self) -> dict[str, dict]:
        """Where each process runs: its host name, address, Ray node id and pid."""
        return {name: c.process.where_now() or {} for name, c in self.children.items() if c.process}

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM everyone still running, wait grace_s, kill the stragglers, then leave the cluster (the actors go
        with the driver, so none stays behind)."""
        if self.closed:
            return
        for child in self.alive():
            child.process.terminate()
        deadline = time.monotonic() + grace_s
        for child in self.alive():
            child.process.join(max(0.0, deadline - time.monotonic()))
        try:
            for child in self.alive():
                log.warning("%s (pid %s) ignored SIGTERM for %.1f s; killing it", child.name, child.pid, grace_s)
                child.process.kill()
                child.process.join(2.0)  # the kill is asynchronous: its end, before the result is read
            for child in self.children.values():
                if not child.reaped and child.process:
                    self.bring_back_log(child)  # read while the cluster is still joined
            (self.log_dir / MARKER).unlink(missing_ok=True)
        finally:
            self.closed = True
            self.ray.shutdown()
