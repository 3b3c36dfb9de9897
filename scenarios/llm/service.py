"""The coordinator's LLM service: endpoint (starting the local default if none is set), recording to the
run folder, and code-generation rounds (ask, extract, check, run in the sandbox) with per-round metrics."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from scenarios.sandbox import Result, Sandbox, SandboxLimits

from .client import LLMClient
from .config import LLMConfig
from .conversation import Conversation
from .extract import ContractResult, check_contract, extract_code, feedback_text
from .local_server import LocalServer
from .recorder import Recorder

log = logging.getLogger("scenarios.llm")


@dataclass
class Attempt:
    """One generated function: the reply, its code, the contract check and the sandbox run."""

    reply: str
    code: str | None
    contract: ContractResult
    result: Result | None = None  # None when the contract failed (nothing was run)

    @property
    def executed(self) -> bool:
        return self.result is not None and self.result.ok

    def feedback(self) -> str:
        """What went wrong, in words that go into the next prompt ("" if it ran)."""
        if not self.contract.ok:
            return feedback_text(self.contract)
        if self.result is not None and not self.result.ok:
            return f"The function failed when run ({self.result.error}): {self.result.message}"
        return ""


@dataclass
class LLMService:
    """Owns the client (and the local server when it starts one); writes llm.jsonl and round metrics."""

    config: LLMConfig
    run_dir: Path
    send_metrics: Callable[[str, dict[str, Any]], None] = lambda kind, values: None
    limits: SandboxLimits = field(default_factory=SandboxLimits)
    server: LocalServer | None = None

    def __post_init__(self) -> None:
        if self.config.backend == "local" and not self.config.base_url:  # no endpoint set: the offline default
            self.server = LocalServer(
                model=self.config.model if self.config.model != "default" else "smollm2",
                log_path=Path(self.run_dir) / "logs" / "llm_server.log",
            )
            Path(self.run_dir, "logs").mkdir(parents=True, exist_ok=True)
            self.server.start()
            self.config = self.config.model_copy(update={"base_url": self.server.base_url, "model": self.server.model})
            log.info("started the local LLM %s at %s", self.server.model, self.server.base_url)
        self.client = LLMClient(self.config, recorder=Recorder(Path(self.run_dir) / "llm.jsonl"))
        self.sandbox = Sandbox(self.limits)
        self.round = 0

    def attempt(
        self, conversation: Conversation, func: str, params: list[str], args: tuple = (), expect: dict | None = None
    ) -> Attempt:
        """Ask for one function, check it, and (if it passes) run it once in the sandbox on args."""
        reply = self.client.complete(conversation.messages()).text
        conversation.add_assistant(reply)
        code = extract_code(reply)
        contract = check_contract(code or "", func, params)
        result = self.sandbox.run_once(code, func, args, expect) if contract.ok else None
        return Attempt(reply, code, contract, result)

    def end_round(self, attempts: list[Attempt], **extra) -> dict:
        """Write the round's metrics (calls, tokens, latency, extraction and execution rates) to metrics.jsonl."""
        m = self.client.metrics()
        n = max(len(attempts), 1)
        values = {
            "round": self.round,
            "attempts": len(attempts),
            **m,
            "extraction_rate": sum(a.code is not None for a in attempts) / n,
            "contract_rate": sum(a.contract.ok for a in attempts) / n,
            "execution_rate": sum(a.executed for a in attempts) / n,
            "failures_by_cause": _causes(attempts),
            **extra,
        }
        self.send_metrics("llm_round", values)
        self.round += 1
        return values

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()

    def __enter__(self) -> "LLMService":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def conversation_for(config: LLMConfig, system: str) -> Conversation:
    """A conversation capped at config.context_tokens or, for the local default model, at its own window less the
    reply (counted conservatively: its tokenizer splits numbers finely)."""
    if config.backend == "local" and not config.base_url:
        return Conversation(
            system,
            min(config.context_tokens, LocalServer.n_ctx - config.max_tokens),
            count_tokens=lambda text: math.ceil(len(text) / 1.5),
        )  # measured: 1.58 chars/token
    return Conversation(system, config.context_tokens)


def _causes(attempts: list[Attempt]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in attempts:
        cause = a.contract.check if not a.contract.ok else (a.result.error if a.result and not a.result.ok else None)
        if cause:
            out[cause] = out.get(cause, 0) + 1
    return out
