"""Contract every registered agent satisfies (docs/design.md, "Tests" 3)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import agents, envs
from purerl.core.types import Transition

AGENTS = sorted(agents._MODULES)

TINY = {
    "hidden": (16, 16),
    "actor_hidden": (16, 16),
    "critic_hidden": (16, 16),
    "num_minibatches": 2,
    "num_epochs": 2,
    "batch_size": 8,
}


def setup(name):
    module = agents.get(name)
    fields = {f.name for f in dataclasses.fields(module.Config)}
    config = module.Config(**{k: v for k, v in TINY.items() if k in fields})
    try:
        env = envs.make("point_mass")
        algo = module.make(config, env.spec)
    except ValueError:  # discrete-only agent
        env = envs.make("cartpole")
        algo = module.make(config, env.spec)
    return module, config, env, algo


def batch_for(module, config, spec, key):
    """A random batch of the shape the agent's loop hands to ``update``."""
    if module.LOOP == "on_policy":
        lead = (8, 4)
    else:
        n = getattr(config, "n_step", 1)
        lead = (8,) if n == 1 else (8, n)
    k = jax.random.split(key, 4)
    obs = jax.random.normal(k[0], (*lead, *spec.obs_shape))
    if spec.discrete:
        action = jax.random.randint(k[1], lead, 0, spec.num_actions)
    else:
        action = jax.random.uniform(k[1], (*lead, *spec.action_shape), minval=-1, maxval=1)
    done = (jax.random.uniform(k[3], lead) < 0.1).astype(jnp.float32)
    return Transition(
        obs=obs,
        action=action,
        reward=jax.random.normal(k[2], lead),
        next_obs=obs + 0.1,
        terminated=done,
        truncated=jnp.zeros(lead),
        # offline agents (LOOP = "offline") may read a_{t+1} (SARSA targets); others ignore it
        next_action=action[::-1] if module.LOOP == "offline" else None,
    )


@pytest.mark.parametrize("name", AGENTS)
def test_agent_contract(name):
    module, config, env, algo = setup(name)
    spec = env.spec
    state = algo.init(jax.random.key(0), spec)
    batch = batch_for(module, config, spec, jax.random.key(1))

    # jit: many updates, one compile; structure, shapes and dtypes kept; metrics finite.
    update = jax.jit(algo.update)
    s = state
    for _ in range(3):
        s, metrics = update(s, batch)
    assert update._cache_size() == 1
    assert jax.tree.structure(s) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(state), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert metrics and all("/" in k for k in metrics)
    for k, v in metrics.items():
        assert np.all(np.isfinite(np.asarray(v))), k

    # update is a scan body.
    batches = jax.tree.map(lambda x: jnp.stack([x, x]), batch)
    s2, m2 = jax.lax.scan(algo.update, state, batches)
    assert set(m2) == set(metrics)

    # loss is a scalar with metrics.
    params = state.params if hasattr(state, "params") else state
    value, loss_metrics = jax.jit(algo.loss)(params, state, batch, jax.random.key(2))
    assert value.shape == () and np.isfinite(float(value)) and loss_metrics

    # act: one obs or a batch, deterministic is deterministic.
    a1, _ = algo.act(state, jnp.zeros(spec.obs_shape), jax.random.key(3))
    ab, _ = algo.act(state, jnp.zeros((5, *spec.obs_shape)), jax.random.key(3))
    act_shape = () if spec.discrete else spec.action_shape
    assert a1.shape == act_shape and ab.shape == (5, *act_shape)
    d1, _ = algo.act(state, batch.obs.reshape(-1, *spec.obs_shape), jax.random.key(4), True)
    d2, _ = algo.act(state, batch.obs.reshape(-1, *spec.obs_shape), jax.random.key(5), True)
    np.testing.assert_array_equal(d1, d2)
    if not spec.discrete:
        assert np.all(np.abs(np.asarray(ab)) <= 1.0)

    # vmap over seeds equals a Python loop over seeds.
    def run(key):
        st = algo.init(key, spec)
        st, m = jax.lax.scan(algo.update, st, batches)
        return st, m

    keys = jax.random.split(jax.random.key(9), 3)
    vst, vm = jax.jit(jax.vmap(run))(keys)
    for i in range(3):
        lst, lm = jax.jit(run)(keys[i])
        for a, b in zip(jax.tree.leaves(vst), jax.tree.leaves(lst), strict=True):
            if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
                a, b = jax.random.key_data(a), jax.random.key_data(b)
            np.testing.assert_allclose(np.asarray(a[i]), np.asarray(b), rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("name", AGENTS)
def test_agent_rejects_bad_observation_shape(name):
    module, config, env, algo = setup(name)
    state = algo.init(jax.random.key(0), env.spec)
    with pytest.raises(ValueError, match="shape"):
        algo.act(state, jnp.zeros((3, env.spec.obs_shape[0] + 1)), jax.random.key(0))
    batch = batch_for(module, config, env.spec, jax.random.key(1))
    bad = batch._replace(obs=jnp.zeros((*batch.obs.shape[:-1], batch.obs.shape[-1] + 2)))
    with pytest.raises(ValueError, match="obs"):
        algo.update(state, bad)
