"""The [world] table of a CAV scenario (kind = "cav"): which road, how long, how many learners."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .maths import ACTION_BOUNDS, HORIZONS

DEFAULT_AGENTS = {"figure8": 9, "merge": 13}


class CavWorld(BaseModel):
    """Episodes of the figure-eight (9 CAVs, 5 IDM drivers) or the on-ramp merge (13 CAVs) (RSM-MASAC paper,
    Sec. VI-A)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["cav"] = "cav"  # picks the world kind (scenarios/kinds.py)
    scenario: Literal["figure8", "merge"] = "figure8"  # figure8: the figure-eight road; merge: the on-ramp merge
    # libsumo: SUMO inside the world process; traci: SUMO as a process of its own, over a socket
    backend: Literal["libsumo", "traci"] = "libsumo"
    episodes: int = Field(300, ge=1)  # training epochs (paper: 300 figure-eight, 260 merge)
    horizon: int | None = Field(None, ge=1)  # steps per episode; default 1,500 / 750 (Table III)
    step_length: float = Field(0.1, gt=0)  # simulated seconds per step
    vehicles: int = Field(14, ge=1)  # figure-eight only
    agents: int | None = Field(None, ge=0)  # default 9 / 13
    ring_radius: float = Field(30.0, gt=0)  # figure-eight only: radius of each of the two loops, m
    speed_limit: float = Field(30.0, gt=0)  # also the speed normaliser (docs/rsm_masac.md, R-A15)
    action_bound: float | None = Field(None, gt=0)  # default 3 / 1.5 m/s^2
    end_on_collision: bool = True  # the paper; false = the reference code (docs/rsm_masac.md, R-A14)
    paper_slots: bool = True  # figure-eight: CAVs at the reference code's positions in the vehicle order
    idm_reference: bool = False  # every vehicle an IDM driver, no agents: the paper's reference line
    test_every: int = Field(10, ge=0)  # a test episode after every this many training episodes (0: none)
    test_episodes: int = Field(1, ge=1)  # test episodes at each test point
    pre_merge: float = Field(200.0, gt=0)  # merge only: main road before the merge (Flow merge0: 500)
    # merge only: which entering main-road vehicles become CAVs after the warm-up. "random" is the paper's
    # ("13 vehicles are randomly chosen ... as they sequentially enter"): each with probability bind_prob,
    # seeded by (run seed, episode); "first": the first 13 to enter (one contiguous platoon)
    binding: Literal["random", "first"] = "random"
    # binding = "random": probability that an entering main-road vehicle becomes a CAV
    bind_prob: float = Field(0.5, gt=0, le=1)
    external: list[str] = Field(default_factory=list)  # agents served by nodes started by hand (`netmarl node`)

    @property
    def n_agents(self) -> int:
        if self.idm_reference:
            return 0
        return DEFAULT_AGENTS[self.scenario] if self.agents is None else self.agents

    @property
    def steps_per_episode(self) -> int:
        return self.horizon or HORIZONS[self.scenario]

    @property
    def bound(self) -> float:
        return self.action_bound or ACTION_BOUNDS[self.scenario]

    def schedule(self, start: int = 0) -> list[tuple[int, str]]:
        """(training episodes done before it, mode) of every episode from training episode `start` on."""
        out = []
        for e in range(start, self.episodes):
            out.append((e, "train"))
            if self.test_every and (e + 1) % self.test_every == 0:
                out += [(e + 1, "test")] * self.test_episodes
        return out
