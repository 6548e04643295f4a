"""purerl.core.optim: the one Adam factory and the one linear warm-up."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purerl.core import optim

PARAMS = {"w": jnp.array([1.0, -2.0, 3.0]), "b": jnp.array(0.5)}


def _grads(k: int):
    rng = np.random.default_rng(k)
    return jax.tree.map(lambda x: jnp.asarray(rng.standard_normal(x.shape), jnp.float32), PARAMS)


def _run(optimizer, steps: int = 5):
    """``steps`` updates on fixed pseudo-random gradients; the params after each one."""
    params, state, out = PARAMS, optimizer.init(PARAMS), []
    for k in range(steps):
        updates, state = optimizer.update(_grads(k), state, params)
        params = optax.apply_updates(params, updates)
        out.append(params)
    return out


def _assert_bit_equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def test_warmup_schedule_hand_values():
    # W = 4: lr * min(1, (k + 1) / 4) = lr * [1/4, 2/4, 3/4, 1, 1]; never 0 at k = 0.
    schedule = optim.warmup_schedule(0.2, 4)
    got = [float(schedule(jnp.int32(k))) for k in range(5)]
    np.testing.assert_allclose(got, [0.05, 0.1, 0.15, 0.2, 0.2], rtol=1e-6)
    assert optim.warmup_schedule(0.2, 0) == 0.2  # no warm-up: the constant itself


def test_first_update_moves_the_params_with_a_long_warmup():
    # Adam's first step is -lr_0 * g / (|g| + eps) ~= -lr_0 sign(g) per coordinate, lr_0 = lr / W.
    optimizer = optim.adam(1e-2, warmup_steps=100)
    updates, _ = optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)
    np.testing.assert_allclose(np.abs(updates["w"]), 1e-4, rtol=1e-5)
    first = _run(optimizer, steps=1)[0]
    assert np.all(np.asarray(first["w"]) != np.asarray(PARAMS["w"]))
    # optax.linear_schedule(0, lr, W) (the old BOND warm-up) leaves them exactly in place.
    stuck = _run(optax.adam(optax.linear_schedule(0.0, 1e-2, 100)), steps=1)[0]
    _assert_bit_equal(stuck, PARAMS)


def test_same_bits_as_the_optax_chains_it_replaces():
    lr, norm = 1e-2, 0.5
    # no warm-up, with clipping: lm.make_train_step / policy_gradient with warmup_steps = 0
    _assert_bit_equal(
        _run(optim.adam(lr, max_grad_norm=norm)),
        _run(optax.chain(optax.clip_by_global_norm(norm), optax.adam(lr))),
    )
    # warm-up: policy_gradient's former inline schedule
    old = lambda count: lr * jnp.minimum(1.0, (count + 1.0) / 3)  # noqa: E731
    _assert_bit_equal(
        _run(optim.adam(lr, warmup_steps=3, max_grad_norm=norm)),
        _run(optax.chain(optax.clip_by_global_norm(norm), optax.adam(old))),
    )
    # no clipping: reward_model's linear probe
    _assert_bit_equal(_run(optim.adam(lr)), _run(optax.adam(lr)))
    # the direction only: reward_model.make_train_step applies its own step size
    _assert_bit_equal(
        _run(optim.adam(None, max_grad_norm=norm)),
        _run(optax.chain(optax.clip_by_global_norm(norm), optax.scale_by_adam())),
    )


def test_traced_learning_rate_under_vmap():
    def first_step(lr):
        optimizer = optim.adam(lr, warmup_steps=2)
        updates, _ = optimizer.update(_grads(0), optimizer.init(PARAMS), PARAMS)
        return updates["b"]

    swept = jax.vmap(first_step)(jnp.array([0.1, 0.2]))
    loop = [first_step(jnp.float32(lr)) for lr in (0.1, 0.2)]
    np.testing.assert_array_equal(np.asarray(swept), np.asarray(loop))
    # |first step| ~= lr / W = [0.05, 0.1]
    np.testing.assert_allclose(np.abs(np.asarray(swept)), [0.05, 0.1], rtol=1e-5)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"learning_rate": 1e-3, "warmup_steps": -1}, "warmup_steps"),
        ({"learning_rate": 1e-3, "warmup_steps": 1.5}, "warmup_steps"),
        ({"learning_rate": 1e-3, "max_grad_norm": 0.0}, "max_grad_norm"),
        ({"learning_rate": None, "warmup_steps": 10}, "warmup_steps needs a learning_rate"),
    ],
)
def test_bad_inputs_raise_by_name(kwargs, match):
    with pytest.raises(ValueError, match=match):
        optim.adam(**kwargs)
