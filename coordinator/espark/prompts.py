"""eSpark prompt texts (eSpark paper, Sec. 4.3, App. I): generator, checker, their hand-offs, and the
reflection/policy feedback."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from scenarios.espark.task import EnvDescription

PASS_PREFIX = "Code passes check."
FAIL_PREFIX = "Code fails to pass check."
STAT_LABELS = (
    ("max", "Max"),
    ("min", "Min"),
    ("early_mean", "Mean in the early training stage"),
    ("late_mean", "Mean in the late training stage"),
    ("mean", "Mean in all the training stage"),
)


def generator_system(env: EnvDescription) -> str:
    """System prompt of LLM_g (Fig. 9)."""
    return (
        f"You are an expert in both {env.domain} learning and reinforcement learning. You are trying to write "
        "some exploration functions, which helps mask some actions that are logically unlikely to be selected, "
        "to help exploration in reinforcement learning tasks as effective as possible. Your goal is to write a "
        "exploration function for the agent that will mask the actions that's almost impossible to be chosen in "
        "the task described in text.\n"
        f"The exploration function signature can be: {env.signature}\n"
        "Your exploration function should only use the variables from the argument list. Please just give only "
        "the exploration function and don't put it in a class. Please make sure that the code is compatible "
        "with numpy (e.g., use numpy array instead of torch tensor)."
    )


def _slots(env: EnvDescription) -> str:
    return (
        f"{env.task_introduction}\n"
        f"The definition of environment and transition are: {env.transition_definition}\n"
        f"The agent and state definition is: {env.state_definition}\n"
        f"The reward definition is: {env.reward_definition}\n"
        f"The requirements of code: {env.code_output_tip}"
    )


def generator_user(env: EnvDescription) -> str:
    """Initial user prompt of LLM_g (Fig. 10, reconstructed on the Fig. 11 template)."""
    return "Write a exploration function for the following task: " + _slots(env)


CHECKER_OUTPUT_TIP = f"""\
Your output should contain two parts: (1) Your response must begin with either "{PASS_PREFIX}" or "{FAIL_PREFIX}". \
"{PASS_PREFIX}" means you believe that there are no logical errors in the code and the variables are taken in \
accordance with the description of the task. "{FAIL_PREFIX}" indicates the provided exploration function contains \
logical errors, or you think the code is obviously flawed and you can point out how to facilitate more effective \
exploration. (2) If you begin with "{FAIL_PREFIX}", you have to explain why the code fails to pass the check and \
give your advice on fixing the problems; If you begin with "{PASS_PREFIX}", you also have to state why each part is \
logical and reasonable.
Some common logical errors include: (1) Misunderstanding the meaning of the state items, or including syntax errors \
when using variables (2) Illogically handling the state items (3) Using multiple unrelated state items to calculate \
mask component (4) The way of combining mask components into total mask is unreasonable"""


def checker_system(env: EnvDescription) -> str:
    """System prompt of LLM_c (Fig. 8) followed by its output format (Fig. 17)."""
    return (
        f"You are an expert in both {env.domain} learning and reinforcement learning. You will get some "
        "exploration functions. Your goal is to evaluate whether the given exploration function matches the "
        "task description and whether it contains any illogical errors in the code content, and evaluate "
        "whether it's possible to avoid some unreasonable actions, to help the exploration of reinforcement "
        "learning. You need to pay special attention to the meaning of each state item and the logic of the "
        "task, making sure to detect (1) all incorrect use of variables in code (2) all the parts that don't "
        "follow logic.\n"
        f"The exploration function signature can be: {env.signature}\n"
        "Your advice can be text or snippets of code, but it should not be the full exploration function code. "
        f'Most importantly, remember that your response must begin with either "{PASS_PREFIX}" or '
        f'"{FAIL_PREFIX}" Under no circumstance can you begin your answer with other content.\n' + CHECKER_OUTPUT_TIP
    )


def checker_user(env: EnvDescription) -> str:
    """Initial user prompt of LLM_c (Fig. 11)."""
    return "Please carefully check the exploration function for the following task: " + _slots(env)


def checker_review(gpt_response: str) -> str:
    """Passes the generator's reply to the checker (Fig. 12)."""
    return (
        f"Here is the latest exploration function and it's description: {gpt_response}\n"
        "Please carefully review this code, check whether it matches the task description and whether it "
        "contains any illogical errors in the code content, and evaluate whether it's possible to improve the "
        "exploration and the performance."
    )


