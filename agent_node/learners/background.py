"""One learning update at a time on a worker thread, so that an agent can answer while it learns."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


class BackgroundUpdate:
    """Runs fn() on one worker thread; `join()` waits for it and re-raises what it raised. A new update
    starts only once the previous one is joined, so at most one runs, and the caller says when it is
    applied: the points at which it joins are its own (deterministic, not timing-dependent)."""

    def __init__(self, name: str = "learner"):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._running: Future | None = None

    @property
    def busy(self) -> bool:
        """Whether an update was started and not yet joined."""
        return self._running is not None

    def start(self, fn: Callable[[], Any]) -> None:
        if self._running is not None:
            raise RuntimeError("the previous update was not joined")
        self._running = self._pool.submit(fn)

    def join(self) -> Any:
        """The running update's result (None if none was started)."""
        running, self._running = self._running, None
        return None if running is None else running.result()

    def close(self) -> None:
        """Finish the running update (its error is raised) and stop the thread."""
        try:
            self.join()
        finally:
            self._pool.shutdown(wait=True)
