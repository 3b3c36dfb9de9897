"""Scale benchmark: N real beacon agent processes launched, registered, measured (PSS) and shut down cleanly."""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import psutil  # noqa: E402
import zmq  # noqa: E402

from coordinator.launcher import Launcher  # noqa: E402
from protocols.codec import Stamper  # noqa: E402
from protocols.messages import Directory, Register, RegisterAck, Shutdown, Start  # noqa: E402
from protocols.sockets import Inbox, PeerBook  # noqa: E402

COORDINATOR_ID = "coordinator"
TARGET = "agent_node.node:run_node_kwargs"
TARGET_N, TARGET_S = 200, 60.0


class MiniCoordinator:
    """Registers nodes as Supervisor.on_register does (RegisterAck over a PeerBook link) and sinks the rest."""

    def __init__(self, run_dir: Path):
        self.ctx = zmq.Context()
        self.inbox = Inbox(self.ctx)
        self.peers = PeerBook(self.ctx, COORDINATOR_ID)
        self.st = Stamper(COORDINATOR_ID)
        self.run_dir = run_dir
        self.registered: dict[str, float] = {}  # node id -> monotonic time of its Register
        self.endpoints: dict[str, str] = {}
        self.received = collections.Counter()

    def send(self, node_id: str, body) -> None:
        """Send one control message to a node."""
        self.peers.send(node_id, self.st.encode(body, node_id))

    def pump(self, timeout_ms: int) -> None:
        """Wait up to timeout_ms, then handle every message queued."""
        if not self.inbox.sock.poll(timeout_ms, zmq.POLLIN):
            return
        for _ in range(10_000):
            try:
                _ident, msg = self.inbox.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if msg is None:
                continue
            self.received[msg.env.type] += 1
            if isinstance(msg.body, Register):
                self.on_register(msg.body)

    def on_register(self, reg: Register) -> None:
        """Connect to the node's inbox and acknowledge, handing it the beacon role's settings."""
        self.registered[reg.node_id] = time.monotonic()
        self.endpoints[reg.node_id] = reg.endpoint
        self.peers.connect(reg.node_id, reg.endpoint)
        settings = {"role": {"name": "beacon"}, "radio_mode": "emulated", "run_dir": str(self.run_dir)}
        self.send(reg.node_id, RegisterAck(run_id=self.run_dir.name, seed=0, settings=settings))

    def start_run(self) -> None:
        """What the Supervisor does once all are in: Directory of everyone to everyone, then Start."""
        directory = Directory(endpoints=dict(self.endpoints), kinds=dict.fromkeys(self.endpoints, "agent"))
        for node_id in self.endpoints:
            self.send(node_id, directory)
            self.send(node_id, Start())

    def close(self) -> None:
        """Close the sockets and the context."""
        self.peers.close()
        self.inbox.close()
        self.ctx.term()


def memory(pids: list[int]) -> dict:
    """PSS and USS per process (MiB): mean and total, plus mean open fds and threads."""
    pss, uss, fds, threads = [], [], [], []
    for pid in pids:
        try:
            proc = psutil.Process(pid)
            info = proc.memory_full_info()
            pss.append(info.pss / 2**20)
            uss.append(info.uss / 2**20)
            fds.append(proc.num_fds())
            threads.append(proc.num_threads())
        except psutil.Error:
            continue
    n = max(len(pss), 1)
    return {
        "measured": len(pss),
        "pss_mean_mib": sum(pss) / n,
        "pss_total_mib": sum(pss),
        "uss_mean_mib": sum(uss) / n,
        "fds_mean": sum(fds) / n,
        "threads_mean": sum(threads) / n,
    }


def survivors(pids: list[int]) -> list[int]:
    """Pids among these that still exist and are not zombies."""
    out = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out.append(pid)
        except psutil.NoSuchProcess:
            pass
    return out


