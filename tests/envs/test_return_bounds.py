"""envs.return_bounds: the attainable return range from the per-step reward bounds (no compile)."""

import pytest

from purerl import envs
from purerl.envs import classic


def test_return_bounds_from_reward_bounds():
    # inverted_pendulum: reward 1 per step, 1000-step episodes (fewer if the pole falls).
    assert envs.return_bounds("inverted_pendulum") == (0.0, 1000.0)
    assert envs.return_bounds("inverted_pendulum", episode_length=100) == (0.0, 100.0)
    assert envs.return_bounds("cartpole") == (0.0, 500.0)  # its own 500-step limit
    # pendulum: 200 steps of reward in [-16.27, 0].
    low, high = envs.return_bounds("pendulum")
    assert low == pytest.approx(200 * classic.PENDULUM_MIN_REWARD) and high == 0.0
    assert envs.return_bounds("inverted_double_pendulum") == (None, 10_000.0)  # 10 alive bonus
    assert envs.return_bounds("reacher") == (None, 0.0)
    # No known bound: None on both sides, never a guess.
    assert envs.return_bounds("halfcheetah") == (None, None)
    assert envs.return_bounds("point_mass") == (None, None)
    assert set(envs.REWARD_BOUNDS) <= set(envs.list_envs())
    with pytest.raises(ValueError, match="unknown env"):
        envs.return_bounds("nope")
    with pytest.raises(ValueError, match="episode_length"):
        envs.return_bounds("cartpole", episode_length=0)
