"""The figure8 kind: vehicles on the figure-eight exchanging beacons (the runtime's smallest world)."""

from ..kinds import WorldKind, lazy
from .config import Figure8World, check_beacons

KIND = WorldKind(
    name="figure8",
    world=Figure8World,
    algo=None,
    plan=lazy("scenarios.beacons.plan:plan_beacons"),
    check=check_beacons,
    preload=("scenarios.beacons.world",),
)
