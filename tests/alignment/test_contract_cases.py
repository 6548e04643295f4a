"""The Algorithm contract on every registered alignment method (docs/design.md, "Tests" 3).

The checks of ``tests/test_contract.py`` on :func:`contract_cases` (they may be folded into it):
jit with one trace for many updates (``chex.assert_max_traces``), state structure / shapes / dtypes
kept, finite ``"group/name"`` metrics, ``update`` usable as a ``lax.scan`` body, and ``vmap`` over
seeds (init + a few updates) equal to a Python loop over the seeds. Plus the registry itself.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import alignment
from tests.alignment.contract_cases import ContractCase, contract_cases

CALLS = 3  # updates under one trace, and the scan length of the vmap check
CASES = contract_cases()


def _plain(x):
    return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


def test_registry_list_get_and_cases_cover_it():
    assert sorted(alignment.REGISTRY) == ["bond", "policy_gradient"]
    assert set(alignment.list_methods()) == set(alignment.REGISTRY)
    for name, module in alignment.REGISTRY.items():
        assert alignment.get(name) is module and callable(module.make)
    with pytest.raises(ValueError, match="unknown alignment method 'ppo'.*bond, policy_gradient"):
        alignment.get("ppo")
    assert [case.name for case in CASES] == sorted(alignment.REGISTRY)
    for name in alignment.__all__:
        assert hasattr(alignment, name), name


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_contract(case: ContractCase):
    init = jax.jit(case.init)
    state = init(jax.random.key(0))
    batch = case.batch(jax.random.key(1))
    chex.clear_trace_counter()  # counters are keyed by source location, shared by the cases
    (label, body), *_ = case.bodies
    update = jax.jit(chex.assert_max_traces(body, n=1))
    s = state
    for _ in range(CALLS):
        s, metrics = update(s, batch)
    assert jax.tree.structure(s) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(state), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert metrics
    for k, v in metrics.items():
        assert "/" in k, f"metric {k!r} is not 'group/name'"
        assert np.shape(v) == () and np.isfinite(float(v)), k
    # the parameters moved (the first update already does: no warm-up at lr 0)
    assert not np.array_equal(
        np.asarray(jax.tree.leaves(s.params)[0]), np.asarray(jax.tree.leaves(state.params)[0])
    )

    # vmap over seeds of (init, CALLS updates as a lax.scan) == a Python loop over the seeds.
    batches = jnp.stack([batch] * CALLS)

    def run(key):
        return jax.lax.scan(body, case.init(key), batches)[0]

    keys = jax.random.split(jax.random.key(9), 2)
    vmapped = jax.jit(jax.vmap(run))(keys)
    for i in range(len(keys)):
        s = init(keys[i])
        for _ in range(CALLS):
            s, _ = update(s, batch)
        for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(s), strict=True):
            np.testing.assert_allclose(
                np.asarray(_plain(a)[i]), np.asarray(_plain(b)), rtol=2e-4, atol=2e-5
            )
