"""RELED SED prompt templates: d_init (system prompt), the trigger command and d_fb (RELED paper, Secs. III-D,
IV-C; docs/reled.md, RL-9)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# The paper's Appendix A (the real prompt templates) is missing; everything below follows the project's own
# templates (docs/reled.md, RL-9: output contract, feedback rendering). All text is deterministic: same input, same
# string.

T_MAX_S = 2400  # episode length (sim seconds; RELED paper, Sec. IV-A1)
ARRIVAL_BONUS = 240  # 0.1 * T_MAX (RELED paper, Sec. IV-A3)
MAX_JUNCTIONS = 12  # visited-junction entries shown per expert summary (head ... tail)
MAX_INSTRUCTIONS = 8  # instruction texts shown per expert summary
MAX_CAUSE_CHARS = 300  # failure cause text kept per agent (the tail, where a traceback's error is)

INTERFACES = """\
move_to_by_shortest_path(node_id) -> bool: Move to target node via shortest distance path
move_to_by_shortest_time(node_id) -> bool: Move to target node via shortest time path
get_origin() -> int: Return the current agent's origin node ID
get_destination() -> int: Return the current agent's destination node ID
get_shortest_dist(target_node_id) -> float: Calculate shortest path distance to target node
get_shortest_time(target_node_id) -> float: Calculate shortest time to target node
get_nearest_node(x, y) -> int: Find node ID closest to coordinates (x, y)
get_node_coord(node_id) -> tuple[float, float]: Get coordinates of specified node"""

INTERFACE_NAMES = tuple(line.split("(", 1)[0] for line in INTERFACES.splitlines())

CONTRACT = """\
Reply with exactly ONE ```python code block containing the complete code. It must define
    def plan(agent_id: int) -> None
that handles every agent id listed above (branch on agent_id where plans differ). Rules:
- use only the interfaces above (already available, bound to the agent being planned) and `math`
  (`import math` is allowed; import nothing else); no file/network/console I/O, no long loops (each plan(agent_id) call is time-limited);
- plan returns nothing; its move_to_* calls are the agent's instructions and are executed in call order, each
  starting from where the previous one ended; a move_to_* call returns False if the node is unknown or
  unreachable from there;
- the last instruction should reach the agent's destination (a plan that stops short gets a final
  move_to_by_shortest_time(get_destination()) appended and is reported as incomplete).
Example:
```python
def plan(agent_id: int) -> None:
    if agent_id == 3:
        move_to_by_shortest_time(get_nearest_node(1200.0, 640.0))  # waypoint
    move_to_by_shortest_path(get_destination())
```"""

CLOSING_INSTRUCTION = (
    "Revise only the instructions listed above so that other agents' rewards do not drop below "
    "the baseline and your actions stay plausible for the current learned policy; keep all other "
    "plans; return the complete updated Python code in the required format."
)


def _m(v: float) -> int:
    """Integer metres for the compact topology."""
    return int(round(float(v)))


def topology_lines(graph: dict) -> list[str]:
    """One line per junction: `idx (x,y): successor idx ...` (integer metres, successors sorted, deduplicated)."""
    coords = graph["coords"]
    n = len(coords)
    succ: list[set[int]] = [set() for _ in range(n)]
    for e in graph["edges"]:
        a, b = int(e[0]), int(e[1])
        if not (0 <= a < n and 0 <= b < n):
            raise ValueError(f"edge {e!r} refers to a junction outside 0..{n - 1}")
        succ[a].add(b)
    return [f"{i} ({_m(x)},{_m(y)}): {' '.join(map(str, sorted(succ[i]))) or '-'}" for i, (x, y) in enumerate(coords)]


def system_prompt(graph: dict, trips: Sequence[tuple[int, int, int, float]]) -> str:
    """d_init, sent as the system prompt (Sec. IV-C1; Appendix A missing, so this is our template, RL-9).

    graph = {"coords": [[x, y] per junction index], "edges": [[from_idx, to_idx, edge_id, length_m, time_s], ...]};
    node ids in the interfaces are these junction indices. trips: (agent_id, origin, destination, depart_s).
    """
    n = len(graph["coords"])
    for agent, o, d, _ in trips:
        if not (0 <= int(o) < n and 0 <= int(d) < n):
            raise ValueError(f"agent {agent}: origin/destination outside 0..{n - 1}")
    trip_lines = [
        f"agent {int(a)}: origin {int(o)} -> destination {int(d)}, departs at {float(t):g} s"
        for a, o, d, t in sorted(trips, key=lambda r: int(r[0]))
    ]
    parts = [
        "You are the route planner for connected vehicles in a SUMO road network. Each agent is one vehicle "
        "that drives from its origin junction to its destination junction. Write navigation plans that get "
        "every agent to its destination quickly without causing congestion for the others.",
        f"Reward of each agent (per decision step): minus the elapsed seconds plus the metres of progress in "
        f"straight-line distance towards its destination (moving away costs), and +{ARRIVAL_BONUS} on arrival. "
        f"Episodes last up to {T_MAX_S} s.",
        f"Road network: {n} junctions, {len(graph['edges'])} directed roads. Coordinates in metres. "
        "Format: junction (x,y): junctions reachable by one directed road.",
        "\n".join(topology_lines(graph)),
        "Agents:\n" + "\n".join(trip_lines),
        "Navigation interfaces (node ids are the junction numbers above):\n" + INTERFACES,
        CONTRACT,
    ]
    return "\n\n".join(parts) + "\n"


def first_request() -> str:
    """The simple command that triggers generation (first user message after d_init, Sec. IV-C1)."""
    return (
        "Generate the navigation plans for all agents listed in the system prompt, as one ```python block "
        "defining plan(agent_id)."
    )


