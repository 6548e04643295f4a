"""The few types every algorithm, env and loop in purerl speaks.

An algorithm is four pure functions (see docs/design.md):

    algo = td3.make(td3.Config(), spec)
    state = algo.init(key, spec)
    action, extras = algo.act(state, obs, key, deterministic=False)
    loss, metrics = algo.loss(params, state, batch, key)
    state, metrics = algo.update(state, batch)          # a lax.scan body
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax

Metrics = dict[str, jax.Array]
"""Flat metric dicts with ``"group/name"`` keys, e.g. ``{"loss/critic": ..., "q/mean": ...}``."""


class Algorithm(NamedTuple):
    """Four pure functions that make an algorithm; all jit-, vmap- and scan-compatible.

    Attributes:
      init: ``init(key, spec) -> State``.
      act: ``act(state, obs, key, deterministic=False) -> (action, extras)``; ``obs`` is one
        observation or a batch ``[B, *obs_shape]``.
      loss: ``loss(params, state, batch, key) -> (scalar, metrics)``: the objective that ``update``
        descends, evaluated at ``params`` (for actor-critic methods, the sum of the per-network losses
        that ``update`` differentiates one network at a time, in the paper's order).
      update: ``update(state, batch) -> (state, metrics)``; exactly a ``jax.lax.scan`` body.
    """

    init: Callable[..., Any]
    act: Callable[..., tuple[jax.Array, dict]]
    loss: Callable[..., tuple[jax.Array, Metrics]]
    update: Callable[..., tuple[Any, Metrics]]


class Network(NamedTuple):
    """A pure ``(init, apply)`` pair; haiku (or anything else) stays an implementation detail.

    ``init(key, *example_inputs) -> params``; ``apply(params, *inputs) -> outputs``.
    """

    init: Callable[..., Any]
    apply: Callable[..., Any]


class Transition(NamedTuple):
    """One environment step ``(s_t, a_t, r_t, s_{t+1})`` with time limits kept apart from termination.

    Shapes are ``[..., *obs_shape]`` etc. for any leading batch/time axes.

    Attributes:
      obs: ``s_t``.
      action: ``a_t`` (continuous actions are in ``[-1, 1]``; discrete ones are int32 indices).
      reward: ``r_t``, float32.
      next_obs: ``s_{t+1}``; at the end of an episode this is the *final* observation, never the
        observation after an automatic reset, so truncated episodes can bootstrap from it.
      terminated: 1.0 where ``s_{t+1}`` is terminal (no bootstrapping), float32.
      truncated: 1.0 where the episode was cut by a time limit at ``s_{t+1}`` (bootstrapping from
        ``next_obs`` is still correct), float32.
      next_action: ``a_{t+1}``, the action the data's behaviour policy took in ``s_{t+1}``, for
        offline SARSA targets (``purerl.datasets.Dataset.transitions(next_actions=True)``); ``None``
        (no leaf) everywhere else. Where the transition is truncated the next action was never
        recorded and the entry is a zero placeholder that SARSA losses must mask out.
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    truncated: jax.Array
    next_action: Any = None


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment's interface (hashable, safe as a static jit argument).

    Attributes:
      obs_shape: shape of one observation.
      action_shape: shape of one continuous action (``()`` for discrete envs).
      num_actions: number of discrete actions, or ``None`` for continuous envs. Continuous actions
        are always in ``[-1, 1]`` at the agent's side (``envs.wrappers.rescale_actions`` maps them to
        the physics' bounds).
      episode_length: the time limit after which an episode is truncated.
      name: registry name, for messages.
    """

    obs_shape: tuple[int, ...]
    action_shape: tuple[int, ...]
    num_actions: int | None = None
    episode_length: int = 1000
    name: str = ""

    def __post_init__(self):
        if any(int(d) <= 0 for d in self.obs_shape):
            raise ValueError(f"EnvSpec.obs_shape must be positive, got {self.obs_shape}")
        if self.num_actions is not None and self.num_actions < 2:
            raise ValueError(f"EnvSpec.num_actions must be >= 2, got {self.num_actions}")
        if self.num_actions is None and not self.action_shape:
            raise ValueError("a continuous EnvSpec needs a non-empty action_shape")
        if self.episode_length <= 0:
            raise ValueError(f"EnvSpec.episode_length must be positive, got {self.episode_length}")

    @property
    def discrete(self) -> bool:
        return self.num_actions is not None

    @property
    def obs_size(self) -> int:
        size = 1
        for d in self.obs_shape:
            size *= int(d)
        return size

    @property
    def action_size(self) -> int:
        size = 1
        for d in self.action_shape:
            size *= int(d)
        return size
