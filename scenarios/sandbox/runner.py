"""Parent side of the sandbox: spawn the worker child (inside bubblewrap), talk msgpack frames, kill and replace it."""

from __future__ import annotations

import functools
import json
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scenarios.sandbox import isolation
from scenarios.sandbox import worker as wire
from scenarios.sandbox.isolation import SandboxUnavailable  # noqa: F401 - re-exported for callers
from scenarios.sandbox.limits import SandboxLimits

log = logging.getLogger(__name__)

WORKER_PATH = str(Path(wire.__file__).resolve())
STARTUP_S = 30.0  # a fresh worker (bwrap, python, numpy) must be ready within this; not counted in wall_s
ERRORS = (
    "syntax",
    "exception",
    "timeout",
    "memory",
    "forbidden_import",
    "forbidden_operation",
    "bad_output",
    "missing_function",
    "crashed",
)


@dataclass
class Result:
    """Outcome of one sandboxed load or call; `error` is one of ERRORS when `ok` is False.

    isolated: the code ran inside the bubblewrap sandbox (all namespaces, minimal view, uid nobody);
    network_isolated: it had no network but its own loopback (True exactly when isolated)."""

    ok: bool
    value: Any = None
    error: str | None = None
    message: str = ""
    traceback: str = ""
    seconds: float = 0.0
    network_isolated: bool = False
    isolated: bool = False


class BadReply(ValueError):
    """A reply frame that is not a well-formed {ok, value | error, message, traceback} record."""


def decode_reply(frame: bytes) -> dict:
    """The fields of a Result from one reply frame; BadReply for anything malformed (never another error)."""
    try:
        reply = wire.unpack(frame)
    except Exception as exc:  # noqa: BLE001 - msgpack, the array hook, unicode: all mean a bad reply
        raise BadReply(f"undecodable reply: {type(exc).__name__}: {exc}") from None
    if not isinstance(reply, dict):
        raise BadReply(f"reply is a {type(reply).__name__}, not a record")
    ok = reply.get("ok")
    if not isinstance(ok, bool):
        raise BadReply(f"reply field 'ok' is {type(ok).__name__}, not bool")
    for key in ("message", "traceback"):
        if not isinstance(reply.get(key, ""), str):
            raise BadReply(f"reply field {key!r} is not a string")
    error = reply.get("error")
    if ok and error is not None:
        raise BadReply("reply is ok and has an error")
    if not ok and error not in ERRORS:
        raise BadReply(f"reply has unknown error {str(error)[:60]!r}")
    return {
        "ok": ok,
        "value": reply.get("value") if ok else None,
        "error": error,
        "message": reply.get("message", ""),
        "traceback": reply.get("traceback", ""),
    }


