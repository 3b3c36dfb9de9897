"""Exploration-function contract (eSpark paper, App. I; docs/espark.md, E-A6), sandboxed validation on sample
inputs, and the mask fallback."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from scenarios.llm.extract import check_contract
from scenarios.sandbox import PersistentWorker, SandboxLimits

FUNC_NAME = "compute_mask"
MABIM_PARAMS = ("agent_states", "supply_chain", "action_space")
TSC_PARAMS = ("intersections", "action_space")
MABIM_SIGNATURE = "def compute_mask(agent_states: AgentStates, supply_chain: SupplyChain, action_space: list):"
TSC_SIGNATURE = "def compute_mask(intersections: list, action_space: list):"
ENTRY = "_espark_entry"  # the sandbox calls this wrapper, never the candidate directly
MABIM_DATES = ("today", "yesterday", "history", "lookback", "lookback_with_current", "all_dates")
VALIDATION_LIMITS = SandboxLimits(cpu_s=2, wall_s=5, memory_mb=256)

# Code placed BEFORE the candidate in the sandbox: numpy, the typed input classes (so the signature's annotations
# resolve) and the plain-data -> object adapter: a real module, read as text.
_MABIM_PRELUDE = (Path(__file__).parent / "mabim_prelude.py").read_text()

_TSC_PRELUDE = """\
import numpy as np


def _espark_wrap(args):
    return list(args[0]), list(args[1])
"""

_ENTRY = f"""

def {ENTRY}(*args):
    out = {FUNC_NAME}(*_espark_wrap(args))
    comps = {{}}
    if isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], dict):
        out, comps = out
    comps = {{str(k): v for k, v in comps.items() if isinstance(v, np.ndarray) and not v.dtype.hasobject}}
    if isinstance(out, (list, tuple)):
        try:
            out = np.asarray(out)
        except Exception:
            pass
    return {{"mask": out, "components": comps}}
