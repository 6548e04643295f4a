"""Pure env wrappers: each takes an :class:`Env` and returns an :class:`Env`.

The standard stack (``envs.make`` builds it) is, from the inside out::

    base -> rescale_actions (toy/custom envs) or clip_actions (brax) -> [action_noise] -> time_limit -> auto_reset -> episode_stats
         -> [observation_noise]

and :func:`with_rewarder` goes on top of that stack for users who bring their own loop.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purerl.core import rewarder as rewarding
from purerl.core.types import Rewarder, Transition
from purerl.envs.protocol import Env, EnvState


def rescale_actions(env: Env, low: jax.Array, high: jax.Array) -> Env:
    """Agents act in ``[-1, 1]``; map to ``[low, high]`` (clipping out-of-range actions first)."""
    low = jnp.asarray(low, jnp.float32)
    high = jnp.asarray(high, jnp.float32)

    def step(key, state, action):
        action = jnp.clip(action, -1.0, 1.0)
        return env.step(key, state, low + (action + 1.0) * 0.5 * (high - low))

    return env._replace(step=step)


def clip_actions(env: Env) -> Env:
    """Clip actions to ``[-1, 1]`` before the env sees them."""

    def step(key, state, action):
        return env.step(key, state, jnp.clip(action, -1.0, 1.0))

    return env._replace(step=step)


def action_noise(env: Env, std: float) -> Env:
    """Add ``N(0, std^2)`` to every action before the env sees it (then clip to ``[-1, 1]``).

    Used by POIR-style robustness experiments; applied inside the env so agents and buffers record the
    action the agent *chose*.
    """
    if std < 0:
        raise ValueError(f"action noise std must be >= 0, got {std}")

    def step(key, state, action):
        key, noise_key = jax.random.split(key)
        noisy = action + std * jax.random.normal(noise_key, jnp.shape(action))
        return env.step(key, state, jnp.clip(noisy, -1.0, 1.0))

    return env._replace(step=step)


def observation_noise(env: Env, std: float) -> Env:
    """Add ``N(0, std^2)`` to the observations the agent sees (``obs`` and ``final_obs``)."""
    if std < 0:
        raise ValueError(f"observation noise std must be >= 0, got {std}")

    def noisy(key, state: EnvState) -> EnvState:
        obs_key, final_key = jax.random.split(key)
        return state._replace(
            obs=state.obs + std * jax.random.normal(obs_key, state.obs.shape),
            final_obs=state.final_obs + std * jax.random.normal(final_key, state.obs.shape),
        )

    def reset(key):
        key, noise_key = jax.random.split(key)
        return noisy(noise_key, env.reset(key))

    def step(key, state, action):
        key, noise_key = jax.random.split(key)
        return noisy(noise_key, env.step(key, state, action))

    return env._replace(reset=reset, step=step)


def time_limit(env: Env, episode_length: int) -> Env:
    """Truncate episodes after ``episode_length`` steps: ``truncated = 1`` only when the episode did
    not also terminate on that step (termination wins: no bootstrap)."""
    if episode_length <= 0:
        raise ValueError(f"episode_length must be positive, got {episode_length}")

    def step(key, state, action):
        state = env.step(key, state, action)
        out_of_time = (state.time >= episode_length).astype(jnp.float32)
        return state._replace(truncated=out_of_time * (1.0 - state.terminated))

    return env._replace(step=step)


def auto_reset(env: Env) -> Env:
    """Start a new episode when the last one ended, keeping ``final_obs`` of the finished one."""

    def step(key, state, action):
        step_key, reset_key = jax.random.split(key)
        state = env.step(step_key, state, action)
        done = jnp.maximum(state.terminated, state.truncated) > 0
        fresh = env.reset(reset_key)
        return state._replace(
            inner=jax.tree.map(lambda a, b: jnp.where(done, a, b), fresh.inner, state.inner),
            obs=jnp.where(done, fresh.obs, state.obs),
            time=jnp.where(done, fresh.time, state.time),
        )

    return env._replace(step=step)


def episode_stats(env: Env) -> Env:
    """Track the running and the last finished episode's undiscounted return and length.

    Adds to ``state.info``: ``episode_return``/``episode_length`` (running), and
    ``last_return``/``last_length``/``episode_done`` (of the episode that finished on this step;
    ``episode_done`` is 1.0 exactly on steps where one finished).
    """

    def reset(key):
        state = env.reset(key)
        zero = jnp.zeros((), jnp.float32)
        info = dict(state.info)
        info.update(
            episode_return=zero,
            episode_length=zero,
            last_return=zero,
            last_length=zero,
            episode_done=zero,
        )
        return state._replace(info=info)

    def step(key, state, action):
        info = state.info
        state = env.step(key, state, action)
        done = jnp.maximum(state.terminated, state.truncated)
        ret = info["episode_return"] + state.reward
        length = info["episode_length"] + 1.0
        new = dict(state.info)
        new.update(
            episode_return=ret * (1.0 - done),
            episode_length=length * (1.0 - done),
            last_return=jnp.where(done > 0, ret, info["last_return"]),
            last_length=jnp.where(done > 0, length, info["last_length"]),
            episode_done=done,
        )
        return state._replace(info=new)

    return env._replace(reset=reset, step=step)


_REWARDER_INFO = ("rewarder", "env_reward", "rewarder_reward", "rewarder_metrics")


def with_rewarder(env: Env, rewarder: Rewarder, mode: str = "replace", weight: float = 1.0) -> Env:
    """The env with its reward replaced by (``mode="replace"``: ``r = w r^rew``) or added to
    (``mode="add"``: ``r = r^env + w r^rew``) a :class:`~purerl.core.types.Rewarder`'s reward, for
    users with their own loop (the purerl loops take ``rewarder=`` instead).

    Wrap the standard stack (``with_rewarder(envs.make(name), rewarder)``): the rewarder then sees
    each step's transition ``(obs, action, r^env, final_obs, terminated, truncated)`` with the
    time limit and the final observation of auto-reset episodes, and ``episode_stats`` below it
    keeps counting the env's return. The env is unbatched (``vmap`` it as usual), so the rewarder
    is called on ``[1]``-transitions and one rewarder state lives in each env's state; a
    rewarder with per-env episode state must be made for one env.

    ``state.info`` gains ``"rewarder"`` (the rewarder's state, a pytree: replace it to hand in a
    trained learned rewarder, ``state._replace(info={**state.info, "rewarder": new})``),
    ``"env_reward"`` (``r^env`` of the last step), ``"rewarder_reward"`` (``r^rew``, unweighted) and
    ``"rewarder_metrics"`` (``rewarder.reward``'s metrics of the last step; zeros after reset).
    ``reset(key)`` calls ``rewarder.init`` with a key folded out of ``key`` (the env's reset is that
    of the unwrapped env).
    """
    rewarding.check_mode(mode, weight, "with_rewarder")

    def transition(state: EnvState, action: jax.Array, new: EnvState) -> Transition:
        return jax.tree.map(
            lambda x: jnp.expand_dims(x, 0),
            Transition(
                obs=state.obs,
                action=action,
                reward=new.reward,
                next_obs=new.final_obs,
                terminated=new.terminated,
                truncated=new.truncated,
            ),
        )

    def reset(key):
        state = env.reset(key)
        r_state = rewarding.init(
            rewarder, jax.random.fold_in(key, 0x52455744), env.spec, 1, "with_rewarder"
        )
        example = rewarding.example_transition(env.spec, 1)
        metrics = jax.eval_shape(rewarder.reward, r_state, example)[2]
        zero = jnp.zeros((), jnp.float32)
        info = dict(state.info)
        info.update(
            rewarder=r_state,
            env_reward=zero,
            rewarder_reward=zero,
            rewarder_metrics=jax.tree.map(lambda m: jnp.zeros(m.shape, m.dtype), metrics),
        )
        return state._replace(info=info)

    def step(key, state, action):
        info = state.info
        inner_state = state._replace(
            info={k: v for k, v in info.items() if k not in _REWARDER_INFO}
        )
        new = env.step(key, inner_state, action)
        r_state, tr, reward, metrics = rewarding.apply(
            rewarder, info["rewarder"], transition(state, action, new), mode, weight
        )
        out = dict(new.info)
        out.update(
            rewarder=r_state,
            env_reward=new.reward,
            rewarder_reward=reward[0],
            rewarder_metrics=metrics,
        )
        return new._replace(reward=tr.reward[0], info=out)

    return env._replace(reset=reset, step=step)
