"""The [world] and [algo] tables of a RELED routing scenario (kind = "routing"): map, traffic, budget, SED."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent_node.learners.settings import HybridPPOConfig
from agent_node.overrides import Overrides
from scenarios.llm.config import LLMConfig


class RoutingWorld(BaseModel):
    """Ten vehicles choosing their next road at every junction of a SUMO city (RELED paper, Sec. IV-A;
    docs/reled.md, RL-2, RL-3)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["routing"] = "routing"  # picks the world kind (scenarios/kinds.py)
    map: Literal["grid", "city"] = "grid"  # grid: Orlando-like netgenerate grid; city: RESCO Ingolstadt21
    traffic: Literal["moderate", "congested"] = "moderate"  # 90 / 190 background vehicles
    # libsumo: SUMO inside the world process; traci: SUMO as a process of its own, over a socket
    backend: Literal["libsumo", "traci"] = "libsumo"
    agents: int = Field(10, ge=1, le=64)  # learning vehicles, one agent process each (paper: 10)
    epochs: int = Field(500, ge=1)  # K (paper: 500)
    decisions_per_epoch: int = Field(1000, ge=1)  # paper: 10^3; the running episode is finished (RL-3)
    t_max: float = Field(2400.0, gt=0)  # episode limit in sim seconds (1 s steps)
    time_to_teleport: float = 300.0  # SUMO's default (docs/reled.md, RL-2); teleports are counted
    test_episodes: int = Field(20, ge=0)  # greedy test episodes at the end (the paper's "20 independent runs")
    test_stochastic: bool = True  # also as many test episodes with sampled actions (a secondary figure, RL-14)
    test_every: int = Field(0, ge=0)  # also a greedy test episode after every this many epochs (0: only at the end)
    trips_seed: int = 0  # the fixed OD pairs and departures, identical for all methods and seeds (RL-7)
    update_deadline_s: float = Field(120.0, gt=0)  # how long the world waits for the agents' PPO updates


class SedSettings(BaseModel):
    """The SED module (coordinator side): expert source, schedule, partition and feedback (RELED paper, Sec. III-D;
    docs/reled.md, RL-1)."""

    model_config = ConfigDict(extra="forbid")
    # llm: plans from the LLM; scripted: shortest-time plans without an LLM (the reference expert);
    # file: the plan code in plan_file (hand-written plans, same contract as the LLM's)
    expert: Literal["llm", "scripted", "file"] = "llm"
    plan_file: str | None = None  # expert = "file": the Python file with the plans
    refinement: bool = True  # False: the "w/o Refn." ablation (re-query with the initial prompt only)
    q: int = Field(10, ge=1)  # SED every q epochs
    m: int = Field(2, ge=1)  # subsets per round
    sed_at_start: bool = True  # also at epoch 1 (RL-1; Alg. 1 alone has no expert data before epoch q)
    plan_cpu_s: float = Field(2.0, gt=0)  # per agent's plan(agent_id) in the sandbox
    plan_wall_s: float = Field(5.0, gt=0)  # wall-clock limit of each agent's plan(agent_id) in the sandbox, s
    # the LLM that writes the plans (expert = "llm")
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(temperature=0.7, max_tokens=1024))

    @model_validator(mode="after")
    def _check(self):
        if self.expert == "file" and not (self.plan_file and Path(self.plan_file).is_file()):
            raise ValueError(f'expert = "file" needs plan_file, an existing Python file (got {self.plan_file!r})')
        return self


class RoutingAlgo(BaseModel):
    """[algo]: the method, the agents' PPO and hybrid-loss settings, and the SED module."""

    model_config = ConfigDict(extra="forbid")
    # reled: PPO that also learns from the SED module's expert plans; ippo: PPO alone
    method: Literal["reled", "ippo"] = "reled"
    alpha_mode: Literal["paper", "fixed_expert", "fixed_agent"] = "paper"  # docs/reled.md, RL-11, RL-12
    alpha_fixed: float | None = Field(None, ge=0, le=1)  # 0.2 / 0.5 for the fixed-alpha ablations
    # DTW compares the (x, y) of the decision junctions then the destination (RL-11), or the observations
    dtw_repr: Literal["junction_xy", "obs"] = "junction_xy"
    dtw_scale: float = Field(1.0, gt=0)  # divisor of the DTW distance (1: the literal metre-scale formula)
    # the fields set override the run's PPO settings
    ppo: Overrides(HybridPPOConfig) = Field(default_factory=HybridPPOConfig)
    torch_threads: int = Field(1, ge=1)  # PyTorch threads of each agent process
    sed: SedSettings = Field(default_factory=SedSettings)  # the SED module: expert plans, schedule, feedback
