"""Deterministic evaluation rollouts, fully inside jit."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from purerl.envs.protocol import Env


def evaluate(
    env: Env,
    policy: Callable[[jax.Array, jax.Array], jax.Array],
    key: jax.Array,
    num_episodes: int,
) -> tuple[jax.Array, jax.Array]:
    """Run ``num_episodes`` episodes in parallel and return their undiscounted returns and lengths.

    Each episode lasts at most ``env.spec.episode_length`` steps (the time limit), so a scan of that
    length sees every episode finish; only the first episode of each parallel env counts.

    Args:
      env: a wrapped env (``envs.make``) whose info carries episode statistics.
      policy: ``policy(obs[N, *obs_shape], key) -> action[N, ...]``.
      key: PRNG key.
      num_episodes: N.

    Returns:
      ``(returns[N], lengths[N])``.
    """
    reset_key, key = jax.random.split(key)
    state = jax.vmap(env.reset)(jax.random.split(reset_key, num_episodes))
    zeros = jnp.zeros((num_episodes,), jnp.float32)

    def body(carry, step_key):
        state, returns, lengths, finished = carry
        act_key, env_key = jax.random.split(step_key)
        action = policy(state.obs, act_key)
        state = jax.vmap(env.step)(jax.random.split(env_key, num_episodes), state, action)
        first = (state.info["episode_done"] > 0) & (finished == 0)
        returns = jnp.where(first, state.info["last_return"], returns)
        lengths = jnp.where(first, state.info["last_length"], lengths)
        finished = jnp.maximum(finished, first.astype(jnp.float32))
        return (state, returns, lengths, finished), None

    (_, returns, lengths, _), _ = jax.lax.scan(
        body, (state, zeros, zeros, zeros), jax.random.split(key, env.spec.episode_length)
    )
    return returns, lengths
