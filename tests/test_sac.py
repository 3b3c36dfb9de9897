"""Per-agent SAC learner (RSM-MASAC paper, Sec. III-A1, Table IV): init seeds, replay buffer, act, update, checkpoints,
learning."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from agent_node.learners.rsm.segments import flatten
from agent_node.learners.sac import SAC, ReplayBuffer, SACConfig, pre_tanh, squashed_log_prob
from agent_node.learners.settings import ACTOR_DIM

torch.set_num_threads(1)


def _params(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b))


def _filled(cfg: SACConfig, sac: SAC, n: int, seed: int = 0) -> ReplayBuffer:
    """A buffer of n random-ish transitions whose actions and log-probs come from sac.act."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(cfg.buffer_size, cfg.obs_dim, cfg.act_dim, seed=seed)
    obs = rng.random(cfg.obs_dim, dtype=np.float32)
    for t in range(n):
        a, logp = sac.act(obs)
        nxt = rng.random(cfg.obs_dim, dtype=np.float32)
        buf.add(obs, a, float(rng.random()), nxt, t % 50 == 49, logp)
        obs = nxt
    return buf


# ---------------------------------------------------------------------------------------------- config
def test_config_defaults_follow_table_iv():
    cfg = SACConfig()
    assert (cfg.actor_lr, cfg.critic_lr, cfg.alpha_lr) == (4e-5, 3e-4, 3e-4)
    assert (cfg.gamma, cfg.tau, cfg.batch_size, cfg.buffer_size) == (0.99, 1e-3, 256, 100_000)
    assert cfg.learning_starts == 512 and cfg.init_alpha == 0.01 and cfg.grad_clip == 0.5
    assert cfg.entropy_target == -1.0 and SACConfig(target_entropy=-9).entropy_target == -9.0
    with pytest.raises(Exception):
        SACConfig(bogus=1)
    sac = SAC(cfg)
    assert flatten(sac.actor).shape == (ACTOR_DIM,)
    assert abs(sac.alpha - 0.01) < 1e-7
    assert not sac.ready(512) and sac.ready(513)


# ---------------------------------------------------------------------------------------------- init seed
def test_same_init_seed_identical_weights_different_seed_differs():
    a, b = SAC(SACConfig(init_seed=7, seed=1)), SAC(SACConfig(init_seed=7, seed=2))  # per-agent seed differs
    c = SAC(SACConfig(init_seed=8))
    for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
        assert _same(_params(getattr(a, name)), _params(getattr(b, name))), name
        assert not _same(_params(getattr(a, name)), _params(getattr(c, name))), name
    assert _same(_params(a.q1), _params(a.q1_target)) and not _same(_params(a.q1), _params(a.q2))
    # building a SAC does not disturb the global torch RNG
    torch.manual_seed(123)
    x = torch.rand(3)
    torch.manual_seed(123)
    SAC(SACConfig(init_seed=5))
    assert torch.equal(torch.rand(3), x)


# ---------------------------------------------------------------------------------------------- buffer
def test_buffer_bounded_fifo_and_stores_behaviour_logp():
    cfg = SACConfig(buffer_size=10)
    sac = SAC(cfg)
    buf = ReplayBuffer(10, seed=0)
    logps = []
    for t in range(25):
        obs = np.full(6, t, np.float32)
        a, logp = sac.act(obs)
        logps.append(float(logp))
        buf.add(obs, a, float(t), obs + 1, False, logp)
        assert len(buf) == min(t + 1, 10)
    assert buf.obs.shape == (10, 6)
    kept = sorted(buf.rew.tolist())
    assert kept == [float(t) for t in range(15, 25)]  # the oldest 15 were evicted
    for i in range(10):
        t = int(buf.rew[i])
        assert buf.logp[i] == np.float32(logps[t])  # exactly what act() returned for that action


def test_buffer_sampling_reproducible_by_seed():
    sac = SAC(SACConfig())
    b1, b2, b3 = (_filled(SACConfig(), sac, 0, seed=s) for s in (3, 3, 4))
    for b in (b1, b2, b3):  # identical contents
        for t in range(200):
            b.add(np.full(6, t, np.float32), np.array([0.1 * (t % 7)]), float(t), np.zeros(6), False, -1.0 - t)
    s1, s2, s3 = b1.sample(50), b2.sample(50), b3.sample(50)
    assert torch.equal(s1.rew, s2.rew) and not torch.equal(s1.rew, s3.rew)
    assert len(set(s1.rew.tolist())) == 50  # without replacement
    assert torch.equal(s1.logp, -1.0 - s1.rew)  # rows stay aligned
    assert s1.obs.shape == (50, 6) and s1.act.shape == (50, 1) and s1.done.shape == (50,)
    assert b1.sample(1000).rew.shape == (200,)  # capped at the current size
    # state_dict round trip keeps contents and the sampling stream
    b4 = ReplayBuffer(b1.capacity, seed=99)
    b4.load_state_dict(b1.state_dict())
    assert torch.equal(b1.sample(50).rew, b4.sample(50).rew)
    with pytest.raises(ValueError):
        ReplayBuffer(5).sample(1)


