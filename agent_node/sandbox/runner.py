"""Parent side of the sandbox: spawn the worker child, talk msgpack frames, kill and replace it."""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent_node.sandbox import worker as wire
from agent_node.sandbox.limits import SandboxLimits

WORKER_PATH = str(Path(wire.__file__).resolve())
ERRORS = ("syntax", "exception", "timeout", "memory", "forbidden_import", "forbidden_operation",
          "bad_output", "missing_function", "crashed")


@dataclass
class Result:
    """Outcome of one sandboxed load or call; `error` is one of ERRORS when `ok` is False."""

    ok: bool
    value: Any = None
    error: str | None = None
    message: str = ""
    traceback: str = ""
    seconds: float = 0.0
    network_isolated: bool = False


@functools.lru_cache(maxsize=1)
def unshare_works() -> bool:
    """Probe once whether `unshare -n` can create a network namespace here (root or user namespaces)."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-n", "true"], capture_output=True, timeout=5).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.lru_cache(maxsize=1)
def _site_dirs() -> str:
    """Directories holding msgpack and numpy: the child runs with -S and appends these to sys.path."""
    import msgpack
    import numpy
    dirs = {str(Path(m.__file__).resolve().parents[1]) for m in (msgpack, numpy)}
    return os.pathsep.join(sorted(dirs))


def _expect_dict(expect) -> dict | None:
    if expect is None:
        return None
    if not isinstance(expect, dict):
        raise TypeError("expect must be a dict with optional 'shape' and 'dtype'")
    shape = expect.get("shape")
    dtype = expect.get("dtype")
    return {"shape": None if shape is None else list(shape), "dtype": None if dtype is None else str(dtype)}


class _Child:
    """One worker process and its two pipes."""

    def __init__(self, limits: SandboxLimits):
        self.limits = limits
        self.network_isolated = limits.network_namespace != "off" and unshare_works()
        if limits.network_namespace == "on" and not self.network_isolated:
            raise RuntimeError("network_namespace='on' but `unshare -n` does not work on this machine")
        prefix = [shutil.which("unshare"), "-n"] if self.network_isolated else []
        config = json.dumps({"cpu_s": limits.cpu_s, "memory_mb": limits.memory_mb,
                             "max_open_files": limits.max_open_files,
                             "allowed_modules": list(limits.allowed_modules)})
        self.proc = subprocess.Popen([*prefix, sys.executable, "-I", "-S", WORKER_PATH, _site_dirs(), config],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     env={}, cwd="/", bufsize=0, start_new_session=True)
        self.reader = wire.FrameReader(self.proc.stdout.fileno(), limits.max_frame_mb * 2**20)
        self.killed_by_us = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, msg: dict) -> Result:
        """Send one request and wait up to wall_s for the reply; SIGKILL the child on timeout."""
        t0 = time.perf_counter()
        try:
            wire.write_frame(self.proc.stdin.fileno(), wire.pack(msg))
            reply = wire.unpack(self.reader.read(time.monotonic() + self.limits.wall_s))
        except TimeoutError:
            self.kill()
            return self._result(False, error="timeout", seconds=time.perf_counter() - t0,
                                message=f"wall-clock limit of {self.limits.wall_s} s exceeded; worker killed")
        except (EOFError, BrokenPipeError, OSError):
            return self._died(time.perf_counter() - t0)
        except ValueError as exc:  # oversized frame or undecodable reply
            self.kill()
            return self._result(False, error="bad_output", message=str(exc), seconds=time.perf_counter() - t0)
        return self._result(reply.get("ok", False), value=reply.get("value"), error=reply.get("error"),
                            message=reply.get("message", ""), traceback=reply.get("traceback", ""),
                            seconds=time.perf_counter() - t0)

    def _died(self, seconds: float) -> Result:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        if code == -signal.SIGXCPU:
            error, msg = "timeout", f"CPU limit of {self.limits.cpu_s} s exceeded (SIGXCPU)"
        elif code == -signal.SIGXFSZ:
            error, msg = "forbidden_operation", "file size limit exceeded (SIGXFSZ)"
        elif code == -signal.SIGKILL:
            error, msg = "crashed", "worker killed by SIGKILL (kernel OOM killer or an external kill)"
        elif code is not None and code < 0:
            error, msg = "crashed", f"worker died from signal {signal.Signals(-code).name}"
        else:
            error, msg = "crashed", f"worker exited with status {code}"
        return self._result(False, error=error, message=msg, seconds=seconds)

    def _result(self, ok, **kw) -> Result:
        return Result(ok=ok, network_isolated=self.network_isolated, **kw)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.killed_by_us = True
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        """Polite shutdown: closing stdin makes the worker exit; SIGKILL if it lingers."""
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=1)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


class Sandbox:
    """One-shot execution: a fresh worker process per run."""

    def __init__(self, limits: SandboxLimits | None = None):
        self.limits = limits or SandboxLimits()

    def run_once(self, source: str, func: str, args=(), expect: dict | None = None) -> Result:
        t0 = time.perf_counter()
        child = _Child(self.limits)
        try:
            res = child.request({"op": "load", "source": source, "func": func, "expect": _expect_dict(expect)})
            if res.ok:
                res = child.request({"op": "call", "args": list(args)})
        finally:
            child.kill()
        res.seconds = time.perf_counter() - t0
        return res


class PersistentWorker:
    """Keeps one validated function loaded in a worker child; replaces the child after it dies."""

    def __init__(self, source: str, func: str, limits: SandboxLimits | None = None, expect: dict | None = None):
        self.limits = limits or SandboxLimits()
        self._load = {"op": "load", "source": source, "func": func, "expect": _expect_dict(expect)}
        self.replacements = 0
        self._child: _Child | None = None
        self.load_result = self._start()

    def _start(self) -> Result:
        self._child = _Child(self.limits)
        res = self._child.request(self._load)
        if not res.ok:
            self._child.kill()
        return res

    def call(self, *args) -> Result:
        if not self.load_result.ok:
            return self.load_result  # the source never validated; do not keep respawning it
        if self._child is None or not self._child.alive():
            self._replace()
            if not self.load_result.ok:
                return self.load_result
        res = self._child.request({"op": "call", "args": list(args)})
        if not self._child.alive() or self._child.killed_by_us:
            self._child.kill()
            self._replace()  # ready for the next call
        return res

    def _replace(self) -> None:
        if self._child is not None:
            self._child.kill()
        self.replacements += 1
        self.load_result = self._start()

    @property
    def pid(self) -> int | None:
        return self._child.proc.pid if self._child is not None else None

    def close(self) -> None:
        if self._child is not None:
            self._child.close()
            self._child = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:  # noqa: BLE001
            pass
