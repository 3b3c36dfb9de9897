"""[algo.espark]: the loop's knobs (eSpark paper, Sec. 5.1, App. C.3: K = 16, 10 iterations, checker, retention,
GPT-4 at T = 0.7)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.llm.config import LLMConfig

# eSpark's IPPO (eSpark paper, App. D.2, Table 13; the same for MABIM and SUMO): gamma 0.985, Adam lr 5e-4,
# grad-norm clip 10, PPO clip 0.2, critic coefficient 0.5, entropy 0. Where the paper is silent, the released
# eSpark.yaml and its local_ppo_learner (MABIM's baseline ippo.yaml has 2 epochs instead): GAE lambda 0.95, 4 epochs
# over the whole batch of 4 episodes (minibatch 0), the multinomial selector's epsilon floor 1.0 -> 0.05 over
# 250,000 training decisions. The same settings train the IPPO twin, so the two differ only in the mask.
IPPO_DEFAULTS = {
    "gamma": 0.985,
    "lr": 5e-4,
    "clip_eps": 0.2,
    "beta": 0.0,
    "gae_lambda": 0.95,
    "update_epochs": 4,
    "minibatch": 0,
    "hidden": 128,
    "max_grad_norm": 10.0,
    "vf_coef": 0.5,
    "explore_eps_start": 1.0,
    "explore_eps_finish": 0.05,
    "explore_eps_steps": 250_000,
}
ACCUMULATED_EPISODES = 4  # episodes per IPPO update (Table 13)


class ESparkSettings(BaseModel):
    """What the eSpark loop does each iteration; the budget is world.episodes per lineage, split evenly."""

    model_config = ConfigDict(extra="forbid")
    candidates: int = Field(16, ge=1)  # K: exploration functions per iteration
    iterations: int = Field(10, ge=1)  # I: feedback rounds evenly spaced over the budget (eSpark paper, Sec. 5.1)
    # candidate runs at a time (each is a world plus its agent processes); 0: as many as this machine allows,
    # one per two cores
    parallel: int = Field(0, ge=0)
    # "llm": LLM_g writes the functions (LLM_c checks them); "files": hand-written functions from function_files,
    # cycled over the K slots (a named deviation for machines without a capable model, like RELED's scripted expert)
    generator: Literal["llm", "files"] = "llm"
    # generator = "files": the exploration functions' Python files
    function_files: list[str] = Field(default_factory=list)
    checker: bool = True  # the "w/o checker" ablation sets false
    # check -> regenerate rounds before the last version is kept (docs/espark.md, E-A5)
    checker_rounds: int = Field(2, ge=1)
    retention: bool = True  # all next candidates start from the best weights (Eq. 3); false: the ablation
    # selection (docs/espark.md, E-A4; the paper, Sec. 4.2: "performance is assessed at regular checkpoints within an
    # iteration, with the final evaluation based on the average of the last few checkpoints"): each copy is validated at
    # `validations` checkpoints spread over its slice, at update boundaries (the released runner: every 500 of 8,000
    # episodes, so 16), each the mean task reward of eval_episodes greedy episodes WITHOUT the mask (fresh training
    # seeds, the same for every copy and checkpoint), the policy that will be deployed; G = the mean of the last last_n
    # checkpoints (the released runner: 5). With eval_episodes = 0, G = the mean of the copy's last_n training episodes
    # (under its mask)
    eval_episodes: int = Field(2, ge=0)
    validations: int = Field(16, ge=1)  # validation checkpoints per copy
    last_n: int = Field(5, ge=1)  # G: the mean of the last this many checkpoints (or training episodes)
    # the reflection's statistics (eSpark paper, Sec. 4.3): from the chosen copy's validation checkpoints ("eval", the
    # released runner) or its training episodes ("train"); early / late means over the first / last feedback_window
    # values (the released runner: 5; 0: the first and second halves)
    feedback_from: Literal["eval", "train"] = "eval"
    feedback_window: int = Field(5, ge=0)  # values in the early and late means (0: the first and second halves)
    empty_row: Literal["agent", "step"] = "agent"  # world.exploration.empty_row of every copy (masker.py)
    reward_factors: bool = True  # the "w/o r factors" ablation keeps only the total reward in the feedback
    compare_ippo: bool = True  # also train IPPO on the same budget and seed, and tabulate the test metrics
    candidate_cpu_s: float = Field(2.0, gt=0)  # sandbox limits per exploration-function call
    candidate_wall_s: float = Field(5.0, gt=0)  # wall-clock limit per exploration-function call, s
    candidate_timeout_s: float = Field(3600.0, gt=0)  # a candidate run that takes longer is stopped and failed
    # the LLM that writes and checks the functions (generator = "llm")
    llm: LLMConfig = Field(default_factory=lambda: LLMConfig(temperature=0.7))

    @property
    def runs_at_a_time(self) -> int:
        return self.parallel or max(1, (os.cpu_count() or 2) // 2)

    @model_validator(mode="after")
    def _check(self):
        if self.generator == "files":
            if not self.function_files:
                raise ValueError("generator 'files' needs function_files (exploration functions to use)")
            missing = [f for f in self.function_files if not Path(f).is_file()]
            if missing:
                raise ValueError(f"function_files not found: {missing}")
        return self
