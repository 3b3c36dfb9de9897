"""CURVE on ZeroMQ: key pairs and key files, allow-lists, socket options, and the ZAP gate naming each client."""

from __future__ import annotations

import ipaddress
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.auth import load_certificate
from zmq.utils import z85

log = logging.getLogger(__name__)

PUBLIC_SUFFIX, SECRET_SUFFIX = ".key", ".key_secret"
Z85_KEY_LEN = 40
LOOPBACK_NAMES = {"localhost", "lo", "ip6-localhost"}
# in a run folder: the coordinator's inbox and public key, and where a node joining by hand leaves its key
COORDINATOR_ENDPOINT_FILE, COORDINATOR_KEY_FILE, JOIN_DIR = "coordinator.endpoint", "coordinator.key", "allow"
ZAP_ENDPOINT = "inproc://zeromq.zap.01"  # where libzmq asks a context's ZAP handler (RFC 27)


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair as Z85 text (40 characters each)."""

    public: str
    secret: str

    @classmethod
    def generate(cls) -> KeyPair:
        public, secret = zmq.curve_keypair()
        return cls(public.decode(), secret.decode())

    @classmethod
    def from_secret(cls, secret: str) -> KeyPair:
        """The pair of a Z85 secret key (the public key is derived from it)."""
        return cls(zmq.curve_public(check_key(secret).encode()).decode(), secret)

    def __repr__(self) -> str:  # never print the secret
        return f"KeyPair(public={self.public!r})"


@dataclass(frozen=True)
class Curve:
    """A process's CURVE settings: its own key pair and the public key of the coordinator it joins."""

    pair: KeyPair
    coordinator_key: str

    @classmethod
    def from_settings(
        cls,
        secret: str | None = None,
        key_file: str | None = None,
        coordinator_key: str | None = None,
        node_id: str = "",
    ) -> Curve | None:
        """None when nothing is set; otherwise both the own key (Z85 secret or key file) and the coordinator's."""
        if secret is None and key_file is None and coordinator_key is None:
            return None
        if coordinator_key is None or (secret is None and key_file is None):
            raise ValueError(
                "CURVE needs both the node's own key and the coordinator's public key (--key and --coordinator-key)"
            )
        pair = KeyPair.from_secret(secret) if secret is not None else read_key_pair(key_file, node_id)
        return cls(pair, read_public_key(coordinator_key))


def check_key(key: str) -> str:
    """A Z85 key of the right length, or ValueError."""
    if not isinstance(key, str) or len(key) != Z85_KEY_LEN:
        raise ValueError(f"a CURVE key is {Z85_KEY_LEN} Z85 characters")
    try:
        z85.decode(key)
    except (ValueError, KeyError, TypeError):
        raise ValueError("not a Z85-encoded CURVE key") from None
    return key


# ---------------------------------------------------------------- key files
def _key_file_text(public: str, secret: str | None) -> str:
    """The zmq.auth certificate format (readable by zmq.auth.load_certificate and czmq)."""
    kind = "Secret" if secret else "Public"
    lines = [
        f"#   ****  Generated on {time.strftime('%Y-%m-%d %H:%M:%S')} by netmarl  ****",
        f"#   ZeroMQ CURVE {kind} Certificate",
        "",
        "metadata",
        "curve",
        f'    public-key = "{public}"',
    ]
    if secret:
        lines.append(f'    secret-key = "{secret}"')
    return "\n".join(lines) + "\n"


def write_key_pair(directory: str | Path, name: str, pair: KeyPair) -> tuple[Path, Path]:
    """Write NAME.key (public) and NAME.key_secret (mode 0600) into directory; refuse to overwrite."""
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{name!r} cannot name a key file")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public_path, secret_path = directory / f"{name}{PUBLIC_SUFFIX}", directory / f"{name}{SECRET_SUFFIX}"
    for path, text, mode in (
        (secret_path, _key_file_text(pair.public, pair.secret), 0o600),
        (public_path, _key_file_text(pair.public, None), 0o644),
    ):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)  # created with its mode: no window
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
    return public_path, secret_path


