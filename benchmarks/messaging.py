"""Messaging benchmark: round trip and one-way rate of raw pyzmq, netmarl direct and netmarl through the medium;
with run authentication (CURVE) beside; and the hostile path: the time to reject a malformed message, and the
medium's forwarding while half of what it receives is malformed."""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import multiprocessing as mp
import pstats
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
import zmq  # noqa: E402

from netsim.config import NetsimConfig  # noqa: E402
from netsim.medium import Medium  # noqa: E402
from protocols.codec import Stamper, decode, encode, wire_size  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from protocols.errors import ProtocolError  # noqa: E402
from protocols.messages import Beacon, Directory, Ping, Pong, Positions, Shutdown  # noqa: E402
from protocols.security import KeyPair  # noqa: E402
from protocols.sockets import Inbox, PeerLink, secure_inbox  # noqa: E402

MP = mp.get_context("forkserver")
NETSIM = dict(model="unit_disk", range_m=1000.0, clock="wall", latency_base_s=0.0, bandwidth_bps=1e12)
PROBE = -1.0  # Beacon.speed of a round-trip probe: agent B answers it instead of counting it
BEACON_BYTES = 200
REPORT_TIMEOUT_S = 90.0
TARGETS = {
    "direct_rtt_ratio": 1.2,
    "medium_rtt_ratio": 2.3,
    "direct_rate_ratio": 0.6,
    "medium_rate": 100_000,
    "cpu_ratio": 2.0,
    "reject_us": 50.0,
}  # cpu_ratio: send + receive CPU a message, direct / raw
MALFORMED = {  # what a careless or hostile peer sends; each is rejected by the receiver's decode
    "garbage bytes": lambda env: [b"\xc1" * 40, b"\x00"],
    "body of the wrong type": lambda env: [env, msgpack.packb({"x": "far", "y": 0.0, "speed": 0.0})],
    "unknown message type": lambda env: [msgpack.packb({**msgpack.unpackb(env), "type": "teleport"}), b"\x80"],
    "unknown body key": lambda env: [env, msgpack.packb({"x": 0.0, "y": 0.0, "speed": 0.0, "evil": 1})],
}


# ---------------------------------------------------------------- helpers used by both ends
class Counter:
    """Counts one-way messages; reports (count, first, last) once: when `expected` have come, or on stop."""

    def __init__(self, conn, expected: int):
        self.conn, self.expected = conn, expected
        self.count, self.first, self.last, self.sent = 0, 0.0, 0.0, False

    def hit(self) -> None:
        """Count one message."""
        self.last = time.perf_counter()
        if not self.count:
            self.first = self.last
        self.count += 1
        if self.count == self.expected:
            self.report()

    def report(self) -> None:
        """Send the figures to the parent (only the first call does)."""
        if not self.sent:
            self.conn.send((self.count, self.first, self.last))
            self.sent = True


def profiled(func, path: str | None):
    """Run func() under cProfile when path is given, dumping the stats there."""
    if not path:
        return func()
    prof = cProfile.Profile()
    try:
        return prof.runcall(func)
    finally:
        prof.dump_stats(path)


def beacons(st: Stamper, dst: str):
    """A function (x, speed) -> frames of a Beacon from st to dst, padded to about BEACON_BYTES on the wire."""
    probe = encode(Beacon(x=0.0, y=0.0, speed=0.0), src=st.src, dst=dst, seq=1000)
    pad = bytes(max(BEACON_BYTES - wire_size(probe), 0))
    return lambda x=0.0, speed=0.0: st.encode(Beacon(x=x, y=0.0, speed=speed, pad=pad), dst)


def spawn(target, *args) -> tuple:
    """Start target(child_conn, *args) in its own process; return (process, parent_conn, first message)."""
    parent, child = MP.Pipe()
    proc = MP.Process(target=target, args=(child, *args))
    proc.start()
    if not parent.poll(30):
        raise RuntimeError(f"{target.__name__} did not start")
    return proc, parent, parent.recv()


