"""Atomic files: written beside their path, then renamed over it, so a crash mid-write leaves the previous
file whole (roles save their learners with it, worlds their counters, the coordinator its run files)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable


def write_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """write(tmp) fills a temporary file next to path; it then replaces path in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    write(tmp)
    os.replace(tmp, path)


def save_torch(obj: Any, path: Path) -> None:
    """torch.save, atomically."""
    import torch

    write_atomically(path, lambda tmp: torch.save(obj, tmp))


def load_torch(path: Path) -> Any:
    """A checkpoint saved with save_torch; FileNotFoundError naming it if there is none to resume from."""
    import torch

    if not Path(path).exists():
        raise FileNotFoundError(f"no checkpoint {path} to resume from")
    return torch.load(path, weights_only=False)


def save_json(obj: Any, path: Path, **dumps_options: Any) -> None:
    """A JSON file, atomically (a reader polling for it never sees it empty or half written)."""
    write_atomically(path, lambda tmp: tmp.write_text(json.dumps(obj, **dumps_options)))
