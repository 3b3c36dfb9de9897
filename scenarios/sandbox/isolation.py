"""The OS boundary around a sandbox worker: bubblewrap (bwrap) namespaces, a minimal read-only view, uid nobody.

Each worker runs as `bwrap ... PYTHON -I -S /sandbox/worker.py` with:
  * new user, PID, mount, IPC, UTS, network (and, where available, cgroup) namespaces; --new-session (no
    controlling terminal); --die-with-parent; --clearenv (nothing of the parent's environment);
  * a filesystem view that holds only the interpreter (its real path), its stdlib (site-packages hidden),
    the shared libraries those two load (found once with ldd), the numpy and msgpack package folders at
    /sandbox/site, the worker script at /sandbox/worker.py, a fresh /proc of the new PID namespace, a
    minimal /dev and an empty private /tmp; everything read-only except /tmp;
  * uid/gid 65534 (nobody). Started by root, the user namespace maps 0->0 (bwrap sets the view up as 0)
    and 65534->65534, and the worker drops to 65534 before it reads anything, so the untrusted code is
    host uid 65534 without capabilities (RLIMIT_NPROC applies to it). Started by another user, bwrap's
    own mapping is used (sandbox uid 65534 = that user on the host, no capabilities);
  * a seccomp filter (x86_64, aarch64) that refuses new user namespaces and a few kernel interfaces the
    code never needs (ptrace, keyrings, bpf, perf, userfaultfd, io_uring, mounts, modules, ...).
Killing the worker kills bwrap's PID-namespace init (through a pidfd) and bwrap itself; when the init dies
the kernel kills every process left in the namespace, and kill() waits until that has happened.
Where bwrap is missing or cannot build this sandbox, `require()` raises SandboxUnavailable.
"""

from __future__ import annotations

import errno
import functools
import importlib
import json
import os
import platform
import re
import select
import shutil
import signal
import struct
import subprocess
import sys
import time
from dataclasses import dataclass

from scenarios.sandbox.worker import SANDBOX_UID

VIEW_DIR = "/sandbox"
VIEW_SITE = "/sandbox/site"
VIEW_WORKER = "/sandbox/worker.py"
PACKAGES = ("numpy", "msgpack")
TMP_BYTES = 4 << 20  # size of the private /tmp (RLIMIT_FSIZE = 0 keeps files empty anyway)
INSTALL_HINT = (
    "install Debian's bubblewrap package (`apt-get install bubblewrap`, part of `make install`); "
    "or, for trusted code only, set SandboxLimits(isolation='none')"
)
_SKIP_DYNLOAD = ("_tkinter",)  # GUI bindings: their X11 libraries are not needed


class SandboxUnavailable(RuntimeError):
    """The OS cannot provide the sandbox (bwrap missing or failing); generated code is refused."""


@dataclass(frozen=True)
class View:
    """What the worker sees: the interpreter path (the same inside) and the bwrap arguments of the view."""

    exe: str
    args: tuple[str, ...]
    worker: str


# ----------------------------------------------------------------------------- the filesystem view
def _resolve(path: str, links: dict[str, str]) -> str:
    """Real path of `path`, recording every symlink met on the way (link path -> target) in `links`."""
    todo = path.split("/")[::-1]
    cur, hops = "/", 0
    while todo:
        part = todo.pop()
        if part in ("", "."):
            continue
        if part == "..":
            cur = os.path.dirname(cur)
            continue
        nxt = os.path.join(cur, part)
        if os.path.islink(nxt):
            hops += 1
            if hops > 40:
                raise OSError(errno.ELOOP, "too many symbolic links", path)
            target = os.readlink(nxt)
            links[nxt] = target
            if target.startswith("/"):
                cur = "/"
            todo.extend(target.split("/")[::-1])
            continue
        cur = nxt
    return cur


def _inside(path: str, dirs) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)


def _shared_objects(files: list[str]) -> set[str]:
    """Absolute paths of the shared libraries (and the loader) the given ELF files load, from ldd."""
    ldd = shutil.which("ldd", path="/usr/bin:/bin:/usr/sbin:/sbin")
    if ldd is None:
        raise SandboxUnavailable(
            "ldd not found (Debian package libc-bin): cannot list the libraries the sandboxed interpreter needs"
        )
    found: set[str] = set()
    for i in range(0, len(files), 64):
        out = subprocess.run(
            [ldd, *files[i : i + 64]],
            capture_output=True,
            text=True,
            timeout=60,
            env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
        ).stdout
        found.update(re.findall(r"(/\S+) \(0x[0-9a-f]+\)", out))
    return found


