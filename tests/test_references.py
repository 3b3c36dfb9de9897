"""Every reference in the code and docs resolves inside the repository (issue 22).

Comments, docstrings and docs cite the papers themselves ("RELED paper, Eq. 32") or the project's own
docs/ ("docs/espark.md, E-A7"), never the specification notes kept outside the repository, which a
reader of the repository cannot open.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# not the repository's own text: VCS data, environments, caches, build and run outputs (anywhere), and a shared/
# folder mounted at the top (on the device machines it holds the notes themselves)
SKIP_DIRS = {".git", ".venv", "runs", "build", "__pycache__", ".ruff_cache", ".pytest_cache", ".hypothesis"}
SKIP_TOP = {"shared"}
SUFFIXES = {".py", ".md", ".toml"}
SECTION = "\u00a7"  # the section sign, and below the notes' folder, spelt out so that this file does not match itself
FOLDER = "specs" + "/"
NOTES = ("AlternatingMARL", "RELED", "RSM-MASAC", "eSpark", "networking", "sumo", "landscape")
PATTERNS = {
    "a section of 'the spec'": re.compile(rf"\bspec(?:'s)?\s*{SECTION}", re.IGNORECASE),
    "a path into the external spec notes": re.compile(r"\b(?:shared/)?specs/[\w.-]+\.md|\bshared/specs\b"),
    "a section of an external spec note": re.compile(rf"\b(?:{'|'.join(map(re.escape, NOTES))})\.md\s*{SECTION}"),
}


def files(root: Path):
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        dirs = rel.parts[:-1]
        if dirs and dirs[0] in SKIP_TOP or any(d in SKIP_DIRS or d.endswith(".egg-info") for d in dirs):
            continue
        if path.suffix in SUFFIXES and path.is_file():
            yield path


def offending_lines(root: Path = ROOT) -> list[str]:
    """'path:line: what' for every line that points outside the repository."""
    out = []
    for path in files(root):
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            for what, pattern in PATTERNS.items():
                if pattern.search(line):
                    out.append(f"{path.relative_to(root)}:{n}: {what}: {line.strip()[:100]}")
    return out


def test_patterns_catch_the_old_forms():
    s = SECTION
    for line in (
        f"(spec {s}9 A7)",
        f"# Spec {s}1.2 Table III",
        f"(the spec's {s}7.1 reads it)",
        f"(RELED.md {s}1.3-1.5)",
        f"(eSpark.md {s}2.3, App. A.5; sumo.md {s}4.1)",
        f"(`{FOLDER}RSM-MASAC.md`)",
        f"see /work/shared/{FOLDER}eSpark.md",
    ):
        assert any(p.search(line) for p in PATTERNS.values()), line
    for line in ("(docs/espark.md, E-A7)", "(RELED paper, Eq. 32)", "msgspec structs", "find_spec('sumo_rl')"):
        assert not any(p.search(line) for p in PATTERNS.values()), line


def test_no_reference_points_outside_the_repository():
    bad = offending_lines()
    assert not bad, f"{len(bad)} references point outside the repository:\n" + "\n".join(bad[:40])
