"""A round's bookkeeping: CPM chunks out and back, loss fill, wrong senders refused, regulation wiring."""

import numpy as np
import pytest
import torch

from agent_node.learners.rsm.mixing import advantage_terms, batch_score, regulate
from agent_node.learners.rsm.round import (
    PendingRound,
    RegulationSettings,
    average_into,
    chunk_count,
    mix_into,
    regulate_replica,
    response_chunks,
)
from agent_node.learners.rsm.segments import build_replica, flatten
from agent_node.learners.sac import SAC, Actor, ReplayBuffer, SACConfig
from agent_node.learners.settings import ACTOR_DIM
from protocols.messages import SegmentResponse

CHUNK = 1120  # 4,480-byte CPM payloads


def _respond(pending, donor_thetas, drop=lambda r, p, c: False):
    """Answer every request of pending from donor_thetas, dropping the chunks drop() names."""
    for dst, replica, segments, index in pending.requests():
        for c, off, length, values in response_chunks(donor_thetas[dst], segments, index, CHUNK):
            if drop(replica, index, c):
                continue
            body = SegmentResponse(
                round=pending.round_id,
                replica=replica,
                segments=segments,
                index=index,
                chunk=c,
                chunks=chunk_count(length, CHUNK),
                offset=off,
                length=length,
            )
            assert pending.take(dst, body, values)


def test_chunks_reassemble_the_replica_exactly():
    rng = np.random.default_rng(0)
    thetas = {j: rng.normal(size=ACTOR_DIM).astype(np.float32) for j in "abcd"}
    plans = [["a", "b", "c", "d"], ["c", "a", "d", "b"], ["d", "c"]]
    pending = PendingRound(3, plans, ACTOR_DIM, CHUNK, deadline_t=1.0)
    assert len(pending.requests()) == 10
    assert not pending.complete()
    _respond(pending, thetas)
    assert pending.complete()
    own = np.zeros(ACTOR_DIM, np.float32)
    for plan, rep in zip(plans, pending.replicas):
        np.testing.assert_array_equal(rep.assemble(own, "zero"), build_replica(plan, thetas))
    # a segment of 17,024 or 17,025 values is 16 CPMs of 4,480 bytes (RSM-MASAC paper, Sec. V-B; 68,100 B per
    # segment ~ 15.2 CPMs)
    assert pending.replicas[0].chunks == 4 * 16


def test_lost_chunks_are_filled_with_zeros_or_own_values():
    rng = np.random.default_rng(1)
    thetas = {j: rng.normal(size=ACTOR_DIM).astype(np.float32) for j in "ab"}
    own = rng.normal(size=ACTOR_DIM).astype(np.float32)
    pending = PendingRound(0, [["a", "b"]], ACTOR_DIM, CHUNK, deadline_t=1.0)
    _respond(pending, thetas, drop=lambda r, p, c: (p, c) == (1, 2))  # chunk 2 of segment 1 lost
    rep = pending.replicas[0]
    assert not pending.complete() and rep.chunks_received == rep.chunks - 1
    half = ACTOR_DIM // 2
    lost = slice(half + 2 * CHUNK, half + 3 * CHUNK)
    full = build_replica(["a", "b"], thetas)
    zero, mine = rep.assemble(own, "zero"), rep.assemble(own, "self")
    assert not zero[lost].any()
    np.testing.assert_array_equal(mine[lost], own[lost])
    keep = np.ones(ACTOR_DIM, bool)
    keep[lost] = False
    np.testing.assert_array_equal(zero[keep], full[keep])
    np.testing.assert_array_equal(mine[keep], full[keep])


