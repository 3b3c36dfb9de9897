"""Validated configuration for the network emulator (channel, burst loss, medium)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from protocols.messages import REGISTRY


class GilbertElliottConfig(BaseModel):
    """Per-link two-state (Good/Bad) Gilbert-Elliott burst-loss overlay (docs/scenarios.md, "Radio presets")."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False  # lay the Good/Bad chain over every link
    p_good_to_bad: float = Field(0.01, ge=0.0, le=1.0)  # per-message probability of switching from Good to Bad
    # per-message probability of switching from Bad to Good (mean burst length: 1 / this)
    p_bad_to_good: float = Field(0.3, gt=0.0, le=1.0)
    loss_good: float = Field(0.0, ge=0.0, le=1.0)  # loss probability of a message in the Good state
    loss_bad: float = Field(1.0, ge=0.0, le=1.0)  # loss probability of a message in the Bad state


class LogisticConfig(BaseModel):
    """Overrides of PDR(d) = a / (1 + exp((d - d50)/s)); None keeps the model's preset."""

    model_config = ConfigDict(extra="forbid")

    a: float | None = Field(None, gt=0.0, le=1.0)  # PDR at short distance (the curve's plateau)
    d50_m: float | None = None  # distance where PDR falls to a / 2, m
    s_m: float | None = Field(None, gt=0.0)  # width of the fall-off, m (larger: a gentler slope)


class LogDistanceConfig(BaseModel):
    """Log-distance path loss with lognormal shadowing against a sensitivity threshold."""

    model_config = ConfigDict(extra="forbid")

    tx_power_dbm: float = 23.0  # transmit power, dBm
    pl0_db: float = 47.9  # path loss at the reference distance d0_m, dB
    d0_m: float = Field(1.0, gt=0.0)  # reference distance, m (nearer counts as d0_m)
    exponent: float = Field(3.0, gt=0.0)  # path-loss exponent n: the loss grows by 10 n dB per tenfold distance
    # standard deviation of the lognormal shadowing, dB (0: a sharp cut where the margin ends)
    shadowing_sigma_db: float = Field(3.0, ge=0.0)
    sensitivity_dbm: float = -85.0  # weakest received power that is still decoded, dBm


class NetsimConfig(BaseModel):
    """Top-level emulator configuration: channel model, range cut, timing and fragmentation."""

    model_config = ConfigDict(extra="forbid")

    # emulated: radio messages go through the medium process, which applies the channel; direct: agents send to each
    # other, nothing lost or delayed
    mode: Literal["emulated", "direct"] = "emulated"
    # what the medium's latencies run on: the world's simulated time (sim) or the wall clock (wall)
    clock: Literal["sim", "wall"] = "sim"
    # channel: unit_disk (all within range_m arrives), the ieee80211p or cv2x logistic fit, or log_distance
    model: Literal["unit_disk", "ieee80211p", "cv2x", "log_distance"] = "ieee80211p"
    range_m: float = Field(250.0, gt=0.0)  # hard range cut: nothing arrives from farther, m
    logistic: LogisticConfig = Field(default_factory=LogisticConfig)  # overrides of the ieee80211p / cv2x curve
    log_distance: LogDistanceConfig = Field(default_factory=LogDistanceConfig)  # parameters of model = "log_distance"
    # Gilbert-Elliott burst loss on every link
    burst: GilbertElliottConfig = Field(default_factory=GilbertElliottConfig)
    loss: float = Field(0.0, ge=0.0, le=1.0)  # extra independent loss per message, on top of the model
    # the message types the extra loss applies to (empty: every radio message); ["segment_response"] loses only
    # RSM-MASAC's segment chunks, never their requests, as the RSM paper's released code does
    loss_types: list[str] = Field(default_factory=list, max_length=64)
    latency_base_s: float = Field(0.001, ge=0.0)  # fixed delay of every message, s, before its serialization time
    # serialization rate, bit/s: a message takes 8 x its bytes (fragment headers included) / this
    bandwidth_bps: float = Field(6e6, gt=0.0)
    # fragment size, bytes: a longer message is split and arrives only if every fragment does
    mtu_bytes: int = Field(1500, ge=64)
    # header bytes of each fragment, out of mtu_bytes (they count in the latency too)
    fragment_header_bytes: int = Field(0, ge=0)
    # messages the medium holds in flight, each sender an even share; more are dropped ("queue")
    max_queue: int = Field(100000, ge=1)

    @field_validator("loss_types")
    @classmethod
    def _known_types(cls, types: list[str]) -> list[str]:
        """Each must be a registered message type, so a misspelt one is an error (a type that never crosses
        the radio, such as `tick`, is accepted and loses nothing: the medium never sees it)."""
        unknown = sorted(set(types) - REGISTRY.keys())
        if unknown:
            raise ValueError(f"unknown message types {unknown}; known: {sorted(REGISTRY)}")
        return types

    @model_validator(mode="after")
    def _header_fits_mtu(self) -> NetsimConfig:
        """Each fragment must carry at least one payload byte."""
        if self.fragment_header_bytes >= self.mtu_bytes:
            raise ValueError("fragment_header_bytes must be smaller than mtu_bytes")
        return self