def checker_feedback(checker_reply: str) -> str:
    """Passes a failed verdict back to the generator (Fig. 13)."""
    return (
        "We discuss this code with experts, and the code is not approved by experts, and the comments of "
        f"experts on this code are as follows: {checker_reply}\n"
        "Please refer to expert advice and combine your own knowledge, fix the problems and provide a new, "
        "improved exploration function!"
    )


def parse_verdict(reply: str | None) -> bool | None:
    """True/False from the exact required prefixes (leading whitespace ignored), None when neither
    (docs/espark.md, E-A5)."""
    text = (reply or "").lstrip()
    if text.startswith(PASS_PREFIX):
        return True
    if text.startswith(FAIL_PREFIX):
        return False
    return None


REFLECTION_TIPS = """\
Please carefully analyze the policy feedback and provide a new, improved exploration function that can better \
solve the task. Some helpful tips for analyzing the policy feedback:
(1) You can start with "let's think step by step", and then look at each reward individually and think about how \
can you improve it.
(2) If the total reward maintains in the same level or even reduce, then you must rewrite the entire exploration \
function
(3) If the values for a certain reward component are near identical throughout, then this means RL is not able to \
optimize this component as it is written. You may consider:
  (a) Changing the temperature scale or value of the related mask component so that more action can be explored
  (b) Re-writing the related mask component
  (c) Discarding the mask component or add a new mask component"""


def _fmt(value) -> str:
    """A value as the paper prints it: a bracketed list (one entry per warehouse; a scalar becomes one entry)."""
    vals = np.atleast_1d(np.asarray(value, dtype=float))
    return "[" + ", ".join(f"{v:.10g}" for v in vals) + "]"


def feedback_lines(stats: Mapping[str, Mapping[str, object]]) -> list[str]:
    """One Fig. 5 line per metric, in the mapping's order."""
    return [
        f"metric_name: {name}, " + ", ".join(f"{label}: {_fmt(s[key])}" for key, label in STAT_LABELS)
        for name, s in stats.items()
    ]


def policy_feedback(
    stats: Mapping[str, Mapping[str, object]],
    epoch_freq: int | str,
    unit: str = "n_warehouse",
    reward_key: str = "reward",
    factors: bool = True,
) -> str:
    """Fig. 18 header and the statistics table; factors=False is the "w/o r factors" ablation (total reward only)."""
    if not factors:
        stats = {k: v for k, v in stats.items() if k == reward_key}
    return (
        "We trained a RL policy using the provided exploration function code and tracked the values of the "
        "individual components of the reward function as well as global policy metrics. We also compute the "
        "maximum, mean in the early training stage, mean in the late training stage, mean in all the training "
        f"stage, minimum values for reward and its components after every {epoch_freq} epochs. Each element is "
        f"a one-dimensional array of length {unit}, representing the value of that component on different "
        f"{'warehouses' if unit == 'n_warehouse' else 'entities'}:\n" + "\n".join(feedback_lines(stats))
    )


def reflection(
    best_code: str,
    stats: Mapping[str, Mapping[str, object]],
    epoch_freq: int | str,
    unit: str = "n_warehouse",
    reward_key: str = "reward",
    factors: bool = True,
) -> str:
    """The user message after E_best (Eq. 4): the chosen function's code, its policy feedback, then the tips."""
    return (
        "The exploration function used in the last iteration, selected as the best candidate, was:\n"
        f"```python\n{best_code.strip()}\n```\n"
        + policy_feedback(stats, epoch_freq, unit, reward_key, factors)
        + "\n"
        + REFLECTION_TIPS
    )
