"""The run's progress bar: redrawn in place on a terminal, one plain line per update into a file or a pipe."""

from __future__ import annotations

import sys

from tqdm import tqdm

LOG_EVERY_S = 10.0  # not a terminal: a line at most this often (a log, not an animation)


class LineStream:
    """A text stream that turns tqdm's carriage-return redraws into whole lines."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        line = text.replace("\r", "").strip()
        if line:
            self.stream.write(line + "\n")
        return len(text)

    def flush(self) -> None:
        self.stream.flush()


def progress_bar(total: int, desc: str, enabled: bool, stream=None) -> tqdm:
    """A tqdm bar on stream (default stderr): a live bar on a terminal, else a line per update."""
    stream = stream or sys.stderr
    if getattr(stream, "isatty", lambda: False)():
        return tqdm(total=total, desc=desc, unit="step", disable=not enabled, dynamic_ncols=True, file=stream)
    return tqdm(
        total=total,
        desc=desc,
        unit="step",
        disable=not enabled,
        file=LineStream(stream),
        ncols=100,
        mininterval=LOG_EVERY_S,
        ascii=True,
    )
