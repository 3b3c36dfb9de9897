"""One agent's side of a communication round: the requests, the chunks that come back, and the mix.

RSM-MASAC (RSM-MASAC paper, Sec. V-A, Alg. 2): kappa_i replicas, each stitched from P_i segments of distinct
neighbours, each mixed only if its estimated policy advantage A+ > 0, with the Theorem-2 weight.
Avg-MASAC (the paper's Sec. III-A2): the full actor of every neighbour, averaged uniformly with the agent's own.
Segments travel in CPM-sized chunks (the paper's Sec. V-B: 4,480-byte payloads, 1,120 float32 values); a chunk
that never arrives is filled with zeros or with the agent's own values (`loss_fill`; docs/rsm_masac.md, R-A12).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from ..sac import pre_tanh, squashed_log_prob
from .mixing import advantage_terms, batch_score, gaussian_entropy, mix, regulate
from .segments import load_flat, segment_bounds

LossFill = Literal["zero", "self"]


def chunk_count(length: int, chunk_floats: int) -> int:
    """CPM messages needed for a segment of `length` float32 values."""
    return max(1, math.ceil(length / chunk_floats))


@dataclass
class Replica:
    """One referential policy under construction: donor j_p of each segment p and what has arrived."""

    donors: list[str]
    bounds: np.ndarray  # segment boundaries in the flat actor (len(donors) + 1)
    chunk_floats: int
    values: np.ndarray = field(init=False)
    received: list[np.ndarray] = field(init=False)  # per segment: which chunks arrived

    def __post_init__(self):
        d = int(self.bounds[-1])
        self.values = np.zeros(d, np.float32)
        self.received = [
            np.zeros(chunk_count(int(b - a), self.chunk_floats), bool)
            for a, b in zip(self.bounds[:-1], self.bounds[1:])
        ]

    @property
    def chunks(self) -> int:
        return int(sum(len(r) for r in self.received))

    @property
    def chunks_received(self) -> int:
        return int(sum(int(r.sum()) for r in self.received))

    def complete(self) -> bool:
        return all(r.all() for r in self.received)

    def take(self, index: int, chunk: int, offset: int, length: int, values: np.ndarray) -> bool:
        """Store one chunk of segment `index`; False (and nothing stored) if it does not fit this replica."""
        if not 0 <= index < len(self.donors):
            return False
        start, stop = int(self.bounds[index]), int(self.bounds[index + 1])
        expected = chunk_count(stop - start, self.chunk_floats)
        if length != stop - start or not 0 <= chunk < expected or offset != chunk * self.chunk_floats:
            return False
        if values.dtype != np.float32 or values.shape != (min(self.chunk_floats, length - offset),):
            return False
        self.values[start + offset : start + offset + len(values)] = values
        self.received[index][chunk] = True
        return True

    def assemble(self, own: np.ndarray, fill: LossFill) -> np.ndarray:
        """theta~ with every missing chunk filled (zeros, or the agent's own values)."""
        out = self.values.copy()
        if fill == "self":
            for p, got in enumerate(self.received):
                start = int(self.bounds[p])
                for c in np.flatnonzero(~got):
                    a = start + c * self.chunk_floats
                    b = min(a + self.chunk_floats, int(self.bounds[p + 1]))
                    out[a:b] = own[a:b]
        return out


class PendingRound:
    """The replicas of one round, waiting for their chunks until the round's deadline."""

    def __init__(self, round_id: int, plans: list[list[str]], d: int, chunk_floats: int, deadline_t: float):
        self.round_id, self.deadline_t, self.d = round_id, deadline_t, d
        self.replicas = [Replica(donors, segment_bounds(d, len(donors)), chunk_floats) for donors in plans]

    def requests(self) -> list[tuple[str, int, int, int]]:
        """(donor, replica, segments, index) of every pull request of the round."""
        return [(j, r, len(rep.donors), p) for r, rep in enumerate(self.replicas) for p, j in enumerate(rep.donors)]

    def take(self, src: str, body, values: np.ndarray) -> bool:
        """Store a SegmentResponse chunk if it answers one of this round's requests from that donor."""
        if body.round != self.round_id or not 0 <= body.replica < len(self.replicas):
            return False
        rep = self.replicas[body.replica]
        if body.segments != len(rep.donors) or not 0 <= body.index < len(rep.donors) or rep.donors[body.index] != src:
            return False
        return rep.take(body.index, body.chunk, body.offset, body.length, values)

    def complete(self) -> bool:
        return all(rep.complete() for rep in self.replicas)


def response_chunks(theta: np.ndarray, segments: int, index: int, chunk_floats: int):
    """The chunks answering request (segments, index): (chunk, offset, length, values) each."""
    b = segment_bounds(theta.shape[0], segments)
    seg = theta[b[index] : b[index + 1]]
    n = chunk_count(len(seg), chunk_floats)
    for c in range(n):
        yield c, c * chunk_floats, len(seg), np.ascontiguousarray(seg[c * chunk_floats : (c + 1) * chunk_floats])


# ---------------------------------------------------------------------------------------------- regulation
@dataclass
class RegulationSettings:
    """The knobs of the accept test and the mixing weight (docs/rsm_masac.md, R-A1 to R-A6)."""

    zeta_rule: str = "thm2"
    zeta_cap: float = 0.8
    safety: float = 0.99
    eps_rule: str = "abs"
    is_clip: float | None = None
    # the actions the Fisher score g is taken at: "policy" draws them from pi_theta at the batch's states
    # (eq. 20: a ~ pi_theta); "buffer" takes the stored ones, as the reference code does
    fisher_actions: str = "policy"


def regulate_replica(
    sac, batch, theta_ref: np.ndarray, cache_actor, reg: RegulationSettings, gen: torch.Generator | None = None
) -> tuple[float, float, float | None]:
    """(A+, zeta, zeta_max) of referential policy theta_ref against the agent's current actor (eq. 19, Thm 2,
    eq. 20).

    batch: M samples of the agent's own buffer with the stored behaviour log-probabilities; densities of
    the stored actions use their pre-tanh values (docs/rsm_masac.md, R-A3); F is rank one (g g^T), never built. gen: the
    noise of the actions drawn from pi_theta for F (fisher_actions = "policy").
    """
    bound = sac.cfg.action_bound
    u = pre_tanh(batch.act, bound)
    load_flat(cache_actor, theta_ref)
    with torch.no_grad():
        mu_r, sigma_r = cache_actor(batch.obs)
        logp_ref = squashed_log_prob(mu_r, sigma_r, u, bound).sum(-1)
        entropy_ref = gaussian_entropy(sigma_r).sum(-1)
        q_min = torch.min(sac.q1(batch.obs, batch.act), sac.q2(batch.obs, batch.act))
    mu, sigma = sac.actor(batch.obs)
    logp_cur = squashed_log_prob(mu, sigma, u, bound).sum(-1)
    adv = advantage_terms(
        logp_ref,
        logp_cur.detach(),
        batch.logp,
        q_min,
        entropy_ref,
        gaussian_entropy(sigma.detach()).sum(-1),
        sac.alpha,
        is_clip=reg.is_clip,
    )
    if reg.fisher_actions == "policy":  # score function at a ~ pi_theta(.|s): the action is held, not differentiated
        with torch.no_grad():
            u_pi = mu + sigma * torch.randn(mu.shape, generator=gen)
        logp_fisher = squashed_log_prob(mu, sigma, u_pi, bound).sum(-1)
    elif reg.fisher_actions == "buffer":
        logp_fisher = logp_cur
    else:
        raise ValueError(f"unknown fisher_actions {reg.fisher_actions!r}")
    g = batch_score(logp_fisher, list(sac.actor.parameters()))
    theta = torch.nn.utils.parameters_to_vector(sac.actor.parameters()).detach()
    delta = torch.as_tensor(theta_ref) - theta
    return regulate(adv, g, delta, sac.cfg.gamma, reg.zeta_cap, reg.safety, reg.zeta_rule, reg.eps_rule)


def mix_into(actor, theta: np.ndarray, theta_ref: np.ndarray, zeta: float) -> np.ndarray:
    """theta <- theta + zeta (theta~ - theta), loaded into the actor; returns the new flat vector."""
    new = mix(theta, theta_ref, zeta).astype(np.float32)
    load_flat(actor, new)
    return new


def average_into(actor, theta: np.ndarray, models: list[np.ndarray]) -> np.ndarray:
    """Avg baseline: theta <- (theta + sum_j theta_j) / (|Omega_i| + 1) (RSM-MASAC paper, eq. 10)."""
    new = ((theta.astype(np.float64) + np.sum(models, axis=0, dtype=np.float64)) / (len(models) + 1)).astype(np.float32)
    load_flat(actor, new)
    return new