# ---------------------------------------------------------------- receiving ends (child processes)
def raw_server(conn, expected: int, _profile=None) -> None:
    """ROUTER: echo b'E...' messages, count b'C...' ones, stop on b'S'."""
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind("tcp://127.0.0.1:*")
    conn.send(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    counter = Counter(conn, expected)
    while True:
        ident, payload = sock.recv_multipart()
        tag = payload[:1]
        if tag == b"E":
            sock.send_multipart([ident, payload])
        elif tag == b"C":
            counter.hit()
        else:
            break
    counter.report()
    sock.close(0)
    ctx.term()


def direct_server(conn, expected: int, profile: str | None, curve: tuple[str, str] | None = None) -> None:
    """Inbox: answer Ping with Pong, count Beacons, stop on Shutdown. curve: (own secret key, the client's
    public key) makes it a CURVE inbox that admits only that client, as every run's inboxes are by default."""
    ctx = zmq.Context()
    inbox = Inbox(ctx) if curve is None else secure_inbox(ctx, {curve[1]: "client"}, pair=KeyPair.from_secret(curve[0]))
    st = Stamper("server")
    conn.send(inbox.endpoint)
    counter = Counter(conn, expected)

    def loop():
        while True:
            ident, msg = inbox.recv()
            body = msg.body if msg is not None else None
            if isinstance(body, Ping):
                inbox.reply(ident, st.encode(Pong(nonce=body.nonce), msg.env.src))
            elif isinstance(body, Beacon):
                counter.hit()
            elif isinstance(body, Shutdown):
                return

    profiled(loop, profile)
    counter.report()
    inbox.close()
    ctx.term()


def medium_proc(conn, coordinator: str, profile: str | None) -> None:
    """A real Medium on its own Endpoint; the benchmark feeds it the Directory and Positions."""
    ep = Endpoint("medium", "medium", coordinator)
    try:
        medium = Medium(ep, NetsimConfig(**NETSIM), seed=0)
        conn.send(ep.inbox.endpoint)
        profiled(medium.run, profile)
        conn.send({"forwarded": medium.forwarded, "rejected": ep.inbox.rejected})
    finally:
        ep.close()


def agent_b(conn, medium_ep: str, expected: int, profile: str | None) -> None:
    """Agent B: answers probe Beacons through the medium, counts the others, stops on Shutdown."""
    ctx = zmq.Context()
    inbox = Inbox(ctx)
    st = Stamper("B")
    link = PeerLink(ctx, medium_ep, "B")
    conn.send(inbox.endpoint)
    counter = Counter(conn, expected)
    beacon = beacons(st, "A")

    def loop():
        while True:
            _ident, msg = inbox.recv()
            body = msg.body if msg is not None else None
            if isinstance(body, Beacon):
                if body.speed == PROBE:
                    link.send(beacon(body.x, PROBE))
                else:
                    counter.hit()
            elif isinstance(body, Shutdown):
                return

    profiled(loop, profile)
    counter.report()
    link.close(0)
    inbox.close()
    ctx.term()


# ---------------------------------------------------------------- sending ends (this process)
class RawPath:
    """Raw pyzmq: DEALER -> ROUTER over tcp loopback, 100-byte payloads."""

    def __init__(self, expected: int, profile: str | None = None):
        proc, self.conn, endpoint = spawn(raw_server, expected)
        self.procs = {"receiver": proc}
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.connect(endpoint)
        self.echo, self.count = b"E" + bytes(99), b"C" + bytes(99)
        self.bytes = 100

    def once(self, _i: int) -> None:
        """One round trip."""
        self.sock.send(self.echo)
        self.sock.recv()

    def send_one(self, _i: int) -> None:
        """One one-way message."""
        self.sock.send(self.count)

    def stop_receiver(self) -> None:
        """Make the receiver report and exit."""
        self.sock.send(b"S")

    def close(self) -> dict:
        """Stop the receiver, close sockets, return extra figures."""
        self.stop_receiver()
        self.procs["receiver"].join(10)
        self.sock.close(0)
        self.ctx.term()
        return {}


class LinkPath:
    """A path whose sender is one PeerLink (self.link) and whose receiver is a child process."""

    def close(self) -> dict:
        """Stop the receiver, close sockets, return extra figures."""
        self.stop_receiver()
        self.procs["receiver"].join(10)
        self.link.close(0)
        self.ctx.term()
        return {"send_failed": self.link.failed}


class DirectPath(LinkPath):
    """netmarl direct: Stamper/encode -> PeerLink -> Inbox.recv (decode) -> Inbox.reply -> decode.
    With curve=True both ends authenticate and encrypt as a run's processes do by default (CURVE)."""

    def __init__(self, expected: int, profile: str | None = None, curve: bool = False):
        server, client = KeyPair.generate(), KeyPair.generate()
        keys = (server.secret, client.public) if curve else None
        proc, self.conn, endpoint = spawn(direct_server, expected, profile, keys)
        self.procs = {"receiver": proc}
        self.ctx = zmq.Context()
        self.st = Stamper("client")
        self.link = PeerLink(self.ctx, endpoint, "client", curve=(client, server.public) if curve else None)
        self.beacon = beacons(self.st, "server")
        self.bytes = wire_size(self.st.encode(Ping(nonce=1), "server"))

    def once(self, i: int) -> None:
        """One Ping/Pong round trip, both ends encoding and decoding."""
        self.link.send(self.st.encode(Ping(nonce=i), "server"))
        msg = decode(self.link.sock.recv_multipart(copy=False))
        assert isinstance(msg.body, Pong) and msg.body.nonce == i

    def send_one(self, i: int) -> None:
        """One Beacon, encoded here."""
        self.link.send(self.beacon(float(i)))

    def stop_receiver(self) -> None:
        """Ask the receiver to report and exit."""
        self.link.send(self.st.encode(Shutdown(), "server"))


class MediumPath:
    """A -> medium -> B unicast Beacons; B answers probes with a Beacon back through the medium."""

    def __init__(self, expected: int, profile: str | None = None):
        self.ctx = zmq.Context()
        self.coord = Inbox(self.ctx)  # stands in for the coordinator: takes the medium's heartbeats and reports
        medium, self.mconn, medium_ep = spawn(medium_proc, self.coord.endpoint, profile and f"{profile}.medium")
        agent, self.conn, b_ep = spawn(agent_b, medium_ep, expected, profile and f"{profile}.b")
        self.procs = {"medium": medium, "receiver": agent}
        self.inbox = Inbox(self.ctx)
        self.st, self.cst = Stamper("A"), Stamper("coordinator")
        self.to_medium = PeerLink(self.ctx, medium_ep, "A")
        self.ctl = PeerLink(self.ctx, medium_ep, "coordinator")
        self.world = PeerLink(self.ctx, medium_ep, "world")  # positions are taken only from a world process
        self.to_b = PeerLink(self.ctx, b_ep, "coordinator")
        self.beacon = beacons(self.st, "B")
        self.bytes = BEACON_BYTES
        self.control(
            Directory(
                endpoints={"A": self.inbox.endpoint, "B": b_ep, "medium": medium_ep},
                kinds={"A": "agent", "B": "agent", "medium": "medium", "world": "world"},
            )
        )
        xy = np.array([[0.0, 0.0], [10.0, 0.0]])
        time.sleep(0.3)  # the medium must know which peer is the world before it takes positions
        self.world.send(
            Stamper("world").encode(Positions(step=0, ids=["A", "B"]), "medium", {"xy": xy, "speed": np.zeros(2)})
        )
        time.sleep(0.3)  # positions travel on their own connection; let them land before the ping below
        self.control(Ping(nonce=7))  # answered after the two above are applied: the medium is ready
        if not self.ctl.sock.poll(10_000):
            raise RuntimeError("the medium did not answer")
        decode(self.ctl.sock.recv_multipart(copy=False))

    def control(self, body, arrays=None) -> None:
        """Send a control message to the medium as the coordinator would."""
        self.ctl.send(self.cst.encode(body, "medium", arrays))

    def once(self, i: int) -> None:
        """One probe Beacon to B and its answer, both through the medium."""
        self.to_medium.send(self.beacon(float(i), PROBE))
        _ident, msg = self.inbox.recv()
        assert msg.env.src == "B" and msg.body.x == float(i)

    def send_one(self, i: int) -> None:
        """One unicast Beacon to B, encoded here."""
        self.to_medium.send(self.beacon(float(i)))

    def stop_receiver(self) -> None:
        """Ask B to report and exit."""
        self.to_b.send(self.cst.encode(Shutdown(), "B"))

    def close(self) -> dict:
        """Stop B and the medium, close sockets, return the medium's own counts."""
        self.stop_receiver()
        self.control(Shutdown())
        mstats = self.mconn.recv() if self.mconn.poll(10) else {}
        for proc in self.procs.values():
            proc.join(10)
        for link in (self.to_medium, self.ctl, self.world, self.to_b):
            link.close(0)
        self.inbox.close()
        self.coord.close()
        self.ctx.term()
        return {
            "send_failed": self.to_medium.failed,
            "medium_forwarded": mstats.get("forwarded"),
            "medium_rejected": mstats.get("rejected"),
        }


class MixedMediumPath(MediumPath):
    """The medium path under a mix of good and bad traffic: every good Beacon from A is followed by a
    malformed message from A (the kinds of MALFORMED in turn), which the medium must reject, count and
    (within its reply budget) answer, while it goes on forwarding the good ones."""

    def __init__(self, expected: int, profile: str | None = None):
        super().__init__(expected, profile)
        env = self.beacon()[0]
        self.bad = [make(bytes(env)) for make in MALFORMED.values()]

    def send_one(self, i: int) -> None:
        """One good Beacon to B, then one malformed message."""
        self.to_medium.send(self.beacon(float(i)))
        self.to_medium.send(self.bad[i % len(self.bad)])


def measure_rejection(reps: int = 20_000) -> dict[str, float]:
    """Median microseconds for decode() to refuse each kind of MALFORMED message (in this process)."""
    env = bytes(beacons(Stamper("A"), "B")()[0])
    out = {}
    for name, make in MALFORMED.items():
        frames, times = make(env), np.empty(reps)
        for i in range(reps):
            t0 = time.perf_counter()
            try:
                decode(frames)
            except ProtocolError:
                pass
            else:
                raise AssertionError(f"{name} was accepted")
            times[i] = time.perf_counter() - t0
        out[name] = float(np.median(times) * 1e6)
    return out


# ---------------------------------------------------------------- measurements
def measure_rtt(paths: dict, n: int, warmup: int, rounds: int) -> dict[str, np.ndarray]:
    """Round trips in microseconds, interleaving the paths in rounds so machine noise hits all alike."""
    for path in paths.values():
        for i in range(warmup):
            path.once(i)
    samples = {name: [] for name in paths}
    per_round = max(1, n // rounds)
    for _ in range(rounds):
        for name, path in paths.items():
            out = np.empty(per_round)
            for i in range(per_round):
                t0 = time.perf_counter()
                path.once(i)
                out[i] = time.perf_counter() - t0
            samples[name].append(out * 1e6)
    return {name: np.concatenate(s) for name, s in samples.items()}


def cpu_s(proc: psutil.Process) -> float:
    """CPU seconds (user + system, all threads) used so far by proc."""
    t = proc.cpu_times()
    return t.user + t.system


def measure_rate(path, n: int) -> dict:
    """Blast n one-way messages; the receiver's count, the rate and each process's CPU time per message."""
    procs = {"sender": psutil.Process(), **{k: psutil.Process(p.pid) for k, p in path.procs.items()}}
    cpu0 = {k: cpu_s(p) for k, p in procs.items()}
    t_send = time.perf_counter()
    for i in range(n):
        path.send_one(i)
    if not path.conn.poll(REPORT_TIMEOUT_S):
        path.stop_receiver()  # some were lost: take the partial count
    count, _first, last = path.conn.recv()
    cpu = {f"cpu_us_per_msg_{k}": (cpu_s(p) - cpu0[k]) / max(count, 1) * 1e6 for k, p in procs.items()}
    return {"sent": n, "received": count, "rate_msg_s": count / (last - t_send) if count else 0.0, **cpu}


def cpu_per_message(r: dict) -> float:
    """Sender plus receiver CPU microseconds a one-way message."""
    return r["cpu_us_per_msg_sender"] + r["cpu_us_per_msg_receiver"]


def print_profile(path: str, title: str, top: int = 14) -> None:
    """Print the top functions by own time of one child's profile."""
    if not Path(path).exists():
        return
    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((i for i, s in enumerate(lines) if s.lstrip().startswith("ncalls")), 0)
    print(f"\n--- profile: {title} (top {top} by own time; blocking waits included)")
    print("\n".join(lines[start:]).rstrip())


def main(argv=None) -> int:
    """Run the three paths, print the table, the ratios and targets, and one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rtt", type=int, default=5000, help="timed round trips per path")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=10, help="interleaved RTT rounds")
    ap.add_argument("--msgs", type=int, default=100_000, help="one-way messages, raw and direct")
    ap.add_argument("--medium-msgs", type=int, default=50_000, help="one-way messages through the medium")
    ap.add_argument("--profile", action="store_true", help="cProfile the receiving processes (slows them)")
    args = ap.parse_args(argv)

    prof = tempfile.mkdtemp(prefix="netmarl-prof-") + "/p" if args.profile else None
    paths = {
        "raw": RawPath(args.msgs),
        "direct": DirectPath(args.msgs, prof and f"{prof}.direct"),
        "curve": DirectPath(args.msgs, curve=True),
        "medium": MediumPath(args.medium_msgs, prof),
    }
    rtt = measure_rtt(paths, args.rtt, args.warmup, args.rounds)
    res = {}
    for name, path in paths.items():
        r = rtt[name]
        res[name] = {
            "bytes": path.bytes,
            "rtt_p50_us": float(np.percentile(r, 50)),
            "rtt_p99_us": float(np.percentile(r, 99)),
            "rtt_mean_us": float(r.mean()),
            **measure_rate(path, args.medium_msgs if name == "medium" else args.msgs),
        }
        res[name].update(path.close())
    mixed = MixedMediumPath(args.medium_msgs)
    res["medium_mixed"] = {**measure_rate(mixed, args.medium_msgs), **mixed.close()}
    rejection = measure_rejection()
    if prof:
        print_profile(f"{prof}.direct", "direct receiver")
        print_profile(f"{prof}.medium", "medium")
        print_profile(f"{prof}.b", "agent B behind the medium")

    raw = res["raw"]["rtt_p50_us"]
    ratios = {
        "direct_rtt_ratio": res["direct"]["rtt_p50_us"] / raw,
        "medium_rtt_ratio": res["medium"]["rtt_p50_us"] / raw,
        "direct_rate_ratio": res["direct"]["rate_msg_s"] / res["raw"]["rate_msg_s"],
        "curve_rtt_ratio": res["curve"]["rtt_p50_us"] / raw,
        "curve_cost_rtt": res["curve"]["rtt_p50_us"] / res["direct"]["rtt_p50_us"],
        "curve_cost_rate": res["curve"]["rate_msg_s"] / res["direct"]["rate_msg_s"],
        "medium_rate": res["medium"]["rate_msg_s"],
        "medium_mixed_rate": res["medium_mixed"]["rate_msg_s"],
        "cpu_ratio": cpu_per_message(res["direct"]) / cpu_per_message(res["raw"]),
        "curve_cpu_ratio": cpu_per_message(res["curve"]) / cpu_per_message(res["raw"]),
        "reject_us": max(rejection.values()),
    }
    verdict = {
        key: ratios[key] >= target if key.endswith("rate") or key == "direct_rate_ratio" else ratios[key] <= target
        for key, target in TARGETS.items()
    }

    print(
        f"\n{'path':<7} {'rtt B':>5} {'p50 us':>7} {'p99 us':>7} {'one-way msg/s':>13} {'received':>13}"
        f" {'CPU us/msg: sender':>19} {'medium':>6} {'recv':>5}"
    )
    for name, r in res.items():
        if name == "medium_mixed":
            continue
        print(
            f"{name:<7} {r['bytes']:>5} {r['rtt_p50_us']:>7.1f} {r['rtt_p99_us']:>7.1f} {r['rate_msg_s']:>13,.0f} "
            f"{r['received']:>6}/{r['sent']:<6} {r['cpu_us_per_msg_sender']:>19.1f} "
            f"{r.get('cpu_us_per_msg_medium', float('nan')):>6.1f} {r['cpu_us_per_msg_receiver']:>5.1f}"
        )
    print(
        f"(RTT: {args.rtt} per path in {args.rounds} interleaved rounds after {args.warmup} warm-up; one-way: raw "
        f"100 B, direct and medium {BEACON_BYTES} B Beacons encoded per message by the sender and fully decoded "
        f"by the receiver; {psutil.cpu_count()} CPUs)"
    )
    extra = {name: res[name]["rtt_p50_us"] - raw for name in ("direct", "medium")}
    print(
        f"\nratios to raw p50 RTT: direct {ratios['direct_rtt_ratio']:.2f}x (+{extra['direct']:.0f} us), "
        f"medium {ratios['medium_rtt_ratio']:.2f}x (+{extra['medium']:.0f} us); "
        f"direct one-way rate {ratios['direct_rate_ratio']:.2f}x raw"
    )
    print(
        f"run authentication (CURVE, the default for a run's sockets) against direct without it: round trip "
        f"{ratios['curve_cost_rtt']:.2f}x, one-way rate {ratios['curve_cost_rate']:.2f}x "
        f"(curve: RTT {ratios['curve_rtt_ratio']:.2f}x raw, "
        f"rate {res['curve']['rate_msg_s'] / res['raw']['rate_msg_s']:.2f}x"
        f" raw, CPU a message {ratios['curve_cpu_ratio']:.2f}x raw)"
    )
    mixed = res["medium_mixed"]
    print(
        "hostile path: decode() rejects a malformed message in "
        f"{', '.join(f'{k} {v:.1f} us' for k, v in rejection.items())}"
        f" (median); the medium forwards {mixed['rate_msg_s']:,.0f} good msg/s while every other message it gets is "
        f"malformed ({mixed['received']}/{mixed['sent']} good ones delivered, {mixed['medium_rejected']} rejected, "
        f"{mixed['cpu_us_per_msg_medium']:.1f} us of medium CPU per good message)"
    )
    for key, label, fmt in (
        ("direct_rtt_ratio", "direct RTT <= 1.2x raw", "{:.2f}x"),
        ("medium_rtt_ratio", "medium RTT <= 2.3x raw", "{:.2f}x"),
        ("direct_rate_ratio", "direct one-way rate >= 0.6x raw", "{:.2f}x"),
        ("medium_rate", "medium forwarding >= 100,000 msg/s", "{:,.0f} msg/s"),
        ("cpu_ratio", "CPU a message (send + recv) <= 2x raw", "{:.2f}x"),
        ("reject_us", "rejecting a bad message <= 50 us", "{:.1f} us"),
    ):
        print(f"target {label:<38} {fmt.format(ratios[key]):>14}  {'PASS' if verdict[key] else 'MISS'}")
    print(
        json.dumps(
            {
                "benchmark": "messaging",
                **res,
                "rejection_us": rejection,
                "ratios": ratios,
                "targets": TARGETS,
                "pass": verdict,
                "rtt_n": args.rtt,
                "profiled": bool(prof),
                "cpus": psutil.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
