"""Running observation normalization (Welford/Chan parallel moments), as a pure pytree.

``normalize(update(state, batch), x) = clip((x - mean) / std, -clip, clip)``; the same running
statistics as brax's ``running_statistics`` and Acme's, with float32 counts.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class NormalizerState(NamedTuple):
    mean: jax.Array
    var: jax.Array
    count: jax.Array


def init(shape: tuple[int, ...]) -> NormalizerState:
    return NormalizerState(
        mean=jnp.zeros(shape, jnp.float32),
        var=jnp.ones(shape, jnp.float32),
        count=jnp.zeros((), jnp.float32),
    )


def update(state: NormalizerState, batch: jax.Array) -> NormalizerState:
    """Merge a batch ``[..., *shape]`` into the running moments (Chan et al. 1979)."""
    shape = state.mean.shape
    x = jnp.reshape(batch, (-1, *shape)).astype(jnp.float32)
    n_b = jnp.asarray(x.shape[0], jnp.float32)
    mean_b = jnp.mean(x, axis=0)
    var_b = jnp.var(x, axis=0)
    total = state.count + n_b
    delta = mean_b - state.mean
    mean = state.mean + delta * n_b / total
    m2 = state.var * state.count + var_b * n_b + delta**2 * state.count * n_b / total
    return NormalizerState(mean=mean, var=m2 / total, count=total)


def normalize(
    state: NormalizerState, x: jax.Array, clip: float = 10.0, eps: float = 1e-8
) -> jax.Array:
    """Standardize ``x`` with the running moments; identity before the first update."""
    std = jnp.sqrt(state.var + eps)
    return jnp.clip((x - state.mean) / std, -clip, clip)


def update_and_normalize_batch(state: NormalizerState, batch, clip: float):
    """Merge ``batch.obs`` into the moments, then normalize ``batch.obs`` and ``batch.next_obs``
    with the merged moments. ``batch`` is any NamedTuple with ``obs`` / ``next_obs`` leaves
    (a :class:`purerl.core.types.Transition`). Returns ``(state, batch)``.

    This is how the off-policy agents (SAC, TD3, D4PG) keep running moments under the contract's
    ``update(state, batch)``: the moments follow the replay distribution the agent learns from.
    """
    state = update(state, batch.obs)
    return state, batch._replace(
        obs=normalize(state, batch.obs, clip=clip),
        next_obs=normalize(state, batch.next_obs, clip=clip),
    )
