"""The few types every algorithm, rewarder, env and loop in purerl speaks.

An algorithm is four pure functions, a rewarder three (see docs/design.md):

    algo = td3.make(td3.Config(), spec)
    state = algo.init(key, spec)
    action, extras = algo.act(state, obs, key, deterministic=False)
    loss, metrics = algo.loss(params, state, batch, key)
    state, metrics = algo.update(state, batch)          # a lax.scan body

    rewarder = imitation.get("alive_bonus")(config, spec)  # any Rewarder
    r_state = rewarder.init(key, spec)
    r_state, reward, metrics = rewarder.reward(r_state, transition)   # per env step, [B]
    r_state, metrics = rewarder.update(r_state, batch)                # learned rewarders only

The callables are typed as :class:`typing.Protocol`s so that a type checker (and a reader) sees the
exact signature each slot must have; at run time they are plain functions.
"""

from __future__ import annotations

import dataclasses
import numbers
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax

Metrics = dict[str, jax.Array]
"""Flat metric dicts with ``"group/name"`` keys, e.g. ``{"loss/critic": ..., "q/mean": ...}``."""

State = Any
"""An algorithm's or rewarder's state: one NamedTuple per algorithm holding everything that changes
(parameters, optimizer states, targets, the PRNG key, step counters)."""

Batch = Any
"""What ``update`` consumes: a :class:`Transition` with leaves ``[B, ...]`` (off-policy and offline
agents), ``[B, n, ...]`` (n-step windows), ``[T, E, ...]`` (on-policy rollouts), or a method's own
NamedTuple (the alignment methods' prompt batches ``[B, prompt_len]``)."""


class InitFn(Protocol):
    """``init(key, spec, *args) -> State``.

    ``key`` is a PRNG key (``jax.random.key``); ``spec`` the :class:`EnvSpec`. The alignment methods
    start from a pretrained policy and take its parameters in the ``spec`` slot
    (``bond.make(...).init(key, sft_params)``, ``policy_gradient.make(...).init(key, init_params,
    sft_params=None)``; each module's ``make`` docstring says which). The returned state is a pytree
    of arrays only, so it vmaps over seeds.
    """

    def __call__(self, key: jax.Array, spec: Any, *args: Any) -> State: ...


class ActFn(Protocol):
    """``act(state, obs, key, deterministic=False) -> (action, extras)``.

    ``obs`` is one observation ``[*obs_shape]`` or a batch ``[B, *obs_shape]``; ``action`` has the
    same leading axes with ``[*action_shape]`` (continuous, in ``[-1, 1]``) or ``[]`` int32
    (discrete). ``extras`` is a dict of per-step arrays the loop may store (e.g. PPO's log-prob and
    value ``[B]``); ``{}`` for most agents.
    """

    def __call__(
        self, state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False
    ) -> tuple[jax.Array, dict[str, jax.Array]]: ...


class LossFn(Protocol):
    """``loss(params, state, batch, key) -> (scalar, metrics)``: the objective ``update`` descends,
    evaluated at ``params`` (for actor-critic methods, the sum of the per-network losses that
    ``update`` differentiates one network at a time, in the paper's order)."""

    def __call__(
        self, params: Any, state: State, batch: Batch, key: jax.Array
    ) -> tuple[jax.Array, Metrics]: ...


class UpdateFn(Protocol):
    """``update(state, batch) -> (state, metrics)``; exactly a ``jax.lax.scan`` body: the new state
    has the structure, shapes and dtypes of the old one, and metrics are scalars."""

    def __call__(self, state: State, batch: Batch) -> tuple[State, Metrics]: ...


class Algorithm(NamedTuple):
    """Four pure functions that make an algorithm; all jit-, vmap- and scan-compatible.

    Every registry (``purerl.agents.REGISTRY``, ``purerl.alignment.REGISTRY``) hands out modules whose
    ``make(config, spec, ...)`` returns one of these; ``tests/test_contract.py`` checks each of them
    (one trace for many updates, state structure kept, finite metrics, vmap over seeds == a loop).

    Attributes:
      init: :class:`InitFn`, ``init(key, spec, *args) -> State``.
      act: :class:`ActFn`, ``act(state, obs, key, deterministic=False) -> (action, extras)``.
      loss: :class:`LossFn`, ``loss(params, state, batch, key) -> (scalar, metrics)``.
      update: :class:`UpdateFn`, ``update(state, batch) -> (state, metrics)``.
    """

    init: InitFn
    act: ActFn
    loss: LossFn
    update: UpdateFn


