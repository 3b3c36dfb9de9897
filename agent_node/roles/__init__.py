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
    "isac": "agent_node.roles.isac:IsacRole",
    "router": "agent_node.roles.router:RouterRole",
    "stocker": "agent_node.roles.stocker:StockerRole",
    "signal_controller": "agent_node.roles.signal_controller:SignalControllerRole",
    "policy": "agent_node.roles.policy:PolicyRole",
}


def is_role_path(name: str) -> bool:
    """A user's role given by import path, "package.module:Class" (a registered role is a plain name)."""
    module, sep, cls = name.partition(":")
    return bool(sep) and all(p.isidentifier() for p in module.split(".")) and cls.isidentifier()


def load_role(name: str) -> type[Role]:
    """The role class registered under name, or a user's Role subclass named "package.module:Class"."""
    if name in ROLES:
        module, cls = ROLES[name].split(":")
        return getattr(importlib.import_module(module), cls)
    if not is_role_path(name):
        raise ValueError(f"unknown role {name!r}; known roles: {', '.join(sorted(ROLES))}, or module:Class")
    module, _, cls = name.partition(":")
    try:
        role = getattr(importlib.import_module(module), cls)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"role {name!r} cannot be imported: {err}") from None
    if not (isinstance(role, type) and issubclass(role, Role)):
        raise ValueError(f"role {name!r} is not a subclass of agent_node.roles.base.Role")
    return role
