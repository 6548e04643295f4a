"""Classic-control envs: Pendulum-v1 dynamics against hand-computed steps, reward range, time limit."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.envs import classic
from purerl.envs.protocol import initial_state


def at(th: float, thdot: float):
    s = jnp.array([th, thdot], jnp.float32)
    return initial_state(inner=s, obs=jnp.array([math.cos(th), math.sin(th), thdot]))


def test_pendulum_step_matches_hand_computed_euler_step():
    env = classic.pendulum()
    # th = 0.5, thdot = 1.0, a = 0.25 -> u = 2 * 0.25 = 0.5.
    # cost = 0.5^2 + 0.1 * 1^2 + 0.001 * 0.5^2 = 0.25 + 0.1 + 0.00025 = 0.35025
    # thdot' = 1 + (3 * 10 / 2 * sin(0.5) + 3 * 0.5) * 0.05 = 1 + (15 * 0.47942554 + 1.5) * 0.05
    #        = 1 + (7.1913831 + 1.5) * 0.05 = 1.4345692;  th' = 0.5 + 1.4345692 * 0.05 = 0.5717285
    nxt = env.step(None, at(0.5, 1.0), jnp.array([0.25]))
    np.testing.assert_allclose(float(nxt.reward), -0.35025, rtol=1e-6)
    np.testing.assert_allclose(nxt.inner, [0.57172846, 1.4345692], rtol=1e-6)
    np.testing.assert_allclose(
        nxt.obs, [math.cos(0.57172846), math.sin(0.57172846), 1.4345692], rtol=1e-6
    )
    assert float(nxt.terminated) == 0.0 and int(nxt.time) == 1
    assert nxt.obs.dtype == jnp.float32 and nxt.reward.dtype == jnp.float32


def test_pendulum_angle_wraps_in_the_cost_and_speed_and_torque_clip():
    env = classic.pendulum()
    # th = 3 pi / 2 is -pi / 2 after wrapping: cost (pi/2)^2 + 0.1 * 7.9^2 + 0.001 * 2^2 with the
    # action 5 clipped to 1 (u = 2); thdot' = 7.9 + (15 * sin(3 pi / 2) + 6) * 0.05 = 7.45 (no clip).
    nxt = env.step(None, at(1.5 * math.pi, 7.9), jnp.array([5.0]))
    np.testing.assert_allclose(
        float(nxt.reward), -((math.pi / 2) ** 2 + 0.1 * 7.9**2 + 0.004), rtol=1e-6
    )
    np.testing.assert_allclose(float(nxt.inner[1]), 7.45, rtol=1e-6)
    # At th = pi / 2 with full positive torque from thdot = 7.9: 7.9 + (15 + 6) * 0.05 = 8.95 -> 8.
    nxt = env.step(None, at(0.5 * math.pi, 7.9), jnp.array([1.0]))
    np.testing.assert_allclose(float(nxt.inner[1]), 8.0)
    np.testing.assert_allclose(float(nxt.inner[0]), 0.5 * math.pi + 8.0 * 0.05, rtol=1e-6)
    np.testing.assert_allclose(
        classic.angle_normalize(jnp.array([0.0, 3.5, -3.5])),
        [0.0, 3.5 - 2 * math.pi, 2 * math.pi - 3.5],
        rtol=1e-6,
    )


def test_pendulum_reset_distribution_and_reward_range():
    env = classic.pendulum()
    keys = jax.random.split(jax.random.key(0), 4096)
    state = jax.vmap(env.reset)(keys)
    th, thdot = state.inner[:, 0], state.inner[:, 1]
    assert float(jnp.min(th)) >= -math.pi and float(jnp.max(th)) <= math.pi
    assert float(jnp.min(thdot)) >= -1.0 and float(jnp.max(thdot)) <= 1.0
    assert float(jnp.max(jnp.abs(th))) > 3.0 and float(jnp.max(jnp.abs(thdot))) > 0.99
    np.testing.assert_allclose(state.obs[:, 0] ** 2 + state.obs[:, 1] ** 2, 1.0, rtol=1e-5)
    # Random states over the whole state space and random (out-of-range) actions: every reward in
    # [-(pi^2 + 6.4 + 0.004), 0]; the bound is reached at th = pi, |thdot| = 8, |u| = 2.
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    th = jax.random.uniform(k1, (4096,), minval=-10.0, maxval=10.0)
    thdot = jax.random.uniform(k2, (4096,), minval=-8.0, maxval=8.0)
    act = jax.random.uniform(k3, (4096, 1), minval=-3.0, maxval=3.0)
    states = jax.vmap(lambda s: initial_state(s, jnp.zeros(3)))(jnp.stack([th, thdot], -1))
    r = jax.vmap(env.step, in_axes=(None, 0, 0))(None, states, act).reward
    assert float(jnp.min(r)) >= classic.PENDULUM_MIN_REWARD and float(jnp.max(r)) <= 0.0
    worst = env.step(None, at(math.pi, 8.0), jnp.array([-1.0])).reward
    np.testing.assert_allclose(float(worst), -(math.pi**2 + 6.4 + 0.004), rtol=1e-5)
    np.testing.assert_allclose(classic.PENDULUM_MIN_REWARD, -16.27360440, rtol=1e-7)
    assert float(env.step(None, at(0.0, 0.0), jnp.array([0.0])).reward) == 0.0


def test_make_pendulum_truncates_at_200_steps_and_never_terminates():
    env = envs.make("pendulum")
    assert env.spec.episode_length == 200 and env.spec.action_shape == (1,)
    assert not env.spec.discrete and env.spec.obs_shape == (3,)

    def body(state, key):
        state = env.step(key, state, jnp.array([0.3]))
        return state, (state.terminated, state.truncated, state.info["episode_done"], state.time)

    state = env.reset(jax.random.key(0))
    _, (term, trunc, done, time) = jax.lax.scan(
        body, state, jax.random.split(jax.random.key(1), 450)
    )
    assert float(jnp.sum(term)) == 0.0
    np.testing.assert_array_equal(np.nonzero(np.asarray(trunc))[0], [199, 399])
    np.testing.assert_array_equal(done, trunc)
    assert int(time[199]) == 0 and int(time[200]) == 1  # auto-reset starts a new episode
    with pytest.raises(ValueError, match="no backend"):
        envs.make("pendulum", backend="spring")


def test_pendulum_vmap_equals_python_loop():
    env = envs.make("pendulum")
    keys = jax.random.split(jax.random.key(2), 4)
    actions = jnp.array([[-1.0], [-0.3], [0.4], [1.0]])
    batched = jax.vmap(env.step)(keys, jax.vmap(env.reset)(keys), actions)
    for i in range(4):
        one = env.step(keys[i], env.reset(keys[i]), actions[i])
        np.testing.assert_allclose(batched.obs[i], one.obs, rtol=1e-6)
        np.testing.assert_allclose(batched.reward[i], one.reward, rtol=1e-6)
        np.testing.assert_allclose(batched.info["episode_return"][i], one.reward, rtol=1e-6)
