"""RELED hybrid PPO (RELED paper, Sec. III-E): Eq. 26 returns, masking, seeding, expert imitation via L^e, agent
PPO, preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agent_node.learners.ppo import Trajectory
from agent_node.learners.reled.hybrid_ppo import HybridPPO, HybridPPOConfig, preprocess

torch.set_num_threads(1)
ALL = np.ones(4, dtype=bool)


def obs_at(cur: int, dest: int = 5) -> np.ndarray:
    return np.array([cur, dest, 0.5, 0.1, -1, -1, (cur + 1) % 6, (cur + 2) % 6, -1, -1], dtype=np.float32)


def traj(obs_list, actions, rewards, terminated=True, masks=None, last_obs=None) -> Trajectory:
    T = len(actions)
    return Trajectory(
        obs=np.stack(obs_list),
        masks=np.ones((T, 4), bool) if masks is None else masks,
        actions=np.array(actions),
        rewards=np.array(rewards, float),
        terminated=terminated,
        last_obs=last_obs,
    )


def params(agent: HybridPPO) -> list[torch.Tensor]:
    return [p.detach().clone() for net in agent.nets for p in net.parameters()]


def same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))


def bandit_data(agent: HybridPPO, n: int = 64) -> list[Trajectory]:
    out = []
    for i in range(n):
        o = obs_at(i % 6)
        a, _ = agent.act(o, ALL)
        out.append(traj([o], [a], [1.0 if a == 2 else 0.0]))
    return out


def test_preprocess_normalises_junction_ids_only():
    o = np.array([3, 5, 0.7, -1, 2.5, -1, 4, 0, -1, -1], dtype=np.float32)
    x = preprocess(o, n_junctions=11)
    np.testing.assert_allclose(x, [0.3, 0.5, 0.7, -1, 2.5, -1, 0.4, 0.0, -1, -1], rtol=1e-6)
    np.testing.assert_allclose(preprocess(np.stack([o, o]), 11), np.stack([x, x]))
    assert o[0] == 3  # input not modified


def test_eq26_returns_terminated_vs_bootstrapped():
    agent = HybridPPO(HybridPPOConfig(gamma=0.9))
    const = lambda x: torch.full((x.shape[0], 1), 10.0)  # noqa: E731 - a controllable critic V = 10
    obs = [obs_at(i) for i in range(3)]
    done = traj(obs, [0, 1, 2], [1, 2, 3], terminated=True, last_obs=obs_at(3))
    np.testing.assert_allclose(agent.returns(done, const), [5.23, 4.7, 3.0])  # V(o_T) := 0 at arrival
    cut = traj(obs, [0, 1, 2], [1, 2, 3], terminated=False, last_obs=obs_at(3))
    np.testing.assert_allclose(agent.returns(cut, const), [12.52, 12.8, 12.0])  # + gamma^{T-t} * 10
    no_last = traj(obs, [0, 1, 2], [1, 2, 3], terminated=False)
    np.testing.assert_allclose(agent.returns(no_last, const), [5.23, 4.7, 3.0])  # no bootstrap obs -> 0
    # GAE switch: lambda=1 reproduces Eq. 26, lambda=0 is the one-step TD target
    np.testing.assert_allclose(
        HybridPPO(HybridPPOConfig(gamma=0.9, gae_lambda=1.0)).returns(cut, const), [12.52, 12.8, 12.0], rtol=1e-6
    )
    np.testing.assert_allclose(
        HybridPPO(HybridPPOConfig(gamma=0.9, gae_lambda=0.0)).returns(cut, const), [10.0, 11.0, 12.0], rtol=1e-6
    )


def test_masked_actions_never_sampled_and_all_false_falls_back():
    agent = HybridPPO(HybridPPOConfig(seed=3))
    mask = np.array([True, False, True, False])
    seen = {agent.act(obs_at(1), mask)[0] for _ in range(200)}
    assert seen == {0, 2}
    p = agent.probs(np.stack([obs_at(1), obs_at(2)]), np.stack([mask, mask]))
    assert p.shape == (2, 4) and np.all(p[:, [1, 3]] == 0.0)
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-6)
    assert agent.act(obs_at(1), np.array([False, False, False, True]), greedy=True)[0] == 3
    a, logp = agent.act(obs_at(1), np.array([False, False, False, True]))
    assert a == 3 and logp == pytest.approx(0.0, abs=1e-6)
    none = np.zeros(4, bool)
    p0 = agent.probs(obs_at(1)[None], none[None])
    assert np.all(p0 > 0) and p0.sum() == pytest.approx(1.0, rel=1e-6)
    assert len({agent.act(obs_at(1), none)[0] for _ in range(200)}) > 1


def test_seeding_identical_init_and_identical_updates():
    a, b = HybridPPO(HybridPPOConfig(init_seed=7, seed=1)), HybridPPO(HybridPPOConfig(init_seed=7, seed=1))
    assert same(params(a), params(b))
    assert not same(params(a), params(HybridPPO(HybridPPOConfig(init_seed=8))))
    data = bandit_data(HybridPPO(HybridPPOConfig(seed=5)), 40)
    expert = [traj([obs_at(i)], [1], [1.0]) for i in range(20)]
    sa, sb = a.update(data, expert, 0.4), b.update(data, expert, 0.4)
    assert sa == sb and same(params(a), params(b))
    # a checkpoint resumes identically (networks, Adam moments, sampling generator)
    c = HybridPPO(HybridPPOConfig(init_seed=99, seed=1))
    c.load_state_dict(a.state_dict())
    assert a.update(data, expert, 0.4) == c.update(data, expert, 0.4) and same(params(a), params(c))
    assert a.act(obs_at(2), ALL) == c.act(obs_at(2), ALL)


def test_alpha0_expert_loss_imitates_expert_action():
    agent = HybridPPO(HybridPPOConfig(norm_adv=False, seed=2))
    states = [obs_at(i % 6, dest=(i * 7) % 6) for i in range(32)]
    expert = [traj(states[i : i + 4], [1] * 4, [5.0] * 4) for i in range(0, 32, 4)]
    agent_data = [traj([s], [i % 4], [0.0]) for i, s in enumerate(states)]
    masks = np.ones((32, 4), bool)
    before = agent.probs(np.stack(states), masks)[:, 1].mean()
    for _ in range(6):
        stats = agent.update(agent_data, expert, alpha=0.0)
    after = agent.probs(np.stack(states), masks)[:, 1].mean()
    assert stats["n_expert"] == 32 and stats["value_loss_expert"] > 0
    assert after > before + 0.2 and after > 0.5


def test_alpha1_ignores_expert_data():
    with_e, without = HybridPPO(HybridPPOConfig(seed=4)), HybridPPO(HybridPPOConfig(seed=4))
    critic_e0 = [p.detach().clone() for p in with_e.critic_expert.parameters()]
    data = bandit_data(HybridPPO(HybridPPOConfig(seed=6)), 40)
    expert = [traj([obs_at(i)], [1], [5.0]) for i in range(20)]
    s1, s2 = with_e.update(data, expert, 1.0), without.update(data, [], 1.0)
    assert s1 == s2 and s1["n_expert"] == 0
    assert same(params(with_e), params(without))
    assert same([p.detach() for p in with_e.critic_expert.parameters()], critic_e0)  # V^e untouched


def test_expert_only_update_trains_policy_and_expert_critic():
    agent = HybridPPO(HybridPPOConfig(norm_adv=False))
    before = params(agent)
    critic_a0 = [p.detach().clone() for p in agent.critic.parameters()]
    stats = agent.update([], [traj([obs_at(i)], [3], [5.0]) for i in range(10)], alpha=0.3)
    assert stats["n_agent"] == 0 and stats["n_expert"] == 10
    assert not same(params(agent), before)
    assert same([p.detach() for p in agent.critic.parameters()], critic_a0)


def test_agent_ppo_bandit_increases_rewarded_action():
    agent = HybridPPO(HybridPPOConfig(seed=0))
    states = np.stack([obs_at(i) for i in range(6)])
    before = agent.probs(states, np.ones((6, 4), bool))[:, 2].mean()
    for _ in range(4):
        agent.update(bandit_data(agent), [], alpha=1.0)
    after = agent.probs(states, np.ones((6, 4), bool))[:, 2].mean()
    assert after > before + 0.15


def test_shape_errors():
    agent = HybridPPO()
    with pytest.raises(ValueError, match="obs"):
        agent.act(np.zeros(9), ALL)
    with pytest.raises(ValueError, match="mask"):
        agent.act(obs_at(0), np.ones(3, bool))
    with pytest.raises(ValueError, match="mask"):
        agent.probs(np.stack([obs_at(0)] * 2), np.ones((3, 4), bool))
    with pytest.raises(ValueError):
        Trajectory(
            obs=np.zeros((3, 10)),
            masks=np.ones((3, 4), bool),
            actions=np.zeros(2, int),
            rewards=np.zeros(3),
            terminated=True,
        )
    with pytest.raises(ValueError, match="obs"):
        agent.update(
            [
                Trajectory(
                    obs=np.zeros((2, 9)),
                    masks=np.ones((2, 4), bool),
                    actions=np.zeros(2, int),
                    rewards=np.zeros(2),
                    terminated=True,
                )
            ],
            [],
            1.0,
        )
    with pytest.raises(ValueError, match="selectable"):
        agent.update([traj([obs_at(0)], [1], [0.0], masks=np.array([[True, False, True, True]]))], [], 1.0)
    with pytest.raises(ValueError, match="alpha"):
        agent.update([], [], 1.5)
    with pytest.raises(Exception):
        HybridPPOConfig(bogus=1)


def test_clipped_surrogate_is_standard_ppo_min():
    """docs/reled.md, RL-13: E[min(w A, clip(w) A)], here with w = 2 and eps = 0.2 for A = +1 and A = -1."""
    agent = HybridPPO()
    obs = agent._obs(np.stack([obs_at(0), obs_at(1)]))
    masks, act = torch.ones((2, 4), dtype=torch.bool), torch.tensor([0, 3])
    with torch.no_grad():
        logp = torch.log_softmax(agent.policy(obs), -1).gather(1, act[:, None])[:, 0]
    d = dict(obs=obs, masks=masks, act=act, adv=torch.tensor([1.0, -1.0]), logp=logp - np.log(2.0))
    pos, _, diag_pos = agent._surrogate(d, torch.tensor([0]))
    neg, _, _ = agent._surrogate(d, torch.tensor([1]))
    assert pos.item() == pytest.approx(1.2, rel=1e-5) and neg.item() == pytest.approx(-2.0, rel=1e-5)
    assert diag_pos["clipfrac"] == 1.0


def test_default_settings_imitate_every_step_of_one_demonstration():
    """A demonstration's later decisions have less return to go; with the default (agent-only) advantage
    normalisation they are still reinforced, not pushed down (normalising them un-learnt the demonstration)."""
    agent = HybridPPO(HybridPPOConfig(seed=5))
    states = [obs_at(i, dest=5) for i in range(6)]
    demo = traj(states, [2, 1, 2, 1, 2, 1], [100.0] * 6)
    masks = np.ones((6, 4), bool)
    before = agent.probs(np.stack(states), masks)[np.arange(6), [2, 1, 2, 1, 2, 1]]
    for _ in range(5):
        agent.update([], [demo], alpha=0.0)
    after = agent.probs(np.stack(states), masks)[np.arange(6), [2, 1, 2, 1, 2, 1]]
    assert np.all(after > before), (before, after)
