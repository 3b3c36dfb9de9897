"""Sandbox for LLM-written code: every failure mode is typed, valid code works, workers get replaced, and the OS
(bubblewrap: namespaces, a minimal read-only view, uid nobody) is the boundary: the attacks below first get past
the Python-level lint on purpose (the real __import__ / open from the guards' closures, ctypes, raw sockets) and
the host must still see no effect."""

from __future__ import annotations

import logging
import math
import os
import secrets
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from scenarios.sandbox import PersistentWorker, Sandbox, SandboxLimits

FAST = SandboxLimits(cpu_s=1, wall_s=5, memory_mb=128)
ROOT = Path(__file__).resolve().parents[1]

# Prepended to attack sources: gets the real __import__ past the import lint (from the guard's closure, else
# from an object graph walk), then ctypes and libc: raw system calls that no Python-level guard sees.
ESCAPE = textwrap.dedent("""
    def _real_import():
        b = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
        guard = b["__import__"]
        for cell in getattr(guard, "__closure__", None) or ():
            v = cell.cell_contents
            if callable(v) and getattr(v, "__name__", "") == "__import__" and v is not guard:
                return "closure", v
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "catch_warnings":
                return "subclasses", cls()._module.__builtins__["__import__"]
        raise RuntimeError("no escape route left")


    def _real_open():
        b = __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
        for cell in getattr(b["open"], "__closure__", None) or ():
            if getattr(cell.cell_contents, "__name__", "") == "open":
                return cell.cell_contents
        return _imp("io").open


    ROUTE, _imp = _real_import()
    ctypes = _imp("ctypes")
    libc = ctypes.CDLL(None, use_errno=True)
    real_open = _real_open()
    _socket = _imp("_socket")
""")


def run(source: str, *args, limits: SandboxLimits = FAST, expect=None, func: str = "f"):
    return Sandbox(limits).run_once(source, func, list(args), expect=expect)


def attack(body: str, *args, limits: SandboxLimits = FAST):
    """Run ESCAPE + body (which defines f) and return f's value; the escape itself must have worked."""
    res = run(ESCAPE + textwrap.dedent(body), *args, limits=limits)
    assert res.ok, (res.error, res.message, res.traceback)
    return res.value