@functools.lru_cache(maxsize=1)
def runtime_view() -> View:
    """The read-only view: interpreter, stdlib, its libraries, numpy + msgpack, the worker (computed once)."""
    from scenarios.sandbox import worker as worker_module

    exe = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    stdlib = os.path.dirname(os.path.realpath(os.__file__))
    dynload = sorted(
        {os.path.realpath(p) for p in sys.path if os.path.basename(p) == "lib-dynload" and os.path.isdir(p)}
    )
    runtime_dirs = [stdlib] + [d for d in dynload if not _inside(d, [stdlib])]
    packages: list[tuple[str, str]] = []  # (host dir, view dir)
    for name in PACKAGES:
        pkg = os.path.dirname(os.path.realpath(importlib.import_module(name).__file__))
        packages.append((pkg, f"{VIEW_SITE}/{os.path.basename(pkg)}"))
        if os.path.isdir(pkg + ".libs"):  # auditwheel's bundled libraries ($ORIGIN-relative rpath)
            packages.append((pkg + ".libs", f"{VIEW_SITE}/{os.path.basename(pkg)}.libs"))
    elves = [exe]
    for d in dynload:
        elves += [os.path.join(d, f) for f in sorted(os.listdir(d)) if ".so" in f and not f.startswith(_SKIP_DYNLOAD)]
    for host, _ in packages:
        for root, _, files in os.walk(host):
            elves += [os.path.join(root, f) for f in sorted(files) if ".so" in f]
    links: dict[str, str] = {}
    files = set()
    for lib in _shared_objects(elves) | {exe}:
        real = _resolve(lib, links)
        if not _inside(real, runtime_dirs + [h for h, _ in packages]):
            files.add(real)
    hidden = [
        os.path.join(stdlib, d) for d in ("site-packages", "dist-packages") if os.path.isdir(os.path.join(stdlib, d))
    ]
    binds = [(f, f) for f in sorted(files)] + [(d, d) for d in runtime_dirs] + packages
    binds.append((os.path.realpath(worker_module.__file__), VIEW_WORKER))
    # bwrap creates missing parent folders 0700 (unreadable to nobody): create every one 0755 first
    dests = [dst for _, dst in binds] + list(links)
    parents = set()
    for dst in dests:
        p = os.path.dirname(dst)
        while p != "/":
            parents.add(p)
            p = os.path.dirname(p)
    args: list[str] = []
    for p in sorted(parents, key=lambda p: (p.count("/"), p)):
        args += ["--perms", "0755", "--dir", p]
    for link, target in sorted(links.items()):
        args += ["--symlink", target, link]
    for src, dst in binds:
        args += ["--ro-bind", src, dst]
    for h in hidden:
        args += ["--perms", "0555", "--tmpfs", h]
    args += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp"]
    return View(exe=exe, args=tuple(args), worker=VIEW_WORKER)


# ----------------------------------------------------------------------------- seccomp
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_NR = {  # (x86_64, aarch64)
    "unshare": (272, 97),
    "clone": (56, 220),
    "clone3": (435, 435),
    "ptrace": (101, 117),
    "process_vm_readv": (310, 270),
    "process_vm_writev": (311, 271),
    "keyctl": (250, 219),
    "add_key": (248, 217),
    "request_key": (249, 218),
    "bpf": (321, 280),
    "perf_event_open": (298, 241),
    "userfaultfd": (323, 282),
    "io_uring_setup": (425, 425),
    "io_uring_enter": (426, 426),
    "io_uring_register": (427, 427),
    "mount": (165, 40),
    "umount2": (166, 39),
    "pivot_root": (155, 41),
    "setns": (308, 268),
    "open_tree": (428, 428),
    "move_mount": (429, 429),
    "fsopen": (430, 430),
    "fsconfig": (431, 431),
    "fsmount": (432, 432),
    "fspick": (433, 433),
    "mount_setattr": (442, 442),
    "kexec_load": (246, 104),
    "kexec_file_load": (320, 294),
    "init_module": (175, 105),
    "finit_module": (313, 273),
    "delete_module": (176, 106),
    "acct": (163, 89),
    "swapon": (167, 224),
    "swapoff": (168, 225),
    "reboot": (169, 142),
}
_DENIED = tuple(n for n in _NR if n not in ("unshare", "clone", "clone3"))
CLONE_NEWUSER = 0x10000000


