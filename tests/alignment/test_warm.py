"""Tests for purerl.alignment.warm: weight averaging, interpolation (core.tree.lerp), ENS baseline,
validation."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import warm
from purerl.core.tree import lerp


def _member(seed: int):
    rng = np.random.default_rng(seed)
    return {
        "trunk": {"w": jnp.asarray(rng.standard_normal((3, 4)), jnp.float32)},
        "head": jnp.asarray(rng.standard_normal((4,)), jnp.float32),
    }


def _linear_rm(params, x):
    """A reward model linear in its parameters: r(x) = x W h."""
    return x @ params["trunk"]["w"] @ params["head"]


MEMBERS = [_member(s) for s in range(3)]
STACKED = warm.stack(MEMBERS)


def test_weight_average_is_the_mean_of_members():
    avg = warm.weight_average(STACKED)
    for path in (("trunk", "w"), ("head",)):
        get = lambda t, path=path: t[path[0]] if len(path) == 1 else t[path[0]][path[1]]
        expected = sum(get(m) for m in MEMBERS) / 3
        np.testing.assert_allclose(get(avg), expected, atol=1e-6)
    # by hand: mean of 1, 2, 6 is 3
    np.testing.assert_allclose(
        warm.weight_average({"x": jnp.array([[1.0], [2.0], [6.0]])})["x"], [3.0]
    )


def test_interpolation_endpoints_and_hand_value():
    # WARM's phi_lambda = (1 - lambda) phi_1 + lambda phi_2 (Obs. 1, eq. 2) is core.tree.lerp.
    a, b = {"w": jnp.array([0.0, 4.0])}, {"w": jnp.array([8.0, 0.0])}
    np.testing.assert_array_equal(lerp(a, b, 0.0)["w"], a["w"])
    np.testing.assert_array_equal(lerp(a, b, 1.0)["w"], b["w"])
    # lam = 0.25: 0.75 * [0, 4] + 0.25 * [8, 0] = [2, 3]
    np.testing.assert_allclose(lerp(a, b, 0.25)["w"], [2.0, 3.0])
    # the midpoint of two members is the weight average of the pair
    mid = lerp(MEMBERS[0], MEMBERS[1], 0.5)
    avg = warm.weight_average(warm.stack(MEMBERS[:2]))
    for x, y in zip(jax.tree.leaves(mid), jax.tree.leaves(avg), strict=True):
        np.testing.assert_allclose(x, y, atol=1e-6)


def test_ensemble_is_the_mean_of_predictions():
    x = jnp.asarray(np.random.default_rng(9).standard_normal((5, 3)), jnp.float32)
    ens = warm.ensemble(_linear_rm, STACKED, x)
    expected = sum(_linear_rm(m, x) for m in MEMBERS) / 3
    np.testing.assert_allclose(ens, expected, atol=1e-5)
    assert ens.shape == (5,)
    # pytree outputs are averaged leafwise
    out = warm.ensemble(lambda p, x: {"r": _linear_rm(p, x), "h": p["head"]}, STACKED, x)
    np.testing.assert_allclose(out["h"], warm.weight_average(STACKED)["head"], atol=1e-6)
    # Linear in each parameter separately: WA = ENS when only one of them varies (WARM Obs. 2).
    shared_head = {"trunk": STACKED["trunk"], "head": jnp.broadcast_to(MEMBERS[0]["head"], (3, 4))}
    np.testing.assert_allclose(
        warm.ensemble(_linear_rm, shared_head, x),
        _linear_rm(warm.weight_average(shared_head), x),
        atol=1e-5,
    )


def test_incompatible_trees_raise_naming_the_path():
    other_shape = _member(5)
    other_shape["trunk"]["w"] = jnp.zeros((3, 5))
    with pytest.raises(
        ValueError, match=r"member 1.*\['trunk'\]\['w'\]|\['trunk'\]\['w'\].*member 1"
    ):
        warm.stack([MEMBERS[0], other_shape])
    missing = {"trunk": {"w": jnp.zeros((3, 4))}, "bias": jnp.zeros(4)}
    with pytest.raises(ValueError, match=r"\['head'\]"):
        warm.stack([MEMBERS[0], missing])
    names = ("phi1", "phi2")
    with pytest.raises(ValueError, match=r"phi2 has a leaf at \['extra'\]"):
        warm.check_compatible(
            "t", {"w": jnp.zeros(2)}, {"w": jnp.zeros(2), "extra": jnp.zeros(1)}, names
        )
    with pytest.raises(ValueError, match=r"leaf \['w'\] has shape \(2,\) in phi1 but \(3,\)"):
        warm.check_compatible("t", {"w": jnp.zeros(2)}, {"w": jnp.zeros(3)}, names)

    class P(NamedTuple):
        w: jax.Array

    with pytest.raises(ValueError, match="different"):
        warm.check_compatible("t", {"w": jnp.zeros(2)}, P(jnp.zeros(2)), names)
    # a stacked tree whose leaves disagree on M
    with pytest.raises(ValueError, match=r"number of members M: 3 at .*2 at"):
        warm.weight_average({"a": jnp.zeros((3, 2)), "b": jnp.zeros((2, 2))})


def test_empty_stacks_raise():
    with pytest.raises(ValueError, match="empty list"):
        warm.stack([])
    with pytest.raises(ValueError, match="M = 0"):
        warm.weight_average({"w": jnp.zeros((0, 3))})
    with pytest.raises(ValueError, match="no array leaves"):
        warm.weight_average({})
    with pytest.raises(ValueError, match="M = 0"):
        warm.ensemble(_linear_rm, jax.tree.map(lambda x: x[:0], STACKED), jnp.zeros((1, 3)))
    with pytest.raises(ValueError, match="scalar"):
        warm.weight_average({"w": jnp.float32(1.0)})


def test_jit_and_dtype():
    avg = jax.jit(warm.weight_average)(STACKED)
    np.testing.assert_allclose(avg["head"], warm.weight_average(STACKED)["head"], atol=1e-6)
    a = {"w": jnp.ones(2, jnp.bfloat16)}
    assert lerp(a, a, jnp.float32(0.3))["w"].dtype == jnp.bfloat16
    with pytest.raises(ValueError, match="t must be a scalar"):
        lerp(a, a, jnp.ones(2))
