"""The agent process: registers, runs its role on observations and radio messages, reports, exits cleanly."""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocols.endpoint import COORDINATOR_ID, Endpoint
from protocols.lockstep import AgentLedger
from protocols.messages import Observation
from protocols.mqtt import MqttSettings, NodeTransport
from protocols.security import Curve

from .radio import Radio
from .roles import ROLES, is_role_path, load_role
from .roles.base import NodeContext

log = logging.getLogger("agent_node")


class NodeConfig(BaseModel):
    """How to start one agent process (also the TOML file accepted by `netmarl node --config`)."""

    model_config = ConfigDict(extra="forbid")
    node_id: str = Field(min_length=1, max_length=128)
    coordinator: str = Field(description="coordinator inbox, e.g. tcp://127.0.0.1:5555")
    role: str = "beacon"
    bind: str | None = None  # where the inbox listens (None: $NETMARL_BIND, else tcp://127.0.0.1:*)
    advertise: str | None = None  # the endpoint peers reach the inbox at, if not the bound one (NAT, relay)

    @field_validator("role")
    @classmethod
    def _known_role(cls, name: str) -> str:
        if name not in ROLES and not is_role_path(name):
            raise ValueError(f"unknown role {name!r}; known roles: {', '.join(sorted(ROLES))}, or module:Class")
        return name

    heartbeat_s: float = Field(0.5, gt=0)
    coordinator_timeout_s: float = Field(10.0, gt=0)  # stop when the coordinator stays silent this long
    status_interval_s: float = Field(0.0, ge=0)  # a node_status metrics record this often; 0: none
    policy: str | None = None  # a portable policy file on this device (the policy role), instead of the coordinator's
    register_timeout_s: float = Field(60.0, gt=0)
    radio_wait_s: float = Field(1.0, gt=0)  # how long to wait for deliveries the medium says were sent
    # through an MQTT broker instead of direct TCP (protocols/mqtt.py); the bridge reaches the coordinator
    mqtt: MqttSettings | None = None
    mqtt_drain_s: float = Field(30.0, ge=0)  # at exit, how long queued messages wait for the broker
    # CURVE (protocols/security.py): the own secret key file (or a folder with NODE_ID.key_secret) and the
    # coordinator's public key (file or Z85); curve_secret is the Z85 secret the coordinator gives launched nodes
    key: str | None = None
    coordinator_key: str | None = None
    curve_secret: str | None = Field(None, repr=False)

    @model_validator(mode="after")
    def _curve_settings(self) -> "NodeConfig":
        self.curve()  # a missing or unreadable key fails here, naming the file
        return self

    def curve(self) -> Curve | None:
        """The node's CURVE settings, or None without them."""
        return Curve.from_settings(self.curve_secret, self.key, self.coordinator_key, self.node_id)