def _procs_named(comm: str) -> list[int]:
    """Host pids whose /proc/<pid>/comm is `comm` (any process on this machine)."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                    found.append(int(pid))
            except OSError:
                pass
    return found


def _wait(pred, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.02)
    return pred()


@pytest.fixture
def marker():
    """A unique process name (comm, 15 chars max); any survivor is killed after the test."""
    name = "nmsbx" + secrets.token_hex(4)
    yield name
    for pid in _procs_named(name):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_valid_function_returns_value():
    res = run("def f(a, b):\n    return {'sum': a + b, 'items': [a, b]}\n", 2, 3)
    assert res.ok and res.error is None
    assert res.value == {"sum": 5, "items": [2, 3]}


def test_numpy_array_in_and_out():
    src = "import numpy as np\ndef f(x):\n    return np.sqrt(x).astype(np.float32)\n"
    x = np.arange(12, dtype=np.float64).reshape(3, 4)
    res = run(src, x, expect={"shape": (3, 4), "dtype": "float32"})
    assert res.ok, res.message
    assert isinstance(res.value, np.ndarray) and res.value.dtype == np.float32
    np.testing.assert_allclose(res.value, np.sqrt(x))


@pytest.mark.parametrize(
    "source,error",
    [
        ("def f(:\n    pass\n", "syntax"),
        ("def f():\n    return 1 / 0\n", "exception"),
        ("def f():\n    return bytearray(10**10)\n", "memory"),  # one huge block
        ("def f():\n    xs = []\n    while True:\n        xs.append(' ' * 10**6)\n", "memory"),  # gradual bomb
        ("import socket\ndef f():\n    return 1\n", "forbidden_import"),
        ("import os\ndef f():\n    return 1\n", "forbidden_import"),
        ("import subprocess\ndef f():\n    return 1\n", "forbidden_import"),
        ("from numpy import ctypeslib\ndef f():\n    return 1\n", "forbidden_import"),
        ("def f():\n    open('/tmp/netmarl_sandbox_pwned', 'w').write('x')\n", "forbidden_operation"),
        (
            "def f():\n    try:\n        open('/tmp/netmarl_sandbox_pwned', 'a')\n    except Exception:\n"
            "        return 'swallowed'\n",
            "forbidden_operation",
        ),  # caught, still flagged
        ("def g():\n    return 1\n", "missing_function"),
        ("def f():\n    return lambda: 1\n", "bad_output"),  # not serialisable
    ],
)
def test_failure_modes_are_typed(source, error):
    res = run(source)
    assert not res.ok
    assert res.error == error, (res.error, res.message, res.traceback)
    assert res.message
    assert not os.path.exists("/tmp/netmarl_sandbox_pwned")


def test_exception_carries_traceback_with_source_line():
    res = run("def f():\n    x = {}\n    return x['missing']\n")
    assert res.error == "exception"
    assert "KeyError" in res.traceback and "x['missing']" in res.traceback


def test_os_system_refused_even_when_os_is_allowed():
    limits = FAST.model_copy(update={"allowed_modules": FAST.allowed_modules + ("os",)})
    res = run("import os\ndef f():\n    return os.system('touch /tmp/netmarl_sandbox_pwned')\n", limits=limits)
    assert res.error == "forbidden_operation" and "os.system" in res.message
    assert not os.path.exists("/tmp/netmarl_sandbox_pwned")


def test_sockets_refused_even_when_socket_is_allowed():
    limits = FAST.model_copy(update={"allowed_modules": FAST.allowed_modules + ("socket",)})
    src = "import socket\ndef f():\n    s = socket.socket()\n    s.connect(('1.1.1.1', 53))\n"
    res = run(src, limits=limits)
    assert res.error == "forbidden_operation"


def test_infinite_loop_stopped_by_cpu_limit():
    res = run("def f():\n    while True:\n        pass\n", limits=FAST.model_copy(update={"wall_s": 10}))
    assert res.error == "timeout" and "CPU" in res.message
    assert res.seconds < 10  # stopped by the CPU limit (about 2 s of CPU), not the 10 s wall clock


def test_infinite_loop_stopped_by_wall_clock():
    res = run("def f():\n    while True:\n        pass\n", limits=FAST.model_copy(update={"cpu_s": 30, "wall_s": 0.5}))
    assert res.error == "timeout" and "wall-clock" in res.message
    assert res.seconds < 15  # stopped by the wall clock, well before the 30 s of CPU


def test_wrong_output_shape_and_dtype():
    src = "import numpy as np\ndef f(n):\n    return np.zeros(n, dtype=np.int64)\n"
    assert run(src, 3, expect={"shape": (4,)}).error == "bad_output"
    assert run(src, 4, expect={"shape": (4,), "dtype": "bool"}).error == "bad_output"
    assert run(src, 4, expect={"shape": (None,), "dtype": "int64"}).ok


def test_parent_never_runs_generated_code():
    src = "import math\nmath.NETMARL_SANDBOX_SIDE_EFFECT = 42\ndef f():\n    return math.NETMARL_SANDBOX_SIDE_EFFECT\n"
    res = run(src)
    assert res.ok and res.value == 42  # the side effect happened in the child ...
    assert not hasattr(math, "NETMARL_SANDBOX_SIDE_EFFECT")  # ... and not here


def test_persistent_worker_10k_calls_and_kill_replace():
    src = "import numpy as np\ndef mask(obs):\n    return obs > 0\n"
    rng = np.random.default_rng(0)
    with PersistentWorker(src, "mask", FAST, expect={"shape": (10,), "dtype": "bool"}) as w:
        assert w.load_result.ok, w.load_result.message
        for _ in range(10_000):
            obs = rng.standard_normal(10)
            res = w.call(obs)
            assert res.ok and np.array_equal(res.value, obs > 0)
        old = w.pid
        os.kill(old, signal.SIGKILL)
        time.sleep(0.05)
        obs = rng.standard_normal(10)
        res = w.call(obs)
        assert res.ok and np.array_equal(res.value, obs > 0)
        assert w.replacements == 1 and w.pid != old


def test_persistent_worker_timeout_is_replaced_and_keeps_serving():
    src = "def f(x):\n    while x < 0:\n        pass\n    return x + 1\n"
    with PersistentWorker(src, "f", FAST.model_copy(update={"cpu_s": 30, "wall_s": 0.5})) as w:
        assert w.call(1).value == 2
        res = w.call(-1)
        assert res.error == "timeout"
        assert w.replacements == 1
        assert [w.call(i).value for i in range(5)] == [1, 2, 3, 4, 5]
        assert w.call(-1).error == "timeout" and w.call(7).value == 8
        assert w.replacements == 2


def test_persistent_worker_with_invalid_source_reports_load_failure():
    w = PersistentWorker("import socket\ndef f():\n    return 1\n", "f", FAST)
    assert w.load_result.error == "forbidden_import"
    assert w.call().error == "forbidden_import" and w.replacements == 0
    w.close()


def test_isolation_recorded():
    res = run("def f():\n    return 1\n")
    assert res.ok and res.isolated is True and res.network_isolated is True


# ----------------------------------------------------------------------------- the OS is the boundary
def test_escaped_import_ctypes_system_cannot_touch_the_host(tmp_path):
    """The guard's closure gives the real __import__; ctypes runs libc.system(); no shell reaches the host."""
    target = tmp_path / "pwned"
    value = attack(f"""
        def f():
            rc = libc.system(b"touch {target}; echo pwned > {target}")
            return {{"route": ROUTE, "rc": rc}}
    """)
    assert value["route"] in ("closure", "subclasses")  # the Python lint was bypassed ...
    assert not target.exists()  # ... and the OS stopped the shell anyway