@functools.lru_cache(maxsize=1)
def seccomp_program() -> bytes | None:
    """Classic BPF for bwrap --seccomp: EPERM for new user namespaces and the _DENIED calls, ENOSYS for
    clone3 (its flags live in memory; libc falls back to clone), EPERM for other ABIs. None: unknown arch."""
    machine = platform.machine()
    if machine not in _AUDIT_ARCH:
        return None
    col = 0 if machine == "x86_64" else 1
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    allow, eperm, enosys = 0x7FFF0000, 0x00050000 | errno.EPERM, 0x00050000 | errno.ENOSYS
    code: list[tuple] = [(ld, 4), (jeq, _AUDIT_ARCH[machine], None, "deny"), (ld, 0)]
    if machine == "x86_64":
        code.append((jge, 0x40000000, "deny", None))  # x32 ABI numbers
    code += [
        (jeq, _NR["clone3"][col], "nosys", None),
        (jeq, _NR["unshare"][col], "flags", None),
        (jeq, _NR["clone"][col], "flags", None),
    ]
    code += [(jeq, _NR[n][col], "deny", None) for n in _DENIED]
    code += [
        (ret, allow),
        "flags",
        (ld, 16),
        (jset, CLONE_NEWUSER, "deny", None),
        (ret, allow),
        "deny",
        (ret, eperm),
        "nosys",
        (ret, enosys),
    ]
    labels, insns = {}, []
    for item in code:
        if isinstance(item, str):
            labels[item] = len(insns)
        else:
            insns.append(item)
    out = bytearray()
    for i, ins in enumerate(insns):
        op, k = ins[0], ins[1]
        jt = jf = 0
        if len(ins) == 4:
            jt = 0 if ins[2] is None else labels[ins[2]] - i - 1
            jf = 0 if ins[3] is None else labels[ins[3]] - i - 1
        out += struct.pack("=HBBI", op, jt, jf, k)
    return bytes(out)


# ----------------------------------------------------------------------------- launching
@dataclass
class Launched:
    proc: subprocess.Popen
    init_pidfd: int | None  # pidfd of bwrap's PID-namespace init (host side)


def _read_info(fd: int, deadline: float) -> dict:
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise TimeoutError("bwrap did not report its sandbox")
        chunk = os.read(fd, 4096)
        if not chunk:
            raise EOFError("bwrap exited before creating the sandbox")
        buf += chunk
        try:
            return json.loads(buf)
        except ValueError:
            continue


