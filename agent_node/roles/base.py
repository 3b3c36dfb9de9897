"""The Role interface and the NodeContext a role acts through."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict

from protocols.messages import Action, Message

from ..radio import Radio


@dataclass
class NodeContext:
    """What a role may use: its id, its own random stream, the radio, the clock and the metrics sink."""

    node_id: str
    rng: np.random.Generator
    radio: Radio
    send_metrics: Callable[[str, dict[str, Any]], None]
    settings: dict[str, Any] = field(default_factory=dict)
    t_sim: float = 0.0
    seed: int = 0  # the run seed, for streams shared with other processes
    # wait(done, seconds): take in radio messages (they reach on_radio) until done() or `seconds` pass, True
    # if done (Endpoint.wait_for in an agent process); lets a role wait for answers to its own requests
    # inside on_observation
    wait: Callable[[Callable[[], bool], float], bool] = lambda done, seconds: done()


class RoleSettings(BaseModel):
    """Settings every role accepts; a role subclasses this for its own [role] table."""

    model_config = ConfigDict(extra="forbid")
    name: str


class Role:
    """Base role: override the hooks you need."""

    name = "base"
    Settings: ClassVar[type[RoleSettings]] = RoleSettings

    def __init__(self, ctx: NodeContext, settings: dict[str, Any]):
        self.ctx = ctx
        self.settings = settings

    def on_start(self) -> None:
        """The run has started."""

    def on_observation(self, msg: Message) -> tuple[Action, dict[str, np.ndarray] | None]:
        """Return the action for this observation (default: no action, the simulator drives)."""
        return Action(step=msg.body.step), None

    def after_action(self) -> None:
        """The action of the last observation is on its way: work that need not delay it (learning) goes here."""

    def on_radio(self, msg: Message) -> None:
        """A radio-plane message arrived."""

    def on_stop(self) -> None:
        """The node is stopping: last chance to report (the sockets are still open)."""

    def metrics(self) -> dict[str, Any]:
        """Counters to report (periodically and once more at shutdown)."""
        return {}