def test_escaped_open_cannot_truncate_or_write_host_files(tmp_path):
    """The guard's closure gives the real open(); a file the test owns outside the sandbox stays intact."""
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    value = attack(
        """
        def f(path):
            out = {"closure_open": real_open.__name__}
            for mode in ("w", "a", "r+"):
                try:
                    with real_open(path, mode) as fh:
                        fh.write("x")
                    out[mode] = "written"
                except OSError as exc:
                    out[mode] = f"refused: {exc.strerror}"
            fd = libc.open(path.encode(), 0o1001)  # O_WRONLY | O_TRUNC through libc
            out["libc"] = fd
            if fd >= 0:
                libc.close(fd)
            return out
    """,
        str(victim),
    )
    assert victim.read_text() == "precious", value
    assert all(str(value[m]).startswith("refused") for m in ("w", "a", "r+")), value
    assert value["libc"] == -1


def test_host_files_cannot_be_read(tmp_path):
    """No file outside the sandbox's view can be read: /etc/shadow, the user's secrets, the project source."""
    secret_600, secret_644 = tmp_path / "curve.key_secret", tmp_path / "world_readable.txt"
    secret_600.write_text("SECRET-600")
    secret_600.chmod(0o600)
    secret_644.write_text("SECRET-644")
    secret_644.chmod(0o644)
    paths = [
        "/etc/shadow",
        "/etc/passwd",
        "/etc/hostname",
        str(secret_600),
        str(secret_644),
        str(ROOT / "agent_node" / "sandbox" / "runner.py"),
        str(ROOT / "pyproject.toml"),
        str(Path.home() / ".bashrc"),
        str(ROOT / ".venv" / "pyvenv.cfg"),
    ]
    value = attack(
        """
        def f(paths, root):
            out = {}
            for p in paths:
                for how, reader in (("open", lambda p: open(p, "rb").read()),
                                    ("real_open", lambda p: real_open(p, "rb").read())):
                    try:
                        out[f"{how}:{p}"] = reader(p)[:40]
                    except OSError as exc:
                        out[f"{how}:{p}"] = f"refused: {exc.strerror}"
            os = _imp("os")
            out["listing /"] = sorted(os.listdir("/"))
            out["exists etc"] = os.path.exists("/etc")
            out["exists project"] = os.path.exists(root)
            return out
    """,
        paths,
        str(ROOT / "agent_node"),
    )
    leaked = {
        k: v for k, v in value.items() if k.startswith(("open:", "real_open:")) and not str(v).startswith("refused")
    }
    assert not leaked, leaked
    assert value["exists etc"] is False and value["exists project"] is False, value["listing /"]
    assert "etc" not in value["listing /"] and "work" not in value["listing /"]