def repeat_request() -> str:
    """User message of the "w/o Refn." ablation (Sec. V-E; RL-9): a fresh query with d_init only, no feedback.

    Deliberately the same text as first_request(): the ablation re-sends the initial prompt, nothing else, so the
    caller must start a new Conversation (no history) for each such query.
    """
    return first_request()


def _junctions(seq: Sequence[int]) -> str:
    js = [str(int(j)) for j in seq]
    if len(js) > MAX_JUNCTIONS:
        half = MAX_JUNCTIONS // 2
        js = js[:half] + ["..."] + js[-half:]
    return " ".join(js) or "-"


def _instructions(instrs: Sequence[str]) -> str:
    shown = [str(s) for s in instrs[:MAX_INSTRUCTIONS]]
    if len(instrs) > MAX_INSTRUCTIONS:
        shown.append(f"... (+{len(instrs) - MAX_INSTRUCTIONS} more)")
    return "; ".join(shown) or "none"


def summary_line(s: Mapping) -> str:
    """One tau^e summary line: agent, visited junctions (truncated), travel time, return, arrived, instructions."""
    visited = list(s.get("junctions", ()))
    return (
        f"  agent {s['agent']}: junctions {_junctions(visited)} ({len(visited)} visited); "
        f"travel {float(s['travel_time']):.0f} s; return {float(s['ret']):.1f}; "
        f"arrived {'yes' if s['arrived'] else 'no'}; instructions: {_instructions(list(s.get('instructions', ())))}"
    )


def _cause(text: str) -> str:
    one = " ".join(str(text).split())
    return one if len(one) <= MAX_CAUSE_CHARS else "..." + one[-(MAX_CAUSE_CHARS - 3) :]


def feedback_prompt(
    feedback_lines: Sequence[str],
    expert_summaries: Sequence[Mapping],
    failures: Mapping[int, str],
    code: str | None = None,
) -> str:
    """d_fb (Sec. IV-C2; Appendix A missing, so this is our template, RL-9 and RL-10).

    feedback_lines: the RVI/PDI lines already rendered by scenarios.routing.sed.feedback.format_feedback_lines.
    expert_summaries: dicts with agent, junctions, travel_time, ret, arrived, instructions (sorted by agent here).
    failures: agent id -> cause text (traceback, unreachable node, ...), collapsed to one line, tail kept.
    code: the plans the feedback is about, repeated here so that they survive when the context budget drops
    the exchange that held them (the instruction asks for a revision of exactly this code).
    """
    lines = ["Feedback on the previous plans, from the expert rollouts of this round."]
    if code:
        lines += ["The plans were:", "```python", code.strip(), "```"]
    lines += [str(x) for x in feedback_lines]
    lines.append("Expert trajectories (per agent):")
    summaries = sorted(expert_summaries, key=lambda s: s["agent"])
    lines += [summary_line(s) for s in summaries] or ["  none"]
    lines.append("Execution failures (plan code errors, unreachable targets, no arrival):")
    lines += [f"  agent {a}: {_cause(failures[a])}" for a in sorted(failures)] or ["  none"]
    lines.append(CLOSING_INSTRUCTION)
    return "\n".join(lines) + "\n"
