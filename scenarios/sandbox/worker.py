"""Runs inside the sandbox child: applies limits, loads one function, answers msgpack calls over a pipe."""

# Started by runner.py, normally inside bubblewrap (see isolation.py) as
#   `python -I -S /sandbox/worker.py /sandbox/site CONFIG_JSON` with an empty environment,
# or, only with SandboxLimits(isolation="none"), as `python -I -S worker.py SITE_DIRS CONFIG_JSON`.
# -S drops site-packages, so the parent passes the directories holding msgpack and numpy and we append
# them to sys.path by hand before anything untrusted runs. Only the stdlib, msgpack and numpy are
# imported here; the parent imports this file only for the codec and frame helpers below.
# The OS is the boundary (namespaces, view, uid nobody, rlimits, kill); harden() below is only a lint that
# turns the obvious attempts into typed errors (forbidden_import, forbidden_operation).
import os
import select
import struct
import sys

HEADER = struct.Struct("<I")
DENIED_SUBMODULES = ("numpy.ctypeslib", "numpy.f2py", "numpy.distutils", "numpy.testing", "numpy.lib.format")


# ----------------------------------------------------------------------------- codec (both sides)
def _encode(obj):
    """msgpack `default`: numpy arrays as {__nd__, dtype, shape, data}; numpy scalars as Python ones."""
    import numpy as np

    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or obj.dtype.kind not in ND_KINDS or obj.dtype.fields is not None:
            raise TypeError(f"arrays of dtype {obj.dtype} cannot be sent (numeric, bool, datetime, str only)")
        arr = np.ascontiguousarray(obj)
        return {"__nd__": True, "dtype": arr.dtype.str, "shape": list(arr.shape), "data": arr.tobytes()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"cannot send a value of type {type(obj).__name__}")


ND_KEYS = frozenset(("__nd__", "dtype", "shape", "data"))
ND_KINDS = "biufcmMSU"  # plain numeric, bool, datetime and fixed-width string dtypes; never object or void


def _decode(d):
    """msgpack `object_hook`: rebuild numpy arrays; never unpickles. Any malformed array is a ValueError."""
    if d.get("__nd__") is not True:
        return d
    import numpy as np

    if set(d) != ND_KEYS:
        raise ValueError(f"array record with keys {sorted(map(str, d))}")
    dtype, shape, data = d["dtype"], d["shape"], d["data"]
    if not isinstance(dtype, str) or len(dtype) > 32:
        raise ValueError("array dtype must be a short string")
    try:
        dt = np.dtype(dtype)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad array dtype {dtype!r}: {exc}") from None
    if dt.kind not in ND_KINDS or dt.hasobject or dt.fields is not None or dt.subdtype is not None or dt.itemsize == 0:
        raise ValueError(f"array dtype {dtype!r} refused")
    if not isinstance(shape, (list, tuple)) or len(shape) > 32 or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"bad array shape {shape!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"array data must be bytes, got {type(data).__name__}")
    count = 1
    for n in shape:
        count *= n
    if count * dt.itemsize != len(data):
        raise ValueError(
            f"array of shape {list(shape)} and dtype {dt} needs {count * dt.itemsize} bytes, got {len(data)}"
        )
    return np.frombuffer(data, dtype=dt).reshape(shape).copy()


def pack(obj) -> bytes:
    import msgpack

    return msgpack.packb(obj, default=_encode, use_bin_type=True)


def unpack(data: bytes):
    import msgpack

    return msgpack.unpackb(data, object_hook=_decode, raw=False, strict_map_key=False)


def write_frame(fd: int, payload: bytes) -> None:
    """Length-prefixed frame: 4-byte little-endian length, then the msgpack payload."""
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[os.write(fd, view) :]


class FrameReader:
    """Buffered reader of length-prefixed frames from a pipe fd, with an optional deadline."""

    def __init__(self, fd: int, max_size: int = 1 << 30):
        self.fd, self.max_size, self.buf = fd, max_size, bytearray()

    def _fill(self, deadline):
        if deadline is not None:
            import time

            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def read(self, deadline=None) -> bytes:
        while len(self.buf) < 4:
            self._fill(deadline)
        (size,) = HEADER.unpack_from(self.buf)
        if size > self.max_size:
            raise ValueError(f"frame of {size} bytes exceeds the limit of {self.max_size}")
        while len(self.buf) < 4 + size:
            self._fill(deadline)
        frame = bytes(self.buf[4 : 4 + size])
        del self.buf[: 4 + size]
        return frame