# ---------------------------------------------------------------------------------------------- act
@pytest.mark.parametrize("bound", [3.0, 1.5])
def test_act_within_bound_and_logp_matches_squashed_log_prob(bound):
    sac = SAC(SACConfig(action_bound=bound))
    with torch.no_grad():  # widen the policy so some actions saturate
        sac.actor.fc_mu.bias.fill_(0.5)
        sac.actor.fc_std.bias.fill_(1.5)
    obs = np.random.default_rng(0).random((500, 6), dtype=np.float32)
    a, logp = sac.act(obs)
    assert a.shape == (500, 1) and logp.shape == (500,)
    assert np.all(np.abs(a) <= bound) and np.abs(a).max() > 0.9 * bound
    with torch.no_grad():
        mu, sigma = sac.actor(torch.from_numpy(obs))
        u = pre_tanh(torch.from_numpy(a), bound)
        ref = squashed_log_prob(mu, sigma, u, bound).sum(-1).numpy()
    ok = np.abs(a[:, 0]) < 0.99 * bound  # atanh inversion is exact away from saturation
    np.testing.assert_allclose(logp[ok], ref[ok], atol=2e-3)
    # single observation and deterministic mode
    a1, l1 = sac.act(obs[0])
    assert a1.shape == (1,) and np.ndim(l1) == 0
    d1, _ = sac.act(obs[0], deterministic=True)
    d2, _ = sac.act(obs[0], deterministic=True)
    assert np.array_equal(d1, d2) and np.allclose(d1, bound * np.tanh(mu[0].numpy()), atol=1e-6)
    # per-agent seed fixes the noise stream
    x, _ = SAC(SACConfig(seed=4)).act(obs[:5])
    y, _ = SAC(SACConfig(seed=4)).act(obs[:5])
    z, _ = SAC(SACConfig(seed=5)).act(obs[:5])
    assert np.array_equal(x, y) and not np.array_equal(x, z)


# ---------------------------------------------------------------------------------------------- update
def test_update_changes_actor_critics_alpha_and_soft_updates_targets():
    cfg = SACConfig(batch_size=64)
    sac = SAC(cfg)
    buf = _filled(cfg, sac, 200)
    batch = buf.sample(cfg.batch_size)
    actor0, q10, q20 = _params(sac.actor), _params(sac.q1), _params(sac.q2)
    t10, t20, alpha0 = _params(sac.q1_target), _params(sac.q2_target), sac.alpha

    # critic-only step (Alg. 1 between delayed policy updates): actor, alpha, targets untouched
    out = sac.update(batch, update_policy=False)
    assert set(out) == {"q1_loss", "q2_loss", "alpha"}
    assert not _same(_params(sac.q1), q10) and not _same(_params(sac.q2), q20)
    assert _same(_params(sac.actor), actor0) and sac.alpha == alpha0
    assert _same(_params(sac.q1_target), t10) and _same(_params(sac.q2_target), t20)

    q1_before = _params(sac.q1)
    out = sac.update(batch)
    assert {"q1_loss", "q2_loss", "actor_loss", "alpha_loss", "alpha", "entropy"} <= set(out)
    assert all(np.isfinite(v) for v in out.values())
    assert not _same(_params(sac.actor), actor0) and sac.alpha != alpha0
    q1_after, q2_after = _params(sac.q1), _params(sac.q2)
    assert not _same(q1_after, q1_before)
    # targets moved by tau towards the critics *after* this step's critic update
    for t0, q, t1 in zip(t10, q1_after, _params(sac.q1_target)):
        torch.testing.assert_close(t1, t0 + cfg.tau * (q - t0), rtol=0, atol=1e-7)
    for t0, q, t1 in zip(t20, q2_after, _params(sac.q2_target)):
        torch.testing.assert_close(t1, t0 + cfg.tau * (q - t0), rtol=0, atol=1e-7)
    assert (sac.n_updates, sac.n_policy_updates) == (2, 1)


