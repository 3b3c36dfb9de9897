"""The beacon role: 10 Hz status broadcasts and occasional bulk unicasts to heard neighbours."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from protocols.codec import wire_size
from protocols.messages import BROADCAST, Beacon, Message, Payload

from .base import Role, RoleSettings


class BeaconSettings(RoleSettings):
    """Settings of the beacon role (the [role] table of a scenario file)."""

    name: str = "beacon"  # the role (agent_node/roles/)
    beacon_hz: float = Field(10.0, gt=0)  # beacons broadcast per second of simulated time
    beacon_bytes: int = Field(200, ge=64)  # size of one beacon on the radio
    payload_bytes: int = Field(50_000, ge=256)  # size of one unicast payload to a random neighbour
    payload_interval_s: float = Field(2.0, gt=0)  # mean time between payloads per node
    neighbour_timeout_s: float = Field(1.0, gt=0)  # a peer not heard for this long (s) is no longer a neighbour
    metrics_interval_s: float = Field(1.0, gt=0)  # simulated seconds between the node's metrics records


class BeaconRole(Role):
    """Broadcast beacons at beacon_hz; now and then unicast a payload to a neighbour heard recently."""

    name = "beacon"
    Settings = BeaconSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = BeaconSettings.model_validate(settings)
        self.heard: dict[str, float] = {}  # neighbour id -> sim time last heard
        self.rx: dict[str, int] = {"beacon": 0, "payload": 0}
        self.tx: dict[str, int] = {"beacon": 0, "payload": 0}
        self.next_beacon = 0.0
        self.next_metrics = self.cfg.metrics_interval_s
        self.last_t = 0.0
        self.age_sum = 0.0  # simulated seconds from a beacon's send step to the first step that saw it
        self.unread = [0, 0.0]  # beacons received since the last observation: count, sum of send times
        self._pad = self._pad_length()

    def _pad_length(self) -> int:
        probe = Beacon(x=0.0, y=0.0, speed=0.0)
        size = wire_size(self.ctx.radio.encode(probe, BROADCAST))
        return max(0, self.cfg.beacon_bytes - size)

    def neighbours(self, now: float) -> list[str]:
        """Peers heard within the neighbour timeout."""
        return sorted(n for n, t in self.heard.items() if now - t <= self.cfg.neighbour_timeout_s)

    def on_observation(self, msg: Message):
        now = msg.env.t_sim
        self.age_sum += self.unread[0] * now - self.unread[1]
        self.unread = [0, 0.0]
        dt = max(now - self.last_t, 0.0)
        self.last_t = now
        obs = msg.arrays.get("obs")
        if obs is None or obs.shape != (3,):
            raise ValueError(
                f"beacon role expects an 'obs' array of shape (3,), got {None if obs is None else obs.shape}"
            )
        x, y, speed = (float(v) for v in obs)
        if now + 1e-9 >= self.next_beacon:
            self.ctx.radio.broadcast(Beacon(x=x, y=y, speed=speed, pad=b"\0" * self._pad))
            self.tx["beacon"] += 1
            self.next_beacon = now + 1.0 / self.cfg.beacon_hz
        near = self.neighbours(now)
        if near and self.ctx.rng.random() < dt / self.cfg.payload_interval_s:
            dst = near[self.ctx.rng.integers(len(near))]
            data = np.zeros(self.cfg.payload_bytes - 200, dtype=np.uint8)
            self.ctx.radio.send(dst, Payload(tag="bulk"), {"data": data})
            self.tx["payload"] += 1
        if now >= self.next_metrics:
            self.ctx.send_metrics("beacon_node", self.metrics())
            self.next_metrics = now + self.cfg.metrics_interval_s
        return super().on_observation(msg)

    def on_radio(self, msg: Message) -> None:
        kind = msg.env.type
        self.rx[kind] = self.rx.get(kind, 0) + 1
        if kind == "beacon":
            self.heard[msg.env.src] = self.last_t
            self.unread[0] += 1
            self.unread[1] += msg.env.t_sim

    def metrics(self) -> dict:
        return {
            "t": self.last_t,
            "beacons_tx": self.tx["beacon"],
            "beacons_rx": self.rx["beacon"],
            "payloads_tx": self.tx["payload"],
            "payloads_rx": self.rx["payload"],
            "neighbours": len(self.neighbours(self.last_t)),
            "beacon_age_ms": round(1000 * self.age_sum / seen, 2)
            if (seen := self.rx["beacon"] - self.unread[0])
            else None,
        }