def write_public_key(path: str | Path, public: str) -> Path:
    """Write one public key file (replacing an old one)."""
    Path(path).write_text(_key_file_text(public, None))
    return Path(path)


def read_key_pair(path: str | Path, name: str = "") -> KeyPair:
    """The pair in a NAME.key_secret file (a folder means its NAME.key_secret)."""
    path = Path(path)
    if path.is_dir():
        path = path / f"{name}{SECRET_SUFFIX}"
    try:
        public, secret = load_certificate(path)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the CURVE secret key file {path}: {err}") from None
    if not secret:
        raise ValueError(f"{path} holds no secret key (the secret key file is NAME{SECRET_SUFFIX})")
    pair = KeyPair.from_secret(secret.decode())
    if pair.public != public.decode():
        raise ValueError(f"{path}: the public key does not belong to the secret key")
    return pair


def read_public_key(value: str | Path) -> str:
    """A public key given as Z85 text or as a key file (NAME.key or NAME.key_secret)."""
    text = str(value)
    if len(text) == Z85_KEY_LEN and not Path(text).exists():
        return check_key(text)
    try:
        public, _ = load_certificate(text)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read the CURVE public key {text!r}: {err}") from None
    return check_key(public.decode())


def load_allow_dir(directory: str | Path, skip_bad: bool = False) -> dict[str, str]:
    """Public key -> node id for every NAME.key file in directory (the file name is the node id); a file
    that holds no key is an error, or with skip_bad left out."""
    directory = Path(directory)
    if not directory.is_dir():
        raise ValueError(f"the allow-list folder {directory} does not exist")
    allowed: dict[str, str] = {}
    for path in sorted(directory.glob(f"*{PUBLIC_SUFFIX}")):
        try:
            allowed[read_public_key(path)] = path.name[: -len(PUBLIC_SUFFIX)]
        except ValueError:
            if not skip_bad:
                raise
    return allowed


def join_run(run_dir: str | Path, node_id: str) -> tuple[str, str | None, str | None]:
    """Join a run on this machine by its folder: (coordinator endpoint, its public key, a fresh secret key)
    whose public half is left in RUN/allow/NODE_ID.key for the coordinator to admit. Writing there is the
    proof of membership (the folder is the run owner's, mode 0700). Without CURVE: (endpoint, None, None)."""
    run_dir = Path(run_dir)
    try:
        endpoint = (run_dir / COORDINATOR_ENDPOINT_FILE).read_text().strip()
    except OSError as err:
        raise ValueError(f"{run_dir} is not a running run's folder (no {COORDINATOR_ENDPOINT_FILE}: {err})") from None
    if not (run_dir / COORDINATOR_KEY_FILE).exists():
        return endpoint, None, None
    if not node_id or "/" in node_id or node_id.startswith("."):
        raise ValueError(f"{node_id!r} cannot name a key file")
    pair = KeyPair.generate()
    tmp = run_dir / JOIN_DIR / f".{node_id}.{os.getpid()}"
    try:
        write_public_key(tmp, pair.public)
        os.replace(tmp, run_dir / JOIN_DIR / f"{node_id}{PUBLIC_SUFFIX}")  # whole, at once: the gate never reads half
    except OSError as err:
        raise ValueError(f"cannot leave the node's key in {run_dir / JOIN_DIR}: {err}") from None
    return endpoint, read_public_key(run_dir / COORDINATOR_KEY_FILE), pair.secret


# ---------------------------------------------------------------- sockets
def is_loopback(endpoint: str) -> bool:
    """Whether an endpoint is reachable from this host only (loopback tcp, ipc, inproc)."""
    transport, _, rest = endpoint.partition("://")
    if transport in ("ipc", "inproc"):
        return True
    host = rest.rsplit(":", 1)[0].strip("[]")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # "*", an interface name or a host name: may face the network
        return False


def make_server(sock: zmq.Socket, pair: KeyPair) -> None:
    """Make sock a CURVE server (before it binds); clients are checked by the context's Gate."""
    sock.setsockopt(zmq.CURVE_SERVER, 1)
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public.encode())


