"""eSpark evolution bookkeeping (eSpark paper, Secs. 4.2, 4.3, 5.4): records, selection, retention, stats, files."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from scenarios.espark.candidates import Validation

INITIAL_WEIGHTS = "initial"  # one random initialisation shared by every iteration-1 candidate (docs/espark.md, E-A3)
LAST_N = 5  # checkpoints averaged for selection (docs/espark.md, E-A4; the released runner's last 5 validations)
NO_RETENTION_STEP_FACTOR = 3  # "w/o retention": each iteration from scratch with 3x the steps (eSpark paper, Sec. 5.4)
REPLY_FILE = "best_reply.md"  # in iter_XX/: the chosen candidate's reply, quoted back with the feedback (Eq. 4)


@dataclass
class CheckResult:
    """The LLM checker's outcome for one candidate: final verdict (None: no valid prefix), rounds, last reply."""

    passed: bool | None
    rounds: int = 0
    reply: str = ""


@dataclass
class CandidateRecord:
    """One candidate of one iteration: its code, checker and sandbox verdicts, checkpoint scores and feedback stats."""

    iteration: int
    index: int
    code: str | None
    check: CheckResult | None = None
    validation: Validation | None = None
    scores: list[float] = field(default_factory=list)  # task reward at each checkpoint, in order
    components: dict[str, dict] = field(default_factory=dict)  # reflection_stats(...) of the training series
    weights: str | None = None  # where the trained weights were saved (set by the trainer)

    @property
    def key(self) -> str:
        return f"iter_{self.iteration:02d}/cand_{self.index:02d}"

    @property
    def executable(self) -> bool:
        return self.validation is not None and self.validation.accepted

    def score(self, last_n: int = LAST_N) -> float:
        """G = mean of the last `last_n` checkpoint scores; -inf if not executable, unscored or non-finite."""
        tail = [float(s) for s in self.scores[-last_n:]] if last_n > 0 else []
        if not self.executable or not tail or not all(math.isfinite(s) for s in tail):
            return -math.inf
        return sum(tail) / len(tail)

    def to_dict(self, last_n: int = LAST_N) -> dict:
        d = asdict(self)
        d["validation"] = self.validation.to_dict() if self.validation else None
        d["key"], d["score"] = self.key, _json_float(self.score(last_n))
        return d


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None


def select_best(records: list[CandidateRecord], last_n: int = LAST_N) -> CandidateRecord | None:
    """Highest G (eSpark paper, Sec. 4.2); ties go to the lowest (iteration, index). None when no G is finite."""
    scored = [r for r in records if math.isfinite(r.score(last_n))]
    if not scored:
        return None
    return min(scored, key=lambda r: (-r.score(last_n), r.iteration, r.index))


def retention(
    best: CandidateRecord | None,
    k: int,
    retain: bool = True,
    previous: str = INITIAL_WEIGHTS,
    initial: str = INITIAL_WEIGHTS,
) -> list[str]:
    """Weights each of the next iteration's K candidates starts from (Eq. 3).

    retain: all start from the best's weights (its `weights`, else its key); with no best (every candidate failed)
    they start again from `previous`. retain=False ("eSpark w/o retention", paper Sec. 5.4): all start from `initial`
    (and should train NO_RETENTION_STEP_FACTOR x the steps).
    """
    if not retain:
        return [initial] * k
    start = previous if best is None else (best.weights or best.key)
    return [start] * k


def reflection_stats(component_series: dict[str, list], window: int = 0) -> dict[str, dict]:
    """Per component: max, min, early, late and overall mean over its checkpoint series (eSpark paper, Sec. 4.3).

    Early/late (docs/espark.md, E-A11; undefined in the paper): window > 0 (the released runner: 5) takes the first
    and the last min(window, n) values; window = 0 the first and last floor(n/2), so an odd series' middle value is
    in neither; a one-value series is both. Entries may be scalars (-> floats) or per-warehouse arrays (-> lists); as
    in the released runner, max and min are whole entries: the ones whose sum over warehouses is the highest and
    the lowest. Empty series are skipped.
    """
    out: dict[str, dict] = {}
    for name, series in component_series.items():
        a = np.asarray(series, dtype=float)
        if a.shape[0] == 0:
            continue
        h = min(window, a.shape[0]) if window > 0 else max(a.shape[0] // 2, 1)
        totals = a.reshape(a.shape[0], -1).sum(1)
        stats = {
            "max": a[int(np.argmax(totals))],
            "min": a[int(np.argmin(totals))],
            "early_mean": a[:h].mean(0),
            "late_mean": a[-h:].mean(0),
            "mean": a.mean(0),
        }
        out[name] = {k: (float(v) if np.ndim(v) == 0 else np.asarray(v).tolist()) for k, v in stats.items()}
    return out


class RunRecorder:
    """Writes RUN/espark/: iter_XX/cand_YY.py, candidates.jsonl, iter_XX/best.py, iter_XX/feedback.txt,
    best_reply.md, iterations.jsonl (the chosen one per iteration) and best.py (the latest chosen); with a board,
    each scored candidate's G (espark/cand_YY/G) and the chosen one's (espark/best/G) at its iteration."""

    def __init__(self, run_dir: Path | str, last_n: int = LAST_N, board=None):
        self.root = Path(run_dir) / "espark"
        self.root.mkdir(parents=True, exist_ok=True)
        self.last_n = last_n
        self.board = board  # a coordinator.tensorboard.TensorBoardLog, or None

    def _scalar(self, tag: str, value: float, iteration: int) -> None:
        if self.board is not None and math.isfinite(value):
            self.board.scalar("espark", tag, value, iteration)

    def _iter_dir(self, iteration: int) -> Path:
        d = self.root / f"iter_{iteration:02d}"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def _append(self, name: str, obj: dict) -> None:
        with open(self.root / name, "a") as f:
            f.write(json.dumps(obj, sort_keys=True) + "\n")

    def candidate(self, rec: CandidateRecord) -> None:
        """The source (an empty file when no code was extracted) and one jsonl line, code left out."""
        (self._iter_dir(rec.iteration) / f"cand_{rec.index:02d}.py").write_text(rec.code or "")
        d = rec.to_dict(self.last_n)
        d.pop("code")
        self._append("candidates.jsonl", d)
        self._scalar(f"espark/cand_{rec.index:02d}/G", rec.score(self.last_n), rec.iteration)

    def chosen(self, iteration: int, best: CandidateRecord | None, feedback: str = "", reply: str = "") -> None:
        """The iteration's winner (None: nothing executable) and the reflection sent to the LLM: the winner's reply
        as it was said, and the feedback on it."""
        d = self._iter_dir(iteration)
        if best is not None:
            (d / "best.py").write_text(best.code or "")
            (self.root / "best.py").write_text(best.code or "")
        if feedback:
            (d / "feedback.txt").write_text(feedback)
            (d / REPLY_FILE).write_text(reply)
        if best is not None:
            self._scalar("espark/best/G", best.score(self.last_n), iteration)
        self._append(
            "iterations.jsonl",
            {
                "iteration": iteration,
                "best": best.key if best else None,
                "score": _json_float(best.score(self.last_n)) if best else None,
            },
        )