def test_state_dict_round_trip_restores_behaviour_exactly():
    cfg = SACConfig(batch_size=32, seed=3)
    sac = SAC(cfg)
    buf = _filled(cfg, sac, 100)
    for _ in range(3):
        sac.update(buf.sample(32))
    state = copy.deepcopy(sac.state_dict())
    clone = SAC.from_state_dict(state)
    other = SAC(cfg.model_copy(update={"init_seed": 11}))
    other.load_state_dict(state)
    batch = buf.sample(32)
    obs = batch.obs.numpy()
    ref_a, ref_l = sac.act(obs)
    ref_out = sac.update(batch)
    for s in (clone, other):
        a, logp = s.act(obs)
        assert np.array_equal(a, ref_a) and np.array_equal(logp, ref_l)
        assert s.update(batch) == ref_out  # same optimiser moments, alpha and noise stream
        for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
            assert _same(_params(getattr(s, name)), _params(getattr(sac, name))), name
        assert s.alpha == sac.alpha and s.n_updates == sac.n_updates


def _reference_update(sac: SAC, opts: dict, batch, update_policy: bool, shift: float = 0.0) -> None:
    """The update written out as a textbook would (eqs. 6, 7, 9): per-tensor Adam, the actor's loss backpropagated
    through the critics as well, a loop over the target tensors. SAC.update must compute the same numbers."""
    import torch.nn.functional as F

    cfg, alpha = sac.cfg, sac.log_alpha.exp().detach()
    critic = [*sac.q1.parameters(), *sac.q2.parameters()]
    with torch.no_grad():
        next_a, next_logp = sac.sample_action(batch.next_obs, sac.update_gen)
        next_logp = next_logp + shift
        next_q = torch.min(sac.q1_target(batch.next_obs, next_a), sac.q2_target(batch.next_obs, next_a))
        q_hat = batch.rew + cfg.gamma * (1.0 - batch.done) * (next_q - alpha * next_logp)
    loss = F.mse_loss(sac.q1(batch.obs, batch.act), q_hat) + F.mse_loss(sac.q2(batch.obs, batch.act), q_hat)
    opts["critic"].zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(critic, cfg.grad_clip, foreach=False)
    opts["critic"].step()
    if not update_policy:
        return
    new_a, logp = sac.sample_action(batch.obs, sac.update_gen)
    logp = logp + shift
    actor_loss = (alpha * logp - torch.min(sac.q1(batch.obs, new_a), sac.q2(batch.obs, new_a))).mean()
    opts["actor"].zero_grad()
    actor_loss.backward()
    torch.nn.utils.clip_grad_norm_(list(sac.actor.parameters()), cfg.grad_clip, foreach=False)
    opts["actor"].step()
    alpha_loss = -(sac.log_alpha.exp() * (logp.detach() + sac.target_entropy)).mean()
    opts["alpha"].zero_grad()
    alpha_loss.backward()
    opts["alpha"].step()
    with torch.no_grad():
        for net, tgt in ((sac.q1, sac.q1_target), (sac.q2, sac.q2_target)):
            for w, tw in zip(net.parameters(), tgt.parameters()):
                tw.lerp_(w, cfg.tau)


@pytest.mark.parametrize("fused", [False, True])
def test_update_computes_what_the_textbook_update_computes(fused):
    """The cheaper update (multi-tensor Adam, clipping and target steps, no critic weight-gradients in the
    actor's step, one conversion of the losses) learns exactly what the plain one learns; with the fused
    Adam kernel (an option), the same within float error."""
    cfg = SACConfig(batch_size=64, seed=5, fused_adam=fused)
    fast, ref = SAC(cfg), SAC(cfg)
    plain = lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=False, fused=False)  # noqa: E731
    opts = {
        "critic": plain([*ref.q1.parameters(), *ref.q2.parameters()], cfg.critic_lr),
        "actor": plain(ref.actor.parameters(), cfg.actor_lr),
        "alpha": plain([ref.log_alpha], cfg.alpha_lr),
    }
    buf = _filled(cfg, fast, 300)
    for i in range(12):
        batch = buf.sample(cfg.batch_size)
        policy = i % 2 == 0  # Alg. 1: critic every step, the rest every policy_delay
        fast.update(batch, update_policy=policy)
        _reference_update(ref, opts, batch, policy)
    tolerance = {"rtol": 1e-5, "atol": 1e-6} if fused else {"rtol": 0, "atol": 0}
    for name in ("actor", "q1", "q2", "q1_target", "q2_target"):
        for a, b in zip(_params(getattr(fast, name)), _params(getattr(ref, name))):
            torch.testing.assert_close(a, b, **tolerance, msg=name)
    assert abs(fast.alpha - ref.alpha) <= (1e-6 if fused else 0)
    assert fast.update_gen.get_state().equal(ref.update_gen.get_state())


