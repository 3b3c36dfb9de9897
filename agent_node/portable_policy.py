"""Portable policies: a trained actor as one .npz (float32 weights + JSON description), run with numpy alone."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "netmarl-portable-policy"
VERSION = 1
KIND = "squashed_gaussian_actor"
DESCRIPTION_KEY = "__description__"  # the JSON description, stored as a 0-d unicode array inside the .npz
ACTIVATIONS = ("relu", "tanh", "softplus")

# Format, version 1. One .npz holding float32 arrays plus DESCRIPTION_KEY, a JSON object:
#   {"format": FORMAT, "version": 1, "kind": KIND, "obs_dim": o, "act_dim": a,
#    "trunk": [layer, ...],                            # shared body, applied in order
#    "heads": {"mu": [layer, ...], "std": [layer, ...]},  # each applied in order to the trunk output
#    "std_floor": 1e-5,                                # sigma = std head output + std_floor
#    "action_bound": b,                                # deterministic action = b * tanh(mu), in [-b, b]
#    "meta": {...}}                                    # free-form provenance (optional, not interpreted)
# layer = {"type": "linear", "in": n, "out": m, "weight": KEY, "bias": KEY}   y = x @ W.T + b,
#                                                        W float32 [m, n] (torch layout), b float32 [m]
#       | {"type": "relu" | "tanh" | "softplus"}        softplus(x) = log(1 + exp(x)), as torch with beta=1


def _act_fn(name: str, x: np.ndarray) -> np.ndarray:
    if name == "relu":
        return np.maximum(x, np.float32(0))
    if name == "tanh":
        return np.tanh(x)
    return np.logaddexp(np.float32(0), x).astype(np.float32, copy=False)  # softplus


class PortablePolicy:
    """A loaded, validated portable policy; `act(obs)` is the deterministic action bound * tanh(mu)."""

    def __init__(self, description: dict[str, Any], arrays: dict[str, np.ndarray]):
        self.description = description
        self.arrays = arrays
        _validate(description, arrays)
        self.obs_dim = int(description["obs_dim"])
        self.act_dim = int(description["act_dim"])
        self.action_bound = np.float32(description["action_bound"])
        self.std_floor = np.float32(description["std_floor"])
        self._trunk = self._compile(description["trunk"])
        self._mu = self._compile(description["heads"]["mu"])
        self._std = self._compile(description["heads"]["std"])

    @classmethod
    def load(cls, path: str | Path) -> PortablePolicy:
        """Read and validate a policy file written by export; ValueError says what is wrong."""
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        if DESCRIPTION_KEY not in data:
            raise ValueError(f"{path}: not a portable policy (no {DESCRIPTION_KEY!r} entry)")
        try:
            description = json.loads(str(data.pop(DESCRIPTION_KEY)))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}: description is not valid JSON: {e}") from None
        return cls(description, data)

    def _compile(self, layers: list[dict[str, Any]]) -> list[tuple[str, Any]]:
        return [
            ("linear", (self.arrays[layer["weight"]].T.copy(), self.arrays[layer["bias"]]))
            if layer["type"] == "linear"
            else (layer["type"], None)
            for layer in layers
        ]

    @staticmethod
    def _run(ops: list[tuple[str, Any]], x: np.ndarray) -> np.ndarray:
        for kind, p in ops:
            x = x @ p[0] + p[1] if kind == "linear" else _act_fn(kind, x)
        return x

    def distribution(self, obs) -> tuple[np.ndarray, np.ndarray]:
        """Pre-tanh Gaussian (mu, sigma), each [a] for obs [o] or [B, a] for obs [B, o]."""
        x = np.asarray(obs, dtype=np.float32)
        if x.ndim not in (1, 2) or x.shape[-1] != self.obs_dim:
            raise ValueError(f"obs must have shape [{self.obs_dim}] or [B, {self.obs_dim}], got {list(x.shape)}")
        h = self._run(self._trunk, x)
        return self._run(self._mu, h), self._run(self._std, h) + self.std_floor

    def act(self, obs) -> np.ndarray:
        """Deterministic action bound * tanh(mu): [a] for obs [o], [B, a] for obs [B, o], float32 in [-bound, bound]."""
        mu, _ = self.distribution(obs)
        b = self.action_bound
        return np.clip(b * np.tanh(mu), -b, b)

    def n_params(self) -> int:
        return int(sum(a.size for a in self.arrays.values()))

    def describe(self) -> str:
        """One human-readable line per layer, e.g. for `netmarl export` to print."""
        d = self.description

        def fmt(layers):
            return " -> ".join(
                f"linear {layer['in']}x{layer['out']}" if layer["type"] == "linear" else layer["type"]
                for layer in layers
            )

        lines = [
            f"{d['kind']} v{d['version']}: obs {self.obs_dim} -> action {self.act_dim}, "
            f"{self.n_params():,} float32 parameters",
            f"  trunk: {fmt(d['trunk'])}",
            f"  mu:    {fmt(d['heads']['mu'])}",
            f"  std:   {fmt(d['heads']['std'])} (+ {d['std_floor']:g})",
            f"  action = {d['action_bound']:g} * tanh(mu)",
        ]
        if d.get("meta"):
            lines.append(f"  meta: {json.dumps(d['meta'], sort_keys=True)}")
        return "\n".join(lines)


def _validate(d: Any, arrays: dict[str, np.ndarray]) -> None:
    """Raise ValueError naming the first inconsistency between the description and the arrays."""
    if not isinstance(d, dict):
        raise ValueError("description must be a JSON object")
    if d.get("format") != FORMAT:
        raise ValueError(f"description format is {d.get('format')!r}, expected {FORMAT!r}")
    if d.get("version") != VERSION:
        raise ValueError(f"unsupported format version {d.get('version')!r} (this reader knows {VERSION})")
    if d.get("kind") != KIND:
        raise ValueError(f"unsupported policy kind {d.get('kind')!r}, expected {KIND!r}")
    for key in ("obs_dim", "act_dim"):
        if not isinstance(d.get(key), int) or isinstance(d.get(key), bool) or d[key] <= 0:
            raise ValueError(f"{key} must be a positive integer, got {d.get(key)!r}")
    for key, lo in (("action_bound", 0.0), ("std_floor", -1.0)):
        v = d.get(key)
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= lo:
            raise ValueError(f"{key} must be a finite number > {lo:g}, got {v!r}")
    if d["std_floor"] < 0:
        raise ValueError(f"std_floor must be >= 0, got {d['std_floor']!r}")
    heads = d.get("heads")
    if not isinstance(heads, dict) or set(heads) != {"mu", "std"}:
        raise ValueError(f"heads must be an object with exactly 'mu' and 'std', got {heads!r}")

    used: set[str] = set()

    def check(name: str, layers: Any, width: int) -> int:
        if not isinstance(layers, list):
            raise ValueError(f"{name} must be a list of layers")
        for i, layer in enumerate(layers):
            where = f"{name}[{i}]"
            t = layer.get("type") if isinstance(layer, dict) else None
            if t in ACTIVATIONS:
                continue
            if t != "linear":
                raise ValueError(f"{where}: unknown layer type {t!r} (known: linear, {', '.join(ACTIVATIONS)})")
            n, m = layer.get("in"), layer.get("out")
            if not (isinstance(n, int) and isinstance(m, int) and n > 0 and m > 0):
                raise ValueError(f"{where}: linear needs positive integer in/out, got in={n!r} out={m!r}")
            if n != width:
                raise ValueError(f"{where}: linear in={n} but its input has width {width}")
            for role, shape in (("weight", (m, n)), ("bias", (m,))):
                key = layer.get(role)
                if key not in arrays:
                    raise ValueError(f"{where}: {role} array {key!r} missing from the file")
                a = arrays[key]
                if a.shape != shape:
                    raise ValueError(
                        f"{where}: {role} {key!r} has shape {list(a.shape)}, expected {list(shape)} for linear {n}->{m}"
                    )
                if a.dtype != np.float32:
                    raise ValueError(f"{where}: {role} {key!r} has dtype {a.dtype}, expected float32")
                if not np.all(np.isfinite(a)):
                    raise ValueError(f"{where}: {role} {key!r} contains NaN or inf")
                used.add(key)
            width = m
        return width

    width = check("trunk", d.get("trunk"), d["obs_dim"])
    for head in ("mu", "std"):
        out = check(f"heads.{head}", heads[head], width)
        if out != d["act_dim"]:
            raise ValueError(f"heads.{head} outputs width {out}, expected act_dim={d['act_dim']}")
    extra = sorted(set(arrays) - used)
    if extra:
        raise ValueError(f"arrays not referenced by the description: {extra}")