def test_parent_environment_cannot_be_read(tmp_path):
    """A secret in the environment of the process that runs the sandbox (and of any other process) stays
    unreadable: not in os.environ, not via /proc/<ppid>/environ, not via any /proc/*/environ or cmdline."""
    canary = "netmarl-canary-" + secrets.token_hex(8)
    body = textwrap.dedent("""
        def f(host_pids):
            os = _imp("os")
            seen = [repr(dict(os.environ))]
            pids = sorted(set(p for p in os.listdir("/proc") if p.isdigit()) | {str(os.getppid()), "1"}
                          | {str(p) for p in host_pids})
            for pid in pids:
                for name in ("environ", "cmdline"):
                    try:
                        seen.append(real_open(f"/proc/{pid}/{name}", "rb").read().decode(errors="replace"))
                    except OSError as exc:
                        seen.append(f"{pid}/{name}: {exc.strerror}")
            return {"seen": "\\n".join(seen), "ppid": os.getppid(),
                    "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
    """)
    script = textwrap.dedent(f"""
        import json, os, sys
        sys.path.insert(0, {str(ROOT)!r})
        from scenarios.sandbox import Sandbox, SandboxLimits
        src = {(ESCAPE + body)!r}
        res = Sandbox(SandboxLimits(cpu_s=2, wall_s=10)).run_once(src, "f", [[os.getpid(), os.getppid()]])
        print(json.dumps({{"ok": res.ok, "value": res.value, "message": res.message, "tb": res.traceback}}))
    """)
    # the sandbox's parent process starts with the canary in its environment (like an OPENAI_API_KEY)
    env = {**os.environ, "NETMARL_SANDBOX_CANARY": canary}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    import json

    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["ok"], res
    assert canary not in res["value"]["seen"]
    assert canary not in out.stdout.replace(res["value"]["seen"], "")  # nor in messages
    assert max(res["value"]["pids"]) < 16  # a fresh /proc: only the sandbox's own few processes


def _fork_daemon_source() -> str:
    return ESCAPE + textwrap.dedent("""
        def f(name, spin):
            if not spin:
                pid = libc.fork()
                if pid == 0:  # the child: a new session, a recognisable name, and it never returns
                    libc.setsid()
                    libc.prctl(15, name.encode(), 0, 0, 0)  # PR_SET_NAME
                    while True:
                        libc.sleep(1)
                return pid
            while True:
                pass
    """)


FORKING = FAST.model_copy(update={"max_processes": 4, "cpu_s": 30, "wall_s": 1.0})


@pytest.mark.parametrize("how", ["close", "timeout", "external_kill"])
def test_forked_setsid_child_dies_with_the_worker(marker, how):
    """fork() + setsid() from the generated code: the daemon must not outlive the worker, however it ends."""
    w = PersistentWorker(_fork_daemon_source(), "f", FORKING)
    try:
        assert w.load_result.ok, w.load_result.message
        res = w.call(marker, False)
        assert res.ok and res.value > 0, (res.error, res.message)
        assert _wait(lambda: _procs_named(marker)), "the daemon never started"  # seen from the host
        if how == "close":
            w.close()
        elif how == "timeout":
            res = w.call(marker, True)  # an endless loop: the wall-clock kill
            assert res.error == "timeout"
        else:
            os.kill(w.pid, signal.SIGKILL)  # someone kills the worker process from outside
            assert _wait(lambda: not _procs_named(marker), 3.0), "the daemon outlived an external kill"
    finally:
        w.close()
    assert not _procs_named(marker), f"a forked child survived the worker ({how})"


def test_process_creation_refused_by_default():
    value = attack("""
        def f():
            return {"fork": libc.fork(), "errno": ctypes.get_errno()}
    """)
    assert value["fork"] == -1


def test_new_user_namespace_refused():
    value = attack("""
        def f():
            return [libc.unshare(0x10000000), libc.unshare(0x40000000)]  # CLONE_NEWUSER, CLONE_NEWNET
    """)
    assert value == [-1, -1]


