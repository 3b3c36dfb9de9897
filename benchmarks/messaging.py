"""Messaging benchmark: round trip and one-way rate of raw pyzmq, netmarl direct and netmarl through the medium."""

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

import numpy as np  # noqa: E402
import zmq  # noqa: E402

from netsim.config import NetsimConfig  # noqa: E402
from netsim.medium import Medium  # noqa: E402
from protocols.codec import Stamper, decode, encode, wire_size  # noqa: E402
from protocols.endpoint import Endpoint  # noqa: E402
from protocols.messages import Beacon, Directory, Ping, Pong, Positions, Shutdown  # noqa: E402
from protocols.sockets import Inbox, PeerLink  # noqa: E402

MP = mp.get_context("forkserver")
NETSIM = dict(model="unit_disk", range_m=1000.0, clock="wall", latency_base_s=0.0, bandwidth_bps=1e12)
PROBE = -1.0  # Beacon.speed of a round-trip probe: agent B answers it instead of counting it
BEACON_BYTES = 200
REPORT_TIMEOUT_S = 90.0
TARGETS = {"direct_rtt_ratio": 1.5, "medium_rtt_ratio": 3.0, "medium_rate": 20_000}


# ---------------------------------------------------------------- helpers shared by both ends
class Counter:
    """Counts one-way messages and reports (count, first, last) once, when `expected` have come or on stop."""

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
        """Send the figures to the parent (only once)."""
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


def rtt_us(once, n: int, warmup: int) -> np.ndarray:
    """Round-trip times in microseconds of n calls of once(i) after warmup untimed ones."""
    for i in range(warmup):
        once(i)
    out = np.empty(n)
    for i in range(n):
        t0 = time.perf_counter()
        once(i)
        out[i] = time.perf_counter() - t0
    return out * 1e6


def collect(conn, stop) -> tuple[int, float, float]:
    """Wait for the receiver's (count, first, last); on timeout call stop() and take its partial count."""
    if not conn.poll(REPORT_TIMEOUT_S):
        stop()
    return conn.recv()


def stats(rtt: np.ndarray, n: int, t_send: float, report: tuple, extra: dict | None = None) -> dict:
    """Figures of one path: RTT percentiles, messages received and one-way rate."""
    count, _first, last = report
    return {"rtt_p50_us": float(np.percentile(rtt, 50)), "rtt_p99_us": float(np.percentile(rtt, 99)),
            "rtt_mean_us": float(rtt.mean()), "sent": n, "received": count,
            "rate_msg_s": count / (last - t_send) if count else 0.0, **(extra or {})}


# ---------------------------------------------------------------- raw pyzmq
def raw_server(conn, expected: int) -> None:
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


def bench_raw(n_rtt: int, warmup: int, n_msgs: int) -> dict:
    """DEALER -> ROUTER echo and one-way blast with 100-byte payloads."""
    parent, child = MP.Pipe()
    proc = MP.Process(target=raw_server, args=(child, n_msgs))
    proc.start()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(parent.recv())
    echo, count = b"E" + bytes(99), b"C" + bytes(99)

    def once(_i):
        sock.send(echo)
        sock.recv()

    rtt = rtt_us(once, n_rtt, warmup)
    t_send = time.perf_counter()
    for _ in range(n_msgs):
        sock.send(count)
    report = collect(parent, lambda: sock.send(b"S"))
    sock.send(b"S")
    proc.join(10)
    sock.close(0)
    ctx.term()
    return stats(rtt, n_msgs, t_send, report, {"bytes": 100})


# ---------------------------------------------------------------- netmarl direct
def direct_server(conn, expected: int, profile: str | None) -> None:
    """Inbox: answer Ping with Pong, count Beacons, stop on Shutdown."""
    ctx = zmq.Context()
    inbox = Inbox(ctx)
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


