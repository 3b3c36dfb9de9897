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
    kind: Literal["figure8"] = "figure8"  # picks the world kind (scenarios/kinds.py)
    # libsumo: SUMO inside the world process; traci: SUMO as a process of its own, over a socket (needed for gui)
    backend: Literal["libsumo", "traci"] = "libsumo"
    gui: bool = False  # show SUMO's window (backend = "traci" only)
    step_length: float = Field(0.1, gt=0)  # simulated seconds per step
    vehicles: int = Field(14, ge=1)  # vehicles on the road (they must fit on it)
    agents: int = Field(14, ge=0)  # vehicles with an agent process (the first ones on the road; at most vehicles)
    ring_radius: float = Field(30.0, gt=0)  # radius of each of the two loops, m
    speed_limit: float = Field(30.0, gt=0)  # speed limit of the road, m/s


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
