"""Small fixed rewarders: rewards computed from the transition alone, no learning, no episode state.

Each is ``make_<name>(config, spec) -> Rewarder`` (registered in :data:`purerl.imitation.REGISTRY`):

* :func:`make_env_reward`: ``r_t = r^env_t``, the env's own reward passed through. The identity of
  the rewarder seam: a loop with it in mode "replace" learns exactly what it learns without one
  (tests/loops/test_rewarder.py checks this bit for bit), and it is the baseline every imitation
  reward is compared with.
* :func:`make_alive_bonus`: ``r_t = c (1 - terminated_t)``, a constant for every step that does not
  end the episode in a terminal state. This is the ``healthy_reward`` of the MuJoCo/brax
  locomotion tasks (Hopper, Walker2d, Ant: ``c = 1``; brax ``envs/hopper.py``), and the
  "survival instinct" reward that Li et al. (2023, "Survival Instinct in Offline Reinforcement
  Learning", sec. 4) use to show offline agents learn well from a positive per-step constant.
* :func:`make_goal_distance`: ``r_t = -|| s_{t+1}[dims] - g ||_2``, minus the Euclidean distance of
  chosen coordinates of the reached state to a goal: the dense reward of goal-reaching tasks
  (the point mass of ``purerl.envs.toy``, brax reacher's distance term), usable to relabel data
  with a new goal.

All three keep no state (``init`` returns ``()``) and learn nothing (``update`` is
:func:`purerl.core.types.fixed_update`). Shapes: ``transition`` leaves ``[B, ...]``, reward ``[B]``.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from purerl.core import validation
from purerl.core.types import EnvSpec, Metrics, Rewarder, State, Transition, fixed_update


def _no_state(key: jax.Array, spec: EnvSpec, *args) -> State:
    del key, spec, args
    return ()


@dataclasses.dataclass(frozen=True)
class EnvRewardConfig:
    """The pass-through rewarder has no settings."""


def make_env_reward(config: EnvRewardConfig, spec: EnvSpec) -> Rewarder:
    """``r_t = r^env_t`` (the transition's own reward).

    Metrics: ``reward/env_mean``, the batch mean of ``r^env_t``.
    """
    del config, spec

    def reward(state: State, transition: Transition) -> tuple[State, jax.Array, Metrics]:
        r = jnp.asarray(transition.reward, jnp.float32)
        return state, r, {"reward/env_mean": jnp.mean(r)}

    return Rewarder(init=_no_state, reward=reward, update=fixed_update)


@dataclasses.dataclass(frozen=True)
class AliveBonusConfig:
    bonus: float = 1.0  # c; the healthy_reward of gym/brax Hopper, Walker2d and Ant

    def __post_init__(self):
        validation.positive("AliveBonusConfig", bonus=self.bonus)


def make_alive_bonus(config: AliveBonusConfig, spec: EnvSpec) -> Rewarder:
    """``r_t = c (1 - terminated_t)``: ``c`` for each step that does not reach a terminal state
    (a time-limit truncation still earns it; see the module docstring for the sources).

    Metrics: ``reward/alive_fraction``, the batch fraction of non-terminal steps.
    """
    del spec
    bonus = config.bonus

    def reward(state: State, transition: Transition) -> tuple[State, jax.Array, Metrics]:
        alive = 1.0 - jnp.asarray(transition.terminated, jnp.float32)
        return state, bonus * alive, {"reward/alive_fraction": jnp.mean(alive)}

    return Rewarder(init=_no_state, reward=reward, update=fixed_update)


@dataclasses.dataclass(frozen=True)
class GoalDistanceConfig:
    goal: tuple[float, ...] = (0.5, 0.5)  # g; purerl.envs.toy.point_mass's default goal
    dims: tuple[int, ...] = (
        0,
        1,
    )  # which observation entries are compared with g (point_mass: x, y)

    def __post_init__(self):
        if not self.dims or len(self.goal) != len(self.dims):
            raise ValueError(
                f"GoalDistanceConfig: goal {self.goal!r} and dims {self.dims!r} must be non-empty "
                "and of the same length"
            )
        if not all(isinstance(d, int) and d >= 0 for d in self.dims):
            raise ValueError(
                f"GoalDistanceConfig.dims must be non-negative ints, got {self.dims!r}"
            )


def make_goal_distance(config: GoalDistanceConfig, spec: EnvSpec) -> Rewarder:
    """``r_t = -|| s_{t+1}[dims] - g ||_2`` on flat observations ``[B, obs_size]``.

    Metrics: ``reward/goal_distance``, the batch mean distance.
    """
    if len(spec.obs_shape) != 1 or max(config.dims) >= spec.obs_shape[0]:
        raise ValueError(
            f"goal_distance: dims {config.dims!r} must index a flat observation of shape "
            f"{spec.obs_shape}"
        )
    dims = jnp.asarray(config.dims, jnp.int32)
    goal = jnp.asarray(config.goal, jnp.float32)

    def reward(state: State, transition: Transition) -> tuple[State, jax.Array, Metrics]:
        validation.check_obs(transition.next_obs, spec, "goal_distance: next_obs")
        distance = jnp.linalg.norm(transition.next_obs[..., dims] - goal, axis=-1)
        return state, -distance, {"reward/goal_distance": jnp.mean(distance)}

    return Rewarder(init=_no_state, reward=reward, update=fixed_update)