# ----------------------------------------------------------------------------- child-only hardening
class SandboxViolation(Exception):
    """Raised (and recorded) when untrusted code tries a forbidden import or operation."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind


class ForbiddenImport(SandboxViolation, ImportError):
    pass


VIOLATIONS = []  # recorded even if the untrusted code catches the exception


def _refuse(what):
    def refused(*args, **kwargs):
        err = SandboxViolation("forbidden_operation", f"{what} is not allowed in the sandbox")
        VIOLATIONS.append(err)
        raise err

    return refused


def _write_mode(mode) -> bool:
    return any(c in str(mode) for c in "wax+")


def harden(limits: dict) -> dict:
    """Refuse sockets, process spawning and file writes; apply rlimits. Returns the user builtins."""
    import _posixsubprocess
    import _socket
    import builtins
    import io
    import posix
    import resource
    import signal
    import socket

    for name in (
        "socket",
        "socketpair",
        "fromfd",
        "create_connection",
        "create_server",
        "getaddrinfo",
        "gethostbyname",
        "gethostbyname_ex",
        "gethostbyaddr",
    ):
        for mod in (socket, _socket):
            if hasattr(mod, name):
                setattr(mod, name, _refuse(f"socket.{name}"))
    _posixsubprocess.fork_exec = _refuse("subprocess")
    dangerous = (
        "system",
        "popen",
        "fork",
        "forkpty",
        "execv",
        "execve",
        "execl",
        "execle",
        "execlp",
        "execlpe",
        "execvp",
        "execvpe",
        "spawnl",
        "spawnle",
        "spawnlp",
        "spawnlpe",
        "spawnv",
        "spawnve",
        "spawnvp",
        "spawnvpe",
        "posix_spawn",
        "posix_spawnp",
        "kill",
        "killpg",
        "remove",
        "unlink",
        "rmdir",
        "removedirs",
        "rename",
        "renames",
        "replace",
        "mkdir",
        "makedirs",
        "chmod",
        "fchmod",
        "lchmod",
        "chown",
        "fchown",
        "lchown",
        "truncate",
        "ftruncate",
        "symlink",
        "link",
        "mkfifo",
        "mknod",
        "putenv",
        "unsetenv",
        "chdir",
        "fchdir",
        "chroot",
        "setuid",
        "setgid",
        "setsid",
        "dup2",
        "write",
        "pwrite",
        "writev",
        "sendfile",
        "utime",
        "mmap",
    )
    for name in dangerous:
        for mod in (os, posix):
            if hasattr(mod, name):
                setattr(mod, name, _refuse(f"os.{name}"))

    real_open, real_os_open, real_fileio = builtins.open, posix.open, io.FileIO

    def safe_open(file, mode="r", *args, **kwargs):
        if _write_mode(mode):
            return _refuse(f"open(..., {mode!r})")()
        return real_open(file, mode, *args, **kwargs)

    def safe_os_open(path, flags, *args, **kwargs):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND):
            return _refuse("os.open for writing")()
        return real_os_open(path, flags, *args, **kwargs)

    class SafeFileIO(real_fileio):
        def __init__(self, file, mode="r", *args, **kwargs):
            if _write_mode(mode):
                _refuse(f"FileIO(..., {mode!r})")()
            super().__init__(file, mode, *args, **kwargs)

    builtins.open = io.open = safe_open
    os.open = posix.open = safe_os_open
    io.FileIO = SafeFileIO

    # rlimits: memory is a budget above what python+numpy already map; FSIZE 0 backs the open() checks.
    with real_open("/proc/self/statm") as f:
        baseline = int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    mem = baseline + int(limits["memory_mb"]) * 2**20
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead of killing us
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (limits["max_open_files"],) * 2)
    if limits.get("isolated"):  # we are the only process of uid nobody in this user namespace
        nproc = 1 + int(limits.get("max_processes", 0))
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    elif os.geteuid() != 0:  # root ignores RLIMIT_NPROC; fork/exec are refused above in any case
        resource.setrlimit(resource.RLIMIT_NPROC, (0, 0))

    allowed = frozenset(limits["allowed_modules"])
    real_import = builtins.__import__

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        full = [name] + [f"{name}.{item}" for item in (fromlist or ())]
        bad = (
            level != 0
            or name.split(".")[0] not in allowed
            or any(n == d or n.startswith(d + ".") for n in full for d in DENIED_SUBMODULES)
        )
        if bad:
            err = ForbiddenImport("forbidden_import", f"import of {name!r} is not allowed in the sandbox")
            VIOLATIONS.append(err)
            raise err
        return real_import(name, globals, locals, fromlist, level)

    user_builtins = dict(builtins.__dict__)
    user_builtins["__import__"] = guarded_import
    user_builtins["open"] = safe_open
    for name in ("breakpoint", "input", "help", "exit", "quit", "copyright", "credits", "license"):
        user_builtins.pop(name, None)
    return user_builtins


# ----------------------------------------------------------------------------- child main loop
class Worker:
    """Holds the loaded function and answers {op: load|call} requests."""

    def __init__(self, limits: dict, user_builtins: dict):
        import resource
        import traceback

        self.limits, self.user_builtins = limits, user_builtins
        self.resource, self.traceback = resource, traceback
        self.func, self.expect = None, None

    def _arm_cpu(self):
        r = self.resource
        used = sum(os.times()[:2])
        soft = -int(-(used + self.limits["cpu_s"]) // 1)  # ceil: RLIMIT_CPU is whole seconds
        r.setrlimit(r.RLIMIT_CPU, (soft, r.RLIM_INFINITY))

    def _failure(self, exc, default="exception"):
        kind = default
        if VIOLATIONS:
            kind = VIOLATIONS[0].kind
        elif isinstance(exc, SandboxViolation):
            kind = exc.kind
        elif isinstance(exc, MemoryError):
            kind = "memory"
        elif isinstance(exc, OSError) and exc.errno == 27:  # EFBIG from RLIMIT_FSIZE
            kind = "forbidden_operation"
        tb = "".join(self.traceback.format_exception(type(exc), exc, exc.__traceback__))
        msg = str(VIOLATIONS[0]) if VIOLATIONS else f"{type(exc).__name__}: {exc}"
        return {"ok": False, "error": kind, "message": msg, "traceback": tb}

    def load(self, req):
        import linecache

        source, name = req["source"], req["func"]
        self.expect = req.get("expect")
        linecache.cache["<sandbox>"] = (len(source), None, source.splitlines(True), "<sandbox>")
        try:
            code = compile(source, "<sandbox>", "exec")
        except (SyntaxError, ValueError) as exc:
            return self._failure(exc, "syntax") | {"error": "syntax"}
        ns = {"__name__": "__sandbox__", "__builtins__": self.user_builtins}
        VIOLATIONS.clear()
        try:
            self._arm_cpu()
            exec(code, ns)
        except BaseException as exc:  # noqa: BLE001 - everything goes back as a typed result
            return self._failure(exc)
        if VIOLATIONS:
            return self._failure(VIOLATIONS[0])
        func = ns.get(name)
        if not callable(func):
            return {"ok": False, "error": "missing_function", "message": f"no function named {name!r}", "traceback": ""}
        self.func = func
        return {"ok": True, "value": None}

    def _check(self, value):
        exp = self.expect
        if not exp or (exp.get("shape") is None and exp.get("dtype") is None):
            return None
        import numpy as np

        if not isinstance(value, np.ndarray):
            return f"expected a numpy array, got {type(value).__name__}"
        if exp.get("dtype") is not None and value.dtype != np.dtype(exp["dtype"]):
            return f"expected dtype {np.dtype(exp['dtype'])}, got {value.dtype}"
        shape = exp.get("shape")
        if shape is not None and (
            len(shape) != value.ndim or any(s not in (None, -1) and s != v for s, v in zip(shape, value.shape))
        ):
            return f"expected shape {tuple(shape)}, got {value.shape}"
        return None

    def call(self, req):
        if self.func is None:
            return {"ok": False, "error": "missing_function", "message": "no function loaded", "traceback": ""}
        VIOLATIONS.clear()
        try:
            self._arm_cpu()
            value = self.func(*req["args"])
        except BaseException as exc:  # noqa: BLE001
            return self._failure(exc)
        if VIOLATIONS:
            return self._failure(VIOLATIONS[0])
        problem = self._check(value)
        if problem:
            return {"ok": False, "error": "bad_output", "message": problem, "traceback": ""}
        return {"ok": True, "value": value}


SANDBOX_UID = 65534  # uid and gid the untrusted code runs as (nobody)
NOT_ISOLATED_EXIT = 78  # exit status when the worker finds itself not dropped to nobody without capabilities
READY = {"ready": True}  # the first frame, sent before any untrusted code runs


def become_nobody():
    """Inside bwrap: drop from the namespace's uid 0 (used to build the view) to 65534, then check that the
    process is 65534 everywhere, has no capabilities and cannot gain any. Exits 78 otherwise."""
    if os.getuid() == 0 or os.geteuid() == 0:
        os.setgroups([])
        os.setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
        os.setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID)
    status = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            status[key] = value.split()
    problems = []
    for key in ("Uid", "Gid"):
        if any(int(v) != SANDBOX_UID for v in status.get(key, ["?"])):
            problems.append(f"{key} {status.get(key)}")
    if any(int(v) != SANDBOX_UID for v in status.get("Groups", [])):
        problems.append(f"groups {status.get('Groups')}")
    for key in ("CapPrm", "CapEff", "CapAmb"):
        if int(status.get(key, ["1"])[0], 16) != 0:
            problems.append(f"{key} {status.get(key)}")
    if status.get("NoNewPrivs") != ["1"]:
        problems.append("no_new_privs not set")
    if problems:
        os.write(2, ("sandbox worker not isolated: " + ", ".join(problems) + "\n").encode())
        os._exit(NOT_ISOLATED_EXIT)
    return [int(v) for v in status["Uid"][:3]]


def main(argv):
    site_dirs, config = argv[1], argv[2]
    import json

    limits = json.loads(config)
    if limits.get("isolated"):
        uids = become_nobody()
        os.closerange(3, 1 << 16)  # nothing of bwrap's (info, seccomp, ...) stays open for the code
    for d in site_dirs.split(os.pathsep):
        if d and d not in sys.path:
            sys.path.append(d)
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"  # one BLAS thread: small address space, fair CPU accounting
    import importlib

    if limits.get("probe"):  # isolation.require(): report what the sandbox looks like from inside
        import msgpack  # noqa: F401
        import numpy  # noqa: F401

        pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
        print(json.dumps({"uid": uids, "pids": pids, "root": sorted(os.listdir("/"))}), flush=True)
        return 0
    # preload what we and the allowed modules need while imports still work (before rlimits and hooks)
    for name in ("traceback", "linecache", "msgpack", *limits["allowed_modules"]):
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    reply_fd = os.dup(1)  # the reply pipe; fd 1 becomes /dev/null so print() cannot corrupt frames
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    user_builtins = harden(limits)
    worker = Worker(limits, user_builtins)
    reader = FrameReader(0)
    _raw_write_frame(reply_fd, pack(READY))  # start-up done: the parent's wall clock starts now
    while True:
        try:
            req = unpack(reader.read())
        except EOFError:
            return 0
        op = req.get("op")
        reply = (
            worker.load(req)
            if op == "load"
            else worker.call(req)
            if op == "call"
            else {"ok": False, "error": "crashed", "message": f"unknown op {op!r}", "traceback": ""}
        )
        try:
            payload = pack(reply)
        except Exception as exc:  # noqa: BLE001 - value not serialisable
            payload = pack(
                {"ok": False, "error": "bad_output", "message": f"cannot serialise output: {exc}", "traceback": ""}
            )
        VIOLATIONS.clear()
        _raw_write_frame(reply_fd, payload)


_raw_os_write = os.write


def _raw_write_frame(fd, payload):
    view = memoryview(HEADER.pack(len(payload)) + payload)
    while view:
        view = view[_raw_os_write(fd, view) :]


if __name__ == "__main__":
    sys.exit(main(sys.argv))
