"""Run the LLM's plan(agent_id) code in the sandbox and turn it into validated per-agent instruction lists
(RELED paper, Sec. IV-C; docs/reled.md, RL-10)."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from scenarios.llm.extract import check_contract
from scenarios.routing.sed.navigation import MODES, SANDBOX_PRELUDE
from scenarios.sandbox.limits import SandboxLimits
from scenarios.sandbox.runner import PersistentWorker, Result

PLAN_FUNC = "plan"
PLAN_PARAMS = ["agent_id"]
ENTRY = "run_plan"
PRELUDE_MODULES = ("math", "heapq")
NODE_CAUSES = ("missing_node", "unreachable_node", "no_instructions")
_PRELUDE = SANDBOX_PRELUDE.rstrip("\n") + "\n\n\n"
_OFFSET = _PRELUDE.count("\n")  # combined-source line = plan-code line + _OFFSET
_TB_LINE = re.compile(r'File "<sandbox>", line (\d+)')


@dataclass(frozen=True)
class Instruction:
    """One instruction e_k^i: move_to_by_<kind>(node), kind in MODES, node a junction index."""

    kind: str
    node: int

    def text(self) -> str:
        return f"move_to_by_{self.kind}({self.node})"


@dataclass
class PlanOutcome:
    """What one agent's plan produced.

    instructions: the valid instructions in call order, plus the implicit final
    move_to_by_shortest_time(destination) when incomplete; empty when the code failed (contract, sandbox error).
    ok: the code ran, issued at least one instruction and every move_to_* target exists and is reachable.
    cause: None when ok, else a contract check ("no_code", "syntax", "missing_function", "signature"), a sandbox
    error (scenarios.sandbox.runner.ERRORS: "exception", "timeout", "forbidden_import", ...) or one of
    NODE_CAUSES. incomplete: the plan stopped short of the destination (docs/reled.md, RL-10).
    """

    agent: int
    instructions: list[Instruction]
    ok: bool
    cause: str | None = None
    message: str = ""
    incomplete: bool = False
    traceback: str = field(default="", repr=False)


def scripted_plan_code(mode: str = "shortest_time") -> str:
    """The scripted reference expert (no LLM): every agent goes straight to its destination by `mode`."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return f"def plan(agent_id: int) -> None:\n    move_to_by_{mode}(get_destination())\n"


def _strip_future(code: str) -> str:
    """Blank out top-level `from __future__ import ...` lines: they must open a module, and the prelude comes first."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return code
    lines = code.splitlines(True)
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "__future__":
            for i in range(node.lineno - 1, (node.end_lineno or node.lineno)):
                lines[i] = "\n"
    return "".join(lines)


def _user_line(traceback: str) -> int | None:
    """The innermost traceback line that lies in the plan code, as a plan-code line number."""
    lines = [int(m) - _OFFSET for m in _TB_LINE.findall(traceback or "") if int(m) > _OFFSET]
    return lines[-1] if lines else None


def _failure_message(res: Result) -> str:
    msg = res.message or res.error or "failed"
    line = _user_line(res.traceback)
    return f"{msg} (line {line} of the plan code)" if line is not None else msg


def _with_prelude_modules(limits: SandboxLimits | None) -> SandboxLimits:
    limits = limits or SandboxLimits()
    missing = tuple(m for m in PRELUDE_MODULES if m not in limits.allowed_modules)
    return limits.model_copy(update={"allowed_modules": limits.allowed_modules + missing}) if missing else limits


def _reach(graph: dict) -> tuple[int, list[list[int]]]:
    n = len(graph["coords"])
    adj: list[list[int]] = [[] for _ in range(n)]
    for e in graph["edges"]:
        adj[int(e[0])].append(int(e[1]))
    return n, adj


def _reachable(adj: list[list[int]], src: int, dst: int) -> bool:
    if src == dst:
        return True
    seen, stack = {src}, [src]
    while stack:
        for v in adj[stack.pop()]:
            if v == dst:
                return True
            if v not in seen:
                seen.add(v)
                stack.append(v)
    return False


def _as_node(value, n: int) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        k = int(value)
    except (OverflowError, ValueError):
        return None
    return k if k == value and 0 <= k < n else None


def _validate(agent: int, value, origin: int, destination: int, n: int, adj: list[list[int]]) -> PlanOutcome:
    """Host-side check of the recorded instructions (the sandbox's own ok flags are not trusted)."""
    raw = value.get("instructions") if isinstance(value, dict) else None
    if not isinstance(raw, list) or not all(isinstance(r, (list, tuple)) and len(r) >= 2 for r in raw):
        return PlanOutcome(agent, [], False, "bad_output", f"malformed plan result: {str(value)[:200]}")
    kept: list[Instruction] = []
    problems: list[str] = []
    cause = None
    pos = origin
    for r in raw:
        kind, node = r[0], r[1]
        shown = f"move_to_by_{kind}({node!r})"
        if kind not in MODES:
            return PlanOutcome(agent, [], False, "bad_output", f"unknown instruction kind {kind!r}")
        k = _as_node(node, n)
        if k is None:
            cause = cause or "missing_node"
            problems.append(f"{shown} returned False: node {node!r} does not exist (node IDs are 0..{n - 1})")
        elif not _reachable(adj, pos, k):
            cause = cause or "unreachable_node"
            problems.append(f"{shown} returned False: node {k} is not reachable from node {pos}")
        else:
            kept.append(Instruction(kind, k))
            pos = k
    if not raw:
        cause = "no_instructions"
        problems.append(f"plan({agent}) issued no move_to_* instruction")
    incomplete = not kept or kept[-1].node != destination
    if incomplete:
        kept.append(Instruction("shortest_time", destination))
        problems.append(
            f"plan({agent}) stops short of destination {destination}: "
            f"appended move_to_by_shortest_time({destination}) (incomplete)"
        )
    return PlanOutcome(agent, kept, cause is None, cause, "; ".join(problems), incomplete)


def execute_plans(
    code: str | None, trips: Mapping[int, tuple[int, int]], graph: dict, limits: SandboxLimits | None = None
) -> dict[int, PlanOutcome]:
    """Run plan(agent_id) for every agent in trips (agent -> (origin junction, destination junction)).

    The code is contract-checked (ast only), loaded once after SANDBOX_PRELUDE into a PersistentWorker and
    called once per agent with a fresh instruction state; a timeout or exception in one agent's plan is that
    agent's outcome and the others still run. Never raises on bad code; the worker is always closed.
    Raises ValueError only for trips outside the graph.
    """
    n, adj = _reach(graph)
    trips = {int(a): (int(o), int(d)) for a, (o, d) in trips.items()}
    for a, (o, d) in trips.items():
        if not (0 <= o < n and 0 <= d < n):
            raise ValueError(f"agent {a}: origin {o} / destination {d} outside 0..{n - 1}")
    contract = check_contract(code, PLAN_FUNC, PLAN_PARAMS)
    if not contract.ok:
        return {a: PlanOutcome(a, [], False, contract.check, contract.message) for a in sorted(trips)}
    worker = None
    try:
        worker = PersistentWorker(_PRELUDE + _strip_future(code), ENTRY, _with_prelude_modules(limits))
        out: dict[int, PlanOutcome] = {}
        for a in sorted(trips):
            o, d = trips[a]
            res = worker.call(graph, a, o, d)
            if res.ok:
                out[a] = _validate(a, res.value, o, d, n, adj)
            else:
                out[a] = PlanOutcome(
                    a, [], False, res.error or "crashed", _failure_message(res), traceback=res.traceback
                )
        return out
    finally:
        if worker is not None:
            worker.close()
