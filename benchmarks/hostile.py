"""Hostile-input benchmark: what it costs a process to reject each of the worst messages a peer can build
within the limits (1 MiB body, 8 KiB envelope), per message, and what the checks cost an honest one.

Run: .venv/bin/python benchmarks/hostile.py [--reps N] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import msgpack  # noqa: E402
import numpy as np  # noqa: E402

from coordinator.run_folder import RecordError, check_record  # noqa: E402
from protocols.codec import DEFAULT_LIMITS, decode, encode  # noqa: E402
from protocols.errors import ProtocolError  # noqa: E402
from protocols.messages import Beacon, Positions  # noqa: E402

TARGET_US = 5_000  # every hostile message rejected in under 5 ms


def envelope(type_: str = "ping", **fields) -> bytes:
    env = {
        "v": 1,
        "type": type_,
        "src": "mallory",
        "dst": "victim",
        "seq": 0,
        "t_sim": 0.0,
        "t_wall": 0.0,
        "arrays": [],
    }
    env.update(fields)
    return msgpack.packb(env)


def metrics_body(values) -> bytes:
    return msgpack.packb({"kind": "k", "values": values})


TWO = [a + b for a in "abcdefghijklmnopqrstuvwxyz0123456789" for b in "abcdefghijklmnopqrstuvwxyz0123456789"]
HOSTILE = {  # name -> frames; each within the size limits
    "metrics body: 100k unknown keys": lambda: [
        envelope("metrics"),
        msgpack.packb({f"{i:06d}": 0 for i in range(100_000)}),
    ],
    "ping body: 100k unknown keys": lambda: [envelope(), msgpack.packb({f"{i:06d}": 0 for i in range(100_000)})],
    "dict[str, Any]: 100k keys": lambda: [envelope("metrics"), metrics_body({f"{i:06d}": 0 for i in range(100_000)})],
    "dict[str, Any]: 11 maps of 9k keys": lambda: [
        envelope("metrics"),
        metrics_body({str(j): {f"{i:06d}": 0 for i in range(9_000)} for j in range(11)}),
    ],
    "dict[str, Any]: 1M nested empty lists": lambda: [envelope("metrics"), metrics_body({"a": [[[]] * 100] * 9_000})],
    "dict[str, Any]: 300k short strings": lambda: [
        envelope("metrics"),
        metrics_body({"a": [[TWO[(i + j) % len(TWO)] for j in range(9_000)] for i in range(33)]}),
    ],
    "dict[str, Any]: nested 1,024 deep": lambda: [
        envelope("metrics"),
        b"\x82\xa4kind\xa1k\xa6values\x81\xa1a" + b"\x91" * 1_024 + b"\x90",
    ],
    "list[str]: 100k ints": lambda: [envelope("positions"), msgpack.packb({"step": 1, "ids": list(range(100_000))})],
    "two list[str]: 100k ints each": lambda: [
        envelope("link_report"),
        msgpack.packb({"names": list(range(100_000)), "columns": list(range(100_000))}),
    ],
    "list[str]: 9k ints": lambda: [envelope("positions"), msgpack.packb({"step": 1, "ids": list(range(9_000))})],
    "dict[str, str]: 9k int values": lambda: [
        envelope("directory"),
        msgpack.packb({"endpoints": {f"n{i}": i for i in range(9_000)}}),
    ],
    "body: a list of 1M ints, not a map": lambda: [envelope(), msgpack.packb([[0] * 9_000] * 110)],
    "envelope: 64 bad array specs": lambda: [
        envelope(arrays=[{"name": 1, "dtype": 2, "shape": "x"}] * 64),
        msgpack.packb({}),
    ],
    "envelope: 1,500 keys": lambda: [msgpack.packb({f"{i}": 0 for i in range(1_500)}), msgpack.packb({})],
    "envelope: garbage": lambda: [b"\xc1" * 8000, msgpack.packb({})],
}


def timed(func, reps: int) -> list[float]:
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        func()
        out.append(time.perf_counter() - t0)
    return out


def reject(frames) -> str:
    try:
        decode(frames)
    except ProtocolError as err:
        return str(err)
    raise AssertionError("accepted")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument(
        "--heap",
        type=int,
        default=300_000,
        help="live objects this process holds meanwhile, as a busy node does (full GC cost grows with it)",
    )
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args()
    ballast = [[i, i + 1] for i in range(args.heap)]  # noqa: F841 (kept alive on purpose)
    limits = DEFAULT_LIMITS
    print(
        f"limits: body {limits.max_body_bytes} B, envelope {limits.max_header_bytes} B, "
        f"{limits.max_container_len} entries per list or map, {limits.max_items} entries per frame; "
        f"{args.heap} live objects in this process; {args.reps} repetitions"
    )
    print(f"{'hostile message':44s} {'bytes':>9s} {'median us':>10s} {'max us':>9s}  rejected as")
    figures, worst = {}, 0.0
    for name, build in HOSTILE.items():
        frames = build()
        why = reject(frames)
        times = timed(lambda frames=frames: reject(frames), args.reps)
        med, top = statistics.median(times) * 1e6, max(times) * 1e6
        worst = max(worst, med)
        figures[name] = {"bytes": sum(len(f) for f in frames), "median_us": round(med, 1), "max_us": round(top, 1)}
        print(f"{name:44s} {figures[name]['bytes']:9d} {med:10.1f} {top:9.1f}  {why[:70]}")

    # what an accepted record costs the coordinator's check, at its bound (20,000 entries)
    big = {f"k{i}": [i, 1.5] for i in range(6_600)}
    t = statistics.median(timed(lambda: check_record("agent", "beacon_node", big), args.reps)) * 1e6
    print(f"{'metrics record check, 19,800 entries':44s} {'':9s} {t:10.1f}")
    figures["metrics record check, 19,800 entries"] = {"median_us": round(t, 1)}
    for name, values in (
        ("world record without a step", {}),
        ("values nested 7 deep", {"a": [[[[[[1]]]]]]}),
        ("20,001 entries", {"a": list(range(20_001))}),
    ):

        def refuse(name=name, values=values):
            try:
                check_record("world" if "world" in name else "agent", "world" if "world" in name else "x", values)
            except RecordError:
                return
            raise AssertionError("accepted")

        t = statistics.median(timed(refuse, args.reps)) * 1e6
        figures[f"metrics record refused: {name}"] = {"median_us": round(t, 1)}
        print(f"{'metrics record refused: ' + name:44s} {'':9s} {t:10.1f}")

    # and what the checks cost every honest message (decode of a 200-byte beacon, of 14 vehicles' positions)
    honest = {
        "beacon (200 B)": encode(Beacon(x=1.0, y=2.0, speed=3.0, pad=bytes(100)), src="a", dst="b", seq=1),
        "positions (14 vehicles)": encode(
            Positions(step=1, ids=[f"veh{i}" for i in range(14)], radio_sent={f"veh{i}": 3 for i in range(14)}),
            src="world",
            dst="medium",
            seq=1,
            arrays={"xy": np.zeros((14, 2)), "speed": np.zeros(14)},
        ),
    }
    for name, frames in honest.items():
        per = min(timed(lambda frames=frames: [decode(frames) for _ in range(2000)], 7)) / 2000 * 1e6
        figures[f"decode {name}"] = {"us": round(per, 2)}
        print(f"{'decode ' + name:44s} {'':9s} {per:10.2f}")
    print(
        f"worst median rejection: {worst:.0f} us (target < {TARGET_US} us): {'met' if worst < TARGET_US else 'NOT met'}"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0 if worst < TARGET_US else 1


if __name__ == "__main__":
    raise SystemExit(main())
