"""The one environment protocol every purerl loop speaks.

An :class:`Env` is three things: a static :class:`~purerl.core.types.EnvSpec` and two pure
functions over an :class:`EnvState` pytree (explicit keys, gymnax-style):

    state = env.reset(key)                  # unbatched; vmap for many envs
    state = env.step(key, state, action)

``state.obs`` is the observation to act on; after a step ``state.reward``, ``state.terminated``,
``state.truncated`` and ``state.final_obs`` describe the transition just taken. ``final_obs`` is the
observation the step reached: it equals ``obs`` except when ``wrappers.auto_reset`` has started a new
episode, in which case ``obs`` is the new episode's first observation and ``final_obs`` is the last
one of the finished episode (the one to bootstrap from on truncation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purerl.core.types import EnvSpec


class EnvState(NamedTuple):
    """Pure environment state.

    Attributes:
      inner: the backend's own state (brax ``State``, a toy env's arrays, ...).
      obs: observation to act on, ``[*obs_shape]`` float32.
      reward: reward of the last step, float32 scalar.
      terminated: 1.0 if the last step reached a terminal state.
      truncated: 1.0 if the last step hit the time limit (and did not terminate).
      final_obs: observation reached by the last step, before any auto-reset.
      time: steps taken in the current episode, int32.
      info: wrapper-owned extras (episode statistics, ...); fixed keys per env.
    """

    inner: Any
    obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    final_obs: jax.Array
    time: jax.Array
    info: dict[str, jax.Array]


class Env(NamedTuple):
    spec: EnvSpec
    reset: Callable[[jax.Array], EnvState]
    step: Callable[[jax.Array, EnvState, jax.Array], EnvState]


def initial_state(inner: Any, obs: jax.Array) -> EnvState:
    """An ``EnvState`` at the start of an episode."""
    obs = jnp.asarray(obs, jnp.float32)
    zero = jnp.zeros((), jnp.float32)
    return EnvState(
        inner=inner,
        obs=obs,
        reward=zero,
        terminated=zero,
        truncated=zero,
        final_obs=obs,
        time=jnp.zeros((), jnp.int32),
        info={},
    )


def next_state(
    state: EnvState, inner: Any, obs: jax.Array, reward: jax.Array, terminated: jax.Array
) -> EnvState:
    """The ``EnvState`` after one backend step (time limits are added by ``wrappers.time_limit``)."""
    obs = jnp.asarray(obs, jnp.float32)
    return state._replace(
        inner=inner,
        obs=obs,
        # brax returns weakly typed floats; strong float32 keeps jitted steps from recompiling.
        reward=jnp.asarray(reward, jnp.float32),
        terminated=jnp.asarray(terminated, jnp.float32),
        truncated=jnp.zeros((), jnp.float32),
        final_obs=obs,
        time=state.time + 1,
    )
