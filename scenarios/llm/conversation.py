"""Multi-turn conversation under a token budget: system prompt always kept, oldest turns dropped first."""

from __future__ import annotations

import math
from typing import Callable

TRUNCATION_MARKER = "[... earlier part truncated to fit the context budget ...]\n"
PER_MESSAGE_OVERHEAD = 4  # role and separators, roughly what chat templates add per message


def approx_tokens(text: str) -> int:
    """A model-free estimate: ceil(chars / 4)."""
    return math.ceil(len(text) / 4)


class Conversation:
    """System prompt plus alternating user/assistant turns; `messages()` fits them into `budget_tokens`.

    Fitting rule: the system prompt is always sent. Turns are grouped into exchanges (a user message and the
    assistant reply that follows it); whole exchanges are dropped oldest first until the rest fits. The newest
    user message is always sent: if it alone does not fit beside the system prompt, it is truncated from the
    FRONT (its end, usually the latest feedback and the instruction, survives) and TRUNCATION_MARKER is put
    where the cut was. If the system prompt alone exceeds the budget it is still sent whole (the caller's
    error to fix). Each message costs count_tokens(content) + PER_MESSAGE_OVERHEAD.
    """

    def __init__(self, system: str, budget_tokens: int = 10_000, count_tokens: Callable[[str], int] = approx_tokens):
        if budget_tokens <= 0:
            raise ValueError("budget_tokens must be positive")
        self.system = system
        self.budget_tokens = budget_tokens
        self.count_tokens = count_tokens
        self.turns: list[dict] = []

    def add_user(self, content: str) -> None:
        self.turns.append({"role": "user", "content": content})

    def add_assistant(self, content: str) -> None:
        self.turns.append({"role": "assistant", "content": content})

    def cost(self, message: dict) -> int:
        return self.count_tokens(message["content"]) + PER_MESSAGE_OVERHEAD

    def _exchanges(self) -> list[list[dict]]:
        groups: list[list[dict]] = []
        for t in self.turns:
            if t["role"] == "user" or not groups:
                groups.append([t])
            else:
                groups[-1].append(t)
        return groups

    def _truncate_front(self, content: str, budget: int) -> str:
        """The longest suffix of content that, with the marker, costs at most `budget` tokens."""
        lo, hi = 0, len(content)  # binary search over the number of characters kept
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.count_tokens(TRUNCATION_MARKER + content[len(content) - mid :]) + PER_MESSAGE_OVERHEAD <= budget:
                lo = mid
            else:
                hi = mid - 1
        return TRUNCATION_MARKER + content[len(content) - lo :]

    def messages(self) -> list[dict]:
        """System message plus the newest exchanges that fit the budget (see class docstring)."""
        system = {"role": "system", "content": self.system}
        left = self.budget_tokens - self.cost(system)
        groups = self._exchanges()
        kept: list[list[dict]] = []
        for i, group in enumerate(reversed(groups)):
            cost = sum(self.cost(m) for m in group)
            if cost <= left:
                kept.append(group)
                left -= cost
                continue
            if i == 0:  # the newest exchange must go out: truncate its oversized user message
                first = group[0]
                kept.append([{"role": first["role"], "content": self._truncate_front(first["content"], max(left, 0))}])
            break  # never skip an exchange and keep an older one: the history stays contiguous
        return [system] + [m for group in reversed(kept) for m in group]

    def tokens(self) -> int:
        """Estimated cost of what `messages()` would send now."""
        return sum(self.cost(m) for m in self.messages())
