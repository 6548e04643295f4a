import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purerl.agents import bc
from purerl.core import networks
from purerl.core.types import EnvSpec, Transition

SPEC = EnvSpec(obs_shape=(3,), action_shape=(2,), name="t")


def batch_of(obs, action):
    n = obs.shape[0]
    return Transition(obs, action, jnp.zeros(n), obs, jnp.zeros(n), jnp.zeros(n))


def test_loss_is_the_mean_squared_error_on_hand_values():
    actor = networks.Network(init=None, apply=lambda p, obs: jnp.tile(p, (obs.shape[0], 1)))
    batch = batch_of(jnp.zeros((2, 3)), jnp.array([[0.0, 0.5], [0.5, -0.5]]))
    loss, m = bc.actor_loss(jnp.array([0.5, -0.5]), batch, actor)
    # errors (0.5, -1.0) and (0, 0): mean of squares over batch and action dims = 1.25 / 4
    np.testing.assert_allclose(float(loss), 0.3125)
    np.testing.assert_allclose(float(m["loss/actor"]), 0.3125)
    np.testing.assert_allclose(float(m["action/abs_error"]), 1.5 / 4)


def test_bc_fits_a_tiny_dataset():
    k1, k2 = jax.random.split(jax.random.key(0))
    obs = jax.random.normal(k1, (16, 3))
    action = 0.8 * jnp.tanh(obs @ jax.random.normal(k2, (3, 2)))  # a smooth target in (-0.8, 0.8)
    batch = batch_of(obs, action)
    algo = bc.make(bc.Config(hidden=(32, 32), lr=3e-3), SPEC)
    state = algo.init(jax.random.key(1), SPEC)
    batches = jax.tree.map(lambda x: jnp.stack([x] * 1000), batch)
    state, metrics = jax.jit(lambda s, b: jax.lax.scan(algo.update, s, b))(state, batches)
    first, last = float(metrics["loss/actor"][0]), float(metrics["loss/actor"][-1])
    assert last < 1e-3 < first, (first, last)
    assert int(state.step) == 1000
    # loss evaluates the objective update descends: at the same parameters it equals the loss the
    # update reports, and its gradient is the one the update feeds to Adam
    value, m = algo.loss(state.params, state, batch, jax.random.key(2))
    next_state, m_update = algo.update(state, batch)
    np.testing.assert_allclose(float(value), float(m_update["loss/actor"]), rtol=1e-6)
    np.testing.assert_allclose(float(m["action/abs_error"]), float(m_update["action/abs_error"]))
    grads = jax.grad(lambda p: algo.loss(p, state, batch, jax.random.key(2))[0])(state.params)
    updates, _ = optax.adam(3e-3).update(grads, state.opt)
    for a, b in zip(
        jax.tree.leaves(optax.apply_updates(state.params, updates)),
        jax.tree.leaves(next_state.params),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # act is the policy mean whatever the key or `deterministic`
    a1, _ = algo.act(state, obs, jax.random.key(3))
    a2, _ = algo.act(state, obs, jax.random.key(4), deterministic=True)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(a1, action, atol=0.1)
    assert algo.act(state, obs[0], jax.random.key(5))[0].shape == (2,)


def test_bad_input_raises():
    algo = bc.make(bc.Config(hidden=(8,)), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    batch = batch_of(jnp.zeros((4, 3)), jnp.zeros((4, 2)))
    with pytest.raises(ValueError, match="action"):
        algo.update(state, batch._replace(action=jnp.zeros((4, 1))))
    with pytest.raises(ValueError, match="reward"):
        algo.update(state, batch._replace(reward=jnp.zeros((4, 1))))
    with pytest.raises(ValueError, match="shape"):
        algo.act(state, jnp.zeros((4, 5)), jax.random.key(0))
    with pytest.raises(ValueError, match="lr"):
        bc.Config(lr=0.0)
    with pytest.raises(ValueError, match="hidden"):
        bc.Config(hidden=(8, -1))
    with pytest.raises(ValueError, match="discrete"):
        bc.make(bc.Config(), EnvSpec(obs_shape=(3,), action_shape=(), num_actions=2))
