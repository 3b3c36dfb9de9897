"""SED prompt templates: d_init content and size, the trigger commands and the d_fb feedback prompt."""

from __future__ import annotations

import math

import pytest

from scenarios.llm.conversation import approx_tokens
from scenarios.llm.extract import check_contract, extract_code
from scenarios.routing.sed import prompts
from scenarios.routing.sed.feedback import PDIPair, RVIPair, format_feedback_lines
from scenarios.routing.sed.prompts import (
    CLOSING_INSTRUCTION,
    INTERFACE_NAMES,
    INTERFACES,
    feedback_prompt,
    first_request,
    repeat_request,
    system_prompt,
)

# 4 junctions: a square with a diagonal, one one-way road.
TINY = {
    "coords": [[0.0, 0.0], [100.4, 0.0], [100.0, 99.6], [0.0, 100.0]],
    "edges": [
        [0, 1, "e01", 100.0, 7.2],
        [1, 0, "e10", 100.0, 7.2],
        [1, 2, "e12", 100.0, 7.2],
        [2, 3, "e23", 100.0, 7.2],
        [3, 0, "e30", 100.0, 7.2],
        [0, 2, "e02", 141.4, 10.2],
        [0, 2, "e02b", 141.4, 12.0],
    ],
}
TINY_TRIPS = [(1, 3, 1, 12.5), (0, 0, 2, 0.0)]