def make_client(sock: zmq.Socket, pair: KeyPair, server_key: str) -> None:
    """Make sock a CURVE client of the server whose public key is server_key (before it connects)."""
    sock.setsockopt(zmq.CURVE_SERVERKEY, server_key.encode())
    sock.setsockopt(zmq.CURVE_PUBLICKEY, pair.public.encode())
    sock.setsockopt(zmq.CURVE_SECRETKEY, pair.secret.encode())


class Gate:
    """The ZAP handler of one context, in a thread of its own: admits the public keys it knows, each as its
    node id, which then arrives as the "User-Id" property of every message on that connection.

    Every handshake is answered on its own, never behind another: a known key at once; an unknown key
    may wait up to grace_s for a Directory to vouch for it (a peer can connect before this process has
    read the Directory with its key: it may be starting up, or busy learning) while later handshakes go
    on being answered. A member is never refused for being early (libzmq would not try again, and what
    was sent on the connection would be lost). A key refused after its wait is refused at once when it
    comes back, and at most MAX_WAITING unknown keys wait at a time (more are refused at once), so a
    stream of strangers costs a dictionary lookup each and delays no one.
    """

    MAX_WAITING = 1024
    REMEMBERED_REFUSALS = 4096

    def __init__(
        self, ctx: zmq.Context, ids: dict[str, str], *, grace_s: float = 0.0, logger: logging.Logger | None = None
    ):
        self.ctx = ctx
        self.ids = dict(ids)  # public key -> node id; replaced whole, never mutated (the ZAP thread reads it)
        self.grace_s = grace_s
        self.log = logger or log
        self.refused = 0
        self._logged: set[str] = set()
        self._recently_refused: dict[str, None] = {}  # insertion-ordered, bounded
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._watched: list[Path] = []
        self._reserved = lambda node_id: False
        self._scanned: tuple = ()
        self._next_scan = 0.0

    def watch(self, folders, reserved=lambda node_id: False) -> None:
        """Also admit the NAME.key files that appear in folders later (a node joining by hand drops its
        public key there, then connects): an unknown key makes the ZAP thread look again when a folder
        changed (or at most once a second), so the handshake is still answered at once. Names for which
        reserved(name) is true (the coordinator, the processes launched here) are never taken from a folder."""
        self._watched, self._reserved = [Path(f) for f in folders], reserved

    def _rescan(self) -> None:
        """Admit the keys of the watched folders if they changed since the last look (ZAP thread)."""
        now = time.monotonic()
        try:
            stamp = tuple(f.stat().st_mtime_ns for f in self._watched)
        except OSError:
            return
        if stamp == self._scanned and now < self._next_scan:
            return
        self._scanned, self._next_scan = stamp, now + 1.0
        for folder in self._watched:
            try:
                found = load_allow_dir(folder, skip_bad=True)  # a file half-written or wrong: not yet
            except ValueError as err:
                self.log.warning("cannot read the allow-list folder %s: %s", folder, err)
                continue
            for key, node_id in found.items():
                if not self._reserved(node_id) and self.ids.get(key) != node_id:
                    self.admit(key, node_id)

    # ------------------------------------------------------------ keys (any thread)
    def admit(self, key: str, node_id: str) -> None:
        """Let key in as node_id (a key named for node_id before is dropped: one key per id)."""
        self.ids = {k: n for k, n in self.ids.items() if n != node_id} | {key: node_id}

    def admit_only(self, ids: dict[str, str]) -> None:
        """Replace the admitted keys."""
        self.ids = dict(ids)

    def key_of(self, node_id: str) -> str | None:
        """The key admitted as node_id."""
        return next((k for k, n in self.ids.items() if n == node_id), None)

    def keys_of(self, node_ids) -> dict[str, str]:
        """Node id -> admitted key, for those of node_ids that have one."""
        wanted = set(node_ids)
        return {n: k for k, n in self.ids.items() if n in wanted}

    # ------------------------------------------------------------ life
    def start(self) -> None:
        """Bind the context's ZAP endpoint and answer handshakes until stop()."""
        self._thread = threading.Thread(target=self._serve, name="netmarl-zap", daemon=True)
        self._thread.start()
        if not self._ready.wait(5):
            raise RuntimeError("the ZAP handler did not start")

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        """End the thread (its socket closes with it); idempotent. The thread sleeps in poll until a
        request comes (a timer would wake a thousand idle processes ten times a second): a request that
        is not ZAP wakes it to see the stop."""
        self._stop.set()
        if self._thread is None or self._thread is threading.current_thread() or not self._thread.is_alive():
            return
        try:
            poke = self.ctx.socket(zmq.DEALER)
        except zmq.ZMQError:  # the context is closing: its sockets' polls return by themselves
            poke = None
        else:
            poke.setsockopt(zmq.LINGER, 0)
            poke.connect(ZAP_ENDPOINT)
            poke.send_multipart([b"", b"stop"])
        self._thread.join(5)
        if poke is not None:
            poke.close()

    # ------------------------------------------------------------ the ZAP thread
    def _serve(self) -> None:
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        try:
            sock.bind(ZAP_ENDPOINT)
        except zmq.ZMQError:
            sock.close()
            raise
        self._ready.set()
        # (envelope, request id) -> (deadline, key): libzmq numbers every request "1", so the envelope (the
        # connection asking) tells waiting handshakes apart
        waiting: dict[tuple[tuple[bytes, ...], bytes], tuple[float, str]] = {}
        try:
            while not self._stop.is_set():
                if sock.poll(20 if waiting else None, zmq.POLLIN):  # stop() wakes it
                    for _ in range(1000):
                        self._answer(sock, sock.recv_multipart(), waiting)
                        if not sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:
                            break
                if waiting:
                    now, ids = time.monotonic(), self.ids
                    for (envelope, request_id), (deadline, key) in list(waiting.items()):
                        if key in ids or now >= deadline:
                            del waiting[envelope, request_id]
                            self._reply(sock, list(envelope), request_id, key, ids.get(key))
        finally:
            sock.close()

    def _answer(self, sock: zmq.Socket, frames: list[bytes], waiting: dict) -> None:
        """One ZAP request: [routing id, b"", version, request id, domain, address, identity, mechanism, key]."""
        try:
            delimiter = frames.index(b"")
        except ValueError:
            return
        envelope, request = frames[: delimiter + 1], frames[delimiter + 1 :]
        if len(request) < 6:
            return
        version, request_id, mechanism, credentials = request[0], request[1], request[5], request[6:]
        if version != b"1.0" or mechanism != b"CURVE" or len(credentials) != 1 or len(credentials[0]) != 32:
            sock.send_multipart([*envelope, b"1.0", request_id, b"400", b"CURVE only", b"", b""])
            self.refused += 1
            return
        key = z85.encode(credentials[0]).decode()
        node_id = self.ids.get(key)
        if node_id is None and self._watched:
            self._rescan()
            node_id = self.ids.get(key)
        if (
            node_id is not None
            or key in self._recently_refused
            or self.grace_s <= 0
            or len(waiting) >= self.MAX_WAITING
        ):
            self._reply(sock, envelope, request_id, key, node_id)
        else:
            waiting[tuple(envelope), request_id] = (time.monotonic() + self.grace_s, key)

    def _reply(self, sock: zmq.Socket, envelope: list[bytes], request_id: bytes, key: str, node_id: str | None) -> None:
        if node_id is not None:
            self._recently_refused.pop(key, None)
            sock.send_multipart([*envelope, b"1.0", request_id, b"200", b"OK", node_id.encode(), b""])
            return
        self.refused += 1
        self._recently_refused[key] = None
        if len(self._recently_refused) > self.REMEMBERED_REFUSALS:
            del self._recently_refused[next(iter(self._recently_refused))]
        if key not in self._logged and len(self._logged) < self.REMEMBERED_REFUSALS:
            self._logged.add(key)
            self.log.warning("refused a connection with unknown CURVE key %s (not on the allow-list)", key)
        sock.send_multipart([*envelope, b"1.0", request_id, b"400", b"unknown key", b"", b""])