class RewardFn(Protocol):
    """``reward(state, transition) -> (state, reward, metrics)``.

    ``transition`` is a :class:`Transition` with leaves ``[B, ...]`` whose ``reward`` is the env's
    (one env step of ``B`` parallel envs, or a batch of stored transitions); ``reward`` is ``[B]``
    float32, the rewarder's own, unweighted (how it is combined with the env's is the caller's
    ``mode``/``weight``: :mod:`purerl.core.rewarder`). The state is returned because some
    rewarders change within an episode (PWIL's remaining expert weights); fixed ones return it
    unchanged. Episode boundaries are read from ``transition.terminated``/``truncated``: a
    transition with either flag set is the last of its episode, so per-episode state is reset
    after it. Per-episode state has one entry per env, so such a rewarder is made for a fixed
    ``B`` (its config's ``num_envs``): the loop's ``num_envs``, 1 for
    ``envs.wrappers.with_rewarder`` and ``datasets.relabel``; callers check that ``reward`` keeps
    the state's shapes and say so when it does not.
    """

    def __call__(
        self, state: State, transition: Transition
    ) -> tuple[State, jax.Array, Metrics]: ...


class RewarderUpdateFn(Protocol):
    """``update(state, batch) -> (state, metrics)`` for learned rewarders (a GAIL discriminator step,
    a CVAE step); the identity for fixed ones (:func:`fixed_update`). A ``jax.lax.scan`` body, like
    :class:`UpdateFn`. The loops call it once per agent update, right after ``algo.update``, on the
    agent's batch (``[B]``, ``[B, n]`` or ``[T, E]`` as that agent takes it, rewards relabelled)."""

    def __call__(self, state: State, batch: Batch) -> tuple[State, Metrics]: ...


class Rewarder(NamedTuple):
    """A reward, bonus or cost as three pure functions (PWIL, GAIL/DAC, the TD3-CVAE
    anti-exploration bonus, learned intrinsic bonuses).

    Loops take ``rewarder=`` (``make_train(..., rewarder=..., reward_mode=..., reward_weight=...)``),
    an env wrapper (``purerl.envs.wrappers.with_rewarder``) gives it to users with their own loop,
    and ``purerl.datasets.relabel(dataset, rewarder, key, ...)`` relabels offline data; all three
    combine rewards by one rule (:func:`purerl.core.rewarder.combine`: "replace" ``r = w r^rew``,
    "add" ``r = r^env + w r^rew``). ``purerl.imitation.REGISTRY`` lists the registered ones, each
    built by ``make(config, spec) -> Rewarder``.

    Attributes:
      init: :class:`InitFn`, ``init(key, spec, *args) -> State``.
      reward: :class:`RewardFn`, ``reward(state, transition) -> (state, reward [B], metrics)``.
      update: :class:`RewarderUpdateFn`, ``update(state, batch) -> (state, metrics)``.
    """

    init: InitFn
    reward: RewardFn
    update: RewarderUpdateFn


def fixed_update(state: State, batch: Batch) -> tuple[State, Metrics]:
    """The ``update`` of a rewarder that learns nothing: returns ``state`` unchanged, no metrics."""
    del batch
    return state, {}


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
        for field in ("obs_shape", "action_shape"):
            shape = getattr(self, field)
            if not isinstance(shape, tuple) or not all(
                isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape
            ):
                raise ValueError(f"EnvSpec.{field} must be a tuple of positive ints, got {shape!r}")
        if self.num_actions is not None and not isinstance(self.num_actions, numbers.Integral):
            raise ValueError(
                f"EnvSpec.num_actions must be an int or None, got {self.num_actions!r}"
            )
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
