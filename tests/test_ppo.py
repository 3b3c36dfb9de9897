"""The masked PPO (agent_node/learners/ppo.py): the epsilon-floor behaviour, minibatch schemes, and RELED's hybrid
PPO reducing to it exactly when it has no expert data."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_node.learners.ppo import MaskedPPO, PPOConfig, Trajectory
from agent_node.learners.reled.hybrid_ppo import HybridPPO, HybridPPOConfig

torch.set_num_threads(1)


def obs_at(cur: int, dest: int = 5) -> np.ndarray:
    return np.array([cur, dest, 0.5, 0.1, -1, -1, (cur + 1) % 6, (cur + 2) % 6, -1, -1], dtype=np.float32)


def bandit_data(agent: MaskedPPO, n: int = 64) -> list[Trajectory]:
    """One-step episodes from obs_at(i % 6); action 2 earns 1, every other action 0."""
    out = []
    for i in range(n):
        o = obs_at(i % 6)
        a, _ = agent.act(o, np.ones(4, bool))
        out.append(Trajectory(o[None], np.ones((1, 4), bool), np.array([a]), np.array([float(a == 2)]), True))
    return out


def test_masked_ppo_learns_the_rewarded_action():
    agent = MaskedPPO(PPOConfig(seed=1))
    before = agent.probs(np.stack([obs_at(i) for i in range(6)]), np.ones((6, 4), bool))[:, 2].mean()
    for _ in range(5):
        agent.update(bandit_data(agent))
    after = agent.probs(np.stack([obs_at(i) for i in range(6)]), np.ones((6, 4), bool))[:, 2].mean()
    assert after > before + 0.2, (before, after)


def test_hybrid_ppo_without_expert_data_is_the_masked_ppo_step_for_step():
    """RELED's IPPO and eSpark's IPPO share one learner: same initial networks, same updates, same samples."""
    plain = MaskedPPO(PPOConfig(init_seed=4, seed=2, minibatch=16))
    hybrid = HybridPPO(HybridPPOConfig(init_seed=4, seed=2, minibatch=16, junction_ids=False))
    for _ in range(3):
        data = bandit_data(plain, 48)
        assert [t.actions[0] for t in data] == [t.actions[0] for t in bandit_data(hybrid, 48)]
        s_plain, s_hybrid = plain.update(data), hybrid.update(data, [], 1.0)
        assert (
            s_plain["policy_loss"] == s_hybrid["policy_loss"] and s_plain["value_loss"] == s_hybrid["value_loss_agent"]
        )
    for a, b in zip((plain.policy, plain.critic), (hybrid.policy, hybrid.critic)):
        assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters()))


def test_a_checkpoint_resumes_identically_and_refuses_another_shape(tmp_path):
    a = MaskedPPO(PPOConfig(seed=3))
    a.update(bandit_data(a, 32))
    b = MaskedPPO(PPOConfig(seed=99, init_seed=5))
    b.load_state_dict(a.state_dict())
    data = bandit_data(a, 32)
    assert [t.actions[0] for t in bandit_data(b, 32)] == [t.actions[0] for t in data]
    assert a.update(data) == b.update(data)
    with pytest.raises(ValueError, match="n_actions"):
        MaskedPPO(PPOConfig(n_actions=5)).load_state_dict(a.state_dict())


def test_epsilon_floor_schedule_sampling_and_behaviour_log_probs():
    """eSpark's released selector: (1 - eps) pi + eps Uniform(selectable), eps linear start -> finish, then flat;
    the update's old log-probability is this behaviour's, so its first ratio is pi / behaviour."""
    cfg = PPOConfig(
        explore_eps_start=1.0,
        explore_eps_finish=0.05,
        explore_eps_steps=100,
        update_epochs=1,
        minibatch=0,
        obs_dim=10,
    )
    agent = MaskedPPO(cfg)
    assert agent.explore_eps(0) == 1.0 and agent.explore_eps(50) == pytest.approx(0.525)
    assert agent.explore_eps(100) == pytest.approx(0.05) and agent.explore_eps(10_000) == pytest.approx(0.05)
    with torch.no_grad():  # a policy that puts almost all mass on action 0
        agent.policy[-1].bias.copy_(torch.tensor([20.0, 0.0, 0.0, 0.0]))
    mask = np.array([True, True, False, True])
    o = obs_at(1)
    plain = [agent.act(o, mask)[0] for _ in range(200)]
    floored = [agent.act(o, mask, eps=1.0)[0] for _ in range(600)]
    assert set(plain) == {0}
    assert 2 not in floored and all(floored.count(a) > 120 for a in (0, 1, 3))  # uniform over the selectable
    a, logp = agent.act(o, mask, eps=0.3)
    pi = agent.probs(o[None], mask[None])[0]
    assert logp == pytest.approx(float(np.log(0.7 * pi[a] + 0.3 / 3)), rel=1e-5)
    t = Trajectory(
        np.stack([o, o]), np.stack([mask, mask]), np.array([1, 0]), np.zeros(2), True, eps=np.array([0.3, 0.0])
    )
    d = agent._dataset([t], agent.critic, False)
    want = np.log([0.7 * pi[1] + 0.1, pi[0]])
    assert np.allclose(d["logp"].numpy(), want, rtol=1e-5)
    with pytest.raises(ValueError, match="eps must be"):
        Trajectory(np.stack([o]), mask[None], np.array([0]), np.zeros(1), True, eps=np.zeros(2))


def test_minibatch_zero_is_one_gradient_step_per_epoch_over_the_whole_batch():
    agent = MaskedPPO(PPOConfig(update_epochs=3, minibatch=0))
    data = bandit_data(agent, 64)
    steps = []
    original = agent.optimizer.step
    agent.optimizer.step = lambda *a, **k: (steps.append(1), original(*a, **k))
    agent.update(data)
    assert len(steps) == 3