def test_entropy_in_the_unit_space_shifts_every_log_density_by_log_bound():
    """entropy_space = "unit" (the reference code's): log pi of the tanh output, before scaling by the bound,
    in the soft target, the actor's loss and eq. 9; the default measures it on the scaled action."""
    cfg = SACConfig(batch_size=64, seed=5, action_bound=3.0, entropy_space="unit")
    fast, ref = SAC(cfg), SAC(cfg)
    plain = lambda params, lr: torch.optim.Adam(params, lr=lr, foreach=False)  # noqa: E731
    opts = {
        "critic": plain([*ref.q1.parameters(), *ref.q2.parameters()], cfg.critic_lr),
        "actor": plain(ref.actor.parameters(), cfg.actor_lr),
        "alpha": plain([ref.log_alpha], cfg.alpha_lr),
    }
    buf = _filled(cfg, fast, 300)
    for i in range(6):
        batch = buf.sample(cfg.batch_size)
        fast.update(batch, update_policy=True)
        _reference_update(ref, opts, batch, True, shift=np.log(3.0))
    for a, b in zip(_params(fast.actor), _params(ref.actor)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fast.alpha == pytest.approx(ref.alpha, rel=1e-6)
    assert SAC(cfg.model_copy(update={"entropy_space": "action"})).logp_shift == 0.0  # the default: as before


# ---------------------------------------------------------------------------------------------- learning
def test_learns_one_step_bandit():
    """Constant observation, reward -(a - 0.5)^2, every step terminal: the greedy action should approach 0.5."""
    cfg = SACConfig(
        hidden=64,
        action_bound=1.0,
        actor_lr=3e-3,
        critic_lr=3e-3,
        alpha_lr=3e-3,
        batch_size=64,
        buffer_size=2_000,
        learning_starts=64,
        init_alpha=0.01,
        target_entropy=-3.0,
        grad_clip=None,
        init_seed=0,
        seed=0,
    )
    sac = SAC(cfg)
    buf = ReplayBuffer(cfg.buffer_size, cfg.obs_dim, cfg.act_dim, seed=0)
    obs = np.full(cfg.obs_dim, 0.3, np.float32)
    for _ in range(400):
        a, logp = sac.act(obs)
        buf.add(obs, a, -float((a[0] - 0.5) ** 2), obs, True, logp)
        if sac.ready(len(buf)):
            sac.update(buf.sample(cfg.batch_size))
    greedy, _ = sac.act(obs, deterministic=True)
    assert abs(float(greedy[0]) - 0.5) < 0.15, greedy


def test_the_papers_settings_learn_a_speed_task_within_two_episodes():
    """Table IV's values (actor lr 4e-5, tau 1e-3, alpha_0 0.01, batch 256, learning after 512 samples) with
    the reference code's schedule (a full update every 10 steps): one agent on a 1-D speed task whose
    reward is v / 30 (accelerate to earn) goes from a standing start to about 0.9 in two 1,500-step episodes."""
    from agent_node.learners.sac import update_flags

    cfg = SACConfig(seed=1, init_seed=1)
    sac, buf = SAC(cfg), ReplayBuffer(cfg.buffer_size, cfg.obs_dim, cfg.act_dim, seed=1)
    scores, learning = [], 0
    for _ in range(3):
        v, x, total = 5.0, 0.0, 0.0
        for t in range(1500):
            obs = np.array([x / 400, v / 30, 0, 0, 0, 0], np.float32)
            a, logp = sac.act(obs)
            v = float(np.clip(v + 0.1 * a[0], 0.0, 30.0))
            x = (x + 0.1 * v) % 400
            total += v / 30
            buf.add(obs, a, v / 30, np.array([x / 400, v / 30, 0, 0, 0, 0], np.float32), False, logp)
            if sac.ready(len(buf)):
                critic, policy = update_flags("code", learning, 10, cfg.policy_delay, t == 1499)
                if critic:
                    sac.update(buf.sample(cfg.batch_size), update_policy=policy)
                learning += 1
        scores.append(total / 1500)
    assert scores[0] < 0.2 and scores[2] > 0.8, scores
