"""The [algo] settings of the learning roles (ippo, router, isac, stocker, cav) as pydantic models, without torch:
the coordinator validates and plans a run with them and never loads a learner. Each role imports its own from here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..learners.settings import CPM_PAYLOAD_BYTES, HybridPPOConfig, PPOConfig, SACConfig
from ..overrides import Overrides
from .base import RoleSettings


class IppoSettings(RoleSettings):
    """What the run plan hands each learner: the PPO settings, threads and checkpoints."""

    name: str = "ippo"
    ppo: Overrides(PPOConfig) = Field(default_factory=PPOConfig)  # fields set: over the seeds
    torch_threads: int = Field(1, ge=1)
    checkpoint_dir: str | None = None
    resume_dir: str | None = None


class RouterSettings(IppoSettings):
    """What the run plan hands each router: the method, the hybrid-loss weight and the PPO settings."""

    name: str = "router"
    method: Literal["reled", "ippo"] = "reled"
    alpha_mode: Literal["paper", "fixed_expert", "fixed_agent"] = "paper"
    alpha_fixed: float | None = Field(None, ge=0, le=1)
    dtw_repr: Literal["junction_xy", "obs"] = "junction_xy"
    dtw_scale: float = Field(1.0, gt=0)
    ppo: Overrides(HybridPPOConfig) = Field(default_factory=HybridPPOConfig)  # fields set: over the seeds
    n_junctions: int = Field(2, ge=2)  # set by the run plan from the map

    @model_validator(mode="after")
    def _check(self):
        if self.alpha_mode != "paper" and self.alpha_fixed is None:
            raise ValueError(f"alpha_mode {self.alpha_mode!r} needs alpha_fixed (the ablations use 0.2 or 0.5)")
        return self


class IsacSettings(RoleSettings):
    """What the run plan hands each learner: the SAC settings (its obs_dim, act_dim and action_bound among them),
    how many gradient steps per decision, threads and checkpoints."""

    name: str = "isac"
    sac: Overrides(SACConfig) = Field(default_factory=SACConfig)  # fields set: over the seeds
    updates_per_step: int = Field(1, ge=0)  # gradient steps after each training decision (0: act only)
    torch_threads: int = Field(1, ge=1)
    checkpoint_dir: str | None = None
    resume_dir: str | None = None


class StockerSettings(RoleSettings):
    """What the run plan hands each warehouse: PPO settings, checkpoints and the reward scale."""

    name: str = "stocker"
    ppo: Overrides(PPOConfig) = Field(default_factory=PPOConfig)  # the fields set override the agent's seeds
    torch_threads: int = Field(1, ge=1)
    checkpoint_dir: str | None = None
    resume_dir: str | None = None
    reward_scale: float = Field(1e-4, gt=0)  # per-SKU reward / 1e4, as MABIM's IPPO (docs/espark.md, E-A8)


Method = Literal["isac", "avg_masac", "rsm_masac", "deploy"]  # deploy: act with exported policies (role policy)


class CavSettings(RoleSettings):
    """The [algo] table of a CAV scenario: the method, its round parameters and the SAC hyperparameters."""

    name: str = "cav"
    # isac: independent SAC, no communication; avg_masac: averaging (avg_of); rsm_masac: the paper's regulated segment
    # mixing; deploy: act with the exported policies in policy_dir
    method: Method = "rsm_masac"
    # avg_masac: what a round averages. "replicas" (the paper's Avg, Table V: its rho_total matches the kappa = 3
    # rows): the same rounds and replicas as rsm_masac, every replica averaged in, no accept test; "neighbours":
    # every neighbour's full actor, averaged uniformly
    avg_of: Literal["replicas", "neighbours"] = "replicas"
    update_mode: Literal["paper", "code"] = "paper"  # Alg. 1 (critic every step) or the code's (rsm_masac.md R-A7)
    code_update_every: int = Field(10, ge=1)  # update_mode = "code": one full update every this many steps
    # paper: store the transition, update, then act (Alg. 1); an update that leaves the actor and what the step
    # still reads as they are (a critic-only one) runs once the action is sent: the same numbers, off the lock-step.
    # pipelined: act first; the step's update runs on a learner thread while the world steps and is applied when
    # the next one starts (after the next update step's action): actions miss at most the latest update
    learn: Literal["paper", "pipelined"] = "paper"
    U: int = Field(8, ge=1)  # policy updates per communication round
    P: int = Field(4, ge=1, le=64)  # segments
    kappa: int = Field(3, ge=1)  # replicas
    M: int = Field(50, ge=1)  # buffer samples for the accept test and the Fisher score
    # bound zeta_max: Theorem 2 as printed (thm2) or eq. 18's (strict) (docs/rsm_masac.md, R-A1)
    zeta_rule: Literal["thm2", "strict"] = "thm2"
    zeta_cap: float = Field(0.8, gt=0, le=1)  # largest mixing weight zeta (docs/rsm_masac.md, R-A2)
    # zeta = min(zeta_cap, safety x zeta_max): how far below the bound (docs/rsm_masac.md, R-A2)
    safety: float = Field(0.99, gt=0, le=1)
    # eps in the bound's C: max_m |adv_m| (abs) or the signed max (code) (docs/rsm_masac.md, R-A5)
    eps_rule: Literal["abs", "code"] = "abs"
    # clamps the importance ratio to [-is_clip, is_clip]; unset: no clip, as the paper (R-A4)
    is_clip: float | None = Field(None, gt=0)
    # the actions eq. 20's Fisher score is taken at: drawn from pi_theta (the paper), or the buffer's (the code)
    fisher_actions: Literal["policy", "buffer"] = "policy"
    # a segment chunk that never arrives: zeros or the agent's own values (docs/rsm_masac.md, R-A12)
    loss_fill: Literal["zero", "self"] = "zero"
    # payload bytes of each segment_response chunk (one CPM; cpm_bytes / 4 floats)
    cpm_bytes: int = Field(CPM_PAYLOAD_BYTES, ge=64)
    beacon_interval_s: float = Field(0.5, gt=0)  # simulated seconds between beacons
    neighbour_timeout_s: float = Field(1.0, gt=0)  # a neighbour not heard for this long is out of range
    round_timeout_s: float = Field(0.5, gt=0)  # simulated seconds a round waits for its segments
    test_deterministic: bool = False  # the reference code tests the stochastic policy
    checkpoint_every: int = Field(10, ge=0)  # episodes; 0 = only at the end
    checkpoint_dir: str | None = None  # set by the run plan
    resume_dir: str | None = None  # checkpoints to start from (`netmarl run --resume`)
    torch_threads: int = Field(1, ge=1)  # PyTorch threads of each agent process
    sac: Overrides(SACConfig) = Field(default_factory=SACConfig)  # the fields set override the run's SAC settings
    policy_dir: str | None = None  # method = "deploy": the exported policies, one AGENT.npz per agent
