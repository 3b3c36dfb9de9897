"""The import contract of the top-level packages: protocols < netsim < agent_node < scenarios < coordinator.

A package imports only those to its left (never one to its right), so the device install (agent_node and protocols)
carries no world, medium or coordinator code. Read from the source with ast: a lazy import inside a function counts.
"""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest
from conftest import ROOT

LAYERS = ("protocols", "netsim", "agent_node", "scenarios", "coordinator")
DEVICE = {"agent_node": {"protocols", "agent_node"}}  # what a device runs imports nothing else of the project


def project_imports(package: str) -> dict[str, set[str]]:
    """file -> the project's top-level packages it imports (absolute imports; relative ones stay inside)."""
    out = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module]
                if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
                else []
            )
            found |= {n.split(".")[0] for n in names} & set(LAYERS)
        out[str(path.relative_to(ROOT))] = found
    return out


@pytest.mark.parametrize("package", LAYERS)
def test_a_package_imports_only_the_layers_below_it(package):
    allowed = set(LAYERS[: LAYERS.index(package) + 1]) & DEVICE.get(package, set(LAYERS))
    wrong = {f: sorted(found - allowed) for f, found in project_imports(package).items() if found - allowed}
    assert not wrong, f"{package} may import only {sorted(allowed)}: {wrong}"


def test_the_checker_sees_a_violation(tmp_path, monkeypatch):
    """The contract is not vacuous: a module of agent_node importing scenarios is caught."""
    import conftest

    (tmp_path / "agent_node").mkdir()
    (tmp_path / "agent_node" / "bad.py").write_text("def f():\n    from scenarios.config import load_scenario\n")
    monkeypatch.setattr(conftest, "ROOT", tmp_path)
    monkeypatch.setitem(globals(), "ROOT", tmp_path)
    assert project_imports("agent_node") == {"agent_node/bad.py": {"scenarios"}}


LEARNING_SCENARIOS = (
    "figure8_rsm_masac.toml",
    "merge_rsm_masac.toml",
    "grid_reled.toml",
    "signals_espark.toml",
    "inventory_espark.toml",
    "pettingzoo_spread.toml",
)


def test_the_coordinator_checks_and_plans_a_learning_run_without_torch(tmp_path):
    """Only the agents learn: the coordinator validates a scenario with the learners' settings (agent_node/learners/
    settings.py, agent_node/roles/settings.py) and never loads torch (3-4 s and hundreds of MB a run)."""
    code = (
        "import sys; from pathlib import Path; sys.modules['torch'] = None\n"  # any import of torch fails
        "from scenarios.config import load_scenario; from scenarios.plan import plan_run\n"
        "for i, name in enumerate(sys.argv[2:]):\n"
        "    plan_run(load_scenario(Path('scenarios') / name), Path(sys.argv[1]) / str(i))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path), *LEARNING_SCENARIOS], cwd=ROOT, check=True, timeout=120)
