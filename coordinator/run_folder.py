"""The run folder's writers: a fresh folder, the resolved config.toml, and the metrics.jsonl sink."""
from __future__ import annotations

import json
import time
from pathlib import Path

import tomli_w

from scenarios.config import ConfigError, ScenarioConfig


def check_new_run_dir(run_dir: Path) -> None:
    """Refuse to mix two runs in one folder."""
    if (Path(run_dir) / "config.toml").exists():
        raise ConfigError(f"{run_dir} already holds a run; choose another --out or remove it")


def _drop_none(obj):
    """TOML has no null: leave unset optional fields out."""
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    return obj


def config_toml(data: dict) -> str:
    """A configuration as TOML text (unset optional fields left out)."""
    return tomli_w.dumps(_drop_none(data))


def write_config(run_dir: Path, cfg: ScenarioConfig) -> None:
    """The resolved configuration (file, --set and --seed applied) as config.toml."""
    (Path(run_dir) / "config.toml").write_text(config_toml(cfg.model_dump(mode="json")))


class MetricsSink:
    """Appends every metrics record to metrics.jsonl, one JSON object per line, flushed per line."""

    def __init__(self, path: Path):
        self.fh = open(path, "a", buffering=1)

    def write(self, node: str, kind: str, values: dict, final: bool = False) -> None:
        """Append one record."""
        self.fh.write(json.dumps({"wall": round(time.time(), 3), "node": node, "kind": kind, "final": final, **values},
                                 default=str) + "\n")

    def close(self) -> None:
        """Close the file."""
        self.fh.close()
