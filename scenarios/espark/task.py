"""What the eSpark loop needs from a world kind (eSpark paper, Sec. 4, App. I): the exploration function's contract,
the prompt slots describing the task (Fig. 10/11, the code tips of Fig. 16), sample inputs for the sandbox check and
the metrics; each kind that supports eSpark declares its Task in its own folder (`espark_task.py`) and names it in its
WorldKind (scenarios/kinds.py)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from .candidates import MABIM_SIGNATURE, TSC_SIGNATURE, Contract


@dataclass(frozen=True)
class EnvDescription:
    """The slots of Fig. 10/11 plus the domain words, the signature string and the code tips (Fig. 16)."""

    domain: str  # "inventory management" | "traffic signal control"
    signature: str  # {task_exploration_signature_string}
    task_introduction: str
    transition_definition: str  # the "RL formulation": environment source code or a python-style description
    state_definition: str
    reward_definition: str
    code_output_tip: str


MABIM_CODE_TIP = """\
The output of the exploration function should be a total mask (1 denote action is not masked and 0 otherwise). \
The code output should be formatted as a python code string: "```python ... ```".
Some helpful tips for writing the exploration function code:
(1) Your total mask and its component should be a 3-D numpy array in [warehouse_name, sku_type, action_mask]. \
The masks of the actions that are available are set to 1, otherwise 0. No other elements are allowed to appear in \
total mask.
(2) If you choose to transform a component mask, then you must also introduce a temperature parameter inside the \
transformation function; this parameter must be a named variable in the mask function and it must not be an input \
variable. Each transformed mask component should have its own temperature variable
(3) Make sure the type of each input variable is correctly specified; For example, a float input variable should \
not be specified as torch.Tensor
(4) Most importantly, the exploration code's can only use variables defined in its arguments. Under no \
circumstance can you introduce new input variables. You only need to give the definition of exploration function \
and no other function or class should be defined.
Return `total_mask, {}` (the dict may hold the named component masks)."""

TSC_CODE_TIP = MABIM_CODE_TIP.replace(
    "a 3-D numpy array in [warehouse_name, sku_type, action_mask]",
    "a 2-D numpy array in [intersection_index, phase_mask] (phase order as in action_space)",
).replace(
    "total mask.\n(2)",
    "total mask. Phases that do not exist at an intersection are always masked by the "
    "environment, you do not need to handle them.\n(2)",
)


def mabim_env(
    task_introduction: str, transition_definition: str, state_definition: str, reward_definition: str
) -> EnvDescription:
    return EnvDescription(
        "inventory management",
        MABIM_SIGNATURE,
        task_introduction,
        transition_definition,
        state_definition,
        reward_definition,
        MABIM_CODE_TIP,
    )


def tsc_env(
    task_introduction: str, transition_definition: str, state_definition: str, reward_definition: str
) -> EnvDescription:
    return EnvDescription(
        "traffic signal control",
        TSC_SIGNATURE,
        task_introduction,
        transition_definition,
        state_definition,
        reward_definition,
        TSC_CODE_TIP,
    )


@dataclass(frozen=True)
class Task:
    """One world kind as the loop sees it."""

    kind: str  # the world kind
    contract: Contract
    n_actions: int
    episode_kind: str  # the metrics record of one episode
    unit: str  # what each feedback value is an array over (Fig. 18)
    test_metrics: tuple[tuple[str, bool], ...]  # (summary result, lower is better) for the test table
    describe: Callable[[object], EnvDescription]  # world config -> the prompt slots
    sample_inputs: Callable[[object, int], list[tuple]]  # (world config, seed) -> inputs for the sandbox check
