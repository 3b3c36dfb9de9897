"""One run: launch world, medium and agents; register, start, watch health, sink metrics, shut down, write."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import zmq

from agent_node.checkpoints import save_json
from netsim.stats import COLUMNS, check_arrays, merge_rows, rows_from_arrays
from protocols.codec import Stamper
from protocols.endpoint import COORDINATOR_ID
from protocols.errors import ProtocolError
from protocols.messages import (
    BarrierArrive,
    BarrierRelease,
    Heartbeat,
    LinkReport,
    Metrics,
    Register,
    RegisterAck,
    Shutdown,
    Start,
)
from protocols.security import (
    COORDINATOR_ENDPOINT_FILE,
    COORDINATOR_KEY_FILE,
    JOIN_DIR,
    Gate,
    KeyPair,
    is_loopback,
    load_allow_dir,
    read_key_pair,
    write_public_key,
)
from protocols.sockets import Inbox, PeerBook, SecureInbox
from scenarios.config import ConfigError, ScenarioConfig
from scenarios.plan import plan_run, preload_modules

from . import report
from .barriers import Barriers
from .launcher import PRELOAD, Child, Launcher
from .live import LiveView
from .progress import progress_bar
from .registry import Registry
from .run_folder import MetricsSink, check_new_run_dir, is_number, strict_json, write_config

log = logging.getLogger("coordinator")

UNAUTHENTICATED = (
    'this run does not authenticate its processes (security.curve = "off", or [mqtt] on loopback): '
    "any process that reaches its sockets can join it or speak for its processes"
)
HEARTBEAT_S = 1.0
LAST_WORDS_S = 3.0  # after every process stopped, read what is still arriving for at most this long
HUNG_FACTOR = 5  # a local process silent this many heartbeat timeouts is killed as hung


def coordinator_pair(cfg: ScenarioConfig) -> KeyPair | None:
    """The coordinator's CURVE key pair (from security.keys_dir, else fresh), or None without CURVE."""
    sec = cfg.security
    if not sec.enabled(cfg.run.coordinator_bind, mqtt=cfg.mqtt is not None):
        return None
    if sec.keys_dir is None:
        return KeyPair.generate()
    try:
        return read_key_pair(Path(sec.keys_dir), COORDINATOR_ID)
    except ValueError as err:
        raise ConfigError(
            f"security.keys_dir: {err} (create the pair with: netmarl keys generate "
            f"{COORDINATOR_ID} --out {sec.keys_dir})"
        ) from None


def allowed_keys(cfg: ScenarioConfig) -> dict[str, str]:
    """Public key -> node id of the nodes security.allow_dir lets join by hand."""
    if cfg.security.allow_dir is None:
        return {}
    try:
        ids = load_allow_dir(cfg.security.allow_dir)
    except ValueError as err:
        raise ConfigError(f"security.allow_dir: {err}") from None
    return {key: node_id for key, node_id in ids.items() if node_id != COORDINATOR_ID}


