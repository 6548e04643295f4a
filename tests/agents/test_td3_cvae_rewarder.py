"""The TD3-CVAE anti-exploration penalty as a Rewarder, and the agent using the same functions."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from purerl.agents import td3_cvae
from purerl.core.types import EnvSpec, Rewarder, Transition

SPEC = EnvSpec(obs_shape=(3,), action_shape=(2,), name="t")
CFG = td3_cvae.Config(
    hidden=(8, 8), cvae_hidden=(8, 8), latent_size=4, alpha=2.0, cvae_steps=3, cvae_lr=1e-2
)
leaves = jax.tree.leaves


def assert_same(x, y):
    for a, b in zip(leaves(x), leaves(y), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)


def batch_of(key, n=16):
    k = jax.random.split(key, 3)
    obs = jax.random.normal(k[0], (n, 3))
    action = jax.random.uniform(k[1], (n, 2), minval=-1, maxval=1)
    z = jnp.zeros(n)
    return Transition(obs, action, jax.random.normal(k[2], (n,)), obs, z, z)


def test_rewarder_from_config_and_spec_alone():
    rewarder = td3_cvae.make_rewarder(CFG, SPEC)
    assert isinstance(rewarder, Rewarder)
    state = rewarder.init(jax.random.key(0), SPEC)
    batch = batch_of(jax.random.key(1))
    same_state, reward, metrics = jax.jit(rewarder.reward)(state, batch)
    assert reward.shape == (16,) and reward.dtype == jnp.float32
    assert_same(same_state, state)
    # -alpha b(s, a), b drawn with fold_in(key, step)
    cvae = td3_cvae.cvae_network(CFG, SPEC)
    key = jax.random.fold_in(state.key, state.step)
    b = td3_cvae.bonus(state.params, batch.obs, batch.action, key, cvae, CFG)
    np.testing.assert_allclose(reward, -2.0 * b, rtol=1e-6)
    assert float(jnp.max(reward)) < 0.0
    np.testing.assert_allclose(metrics["bonus/mean"], jnp.mean(b), rtol=1e-6)
    # update: one CVAE step, the reconstruction error on the batch goes down over a few steps
    batches = jax.tree.map(lambda x: jnp.stack([x] * 200), batch)
    state, m = jax.jit(lambda s, b: jax.lax.scan(rewarder.update, s, b))(state, batches)
    assert set(m) == {"loss/cvae", "cvae/recon", "cvae/kl", "bonus/data"}
    assert int(state.step) == 200
    first, m = float(m["cvae/recon"][0]), jax.tree.map(lambda x: x[-1], m)
    assert float(m["cvae/recon"]) < 0.5 * first, (first, float(m["cvae/recon"]))
    # alpha = 0: no penalty
    zero = td3_cvae.make_rewarder(dataclasses.replace(CFG, alpha=0.0), SPEC)
    np.testing.assert_array_equal(zero.reward(state, batch)[1], jnp.zeros(16))


def test_the_agents_cvae_phase_is_the_rewarders_update():
    rewarder = td3_cvae.make_rewarder(CFG, SPEC)
    algo = td3_cvae.make(CFG, SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    assert isinstance(state.extra, td3_cvae.CVAEState)
    extra = state.extra
    for i in range(3):  # the CVAE phase
        batch = batch_of(jax.random.key(10 + i))
        state, m = jax.jit(algo.update)(state, batch)
        extra, m_r = jax.jit(rewarder.update)(extra, batch)
        assert_same(state.extra, extra)
        for k, v in m_r.items():
            np.testing.assert_array_equal(m[k], v, err_msg=k)
