"""Hand-computed checks of scenarios/cav/maths.py (RSM-MASAC paper, Sec. VI-A; docs/rsm_masac.md, R-A14 to R-A16)."""

import math

import numpy as np
import pytest

from scenarios.cav.maths import (
    ACTION_BOUNDS,
    HORIZONS,
    SPEED_LIMIT,
    cav_observation,
    clip_action,
    shared_reward,
    terminated,
)


def test_constants_follow_table_iii():
    assert ACTION_BOUNDS == {"figure8": 3.0, "merge": 1.5}
    assert HORIZONS == {"figure8": 1500, "merge": 750}
    assert SPEED_LIMIT == 30.0


def test_observation_normal_case():
    # L = 400 m, max speed 30 m/s.
    # ego (100 m, 15 m/s)  -> 100/400 = 0.25, 15/30 = 0.5
    # follower (80, 12)    -> 0.2, 0.4
    # leader (130, 21)     -> 0.325, 0.7
    obs = cav_observation((100.0, 15.0), (80.0, 12.0), (130.0, 21.0), net_length=400.0, max_speed=30.0)
    assert obs.shape == (6,) and obs.dtype == np.float64
    np.testing.assert_allclose(obs, [0.25, 0.5, 0.2, 0.4, 0.325, 0.7])


def test_observation_missing_leader_and_follower_are_zeros():
    # No leader: entries 4, 5 are 0 (R-A16). Ego (200, 6) -> 0.5, 0.2; follower (40, 3) -> 0.1, 0.1.
    obs = cav_observation((200.0, 6.0), (40.0, 3.0), None, net_length=400.0, max_speed=30.0)
    np.testing.assert_allclose(obs, [0.5, 0.2, 0.1, 0.1, 0.0, 0.0])
    # No follower: entries 2, 3 are 0. Leader (300, 30) -> 0.75, 1.0.
    obs = cav_observation((200.0, 6.0), None, (300.0, 30.0), net_length=400.0, max_speed=30.0)
    np.testing.assert_allclose(obs, [0.5, 0.2, 0.0, 0.0, 0.75, 1.0])
    # Alone: only the ego's entries are non-zero.
    obs = cav_observation((200.0, 6.0), None, None, net_length=400.0, max_speed=30.0)
    np.testing.assert_allclose(obs, [0.5, 0.2, 0, 0, 0, 0])
    with pytest.raises(ValueError):
        cav_observation(None, None, None, net_length=400.0)


def test_observation_normalisation_bounds():
    # Default max speed is 30 (R-A15): 30 m/s -> exactly 1.0, 0 m/s -> 0.0, position 0 -> 0.0.
    obs = cav_observation((0.0, 30.0), (400.0, 0.0), (399.0, 15.0), net_length=400.0)
    np.testing.assert_allclose(obs, [0.0, 1.0, 1.0, 0.0, 399 / 400, 0.5])
    # Over the limit (speedFactor 1.1 -> 33 m/s) and past the loop end (410 m) are clipped to 1.0;
    # a tiny negative position (float error) is clipped to 0.0.
    obs = cav_observation((410.0, 33.0), (-1e-9, 0.0), None, net_length=400.0)
    np.testing.assert_allclose(obs, [1.0, 1.0, 0.0, 0.0, 0.0, 0.0])
    assert np.all((obs >= 0) & (obs <= 1))
    with pytest.raises(ValueError):
        cav_observation((1.0, 1.0), None, None, net_length=0.0)


def test_shared_reward_normal_case():
    # mean(10, 20, 30) = 20; 20 / 30 = 2/3.
    assert shared_reward([10.0, 20.0, 30.0], 30.0, False) == pytest.approx(2 / 3)
    # HDVs and CAVs alike: 14 vehicles at 6 m/s -> 6/30 = 0.2. Default target is 30.
    assert shared_reward(np.full(14, 6.0)) == pytest.approx(0.2)
    # Normalised by 20 (the reference code's speed limit): 20/20 = 1.0.
    assert shared_reward([20.0, 20.0], 20.0, False) == pytest.approx(1.0)


def test_shared_reward_zero_on_collision_and_fail_cases():
    # Same speeds as the normal case, but a collision step -> 0.
    assert shared_reward([10.0, 20.0, 30.0], 30.0, True) == 0.0
    # No vehicles -> 0; a speed below -100 (the code's fail check) -> 0.
    assert shared_reward([], 30.0, False) == 0.0
    assert shared_reward([10.0, -101.0], 30.0, False) == 0.0
    with pytest.raises(ValueError):
        shared_reward([1.0], 0.0, False)


def test_terminated():
    # Collision ends the epoch by default (the paper; R-A14) ...
    assert terminated(10, 1500, True) is True
    # ... but not in code-compat mode.
    assert terminated(10, 1500, True, end_on_collision=False) is False
    # Horizon: step 1499 of 1500 continues, step 1500 ends; merge T = 750.
    assert terminated(1499, 1500, False) is False
    assert terminated(1500, 1500, False) is True
    assert terminated(750, 750, False, end_on_collision=False) is True
    with pytest.raises(ValueError):
        terminated(1, 0, False)


def test_clip_action_both_bounds():
    # Figure-eight bound 3: 5 -> 3, -4.2 -> -3, inside unchanged, exact bounds unchanged.
    assert clip_action(5.0, 3.0) == 3.0
    assert clip_action(-4.2, 3.0) == -3.0
    assert clip_action(1.25, 3.0) == 1.25
    assert clip_action(3.0, 3.0) == 3.0 and clip_action(-3.0, 3.0) == -3.0
    # Merge bound 1.5: 2 -> 1.5, -2 -> -1.5, and infinities are clamped too.
    assert clip_action(2.0, 1.5) == 1.5
    assert clip_action(-2.0, 1.5) == -1.5
    assert clip_action(math.inf, 1.5) == 1.5 and clip_action(-math.inf, 1.5) == -1.5
    # numpy scalars come back as plain floats.
    out = clip_action(np.float32(0.5), 1.5)
    assert type(out) is float and out == 0.5
    with pytest.raises(ValueError):
        clip_action(math.nan, 3.0)
    with pytest.raises(ValueError):
        clip_action(1.0, 0.0)
