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


def pick(cdf: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Inverse-CDF draw: cdf rows (last entry exactly 1) and uniforms of the same leading shape."""
    return (cdf <= u[..., None]).sum(axis=-1)


def generator(seed: int, episode: int, stream: int) -> np.random.Generator:
    """A numpy Generator for one (seed, episode, stream): the population draw and the poll draws."""
    return np.random.default_rng([seed, episode, stream])