def run_size(n: int, log_root: Path, settle_s: float, mesh: bool) -> dict:
    """Launch n nodes, time their registration, measure memory, shut them down and check none is left."""
    run_dir = log_root / f"n{n}"
    coord = MiniCoordinator(run_dir)
    launcher = Launcher(run_dir / "logs")
    names = [f"a{i:03d}" for i in range(n)]
    t0 = time.monotonic()
    for name in names:  # like Supervisor.launch_all: launch everyone, then serve
        launcher.start(name, TARGET, node_id=name, coordinator=coord.inbox.endpoint, role="beacon")
    t_launched = time.monotonic() - t0
    deadline = t0 + max(120.0, n * 1.0)
    while len(coord.registered) < n and time.monotonic() < deadline and launcher.alive():
        coord.pump(50)
    t_registered = (max(coord.registered.values()) - t0) if len(coord.registered) == n else float("nan")
    pids = [c.pid for c in launcher.children.values()]
    fs_pid = psutil.Process(pids[0]).ppid() if pids else None

    out = {"n": n, "launch_s": t_launched, "registered": len(coord.registered), "register_s": t_registered}
    out["mem_registered"] = memory(pids)
    if mesh:
        coord.start_run()
        end = time.monotonic() + settle_s
        while time.monotonic() < end:
            coord.pump(50)
        out["mem_running"] = memory(pids)
    out["coordinator_rss_mib"] = psutil.Process().memory_info().rss / 2**20
    out["forkserver_pss_mib"] = psutil.Process(fs_pid).memory_full_info().pss / 2**20 if fs_pid else None

    t1 = time.monotonic()
    for name in coord.registered:
        coord.send(name, Shutdown(reason="benchmark done"))
    end = t1 + 30.0
    while launcher.alive() and time.monotonic() < end:
        coord.pump(20)
        launcher.reap()
    out["exit_s"] = time.monotonic() - t1
    out["needed_stop_all"] = len(launcher.alive())
    launcher.stop_all(grace_s=5.0)
    coord.pump(100)
    codes = collections.Counter(c.process.exitcode for c in launcher.children.values())
    out["exit_codes"] = {str(k): v for k, v in codes.items()}
    out["final_metrics"] = coord.received["metrics"]
    out["heartbeats"] = coord.received["heartbeat"]
    out["orphans"] = survivors(pids)
    out["log_errors"] = sum(
        c.log_path.read_text(errors="replace").count("Traceback")
        for c in launcher.children.values()
        if c.log_path.exists()
    )
    coord.close()
    return out


def main(argv=None) -> int:
    """Run each size, print the table and one JSON line."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--sizes", default="10,50,100,200", help="comma-separated node counts")
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after Directory+Start before measuring")
    ap.add_argument("--no-mesh", action="store_true", help="skip the Directory+Start step (no peer connections)")
    ap.add_argument("--keep-logs", action="store_true")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]

    log_root = Path(tempfile.mkdtemp(prefix="netmarl-scale-"))
    warm = Launcher(log_root / "warmup")  # sets the preload list of the (process-wide) fork server
    t = time.monotonic()
    proc = warm.mp.Process(target=time.sleep, args=(0,))  # served once the fork server has preloaded
    proc.start()
    proc.join()
    fs_start = time.monotonic() - t
    results = [run_size(n, log_root, args.settle, not args.no_mesh) for n in sizes]
    leftover = [
        p.pid
        for p in psutil.Process().children(recursive=True)
        if p.status() != psutil.STATUS_ZOMBIE
        and "forkserver" not in " ".join(p.cmdline())
        and "resource_tracker" not in " ".join(p.cmdline())
    ]

    print(f"\nfork server start (preloading agent_node.node, netsim.medium, scenarios.beacons.world): {fs_start:.2f} s")
    mem_key = "mem_registered" if args.no_mesh else "mem_running"
    print(
        f"{'N':>4} {'launch s':>8} {'all reg s':>9} {'PSS reg':>8} {'PSS run':>8} {'PSS total':>9} {'USS':>6} "
        f"{'fds':>5} {'thr':>4} {'coord RSS':>9} {'exit s':>6} {'killed':>6} {'orphans':>7} {'errors':>6}"
    )
    for r in results:
        reg, run = r["mem_registered"], r.get("mem_running", r["mem_registered"])
        print(
            f"{r['n']:>4} {r['launch_s']:>8.2f} {r['register_s']:>9.2f} {reg['pss_mean_mib']:>8.1f} "
            f"{run['pss_mean_mib']:>8.1f} {r[mem_key]['pss_total_mib']:>9.0f} {run['uss_mean_mib']:>6.1f} "
            f"{run['fds_mean']:>5.0f} {run['threads_mean']:>4.0f} {r['coordinator_rss_mib']:>9.1f} "
            f"{r['exit_s']:>6.2f} {r['needed_stop_all']:>6} {len(r['orphans']):>7} {r['log_errors']:>6}"
        )
    print(
        "(MiB per node unless total; 'reg' = registered and waiting, 'run' = after Directory+Start; "
        "fds/threads per node after it; killed = still alive 30 s after Shutdown)"
    )
    big = next((r for r in results if r["n"] == TARGET_N), None)
    ok = big is not None and big["register_s"] < TARGET_S
    verdict = "not run" if big is None else ("PASS" if ok else "MISS")
    shown = f"{big['register_s']:.2f} s" if big else "-"
    print(f"target {TARGET_N} nodes registered in < {TARGET_S:.0f} s: {shown}  {verdict}")
    if leftover:
        print(f"WARNING: child processes still alive: {leftover}")
    if args.keep_logs:
        print(f"logs kept in {log_root}")
    else:
        shutil.rmtree(log_root, ignore_errors=True)
    print(
        json.dumps(
            {
                "benchmark": "scale",
                "forkserver_start_s": fs_start,
                "sizes": results,
                "target": {"n": TARGET_N, "seconds": TARGET_S, "pass": ok if big else None},
                "leftover_children": leftover,
                "cpus": psutil.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
