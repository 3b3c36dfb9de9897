"""The warehouse kind: Alternating-MARL's dispatcher polling k of n robots on a ring of zones."""

from ..kinds import WorldKind, lazy
from .checks import check_warehouse
from .config import WarehouseAlgo, WarehouseWorld

KIND = WorldKind(
    name="warehouse",
    world=WarehouseWorld,
    algo=WarehouseAlgo,
    plan=lazy("scenarios.warehouse.plan:plan_warehouse"),
    check=check_warehouse,
    preload=("agent_node.roles.robot", "scenarios.warehouse.world"),  # 1,000 robots share one import
)
