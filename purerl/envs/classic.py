"""Classic-control tasks in pure JAX, written from their equations (no gym / gymnax dependency).

* ``pendulum``: the torque-limited inverted-pendulum swing-up of Gym's ``Pendulum-v1`` (same
  constants, dynamics, reward, start distribution and 200-step time limit), with the agent's action
  in ``[-1, 1]`` scaled to the torque range inside the env.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from purerl.core.types import EnvSpec
from purerl.envs.protocol import Env, initial_state, next_state

PENDULUM_MAX_SPEED = 8.0  # rad/s, Pendulum-v1 max_speed
PENDULUM_MAX_TORQUE = 2.0  # Pendulum-v1 max_torque
PENDULUM_DT = 0.05  # s, Pendulum-v1 dt
# The worst step costs pi^2 + 0.1 * 8^2 + 0.001 * 2^2 (angle pi, top speed, full torque).
PENDULUM_MIN_REWARD = -(math.pi**2 + 0.1 * PENDULUM_MAX_SPEED**2 + 0.001 * PENDULUM_MAX_TORQUE**2)


def angle_normalize(x: jax.Array) -> jax.Array:
    """Wrap an angle to ``[-pi, pi)``: ``((x + pi) mod 2 pi) - pi``."""
    return jnp.mod(x + jnp.pi, 2.0 * jnp.pi) - jnp.pi


def pendulum(episode_length: int = 200, g: float = 10.0) -> Env:
    """Pendulum swing-up with Gym ``Pendulum-v1``'s dynamics (``m = l = 1``, ``dt = 0.05``).

    State ``(th, thdot)``, ``th = 0`` upright. With the torque ``u = 2 clip(a, -1, 1)`` (so
    ``u in [-2, 2]``), one step is (semi-implicit Euler):

        r       = -(angle_normalize(th)^2 + 0.1 thdot^2 + 0.001 u^2)      (cost of the state before)
        thdot'  = clip(thdot + (3 g / (2 l) sin(th) + 3 / (m l^2) u) dt, -8, 8)
        th'     = th + thdot' dt

    Observation ``[cos th', sin th', thdot']`` (shape ``[3]``); the reward lies in
    ``[-(pi^2 + 6.4 + 0.004), 0] = [-16.27, 0]``. Reset draws ``th ~ U(-pi, pi)``,
    ``thdot ~ U(-1, 1)``. There is no termination; ``envs.make("pendulum")`` truncates episodes
    at ``episode_length`` steps (Pendulum-v1's ``max_episode_steps = 200``).

    Differences from Gym's ``Pendulum-v1`` (Gymnasium ``classic_control/pendulum.py``):

    1. The agent's action is in ``[-1, 1]`` (purerl's convention for continuous actions) and is
       scaled to the torque inside the env, ``u = max_torque * clip(a, -1, 1)``; in Gym the action
       *is* the torque, in ``[-2, 2]`` (clipped there to ``[-max_torque, max_torque]``). A policy
       for Gym's env maps to this one by ``a = u / 2``.
    2. ``th`` is kept as the unbounded angle (as in Gym); only the reward wraps it. Arithmetic is
       float32 (Gym: float64 numpy), so long rollouts drift apart from Gym's in the last digits.
    3. No rendering, no ``options`` for the reset range.

    Args:
      episode_length: the time limit (``EnvSpec.episode_length``), 200 in Pendulum-v1.
      g: gravity, 10.0 in Pendulum-v1 (a constructor argument there too).
    """
    max_speed, max_torque, dt, m, length = (
        PENDULUM_MAX_SPEED,
        PENDULUM_MAX_TORQUE,
        PENDULUM_DT,
        1.0,
        1.0,
    )
    spec = EnvSpec(
        obs_shape=(3,),
        action_shape=(1,),
        episode_length=episode_length,
        name="pendulum",
    )

    def observe(th, thdot):
        return jnp.stack([jnp.cos(th), jnp.sin(th), thdot])

    def reset(key):
        s = jax.random.uniform(
            key, (2,), minval=jnp.array([-jnp.pi, -1.0]), maxval=jnp.array([jnp.pi, 1.0])
        )
        return initial_state(inner=s, obs=observe(s[0], s[1]))

    def step(key, state, action):
        del key
        th, thdot = state.inner[0], state.inner[1]
        u = max_torque * jnp.clip(jnp.reshape(action, ()), -1.0, 1.0)
        cost = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
        thdot = thdot + (3.0 * g / (2.0 * length) * jnp.sin(th) + 3.0 / (m * length**2) * u) * dt
        thdot = jnp.clip(thdot, -max_speed, max_speed)
        th = th + thdot * dt
        s = jnp.stack([th, thdot])
        return next_state(state, s, observe(th, thdot), -cost, jnp.zeros((), jnp.float32))

    return Env(spec=spec, reset=reset, step=step)
