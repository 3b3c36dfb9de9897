"""Starts one OS process per node through a fork server, with a log file each; reaps and stops them."""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import logging
import multiprocessing as mp
import os
import selectors
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import forkserver
from multiprocessing import process as mp_process
from pathlib import Path

from protocols.processes import die_with_parent

log = logging.getLogger("coordinator.launcher")

PRELOAD = [
    "agent_node.node",
    "netsim.medium",
    "numpy.random",
]  # what every run's processes use (numpy.random: every agent draws from its own stream); each world kind adds its own
M_ARENA_MAX = -8  # glibc's mallopt parameter


def log_to_file(name: str, log_path: str) -> None:
    """A node process's stdout, stderr and logging go to its own log file, each line naming the process."""
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    logging.basicConfig(
        level=logging.INFO,
        force=True,
        stream=sys.stderr,
        format=f"%(asctime)s {name} pid={os.getpid()} %(levelname)s %(name)s: %(message)s",
    )


def call_target(target: str, kwargs: dict) -> int:
    """Run a node program ("module:function" called with kwargs); its exit code."""
    module, func = target.split(":")
    code = getattr(importlib.import_module(module), func)(**kwargs)
    logging.shutdown()
    return code or 0


def _child_main(name: str, target: str, kwargs: dict, log_path: str) -> None:
    """Runs in the child: log to its own file, die with the parent, call the target, exit with its code."""
    # what the fork server preloaded is shared with every child until written; the collector must not write
    # it (each collection marks every object it walks, which copies each page of the shared heap into the
    # child): freeze it before anything is allocated
    gc.freeze()
    try:  # one malloc arena for all threads (libzmq's two and the ZAP thread would each dirty one of their own)
        ctypes.CDLL(None).mallopt(M_ARENA_MAX, 1)
    except (OSError, AttributeError):
        pass
    log_to_file(name, log_path)
    # no orphans: the fork server exits when the coordinator does (it waits for EOF on a pipe whose
    # write end every child inherits, so close ours), and its death sends us SIGTERM
    alive_fd = getattr(forkserver._forkserver, "_forkserver_alive_fd", None)
    if alive_fd is not None:
        os.close(alive_fd)
        forkserver._forkserver._forkserver_alive_fd = None
    die_with_parent()
    if os.getppid() == 1:  # the parent died before prctl took effect
        sys.exit(0)
    os.setpgrp()  # signals for the terminal's or a job's process group are the coordinator's to handle, in order
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the fork server ignores it (below); a node sets its own
    sys.exit(call_target(target, kwargs))


@contextlib.contextmanager
def _main_hidden():
    """Keep multiprocessing from re-running the parent's __main__ in each child: the child needs only
    its target's module, not the CLI's imports (matplotlib, the supervisor), which would cost each of
    hundreds of nodes half a second of CPU and megabytes of private memory."""
    main = sys.modules["__main__"]
    saved = main.__dict__.pop("__file__", None), getattr(main, "__spec__", None)
    main.__spec__ = None
    try:
        yield
    finally:
        main.__spec__ = saved[1]
        if saved[0] is not None:
            main.__file__ = saved[0]


@dataclass
class Child:
    """One launched process and how to start it again."""

    name: str
    target: str
    kwargs: dict
    log_path: Path
    process: mp.process.BaseProcess | None = None
    restarts: int = 0
    reaped: bool = field(default=False)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def log_tail(self, lines: int = 15) -> str:
        """The last lines of the child's log file."""
        try:
            with open(self.log_path, "rb") as fh:
                fh.seek(0, os.SEEK_END)
                fh.seek(max(0, fh.tell() - 8192))
                return "\n".join(fh.read().decode(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


class Launcher:
    """Fork-server launcher: fast, small children (shared preloaded modules), one log file each."""

    def __init__(self, log_dir: Path, preload: list[str] = PRELOAD):
        self.log_dir = Path(log_dir)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.mp = mp.get_context("forkserver")
        self.mp.set_forkserver_preload(preload)
        self.children: dict[str, Child] = {}
        self._exits = selectors.DefaultSelector()  # sentinels of the children not yet reaped
        # start the fork server ignoring SIGINT/SIGTERM (ignored signals survive exec): a signal to the
        # whole process group must reach the coordinator, which stops everyone in order, not the server
        old = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            forkserver.ensure_running()
        finally:
            for s, h in old.items():
                signal.signal(s, h)

    def reachable(self, endpoint: str) -> str:
        """The coordinator's endpoint as its children reach it (this machine: as bound)."""
        return endpoint

    def check_capacity(self, processes: int) -> None:
        """This machine starts whatever it is asked to (its limits show as failed starts)."""

    def start(self, name: str, target: str, **kwargs) -> Child:
        """Start (or restart) the process called name."""
        child = self.children.get(name) or Child(name, target, kwargs, self.log_dir / f"{name}.log")
        child.process = self.mp.Process(
            target=_child_main, name=name, args=(name, target, kwargs, str(child.log_path)), daemon=False
        )
        with _main_hidden():
            child.process.start()
        # multiprocessing keeps every started process in a set it polls on each start (one selector per
        # child: O(n) a start, minutes at a thousand nodes); this launcher reaps and stops its own children
        mp_process._children.discard(child.process)
        child.reaped = False
        self.children[name] = child
        self._exits.register(child.process.sentinel, selectors.EVENT_READ, (child, child.process))
        return child

    def reap(self, timeout: float = 0.0) -> list[Child]:
        """Children that have exited since the last call (waits up to timeout for one). One selector holds
        every live child's sentinel: a call costs what the exits cost, not a poll set built of all children
        (called on every turn of the coordinator's loop, that was O(n) a turn)."""
        if not self._exits.get_map():
            return []
        dead = []
        for key, _ in self._exits.select(timeout):
            child, process = key.data
            self._exits.unregister(key.fileobj)
            if process is not child.process:  # an earlier process of a child started again meanwhile
                continue
            process.join(0.1)
            child.reaped = True
            dead.append(child)
        return dead

    def placement(self) -> dict[str, dict]:
        """Where each process runs: this host, and its pid."""
        host = socket.gethostname()
        return {name: {"hostname": host, "pid": c.pid} for name, c in self.children.items() if c.process}

    def alive(self) -> list[Child]:
        """Children still running."""
        return [c for c in self.children.values() if c.process and c.process.is_alive()]

    def stop_all(self, grace_s: float = 5.0) -> None:
        """SIGTERM everyone still running, wait grace_s, then SIGKILL stragglers."""
        for child in self.alive():
            child.process.terminate()
        deadline = time.monotonic() + grace_s  # one shared grace period, not one per child
        for child in list(self.children.values()):
            if child.process:
                child.process.join(max(0.0, deadline - time.monotonic()))
        for child in self.alive():
            log.warning("%s (pid %s) ignored SIGTERM for %.1f s; killing it", child.name, child.pid, grace_s)
            child.process.kill()
            child.process.join(1.0)
