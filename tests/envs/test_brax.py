import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs


def test_brax_env_steps_with_strong_float32_and_compiles_once():
    env = envs.make("inverted_pendulum", episode_length=5)
    assert env.spec.obs_shape == (4,) and env.spec.action_shape == (1,)
    step = jax.jit(env.step)
    state = jax.jit(env.reset)(jax.random.key(0))
    for i in range(6):  # feeds its own output back: a weakly typed leaf would recompile
        state = step(jax.random.key(i), state, jnp.zeros((1,)))
        assert state.reward.dtype == jnp.float32 and not state.reward.weak_type
    assert step._cache_size() == 1
    assert np.all(np.isfinite(np.asarray(state.obs)))


def test_brax_time_limit_truncates_on_the_limit_step():
    env = envs.make("reacher", episode_length=3)  # reacher never terminates
    state = env.reset(jax.random.key(0))
    flags = []
    for i in range(3):
        state = env.step(jax.random.key(i), state, jnp.zeros((2,)))
        flags.append((float(state.terminated), float(state.truncated)))
    assert flags == [(0.0, 0.0), (0.0, 0.0), (0.0, 1.0)]
    assert float(state.info["last_length"]) == 3.0


def test_unknown_backend_and_mjx_options_raise():
    with pytest.raises(ValueError, match="backend"):
        envs.make("hopper", backend="warp")
    with pytest.raises(ValueError, match="mjx"):
        envs.make("hopper", backend="spring", mjx_iterations=1)
