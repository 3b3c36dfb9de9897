"""Role plug-ins: what an agent does with observations and radio messages, looked up by name."""

from __future__ import annotations

import importlib

from .base import Role

ROLES: dict[str, str] = {
    "beacon": "agent_node.roles.beacon:BeaconRole",
    "dispatcher": "agent_node.roles.dispatcher:DispatcherRole",
    "robot": "agent_node.roles.robot:RobotRole",
    "cav": "agent_node.roles.cav:CavRole",
    "ippo": "agent_node.roles.ippo:IppoRole",
    "router": "agent_node.roles.router:RouterRole",
    "stocker": "agent_node.roles.stocker:StockerRole",
    "signal_controller": "agent_node.roles.signal_controller:SignalControllerRole",
    "policy": "agent_node.roles.policy:PolicyRole",
}


def load_role(name: str) -> type[Role]:
    """Import and return the role class registered under name."""
    try:
        module, cls = ROLES[name].split(":")
    except KeyError:
        raise ValueError(f"unknown role {name!r}; known roles: {', '.join(sorted(ROLES))}") from None
    return getattr(importlib.import_module(module), cls)
