"""The beacon world's [world] table and its checks across tables."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ConfigError
from ..sumo.figure8 import max_vehicles

if TYPE_CHECKING:
    from ..config import ScenarioConfig


class Figure8World(BaseModel):
    """The figure-eight road in SUMO: simulator backend, how many vehicles, how many are agents."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["figure8"] = "figure8"
    backend: Literal["libsumo", "traci"] = "libsumo"
    gui: bool = False
    step_length: float = Field(0.1, gt=0)
    vehicles: int = Field(14, ge=1)
    agents: int = Field(14, ge=0)
    ring_radius: float = Field(30.0, gt=0)
    speed_limit: float = Field(30.0, gt=0)


def check_beacons(cfg: ScenarioConfig, where: str) -> None:
    """The beacon world takes no [algo]; its agents fit the road; [role] is valid for the role it names."""
    from ..config import validate_role

    if cfg.algo:
        raise ConfigError(f"{where}: algo: the figure8 world takes no [algo] table")
    if cfg.world.agents > cfg.world.vehicles:
        raise ConfigError(f"{where}: world.agents ({cfg.world.agents}) exceeds world.vehicles ({cfg.world.vehicles})")
    if cfg.world.vehicles > (room := max_vehicles(cfg.world.ring_radius)):
        raise ConfigError(
            f"{where}: world.vehicles: {cfg.world.vehicles} vehicles do not fit on a figure-eight of "
            f"ring_radius {cfg.world.ring_radius:g} m (at most {room})"
        )
    validate_role(cfg, where)
