"""The [world] and [algo] tables of a warehouse scenario file."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_node.learners.alternating.alternating import AlternatingConfig
from agent_node.overrides import Overrides
from agent_node.warehouse.model import WarehouseModel


class WarehouseWorld(BaseModel):
    """The floor: n robots on a ring of zones around the dispatcher, episodes of `horizon` steps."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["warehouse"] = "warehouse"  # picks the world kind (scenarios/kinds.py)
    robots: int = Field(1000, ge=1, le=1000)  # the paper's n; ZeroMQ's 1,023 sockets per process cap it
    horizon: int = Field(100, gt=0)  # steps per episode (the paper's T)
    ring_radius_m: float = Field(40.0, gt=0)  # zones lie on this ring around the dispatcher
    ring_width_m: float = Field(20.0, ge=0)  # robots sit at radii within +-width/2 of it
    # the tabular model: zones, discount, rewards, starting law
    model: WarehouseModel = Field(default_factory=WarehouseModel)


class WarehouseAlgo(BaseModel):
    """How the dispatcher and the robots get their policies, and how polls behave at run time."""

    model_config = ConfigDict(extra="forbid")
    k: int = Field(50, ge=1)  # robots the dispatcher may poll per step
    # learned: the trained table; mode: the zone most polled robots are in; random: a uniform zone; stay: the current
    # zone; full_information: mode over all robots (k = n)
    dispatcher: Literal["learned", "mode", "random", "stay", "full_information"] = "learned"
    policy_dir: str = ""  # pi_g.npz + pi_l.npy from an earlier run's policy/ folder; empty: train first
    # the training (G-LEARN, L-LEARN, the loop); n and seed come from the scenario and k from algo.k unless set here
    train: Overrides(AlternatingConfig) = Field(default_factory=AlternatingConfig)
    nash_gap: bool = False  # also estimate the empirical Nash gap of the trained pair (simulator)
    poll_timeout_s: float = Field(1.0, gt=0)  # wall-clock wait for an answer before it counts as lost
    replace_lost_polls: bool = True  # docs/alternating_marl.md, A-7; false: act on fewer than k answers
    window: int = Field(8, ge=1, le=64)  # s_g history in each broadcast (robots catch up on missed ones)
    record: bool = False  # record zones and polled ids per step (for replay against the simulator)
