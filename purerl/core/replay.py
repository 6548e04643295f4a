"""A replay buffer that is a pytree of arrays: jit-, vmap- (over seeds) and checkpoint-friendly.

Layout: each leaf is ``[capacity, num_envs, ...]``, time-ordered per env, written as a ring. Each
slot holds a whole :class:`~purerl.core.types.Transition` (``next_obs`` included), so a window never
needs to look across an auto-reset to find its next observation; truncation keeps the final
observation. ``sample`` returns single transitions ``[B, ...]`` (``n == 1``) or windows ``[B, n, ...]``
of consecutive steps of one env for n-step targets (see :func:`n_step_target`).

Why not flashbax: its flat buffer stores trajectories and rebuilds ``next_obs`` from the following
slot, which is wrong across auto-resets unless the user adds the final observation themselves; this
buffer is ~80 lines, stores exactly what the agents need and is tested under vmap.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class ReplayState(NamedTuple):
    """Buffer contents and ring pointers. ``data`` leaves are ``[capacity, num_envs, ...]``."""

    data: Any
    insert: jax.Array  # next time slot to write, int32
    size: jax.Array  # number of valid time slots, int32


def init(example: Any, capacity: int, num_envs: int) -> ReplayState:
    """Allocate a buffer for ``capacity`` time steps of ``num_envs`` parallel envs.

    Args:
      example: one unbatched item (e.g. a ``Transition`` of a single env) giving leaf shapes/dtypes.
      capacity: time slots per env; the buffer holds ``capacity * num_envs`` transitions.
      num_envs: parallel environments written at each ``add``.
    """
    if capacity <= 0 or num_envs <= 0:
        raise ValueError(
            f"replay capacity and num_envs must be positive, got {capacity}, {num_envs}"
        )
    data = jax.tree.map(
        lambda x: jnp.zeros((capacity, num_envs, *jnp.shape(x)), jnp.asarray(x).dtype), example
    )
    return ReplayState(data=data, insert=jnp.zeros((), jnp.int32), size=jnp.zeros((), jnp.int32))


def capacity(state: ReplayState) -> int:
    return jax.tree.leaves(state.data)[0].shape[0]


def add(state: ReplayState, items: Any, mask: jax.Array | None = None) -> ReplayState:
    """Write one time step of all envs: ``items`` leaves are ``[num_envs, ...]``.

    ``mask`` (scalar bool): write only where true; false leaves the buffer as it was (one slot is
    rewritten with its old contents, so no copy of the buffer is made under ``vmap``)."""
    cap = capacity(state)
    if mask is None:
        write = lambda buf, x: buf.at[state.insert].set(x.astype(buf.dtype))  # noqa: E731
        grow = 1
    else:
        write = lambda buf, x: buf.at[state.insert].set(  # noqa: E731
            jnp.where(mask, x.astype(buf.dtype), buf[state.insert])
        )
        grow = mask.astype(jnp.int32)
    data = jax.tree.map(write, state.data, items)
    return ReplayState(
        data=data,
        insert=(state.insert + grow) % cap,
        size=jnp.minimum(state.size + grow, cap),
    )


def sample(state: ReplayState, key: jax.Array, batch_size: int, n: int = 1) -> Any:
    """Uniformly sample ``batch_size`` items (``n == 1``: leaves ``[B, ...]``) or windows of ``n``
    consecutive steps of one env (leaves ``[B, n, ...]``), among fully written windows only.

    The caller must ensure ``size >= n`` (the loops' warm-up does); with fewer the indices wrap into
    unwritten zeros, never out of bounds.
    """
    cap = capacity(state)
    num_envs = jax.tree.leaves(state.data)[0].shape[1]
    time_key, env_key = jax.random.split(key)
    num_starts = jnp.maximum(state.size - n + 1, 1)
    offset = jax.random.randint(time_key, (batch_size,), 0, num_starts)
    oldest = (state.insert - state.size) % cap
    env = jax.random.randint(env_key, (batch_size,), 0, num_envs)
    if n == 1:
        t = (oldest + offset) % cap
        return jax.tree.map(lambda buf: buf[t, env], state.data)
    t = (oldest + offset[:, None] + jnp.arange(n)[None, :]) % cap
    return jax.tree.map(lambda buf: buf[t, env[:, None]], state.data)


def n_step_target(
    reward: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    discount: float,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """n-step return of a window, stopping at the first episode end.

    ``G = sum_{k<=m} gamma^k r_k`` and the bootstrap weight ``gamma^{m+1} (1 - terminated_m)``, where
    ``m`` is the first step of the window whose episode ended (terminated or truncated), or ``n - 1``.
    The value to bootstrap is ``V(next_obs_m)`` (Sutton & Barto 2018, eq. 7.1; Acme's n-step adder).

    Why not ``rlax.n_step_bootstrapped_returns``: it computes whole targets ``r + gamma' V`` along one
    trajectory, with a per-step discount as the only episode-end signal. A zero discount stops at a
    termination, but a truncation must both stop the sum and bootstrap from the final observation
    ``next_obs_m``, which rlax cannot express without values at every step of the window (``n``
    network evaluations instead of one). It also returns a bootstrapped scalar target, whereas D4PG
    needs ``G`` and the weight apart to shift and shrink a distribution (``G + w z``). This
    function equals rlax's on windows without truncations (tests/agents/test_dqn.py).

    Args:
      reward, terminated, truncated: ``[B, n]``.
      discount: gamma.

    Returns:
      ``(G [B], bootstrap_weight [B], m [B] int32)``: select ``next_obs`` with ``m``.
    """
    n = reward.shape[-1]
    done = jnp.maximum(terminated, truncated)
    # alive_k = 1 while no episode end happened strictly before step k.
    alive = jnp.cumprod(
        jnp.concatenate([jnp.ones_like(done[..., :1]), 1.0 - done[..., :-1]], -1), -1
    )
    powers = discount ** jnp.arange(n, dtype=reward.dtype)
    g = jnp.sum(alive * powers * reward, axis=-1)
    m = (jnp.sum(alive, axis=-1) - 1).astype(jnp.int32)
    term_m = jnp.take_along_axis(terminated, m[..., None], axis=-1)[..., 0]
    weight = discount ** (m + 1).astype(reward.dtype) * (1.0 - term_m)
    return g, weight, m


def select_step(x: jax.Array, m: jax.Array) -> jax.Array:
    """``x[b, m[b]]`` for windows ``x[B, n, ...]``."""
    idx = m.reshape(m.shape + (1,) * (x.ndim - 1))
    return jnp.take_along_axis(x, idx, axis=1)[:, 0]