def test_chunks_from_the_wrong_sender_or_round_are_refused():
    theta = np.ones(ACTOR_DIM, np.float32)
    pending = PendingRound(5, [["a", "b"]], ACTOR_DIM, CHUNK, deadline_t=1.0)
    c, off, length, values = next(response_chunks(theta, 2, 0, CHUNK))
    body = dict(replica=0, segments=2, index=0, chunk=c, chunks=chunk_count(length, CHUNK), offset=off, length=length)
    assert not pending.take("b", SegmentResponse(round=5, **body), values)  # b was asked for segment 1
    assert not pending.take("a", SegmentResponse(round=4, **body), values)  # an older round
    assert not pending.take("a", SegmentResponse(round=5, **dict(body, offset=off + 1)), values)
    assert not pending.take("a", SegmentResponse(round=5, **body), values[:-1])  # short
    assert not pending.take("a", SegmentResponse(round=5, **body), values.astype(np.float64))
    assert pending.take("a", SegmentResponse(round=5, **body), values)


def _agent(seed=0, n=200):
    sac = SAC(SACConfig(init_seed=0, seed=seed, learning_starts=0))
    buf = ReplayBuffer(1000, seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(n):
        o = rng.random(6).astype(np.float32)
        a, logp = sac.act(o)
        buf.add(o, a, float(rng.random()), rng.random(6).astype(np.float32), False, logp)
    for _ in range(5):
        sac.update(buf.sample(64))
    return sac, buf


def test_regulate_replica_matches_the_equations_by_hand():
    sac, buf = _agent()
    other, _ = _agent(seed=7)
    for _ in range(20):
        other.update(buf.sample(64))
    ref = flatten(other.actor)
    batch = buf.sample(50)
    a_plus, zeta, _ = regulate_replica(sac, batch, ref, Actor(), RegulationSettings(fisher_actions="buffer"))
    # the same quantities written out: eq. 19 terms, g of the mean log-density, delta = theta~ - theta
    bound = sac.cfg.action_bound
    u = torch.atanh(torch.clamp(batch.act / bound, -1 + 1e-6, 1 - 1e-6))

    def logp_and_entropy(actor):
        mu, sigma = actor(batch.obs)
        dist = torch.distributions.Normal(mu, sigma)
        logp = dist.log_prob(u) - torch.log(1 - torch.tanh(u) ** 2) - np.log(bound)
        return logp.sum(-1), dist.entropy().sum(-1)

    lr, hr = logp_and_entropy(other.actor)
    lc, hc = logp_and_entropy(sac.actor)
    with torch.no_grad():
        q = torch.min(sac.q1(batch.obs, batch.act), sac.q2(batch.obs, batch.act))
    adv = advantage_terms(lr.detach(), lc.detach(), batch.logp, q, hr.detach(), hc.detach(), sac.alpha)
    g = batch_score(lc, list(sac.actor.parameters()))
    delta = torch.as_tensor(ref) - torch.as_tensor(flatten(sac.actor))
    expect = regulate(adv, g, delta)
    assert a_plus == pytest.approx(expect[0], rel=1e-4, abs=1e-9)
    assert zeta == pytest.approx(expect[1], rel=1e-3, abs=1e-9)


def test_the_fisher_score_is_taken_at_actions_drawn_from_pi_theta():
    """Eq. 20: F(theta) ~ E_s E_{a ~ pi_theta}[score score^T], here as g g^T with g the batch-mean score at
    fresh actions of the current policy (not the buffer's); fisher_actions = "buffer" keeps the code's."""
    sac, buf = _agent()
    other, _ = _agent(seed=7)
    for _ in range(20):
        other.update(buf.sample(64))
    ref, batch = flatten(other.actor), buf.sample(50)
    a_plus, zeta, zeta_max = regulate_replica(
        sac, batch, ref, Actor(), RegulationSettings(), torch.Generator().manual_seed(11)
    )
    bound = sac.cfg.action_bound
    mu, sigma = sac.actor(batch.obs)
    u = (mu + sigma * torch.randn(mu.shape, generator=torch.Generator().manual_seed(11))).detach()
    logp = torch.distributions.Normal(mu, sigma).log_prob(u) - torch.log(1 - torch.tanh(u) ** 2) - np.log(bound)
    g = batch_score(logp.sum(-1), list(sac.actor.parameters()))
    delta = torch.as_tensor(ref) - torch.as_tensor(flatten(sac.actor))
    stored = torch.atanh(torch.clamp(batch.act / bound, -1 + 1e-6, 1 - 1e-6))

    def logp_and_entropy(actor):
        mu, sigma = actor(batch.obs)
        dist = torch.distributions.Normal(mu, sigma)
        lp = dist.log_prob(stored) - torch.log(1 - torch.tanh(stored) ** 2) - np.log(bound)
        return lp.sum(-1).detach(), dist.entropy().sum(-1).detach()

    (lr, hr), (lc, hc) = logp_and_entropy(other.actor), logp_and_entropy(sac.actor)
    with torch.no_grad():
        q_min = torch.min(sac.q1(batch.obs, batch.act), sac.q2(batch.obs, batch.act))
    expect = regulate(advantage_terms(lr, lc, batch.logp, q_min, hr, hc, sac.alpha), g, delta)
    assert a_plus > 0, "the other agent's policy should be better on this batch"
    assert a_plus == pytest.approx(expect[0], rel=1e-4)
    assert zeta == pytest.approx(expect[1], rel=1e-3) and zeta_max == pytest.approx(expect[2], rel=1e-3)
    _, _, buffer_max = regulate_replica(sac, batch, ref, Actor(), RegulationSettings(fisher_actions="buffer"))
    assert abs(buffer_max - zeta_max) > 1e-3 * zeta_max  # the buffer's actions give another F
    _, _, again = regulate_replica(sac, batch, ref, Actor(), RegulationSettings(), torch.Generator().manual_seed(11))
    assert again == zeta_max  # the same noise, the same bound


def test_each_replica_is_judged_on_m_samples_of_its_own():
    """Alg. 2 line 5 sits inside the replica loop: every replica draws its own M samples from the buffer."""
    from agent_node.node import agent_rng
    from agent_node.roles.base import NodeContext
    from agent_node.roles.cav import CavRole

    settings = {"name": "cav", "method": "rsm_masac", "M": 20, "sac": {"learning_starts": 10_000}}
    records = []
    ctx = NodeContext(
        "veh0", agent_rng(1, "veh0"), None, lambda kind, values: records.append(values), {"role": settings}, seed=1
    )
    role = CavRole(ctx, settings)
    rng = np.random.default_rng(0)
    for _ in range(100):
        obs = rng.random(6, dtype=np.float32)
        a, logp = role.sac.act(obs)
        role.buf.add(obs, a, 0.5, rng.random(6, dtype=np.float32), False, logp)
    pending = PendingRound(0, [["veh1", "veh2"], ["veh2", "veh1"], ["veh1", "veh2"]], ACTOR_DIM, 1120, 1.0)
    theta = flatten(role.sac.actor)
    for rep in pending.replicas:
        rep.values[:] = theta + rng.normal(0, 0.01, theta.shape).astype(np.float32)
        for got in rep.received:
            got[:] = True
    sampled, sample = [], role.buf.sample
    role.buf.sample = lambda n: sampled.append(n) or sample(n)
    pending.neighbours, pending.started_t = 2, 0.5  # set by start_round
    role.pending = pending
    role.finish_round()
    assert sampled == [20, 20, 20]
    assert len(records[-1]["zeta_max"]) == 3


def test_mix_and_average_load_the_actor():
    actor = Actor()
    theta = flatten(actor)
    ref = theta + 1.0
    new = mix_into(actor, theta, ref, 0.25)
    np.testing.assert_allclose(flatten(actor), theta + 0.25, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(new, flatten(actor))
    avg = average_into(actor, theta, [theta + 3.0, theta + 6.0])
    np.testing.assert_allclose(avg, theta + 3.0, rtol=0, atol=1e-5)
