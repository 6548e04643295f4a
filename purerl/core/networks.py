"""Haiku MLPs and distrax policy heads behind pure ``Network(init, apply)`` pairs.

Every constructor returns a :class:`~purerl.core.types.Network`; callers never touch haiku.
Initialisation follows the common JAX RL choice (lecun-uniform hidden layers, as haiku's default
``VarianceScaling(1, 'fan_in', 'truncated_normal')``) unless a paper says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import distrax
import haiku as hk
import jax
import jax.numpy as jnp

from purerl.core.types import Network

Activation = Callable[[jax.Array], jax.Array]


def _mlp(hidden: Sequence[int], out: int, activation: Activation, final_scale: float | None):
    final_init = None if final_scale is None else hk.initializers.VarianceScaling(final_scale)
    layers = [hk.Linear(h) for h in hidden]

    def f(x):
        for layer in layers:
            x = activation(layer(x))
        return hk.Linear(out, w_init=final_init)(x)

    return f


def _to_network(fn) -> Network:
    transformed = hk.without_apply_rng(hk.transform(fn))
    return Network(init=transformed.init, apply=transformed.apply)


def mlp(
    hidden: Sequence[int],
    out: int,
    activation: Activation = jax.nn.relu,
    final_scale: float | None = None,
) -> Network:
    """Plain MLP ``x[..., d] -> y[..., out]``."""
    return _to_network(lambda x: _mlp(hidden, out, activation, final_scale)(x))


def q_network(hidden: Sequence[int], out: int = 1, num_critics: int = 2) -> Network:
    """``num_critics`` independent Q-functions ``Q_i(s, a)``: ``apply(params, obs[B, o], act[B, a])``
    returns ``[num_critics, B]`` (``out == 1``) or ``[num_critics, B, out]`` (distributional)."""

    def fn(obs, action):
        x = jnp.concatenate([obs, action], axis=-1)
        qs = [_mlp(hidden, out, jax.nn.relu, None)(x) for _ in range(num_critics)]
        q = jnp.stack(qs)
        return q[..., 0] if out == 1 else q

    return _to_network(fn)


def deterministic_policy(hidden: Sequence[int], action_size: int) -> Network:
    """``pi(s) = tanh(MLP(s))`` in ``[-1, 1]`` (TD3, D4PG)."""
    return _to_network(lambda obs: jnp.tanh(_mlp(hidden, action_size, jax.nn.relu, None)(obs)))


def tanh_gaussian(
    loc: jax.Array, log_std: jax.Array, min_log_std: float = -20.0, max_log_std: float = 2.0
) -> distrax.Distribution:
    """``a = tanh(u), u ~ N(loc, exp(log_std))`` with the change-of-variables log-density (SAC, App. C)."""
    log_std = jnp.clip(log_std, min_log_std, max_log_std)
    base = distrax.MultivariateNormalDiag(loc, jnp.exp(log_std))
    return distrax.Transformed(base, distrax.Block(distrax.Tanh(), ndims=1))


def gaussian_policy(hidden: Sequence[int], action_size: int) -> Network:
    """Outputs ``(loc, log_std)`` of a diagonal Gaussian pre-tanh; turn into a distribution with
    :func:`tanh_gaussian`."""

    def fn(obs):
        out = _mlp(hidden, 2 * action_size, jax.nn.relu, None)(obs)
        loc, log_std = jnp.split(out, 2, axis=-1)
        return loc, log_std

    return _to_network(fn)


def categorical(logits: jax.Array) -> distrax.Distribution:
    """Categorical policy head over discrete actions."""
    return distrax.Categorical(logits=logits)
