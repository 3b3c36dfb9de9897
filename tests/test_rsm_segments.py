"""RSM core: segment split/reassembly round-trips, replica plans, the accept test and the mixing weight (RSM-MASAC
paper, Sec. V-A)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_node.learners.rsm import mixing
from agent_node.learners.rsm.segments import (
    build_replica,
    flatten,
    load_flat,
    plan_replicas,
    reassemble,
    segment,
    segment_bounds,
    split,
)
from agent_node.learners.sac import Actor, pre_tanh, squashed_log_prob
from agent_node.learners.settings import ACTOR_DIM

torch.set_num_threads(1)


def _actor(seed: int) -> Actor:
    torch.manual_seed(seed)
    return Actor()


# ---------------------------------------------------------------------------------------------- segments
def test_actor_dimension_and_flat_order():
    actor = _actor(0)
    vec = flatten(actor)
    assert vec.dtype == np.float32 and vec.shape == (ACTOR_DIM,)  # d = 68,098 (the reference code's actor)
    assert np.array_equal(vec[:6], actor.fc1.weight.detach().numpy()[0])  # fc1.W row-major first
    assert vec[-1] == actor.fc_std.bias.item()  # fc_std.b last


@pytest.mark.parametrize("rule", ["canonical", "code"])
@pytest.mark.parametrize("n_seg", [1, 2, 3, 4, 5, 6])
def test_split_reassemble_round_trip_is_bit_exact(rule, n_seg):
    actor = _actor(1)
    vec = flatten(actor)
    parts = split(vec, n_seg, rule)
    assert len(parts) == n_seg and all(len(p) > 0 for p in parts)
    assert [segment(vec, n_seg, p, rule).tobytes() for p in range(n_seg)] == [p.tobytes() for p in parts]
    back = reassemble(parts, ACTOR_DIM)
    assert back.tobytes() == vec.tobytes()
    other = _actor(2)
    load_flat(other, back)
    for (name, a), (_, b) in zip(actor.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), name
    assert flatten(other).tobytes() == vec.tobytes()


def test_segment_sizes():
    # canonical (docs/rsm_masac.md, R-A10): b_p = floor(p d / P) -> 0, 17024, 34049, 51073, 68098
    assert np.diff(segment_bounds(ACTOR_DIM, 4)).tolist() == [17024, 17025, 17024, 17025]
    # the reference code's rule L = floor(d / P) + 1
    assert np.diff(segment_bounds(ACTOR_DIM, 4, "code")).tolist() == [17025, 17025, 17025, 17023]
    assert np.diff(segment_bounds(ACTOR_DIM, 3, "code")).tolist() == [22700, 22700, 22698]
    assert np.diff(segment_bounds(ACTOR_DIM, 2, "code")).tolist() == [34050, 34048]
    assert np.diff(segment_bounds(10, 3)).tolist() == [3, 3, 4]
    with pytest.raises(ValueError):
        reassemble(split(np.zeros(10, np.float32), 3)[:2], 10)


# ---------------------------------------------------------------------------------------------- replicas
def test_replica_plan_distinct_donors_and_reproducible():
    me, neighbours = 0, [3, 5, 7, 9, 11]
    plan = plan_replicas(neighbours, np.random.default_rng(7))
    assert len(plan) == 3  # kappa_i = min(3, 5)
    for donors in plan:
        assert len(donors) == 4 and len(set(donors)) == 4  # P_i = min(4, 5), without replacement
        assert set(donors) <= set(neighbours) and me not in donors
    assert plan == plan_replicas(neighbours, np.random.default_rng(7))
    plans = {tuple(map(tuple, plan_replicas(neighbours, np.random.default_rng(s)))) for s in range(10)}
    assert len(plans) > 1
    small = plan_replicas([4, 8], np.random.default_rng(0))
    assert len(small) == 2 and all(sorted(d) == [4, 8] for d in small)  # P_i = kappa_i = 2
    assert plan_replicas([], np.random.default_rng(0)) == []  # no neighbours, no round


def test_build_replica_stitches_donor_segments():
    d = 10
    params = {j: np.full(d, float(j), np.float32) for j in (3, 5, 7, 9)}
    theta = build_replica([7, 3, 9], params)  # P_i = 3, bounds 0, 3, 6, 10
    assert theta.tolist() == [7.0] * 3 + [3.0] * 3 + [9.0] * 4
    real = {j: flatten(_actor(j)) for j in (1, 2, 3, 4)}
    rep = build_replica([2, 4, 1, 3], real)
    b = segment_bounds(ACTOR_DIM, 4)
    for p, j in enumerate([2, 4, 1, 3]):
        assert rep[b[p] : b[p + 1]].tobytes() == real[j][b[p] : b[p + 1]].tobytes()


# ---------------------------------------------------------------------------------------------- accept test
# Hand case, M = 2, alpha = 0.1, no IS epsilon:
#   m=1: pi~ = 0.6, pi = 0.4, pi_b = 0.5  -> ratio (0.6-0.4)/0.5 = 0.4;   Q = 10  -> 4.0;  H~-H = +0.5 -> +0.05 -> 4.05
#   m=2: pi~ = 0.2, pi = 0.4, pi_b = 0.25 -> ratio (0.2-0.4)/0.25 = -0.8; Q = 2.5 -> -2.0; H~-H = -0.3 -> -0.03 -> -2.03
#   A+ = (4.05 - 2.03) / 2 = 1.01 > 0  -> accept
LOG = np.log
CASE = dict(
    logp_ref=LOG([0.6, 0.2]),
    logp_cur=LOG([0.4, 0.4]),
    logp_behaviour=LOG([0.5, 0.25]),
    q_min=[10.0, 2.5],
    entropy_ref=[1.5, 0.7],
    entropy_cur=[1.0, 1.0],
    alpha=0.1,
)


def test_accept_test_hand_case():
    adv = mixing.advantage_terms(**CASE, is_eps=0.0)
    assert adv.tolist() == pytest.approx([4.05, -2.03], abs=1e-12)
    a_plus = mixing.policy_advantage(adv)
    assert a_plus == pytest.approx(1.01, abs=1e-12) and mixing.accept(a_plus)
    # default IS epsilon 1e-5 only nudges the ratios: 0.2/0.50001 = 0.399992, -0.2/0.25001 = -0.799968
    adv_eps = mixing.advantage_terms(**CASE)
    assert adv_eps.tolist() == pytest.approx([0.2 / 0.50001 * 10 + 0.05, -0.2 / 0.25001 * 2.5 - 0.03], abs=1e-12)
    # |ratio| <= 0.5: m=2 ratio -0.8 -> -0.5 -> -1.25 - 0.03 = -1.28; m=1 unchanged
    clipped = mixing.advantage_terms(**CASE, is_eps=0.0, is_clip=0.5)
    assert clipped.tolist() == pytest.approx([4.05, -1.28], abs=1e-12)
    # swapping replica and current policy flips both ratio and entropy terms: A+ = -1.01 -> reject
    swapped = dict(
        CASE,
        logp_ref=CASE["logp_cur"],
        logp_cur=CASE["logp_ref"],
        entropy_ref=CASE["entropy_cur"],
        entropy_cur=CASE["entropy_ref"],
    )
    a_neg = mixing.policy_advantage(mixing.advantage_terms(**swapped, is_eps=0.0))
    assert a_neg == pytest.approx(-1.01, abs=1e-12) and not mixing.accept(a_neg)


# ---------------------------------------------------------------------------------------------- mixing weight
# Continue the hand case with gamma = 0.9:
#   eps = max|adv_m| = 4.05, C = 2 * 4.05 * 0.9 / (1 - 0.9)^2 = 7.29 / 0.01 = 729
#   g = (1, 2, -1), theta = (1, 1, 1), theta~ = (1.5, 1.25, 0): delta = (0.5, 0.25, -1),
#   g.delta = 0.5 + 0.5 + 1 = 2, q = 4
#   thm2:   zeta_max = sqrt(2 * 1.01 / (729 * 4)) = sqrt(2.02 / 2916) = sqrt(0.00069273) = 0.0263198
#           zeta = 0.99 * 0.0263198 = 0.0260566
#   strict: zeta_max = (1.01 / 729) * sqrt(2 / 4) = 0.00138546 * 0.707107 = 0.000979668
G = np.array([1.0, 2.0, -1.0])
THETA = np.array([1.0, 1.0, 1.0], np.float32)
THETA_REF = np.array([1.5, 1.25, 0.0], np.float32)


def test_mixing_weight_hand_case():
    adv = mixing.advantage_terms(**CASE, is_eps=0.0)
    c = mixing.bound_constant(adv, gamma=0.9)
    assert c == pytest.approx(729.0, rel=1e-12)
    # here the signed max equals max|.|
    assert mixing.bound_constant(adv, gamma=0.9, eps_rule="code") == pytest.approx(729.0, rel=1e-12)
    q = mixing.fisher_quadratic(G, THETA_REF - THETA)
    assert q == pytest.approx(4.0, rel=1e-12)
    assert mixing.zeta_bound(1.01, c, q) == pytest.approx(0.0263198, rel=1e-5)
    assert mixing.zeta_bound(1.01, c, q, rule="strict") == pytest.approx(0.000979668, rel=1e-5)
    assert mixing.mixing_weight(1.01, c, q) == pytest.approx(0.0260566, rel=1e-5)
    assert mixing.mixing_weight(1.01, c, q, safety=1.0) == pytest.approx(0.0263198, rel=1e-5)
    a_plus, zeta, zeta_max = mixing.regulate(adv, G, THETA_REF - THETA, gamma=0.9)
    assert a_plus == pytest.approx(1.01) and zeta == pytest.approx(0.0260566, rel=1e-5)
    assert zeta_max == pytest.approx(0.0263198, rel=1e-5)  # Theorem 2's bound, before the safety factor
    # signed vs absolute eps: adv = (1, -3): code eps = 1, abs eps = 3
    assert mixing.bound_constant([1.0, -3.0], 0.9, "code") * 3 == pytest.approx(mixing.bound_constant([1.0, -3.0], 0.9))


def test_mixing_weight_cap_and_reject():
    # g scaled by 1e-3: q = 4e-6, zeta_max = sqrt(2.02 / (729 * 4e-6)) = sqrt(692.7) = 26.3 > 0.8 -> cap
    assert mixing.zeta_bound(1.01, 729.0, 4e-6) == pytest.approx(26.3198, rel=1e-5)
    assert mixing.mixing_weight(1.01, 729.0, 4e-6) == 0.8
    assert mixing.mixing_weight(1.01, 729.0, 4e-6, cap=0.5) == 0.5
    assert mixing.mixing_weight(1.01, 729.0, 0.0) == 0.8  # q = 0: bound is inf -> cap (docs/rsm_masac.md, R-A2)
    assert mixing.mixing_weight(0.0, 729.0, 4.0) == 0.0 and mixing.mixing_weight(-1.0, 729.0, 4.0) == 0.0
    adv = [-1.0, 0.5]  # A+ = -0.25 -> rejected, zeta = 0
    assert mixing.regulate(adv, G, THETA_REF - THETA, gamma=0.9) == (-0.25, 0.0, None)


def test_mix_endpoints_and_midpoint():
    theta, ref = flatten(_actor(5)), flatten(_actor(6))
    assert mixing.mix(theta, ref, 0.0).tobytes() == theta.tobytes()
    assert np.array_equal(mixing.mix(theta, ref, 1.0), ref)
    assert mixing.mix(theta, ref, 0.3).dtype == np.float32
    # (1 - 0.25) * (1, 1, 1) + 0.25 * (1.5, 1.25, 0) = (1.125, 1.0625, 0.75)
    assert mixing.mix(THETA, THETA_REF, 0.25).tolist() == [1.125, 1.0625, 0.75]
    t = torch.as_tensor(THETA)
    assert torch.equal(mixing.mix(t, torch.as_tensor(THETA_REF), 1.0), torch.as_tensor(THETA_REF))


# ---------------------------------------------------------------------------------------------- helpers
def test_batch_score_is_mean_gradient():
    # log pi_m = w . x_m + b  ->  grad of the mean = (mean x, 1)
    w, b = torch.tensor([0.3, -0.2], requires_grad=True), torch.tensor(0.1, requires_grad=True)
    x = torch.tensor([[1.0, 2.0], [3.0, -4.0]])
    g = mixing.batch_score(x @ w + b, [w, b])
    assert g.tolist() == pytest.approx([2.0, -1.0, 1.0])


def test_batch_score_on_actor_has_actor_dim():
    actor = _actor(3)
    obs, u = torch.randn(50, 6), torch.randn(50, 1)
    mu, sigma = actor(obs)
    logp = squashed_log_prob(mu, sigma, u, 3.0).sum(-1)
    g = mixing.batch_score(logp, list(actor.parameters()))
    assert g.shape == (ACTOR_DIM,) and torch.isfinite(g).all()


def test_squashed_log_prob_matches_torch_transforms():
    from torch.distributions import AffineTransform, Normal, TanhTransform, TransformedDistribution

    mu, sigma, u = torch.tensor([0.2, -1.0]), torch.tensor([0.5, 1.3]), torch.tensor([0.7, -0.4])
    dist = TransformedDistribution(Normal(mu, sigma), [TanhTransform(), AffineTransform(0.0, 3.0)])
    a = 3.0 * torch.tanh(u)
    assert torch.allclose(squashed_log_prob(mu, sigma, u, 3.0), dist.log_prob(a), atol=1e-5)
    assert torch.allclose(pre_tanh(a, 3.0), u, atol=1e-5)
    assert torch.allclose(mixing.gaussian_entropy(sigma), Normal(mu, sigma).entropy())
