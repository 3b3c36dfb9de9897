"""The inventory kind: MABIM-style warehouses of stock keeping units learning IPPO (eSpark's inventory task)."""

from __future__ import annotations

from ..config import ScenarioConfig, check_init_weights, check_radio_free
from ..kinds import WorldKind, lazy
from .config import InventoryAlgo, InventoryWorld


def check_inventory(cfg: ScenarioConfig, where: str) -> None:
    """An inventory (MABIM) scenario: [algo] holds the warehouses' learner."""
    check_radio_free(cfg, where, "the warehouses")
    check_init_weights(cfg.algo, where)


KIND = WorldKind(
    name="inventory",
    world=InventoryWorld,
    algo=InventoryAlgo,
    plan=lazy("scenarios.inventory.plan:plan_inventory"),
    check=check_inventory,
    espark="scenarios.inventory.espark_task:TASK",
    preload=("agent_node.roles.stocker", "scenarios.inventory.world"),
    resumable=True,
)