@functools.lru_cache(maxsize=1)
def _site_dirs() -> str:
    """Directories holding msgpack and numpy: the unisolated child runs with -S and appends these to sys.path."""
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
    """One worker process (inside bwrap unless isolation='none') and its two pipes."""

    def __init__(self, limits: SandboxLimits):
        self.limits = limits
        self.isolated = limits.isolation == "bwrap"
        config = json.dumps(
            {
                "cpu_s": limits.cpu_s,
                "memory_mb": limits.memory_mb,
                "max_open_files": limits.max_open_files,
                "max_processes": limits.max_processes,
                "allowed_modules": list(limits.allowed_modules),
                "isolated": self.isolated,
            }
        )
        if self.isolated:
            bwrap = isolation.require(limits.bwrap_path)  # SandboxUnavailable: generated code is refused
            self.launched = isolation.launch(
                bwrap,
                [isolation.VIEW_SITE, config],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
            )
            self.proc = self.launched.proc
        else:
            log.warning(
                "sandbox worker started WITHOUT OS isolation (SandboxLimits.isolation='none'): the code "
                "runs as this user, sees this machine's files, network and processes; trusted code only"
            )
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-S", WORKER_PATH, _site_dirs(), config],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env={},
                cwd="/",
                bufsize=0,
                start_new_session=True,
            )
            self.launched = isolation.Launched(self.proc, None)
        self.reader = wire.FrameReader(self.proc.stdout.fileno(), limits.max_frame_mb * 2**20)
        self.killed_by_us = False
        self.ready = False

    def _wait_ready(self) -> Result | None:
        """Read the worker's start-up frame (sent before any untrusted code runs); a Result if it never came."""
        t0 = time.perf_counter()
        try:
            ok = wire.unpack(self.reader.read(time.monotonic() + STARTUP_S)) == wire.READY
        except TimeoutError:
            self.kill()
            return self._result(
                False,
                error="crashed",
                seconds=time.perf_counter() - t0,
                message=f"worker did not start within {STARTUP_S} s; killed",
            )
        except (EOFError, OSError):
            return self._died(time.perf_counter() - t0)
        except Exception:  # noqa: BLE001 - anything else in place of the ready frame
            ok = False
        if not ok:
            self.kill()
            return self._result(
                False, error="crashed", message="worker sent no start-up frame", seconds=time.perf_counter() - t0
            )
        self.ready = True
        return None

    def alive(self) -> bool:
        return self.proc.poll() is None

    def request(self, msg: dict) -> Result:
        """Send one request and wait up to wall_s for the reply (after the worker's start-up); SIGKILL the child
        (its whole PID namespace) on timeout."""
        if not self.ready:
            failed = self._wait_ready()
            if failed is not None:
                return failed
        t0 = time.perf_counter()
        try:
            wire.write_frame(self.proc.stdin.fileno(), wire.pack(msg))
            frame = self.reader.read(time.monotonic() + self.limits.wall_s)
            fields = decode_reply(frame)
        except TimeoutError:
            self.kill()
            return self._result(
                False,
                error="timeout",
                seconds=time.perf_counter() - t0,
                message=f"wall-clock limit of {self.limits.wall_s} s exceeded; worker killed",
            )
        except (EOFError, BrokenPipeError, OSError):
            return self._died(time.perf_counter() - t0)
        except ValueError as exc:  # oversized frame or malformed reply (BadReply)
            self.kill()
            return self._result(
                False,
                error="bad_output",
                message=f"malformed reply from the worker: {exc}",
                seconds=time.perf_counter() - t0,
            )
        return self._result(seconds=time.perf_counter() - t0, **fields)

    def _died(self, seconds: float) -> Result:
        try:
            code = self.proc.wait(timeout=2)
        except subprocess.TimeoutExpired:
            self.kill()
            code = self.proc.returncode
        self.kill()  # the namespace goes with it
        sig = None
        if code is not None and code < 0:
            sig = -code
        elif self.isolated and code is not None and code > 128:
            sig = code - 128  # bwrap exits 128+N when the worker died from signal N
        if sig == signal.SIGXCPU:
            error, msg = "timeout", f"CPU limit of {self.limits.cpu_s} s exceeded (SIGXCPU)"
        elif sig == signal.SIGXFSZ:
            error, msg = "forbidden_operation", "file size limit exceeded (SIGXFSZ)"
        elif sig == signal.SIGKILL:
            error, msg = "crashed", "worker killed by SIGKILL (kernel OOM killer or an external kill)"
        elif sig is not None:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            error, msg = "crashed", f"worker died from signal {name}"
        elif code == wire.NOT_ISOLATED_EXIT and self.isolated:
            error, msg = "crashed", "worker refused to run: it could not drop to uid nobody without capabilities"
        else:
            error, msg = "crashed", f"worker exited with status {code}"
        return self._result(False, error=error, message=msg, seconds=seconds)

    def _result(self, ok, **kw) -> Result:
        return Result(ok=ok, network_isolated=self.isolated, isolated=self.isolated, **kw)

    def kill(self) -> None:
        """SIGKILL the worker and everything it started (the whole PID namespace), then reap."""
        if self.proc.poll() is None:
            self.killed_by_us = True
        isolation.kill(self.launched)  # unisolated (no namespace init): the worker's process group
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self) -> None:
        """Polite shutdown: closing stdin makes the worker exit; SIGKILL (namespace included) in any case."""
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
