"""How a :class:`~purerl.core.types.Rewarder`'s reward enters the reward an agent learns from.

One rule for every place a rewarder plugs in (the loops' ``rewarder=``,
``purerl.envs.wrappers.with_rewarder`` and ``purerl.datasets.relabel``)::

    mode "replace":  r_t = w * r^rew_t
    mode "add":      r_t = r^env_t + w * r^rew_t

with ``r^rew_t`` from ``rewarder.reward(state, transition)`` on the env's transition and ``w`` the
weight (default 1, so "replace" hands the agent the rewarder's reward unchanged). "add" is the
intrinsic-bonus form (env reward plus a weighted bonus); "replace" the imitation form (PWIL, GAIL:
the env reward is never seen by the agent, only logged).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from purerl.core.types import EnvSpec, Metrics, Rewarder, State, Transition

MODES = ("replace", "add")


def check_mode(mode: str, weight: float, owner: str) -> None:
    """Raise ``ValueError`` naming ``owner`` unless ``mode`` is in :data:`MODES` and ``weight`` is
    a finite number (traced weights, e.g. under ``vmap`` over hyperparameters, pass unchecked)."""
    if mode not in MODES:
        raise ValueError(f"{owner}: reward mode must be 'replace' or 'add', got {mode!r}")
    if isinstance(weight, jax.core.Tracer):
        return
    if isinstance(weight, bool) or not isinstance(weight, (int, float, np.number, jax.Array)):
        raise ValueError(f"{owner}: reward weight must be a number, got {weight!r}")
    if not math.isfinite(float(weight)):
        raise ValueError(f"{owner}: reward weight must be finite, got {weight!r}")


def combine(env_reward: jax.Array, reward: jax.Array, mode: str, weight: float) -> jax.Array:
    """``w * r^rew`` ("replace") or ``r^env + w * r^rew`` ("add"); shapes ``[B]`` (any, equal)."""
    if mode == "add":
        return env_reward + weight * reward
    return weight * reward


def apply(
    rewarder: Rewarder, state: State, transition: Transition, mode: str, weight: float
) -> tuple[State, Transition, jax.Array, Metrics]:
    """One call of ``rewarder.reward`` on ``transition`` (leaves ``[B, ...]``, reward = env reward).

    Returns ``(state, transition with the combined reward, r^rew [B], metrics)``; ``r^rew`` is the
    rewarder's own (unweighted) reward, for logging. Raises ``ValueError`` at trace time if the
    reward is not ``[B]``.
    """
    state, reward, metrics = rewarder.reward(state, transition)
    env_reward = transition.reward
    if jnp.shape(reward) != jnp.shape(env_reward):
        raise ValueError(
            f"rewarder.reward returned a reward of shape {jnp.shape(reward)}, expected "
            f"{jnp.shape(env_reward)} (one per transition)"
        )
    reward = jnp.asarray(reward, jnp.float32)
    combined = combine(env_reward, reward, mode, weight).astype(env_reward.dtype)
    return state, transition._replace(reward=combined), reward, metrics


def example_transition(spec: EnvSpec, batch: int) -> Transition:
    """Zeros shaped like ``batch`` env transitions of ``spec`` (for shape checks, never run)."""
    obs = jnp.zeros((batch, *spec.obs_shape), jnp.float32)
    if spec.discrete:
        action = jnp.zeros((batch,), jnp.int32)
    else:
        action = jnp.zeros((batch, *spec.action_shape), jnp.float32)
    zero = jnp.zeros((batch,), jnp.float32)
    return Transition(obs, action, zero, obs, zero, zero)


def check_state(rewarder: Rewarder, state: State, example: Transition, owner: str) -> None:
    """``reward`` must keep its state's structure, shapes and dtypes on ``example`` (``[B]``
    transitions), or it cannot live in a ``lax.scan`` carry. A rewarder with per-episode state
    (one entry per env) must be made for the ``B`` it is used with; the error says so."""
    batch = jnp.shape(example.reward)[0]
    hint = (
        f"a rewarder with per-env episode state must be made for {batch} envs (the loop's "
        "num_envs, the offline loop's batch_size; 1 for envs.wrappers.with_rewarder and "
        "datasets.relabel)"
    )
    old = jax.eval_shape(lambda s: s, state)
    try:
        new = jax.eval_shape(rewarder.reward, state, example)[0]
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{owner}: rewarder.reward fails on a batch of {batch} transitions ({e}); {hint}"
        ) from e
    if jax.tree.structure(old) != jax.tree.structure(new) or [
        (x.shape, x.dtype) for x in jax.tree.leaves(old)
    ] != [(x.shape, x.dtype) for x in jax.tree.leaves(new)]:
        raise ValueError(
            f"{owner}: rewarder.reward changed the structure, shapes or dtypes of the rewarder's "
            f"state on a batch of {batch} transitions; {hint}"
        )


def init(
    rewarder: Rewarder, key: jax.Array, spec: EnvSpec, batch: int, owner: str, *args: Any
) -> State:
    """``rewarder.init(key, spec, *args)``, checked with :func:`check_state` on ``batch`` envs."""
    state = rewarder.init(key, spec, *args)
    check_state(rewarder, state, example_transition(spec, batch), owner)
    return state
