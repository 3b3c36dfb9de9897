"""One learning update at a time on a worker thread, so that an agent can answer while it learns."""
from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable


def run_only_when_idle() -> None:
    """Put the calling thread in Linux's SCHED_IDLE class (nice 19 where that is refused or not Linux): it gets
    a core only when no normal thread wants one, so the lock-step's threads (this process's main thread, the
    world, the other agents) never wait behind a background update."""
    try:
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))  # 0: this thread
    except (AttributeError, OSError):
        try:
            os.setpriority(os.PRIO_PROCESS, 0, 19)
        except (AttributeError, OSError):
            pass


class BackgroundUpdate:
    """Runs fn() on one worker thread; `join()` waits for it and re-raises what it raised. A new update
    starts only once the previous one is joined, so at most one runs, and the caller says when it is
    applied: the points at which it joins are its own (deterministic, not timing-dependent)."""

    def __init__(self, name: str = "learner"):
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name, initializer=run_only_when_idle)
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
