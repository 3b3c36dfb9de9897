"""The eSpark loop (eSpark paper, Sec. 4, App. B): K candidate functions per iteration, each guiding its own IPPO
copy (a real-process run), selection by task reward, retention of the best weights, reflection; then the test
against IPPO."""

from __future__ import annotations

import copy
import logging
import math
import signal
import time
from pathlib import Path

import numpy as np

from agent_node.checkpoints import save_json
from coordinator.run_folder import check_new_run_dir, write_config
from coordinator.tensorboard import TensorBoardLog
from scenarios.config import ScenarioConfig
from scenarios.espark.candidates import Validation, validate_candidate
from scenarios.kinds import espark_task
from scenarios.llm.service import LLMService

from .evolution import NO_RETENTION_STEP_FACTOR, CandidateRecord, RunRecorder, reflection_stats, select_best
from .generation import Draft, Generator
from .plots import plot_candidate_scores, plot_learning_curves, test_table
from .prompts import reflection
from .resume import finished_iterations
from .runs import ChildRun, check_stop, run_all, stop_requested

log = logging.getLogger("coordinator.espark")


class ESparkLoop:
    """Owns the run folder of an eSpark run; every trained copy is a child run folder under espark/."""

    def __init__(self, cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir).resolve()  # children run from the project root
        self.task = espark_task(cfg.world.kind)
        self.settings = cfg.algo.espark
        self.world = cfg.world
        s = self.settings
        if self.world.episodes < s.iterations or self.world.episodes % s.iterations:
            raise ValueError(
                f"world.episodes ({self.world.episodes}) must be a multiple of algo.espark.iterations "
                f"({s.iterations}): each iteration trains 1/{s.iterations} of IPPO's budget"
            )
        self.slice = self.world.episodes // s.iterations
        self.base = cfg.model_dump(mode="json", exclude_unset=True)  # what the user set; defaults re-apply
        self.lineage: list[dict] = []  # training episodes of each iteration's chosen copy
        self.records: list[CandidateRecord] = []
        self.replies: dict[str, str] = {}
        self.resume = Path(resume).resolve() if resume else None
        self.done = finished_iterations(self.resume, cfg, s) if resume else []  # checked before anything is written

    # ------------------------------------------------------------------ child runs
    def child(
        self,
        name: str,
        *,
        episodes: int,
        first: int,
        tests: int,
        init: str | None,
        code_file: str | None,
        evals: int = 0,
        timeout_s: float | None = None,
        masked_test: bool = False,
    ) -> ChildRun:
        d = copy.deepcopy(self.base)
        d.setdefault("run", {}).update(name=f"{self.cfg.run.name}-{name.replace('/', '-')}", progress=False)
        world = d.setdefault("world", {})
        world.update(
            kind=self.world.kind,
            episodes=episodes,
            test_episodes=tests,
            first_episode=first,
            eval_episodes=evals,
            eval_every=self.eval_every(episodes) if evals else 0,
        )
        world["exploration"] = (
            {
                "kind": "function",
                "code_file": code_file,
                "cpu_s": self.settings.candidate_cpu_s,
                "wall_s": self.settings.candidate_wall_s,
                "at_test": masked_test,
                "empty_row": self.settings.empty_row,
            }
            if code_file
            else {"kind": "none"}
        )
        algo = d.setdefault("algo", {})
        algo.pop("espark", None)
        algo["method"] = "ippo"
        algo.pop("init_weights", None)
        if init:
            algo["init_weights"] = init
        return ChildRun(name, self.run_dir / "espark" / name, d, timeout_s or self.settings.candidate_timeout_s)

    def eval_every(self, episodes: int) -> int:
        """Training episodes between a copy's validation checkpoints: `validations` of them spread over its
        episodes at update boundaries (the last one after its last episode)."""
        every = self.world.update_every
        updates = math.ceil(episodes / every)
        return every * max(updates // min(self.settings.validations, updates), 1)

    # ------------------------------------------------------------------ the loop
    def execute(self) -> int:
        check_new_run_dir(self.run_dir)
        (self.run_dir / "logs").mkdir(parents=True, exist_ok=True)
        write_config(self.run_dir, self.cfg)
        handler = logging.FileHandler(self.run_dir / "logs" / "espark.log")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.getLogger().addHandler(handler)
        logging.getLogger().setLevel(logging.INFO)
        t0, status, code = time.monotonic(), "ok", 0
        stop_requested.clear()
        previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` ends the loop like Ctrl-C: children stopped
        board = TensorBoardLog(self.run_dir / "tensorboard") if self.cfg.run.tensorboard else None
        recorder = RunRecorder(self.run_dir, self.settings.last_n, board)
        service = None
        try:
            if self.settings.generator == "llm":
                service = LLMService(self.settings.llm, self.run_dir)
            self.samples = self.task.sample_inputs(self.world, self.cfg.run.seed)
            generator = Generator(self.settings, self.task.describe(self.world), self.run_dir, service)
            best = self.iterate(generator, recorder, self.restore(generator, recorder))
            status = self.final_tests(best)
            code = 0 if status == "ok" else 1
        except KeyboardInterrupt:
            status, code = "interrupted", 130
            print("eSpark interrupted; writing what is done so far")
        except Exception as err:  # noqa: BLE001 - say what failed, keep the files
            log.exception("eSpark loop failed")
            status, code = f"failed: {type(err).__name__}: {err}", 1
        finally:
            if service is not None:
                service.close()
            if board is not None:
                board.close()
            self.write_results(status, time.monotonic() - t0, service)
            logging.getLogger().removeHandler(handler)
            signal.signal(signal.SIGTERM, previous)
        print(f"status: {status}; run folder: {self.run_dir}")
        return code

    def restore(self, generator: Generator, recorder: RunRecorder) -> CandidateRecord | None:
        """The iterations a stopped run finished (`--resume`), put on file here as they were, with the reflection
        its last one sent; the chosen copy the next iteration continues from."""
        best = None
        for past in self.done:
            for rec in past.records:
                recorder.candidate(rec)
            self.records += past.records
            if past.chosen is not None:
                best = past.chosen
                self.lineage += ChildRun.finished(best.key, Path(best.weights).parent).episodes(
                    self.task.episode_kind, "train"
                )
            if past.feedback:
                generator.reflect(past.reply, past.feedback)
            recorder.chosen(past.iteration, past.chosen, past.feedback, past.reply)
        generator.drawn = sum(r.index < self.settings.candidates for r in self.records)  # hand-written files go on
        if self.resume is not None:
            print(
                f"[espark] resuming {self.resume}: {len(self.done)} iteration(s) finished there"
                f"{f', continuing from {best.key}' if best else ''}",
                flush=True,
            )
        return best

    def iterate(
        self, generator: Generator, recorder: RunRecorder, best: CandidateRecord | None
    ) -> CandidateRecord | None:
        """The iterations not yet done; `best`: the chosen copy so far (None: start from fresh weights)."""
        s = self.settings
        for it in range(len(self.done) + 1, s.iterations + 1):
            check_stop()
            episodes = self.slice if s.retention else self.slice * NO_RETENTION_STEP_FACTOR
            first = (it - 1) * self.slice + 1 if s.retention else 1
            # retention: every copy starts from the chosen weights; without: re-initialised (eSpark paper, Sec. 5.4)
            start = best.weights if s.retention and best is not None else None
            print(f"[espark] iteration {it}/{s.iterations}: writing {s.candidates} candidates", flush=True)
            records = [self.draft_candidate(generator, it, k) for k in range(s.candidates)]
            train = dict(episodes=episodes, first=first, tests=0, init=start, evals=s.eval_episodes)
            runs = {}
            self.records += records
            try:  # from here on a stop (SIGTERM, Ctrl-C) still puts every drafted candidate on file
                for rec in records:
                    if rec.executable:
                        path = self.run_dir / "espark" / f"{rec.key}.py"
                        path.parent.mkdir(parents=True, exist_ok=True)
                        path.write_text(rec.code)
                        runs[rec.key] = self.child(rec.key, code_file=str(path), **train)
                if runs:
                    print(
                        f"[espark] iteration {it}: training {len(runs)} copies of {episodes} episodes "
                        f"({s.runs_at_a_time} at a time){' from the best weights' if start else ''}",
                        flush=True,
                    )
                    by_key = {r.key: r for r in records}
                    run_all(list(runs.values()), s.runs_at_a_time, lambda run: self.score(by_key[run.name], run))
                if select_best(records, s.last_n) is None:  # no copy trained: an unmasked one keeps the lineage going
                    rec = CandidateRecord(
                        it,
                        s.candidates,
                        None,
                        validation=Validation(
                            True,
                            message=("no candidate trained a copy this iteration: this copy trained without a mask"),
                        ),
                    )
                    records.append(rec)
                    self.records.append(rec)
                    runs[rec.key] = self.child(rec.key, code_file=None, **train)
                    print(f"[espark] iteration {it}: no candidate trained; one unmasked copy", flush=True)
                    run_all([runs[rec.key]], 1, lambda run: self.score(rec, run))
            finally:  # every candidate of the iteration is on file, also when it was interrupted
                for rec in records:
                    recorder.candidate(rec)
            chosen = select_best(records, s.last_n)
            feedback = said = ""
            if chosen is not None:
                best = chosen
                self.lineage += runs[chosen.key].episodes(self.task.episode_kind, "train")
                if it < s.iterations:  # no reflection after the last iteration (docs/espark.md, E-A2)
                    every = self.eval_every(episodes) if s.feedback_from == "eval" and s.eval_episodes else 1
                    feedback = reflection(
                        chosen.code or "(no exploration function: all actions allowed)",
                        chosen.components,
                        every,
                        self.task.unit,
                        factors=s.reward_factors,
                    )
                    said = self.replies.get(chosen.key) or (
                        "No candidate gave a usable exploration function in this "
                        "iteration, so the chosen policy trained without a mask."
                    )
                    generator.reflect(said, feedback)
            recorder.chosen(it, chosen, feedback, said)
            print(
                f"[espark] iteration {it}: best {chosen.key if chosen else None} "
                f"(G = {chosen.score(s.last_n) if chosen else float('nan'):.2f})",
                flush=True,
            )
        return best

    def draft_candidate(self, generator: Generator, it: int, k: int) -> CandidateRecord:
        draft: Draft = generator.draft()
        rec = CandidateRecord(it, k, draft.code, check=draft.check)
        self.replies[rec.key] = draft.reply
        if draft.error:
            rec.validation = Validation(False, "llm_error", draft.error)
        else:
            rec.validation = validate_candidate(
                draft.code, self.samples, self.task.n_actions, contract=self.task.contract
            )
        v = rec.validation
        log.info("%s: %s", rec.key, "accepted" if v.accepted else f"rejected ({v.cause}): {v.message[:200]}")
        return rec

    def score(self, rec: CandidateRecord, run: ChildRun) -> None:
        """G from the copy's unmasked validation checkpoints (or its last training episodes), the reflection's
        statistics from the same checkpoints (or its training episodes); a run-time failure of the function or of
        the run rejects the candidate with its cause (eSpark paper, Sec. 4.2: non-executable ones are dropped)."""
        s = self.settings
        eps = run.episodes(self.task.episode_kind, "train")
        checkpoints = _by_checkpoint(run.episodes(self.task.episode_kind, "eval"))
        rec.scores = (
            [float(np.mean([e["return"] for e in group])) for group in checkpoints]
            if s.eval_episodes
            else [float(e["return"]) for e in eps]
        )
        rec.weights = str(run.run_dir / "checkpoints")
        series: dict[str, list] = {}
        use_evals = s.feedback_from == "eval" and checkpoints
        for entry in (
            (_mean_components(group) for group in checkpoints)
            if use_evals
            else (e.get("components") or {} for e in eps)
        ):
            for name, value in entry.items():
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    series.setdefault(name, []).append(value)
        rec.components = reflection_stats(series, s.feedback_window)
        error = (run.world_final().get("exploration") or {}).get("error")
        if not run.ok:
            rec.validation = Validation(False, "run_failed", run.failure())
        elif error:
            rec.validation = Validation(False, f"runtime_{error['cause']}", error["message"])
        print(
            f"[espark]   {rec.key}: G = {rec.score(self.settings.last_n):.2f}"
            f"{'' if rec.executable else f' (rejected: {rec.validation.cause})'}",
            flush=True,
        )

    # ------------------------------------------------------------------ test and results
    def final_tests(self, best: CandidateRecord | None) -> str:
        """The chosen lineage's weights tested WITHOUT masks (eSpark paper, Sec. 4.1), and IPPO on the same budget and
        seed; the run's status ("ok", or what failed)."""
        check_stop()
        if best is None:
            return "failed: no copy was trained, so there are no weights to test"
        tests = self.world.test_episodes
        runs = [self.child("test", episodes=0, first=1, tests=tests, init=best.weights, code_file=None)]
        chosen_code = self.run_dir / "espark" / f"{best.key}.py"
        # the E-A7 diagnostic (docs/espark.md): the same test under the mask
        if best.code is not None and chosen_code.exists():
            runs.append(
                self.child(
                    "test_masked",
                    episodes=0,
                    first=1,
                    tests=tests,
                    init=best.weights,
                    code_file=str(chosen_code),
                    masked_test=True,
                )
            )
        if self.settings.compare_ippo:
            runs.append(
                self.child(
                    "ippo",
                    episodes=self.world.episodes,
                    first=1,
                    tests=tests,
                    init=None,
                    code_file=None,
                    timeout_s=self.settings.candidate_timeout_s * self.settings.iterations,
                )
            )
        print(
            f"[espark] testing the chosen weights{' and training IPPO on the same budget' if len(runs) > 1 else ''}",
            flush=True,
        )
        run_all(runs, self.settings.runs_at_a_time)
        self.test_runs = {r.name: r for r in runs}
        failed = [f"{r.name} run {r.failure()[:300]}" for r in runs if not r.ok]
        return f"failed: {'; '.join(failed)}" if failed else "ok"

    def write_results(self, status: str, wall_s: float, service: LLMService | None) -> None:
        runs = getattr(self, "test_runs", {})
        results = {}
        for name, label in (("test", "espark"), ("ippo", "ippo"), ("test_masked", "espark_masked")):
            if name in runs:
                for key, value in runs[name].summary().get("results", {}).items():
                    if key.startswith("test_"):
                        results[f"{label}_{key}"] = value
        records = self.records
        summary = {
            "status": status,
            "method": "espark",
            "world": self.world.kind,
            "wall_s": round(wall_s, 1),
            "resumed_from": str(self.resume) if self.resume else None,
            "iterations": self.settings.iterations,
            "candidates": self.settings.candidates,
            "episodes_per_iteration": self.slice,
            "generator": self.settings.generator,
            "retention": self.settings.retention,
            "drafted": sum(r.index < self.settings.candidates for r in records),
            "executable": sum(r.executable and r.code is not None for r in records),
            "rejections": _causes(records),
            "results": results,
        }
        if service is not None:
            summary["llm"] = {"model": service.config.model, **service.client.metrics()}
        best_file = self.run_dir / "espark" / "best.py"
        summary["best_function"] = str(best_file) if best_file.exists() else None
        save_json(summary, self.run_dir / "summary.json", indent=2, default=str)
        plots = self.run_dir / "plots"
        plots.mkdir(exist_ok=True)
        if records:
            plot_candidate_scores(records, self.settings.last_n, plots / "candidate_scores.png")
        ippo = runs["ippo"].episodes(self.task.episode_kind, "train") if "ippo" in runs else []
        if self.lineage or ippo:
            plot_learning_curves(self.lineage, ippo, plots / "learning_curves.png")
        if results:
            test_table(results, self.task.test_metrics, self.run_dir / "test_table.csv")


def _interrupt(signum, frame):
    stop_requested.set()
    raise KeyboardInterrupt


def _by_checkpoint(evals: list[dict]) -> list[list[dict]]:
    """Evaluation episode records grouped by the training episode they followed, in order."""
    groups: dict[int, list[dict]] = {}
    for e in evals:
        groups.setdefault(int(e["episode"]), []).append(e)
    return [groups[k] for k in sorted(groups)]


def _mean_components(group: list[dict]) -> dict:
    """One checkpoint's reward components: each the mean over its episodes (scalars or per-warehouse lists)."""
    names = {n for e in group for n, v in (e.get("components") or {}).items() if v is not None}
    return {
        n: np.mean(
            [e["components"][n] for e in group if (e.get("components") or {}).get(n) is not None], axis=0
        ).tolist()
        for n in sorted(names)
    }


def _causes(records: list[CandidateRecord]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in records:
        if r.validation is not None and not r.validation.accepted:
            out[r.validation.cause] = out.get(r.validation.cause, 0) + 1
    return out


def run_espark(cfg: ScenarioConfig, run_dir: Path, resume: Path | None = None) -> int:
    """`netmarl run` for algo.method = "espark" (`resume`: a stopped eSpark run whose finished iterations it keeps)."""
    return ESparkLoop(cfg, run_dir, resume).execute()
