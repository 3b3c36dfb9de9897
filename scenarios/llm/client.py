"""LLMClient: one chat completion per call via the openai package (or replay), with retries, errors and recording."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .config import LLMConfig
from .recorder import Recorder, ReplayBackend

RETRY_STATUS = {408, 409, 429}  # plus every 5xx


class LLMError(RuntimeError):
    """The request failed for a reason retrying will not fix (bad request, unknown model, ...)."""


class LLMUnavailable(LLMError):
    """The endpoint could not be reached, timed out, or kept answering 429/5xx through every retry."""


class LLMAuthError(LLMError):
    """The endpoint rejected the API key (401/403), or no key is configured."""


@dataclass(frozen=True)
class Completion:
    """One reply: its text, token counts (None when the server did not say), latency and the model named."""

    text: str
    prompt_tokens: int | None
    completion_tokens: int | None
    latency_s: float
    model: str


class LLMClient:
    """Sends `messages` to the configured backend; records each exchange (errors included) when given a Recorder.

    Retries: the openai client is built with max_retries=0 and this class retries connection errors, timeouts,
    408/409/429 and 5xx up to config.max_retries times, sleeping backoff_s * 2**k (capped at backoff_max_s)
    between tries. 401/403 raise LLMAuthError at once; other 4xx raise LLMError at once. One llm.jsonl line is
    written per complete() call, with the number of attempts.
    """

    def __init__(
        self, config: LLMConfig, recorder: Recorder | None = None, sleep: Callable[[float], None] = time.sleep
    ):
        self.config = config = config.with_env()
        self.recorder = recorder
        self._sleep = sleep
        self._replay: ReplayBackend | None = None
        self._client = None
        self._attempts = 0  # tries made by the current/last complete() call
        self.base_url = config.resolved_base_url()
        self._counters = {
            "calls": 0,
            "failures": 0,
            "retries": 0,
            "prompt_tokens": 0,
            "completion_tokens": 0,
            "latency_total_s": 0.0,
        }
        if config.backend == "replay":
            self._replay = ReplayBackend(config.replay_file)
            self.base_url = f"replay:{config.replay_file}"
        else:
            import openai

            key = config.resolved_api_key()
            try:
                self._client = openai.OpenAI(
                    base_url=self.base_url, api_key=key, timeout=config.timeout_s, max_retries=0
                )
            except openai.OpenAIError as e:
                raise LLMAuthError(
                    f"no API key for backend {config.backend!r}: set llm.api_key or OPENAI_API_KEY ({e})"
                ) from None
            self.base_url = str(self._client.base_url)

    # ------------------------------------------------------------------ public
    def complete(self, messages: list[dict]) -> Completion:
        """Ask for one reply to `messages` (system/user/assistant dicts with role and content)."""
        messages = [{"role": m["role"], "content": m["content"]} for m in messages]
        params = self.config.params()
        model = self.config.model
        t0 = time.monotonic()
        self._attempts = 0
        try:
            if self._replay is not None:
                self._attempts = 1
                e = self._replay.lookup(messages, model, params)
                out = Completion(
                    e["reply"],
                    e.get("prompt_tokens"),
                    e.get("completion_tokens"),
                    time.monotonic() - t0,
                    e.get("model", model),
                )
            else:
                out = self._call_with_retries(messages, model, params)
        except Exception as exc:
            latency = time.monotonic() - t0
            self._counters["calls"] += 1
            self._counters["failures"] += 1
            self._counters["latency_total_s"] += latency
            self._record(
                messages, model, params, None, latency, None, None, f"{type(exc).__name__}: {exc}", self._attempts
            )
            raise
        self._counters["calls"] += 1
        self._counters["prompt_tokens"] += out.prompt_tokens or 0
        self._counters["completion_tokens"] += out.completion_tokens or 0
        self._counters["latency_total_s"] += out.latency_s
        self._record(
            messages,
            model,
            params,
            out.text,
            out.latency_s,
            out.prompt_tokens,
            out.completion_tokens,
            None,
            self._attempts,
        )
        return out

    def metrics(self) -> dict:
        """Counters since construction: calls, failures, retries, tokens in/out, mean latency (s)."""
        c = self._counters
        return {
            "calls": c["calls"],
            "failures": c["failures"],
            "retries": c["retries"],
            "tokens_in": c["prompt_tokens"],
            "tokens_out": c["completion_tokens"],
            "mean_latency_s": c["latency_total_s"] / c["calls"] if c["calls"] else 0.0,
        }

    # ----------------------------------------------------------------- private
    def _record(self, messages, model, params, reply, latency, pt, ct, error, attempts) -> None:
        if self.recorder is not None:
            self.recorder.record(
                messages=messages,
                model=model,
                params=params,
                reply=reply,
                latency_s=latency,
                prompt_tokens=pt,
                completion_tokens=ct,
                error=error,
                backend=self.config.backend,
                base_url=self.base_url,
                attempts=attempts,
            )

    def _backoff(self, k: int) -> float:
        return min(self.config.backoff_s * (2**k), self.config.backoff_max_s)

    def _call_with_retries(self, messages, model, params) -> Completion:
        import openai

        tries = self.config.max_retries + 1
        last = ""
        for k in range(tries):
            if k:
                self._counters["retries"] += 1
                self._sleep(self._backoff(k - 1))
            t0 = time.monotonic()
            self._attempts = k + 1
            try:
                resp = self._client.chat.completions.create(model=model, messages=messages, **params)
            except openai.APITimeoutError:
                last = f"timed out after {self.config.timeout_s:g} s"
                continue
            except openai.APIConnectionError as e:
                cause = e.__cause__ or e
                last = f"connection failed ({type(cause).__name__}: {cause})"
                continue
            except openai.APIStatusError as e:
                code = e.status_code
                if code in (401, 403):
                    raise LLMAuthError(
                        f"LLM endpoint {self.base_url} rejected the API key (HTTP {code}): {_short(e)}"
                    ) from None
                if code in RETRY_STATUS or code >= 500:
                    last = f"HTTP {code}: {_short(e)}"
                    continue
                raise LLMError(f"LLM endpoint {self.base_url} refused the request (HTTP {code}): {_short(e)}") from None
            latency = time.monotonic() - t0
            text = (resp.choices[0].message.content or "") if resp.choices else ""
            usage = resp.usage
            return Completion(
                text,
                usage.prompt_tokens if usage else None,
                usage.completion_tokens if usage else None,
                latency,
                resp.model or model,
            )
        raise LLMUnavailable(f"LLM endpoint {self.base_url} unavailable after {tries} attempt(s): {last}")


def _short(e: Exception, n: int = 300) -> str:
    s = str(e)
    return s if len(s) <= n else s[:n] + "..."
