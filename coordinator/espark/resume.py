"""Reading a stopped eSpark run back for `netmarl run --resume`: its finished iterations, their candidates, the chosen
copies (whose checkpoints the next iteration starts from) and the reflection the next prompt carries."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from scenarios.config import ConfigError, ScenarioConfig
from scenarios.espark.candidates import Validation
from scenarios.espark.settings import ESparkSettings

from .evolution import REPLY_FILE, CandidateRecord, CheckResult
from .runs import read_jsonl


@dataclass
class FinishedIteration:
    """One iteration the stopped run completed: every candidate, the chosen one, and the reflection it sent."""

    iteration: int
    records: list[CandidateRecord]
    chosen: CandidateRecord | None
    feedback: str  # "" after the last iteration (no reflection)
    reply: str  # the chosen candidate's reply as the LLM said it, quoted back with the feedback (Eq. 4)


def finished_iterations(old: Path, cfg: ScenarioConfig, settings: ESparkSettings) -> list[FinishedIteration]:
    """The iterations `old` finished, in order; a ConfigError when it is not an eSpark run or cannot be continued
    with `cfg` (another world, budget or number of iterations would change what its copies were trained for)."""
    old = Path(old)
    saved = tomllib.loads((old / "config.toml").read_text())
    algo = saved.get("algo") or {}
    if algo.get("method") != "espark":
        raise ConfigError(f"--resume {old}: not an eSpark run (algo.method = {algo.get('method')!r})")
    before = ESparkSettings.model_validate(algo.get("espark", {}))
    now = {
        "world.kind": cfg.world.kind,
        "world.episodes": cfg.world.episodes,
        "algo.espark.iterations": settings.iterations,
        "algo.espark.retention": settings.retention,
    }
    then = {
        "world.kind": saved["world"]["kind"],
        "world.episodes": saved["world"]["episodes"],
        "algo.espark.iterations": before.iterations,
        "algo.espark.retention": before.retention,
    }
    changed = [f"{k} = {then[k]!r} there, {now[k]!r} here" for k in now if now[k] != then[k]]
    if changed:
        raise ConfigError(f"--resume {old}: the run cannot be continued with this configuration ({'; '.join(changed)})")
    root = old / "espark"
    chosen = read_jsonl(root / "iterations.jsonl")
    finished = {c["iteration"] for c in chosen}
    records = [_record(d, root) for d in read_jsonl(root / "candidates.jsonl") if d["iteration"] in finished]
    out = []
    for c in chosen:
        it, folder = c["iteration"], root / f"iter_{c['iteration']:02d}"
        mine = [r for r in records if r.iteration == it]
        out.append(
            FinishedIteration(
                it,
                mine,
                next((r for r in mine if r.key == c["best"]), None),
                _text(folder / "feedback.txt"),
                _text(folder / REPLY_FILE),
            )
        )
    return out


def _record(d: dict, root: Path) -> CandidateRecord:
    """A candidates.jsonl line and its source file (empty when no code was extracted) as a record."""
    return CandidateRecord(
        d["iteration"],
        d["index"],
        _text(root / f"{d['key']}.py") or None,
        check=CheckResult(**d["check"]) if d["check"] else None,
        validation=Validation(**d["validation"]) if d["validation"] else None,
        scores=d["scores"],
        components=d["components"],
        weights=d["weights"],
    )


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""
