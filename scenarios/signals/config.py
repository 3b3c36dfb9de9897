"""The [world] and [algo] tables of a traffic-signal scenario (kind = "signals"): RESCO map, episodes, learner."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from agent_node.learners.settings import PPOConfig
from agent_node.overrides import Overrides
from scenarios.espark.masker import ExplorationSpec
from scenarios.espark.settings import ACCUMULATED_EPISODES, ESparkSettings

from .maps import SIGNAL_MAPS


class SignalWorld(BaseModel):
    """One agent per traffic light of a RESCO map, a phase every delta_s seconds (eSpark paper, Sec. 5.1)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["signals"] = "signals"  # picks the world kind (scenarios/kinds.py)
    # the RESCO map (scenarios/signals/maps.py)
    map: Literal[SIGNAL_MAPS] = "grid4x4"  # type: ignore[valid-type]
    # libsumo: SUMO inside the world process; traci: SUMO as a process of its own, over a socket
    backend: Literal["libsumo", "traci"] = "libsumo"
    episodes: int = Field(100, ge=0)  # training episodes (0: test only)
    first_episode: int = Field(1, ge=1)  # number (and traffic seed) of the first one: eSpark's iterations continue
    horizon_s: float = Field(3600.0, gt=0)  # the paper's hour
    delta_s: float = Field(15.0, gt=0)  # a decision every 15 s
    yellow_s: float = Field(5.0, ge=0)  # GESA: 5 s yellow + 10 s green when the phase changes (3.0: the first setting)
    group_by: Literal["lane", "link"] = "lane"  # movements as GESA's lane groups, or per link (phases.group_lanes)
    pressure: Literal["vehicles", "halting"] = "vehicles"  # MaxPressure's pressure (SignalEnv.pressures)
    lights: Literal["all", "junctions"] = "all"  # which lights agents control (maps.controlled_lights)
    test_episodes: int = Field(3, ge=0)  # greedy test episodes at the end, fresh seeds
    eval_episodes: int = Field(0, ge=0)  # greedy, unmasked, on fresh training seeds after training (eSpark's selection)
    eval_every: int = Field(0, ge=0)  # ... and every this many training episodes (eSpark's validation checkpoints)
    update_every: int = Field(ACCUMULATED_EPISODES, ge=1)  # episodes accumulated per IPPO update (Table 13)
    update_deadline_s: float = Field(120.0, gt=0)  # how long the world waits for the agents' PPO updates, s
    exploration: ExplorationSpec = Field(default_factory=ExplorationSpec)  # the training-time mask (eSpark, baselines)


class SignalAlgo(BaseModel):
    """[algo]: IPPO with the phase masks; "random_pruning" adds random training masks (paper App. D.3.1); "espark" runs
    the eSpark loop (coordinator/espark/loop.py), whose candidate runs are IPPO runs with an exploration function;
    "ftc" and "max_pressure" are the paper's non-learning baselines (App. D.1.3-4; test episodes only)."""

    model_config = ConfigDict(extra="forbid")
    # ippo, random_pruning, espark: learners; ftc, max_pressure: non-learning baselines (test episodes only)
    method: Literal["ippo", "espark", "random_pruning", "ftc", "max_pressure"] = "ippo"
    ftc_phase_s: float = Field(30.0, gt=0)  # FTC: each phase of the cycle held this long (a multiple of delta_s)
    ppo: Overrides(PPOConfig) = Field(default_factory=PPOConfig)  # the fields set override the run's PPO settings
    torch_threads: int = Field(1, ge=1)  # PyTorch threads of each agent process
    init_weights: str | None = None  # a checkpoints folder (agentK.pt) the learners start from (eSpark's retention)
    espark: ESparkSettings = Field(default_factory=ESparkSettings)  # the eSpark loop (method = "espark")
