"""Validated configuration for the network emulator (channel, burst loss, medium)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GilbertElliottConfig(BaseModel):
    """Per-link two-state (Good/Bad) Gilbert-Elliott burst-loss overlay (docs/scenarios.md, "Radio presets")."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = False
    p_good_to_bad: float = Field(0.01, ge=0.0, le=1.0)
    p_bad_to_good: float = Field(0.3, gt=0.0, le=1.0)
    loss_good: float = Field(0.0, ge=0.0, le=1.0)
    loss_bad: float = Field(1.0, ge=0.0, le=1.0)


class LogisticConfig(BaseModel):
    """Overrides of PDR(d) = a / (1 + exp((d - d50)/s)); None keeps the model's preset."""

    model_config = ConfigDict(extra="forbid")

    a: float | None = Field(None, gt=0.0, le=1.0)
    d50_m: float | None = None
    s_m: float | None = Field(None, gt=0.0)


class LogDistanceConfig(BaseModel):
    """Log-distance path loss with lognormal shadowing against a sensitivity threshold."""

    model_config = ConfigDict(extra="forbid")

    tx_power_dbm: float = 23.0
    pl0_db: float = 47.9
    d0_m: float = Field(1.0, gt=0.0)
    exponent: float = Field(3.0, gt=0.0)
    shadowing_sigma_db: float = Field(3.0, ge=0.0)
    sensitivity_dbm: float = -85.0


class NetsimConfig(BaseModel):
    """Top-level emulator configuration: channel model, range cut, timing and fragmentation."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["emulated", "direct"] = "emulated"
    clock: Literal["sim", "wall"] = "sim"
    model: Literal["unit_disk", "ieee80211p", "cv2x", "log_distance"] = "ieee80211p"
    range_m: float = Field(250.0, gt=0.0)
    logistic: LogisticConfig = Field(default_factory=LogisticConfig)
    log_distance: LogDistanceConfig = Field(default_factory=LogDistanceConfig)
    burst: GilbertElliottConfig = Field(default_factory=GilbertElliottConfig)
    loss: float = Field(0.0, ge=0.0, le=1.0)  # extra independent loss per message, on top of the model
    latency_base_s: float = Field(0.001, ge=0.0)
    bandwidth_bps: float = Field(6e6, gt=0.0)
    mtu_bytes: int = Field(1500, ge=64)
    fragment_header_bytes: int = Field(0, ge=0)
    max_queue: int = Field(100000, ge=1)

    @model_validator(mode="after")
    def _header_fits_mtu(self) -> NetsimConfig:
        """Each fragment must carry at least one payload byte."""
        if self.fragment_header_bytes >= self.mtu_bytes:
            raise ValueError("fragment_header_bytes must be smaller than mtu_bytes")
        return self