def bench_direct(n_rtt: int, warmup: int, n_msgs: int, profile: str | None) -> dict:
    """Stamper/encode -> PeerLink -> Inbox.recv (decode) -> Inbox.reply -> decode."""
    parent, child = MP.Pipe()
    proc = MP.Process(target=direct_server, args=(child, n_msgs, profile))
    proc.start()
    ctx = zmq.Context()
    st = Stamper("client")
    link = PeerLink(ctx, parent.recv(), "client")

    def once(i):
        link.send(st.encode(Ping(nonce=i), "server"))
        msg = decode(link.sock.recv_multipart(copy=False))
        assert isinstance(msg.body, Pong) and msg.body.nonce == i

    rtt = rtt_us(once, n_rtt, warmup)
    ping_bytes = wire_size(st.encode(Ping(nonce=1), "server"))
    beacon = beacons(st, "server")
    t_send = time.perf_counter()
    for i in range(n_msgs):
        link.send(beacon(float(i)))
    report = collect(parent, lambda: link.send(st.encode(Shutdown(), "server")))
    link.send(st.encode(Shutdown(), "server"))
    proc.join(10)
    link.close(0)
    ctx.term()
    return stats(rtt, n_msgs, t_send, report, {"bytes": ping_bytes, "beacon_bytes": BEACON_BYTES,
                                                "send_failed": link.failed})


# ---------------------------------------------------------------- netmarl through the medium
def medium_proc(conn, coordinator: str, profile: str | None) -> None:
    """A real Medium on its own Endpoint; it learns peers and positions from the benchmark."""
    ep = Endpoint("medium", "medium", coordinator)
    try:
        medium = Medium(ep, NetsimConfig(**NETSIM), seed=0)
        conn.send(ep.inbox.endpoint)
        profiled(medium.run, profile)
        conn.send({"forwarded": medium.forwarded, "rejected": ep.inbox.rejected,
                   "totals": medium.stats.totals()})
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


def bench_medium(n_rtt: int, warmup: int, n_msgs: int, profile: str | None) -> dict:
    """A -> medium -> B round trips (B answers via the medium) and A blasting unicast beacons to B."""
    ctx = zmq.Context()
    coord = Inbox(ctx)  # stands in for the coordinator: takes the medium's heartbeats and link reports
    m_parent, m_child = MP.Pipe()
    medium = MP.Process(target=medium_proc, args=(m_child, coord.endpoint, profile and f"{profile}.medium"))
    medium.start()
    medium_ep = m_parent.recv()
    b_parent, b_child = MP.Pipe()
    agent = MP.Process(target=agent_b, args=(b_child, medium_ep, n_msgs, profile and f"{profile}.b"))
    agent.start()
    b_ep = b_parent.recv()

    a_inbox = Inbox(ctx)
    st = Stamper("A")
    to_medium = PeerLink(ctx, medium_ep, "A")
    cst = Stamper("coordinator")
    ctl = PeerLink(ctx, medium_ep, "coordinator")
    ctl.send(cst.encode(Directory(endpoints={"A": a_inbox.endpoint, "B": b_ep, "medium": medium_ep},
                                  kinds={"A": "agent", "B": "agent", "medium": "medium"}), "medium"))
    xy = np.array([[0.0, 0.0], [10.0, 0.0]])
    ctl.send(cst.encode(Positions(step=0, ids=["A", "B"]), "medium", {"xy": xy, "speed": np.zeros(2)}))
    ctl.send(cst.encode(Ping(nonce=7), "medium"))  # answered after the two above: the medium is ready
    if not ctl.sock.poll(10_000):
        raise RuntimeError("the medium did not answer")
    decode(ctl.sock.recv_multipart(copy=False))

    beacon = beacons(st, "B")

    def once(i):
        to_medium.send(beacon(float(i), PROBE))
        _ident, msg = a_inbox.recv()
        assert msg.env.src == "B" and msg.body.x == float(i)

    rtt = rtt_us(once, n_rtt, warmup)
    t_send = time.perf_counter()
    for i in range(n_msgs):
        to_medium.send(beacon(float(i)))
    shut = PeerLink(ctx, b_ep, "coordinator")
    report = collect(b_parent, lambda: shut.send(cst.encode(Shutdown(), "B")))
    shut.send(cst.encode(Shutdown(), "B"))
    ctl.send(cst.encode(Shutdown(), "medium"))
    mstats = m_parent.recv() if m_parent.poll(10) else {}
    agent.join(10)
    medium.join(10)
    for sock in (to_medium, ctl, shut):
        sock.close(0)
    for inbox in (a_inbox, coord):
        inbox.close()
    ctx.term()
    return stats(rtt, n_msgs, t_send, report, {"bytes": BEACON_BYTES, "send_failed": to_medium.failed,
                                                "medium_forwarded": mstats.get("forwarded"),
                                                "medium_rejected": mstats.get("rejected")})


