"""Tiny pure-JAX environments for tests and toy experiments (compile in well under a second).

* ``probe_env(level, discrete)``: the five "probe" environments of Andy Jones' *Debugging RL without
  the agonizing pain* (2021), each isolating one part of an agent, with known optimal values.
* ``point_mass``: a 2-D point mass with continuous velocity-like actions, a dense reward towards a goal
  and an optional sparse goal reward (the toy domain of the imitation papers' 2-D illustrations).
* ``cartpole``: the classic cart-pole balancing task with 2 discrete actions (Barto et al. 1983,
  same constants and termination thresholds as Gym's CartPole-v1), for DQN-style agents.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from purerl.core.types import EnvSpec
from purerl.envs.protocol import Env, initial_state, next_state


def probe_env(level: int, discrete: bool = True) -> Env:
    """Probe environments (all episodes end by termination; the time limit never binds).

    1. constant obs 0, one step, reward +1: tests value scale. ``V = 1``.
    2. obs +-1 at random, one step, reward = obs: tests observation -> value. ``V(s) = s``.
    3. obs 0 then 1, two steps, reward +1 only at the end: tests discounting. ``V(s0) = gamma``.
    4. constant obs, one step, reward +1 for the "good" action (discrete: action 0; continuous:
       see below): tests policy improvement.
    5. obs +-1 at random, one step, reward +1 iff the action matches the obs: tests the policy's use
       of the observation.

    Continuous variants (levels 4, 5) use a one-dimensional action in ``[-1, 1]`` and the reward
    ``1 - (a - target)^2`` with target ``0.5`` (level 4) or ``0.5 * obs`` (level 5), maximal at the
    target, so the optimal Q is 1 there.
    """
    if level not in (1, 2, 3, 4, 5):
        raise ValueError(f"probe level must be 1..5, got {level}")
    spec = EnvSpec(
        obs_shape=(1,),
        action_shape=() if discrete else (1,),
        num_actions=2 if discrete else None,
        episode_length=4,
        name=f"probe{level}{'' if discrete else '_continuous'}",
    )

    def draw_obs(key, t):
        if level in (2, 5):
            return jnp.where(jax.random.bernoulli(key), 1.0, -1.0)[None]
        if level == 3:
            return jnp.asarray([t], jnp.float32)
        return jnp.zeros((1,), jnp.float32)

    def reset(key):
        return initial_state(inner=jnp.zeros((), jnp.int32), obs=draw_obs(key, 0.0))

    def step(key, state, action):
        obs = state.obs[0]
        t = state.inner
        if level == 1:
            reward, end = 1.0, True
        elif level == 2:
            reward, end = obs, True
        elif level == 3:
            reward, end = jnp.where(t == 1, 1.0, 0.0), t == 1
        elif discrete:
            target = 0 if level == 4 else jnp.where(obs > 0, 0, 1)
            reward, end = jnp.where(action == target, 1.0, -1.0), True
        else:
            target = 0.5 if level == 4 else 0.5 * obs
            reward, end = 1.0 - (jnp.reshape(action, ()) - target) ** 2, True
        next_obs = draw_obs(key, 1.0)
        return next_state(state, t + 1, next_obs, reward, jnp.asarray(end, jnp.float32))

    return Env(spec=spec, reset=reset, step=step)


def point_mass(
    episode_length: int = 100,
    sparse: bool = False,
    goal: tuple[float, float] = (0.5, 0.5),
    goal_radius: float = 0.1,
    max_speed: float = 0.05,
    terminate_at_goal: bool = False,
) -> Env:
    """2-D point mass on ``[-1, 1]^2``: ``x' = clip(x + max_speed * a)``, ``a in [-1, 1]^2``.

    Observation ``[x, y, goal_x, goal_y]``; start uniform in ``[-1, 1]^2``. Reward: dense
    ``-||x' - goal||`` or, with ``sparse=True``, ``1`` inside the goal radius and ``0`` elsewhere.
    """
    goal_arr = jnp.asarray(goal, jnp.float32)
    spec = EnvSpec(
        obs_shape=(4,),
        action_shape=(2,),
        episode_length=episode_length,
        name="point_mass_sparse" if sparse else "point_mass",
    )

    def observe(pos):
        return jnp.concatenate([pos, goal_arr])

    def reset(key):
        pos = jax.random.uniform(key, (2,), minval=-1.0, maxval=1.0)
        return initial_state(inner=pos, obs=observe(pos))

    def step(key, state, action):
        del key
        pos = jnp.clip(state.inner + max_speed * jnp.clip(action, -1.0, 1.0), -1.0, 1.0)
        dist = jnp.linalg.norm(pos - goal_arr)
        at_goal = dist < goal_radius
        reward = jnp.where(at_goal, 1.0, 0.0) if sparse else -dist
        terminated = jnp.logical_and(terminate_at_goal, at_goal)
        return next_state(state, pos, observe(pos), reward, terminated)

    return Env(spec=spec, reset=reset, step=step)


def cartpole(episode_length: int = 500) -> Env:
    """Cart-pole (Barto, Sutton & Anderson 1983) with Gym CartPole-v1's constants: reward 1 per step,
    termination when ``|x| > 2.4`` or ``|theta| > 12 deg``, time limit 500."""
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    total_mass = masscart + masspole
    polemass_length = masspole * length
    theta_limit = 12 * 2 * jnp.pi / 360
    spec = EnvSpec(
        obs_shape=(4,),
        action_shape=(),
        num_actions=2,
        episode_length=episode_length,
        name="cartpole",
    )

    def reset(key):
        s = jax.random.uniform(key, (4,), minval=-0.05, maxval=0.05)
        return initial_state(inner=s, obs=s)

    def step(key, state, action):
        del key
        x, x_dot, theta, theta_dot = state.inner
        force = jnp.where(action == 1, force_mag, -force_mag)
        cos, sin = jnp.cos(theta), jnp.sin(theta)
        temp = (force + polemass_length * theta_dot**2 * sin) / total_mass
        theta_acc = (gravity * sin - cos * temp) / (
            length * (4.0 / 3.0 - masspole * cos**2 / total_mass)
        )
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        x = x + tau * x_dot
        x_dot = x_dot + tau * x_acc
        theta = theta + tau * theta_dot
        theta_dot = theta_dot + tau * theta_acc
        s = jnp.stack([x, x_dot, theta, theta_dot])
        terminated = (jnp.abs(x) > 2.4) | (jnp.abs(theta) > theta_limit)
        return next_state(state, s, s, 1.0, terminated)

    return Env(spec=spec, reset=reset, step=step)