class Supervisor:
    """Runs one scenario in a run folder and returns an exit code (0 ok, 1 failed, 130 interrupted)."""

    def __init__(self, cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None):
        self.cfg, self.run_dir, self.resume = cfg, Path(run_dir), resume
        self.pair = coordinator_pair(cfg)  # a bad key setting fails before the run folder exists
        allowed = allowed_keys(cfg) if self.pair else {}
        check_new_run_dir(self.run_dir)
        self.bind_inbox(cfg, allowed)  # before the run folder exists: a bad address leaves nothing behind
        self.launcher = self.make_launcher(cfg)  # so does a Ray cluster that cannot be joined
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        write_config(self.run_dir, cfg)
        if self.pair is not None:
            (self.run_dir / JOIN_DIR).mkdir(mode=0o700)  # `netmarl node --run RUN` leaves its public key here
            write_public_key(
                self.run_dir / COORDINATOR_KEY_FILE, self.pair.public
            )  # for `netmarl node --coordinator-key`
        (self.run_dir / COORDINATOR_ENDPOINT_FILE).write_text(self.inbox.endpoint + "\n")  # for `netmarl node`
        self.stamper = Stamper(COORDINATOR_ID)
        self.peers = PeerBook(self.ctx, COORDINATOR_ID, pair=self.pair)
        self.registry = Registry()
        self.barriers = Barriers()
        self.log_handler = logging.FileHandler(self.run_dir / "logs" / "coordinator.log")
        self.log_handler.setFormatter(logging.Formatter("%(asctime)s coordinator %(levelname)s %(name)s: %(message)s"))
        log.addHandler(self.log_handler)
        logging.getLogger("protocols").addHandler(self.log_handler)  # the inbox's warnings (refused messages)
        log.setLevel(logging.INFO)
        self.sink = MetricsSink(
            self.run_dir / "metrics.jsonl", self.run_dir / "tensorboard" if cfg.run.tensorboard else None
        )
        self.live = LiveView(self.run_dir) if cfg.run.live else None  # live.jsonl, for `netmarl dashboard`
        self.link_report: tuple[list[str], dict] | None = None  # the live medium's latest counters (names, arrays)
        self._totals: tuple = (None, {})  # (the report, its per-type totals)
        self.link_rows: list[list] | None = None  # in links.csv's form, at the end
        self.link_rows_before: list[list[list]] = []  # the last counts of media that were replaced
        self.links_final = False
        self.expected: set[str] = set()
        self.started = False
        self.done = False
        self.interrupted = False
        self.bad_messages = 0
        self._next_heartbeat = 0.0
        self.status = "ok"
        self.world_step = 0
        self._silent_warned: set[str] = set()
        self._unsendable: set[str] = set()  # nodes a send to has failed (logged once)
        self.sends_dropped = 0
        self.refused = False  # the run was refused before any process started (exit code 2)
        self.placement: dict[str, dict] = {}  # where each launched process runs (placement.json)
        self.plan = None

    def bind_inbox(self, cfg: ScenarioConfig, allowed: dict[str, str]) -> None:
        """The coordinator's inbox on run.coordinator_bind: plain, or CURVE with a gate that admits the
        allow-list, the processes launched here and the keys nodes leave in RUN/allow/. ConfigError (exit 2)
        if the address cannot be bound."""
        self.ctx = zmq.Context()
        self.gate: Gate | None = None
        try:
            if self.pair is None:
                self.inbox = Inbox(self.ctx, cfg.run.coordinator_bind)
                return
            self.gate = Gate(self.ctx, allowed, logger=log)
            self.gate.watch(
                [self.run_dir / JOIN_DIR, *([cfg.security.allow_dir] if cfg.security.allow_dir else [])],
                reserved=self.reserved_id,
            )
            self.gate.start()
            self.inbox = SecureInbox(self.ctx, cfg.run.coordinator_bind, pair=self.pair, gate=self.gate)
        except zmq.ZMQError as err:
            if self.gate is not None:
                self.gate.stop()
            self.ctx.destroy(linger=0)
            raise ConfigError(
                f"run.coordinator_bind = {cfg.run.coordinator_bind!r}: cannot bind it ({err}); give a "
                "local address and a free port, e.g. tcp://127.0.0.1:* or tcp://0.0.0.0:5555"
            ) from None

    def make_launcher(self, cfg: ScenarioConfig):
        """This machine's fork server, or Ray's scheduler (run.launcher = "ray")."""
        logs = self.run_dir / "logs"
        if cfg.run.launcher == "local":
            return Launcher(logs, [*PRELOAD, *preload_modules(cfg)])
        from .ray_launcher import RayLauncher

        try:
            return RayLauncher(
                logs, cfg.run.ray_address, cfg.run.ray_cpus, cfg.run.ray_placement, cfg.run.ray_world_resource
            )
        except ConfigError:
            self.inbox.close()
            if self.gate is not None:
                self.gate.stop()
            self.ctx.destroy(linger=0)
            raise

    def reserved_id(self, node_id: str) -> bool:
        """An id no hand-joining node may take a key for: the coordinator's and those of processes launched here."""
        launcher = getattr(self, "launcher", None)
        return node_id == COORDINATOR_ID or (launcher is not None and node_id in launcher.children)

    # ------------------------------------------------------------ launching
    def launch_all(self) -> None:
        """Build the world's files, then start medium, world and one process per agent."""
        cfg, coord = self.cfg, self.launcher.reachable(self.inbox.endpoint)
        self.plan = plan = plan_run(cfg, self.run_dir, self.resume)
        if plan.notes.get("steps") and getattr(self, "bar", None) is not None:
            self.bar.total = plan.notes["steps"]
            self.bar.refresh()
        self.agent_ids = list(plan.agents)
        local_agents = [n for n in plan.agents if n not in plan.external]
        self.launcher.check_capacity(1 + (cfg.netsim.mode == "emulated") + (cfg.mqtt is not None) + len(local_agents))
        if cfg.netsim.mode == "emulated":
            self.launcher.start(
                "medium",
                "netsim.medium:run_medium",
                node_id="medium",
                coordinator=coord,
                seed=cfg.run.seed,
                netsim=cfg.netsim.model_dump(mode="json"),
                live=cfg.run.live,
                **self.child_curve("medium"),
            )
        self.launcher.start(
            "world",
            plan.world_target,
            node_id="world",
            coordinator=coord,
            **plan.world_kwargs,
            **self.child_curve("world"),
        )
        self.expected = {*self.launcher.children, *plan.agents}
        if cfg.mqtt is not None:  # not a node: it does not register, so it is not expected
            self.launcher.start(
                "mqtt_bridge",
                "coordinator.mqtt_bridge:run_bridge",
                coordinator=coord,
                mqtt=cfg.mqtt.model_dump(exclude={"bind_host"}),
                bind_host=cfg.mqtt.bind_host,
            )
        heartbeat_s = cfg.run.heartbeat_timeout_s / 4  # a longer timeout: fewer wake-ups of many nodes
        agents, batch = list(plan.agents.items()), cfg.run.launch_batch
        deadline = time.monotonic() + cfg.run.register_timeout_s
        for first in range(0, len(agents), batch):  # in batches, registering each before the next starts
            if self.interrupted or self.done or time.monotonic() > deadline:
                break  # Ctrl-C, a failure that stops the run, or registration overdue: the main loop reports
            names = []
            for node_id, role in agents[first : first + batch]:
                if node_id in plan.external:  # joins by hand (`netmarl node`), from a device
                    continue
                self.launcher.start(
                    node_id,
                    "agent_node.node:run_node_kwargs",
                    node_id=node_id,
                    coordinator=coord,
                    role=role,
                    heartbeat_s=heartbeat_s,
                    **self.child_curve(node_id),
                )
                names.append(node_id)
                if len(names) % 16 == 0:
                    self.loop_once(0)  # heartbeats and registrations keep flowing while launching
            while (
                not self.interrupted
                and not self.done
                and time.monotonic() < deadline
                and any(n not in self.registry.nodes and self.launcher.children[n].process.is_alive() for n in names)
            ):
                self.loop_once(20)

    def child_curve(self, name: str) -> dict:
        """Launch arguments giving a local child CURVE: a fresh key pair, admitted as name (a restart reuses it)."""
        if self.pair is None:
            return {}
        pair = KeyPair.generate()
        self.gate.admit(pair.public, name)
        return {"curve_secret": pair.secret, "coordinator_key": self.pair.public}

    # ------------------------------------------------------------ messaging
    def send(self, node_id: str, body) -> None:
        """Never waits on a peer: a message that cannot be queued at once (a full queue, or no connection, as
        when the peer's inbox refused our CURVE handshake) is dropped and counted, the first one logged."""
        if not self.peers.send(node_id, self.stamper.encode(body, node_id), zmq.NOBLOCK):
            self.sends_dropped += 1
            if node_id not in self._unsendable:
                self._unsendable.add(node_id)
                log.warning("could not send to %s (no connection or a full queue); not waiting for it", node_id)

    def broadcast_directory(self) -> None:
        directory = self.registry.directory()
        if self.gate is not None:  # each node's key as it was authenticated: the keys its peers admit
            directory.keys = self.gate.keys_of(directory.endpoints)
        self.peers.update(directory)
        for node_id, rec in self.registry.nodes.items():
            if not rec.down:
                self.send(node_id, directory)

    def event(self, **values) -> None:
        """Record a run event (failures, restarts) in metrics.jsonl."""
        self.sink.write(COORDINATOR_ID, "event", values)

    def on_message(self, msg) -> None:
        src, body = msg.env.src, msg.body
        self.registry.seen(src)
        rec = self.registry.nodes.get(src)
        if isinstance(body, Heartbeat) and rec is not None and rec.down and src not in self.launcher.children:
            self.readmit(src)
        if isinstance(body, Register):
            self.on_register(body, src)
        elif isinstance(body, Metrics):  # checked before it is written: run_folder.check_record
            sender = self.registry.nodes.get(src)
            if (
                self.sink.accept(src, sender and sender.kind, body.kind, body.values, body.final)
                and body.kind == "world"
            ):  # only the world may send those
                self.on_world_progress(body)
        elif isinstance(body, LinkReport):
            rec = self.registry.nodes.get(src)
            if rec is None or rec.kind != "medium" or rec.down:
                raise ValueError(f"link report from {src!r}, which is not the live medium")
            xy = msg.arrays.get("xy")
            if self.live is not None and xy is not None and xy.ndim == 2 and xy.shape == (len(body.ids), 2):
                self.live.on_positions(body.ids, xy, body.step, body.t_sim)
            if body.positions_only:
                return
            check_arrays(body.names, msg.arrays)  # a bad one is refused (accept counts it), never half used
            self.link_report, self.links_final = (body.names, msg.arrays), body.final  # rows only when needed
            if self.live is not None:
                self.live.on_link_report(body.names, msg.arrays)
            if self.sink.tensorboard is not None:  # each type's delivery ratio so far, at the world's step
                self.sink.tensorboard.links(self.link_totals(), self.world_step)
        elif isinstance(body, BarrierArrive):
            members = self.barriers.arrive(body.name, body.round, src, self.live_agents(), body.group)
            if members is not None:
                self.release_barrier(body.name, body.round, members)
        elif not isinstance(body, Heartbeat):
            log.debug("ignoring %s from %s", msg.env.type, src)

    def on_register(self, reg: Register, src: str) -> None:
        """Admit a node: its id must be its connection's, and a launched id only from the process launched."""
        if reg.node_id != src:
            raise ValueError(f"{src!r} tried to register as {reg.node_id!r}")
        child = self.launcher.children.get(reg.node_id)
        old = self.registry.nodes.get(reg.node_id)
        again = (
            old is not None and not old.down and (old.pid, old.endpoint, old.host) == (reg.pid, reg.endpoint, reg.host)
        )
        if (child is not None and reg.pid != child.pid) or (
            child is None and (reg.kind != "agent" or (old and not old.down and not again))
        ):
            raise ValueError(
                f"registration of {reg.node_id!r} ({reg.kind}, pid {reg.pid}) refused: "
                "the id is taken or the kind is reserved for launched processes"
            )
        if reg.kind == "medium" and self.link_report is not None:  # a medium came back: keep what the old one counted
            self.link_rows_before.append(rows_from_arrays(*self.link_report))
            self.link_report = None
        rec = self.registry.register(reg)
        if self.gate is not None:
            self.peers.keys[reg.node_id] = self.gate.key_of(reg.node_id)
        self.peers.connect(reg.node_id, reg.endpoint)
        role = self.plan.role_settings.get(reg.role, self.cfg.role) if self.plan else self.cfg.role
        if self.plan and self.plan.agent_settings and reg.node_id in self.plan.agents:
            role = {**role, **self.plan.agent_settings(reg.node_id)}
        settings = {"role": role, "radio_mode": self.cfg.netsim.mode, "run_dir": str(self.run_dir)}
        self.send(reg.node_id, RegisterAck(run_id=self.run_dir.name, seed=self.cfg.run.seed, settings=settings))
        log.info("registered %s (%s, pid %s) at %s", rec.node_id, rec.kind, rec.pid, rec.endpoint)
        if self.started:
            self.broadcast_directory()
            self.send(reg.node_id, Start())
        elif self.expected <= self.registry.nodes.keys():
            self.broadcast_directory()
            for node_id in self.registry.nodes:
                self.send(node_id, Start())
            self.started = True
            self.event(event="started", nodes=len(self.registry.nodes))
            log.info("all %d processes registered; run started", len(self.registry.nodes))
            self.write_placement()

    def write_placement(self) -> None:
        """placement.json: where each launched process runs (its host, and on Ray its node and address)."""
        self.placement = self.launcher.placement()
        save_json(self.placement, self.run_dir / "placement.json", indent=1, sort_keys=True)

    def readmit(self, node_id: str) -> None:
        """A hand-started node marked down after a heartbeat timeout heartbeats again (its connection is
        back; a new process would register): it is up again. (A launched child is restarted instead.)"""
        rec = self.registry.nodes[node_id]
        down_s = time.monotonic() - rec.down_at
        rec.down = False
        log.warning("node %s is back after %.1f s marked down", node_id, down_s)
        self.event(event="node_back", node=node_id, down_s=round(down_s, 2))
        self.broadcast_directory()

    def on_world_progress(self, body: Metrics) -> None:
        step = body.values.get("step", 0)
        if not isinstance(step, int):
            raise ValueError(f"world progress step {step!r} is not an integer")
        if self.bar is not None:
            self.bar.update(step - self.world_step)
            ratio = self.delivery_ratio()
            self.bar.set_postfix(
                steps_s=f"{body.values.get('steps_per_s', 0):.0f}",
                delivery="-" if ratio is None else f"{ratio:.2f}",
                refresh=False,  # shown with the next redraw (a file or pipe gets a line per LOG_EVERY_S)
            )
        self.world_step = step
        if self.live is not None:
            self.live.pace = {
                k: body.values[k] for k in ("steps_per_s", "t", "episode") if is_number(body.values.get(k))
            }
        if body.final:
            self.done = True

    def link_totals(self) -> dict[str, dict[str, float]]:
        """Per message type, the live medium's counts so far (sent, attempts, delivered, delivery ratio, latency)."""
        if self.link_report is None:
            return {}
        if self._totals[0] is not self.link_report:  # once per report, not per world record (the progress bar asks)
            names, arrays = self.link_report
            self._totals = (self.link_report, report.totals_of(names, arrays["keys"][:, 2], arrays["counts"]))
        return self._totals[1]

    def delivery_ratio(self) -> float | None:
        if self.link_report is None:
            return None
        tot = self.link_totals()
        sent = sum(t["attempts"] for t in tot.values())
        return sum(t["delivered"] for t in tot.values()) / sent if sent else None

    def live_agents(self) -> set[str]:
        return {n for n, r in self.registry.nodes.items() if r.kind == "agent" and not r.down}

    def release_barrier(self, name: str, round_: int, members: list[str]) -> None:
        for node_id in members:
            self.send(node_id, BarrierRelease(name=name, round=round_, members=members))

    # ------------------------------------------------------------ health
    def on_exit(self, child: Child) -> None:
        """A child process ended: report it, then restart, carry on without it, or stop."""
        code = child.process.exitcode
        if self.done or self.interrupted:  # stopping anyway: an exit now is no failure to act on
            if code != 0:
                log.warning("process %s (pid %s) exited with code %s during shutdown", child.name, child.pid, code)
            return
        if child.name == "world" and code == 0:  # finished; its last metrics may still be in flight
            self.done = True
            return
        policy = self.cfg.run.on_node_failure
        log.error(
            "process %s (pid %s) exited with code %s; last log lines:\n%s",
            child.name,
            child.pid,
            code,
            child.log_tail(),
        )
        self.event(event="node_failed", node=child.name, exitcode=code, log_tail=child.log_tail(5))
        self.registry.mark_down(child.name)
        if child.name == "world" or policy == "stop":
            self.status = f"failed: {child.name} exited with code {code}"
            self.done = True
            return
        if self.started:
            self.broadcast_directory()
            for key, members in self.barriers.recheck(self.live_agents()):
                self.release_barrier(*key, members)
        if policy != "restart" or child.restarts >= self.cfg.run.max_restarts:  # the run goes on without it
            if self.status == "ok":
                self.status = f"degraded: {child.name} exited with code {code} and was not restarted"
            else:
                self.status += f"; {child.name} exited with code {code}"
            self.status = self.status[:500]
        elif policy == "restart":
            child.restarts += 1
            self.launcher.start(child.name, child.target, **child.kwargs)
            self.event(event="node_restarted", node=child.name, restarts=child.restarts)
            log.warning("restarted %s (restart %d of %d)", child.name, child.restarts, self.cfg.run.max_restarts)

    def check_silence(self) -> None:
        """Nodes that stopped heartbeating: local ones are warned about, remote ones marked down."""
        silent = self.registry.silent(self.cfg.run.heartbeat_timeout_s)  # runs every turn: ask only of these
        processes = {r.node_id: getattr(self.launcher.children.get(r.node_id), "process", None) for r in silent}
        local = {n for n, process in processes.items() if process is not None and process.is_alive()}
        for rec in silent:
            if (
                rec.node_id in local
                and time.monotonic() - rec.last_seen < HUNG_FACTOR * self.cfg.run.heartbeat_timeout_s
            ):
                continue  # a busy local process gets longer than a remote one before it counts as hung
            if rec.node_id in local:
                if rec.node_id not in self._silent_warned:
                    log.error(
                        "%s silent for over %.1f s while running: terminating it (hung)",
                        rec.node_id,
                        HUNG_FACTOR * self.cfg.run.heartbeat_timeout_s,
                    )
                    self._silent_warned.add(rec.node_id)
                    self.launcher.children[rec.node_id].process.kill()  # its exit goes through on_exit
            elif rec.node_id not in self.launcher.children:
                log.error(
                    "remote node %s silent for over %.1f s; marked down", rec.node_id, self.cfg.run.heartbeat_timeout_s
                )
                self.event(event="node_failed", node=rec.node_id, exitcode=None, log_tail="heartbeat timeout")
                self.registry.mark_down(rec.node_id)
                self.broadcast_directory()

    # ------------------------------------------------------------ main loop
    def loop_once(self, timeout_ms: int = 50) -> int:
        """Handle what arrives within timeout_ms and any child exits; returns the messages handled."""
        handled = 0
        if self.inbox.wait(timeout_ms):
            for _ in range(10_000):
                ident, msg = self.inbox.recv(zmq.NOBLOCK)
                if msg is not None:
                    self.accept(ident, msg)
                handled += 1
                if not self.inbox.has_more():
                    break
        for child in self.launcher.reap():
            self.on_exit(child)
        if self.live is not None and self.started:
            self.live.maybe_write(self.registry, self.launcher.children, self.status, self.world_step)
        now = time.monotonic()
        if now >= self._next_heartbeat:  # nodes stop themselves if the coordinator goes silent
            self._next_heartbeat = now + HEARTBEAT_S
            for node_id, rec in self.registry.nodes.items():
                if not rec.down:
                    self.send(node_id, Heartbeat())
        return handled

    def accept(self, ident: bytes, msg) -> None:
        """Check that a message comes from whom it claims, then handle it; a failure is logged, never fatal."""
        if ident != msg.env.src.encode():
            self.inbox.reject(ident, ProtocolError(f"source {msg.env.src!r} does not match the connection {ident!r}"))
            return
        try:
            self.on_message(msg)
        except Exception as err:  # one bad message must not end the run
            self.bad_messages += 1
            if self.bad_messages <= 10:
                log.warning("could not handle %s from %s: %r", msg.env.type, msg.env.src, err)

    def _on_signal(self, signum, _frame) -> None:
        """Ctrl-C or SIGTERM: end the run cleanly (the loop notices on its next turn)."""
        self.interrupted = True

    def execute(self) -> int:
        """Run to the end; everything received is saved whatever happens."""
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
        self.bar = progress_bar(self.cfg.run.steps, self.cfg.run.name, self.cfg.run.progress)
        t0 = time.monotonic()
        join = (
            f"--run {self.run_dir}"
            if is_loopback(self.inbox.endpoint)
            else (
                f"--coordinator {self.inbox.endpoint} --key ID.key_secret "
                f"--coordinator-key {self.run_dir / COORDINATOR_KEY_FILE}"
            )
        )
        print(
            f"coordinator inbox {self.inbox.endpoint} (join by hand: netmarl node --id ID {join}); "
            f"run folder {self.run_dir}",
            file=sys.stderr,
        )
        if self.pair is None:
            log.warning(UNAUTHENTICATED)
            print(f"netmarl: warning: {UNAUTHENTICATED}", file=sys.stderr)
        try:
            self.launch_all()
            deadline = time.monotonic() + self.cfg.run.register_timeout_s
            while not self.done and not self.interrupted:
                self.loop_once()
                if not self.started and time.monotonic() > deadline:
                    missing = sorted(self.expected - self.registry.nodes.keys())
                    self.status = f"failed: not registered within {self.cfg.run.register_timeout_s} s: {missing[:10]}"
                    break
                if self.started:
                    self.check_silence()
            if self.interrupted:
                self.status = "interrupted" if self.status == "ok" else f"interrupted ({self.status})"
        except ConfigError as err:  # refused before any process started (a Ray cluster too small for the run)
            self.status = f"failed: {err}"
            self.refused = True
            print(f"netmarl: {err}", file=sys.stderr)
        except Exception as err:  # reported, and what was received is still written below
            self.status = f"failed: {type(err).__name__}: {err}"
            log.exception("run failed")
            print(f"netmarl: {self.status}", file=sys.stderr)
        finally:
            try:
                self.shutdown()
            finally:
                self.bar.close()
                for s, h in old.items():
                    signal.signal(s, h)
                self.write_outputs(time.monotonic() - t0)
        if self.status == "ok":
            return 0
        if self.refused:
            return 2
        return 130 if self.status.startswith("interrupted") else 3 if self.status.startswith("degraded") else 1

    def shutdown(self, grace_s: float = 5.0) -> None:
        """Stop the world first (agents then send nothing more on the radio), then the medium (its
        final counts hold every radio message), then the agents (they have received every delivery),
        sinking everyone's last words; then make sure no process is left."""
        self.done = True
        for kind in ("world", "medium", "agent"):
            group = [n for n, r in self.registry.nodes.items() if r.kind == kind and not r.down]
            for node_id in group:
                self.send(node_id, Shutdown(reason=self.status))
            local = [self.launcher.children[n] for n in group if n in self.launcher.children]
            deadline = time.monotonic() + grace_s
            while any(c.process.is_alive() for c in local) and time.monotonic() < deadline:
                self.loop_once(20)
        self.launcher.stop_all(grace_s=2.0)
        deadline = time.monotonic() + LAST_WORDS_S  # however much anyone keeps sending, shutdown ends
        while self.loop_once(200) and time.monotonic() < deadline:  # last words trail the exits: 200 ms of quiet
            pass
        if self.live is not None and self.started:  # the medium's final report is in
            self.live.last_frame(self.registry, self.launcher.children, self.status, self.world_step)
        if self.gate is not None and (self.gate.refused or self.inbox.refused):
            log.warning(
                "CURVE refused %d connections (unknown keys) and %d messages (a sender claiming another id)",
                self.gate.refused,
                self.inbox.refused,
            )
            self.event(event="curve_refused", connections=self.gate.refused, messages=self.inbox.refused)
        if self.sends_dropped:
            self.event(event="sends_dropped", messages=self.sends_dropped, nodes=sorted(self._unsendable)[:20])
        # every node one of ours, which stop_all has ended: nobody is left to take what is still queued (heartbeats,
        # a Shutdown to a process that ended first), so it is dropped now instead of lingering 0.5 s per link
        everyone_ours = all(n in self.launcher.children for n in self.registry.nodes)
        self.peers.close(0 if everyone_ours else None)
        self.inbox.close()
        self.ctx.term()
        log.removeHandler(self.log_handler)
        logging.getLogger("protocols").removeHandler(self.log_handler)
        self.log_handler.close()

    def write_outputs(self, wall_s: float) -> None:
        """links.csv, plots, summary.json; printed summary."""
        self.sink.close()
        if self.link_report is not None:
            self.link_rows = rows_from_arrays(*self.link_report)
        if self.cfg.netsim.mode == "direct":
            self.link_rows = report.direct_link_rows(report.load_run(self.run_dir)[2])
            self.links_final = True
        if self.link_rows_before:
            self.link_rows = merge_rows([*self.link_rows_before, self.link_rows or []])
        if self.link_rows is not None:
            report.write_links_csv(self.run_dir / "links.csv", COLUMNS, self.link_rows)
            if not self.links_final:
                log.warning("links.csv holds the medium's last periodic report (its final one never came)")
        try:
            report.make_plots(self.run_dir)
            if self.plan and self.plan.plot:
                self.plan.plot(self.run_dir, report.load_run(self.run_dir)[2])
        except Exception:  # a plot must not cost the run its summary
            log.exception("plotting failed")
        summary = dict(
            report.summarize(self.run_dir), status=self.status, wall_s=round(wall_s, 2), links_final=self.links_final
        )
        if self.placement:  # how many processes ran on each host (and Ray node)
            summary["placement"] = {
                key: dict(Counter(where.get(key) for where in self.placement.values()))
                for key in ("hostname", "ray_node")
                if any(key in where for where in self.placement.values())
            }
        if self.plan and self.plan.notes:  # what the plan says about the run (a world's agents, its map)
            summary["notes"] = self.plan.notes
        if self.plan and self.plan.summarize:
            try:
                summary["results"] = self.plan.summarize(self.run_dir, report.load_run(self.run_dir)[2])
            except Exception:
                log.exception("summarizing the results failed")
        save_json(strict_json(summary), self.run_dir / "summary.json", indent=1)
        if self.live is not None:
            self.live.close(self.status)
        print(report.format_summary(summary))
        print(f"status: {self.status}; run folder: {self.run_dir}")
