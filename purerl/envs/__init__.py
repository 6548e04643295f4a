"""Environments: one protocol (``protocol.Env``) over brax / MJX physics and tiny pure-JAX tasks.

``make(name)`` returns the standard wrapped env (actions in [-1, 1], time limit, auto-reset keeping
the final observation, episode statistics, optional observation/action noise). ``list_envs()``
describes what exists.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from purerl.envs import classic, protocol, toy, wrappers
from purerl.envs.protocol import Env, EnvState

# Default brax backend per env: the fastest backend on which standard agents learn the task, then
# speed (benchmarks/results/env_backends.md, "learnability"; shared/reference/cpu_envs.md for the
# speeds). inverted_pendulum: on spring (3x faster) SAC stays at 33-99 after 20k steps on every
# seed and Brax's own SAC and PPO stall too; on generalized every SAC seed reaches >= 950 within
# 14k-19k steps on raw observations (5k-6k with SAC's default observation normalization) and PPO
# within 33k (Brax's agents balance it too). The other envs keep the fastest backend: standard
# agents learn them there (PPO solves inverted_double_pendulum on spring,
# benchmarks/results/learning.md); a per-backend learnability run for them is still open (issue 13,
# item 3).
BRAX_DEFAULT_BACKEND = {
    "inverted_pendulum": "generalized",
    "inverted_double_pendulum": "spring",
    "reacher": "spring",
    "halfcheetah": "spring",
    "hopper": "spring",
    "walker2d": "spring",
    "ant": "spring",
    "humanoid": "mjx",
}

BRAX_DESCRIPTIONS = {
    "inverted_pendulum": "brax cart-pole swing balance, 1-D action, terminates when the pole falls",
    "inverted_double_pendulum": "brax double pendulum on a cart, 1-D action, terminates on falling",
    "reacher": "brax 2-link arm reaching a random target, 2-D action, no termination",
    "halfcheetah": "brax planar cheetah running forward, 6-D action, no termination",
    "hopper": "brax planar one-legged hopper, 3-D action, terminates when unhealthy",
    "walker2d": "brax planar biped, 6-D action, terminates when unhealthy",
    "ant": "brax quadruped, 8-D action, terminates when unhealthy",
    "humanoid": "brax humanoid, 17-D action, terminates when fallen",
}


@dataclasses.dataclass(frozen=True)
class _Toy:
    build: Callable[[], Env]
    description: str


TOY_ENVS = {
    **{
        f"probe{i}": _Toy(lambda i=i: toy.probe_env(i, True), f"probe env {i} (discrete actions)")
        for i in range(1, 6)
    },
    **{
        f"probe{i}_continuous": _Toy(
            lambda i=i: toy.probe_env(i, False), f"probe env {i} (continuous action)"
        )
        for i in range(1, 6)
    },
    "point_mass": _Toy(toy.point_mass, "2-D point mass, dense reward -distance to goal"),
    "point_mass_sparse": _Toy(
        lambda: toy.point_mass(sparse=True), "2-D point mass, sparse reward 1 inside the goal"
    ),
    "cartpole": _Toy(toy.cartpole, "classic cart-pole, 2 discrete actions, CartPole-v1 constants"),
    "pendulum": _Toy(
        classic.pendulum, "classic pendulum swing-up, Pendulum-v1 dynamics, torque = 2 * action"
    ),
}


# Per-step reward range (low, high) of the envs whose code bounds the reward, None for a side
# their code leaves unbounded; envs not listed have no known range (their returns are not clipped
# in plots). Read from the reward lines of each env:
REWARD_BOUNDS: dict[str, tuple[float | None, float | None]] = {
    # brax envs/inverted_pendulum.py: ``reward = 1.0`` on every step.
    "inverted_pendulum": (1.0, 1.0),
    # brax envs/inverted_double_pendulum.py: ``(1 - done) * 10 - dist_penalty - vel_penalty`` with
    # both penalties sums of squares (>= 0, unbounded above).
    "inverted_double_pendulum": (None, 10.0),
    # brax envs/reacher.py: ``-||tip - target|| - ||action||^2`` (<= 0).
    "reacher": (None, 0.0),
    # toy.cartpole: 1 per step (CartPole-v1).
    "cartpole": (1.0, 1.0),
    # classic.pendulum: -(angle^2 + 0.1 speed^2 + 0.001 torque^2) in [-16.27, 0].
    "pendulum": (classic.PENDULUM_MIN_REWARD, 0.0),
    # toy.point_mass(sparse=True): 1 inside the goal radius, 0 elsewhere.
    "point_mass_sparse": (0.0, 1.0),
}


def return_bounds(
    name: str, episode_length: int | None = None
) -> tuple[float | None, float | None]:
    """The range an undiscounted episode return of env ``name`` can take, from
    :data:`REWARD_BOUNDS`: an episode has at most ``T = episode_length`` steps (fewer when it
    terminates), each with reward in ``[r_low, r_high]``, so its return lies in
    ``[min(0, T r_low), max(0, T r_high)]`` (0 kept in the range so that early termination is
    covered; e.g. ``[0, 1000]`` for inverted_pendulum). None for a side with no known bound, and
    ``(None, None)`` for envs not in :data:`REWARD_BOUNDS`. For ``plots``' ``bounds=``.

    Args:
      name: a name from :func:`list_envs`.
      episode_length: the time limit used (default: what :func:`make` uses for ``name``).
    """
    if name in TOY_ENVS:
        default_length = TOY_ENVS[name].build().spec.episode_length
    elif name in BRAX_DEFAULT_BACKEND:
        default_length = 1000  # make()'s default for brax envs
    else:
        known = ", ".join(sorted(list_envs()))
        raise ValueError(f"unknown env {name!r}; known envs: {known}")
    length = default_length if episode_length is None else int(episode_length)
    if length <= 0:
        raise ValueError(f"episode_length must be positive, got {episode_length}")
    r_low, r_high = REWARD_BOUNDS.get(name, (None, None))
    low = None if r_low is None else min(0.0, length * r_low)
    high = None if r_high is None else max(0.0, length * r_high)
    return low, high


def list_envs() -> dict[str, str]:
    """``{name: one-line description}`` for every env ``make`` knows."""
    out = {name: t.description for name, t in TOY_ENVS.items()}
    for name, desc in BRAX_DESCRIPTIONS.items():
        out[name] = f"{desc} (default backend {BRAX_DEFAULT_BACKEND[name]})"
    return out


def make(
    name: str,
    backend: str | None = None,
    episode_length: int | None = None,
    obs_noise: float = 0.0,
    action_noise: float = 0.0,
    mjx_iterations: int | None = None,
    mjx_ls_iterations: int | None = None,
) -> Env:
    """Build the standard wrapped env.

    Args:
      name: a name from :func:`list_envs`.
      backend: brax physics backend (``spring``, ``positional``, ``generalized``, ``mjx``); default
        per env from :data:`BRAX_DEFAULT_BACKEND`. Not used by the toy envs.
      episode_length: time limit (default 1000 for brax envs, the toy env's own otherwise).
      obs_noise, action_noise: std of Gaussian noise added to observations / actions.
      mjx_iterations, mjx_ls_iterations: cap MJX solver iterations (backend ``mjx`` only).
    """
    if name in TOY_ENVS:
        if backend is not None:
            raise ValueError(f"env {name!r} is a pure-JAX toy env; it takes no backend")
        env = TOY_ENVS[name].build()
        if episode_length is not None:
            env = env._replace(spec=dataclasses.replace(env.spec, episode_length=episode_length))
    elif name in BRAX_DEFAULT_BACKEND:
        from purerl.envs.brax import make_brax

        env, _, _ = make_brax(
            name,
            backend or BRAX_DEFAULT_BACKEND[name],
            episode_length=episode_length or 1000,
            mjx_iterations=mjx_iterations,
            mjx_ls_iterations=mjx_ls_iterations,
        )
        # brax's convention: the agent's action in [-1, 1] is the actuator input as is (brax's own
        # trainers feed tanh outputs straight to env.step; the physics clips to ctrl_range). Scaling
        # [-1, 1] up to a wider ctrl_range (e.g. [-3, 3] for inverted_pendulum) makes the tasks much
        # harder: a PD controller that balances the pole at gain 0.3 falls at gain 1
        # (docs/design.md). Use wrappers.rescale_actions with make_brax's bounds to opt in.
        env = wrappers.clip_actions(env)
    else:
        known = ", ".join(sorted(list_envs()))
        raise ValueError(f"unknown env {name!r}; known envs: {known}")
    if action_noise:
        if env.spec.discrete:
            raise ValueError("action_noise applies to continuous actions only")
        env = wrappers.action_noise(env, action_noise)
    env = wrappers.time_limit(env, env.spec.episode_length)
    env = wrappers.auto_reset(env)
    env = wrappers.episode_stats(env)
    if obs_noise:
        env = wrappers.observation_noise(env, obs_noise)
    return env


__all__ = [
    "BRAX_DEFAULT_BACKEND",
    "BRAX_DESCRIPTIONS",
    "REWARD_BOUNDS",
    "TOY_ENVS",
    "Env",
    "EnvState",
    "brax",
    "classic",
    "list_envs",
    "make",
    "protocol",
    "return_bounds",
    "toy",
    "wrappers",
]
