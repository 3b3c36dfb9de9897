"""Counter-based random numbers: one uniform per (seed, stream, episode, agent, step), in every process.

The vectorised simulator and each robot process draw the same numbers, so a distributed run replays
the simulator.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31, _S11 = (np.uint64(s) for s in (30, 27, 31, 11))
_INV_2_53 = 2.0**-53

# stream tags: which decision a draw belongs to
GLOBAL_INIT, GLOBAL_STEP, LOCAL_INIT, LOCAL_ACTION, LOCAL_STEP = 1, 2, 3, 4, 5
POPULATION, POLLS = 6, 7  # seeds of the numpy Generators for the initial population and the poll draws
LAYOUT = 8  # each robot's radial position on the floor


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (wrapping uint64 arithmetic)."""
    x = (x ^ (x >> _S30)) * _M1
    x = (x ^ (x >> _S27)) * _M2
    return x ^ (x >> _S31)


def uniforms(seed: int, stream: int, episode, agent, step) -> np.ndarray:
    """Uniform draws in [0, 1), one per broadcast element of (episode, agent, step)."""
    with np.errstate(over="ignore"):
        h = _mix(np.atleast_1d(np.asarray(seed, dtype=np.uint64)) * _GOLDEN + np.uint64(stream))
        for key in (episode, agent, step):
            h = _mix(h ^ (np.asarray(key, dtype=np.int64).astype(np.uint64) + _GOLDEN))
    return (h >> _S11) * _INV_2_53


_MASK = (1 << 64) - 1
_GOLDEN_INT, _M1_INT, _M2_INT = int(_GOLDEN), int(_M1), int(_M2)


def _mix_int(x: int) -> int:
    """_mix on one Python int (the same wrapping uint64 arithmetic)."""
    x = ((x ^ (x >> 30)) * _M1_INT) & _MASK
    x = ((x ^ (x >> 27)) * _M2_INT) & _MASK
    return x ^ (x >> 31)


def uniform(seed: int, stream: int, episode: int, agent: int, step: int) -> float:
    """uniforms() for one (episode, agent, step), bit for bit, in plain Python: a robot process draws its own
    numbers in a few microseconds instead of the tens that numpy's per-call overhead costs on scalars."""
    h = _mix_int((((seed & _MASK) * _GOLDEN_INT) + stream) & _MASK)
    for key in (episode, agent, step):
        h = _mix_int(h ^ (((key & _MASK) + _GOLDEN_INT) & _MASK))
    return (h >> 11) * _INV_2_53


def pick_one(cdf_row, u: float) -> int:
    """pick() for one row (a sequence of floats) and one uniform."""
    return sum(c <= u for c in cdf_row)


def pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: cdf rows (last entry exactly 1) and uniforms of the same leading shape."""
    return (cdf <= u[..., None]).sum(axis=-1)


def generator(seed: int, episode: int, stream: int) -> np.random.Generator:
    """A numpy Generator for one (seed, episode, stream): the population draw and the poll draws."""
    return np.random.default_rng([seed, episode, stream])