"""


@dataclass(frozen=True)
class Contract:
    """What the LLM must define and how sample inputs map to the expected mask shape."""

    name: str
    params: tuple[str, ...]
    signature: str
    prelude: str

    def expected_shape(self, args: tuple, n_actions: int) -> tuple[int, ...]:
        if self.name == "mabim":  # (warehouses, skus, actions), eSpark paper App. I
            return (len(args[0]["warehouses"]), len(args[0]["skus"]), n_actions)
        return (len(args[0]), n_actions)  # (intersections, phases), docs/espark.md, E-A6

    def source(self, code: str) -> str:
        return f"{self.prelude}\n# ---- candidate ----\n{code}\n{_ENTRY}"


MABIM = Contract("mabim", MABIM_PARAMS, MABIM_SIGNATURE, _MABIM_PRELUDE)
TSC = Contract("tsc", TSC_PARAMS, TSC_SIGNATURE, _TSC_PRELUDE)


@dataclass
class Validation:
    """Accepted, or rejected with `cause` (a contract check, a sandbox error, or an output check) and a message.

    Output causes: "bad_return" (not an array), "bad_shape", "bad_dtype" (not bool/int/float), "non_binary"
    (values other than 0/1, NaN included). A mask that removes every action of an agent is NOT a rejection
    (eSpark paper, Sec. 3.1: ignored at use time); it is counted in `all_masked_agents`.
    """

    accepted: bool
    cause: str | None = None
    message: str = ""
    sample: int | None = None  # index of the sample input that failed
    pruned_fraction: float = 0.0  # mean fraction of actions masked over the samples (accepted only)
    all_masked_agents: int = 0  # agent rows with every action masked, summed over the samples
    components: list[str] = field(default_factory=list)  # names of the returned component masks
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def feedback(self) -> str:
        """Text for the next prompt ("" when accepted)."""
        if self.accepted:
            return ""
        where = f" on sample input {self.sample}" if self.sample is not None else ""
        return f"The exploration function was rejected ({self.cause}){where}: {self.message}"


def check_output(value, shape: tuple[int, ...]) -> tuple[str | None, str]:
    """(cause, message) for a bad mask, (None, "") for a good one."""
    if not isinstance(value, np.ndarray):
        return "bad_return", f"expected a numpy array (or (total_mask, dict)), got {type(value).__name__}"
    if value.shape != tuple(shape):
        return "bad_shape", f"expected shape {tuple(shape)}, got {value.shape}"
    numeric = np.issubdtype(value.dtype, np.integer) or np.issubdtype(value.dtype, np.floating)
    if value.dtype != bool and not numeric:
        return "bad_dtype", f"expected a bool, integer or float array, got dtype {value.dtype}"
    if not np.all((value == 0) | (value == 1)):
        return "non_binary", "the total mask may only contain 0 and 1 (NaN and other values found)"
    return None, ""


def validate_candidate(
    code: str | None,
    sample_inputs: list[tuple],
    n_actions: int,
    limits: SandboxLimits | None = None,
    contract: Contract = MABIM,
) -> Validation:
    """Contract check (ast), then one sandbox worker calls the function on every sample input and checks the mask."""
    verdict = check_contract(code or "", FUNC_NAME, list(contract.params))
    if not verdict.ok:
        return Validation(False, verdict.check, verdict.message)
    pruned, all_masked, names, seconds = [], 0, set(), 0.0
    with PersistentWorker(contract.source(code), ENTRY, limits or VALIDATION_LIMITS) as worker:
        if not worker.load_result.ok:
            r = worker.load_result
            return Validation(False, r.error, r.message, seconds=r.seconds)
        for i, args in enumerate(sample_inputs):
            r = worker.call(*args)
            seconds += r.seconds
            if not r.ok:
                return Validation(False, r.error, r.message, sample=i, seconds=seconds)
            mask = r.value["mask"]
            cause, msg = check_output(mask, contract.expected_shape(tuple(args), n_actions))
            if cause:
                return Validation(False, cause, msg, sample=i, seconds=seconds)
            allowed = mask.astype(bool)
            pruned.append(1.0 - float(allowed.mean()))
            all_masked += int((~allowed.any(axis=-1)).sum())
            names.update(r.value["components"])
    return Validation(
        True,
        pruned_fraction=float(np.mean(pruned)) if pruned else 0.0,
        all_masked_agents=all_masked,
        components=sorted(names),
        seconds=seconds,
    )


def apply_mask(mask, n_actions: int, avail=None, per: str = "agent") -> tuple[np.ndarray, int]:
    """Allowed actions = mask AND avail, with the fallback of pi_E (eSpark paper, Sec. 3.1); returns (allowed bool
    (..., n_actions), count).

    per="agent": every agent row whose actions are all removed falls back to `avail` (all True when None); count =
    such rows. per="step" (the public code): if any row is all removed, the whole mask is skipped; count = 1 or 0.
    mask None means no pruning.
    """
    base = (
        np.ones(np.shape(mask) if mask is not None else (n_actions,), bool)
        if avail is None
        else np.asarray(avail, dtype=bool)
    )
    if base.shape[-1] != n_actions:
        raise ValueError(f"availability has {base.shape[-1]} actions, expected {n_actions}")
    if mask is None:
        return base.copy(), 0
    m = np.asarray(mask)
    if m.shape[-1] != n_actions:
        raise ValueError(f"mask has {m.shape[-1]} actions, expected {n_actions}")
    allowed = base & m.astype(bool)
    empty = ~allowed.any(axis=-1)
    if per == "step":
        return (base.copy(), 1) if empty.any() else (allowed, 0)
    if per != "agent":
        raise ValueError("per must be 'agent' or 'step'")
    allowed[empty] = np.broadcast_to(base, allowed.shape)[empty]
    return allowed, int(empty.sum())


def mabim_sample_inputs(
    n_warehouses: int,
    n_skus: int,
    action_space,
    *,
    days: int = 30,
    lookback: int = 21,
    capacity: int | None = None,
    current_step: int = 0,
    durations: int = 100,
    seed: int = 0,
) -> tuple[dict, dict, list]:
    """One synthetic (agent_states, supply_chain, action_space) payload for smoke tests before training starts."""
    rng = np.random.default_rng(seed)
    wh = [f"store{i + 1}" for i in range(n_warehouses)]
    shape = (n_warehouses, days, n_skus)
    demand = rng.poisson(rng.uniform(2, 20, n_skus), shape).astype(float)
    price = np.broadcast_to(rng.uniform(10, 60, n_skus), shape).copy()
    const = lambda v: np.full(shape, float(v))  # noqa: E731
    ints = lambda hi: rng.integers(0, hi, shape).astype(float)  # noqa: E731
    states = {
        "demand": demand,
        "sale": np.minimum(demand, 10.0),
        "in_stock": ints(60),
        "in_transit": ints(30),
        "replenish": ints(30),
        "arrived": const(0),
        "accepted": const(0),
        "excess": const(0),
        "selling_price": price,
        "procurement_cost": price / 1.3,
        "vlt": np.broadcast_to(rng.integers(1, 8, n_skus), shape).astype(float),
        "volume": const(1),
        "unit_order_cost": const(10),
        "basic_holding_cost": const(0.001),
        "overflow_cost_ratio": const(0.5),
        "backlog_ratio": const(0.1),
    }
    cap = capacity if capacity is not None else n_skus * 100
    chain = {
        "warehouses": wh,
        "capacity": {w: cap for w in wh},
        "unit_storage_cost": {w: 0.002 for w in wh},
        "upstream": {w: (wh[i + 1] if i + 1 < len(wh) else "super_vendor") for i, w in enumerate(wh)},
        "downstream": {w: (wh[i - 1] if i > 0 else "consumer") for i, w in enumerate(wh)},
    }
    agents = {
        "warehouses": wh,
        "skus": [f"SKU{j}" for j in range(n_skus)],
        "current_step": current_step,
        "durations": durations,
        "lookback": lookback,
        "states": states,
    }
    return agents, chain, [float(a) for a in action_space]
