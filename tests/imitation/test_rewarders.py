"""The fixed rewarders against hand-computed values, and the rewarder registry."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs, imitation
from purerl.core.types import EnvSpec, Rewarder, Transition
from purerl.imitation import rewarders

SPEC = EnvSpec(obs_shape=(4,), action_shape=(2,))


def transitions() -> Transition:
    obs = jnp.array([[0.0, 0.0, 9.0, 9.0], [1.0, 1.0, 9.0, 9.0]])
    next_obs = jnp.array([[0.5, 0.5, 9.0, 9.0], [3.5, 4.5, 9.0, 9.0]])
    return Transition(
        obs=obs,
        action=jnp.zeros((2, 2)),
        reward=jnp.array([-1.5, 2.0]),
        next_obs=next_obs,
        terminated=jnp.array([0.0, 1.0]),
        truncated=jnp.array([1.0, 0.0]),
    )


def call(name, **config):
    rewarder = imitation.get(name)(imitation.config_class(name)(**config), SPEC)
    assert isinstance(rewarder, Rewarder)
    state = rewarder.init(jax.random.key(0), SPEC)
    new_state, reward, metrics = jax.jit(rewarder.reward)(state, transitions())
    assert new_state == state == ()  # fixed rewarders keep no state
    assert rewarder.update(state, transitions()) == ((), {})
    assert reward.shape == (2,) and reward.dtype == jnp.float32
    return np.asarray(reward), {k: float(v) for k, v in metrics.items()}


def test_env_reward_passes_the_reward_through():
    reward, metrics = call("env_reward")
    np.testing.assert_array_equal(reward, [-1.5, 2.0])
    assert metrics == {"reward/env_mean": 0.25}


def test_alive_bonus_pays_every_non_terminal_step():
    # step 0 is truncated (not terminal): it still earns the bonus; step 1 terminates: 0.
    reward, metrics = call("alive_bonus", bonus=3.0)
    np.testing.assert_array_equal(reward, [3.0, 0.0])
    assert metrics == {"reward/alive_fraction": 0.5}
    with pytest.raises(ValueError, match="AliveBonusConfig.bonus must be a positive number"):
        rewarders.AliveBonusConfig(bonus=0.0)


def test_goal_distance_is_minus_the_distance_of_the_reached_state():
    # next_obs[:, :2] = (0.5, 0.5) and (3.5, 4.5); goal (0.5, 0.5): distances 0 and
    # sqrt(3^2 + 4^2) = 5.
    reward, metrics = call("goal_distance")
    np.testing.assert_allclose(reward, [0.0, -5.0], atol=1e-6)
    assert metrics["reward/goal_distance"] == pytest.approx(2.5)
    # dims (2, 3) against goal (9, 9): both at distance 0.
    reward, _ = call("goal_distance", goal=(9.0, 9.0), dims=(2, 3))
    np.testing.assert_array_equal(reward, [0.0, 0.0])
    with pytest.raises(ValueError, match="same length"):
        rewarders.GoalDistanceConfig(goal=(1.0,), dims=(0, 1))
    with pytest.raises(ValueError, match="must index a flat observation of shape"):
        rewarders.make_goal_distance(rewarders.GoalDistanceConfig(dims=(0, 4)), SPEC)


def test_goal_distance_reproduces_point_mass_reward():
    env = envs.make("point_mass")
    rewarder = rewarders.make_goal_distance(rewarders.GoalDistanceConfig(), env.spec)
    state = env.reset(jax.random.key(0))
    for i in range(5):
        new = env.step(jax.random.key(i), state, jnp.array([0.7, -0.2]))
        tr = Transition(
            state.obs[None], jnp.zeros((1, 2)), new.reward[None], new.final_obs[None],
            new.terminated[None], new.truncated[None],
        )  # fmt: skip
        _, r, _ = rewarder.reward((), tr)
        np.testing.assert_allclose(r, new.reward[None], rtol=1e-6)
        state = new


def test_registry_lookup():
    assert set(imitation.list_rewarders()) == set(imitation.REGISTRY)
    for name, entry in imitation.REGISTRY.items():
        assert callable(imitation.get(name)) and isinstance(imitation.config_class(name), type)
        assert entry.description
    assert imitation.resolve("purerl.imitation.rewarders:make_env_reward") is (
        rewarders.make_env_reward
    )
    with pytest.raises(ValueError, match="unknown rewarder 'gail'; known rewarders: .*alive_bonus"):
        imitation.get("gail")
    with pytest.raises(ValueError, match="expected 'module:attribute'"):
        imitation.resolve("purerl.imitation.rewarders.make_env_reward")