def launch(bwrap: str, worker_args: list[str], *, stdin=None, stdout=None, stderr=None) -> Launched:
    """Start `python -I -S /sandbox/worker.py worker_args...` inside a fresh bwrap sandbox (no probe)."""
    view = runtime_view()
    root = os.geteuid() == 0
    info_r, info_w = os.pipe2(os.O_CLOEXEC)
    keep = [info_w]
    cmd = [bwrap, "--unshare-user", "--info-fd", str(info_w)]
    block_r = block_w = None
    if root:  # we write the map (0->0 for bwrap's set-up, 65534->65534 for the code) before bwrap goes on
        block_r, block_w = os.pipe2(os.O_CLOEXEC)
        keep.append(block_r)
        cmd += [
            "--userns-block-fd",
            str(block_r),
            "--uid",
            "0",
            "--gid",
            "0",
            "--cap-drop",
            "ALL",
            "--cap-add",
            "CAP_SETUID",
            "--cap-add",
            "CAP_SETGID",
        ]
    else:
        cmd += ["--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID)]
    seccomp_fd = None
    program = seccomp_program()
    if program is not None:
        seccomp_fd = os.memfd_create("netmarl-seccomp", os.MFD_CLOEXEC)
        os.write(seccomp_fd, program)
        os.lseek(seccomp_fd, 0, os.SEEK_SET)
        keep.append(seccomp_fd)
        cmd += ["--seccomp", str(seccomp_fd)]
    cmd += [
        "--unshare-pid",
        "--unshare-net",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        "sandbox",
        "--die-with-parent",
        "--new-session",
        "--clearenv",
        *view.args,
        "--chdir",
        "/",
        view.exe,
        "-I",
        "-S",
        view.worker,
        *worker_args,
    ]
    try:
        proc = subprocess.Popen(
            cmd,
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            pass_fds=keep,
            env={},
            cwd="/",
            bufsize=0,
            start_new_session=True,
            extra_groups=[] if root else None,
        )
    except BaseException:
        for fd in (info_r, block_w):
            if fd is not None:
                os.close(fd)
        raise
    finally:
        for fd in keep:
            os.close(fd)
    pidfd = None
    try:
        info = _read_info(info_r, time.monotonic() + 10)
        pid = int(info["child-pid"])
        pidfd = os.pidfd_open(pid)  # the init cannot exit before we release it (root) or before it starts
        if root:
            for name in ("uid_map", "gid_map"):
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(f"0 0 1\n{SANDBOX_UID} {SANDBOX_UID} 1\n")
            os.write(block_w, b"1")
    except BaseException as exc:
        kill(Launched(proc, pidfd))
        if isinstance(exc, (EOFError, TimeoutError, OSError, ValueError, KeyError)):
            why = ""
            if proc.stderr is not None:
                why = proc.stderr.read().decode(errors="replace").strip()[-600:]
            raise SandboxUnavailable(
                f"bwrap could not start the sandbox ({type(exc).__name__}: {exc})" + (f": {why}" if why else "")
            ) from exc
        raise
    finally:
        os.close(info_r)
        if block_w is not None:
            os.close(block_w)
    return Launched(proc, pidfd)


def kill(launched: Launched, settle_s: float = 5.0) -> None:
    """SIGKILL the namespace's init (the kernel then kills every process in it) and bwrap; wait for both."""
    pidfd = launched.init_pidfd
    if pidfd is not None:
        try:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
    if launched.proc.poll() is None:
        try:
            os.killpg(launched.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    launched.proc.wait()
    if pidfd is not None:
        select.select([pidfd], [], [], settle_s)  # readable once the init has exited, after the namespace died
        os.close(pidfd)
        launched.init_pidfd = None


# ----------------------------------------------------------------------------- availability
def find_bwrap(path: str) -> str:
    exe = shutil.which(path)
    if exe is None:
        raise SandboxUnavailable(f"bubblewrap (bwrap) not found at {path!r}: generated code is refused; {INSTALL_HINT}")
    return exe


@functools.lru_cache(maxsize=8)
def _probe(bwrap: str) -> str | None:
    """Start one sandbox that checks itself (uid, capabilities, PID namespace, imports); None when it works."""
    try:
        launched = launch(
            bwrap,
            [VIEW_SITE, json.dumps({"probe": True, "isolated": True})],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except SandboxUnavailable as exc:
        return str(exc)
    except OSError as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        out, err = launched.proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        kill(launched)
        return "the probe sandbox did not answer within 30 s"
    kill(launched)
    try:
        report = json.loads(out.decode().strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = err.decode(errors="replace").strip()[-600:]
        return f"bwrap exited with status {launched.proc.returncode}: {tail or 'no message'}"
    problems = []
    if report.get("uid") != [SANDBOX_UID] * 3:
        problems.append(f"uids {report.get('uid')}")
    if any(pid > 16 for pid in report.get("pids", [])):
        problems.append("host processes visible in /proc")
    return "; ".join(problems) or None


def require(path: str) -> str:
    """bwrap's path, once a probe sandbox has worked here; SandboxUnavailable (with the reason) otherwise."""
    exe = find_bwrap(path)
    problem = _probe(exe)
    if problem is not None:
        raise SandboxUnavailable(
            f"bubblewrap at {exe} cannot build the sandbox on this machine ({problem}): "
            "generated code is refused. It needs user namespaces (sysctl "
            "user.max_user_namespaces > 0; inside a container, a seccomp profile that "
            f"allows them); {INSTALL_HINT}"
        )
    return exe


def available(path: str = "bwrap") -> tuple[bool, str]:
    """(True, bwrap path) or (False, why): for reports and benchmarks; never raises."""
    try:
        return True, require(path)
    except SandboxUnavailable as exc:
        return False, str(exc)


__all__ = ["SandboxUnavailable", "View", "runtime_view", "launch", "kill", "require", "available", "seccomp_program"]
