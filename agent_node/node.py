"""The agent process: registers, runs its role on observations and radio messages, reports, exits cleanly."""
from __future__ import annotations

import hashlib
import logging
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from protocols.endpoint import Endpoint
from protocols.messages import Observation

from .radio import Radio
from .roles import load_role
from .roles.base import NodeContext

log = logging.getLogger("agent_node")

class NodeConfig(BaseModel):
    """How to start one agent process (also the TOML file accepted by `netmarl node --config`)."""

    model_config = ConfigDict(extra="forbid")
    node_id: str = Field(min_length=1, max_length=128)
    coordinator: str = Field(description="coordinator inbox, e.g. tcp://127.0.0.1:5555")
    role: str = "beacon"
    bind: str = "tcp://127.0.0.1:*"
    heartbeat_s: float = Field(0.5, gt=0)
    register_timeout_s: float = Field(60.0, gt=0)


def agent_rng(seed: int, node_id: str) -> np.random.Generator:
    """The agent's own random stream, derived from the run seed and its id."""
    digest = hashlib.blake2b(f"{seed}:{node_id}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


class AgentNode:
    """One agent: its endpoint, its radio and its role."""

    def __init__(self, cfg: NodeConfig):
        self.cfg = cfg
        self.ep = Endpoint(cfg.node_id, "agent", cfg.coordinator, role=cfg.role, bind=cfg.bind,
                           heartbeat_s=cfg.heartbeat_s)
        self.role = None
        self.steps = 0

    def _build_role(self, settings: dict[str, Any], seed: int, radio_mode: str) -> None:
        radio = Radio(self.ep.peers, self.ep.stamper, radio_mode)
        ctx = NodeContext(self.cfg.node_id, agent_rng(seed, self.cfg.node_id), radio,
                          self.ep.metrics, settings)
        self.role = load_role(self.cfg.role)(ctx, settings.get("role", {}))

    def handle(self, ident: bytes, msg) -> None:
        """Dispatch one message to the role."""
        if isinstance(msg.body, Observation):
            self.ep.t_sim = msg.env.t_sim
            self.role.ctx.t_sim = msg.env.t_sim
            action, arrays = self.role.on_observation(msg)
            self.ep.peers.send(msg.env.src, self.ep.stamper.encode(action, msg.env.src, arrays))
            self.steps += 1
        else:
            self.role.on_radio(msg)

    def run(self) -> int:
        """Main loop; returns the process exit code."""
        ep = self.ep
        try:
            ack = ep.register(self.cfg.register_timeout_s)
            if ep.stopping:
                return 0
            self._build_role(ack.settings, ack.seed, ack.settings.get("radio_mode", "emulated"))
            log.info("%s registered (inbox %s), role %s", self.cfg.node_id, ep.inbox.endpoint, self.cfg.role)
            pending = ep.wait_start()
            self.role.on_start()
            for ident, msg in pending:
                self.handle(ident, msg)
            while not ep.stopping:
                ep.maybe_heartbeat()
                for ident, msg in ep.poll(int(self.cfg.heartbeat_s * 1000)):
                    self.handle(ident, msg)
            return 0
        finally:
            self._flush()
            ep.close()

    def _flush(self) -> None:
        """Send the last metrics before the sockets close."""
        if self.role is not None:
            values = dict(self.role.metrics(), steps=self.steps, rejected=self.ep.inbox.rejected,
                          radio_sent=dict(self.role.ctx.radio.sent))
            self.ep.metrics(f"{self.role.name}_node", values, final=True)


def run_node(cfg: NodeConfig) -> int:
    """Entry point of an agent process (launcher target, `netmarl node`, `python -m agent_node`)."""
    node = AgentNode(cfg)
    node.ep.stop_on_signals()
    return node.run()


def run_node_kwargs(**kwargs) -> int:
    """Launcher target: build the NodeConfig from keyword arguments and run."""
    return run_node(NodeConfig(**kwargs))
