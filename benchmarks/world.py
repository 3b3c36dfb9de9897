"""World benchmark: figure-eight steps/s with libsumo vs TraCI, and the cost of publishing positions."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from scenarios.sumo.figure8 import build_figure8  # noqa: E402
from scenarios.sumo.sim import SumoSim, sumo_binary, sumo_version  # noqa: E402


def world_rate(net: str, routes: str, backend: str, steps: int, repeats: int, record: bool) -> dict:
    """Median steps/s of SumoSim.step() + states() (subscriptions); optionally the trajectory."""
    rates, xs, vs = [], [], []
    for r in range(repeats):  # libsumo: one simulation at a time, restarted for each repeat
        with SumoSim(net, routes, backend=backend) as sim:
            sim.step()  # the 14 vehicles are inserted in the first step
            t0 = time.perf_counter()
            for _ in range(steps):
                sim.step()
                ids, xy, speed = sim.states()
                if record and r == 0:
                    xs.append(xy)
                    vs.append(speed)
            rates.append(steps / (time.perf_counter() - t0))
    out = {"steps_per_s": statistics.median(rates), "n": len(ids)}
    if record:
        out.update(ids=ids, xy=np.stack(xs), speed=np.stack(vs))
    return out


def poll_rate(net: str, routes: str, backend: str, steps: int, repeats: int) -> float:
    """Median steps/s of simulationStep + getPosition/getSpeed per vehicle (no subscriptions)."""
    if backend == "libsumo":
        import libsumo as api
    else:
        import traci as api
    rates = []
    for _ in range(repeats):
        with contextlib.redirect_stdout(io.StringIO()):  # traci.start prints its connection retries
            api.start([sumo_binary(), *SumoSim(net, routes).args()])
        api.simulationStep()
        t0 = time.perf_counter()
        for _ in range(steps):
            api.simulationStep()
            ids = api.vehicle.getIDList()
            np.array([api.vehicle.getPosition(v) for v in ids])
            np.array([api.vehicle.getSpeed(v) for v in ids])
        rates.append(steps / (time.perf_counter() - t0))
        api.close()
    return statistics.median(rates)


def reader(endpoint: str, ready, done, n_expected: int) -> None:
    """SUB side: acknowledge the first probe, then receive and decode n_expected Positions."""
    import zmq

    from protocols import codec

    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 0)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    while codec.decode(sub.recv_multipart(copy=False)).body.step >= 0:
        pass  # drain anything sent before the probes
    ready.set()
    got, last, t0 = 0, -1, None
    while got < n_expected and sub.poll(5000):
        msg = codec.decode(sub.recv_multipart(copy=False))
        if msg.body.step < 0:
            continue  # late probe
        t0 = t0 or time.perf_counter()
        assert msg.arrays["xy"].shape == (len(msg.body.ids), 2) and msg.body.step > last
        got, last = got + 1, msg.body.step
    done.put({"received": got, "recv_s": time.perf_counter() - t0 if t0 else 0.0})
    sub.close(0)


def publish_cost(ids: list[str], xy: np.ndarray, speed: np.ndarray, repeats: int) -> dict:
    """Encode each recorded step with the project codec and send it on a PUB socket to a SUB process."""
    import zmq

    from protocols import codec
    from protocols import messages as m

    ctx = zmq.Context.instance()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, 0)  # measure cost, not drops
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    spawn = mp.get_context("spawn")
    steps = len(xy)
    ready, done = spawn.Event(), spawn.Queue()
    proc = spawn.Process(target=reader, args=(f"tcp://127.0.0.1:{port}", ready, done, steps * repeats))
    proc.start()
    while not ready.is_set():  # slow joiner: probe until the subscriber has seen one
        pub.send_multipart(
            codec.encode(
                m.Positions(step=-1, ids=[]),
                src="world",
                dst="*",
                seq=0,
                arrays={"xy": np.zeros((0, 2)), "speed": np.zeros(0)},
            )
        )
        time.sleep(0.01)
    enc_us, pub_us, seq = [], [], 0
    for _ in range(repeats):
        t_enc = 0.0
        t0 = time.perf_counter()
        for k in range(steps):
            seq += 1
            t1 = time.perf_counter()
            frames = codec.encode(
                m.Positions(step=seq, ids=ids),
                src="world",
                dst="*",
                seq=seq,
                t_sim=0.1 * k,
                arrays={"xy": xy[k], "speed": speed[k]},
            )
            t_enc += time.perf_counter() - t1
            pub.send_multipart(frames, copy=False)
        pub_us.append((time.perf_counter() - t0) / steps * 1e6)
        enc_us.append(t_enc / steps * 1e6)
    result = done.get(timeout=60)
    proc.join(10)
    pub.close(1000)
    return {
        "publish_us_per_step": statistics.median(pub_us),
        "encode_us_per_step": statistics.median(enc_us),
        "message_bytes": codec.wire_size(frames),
        "delivered": result["received"],
        "sent": steps * repeats,
        "reader_msgs_per_s": result["received"] / max(result["recv_s"], 1e-9),
    }


def main() -> None:
    """Run the benchmark and print a summary, then one JSON line with all figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--steps", type=int, default=1500, help="timed steps per run (0.1 s each)")
    ap.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is reported")
    ap.add_argument("--vehicles", type=int, default=14)
    a = ap.parse_args()

    spawn = mp.get_context("spawn")  # libsumo: one simulation per process, so each run gets its own
    with tempfile.TemporaryDirectory(prefix="netmarl-bench-") as tmp:
        files = build_figure8(Path(tmp), n_vehicles=a.vehicles, n_agents=a.vehicles)
        net, rou = str(files.net), str(files.routes)
        with spawn.Pool(1, maxtasksperchild=1) as pool:
            lib = pool.apply(world_rate, (net, rou, "libsumo", a.steps, a.repeats, True))
            tra = pool.apply(world_rate, (net, rou, "traci", a.steps, a.repeats, False))
            lib_poll = pool.apply(poll_rate, (net, rou, "libsumo", a.steps, a.repeats))
            tra_poll = pool.apply(poll_rate, (net, rou, "traci", a.steps, 1))  # slow: one run
    pubc = publish_cost(lib["ids"], lib["xy"], lib["speed"], a.repeats)

    ls, tr = lib["steps_per_s"], tra["steps_per_s"]
    fig = {
        "bench": "world",
        "scenario": "figure8",
        "vehicles": lib["n"],
        "steps": a.steps,
        "repeats": a.repeats,
        "sumo": sumo_version(),
        "cpus": os.cpu_count(),
        "libsumo_steps_per_s": round(ls, 1),
        "traci_steps_per_s": round(tr, 1),
        "speedup": round(ls / tr, 2),
        "libsumo_poll_steps_per_s": round(lib_poll, 1),
        "traci_poll_steps_per_s": round(tra_poll, 1),
        "speedup_poll": round(lib_poll / tra_poll, 2),
        "publish_us_per_step": round(pubc["publish_us_per_step"], 2),
        "encode_us_per_step": round(pubc["encode_us_per_step"], 2),
        "message_bytes": pubc["message_bytes"],
        "delivered": pubc["delivered"],
        "sent": pubc["sent"],
        "reader_msgs_per_s": round(pubc["reader_msgs_per_s"], 1),
        # derived, not measured together: 1 / (libsumo step time + publish time)
        "libsumo_with_publish_steps_per_s": round(1 / (1 / ls + pubc["publish_us_per_step"] * 1e-6), 1),
    }
    print(f"figure-eight, {fig['vehicles']} vehicles, {a.steps} steps x {a.repeats}, SUMO {fig['sumo']}")
    print(f"  step + states (subscriptions): libsumo {ls:9.0f} steps/s   traci {tr:8.0f} steps/s   x{fig['speedup']}")
    print(
        f"  step + per-vehicle get calls:  libsumo {lib_poll:9.0f} steps/s   traci {tra_poll:8.0f} steps/s   "
        f"x{fig['speedup_poll']}"
    )
    print(
        f"  publish Positions (encode + PUB send over tcp loopback): {fig['publish_us_per_step']:.1f} us/step "
        f"(encode {fig['encode_us_per_step']:.1f} us, {fig['message_bytes']} B, "
        f"{fig['delivered']}/{fig['sent']} delivered)"
    )
    print(json.dumps(fig))


if __name__ == "__main__":
    main()
