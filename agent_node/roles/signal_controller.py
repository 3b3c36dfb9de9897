"""The signal-controller role: the eSpark paper's non-learning traffic-light baselines, FTC and MaxPressure."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from protocols.messages import Act, Action, Message

from .base import Role, RoleSettings

#: FTC's cycle (eSpark App. D.1.3), as indices into GESA's phase order A..H ("WT-ET", "EL-ET", "WL-WT", "EL-WL",
#: "NT-ST", "SL-ST", "NT-NL", "NL-SL"): WT-ET, NT-ST, WL-EL, NL-SL, WL-WT, EL-ET, SL-ST, NL-NT.
FTC_CYCLE = (0, 4, 3, 7, 2, 1, 5, 6)


class SignalControllerSettings(RoleSettings):
    """method "ftc": the fixed cycle, each phase held for `hold` decisions (30 s at the 15 s decision);
    "max_pressure": every decision, the existing phase with the largest pressure the world reports."""

    name: str = "signal_controller"
    method: Literal["ftc", "max_pressure"] = "ftc"
    hold: int = Field(2, ge=1)


class SignalControllerRole(Role):
    """Answer each "act" with a phase chosen by rule from the message's mask (and, for MaxPressure, its
    "pressure" array: one value per phase); nothing to learn, so "update" is acknowledged."""

    name = "signal_controller"
    Settings = SignalControllerSettings

    def __init__(self, ctx, settings):
        super().__init__(ctx, settings)
        self.cfg = SignalControllerSettings.model_validate(settings)
        self.decisions = 0  # in the current episode
        self.counts = {"decisions": 0, "episodes": 0}

    def on_observation(self, msg: Message):
        body, arrays = msg.body, msg.arrays
        if not isinstance(body.info, Act):
            return Action(step=body.step), None
        if body.done:
            self.decisions = 0
            self.counts["episodes"] += 1
            return Action(step=body.step), None
        mask = arrays.get("mask")
        if mask is None or mask.ndim != 1 or len(mask) != len(FTC_CYCLE) or not mask.any():
            raise ValueError(f"signal_controller expects a 'mask' of {len(FTC_CYCLE)} phases with one allowed")
        mask = mask.astype(bool)
        if self.cfg.method == "ftc":
            action = self.ftc(mask)
        else:
            pressure = arrays.get("pressure")
            if pressure is None or pressure.shape != mask.shape or not np.isfinite(pressure).all():
                raise ValueError(f"max_pressure expects a finite 'pressure' array of {len(mask)} phases")
            action = int(np.flatnonzero(mask)[np.argmax(pressure[mask])])  # ties: the first in GESA's order
        self.decisions += 1
        self.counts["decisions"] += 1
        return Action(step=body.step, value=action), None

    def ftc(self, mask: np.ndarray) -> int:
        """The cycle position this decision falls in, phases the light lacks skipped."""
        cycle = [p for p in FTC_CYCLE if mask[p]]
        return cycle[(self.decisions // self.cfg.hold) % len(cycle)]

    def metrics(self) -> dict:
        return dict(self.counts)
