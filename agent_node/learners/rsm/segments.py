"""Actor flattening, uniform segments and replica reconstruction for RSM (RSM-MASAC paper, Sec. V-A1, eqs. 16-17;
docs/rsm_masac.md, R-A10)."""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Literal

import numpy as np
import torch
from torch import nn

P_DEFAULT = 4  # segmentation granularity P (Table IV)
KAPPA_DEFAULT = 3  # predefined replicas kappa (Table IV)

PartitionRule = Literal["canonical", "code"]


# ---------------------------------------------------------------------------------------------- flat vectors
def flatten(module: nn.Module) -> np.ndarray:
    """All parameters of module, in parameters() order, as one new float32 numpy vector (the wire format)."""
    vec = nn.utils.parameters_to_vector(module.parameters()).detach().cpu()
    return vec.numpy().astype(np.float32, copy=True)


def load_flat(module: nn.Module, vec: np.ndarray) -> None:
    """Copy a flat vector from flatten() back into module's parameters, in place (dtype of the module kept)."""
    n = sum(p.numel() for p in module.parameters())
    if vec.shape != (n,):
        raise ValueError(f"flat vector has shape {vec.shape}, module needs ({n},)")
    ref = next(module.parameters())
    with torch.no_grad():
        nn.utils.vector_to_parameters(torch.as_tensor(vec, dtype=ref.dtype, device=ref.device), module.parameters())


# ---------------------------------------------------------------------------------------------- segments
def segment_bounds(d: int, n_segments: int, rule: PartitionRule = "canonical") -> np.ndarray:
    """Boundaries b_0 = 0 < ... < b_P = d of the P contiguous segments of a d-vector (eq. 16).

    The default "canonical" (docs/rsm_masac.md, R-A10): b_p = floor(p * d / P), sizes differ by at most one.
    "code" reproduces the reference code: length L = floor(d / P) + 1, the last segment shorter
    (17,025 x 3 + 17,023 for d = 68,098, P = 4); it can leave an empty last segment for some (d, P).
    Requester and responder must use the same rule and the requester's P_i.
    """
    if not 1 <= n_segments <= d:
        raise ValueError(f"need 1 <= n_segments <= d, got n_segments={n_segments}, d={d}")
    p = np.arange(n_segments + 1, dtype=np.int64)
    if rule == "canonical":
        return p * d // n_segments
    if rule == "code":
        return np.minimum(p * (d // n_segments + 1), d)
    raise ValueError(f"unknown partition rule {rule!r}")


def segment(vec: np.ndarray, n_segments: int, p: int, rule: PartitionRule = "canonical") -> np.ndarray:
    """Segment p (0-based) of vec cut into n_segments: the answer to request (i, P_i, j_p, p) (Sec. V-A1)."""
    b = segment_bounds(vec.shape[0], n_segments, rule)
    if not 0 <= p < n_segments:
        raise IndexError(f"segment {p} out of range for {n_segments} segments")
    return vec[b[p] : b[p + 1]].copy()


def split(vec: np.ndarray, n_segments: int, rule: PartitionRule = "canonical") -> list[np.ndarray]:
    """theta = (theta_1, ..., theta_P): all n_segments non-overlapping contiguous segments (eq. 16)."""
    b = segment_bounds(vec.shape[0], n_segments, rule)
    return [vec[b[p] : b[p + 1]].copy() for p in range(n_segments)]


def reassemble(segments: Sequence[np.ndarray], d: int | None = None) -> np.ndarray:
    """theta~ = (theta_1^(j_1), ..., theta_P^(j_P)): concatenate segments in index order (eq. 17)."""
    vec = np.concatenate([np.asarray(s, dtype=np.float32) for s in segments])
    if d is not None and vec.shape[0] != d:
        raise ValueError(f"reassembled {vec.shape[0]} values, expected {d}")
    return vec


# ---------------------------------------------------------------------------------------------- replicas
def n_segments_for(n_neighbours: int, P: int = P_DEFAULT) -> int:
    """P_i = min(P, |Omega_i|) (Sec. V-A1, Alg. 2 line 2)."""
    return min(P, n_neighbours)


def n_replicas_for(n_neighbours: int, kappa: int = KAPPA_DEFAULT) -> int:
    """kappa_i = min(kappa, |Omega_i|) (Sec. V-A1, Alg. 2 line 2)."""
    return min(kappa, n_neighbours)


def plan_replicas(
    neighbours: Sequence[Hashable], rng: np.random.Generator, P: int = P_DEFAULT, kappa: int = KAPPA_DEFAULT
) -> list[list[Hashable]]:
    """Donors [j_1..j_P_i] for each of the kappa_i replicas of one round (Sec. V-A1; docs/rsm_masac.md, R-A9).

    Each replica draws an independent permutation of Omega_i and takes j_p = shuffled[p], so the P_i donors of one
    replica are distinct (without replacement) while a neighbour may serve other indices in other replicas.
    No neighbours means no replicas. The requester itself must not be in neighbours.
    """
    n = len(neighbours)
    n_seg, n_rep = n_segments_for(n, P), n_replicas_for(n, kappa)
    return [[neighbours[k] for k in rng.permutation(n)[:n_seg]] for _ in range(n_rep)]


def build_replica(
    donors: Sequence[Hashable], params: Mapping[Hashable, np.ndarray], rule: PartitionRule = "canonical"
) -> np.ndarray:
    """The referential policy theta~ for one replica: segment p of donor j_p, P_i = len(donors) (eq. 17)."""
    n_seg = len(donors)
    d = params[donors[0]].shape[0]
    return reassemble([segment(params[j], n_seg, p, rule) for p, j in enumerate(donors)], d)
