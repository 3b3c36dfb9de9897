"""LLM endpoint settings (pydantic), resolved from explicit values first, then OPENAI_* environment variables."""

from __future__ import annotations

import os
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

LOCAL_BASE_URL = "http://127.0.0.1:8765/v1"  # the project's own offline server (started elsewhere)
LOCAL_API_KEY = "local"  # the openai package refuses an empty key; the local server ignores it
ENV_VARS = {"base_url": "OPENAI_BASE_URL", "api_key": "OPENAI_API_KEY", "model": "OPENAI_MODEL"}


class LLMConfig(BaseModel):
    """Which backend answers, where, with what model, and how patiently.

    Resolution order for base_url / api_key / model: a value given explicitly (file, --set, constructor)
    wins; otherwise, for backend "openai", `with_env()` (which the client calls) fills it from OPENAI_BASE_URL /
    OPENAI_API_KEY / OPENAI_MODEL; otherwise backend "local" uses LOCAL_BASE_URL and a dummy key (the environment
    never redirects the offline default), and backend "openai" leaves base_url to the openai package's default.
    Backend "replay" needs only replay_file.
    """

    model_config = ConfigDict(extra="forbid")
    # local: the project's offline server; openai: an OpenAI-compatible API; replay: the answers in replay_file
    backend: Literal["openai", "replay", "local"] = "local"
    # the API's address; unset: the local server (local) or the openai package's default (openai)
    base_url: str | None = None
    api_key: str | None = None  # unset: a dummy key (local) or the openai package's default, $OPENAI_API_KEY (openai)
    model: str = "default"  # model name sent with each request
    timeout_s: float = Field(60.0, gt=0)  # per request, s
    max_retries: int = Field(3, ge=0)  # retries after the first try, with exponential backoff
    backoff_s: float = Field(0.5, ge=0)  # first backoff; doubled each retry, capped at backoff_max_s
    backoff_max_s: float = Field(8.0, ge=0)  # longest wait between retries, s
    temperature: float = Field(0.0, ge=0)  # sampling temperature
    max_tokens: int = Field(1024, gt=0)  # longest reply, in tokens
    context_tokens: int = Field(10_000, gt=0)  # RELED's cap on the prompt
    replay_file: str | None = None  # backend = "replay": the recorded llm.jsonl the answers come from

    @model_validator(mode="after")
    def _check(self) -> "LLMConfig":
        if self.backend == "replay" and not self.replay_file:
            raise ValueError("backend 'replay' needs replay_file (a recorded llm.jsonl)")
        return self

    def with_env(self, env: Mapping[str, str] | None = None) -> "LLMConfig":
        """Backend "openai": base_url / api_key / model not set explicitly come from OPENAI_BASE_URL /
        OPENAI_API_KEY / OPENAI_MODEL where those are set; other backends are returned as they are."""
        env = os.environ if env is None else env
        if self.backend != "openai":
            return self
        fill = {f: env[v] for f, v in ENV_VARS.items() if f not in self.model_fields_set and env.get(v)}
        return self.model_copy(update=fill) if fill else self

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **explicit) -> "LLMConfig":
        """Explicit keyword values, else (backend "openai") the OPENAI_* variables, else defaults."""
        return cls(**explicit).with_env(env)

    def resolved_base_url(self) -> str | None:
        """The URL the client talks to (None: the openai package's default)."""
        if self.base_url:
            return self.base_url
        return LOCAL_BASE_URL if self.backend == "local" else None

    def resolved_api_key(self) -> str | None:
        """The key sent; the local backend gets a dummy one when none is set."""
        if self.api_key:
            return self.api_key
        return LOCAL_API_KEY if self.backend == "local" else None

    def params(self) -> dict:
        """The sampling parameters that go into each request (and into its hash)."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens}