def grid_graph(cols: int = 15, rows: int = 11, spacing: float = 100.0, drop: int = 40) -> dict:
    """cols x rows junctions (165, coords 0..1400 m x 0..1000 m), two-way roads, `drop` road pairs removed."""
    coords = [[c * spacing + 0.37, r * spacing - 0.21] for r in range(rows) for c in range(cols)]
    pairs = []
    for r in range(rows):
        for c in range(cols):
            i = r * cols + c
            if c + 1 < cols:
                pairs.append((i, i + 1))
            if r + 1 < rows:
                pairs.append((i, i + cols))
    pairs = [p for k, p in enumerate(pairs) if k % 7 != 3 or k // 7 >= drop]  # deterministic removal
    edges = []
    for a, b in pairs:
        length = math.dist(coords[a], coords[b])
        edges += [[a, b, f"{a}_{b}", length, length / 13.9], [b, a, f"{b}_{a}", length, length / 13.9]]
    return {"coords": coords, "edges": edges}


def ten_trips(n_nodes: int) -> list[tuple[int, int, int, float]]:
    return [(i, (17 * i + 3) % n_nodes, (31 * i + 150) % n_nodes, 10.0 * i) for i in range(10)]


def test_interfaces_table():
    assert INTERFACE_NAMES == (
        "move_to_by_shortest_path",
        "move_to_by_shortest_time",
        "get_origin",
        "get_destination",
        "get_shortest_dist",
        "get_shortest_time",
        "get_nearest_node",
        "get_node_coord",
    )
    assert "get_node_coord(node_id) -> tuple[float, float]" in INTERFACES
    assert len(INTERFACES.splitlines()) == 8


def test_system_prompt_tiny_graph():
    text = system_prompt(TINY, TINY_TRIPS)
    for line in ["0 (0,0): 1 2", "1 (100,0): 0 2", "2 (100,100): 3", "3 (0,100): 0"]:
        assert line in text.splitlines()
    assert "agent 0: origin 0 -> destination 2, departs at 0 s" in text
    assert "agent 1: origin 3 -> destination 1, departs at 12.5 s" in text
    assert text.index("agent 0:") < text.index("agent 1:")
    for name in INTERFACE_NAMES:
        assert f"{name}(" in text
    assert INTERFACES in text
    # reward and contract
    assert "+240 on arrival" in text and "2400 s" in text and "minus the elapsed seconds" in text
    assert "ONE ```python code block" in text and "def plan(agent_id: int) -> None" in text
    assert "`import math` is allowed; import nothing else" in text and "executed in call order" in text
    assert "destination" in text and "handles every agent id" in text
    assert "4 junctions, 7 directed roads" in text


def test_system_prompt_deterministic():
    a = system_prompt(TINY, TINY_TRIPS)
    assert a == system_prompt(TINY, list(reversed(TINY_TRIPS))) == system_prompt(dict(TINY), TINY_TRIPS)
    assert feedback_prompt(["x"], [], {2: "boom", 1: "bang"}) == feedback_prompt(["x"], [], {1: "bang", 2: "boom"})


def test_system_prompt_example_fits_contract():
    # the example in the contract is what extract_code/check_contract accept
    code = extract_code(system_prompt(TINY, TINY_TRIPS))
    assert code is not None and check_contract(code, "plan", ["agent_id"]).ok


def test_system_prompt_rejects_bad_indices():
    with pytest.raises(ValueError):
        system_prompt({"coords": [[0, 0]], "edges": [[0, 1, "e", 1.0, 1.0]]}, [])
    with pytest.raises(ValueError):
        system_prompt(TINY, [(0, 0, 9, 0.0)])


def test_system_prompt_grid_size():
    g = grid_graph()
    assert len(g["coords"]) == 165 and len(g["edges"]) == 528
    assert max(x for x, _ in g["coords"]) > 1400
    text = system_prompt(g, ten_trips(165))
    tokens = approx_tokens(text)
    print(f"\n11x11-class grid (165 nodes, 528 edges) system prompt: {len(text)} chars, ~{tokens} tokens")
    assert tokens < 3000
    assert all(f"agent {i}:" in text for i in range(10))
    assert "164 (1400,1000):" in text


def _summary(agent: int, n_junctions: int) -> dict:
    return {
        "agent": agent,
        "junctions": list(range(100, 100 + n_junctions)),
        "travel_time": 512.4 + agent,
        "ret": -210.44,
        "arrived": agent % 2 == 0,
        "instructions": [f"move_to_by_shortest_time({57 + k})" for k in range(3)] + ["move_to_by_shortest_path(140)"],
    }


def test_feedback_prompt_content():
    lines = ["Reward volatility (RVI): ...", "  subset 0, t=12 s: agent 3, instr #1: move_to_by_shortest_time(57)"]
    text = feedback_prompt(
        lines,
        [_summary(4, 5), _summary(3, 30)],
        {7: "Traceback (most recent call last):\n  File x\nNameError: name 'foo' is not defined"},
    )
    for line in lines:
        assert line in text.splitlines()
    assert (
        "  agent 3: junctions 100 101 102 103 104 105 ... 124 125 126 127 128 129 (30 visited); travel 515 s; "
        "return -210.4; arrived no; instructions: move_to_by_shortest_time(57); move_to_by_shortest_time(58); "
        "move_to_by_shortest_time(59); move_to_by_shortest_path(140)"
    ) in text
    assert "  agent 4: junctions 100 101 102 103 104 (5 visited);" in text and "arrived yes" in text
    assert text.index("agent 3: junctions") < text.index("agent 4: junctions")  # sorted by agent
    assert "110" not in text.split("agent 3: junctions")[1].split("(30 visited)")[0]
    assert "  agent 7: Traceback (most recent call last): File x NameError: name 'foo' is not defined" in text
    assert text.rstrip().endswith(CLOSING_INSTRUCTION)
    assert "Revise only the instructions listed above" in text


def test_feedback_prompt_empty_sections():
    text = feedback_prompt([], [], {})
    assert text.count("  none") == 2 and CLOSING_INSTRUCTION in text


def test_feedback_prompt_long_cause_and_instructions_capped():
    s = _summary(0, 3)
    s["instructions"] = [f"move_to_by_shortest_time({k})" for k in range(20)]
    text = feedback_prompt([], [s], {0: "x" * 1000 + " END"})
    assert "(+12 more)" in text and "move_to_by_shortest_time(8)" not in text
    cause = [ln for ln in text.splitlines() if ln.startswith("  agent 0: ...")][0]
    assert cause.endswith("END") and len(cause) <= len("  agent 0: ") + prompts.MAX_CAUSE_CHARS


def test_feedback_prompt_size_ten_agents():
    rvi = [
        RVIPair(k % 2, 100 + k, 30.0 - k, 12.5, k, 2, f"move_to_by_shortest_time({50 + k})", "agent 7 at 33")
        for k in range(8)
    ]
    pdi = [
        PDIPair(
            k // 5,
            k,
            6.1,
            14,
            321.0,
            0.002,
            1,
            0,
            0.91,
            1,
            f"move_to_by_shortest_path({60 + k})",
            "junction 44; options 0:->45 (0.91), 1:->58 (0.07)",
        )
        for k in range(10)
    ]
    lines = format_feedback_lines(rvi, pdi)
    summaries = [_summary(i, 40) for i in range(10)]
    for s in summaries:
        s["instructions"] = [f"move_to_by_shortest_time({k})" for k in range(6)]
    failures = {i: "Traceback (most recent call last): ... " + "y" * 400 for i in range(0, 10, 3)}
    text = feedback_prompt(lines, summaries, failures)
    tokens = approx_tokens(text)
    print(f"\n10-agent feedback prompt: {len(text)} chars, ~{tokens} tokens")
    assert tokens < 3000
    assert all(ln in text for ln in lines)


def test_requests():
    assert first_request().startswith("Generate the navigation plans for all agents")
    assert repeat_request() == first_request()