def agent_rng(seed: int, node_id: str) -> np.random.Generator:
    """The agent's own random stream, derived from the run seed and its id."""
    digest = hashlib.blake2b(f"{seed}:{node_id}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


class AgentNode:
    """One agent: its endpoint, its radio and its role."""

    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg
        self.mqtt = NodeTransport(cfg.mqtt, cfg.node_id) if cfg.mqtt else None
        self.ep = Endpoint(
            cfg.node_id,
            "agent",
            cfg.coordinator,
            role=cfg.role,
            bind=cfg.bind,
            heartbeat_s=cfg.heartbeat_s,
            link_factory=self.mqtt and self.mqtt.link_factory,
            curve=cfg.curve(),
            coordinator_timeout_s=cfg.coordinator_timeout_s,
            advertise=cfg.advertise,
        )
        if self.mqtt:
            self.mqtt.start(self.ep.inbox.endpoint)
        self.role = None
        self.steps = 0
        self.ledger = AgentLedger()  # this agent's part of the lock-step (protocols/lockstep.py)
        self.role_errors = 0
        self.direct_rx: dict[str, int] = {}  # direct mode: "src|type" -> messages received
        self.deferred: list = []  # observations that arrived while a role was waiting for radio
        self.t0 = self.next_status = time.monotonic()
        self.status_n = 0

    def _build_role(self, settings: dict[str, Any], seed: int, radio_mode: str) -> None:
        radio = Radio(self.ep.peers, self.ep.stamper, radio_mode, self.ledger)
        ctx = NodeContext(
            self.cfg.node_id,
            agent_rng(seed, self.cfg.node_id),
            radio,
            self.ep.metrics,
            settings,
            seed=seed,
            wait=self.wait_radio,
        )
        role_settings = dict(settings.get("role", {}))
        if self.cfg.policy:
            role_settings["policy_file"] = self.cfg.policy
        self.role = load_role(self.cfg.role)(ctx, role_settings)

    def handle(self, ident: bytes, msg) -> None:
        """Dispatch one message to the role; what the role cannot digest is logged and counted."""
        sender = ident.decode(errors="replace")
        if sender == COORDINATOR_ID:  # e.g. a barrier release nobody waits for any more
            return
        kind = self.ep.peers.kinds.get(sender)
        try:
            if isinstance(msg.body, Observation):
                if kind != "world" or sender != msg.env.src:
                    raise ValueError(f"observation from {sender!r}, which is not the world")
                self.await_radio(msg.body.radio_expected)
                self.ep.t_sim = msg.env.t_sim
                self.role.ctx.t_sim = msg.env.t_sim
                action, arrays = self.role.on_observation(msg)
                action.radio_sent = self.ledger.handed
                self.ep.peers.send(sender, self.ep.stamper.encode(action, sender, arrays))
                self.steps += 1
                self.role.after_action()
                return
            if kind == "medium":  # what the medium delivered is what the lock-step counts
                self.ledger.take_in(self.ep.peers.endpoints.get(sender))
            elif self.ep.peers.kinds.get(msg.env.src) != "agent" or sender != msg.env.src:
                raise ValueError(f"{msg.env.type!r} from {sender!r}, neither the medium nor a peer agent")
            else:  # direct mode: count per link, as the medium would
                key = f"{sender}|{msg.env.type}"
                self.direct_rx[key] = self.direct_rx.get(key, 0) + 1
            self.role.on_radio(msg)
        except Exception as err:  # bad input from one peer must not take the agent down
            self.role_errors += 1
            if self.role_errors <= 10:
                log.warning("%s: could not handle %s from %r: %r", self.cfg.node_id, msg.env.type, sender, err)

    def handle_batch(self, batch: list) -> None:
        """Radio messages of a batch first: an observation must see every delivery that preceded it."""
        for ident, msg in sorted(batch, key=lambda item: isinstance(item[1].body, Observation)):
            self.handle(ident, msg)

    def await_radio(self, expected: int | None) -> None:
        """Before acting on a step, take in every radio message the medium delivered up to that step."""
        if not self.ledger.owes(expected):
            return
        # no Observation can come before this step's action; one that does anyway waits for the main loop
        arrived = self.ep.wait_for(
            lambda: not self.ledger.owes(expected),
            self.cfg.radio_wait_s,
            on_message=self._take_radio,
            keep=self.deferred,
            poll_ms=10,
        )
        if not arrived:
            log.warning(
                "%s: %d of %d delivered radio messages arrived within %.2f s",
                self.cfg.node_id,
                self.ledger.taken_in,
                expected,
                self.cfg.radio_wait_s,
            )

    def wait_radio(self, done, seconds: float) -> bool:
        """A role's wait (NodeContext.wait): handle radio messages until done() or `seconds` pass, even while
        stopping (the role is in the middle of a step); an observation arriving meanwhile waits for the main loop."""
        return self.ep.wait_for(done, seconds, on_message=self._take_radio, keep=self.deferred, while_stopping=True)

    def _take_radio(self, ident: bytes, msg) -> bool:
        """Handle anything but an observation (that one is left for the main loop)."""
        if isinstance(msg.body, Observation):
            return False
        self.handle(ident, msg)
        return True

    def run(self) -> int:
        """Main loop; returns the process exit code."""
        ep = self.ep
        try:
            if self.mqtt:
                self.mqtt.wait_bridge(self.cfg.register_timeout_s, lambda: ep.stopping)
            ack = ep.register(self.cfg.register_timeout_s)
            if ep.stopping:
                return 0
            self._build_role(ack.settings, ack.seed, ack.settings.get("radio_mode", "emulated"))
            log.info(
                "%s registered (inbox %s), role %s%s",
                self.cfg.node_id,
                ep.inbox.endpoint,
                self.cfg.role,
                f", advertised as {ep.advertise}" if ep.advertise else "",
            )
            pending = ep.wait_start()
            self.role.on_start()
            self.handle_batch(pending)
            while not ep.stopping:
                ep.maybe_heartbeat()
                self._report_status()
                if self.mqtt:
                    self._report_link()
                batch, self.deferred = (
                    self.deferred + ep.poll(0 if self.deferred else int(self.cfg.heartbeat_s * 1000)),
                    [],
                )
                self.handle_batch(batch)
            return 0
        finally:
            self._flush()
            if self.mqtt:
                self.mqtt.close(self.cfg.mqtt_drain_s)
            ep.close()

    def _report_status(self) -> None:
        """Every status_interval_s a node_status record; those of an outage wait in the queue and arrive
        after it (n counts them, so a gap would show)."""
        now = time.monotonic()
        if not self.cfg.status_interval_s or now < self.next_status:
            return
        self.next_status = now + self.cfg.status_interval_s
        self.status_n += 1
        ep = self.ep
        ep.metrics(
            "node_status",
            {
                "n": self.status_n,
                "uptime_s": round(now - self.t0, 2),
                "steps": self.steps,
                "coordinator_silent_s": round(now - ep.coordinator_seen, 2),
                "coordinator_outages": ep.outages,
                "send_failures": ep.coordinator.failed + sum(link.failed for link in ep.peers.links.values()),
            },
        )

    def _report_link(self) -> None:
        """MQTT link events become metrics records; those of an outage wait in the queue and arrive after it."""
        events = self.mqtt.link.events
        while events:
            event, _, detail = events.popleft()
            values = dict(self.mqtt.link.stats(), event=event)
            if event == "connected":
                values["outage_s"] = float(detail)
            log.info("%s: MQTT link %s %s", self.cfg.node_id, event, values)
            self.ep.metrics("mqtt_link", values)

    def _flush(self) -> None:
        """Send the last metrics before the sockets close."""
        if self.role is not None:
            try:
                self.role.on_stop()
            except Exception as err:  # the node's own last metrics still go out
                log.warning("%s: on_stop failed: %r", self.cfg.node_id, err)
            values = dict(
                self.role.metrics(),
                steps=self.steps,
                rejected=self.ep.inbox.rejected,
                role_errors=self.role_errors,
                direct_rx=self.direct_rx,
                direct_tx=self.role.ctx.radio.direct_tx,
                radio_sent_by_type=dict(self.role.ctx.radio.sent_by_type),  # failed sends too (not the lock-step count)
            )
            if self.mqtt:
                values["mqtt"] = self.mqtt.link.stats()
            self.ep.metrics(f"{self.role.name}_node", values, final=True)


def run_node(cfg: NodeConfig) -> int:
    """Entry point of an agent process (launcher target, `netmarl node`, `python -m agent_node`)."""
    node = AgentNode(cfg)
    node.ep.stop_on_signals()
    return node.run()


def run_node_kwargs(**kwargs) -> int:
    """Launcher target: build the NodeConfig from keyword arguments and run."""
    return run_node(NodeConfig(**kwargs))
