"""Tests for purerl.alignment.warp: task-vector SLERP (Lemmas 1-2), eq. 26, cosines; the EMA anchor,
LERP and LITI, which are purerl.core.tree.lerp."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import bond, warp
from purerl.alignment import policy_gradient as pg
from purerl.core.tree import lerp

S = math.sqrt(0.5)  # sin(pi/4) = cos(pi/4)


def _random_tree(seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return {
        "dense": {"w": jnp.asarray(scale * rng.standard_normal((4, 3)), jnp.float32)},
        "conv": jnp.asarray(scale * rng.standard_normal((2, 2, 3)), jnp.float32),
    }


def _sub(a, b):
    return jax.tree.map(lambda x, y: x - y, a, b)


def _add(a, b):
    return jax.tree.map(lambda x, y: x + y, a, b)


def _norms(tree):
    return {k: float(jnp.linalg.norm(v)) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}


# --- EMA ------------------------------------------------------------------------------------------


def test_ema_hand_values_and_endpoints():
    anchor = {"w": jnp.array([0.0, 10.0]), "b": jnp.array(1.0)}
    params = {"w": jnp.array([10.0, 0.0]), "b": jnp.array(3.0)}
    # WARP's EMA anchor (Alg. 1, sec. 3.1) is core.tree.lerp(anchor, params, mu):
    # mu = 0.1: 0.9 * [0, 10] + 0.1 * [10, 0] = [1, 9];  0.9 * 1 + 0.1 * 3 = 1.2
    out = lerp(anchor, params, 0.1)
    np.testing.assert_allclose(out["w"], [1.0, 9.0], atol=1e-6)
    np.testing.assert_allclose(out["b"], 1.2, atol=1e-6)
    # update_rate is the weight on the *new* params
    for k in anchor:
        np.testing.assert_array_equal(lerp(anchor, params, 0.0)[k], anchor[k])
        np.testing.assert_array_equal(lerp(anchor, params, 1.0)[k], params[k])
    # traced rate (inside jit) gives the same answer
    np.testing.assert_allclose(jax.jit(lerp)(anchor, params, 0.1)["w"], [1.0, 9.0], atol=1e-6)


def test_ema_rates_are_checked_where_they_are_taken():
    # The EMA rate is a config field of each method that keeps an EMA anchor; lerp itself accepts
    # any scalar (LITI extrapolates with eta up to 2, WARP Fig. 10b).
    with pytest.raises(ValueError, match="ema_rate"):
        pg.RLConfig(ema_rate=1.5)
    with pytest.raises(ValueError, match="anchor_eta"):
        bond.BondConfig(variant="jbond", n=2, anchor_eta=-0.1)
    with pytest.raises(ValueError, match="t must be a scalar"):
        lerp({"w": jnp.zeros(2)}, {"w": jnp.zeros(2)}, jnp.array([0.1, 0.2]))


# --- SLERP ----------------------------------------------------------------------------------------


def test_slerp_endpoints():
    init, t1, t2 = _random_tree(0), _random_tree(1), _random_tree(2)
    for lam, target in ((0.0, t1), (1.0, t2)):
        out = warp.slerp(init, t1, t2, lam)
        for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(target), strict=True):
            np.testing.assert_allclose(x, y, atol=1e-5)


def test_slerp_orthogonal_hand_values():
    # delta_1 = (2, 0), delta_2 = (0, 1): Omega = pi/2, sin(Omega) = 1, lam = 1/2:
    # weights sin(pi/4) = sqrt(1/2) each -> delta = (2 S, S); init (1, 1) -> (1 + 2 S, 1 + S)
    init, t1, t2 = jnp.array([1.0, 1.0]), jnp.array([3.0, 1.0]), jnp.array([1.0, 2.0])
    np.testing.assert_allclose(warp.slerp(init, t1, t2, 0.5), [1 + 2 * S, 1 + S], atol=1e-6)
    # lam = 1/3: sin(pi/3) = sqrt(3)/2 on delta_1, sin(pi/6) = 1/2 on delta_2
    expected = [1 + 2 * math.sqrt(3) / 2, 1 + 0.5]
    np.testing.assert_allclose(warp.slerp(init, t1, t2, 1 / 3), expected, atol=1e-6)


@pytest.mark.parametrize("lam", [0.1, 0.3, 0.5, 0.9])
def test_slerp_keeps_norm_and_lerp_shrinks_it_as_lemmas_1_2(lam):
    # WARP App. B, Assumption 1: |delta_1| = |delta_2| = l per leaf (rescale delta_2 leafwise).
    init, t1, t2 = _random_tree(0), _random_tree(1), _random_tree(2)
    d1, d2 = _sub(t1, init), _sub(t2, init)
    d2 = jax.tree.map(lambda a, b: b * jnp.linalg.norm(a) / jnp.linalg.norm(b), d1, d2)
    t2 = _add(init, d2)
    slerp_norms = _norms(_sub(warp.slerp(init, t1, t2, lam), init))
    lerp_norms = _norms(_sub(lerp(t1, t2, lam), init))
    for (path, a), b in zip(
        jax.tree_util.tree_flatten_with_path(d1)[0], jax.tree.leaves(d2), strict=True
    ):
        length = float(jnp.linalg.norm(a))
        cos = float(jnp.vdot(a, b)) / length**2
        assert slerp_norms[path] == pytest.approx(length, rel=1e-5)  # Lemma 1
        lemma2 = length * math.sqrt(1 - 2 * (1 - cos) * (lam - lam**2))
        assert lerp_norms[path] == pytest.approx(lemma2, rel=1e-5)  # Lemma 2
        assert lerp_norms[path] < length


def test_slerp_colinear_and_zero_fall_back_to_lerp():
    init = jnp.array([1.0, -1.0, 0.5])
    d = jnp.array([0.3, 0.2, -0.1])
    cases = {
        "colinear": (init + d, init + 2 * d),
        "anti-parallel": (init + d, init - 3 * d),
        "zero task vector": (init, init + d),
    }
    for name, (t1, t2) in cases.items():
        for lam in (0.25, 0.5):
            out = warp.slerp(init, t1, t2, lam)
            assert np.all(np.isfinite(out)), name
            np.testing.assert_allclose(out, (1 - lam) * t1 + lam * t2, atol=1e-6, err_msg=name)
    # the fallback is differentiable: no NaN leaks from 0/0 in the branch not taken
    grad = jax.jit(jax.grad(lambda *ts: jnp.sum(warp.slerp(*ts, 0.5)), argnums=(0, 1, 2)))
    for name, (t1, t2) in cases.items():
        for g in grad(init, t1, t2):
            assert np.all(np.isfinite(g)), name


def test_slerp_uses_one_angle_per_leaf():
    # leaf "a": orthogonal task vectors (true SLERP); leaf "b": colinear (LERP). A single global
    # angle over the concatenation would give neither.
    init = {"a": jnp.zeros(2), "b": jnp.zeros(2)}
    t1 = {"a": jnp.array([1.0, 0.0]), "b": jnp.array([1.0, 1.0])}
    t2 = {"a": jnp.array([0.0, 1.0]), "b": jnp.array([3.0, 3.0])}
    out = warp.slerp(init, t1, t2, 0.5)
    np.testing.assert_allclose(out["a"], [S, S], atol=1e-6)
    np.testing.assert_allclose(out["b"], [2.0, 2.0], atol=1e-6)


def test_slerp_keeps_dtype_and_validates():
    init = {"w": jnp.zeros((2, 2), jnp.bfloat16)}
    t1 = {"w": jnp.eye(2, dtype=jnp.bfloat16)}
    t2 = {"w": jnp.ones((2, 2), jnp.bfloat16)}
    assert warp.slerp(init, t1, t2, jnp.float32(0.5))["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match=r"leaf \['w'\] has shape"):
        warp.slerp(init, t1, {"w": jnp.ones((3, 2))}, 0.5)
    with pytest.raises(ValueError, match=r"\['v'\]"):
        warp.slerp(init, t1, {"v": jnp.ones((2, 2))}, 0.5)
    with pytest.raises(ValueError, match="lam must be a scalar"):
        warp.slerp(init, t1, t2, jnp.array([0.5, 0.5]))


def test_slerp_uniform_eq_26():
    init = jnp.array([1.0, 2.0, 3.0])
    e = jnp.eye(3)
    stacked = init + e  # three orthonormal task vectors
    # M = 1: theta_1 itself
    np.testing.assert_allclose(warp.slerp_uniform(init, stacked[:1]), stacked[0])
    # M = 2: slerp with lam = 1/2
    np.testing.assert_allclose(
        warp.slerp_uniform(init, stacked[:2]),
        warp.slerp(init, stacked[0], stacked[1], 0.5),
        atol=1e-6,
    )
    # M = 3 by hand: step 2 gives (e1 + e2)/sqrt(2); step 3, orthogonal to e3, lam = 1/3:
    # sin(pi/3) (e1 + e2)/sqrt(2) + sin(pi/6) e3 = (sqrt(3/8), sqrt(3/8), 1/2), still of norm 1
    merged = warp.slerp_uniform(init, stacked)
    np.testing.assert_allclose(merged - init, [math.sqrt(3 / 8), math.sqrt(3 / 8), 0.5], atol=1e-6)
    # pytrees, under jit, as a left fold of slerp in stack order
    trees = [_random_tree(s) for s in range(4)]
    init_t, members = trees[0], trees[1:]
    stacked_t = jax.tree.map(lambda *xs: jnp.stack(xs), *members)
    fold = members[0]
    for m, theta in enumerate(members[1:], start=2):
        fold = warp.slerp(init_t, fold, theta, 1 / m)
    out = jax.jit(warp.slerp_uniform)(init_t, stacked_t)
    for x, y in zip(jax.tree.leaves(out), jax.tree.leaves(fold), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-5)


def test_slerp_uniform_bad_stacks():
    init = {"w": jnp.zeros(3)}
    with pytest.raises(ValueError, match="empty stack"):
        warp.slerp_uniform(init, {"w": jnp.zeros((0, 3))})
    with pytest.raises(ValueError, match=r"\['w'\] has shape"):
        warp.slerp_uniform(init, {"w": jnp.zeros((2, 4))})
    with pytest.raises(ValueError, match="disagree on the number of members"):
        warp.slerp_uniform(
            {"w": jnp.zeros(3), "b": jnp.zeros(())}, {"w": jnp.zeros((2, 3)), "b": jnp.zeros(3)}
        )


# --- LITI, cosines --------------------------------------------------------------------------------


def test_liti_endpoints_and_hand_value():
    init, merged = {"w": jnp.array([0.0, 10.0])}, {"w": jnp.array([10.0, 20.0])}
    # LITI (WARP Alg. 1, stage 3) is core.tree.lerp(init, merged, eta)
    np.testing.assert_array_equal(lerp(init, merged, 0.0)["w"], init["w"])
    np.testing.assert_array_equal(lerp(init, merged, 1.0)["w"], merged["w"])
    # eta = 0.3 (WARP's default): 0.7 * [0, 10] + 0.3 * [10, 20] = [3, 13]
    np.testing.assert_allclose(lerp(init, merged, 0.3)["w"], [3.0, 13.0], atol=1e-6)
    # extrapolation (WARP Fig. 10b, eta up to 2): 2 * merged - init
    np.testing.assert_allclose(lerp(init, merged, 2.0)["w"], [20.0, 30.0], atol=1e-6)


def test_task_vector_cosines():
    init = {"a": jnp.ones(3), "b": jnp.zeros((2, 2))}
    stacked = {
        # task vectors e1, e2, -2 e1: cos(e1, e2) = 0, cos(e1, -2 e1) = -1
        "a": jnp.ones(3) + jnp.array([[1.0, 0, 0], [0, 1.0, 0], [-2.0, 0, 0]]),
        # second task vector is zero: cosine 0 with everything, itself included
        "b": jnp.stack([jnp.eye(2), jnp.zeros((2, 2)), 3 * jnp.eye(2)]),
    }
    cos = warp.task_vector_cosines(init, stacked)
    np.testing.assert_allclose(cos["a"], [[1, 0, -1], [0, 1, 0], [-1, 0, 1]], atol=1e-6)
    np.testing.assert_allclose(cos["b"], [[1, 0, 1], [0, 0, 0], [1, 0, 1]], atol=1e-6)
    # full weights (init = 0) of runs that moved a little from a common point are nearly colinear
    zero = jax.tree.map(jnp.zeros_like, init)
    full = warp.task_vector_cosines(zero, jax.tree.map(lambda x: x + 10.0, stacked))
    assert float(jnp.min(full["b"])) > 0.9