# ---------------------------------------------------------------- report
def print_profile(path: str, title: str, top: int = 14) -> None:
    """Print the top functions by own time of one child's profile."""
    if not Path(path).exists():
        return
    out = io.StringIO()
    pstats.Stats(path, stream=out).sort_stats("tottime").print_stats(top)
    lines = out.getvalue().splitlines()
    start = next((i for i, s in enumerate(lines) if s.lstrip().startswith("ncalls")), 0)
    print(f"\n--- profile: {title} (top {top} by own time)")
    print("\n".join(lines[max(start - 3, 0):]).rstrip())


def main(argv=None) -> int:
    """Run the three paths, print the table, the ratios and targets, and one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rtt", type=int, default=5000, help="timed round trips per path")
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--msgs", type=int, default=100_000, help="one-way messages, raw and direct")
    ap.add_argument("--medium-msgs", type=int, default=50_000, help="one-way messages through the medium")
    ap.add_argument("--profile", action="store_true", help="cProfile the receiving processes and print the top")
    args = ap.parse_args(argv)

    prof = tempfile.mkdtemp(prefix="netmarl-prof-") + "/p" if args.profile else None
    res = {"raw": bench_raw(args.rtt, args.warmup, args.msgs),
           "direct": bench_direct(args.rtt, args.warmup, args.msgs, prof and f"{prof}.direct"),
           "medium": bench_medium(args.rtt, args.warmup, args.medium_msgs, prof)}
    if prof:
        print_profile(f"{prof}.direct", "direct receiver (Inbox.recv + Pong)")
        print_profile(f"{prof}.medium", "medium")
        print_profile(f"{prof}.b", "agent B behind the medium")

    raw = res["raw"]["rtt_p50_us"]
    ratios = {"direct_rtt_ratio": res["direct"]["rtt_p50_us"] / raw,
              "medium_rtt_ratio": res["medium"]["rtt_p50_us"] / raw,
              "direct_rate_ratio": res["direct"]["rate_msg_s"] / res["raw"]["rate_msg_s"],
              "medium_rate": res["medium"]["rate_msg_s"]}
    verdict = {"direct_rtt_ratio": ratios["direct_rtt_ratio"] <= TARGETS["direct_rtt_ratio"],
               "medium_rtt_ratio": ratios["medium_rtt_ratio"] <= TARGETS["medium_rtt_ratio"],
               "medium_rate": ratios["medium_rate"] >= TARGETS["medium_rate"]}

    print(f"\n{'path':<8} {'bytes':>6} {'rtt p50 us':>11} {'rtt p99 us':>11} {'one-way msg/s':>14} "
          f"{'received':>17}")
    for name, r in res.items():
        print(f"{name:<8} {r['bytes']:>6} {r['rtt_p50_us']:>11.1f} {r['rtt_p99_us']:>11.1f} "
              f"{r['rate_msg_s']:>14,.0f} {r['received']:>8}/{r['sent']:<8}")
    print("(one-way: raw 100 B payloads; direct and medium 200 B Beacons, encoded per message by the sender, "
          "fully decoded by the receiver)")
    print(f"\nratios to raw p50 RTT: direct {ratios['direct_rtt_ratio']:.2f}x, medium {ratios['medium_rtt_ratio']:.2f}x;"
          f" direct one-way rate {ratios['direct_rate_ratio']:.2f}x raw")
    for key, label, fmt in (("direct_rtt_ratio", "direct RTT <= 1.5x raw", "{:.2f}x"),
                            ("medium_rtt_ratio", "medium RTT <= 3x raw", "{:.2f}x"),
                            ("medium_rate", "medium forwarding >= 20,000 msg/s", "{:,.0f} msg/s")):
        print(f"target {label:<36} {fmt.format(ratios[key]):>14}  {'PASS' if verdict[key] else 'MISS'}")
    print(json.dumps({"benchmark": "messaging", **res, "ratios": ratios, "targets": TARGETS,
                      "pass": verdict, "rtt_n": args.rtt}, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
