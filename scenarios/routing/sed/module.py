"""The SED module's LLM side: the conversation (d_init, then d_fb), plan generation, sandboxed execution, rates."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from scenarios.llm.conversation import Conversation
from scenarios.llm.extract import extract_code
from scenarios.llm.service import LLMService, conversation_for
from scenarios.sandbox import SandboxLimits

from .plans import PlanOutcome, execute_plans, scripted_plan_code
from .prompts import feedback_prompt, first_request, repeat_request, system_prompt

log = logging.getLogger("scenarios.routing.sed")


@dataclass
class Generation:
    """One SED round's plans: the code (None if the reply held none), its source, and each agent's outcome."""

    code: str | None
    source: str  # "llm", "scripted" or "file"
    outcomes: dict[int, PlanOutcome]
    latency_s: float = 0.0
    error: str | None = None  # the LLM call itself failed (endpoint down, ...)

    def causes(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for o in self.outcomes.values():
            if not o.ok:
                out[o.cause or "unknown"] = out.get(o.cause or "unknown", 0) + 1
        return out


@dataclass
class SedModule:
    """Asks for plans every SED round and keeps the conversation the paper describes (RELED paper, Sec. IV-C)."""

    settings: Any  # scenarios.routing.config.SedSettings
    run_dir: Path
    graph: dict  # scenarios.routing.sed.navigation.road_graph of the map
    trips: Sequence[tuple[int, int, int, float]]  # (agent, origin junction, destination junction, departure s)
    seed: int
    send_metrics: Callable[[str, dict[str, Any]], None] = lambda kind, values: None
    rounds: int = 0
    llm: LLMService | None = None
    history: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng([self.seed, 6, self.rounds])  # a resumed run draws new partitions
        self.limits = SandboxLimits(cpu_s=self.settings.plan_cpu_s, wall_s=self.settings.plan_wall_s)
        self.system = system_prompt(self.graph, self.trips)
        self.conversation = self.new_conversation(first_request())
        if self.settings.expert == "llm":
            self.llm = LLMService(self.settings.llm, self.run_dir, self.send_metrics, self.limits)

    def new_conversation(self, request: str) -> Conversation:
        """d_init as the system prompt and the first request, under the paper's 10k-token cap or, for the local
        model, its own window less the reply (counted conservatively: its tokenizer splits numbers finely)."""
        conversation = conversation_for(self.settings.llm, self.system)
        conversation.add_user(request)
        return conversation

    def due(self, epoch: int) -> bool:
        """SED runs when epoch mod q = 0, and at epoch 1 with sed_at_start (docs/reled.md, RL-1)."""
        return epoch % self.settings.q == 0 or (epoch == 1 and self.settings.sed_at_start)

    def partition(self, agents: Sequence[int]) -> list[list[int]]:
        """A random partition into m subsets of (nearly) equal size (RELED paper, Sec. III-D)."""
        order = [int(a) for a in self.rng.permutation(list(agents))]
        m = min(self.settings.m, len(order))
        return [sorted(order[j::m]) for j in range(m)]

    def generate(self) -> Generation:
        """One call for all agents' plans (or the scripted plans), executed in the sandbox (never here)."""
        trips = {a: (o, d) for a, o, d, _ in self.trips}
        if self.llm is None:
            expert = self.settings.expert
            code = Path(self.settings.plan_file).read_text() if expert == "file" else scripted_plan_code()
            return Generation(code, expert, execute_plans(code, trips, self.graph, self.limits))
        try:
            reply = self.llm.client.complete(self.conversation.messages())
        except Exception as err:  # noqa: BLE001 - an unreachable endpoint must not end the training run
            log.warning("SED round %d: the LLM call failed: %s", self.rounds, err)
            return Generation(
                None, "llm", execute_plans(None, trips, self.graph, self.limits), error=f"{type(err).__name__}: {err}"
            )
        self.conversation.add_assistant(reply.text)
        code = extract_code(reply.text)
        return Generation(code, "llm", execute_plans(code, trips, self.graph, self.limits), reply.latency_s)

    def feedback(
        self, lines: Sequence[str], summaries: Sequence[dict], failures: dict[int, str], code: str | None = None
    ) -> None:
        """d <- d_fb with R^j, K^j and tau^e (consumed by the next call); without refinement, the plain request."""
        text = feedback_prompt(lines, summaries, failures, code)
        self.folder().joinpath(f"round_{self.rounds:03d}_feedback.txt").write_text(text)
        if self.settings.refinement:
            self.conversation.add_user(text)
        else:
            self.conversation = self.new_conversation(repeat_request())

    def end_round(self, epoch: int, gen: Generation, executed: dict[int, bool], **extra) -> dict:
        """Record the round: execution rate (plan ran and its vehicle arrived), causes, LLM latency and tokens."""
        n = max(len(gen.outcomes), 1)
        values = {
            "round": self.rounds,
            "epoch": epoch,
            "source": gen.source,
            "code": gen.code is not None,
            "plans_ok": sum(o.ok for o in gen.outcomes.values()) / n,
            "execution_rate": sum(executed.values()) / n,
            "failures_by_cause": gen.causes(),
            "latency_s": gen.latency_s,
            "llm_error": gen.error,
            **extra,
        }
        if self.llm is not None:
            values.update({f"llm_{k}": v for k, v in self.llm.client.metrics().items()})
        if gen.code is not None:
            self.folder().joinpath(f"round_{self.rounds:03d}_plans.py").write_text(gen.code)
        self.send_metrics("sed_round", values)
        log.info(
            "SED round %d (epoch %d, %s): %d/%d plans ran, execution rate %.2f%s",
            self.rounds,
            epoch,
            gen.source,
            sum(o.ok for o in gen.outcomes.values()),
            n,
            values["execution_rate"],
            f"; failures {gen.causes()}" if gen.causes() else "",
        )
        self.history.append({"round": self.rounds, "epoch": epoch, "code": gen.code, **values})
        self.rounds += 1
        return values

    def folder(self) -> Path:
        """run_dir/sed: each round's plan code and the feedback prompt it produced."""
        path = Path(self.run_dir) / "sed"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def close(self) -> None:
        if self.llm is not None:
            self.llm.close()
