"""llm.jsonl recording of every exchange, and a replay backend that answers from it by request hash."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path


def request_hash(messages: list[dict], model: str, params: dict) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of {messages, model, params}."""
    canon = json.dumps(
        {
            "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
            "model": model,
            "params": params,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


class Recorder:
    """Appends one JSON line per exchange (successful or failed) to `path`, typically <run>/llm.jsonl."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def record(
        self,
        *,
        messages: list[dict],
        model: str,
        params: dict,
        reply: str | None,
        latency_s: float,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        error: str | None = None,
        **extra,
    ) -> dict:
        entry = {
            "request_hash": request_hash(messages, model, params),
            "messages": messages,
            "model": model,
            "params": params,
            "reply": reply,
            "latency_s": round(latency_s, 6),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "error": error,
            "time": time.time(),
            **extra,
        }
        line = json.dumps(entry, ensure_ascii=False)
        with self._lock, self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
        return entry


class ReplayMiss(KeyError):
    """No successful recorded exchange has this request hash."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0] if self.args else "replay miss"


class ReplayBackend:
    """Answers from a recorded llm.jsonl: same request -> same reply and token counts, no LLM needed.

    Failed exchanges (error set, no reply) are skipped. When one request was recorded several times (e.g.
    re-asked at temperature > 0), the answers are given back in recorded order, the last one repeating.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"replay file {self.path} does not exist")
        self._answers: dict[str, list[dict]] = {}
        self._next: dict[str, int] = {}
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                e = json.loads(line)
            except json.JSONDecodeError as ex:
                raise ValueError(f"{self.path}:{n}: not JSON ({ex.msg})") from None
            if e.get("error") is None and e.get("reply") is not None:
                self._answers.setdefault(e["request_hash"], []).append(e)

    def __len__(self) -> int:
        return sum(len(v) for v in self._answers.values())

    def lookup(self, messages: list[dict], model: str, params: dict) -> dict:
        """The recorded entry for this request; ReplayMiss naming the hash when there is none."""
        h = request_hash(messages, model, params)
        answers = self._answers.get(h)
        if not answers:
            raise ReplayMiss(
                f"no recorded reply for request hash {h} (model {model!r}) in {self.path}; "
                "the prompt, model or parameters differ from the recorded run"
            )
        i = self._next.get(h, 0)
        self._next[h] = i + 1
        return answers[min(i, len(answers) - 1)]
