"""Training-time action masks on the world side: an exploration function in a persistent sandbox worker, or random
pruning."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from scenarios.sandbox import PersistentWorker, SandboxLimits

from .candidates import ENTRY, Contract, apply_mask, check_output

log = logging.getLogger("coordinator.espark")


class ExplorationSpec(BaseModel):
    """[world.exploration]: which mask guides training. "none": plain IPPO; "function": an exploration function
    (code_file, run in a sandbox worker every decision); "random": random pruning (eSpark paper, App. D.3.1;
    keep_fraction kept)."""

    model_config = ConfigDict(extra="forbid")
    # the training-time mask: none, an exploration function (code_file) or random pruning (keep_fraction)
    kind: Literal["none", "function", "random"] = "none"
    code_file: str | None = None  # kind = "function": the exploration function's Python source
    # kind = "random": share of each agent's available actions kept at each decision (at least one)
    keep_fraction: float = Field(0.7, ge=0, le=1)
    cpu_s: float = Field(2.0, gt=0)  # per call, inside the sandbox worker
    wall_s: float = Field(5.0, gt=0)  # wall-clock limit per call, s
    # a diagnostic only (docs/espark.md, E-A7): mask the test episodes too; eSpark deploys unmasked
    at_test: bool = False
    # a decision where the function removes every action of some agent: "agent" (pi_E, eSpark paper Sec. 3.1):
    # that agent falls back to its available actions; "step" (the released runner): the whole mask is skipped
    empty_row: Literal["agent", "step"] = "agent"

    @model_validator(mode="after")
    def _check(self):
        if self.kind == "function" and not self.code_file:
            raise ValueError("exploration.kind = 'function' needs code_file (the exploration function's source)")
        if self.kind == "function" and not Path(self.code_file).is_file():
            raise ValueError(f"exploration.code_file {self.code_file!r} does not exist")
        return self


class TrainingMasks:
    """allowed(state, avail) -> the training mask (avail AND the guide's mask; an agent left with nothing keeps
    avail). It never raises: a function that fails at run time is switched off for the rest of the run and the
    failure is kept in stats() (the eSpark loop then scores the candidate as failed)."""

    def __init__(self, spec: ExplorationSpec, contract: Contract, seed: int = 0):
        self.spec, self.contract = spec, contract
        self.rng = np.random.default_rng([seed, 7])
        self.worker: PersistentWorker | None = None
        self.calls = self.all_masked = 0
        self.pruned: list[float] = []
        self.error: dict | None = None  # the first run-time failure: cause, message, call number
        if spec.kind == "function":
            code = Path(spec.code_file).read_text()
            self.worker = PersistentWorker(
                contract.source(code), ENTRY, SandboxLimits(cpu_s=spec.cpu_s, wall_s=spec.wall_s)
            )
            if not self.worker.load_result.ok:
                r = self.worker.load_result
                self.fail(r.error or "load", r.message)

    @property
    def active(self) -> bool:
        return self.spec.kind == "random" or (self.worker is not None and self.error is None)

    def fail(self, cause: str, message: str) -> None:
        self.error = {"cause": cause, "message": message[:2000], "call": self.calls}
        log.warning("exploration function switched off after call %d (%s): %s", self.calls, cause, message[:300])
        if self.worker is not None:
            self.worker.close()

    def allowed(self, state: Callable[[], tuple], avail: np.ndarray) -> np.ndarray:
        """Bool (..., n_actions) like avail. state() builds the contract's inputs (plain data) for this decision;
        it is called only when a function needs them."""
        avail = np.asarray(avail, dtype=bool)
        if not self.active:
            return avail.copy()
        self.calls += 1
        if self.spec.kind == "random":
            mask = random_pruning_mask(self.rng, avail.shape[-1], self.spec.keep_fraction, avail.shape[:-1], avail)
        else:
            r = self.worker.call(*state())
            if not r.ok:
                self.fail(r.error or "exception", r.message)
                return avail.copy()
            mask = r.value["mask"]
            cause, message = check_output(mask, avail.shape)
            if cause:
                self.fail(cause, message)
                return avail.copy()
        allowed, empty = apply_mask(mask, avail.shape[-1], avail, per=self.spec.empty_row)
        self.all_masked += empty
        self.pruned.append(1.0 - float(allowed.sum()) / max(float(avail.sum()), 1.0))
        return allowed

    def stats(self) -> dict:
        """For summary.json: calls, the mean fraction of available actions pruned, all-masked agents (empty_row
        "agent") or whole masks (empty_row "step") ignored, error."""
        return {
            "kind": self.spec.kind,
            "calls": self.calls,
            "all_masked_ignored": self.all_masked,
            "pruned_fraction": float(np.mean(self.pruned)) if self.pruned else 0.0,
            "error": self.error,
        }

    def close(self) -> None:
        if self.worker is not None:
            self.worker.close()


def random_pruning_mask(
    rng: np.random.Generator, n_actions: int, keep_fraction: float = 0.7, shape: tuple[int, ...] = (), avail=None
) -> np.ndarray:
    """Random-pruning baseline (eSpark paper, App. D.3.1: p = 0.3 masked): per agent keep round(keep_fraction * n)
    of the available actions (at least one), chosen uniformly without replacement; call it at every decision. Bool
    (*shape, n)."""
    if not 0.0 <= keep_fraction <= 1.0:
        raise ValueError("keep_fraction must be in [0, 1]")
    base = (
        np.ones((*shape, n_actions), bool)
        if avail is None
        else np.broadcast_to(np.asarray(avail, bool), (*shape, n_actions))
    )
    keys = np.where(base, rng.random(base.shape), np.inf)  # unavailable actions sort last
    n_avail = base.sum(-1, keepdims=True)
    n_keep = np.minimum(np.maximum(np.round(keep_fraction * n_avail), 1), n_avail)
    ranks = np.argsort(np.argsort(keys, axis=-1), axis=-1)
    return (ranks < n_keep) & base
