"""Eq. 1-2 and Eq. 4: LLM_g writes a candidate, LLM_c reviews it (regenerate on a failed verdict), reflection."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from scenarios.espark.settings import ESparkSettings
from scenarios.espark.task import EnvDescription
from scenarios.llm.extract import extract_code
from scenarios.llm.service import LLMService, conversation_for

from .evolution import CheckResult
from .prompts import (
    checker_feedback,
    checker_review,
    checker_system,
    checker_user,
    generator_system,
    generator_user,
    parse_verdict,
)

log = logging.getLogger("coordinator.espark")


@dataclass
class Draft:
    """One generated candidate: the code (None when the reply held none), the checker's result, any call error."""

    code: str | None
    reply: str = ""
    check: CheckResult | None = None
    error: str | None = None


class Generator:
    """Keeps the generator's prompt (prom) and writes candidates; reflection replaces the last best/feedback pair
    (Eureka-style, docs/espark.md, E-A12) so the prompt stays bounded."""

    def __init__(self, settings: ESparkSettings, env: EnvDescription, run_dir: Path, service: LLMService | None):
        self.settings, self.env, self.service = settings, env, service
        self.reflection: tuple[str, str] | None = None  # (E_best's reply, the feedback message)
        self.files = [Path(f).read_text() for f in settings.function_files]
        self.drawn = 0

    def draft(self) -> Draft:
        """A candidate from the LLM (checked), or the next hand-written function (generator = "files")."""
        if self.service is None:
            code = self.files[self.drawn % len(self.files)]
            self.drawn += 1
            return Draft(code, reply=f"```python\n{code}\n```")
        try:
            return self._draft_llm()
        except Exception as err:  # noqa: BLE001 - an unreachable endpoint fails this candidate, not the run
            log.warning("LLM call failed: %s", err)
            return Draft(None, error=f"{type(err).__name__}: {err}")

    def _conversation(self):
        conv = conversation_for(self.service.config, generator_system(self.env))
        conv.add_user(generator_user(self.env))
        if self.reflection is not None:
            conv.add_assistant(self.reflection[0])
            conv.add_user(self.reflection[1])
        return conv

    def _draft_llm(self) -> Draft:
        conv = self._conversation()
        reply = self.service.client.complete(conv.messages()).text
        check = None
        if self.settings.checker:
            for round_ in range(1, self.settings.checker_rounds + 1):
                verdict = self.service.client.complete(self._checker_messages(reply)).text
                check = CheckResult(parse_verdict(verdict), round_, verdict)
                if check.passed is not False or round_ == self.settings.checker_rounds:
                    break  # passed, no verdict prefix (kept as is), or out of rounds: the last version stays
                conv.add_assistant(reply)
                conv.add_user(checker_feedback(verdict))
                reply = self.service.client.complete(conv.messages()).text
        return Draft(extract_code(reply), reply, check)

    def _checker_messages(self, reply: str) -> list[dict]:
        conv = conversation_for(self.service.config, checker_system(self.env))
        conv.add_user(checker_user(self.env) + "\n" + checker_review(reply))
        return conv.messages()

    def reflect(self, best_reply: str, feedback: str) -> None:
        """Eq. 4: the next candidates see E_best (as the assistant said it) and its policy feedback."""
        self.reflection = (best_reply, feedback)