def test_sockets_cannot_reach_host_services(tmp_path):
    """Unix-domain (path and abstract), TCP and UDP on the host's loopback, and the outside: nothing arrives."""
    unix_path = str(tmp_path / "host.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    unix.listen(4)
    os.chmod(unix_path, 0o777)
    abstract_name = "netmarl-sbx-" + secrets.token_hex(6)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind("\0" + abstract_name)
    abstract.listen(4)
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    listeners = (unix, abstract, tcp, udp)
    try:
        value = attack(
            """
            def f(unix_path, abstract_name, tcp_port, udp_port):
                S, out = _socket.SocketType, {}
                def attempt(name, family, kind, addr, datagram=False):
                    try:
                        s = S(family, kind)
                    except OSError as exc:
                        out[name] = f"refused: {exc}"
                        return
                    if addr is None:
                        out[name] = "created"
                        s.close()
                        return
                    s.settimeout(2)
                    try:
                        if datagram:
                            s.sendto(b"pwned", addr)
                            out[name] = "sent"
                        else:
                            s.connect(addr)
                            s.send(b"pwned")
                            out[name] = "connected"
                    except OSError as exc:
                        out[name] = f"refused: {exc}"
                    finally:
                        s.close()
                attempt("unix", _socket.AF_UNIX, _socket.SOCK_STREAM, unix_path)
                attempt("abstract", _socket.AF_UNIX, _socket.SOCK_STREAM, "\\0" + abstract_name)
                attempt("tcp", _socket.AF_INET, _socket.SOCK_STREAM, ("127.0.0.1", tcp_port))
                attempt("tcp6", _socket.AF_INET6, _socket.SOCK_STREAM, ("::1", tcp_port))
                attempt("outside", _socket.AF_INET, _socket.SOCK_STREAM, ("1.1.1.1", 53))
                attempt("udp", _socket.AF_INET, _socket.SOCK_DGRAM, ("127.0.0.1", udp_port), datagram=True)
                attempt("packet", 17, _socket.SOCK_RAW, None)  # AF_PACKET: raw frames need CAP_NET_RAW
                lines = real_open("/proc/net/dev").read().splitlines()[2:]
                out["interfaces"] = [line.split(":")[0].strip() for line in lines]
                return out
        """,
            unix_path,
            abstract_name,
            tcp.getsockname()[1],
            udp.getsockname()[1],
        )
        for name in ("unix", "abstract", "tcp", "tcp6", "outside", "packet"):
            assert value[name].startswith("refused"), (name, value)
        assert value["interfaces"] == ["lo"], value
        for s in listeners:  # and nothing arrived on the host side
            s.setblocking(False)
            with pytest.raises(BlockingIOError):
                s.recv(64) if s is udp else s.accept()
    finally:
        for s in listeners:
            s.close()


def test_cannot_signal_the_parent_or_host_processes():
    value = attack(
        """
        def f(host_pids):
            # signal 0: the kernel's permission and existence check, nothing is delivered
            return [(pid, libc.kill(pid, 0), ctypes.get_errno()) for pid in [libc.getppid(), 1, *host_pids]]
    """,
        [os.getpid(), os.getppid()],
    )
    assert all(rc == -1 for _, rc, _ in value), value


def test_writes_do_not_reach_the_host(tmp_path):
    """The host's folders are not in the view; the private /tmp may take (empty) files, the host's never sees them."""
    name = "netmarl_sandbox_" + secrets.token_hex(6)
    host_tmp = Path("/tmp") / name
    try:
        value = attack(
            """
            def f(host_dir, name):
                out = {}
                for key, path in (("host_dir", host_dir + "/written"), ("tmp", "/tmp/" + name), ("root", "/" + name),
                                  ("usr", "/usr/" + name), ("sandbox", "/sandbox/" + name)):
                    try:
                        real_open(path, "w").close()
                        out[key] = "created"
                    except OSError as exc:
                        out[key] = f"refused: {exc.strerror}"
                out["mkdir"] = libc.mkdir(("/tmp/" + name + "_dir").encode(), 0o777)
                out["mkdir_host"] = libc.mkdir((host_dir + "/dir").encode(), 0o777)
                return out
        """,
            str(tmp_path),
            name,
        )
        for key in ("host_dir", "root", "usr", "sandbox"):
            assert value[key].startswith("refused"), (key, value)
        assert value["mkdir_host"] == -1
        assert sorted(p.name for p in tmp_path.iterdir()) == []
        assert not host_tmp.exists() and not Path(f"/tmp/{name}_dir").exists()
        assert not (Path("/") / name).exists() and not (Path("/usr") / name).exists()
    finally:
        for p in (host_tmp, Path(f"/tmp/{name}_dir"), Path("/") / name, Path("/usr") / name):
            if p.is_dir():
                p.rmdir()
            elif p.exists():
                p.unlink()


# ----------------------------------------------------------------------------- malformed replies
BAD_ARRAYS = [
    {"__nd__": True, "dtype": "<f8", "shape": [1], "data": 5},  # data not bytes
    {"__nd__": True, "dtype": "<f8", "shape": [3], "data": b"\0" * 8},  # shape vs data length
    {"__nd__": True, "dtype": "not-a-dtype", "shape": [1], "data": b"\0" * 8},
    {"__nd__": True, "dtype": 8, "shape": [1], "data": b"\0" * 8},  # dtype not a string
    {"__nd__": True, "dtype": "O", "shape": [1], "data": b"\0" * 8},  # object dtype
    {"__nd__": True, "dtype": "<f8", "shape": [-1], "data": b"\0" * 8},
    {"__nd__": True, "dtype": "<f8", "shape": "x", "data": b""},
    {"__nd__": True, "dtype": "<f8", "shape": [1], "extra": 1},  # wrong keys
    [1, {"__nd__": True, "dtype": "<f8", "shape": [2], "data": 7}],  # nested
]


@pytest.mark.parametrize("bad", BAD_ARRAYS, ids=range(len(BAD_ARRAYS)))
def test_malformed_array_in_reply_is_bad_output(bad):
    res = run(f"def f():\n    return {bad!r}\n")
    assert not res.ok and res.error == "bad_output", (res.error, res.message)


def test_forged_reply_frame_is_bad_output():
    """The code writes its own non-dict frame on the reply pipe: a typed bad_output, not an exception here."""
    res = run(
        ESCAPE
        + textwrap.dedent("""
        def f():
            os = _imp("os")
            stdin = os.readlink("/proc/self/fd/0")
            for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
                if fd > 2 and os.readlink(f"/proc/self/fd/{fd}").startswith("pipe:") and \\
                        os.readlink(f"/proc/self/fd/{fd}") != stdin:
                    frame = b"\\x03\\x00\\x00\\x00\\x92\\x01\\x02"  # msgpack [1, 2]
                    libc.write(fd, frame, len(frame))
            return 1
    """)
    )
    assert not res.ok and res.error == "bad_output", (res.error, res.message)


@pytest.mark.parametrize(
    "frame",
    [
        b"\x92\x01\x02",  # [1, 2]
        b"\xc1",  # never-used msgpack byte
        b"\x81\xa2ok\xa3yes",  # {"ok": "yes"}
        b"\x82\xa2ok\xc2\xa5error\xa5pwned",  # unknown error kind
        b"\x83\xa2ok\xc2\xa5error\xa9exception\xa7message\x05",  # message not a string
        b"\x81\xa2ok",  # truncated
    ],
)
def test_decode_reply_rejects_malformed_frames(frame):
    from scenarios.sandbox.runner import decode_reply

    with pytest.raises(ValueError):
        decode_reply(frame)


# ----------------------------------------------------------------------------- when isolation is unavailable
def test_refused_when_bwrap_is_missing(tmp_path):
    limits = FAST.model_copy(update={"bwrap_path": str(tmp_path / "no-such-bwrap")})
    with pytest.raises(RuntimeError, match=r"bubblewrap \(bwrap\) not found.*isolation='none'"):
        Sandbox(limits).run_once("def f():\n    return 1\n", "f")
    with pytest.raises(RuntimeError, match="bubblewrap"):
        PersistentWorker("def f():\n    return 1\n", "f", limits)
    from scenarios.sandbox import SandboxUnavailable

    with pytest.raises(SandboxUnavailable):
        Sandbox(limits).run_once("def f():\n    return 1\n", "f")


def test_refused_when_bwrap_fails_its_probe(tmp_path):
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    limits = FAST.model_copy(update={"bwrap_path": str(fake)})
    with pytest.raises(RuntimeError, match="cannot build the sandbox.*No permissions"):
        Sandbox(limits).run_once("def f():\n    return 1\n", "f")


def test_unisolated_opt_out_warns_every_start(caplog):
    limits = FAST.model_copy(update={"isolation": "none"})
    with caplog.at_level(logging.WARNING, logger="scenarios.sandbox"):
        res = run("def f():\n    return 41 + 1\n", limits=limits)
        run("def f():\n    return 1\n", limits=limits)
    assert res.ok and res.value == 42 and res.isolated is False and res.network_isolated is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "WITHOUT OS isolation" in r.getMessage()]
    assert len(warnings) == 2


def test_limits_reject_unknown_fields():
    with pytest.raises(ValueError):
        SandboxLimits(network_namespace="on")
