"""Checks that turn bad input into a clear error naming the problem (never a silent wrong answer).

All shape checks run at trace time (shapes are static), so they cost nothing inside ``jit``.

The shape and dtype predicates are chex's (``chex.assert_shape``, ``chex.assert_rank``,
``chex.assert_type``); :func:`chex_check` turns a failed chex assertion into a ``ValueError`` with
the library's message, which names the argument or batch field, its shape and the expected one.
As with every chex assertion, ``chex.disable_asserts()`` switches these checks off too. The value
checks of config fields (:func:`positive` ...) stay hand-written: they accept numpy scalars of any
width, let traced values (a config built under ``vmap``) through and reject bools, NaN and inf,
where ``chex.assert_scalar_*`` reject ``np.float32``, numpy ints and tracers, and pass bools, NaN
and inf.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import chex
import jax
import numpy as np

from purerl.core.types import EnvSpec, Transition


def _number(v: Any) -> float | None:
    """``v`` as a float; ``None`` for a traced value (a config built inside ``vmap`` over
    hyperparameters), whose value cannot be checked at trace time. Raises for non-numbers."""
    if isinstance(v, jax.core.Tracer):
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
        if isinstance(v, (jax.Array, np.ndarray)) and np.ndim(v) == 0:
            return float(v)
        raise TypeError(f"expected a number, got {type(v).__name__}")
    return float(v)


def _check(owner: str, values: dict, ok, requirement: str) -> None:
    for name, v in values.items():
        try:
            x = _number(v)
        except TypeError:
            raise ValueError(f"{owner}.{name} must be {requirement}, got {v!r}") from None
        if x is not None and not (math.isfinite(x) and ok(x)):
            raise ValueError(f"{owner}.{name} must be {requirement}, got {v!r}")


def positive(owner: str, **values: float) -> None:
    """Raise ``ValueError`` unless every value is > 0 (traced values pass unchecked)."""
    _check(owner, values, lambda x: x > 0, "a positive number")


def non_negative(owner: str, **values: float) -> None:
    """Raise ``ValueError`` unless every value is >= 0 (traced values pass unchecked)."""
    _check(owner, values, lambda x: x >= 0, ">= 0")


def in_unit_interval(owner: str, **values: float) -> None:
    """Raise unless every value is in ``[0, 1]`` (discounts, Polyak rates, probabilities)."""
    _check(owner, values, lambda x: 0.0 <= x <= 1.0, "in [0, 1]")


def layer_sizes(owner: str, name: str, sizes: Any) -> None:
    if not isinstance(sizes, (tuple, list)) or not all(
        isinstance(h, int) and not isinstance(h, bool) and h > 0 for h in sizes
    ):
        raise ValueError(f"{owner}.{name} must be a tuple of positive ints, got {sizes!r}")
    if not sizes:
        raise ValueError(
            f"{owner}.{name} is empty: that would be a linear network with no hidden layer; give "
            "at least one size, e.g. (256, 256)"
        )


def chex_check(assertion: Callable[..., None], x: Any, *args: Any, message: str) -> None:
    """Run a chex assertion on one input, e.g. ``chex_check(chex.assert_shape, x, (3, None),
    message=...)``, and raise ``ValueError(message)`` if it fails, so users see which input is
    wrong and how (chex's own message names neither the field nor the env).

    Args:
      assertion: a chex assertion (``chex.assert_shape``, ``chex.assert_rank``, ``assert_type``).
      x: the input checked (an array; a Python scalar or list is read as an array).
      *args: the assertion's other arguments (expected shape, rank or type).
      message: the error message, naming the input, its shape or dtype and the expected one.
    """
    if not hasattr(x, "shape"):  # chex reads .shape and would take a list as several inputs
        x = np.asarray(x)
    try:
        assertion(x, *args)
    except AssertionError:
        raise ValueError(message) from None


def check_obs(obs: jax.Array, spec: EnvSpec, what: str = "observation") -> None:
    """``obs`` must be ``[*obs_shape]`` or ``[..., *obs_shape]``."""
    chex_check(
        chex.assert_shape,
        obs,
        (..., *spec.obs_shape),
        message=(
            f"{what} has shape {tuple(np.shape(obs))}, expected "
            f"[..., {', '.join(map(str, spec.obs_shape))}] "
            f"for env {spec.name or '?'} with obs_shape {spec.obs_shape}"
        ),
    )


def check_batch(
    batch: Transition,
    spec: EnvSpec,
    owner: str,
    window: int | None = None,
    rollout: bool = False,
) -> None:
    """Check a batch of transitions against the env spec: obs/next_obs/action trailing shapes, scalar
    rewards and flags, one common leading shape: ``[B]``, ``[B, window]`` for n-step batches, or
    ``[T, E]`` for on-policy rollouts (``rollout=True``)."""
    if not isinstance(batch, Transition):
        raise TypeError(f"{owner}: batch must be a purerl Transition, got {type(batch).__name__}")
    lead = tuple(np.shape(batch.reward))
    if rollout:
        chex_check(
            chex.assert_rank,
            batch.reward,
            2,
            message=(
                f"{owner}: batch.reward has shape {lead}, expected a rollout [T, E] "
                "(unroll length, envs); on-policy agents update on whole rollouts "
                "(purerl.loops.on_policy)"
            ),
        )
        what = f"rollout [T, E] = {lead}"
    else:
        want = "[B]" if window is None else f"[B, {window}] (n-step windows)"
        hint = (
            "; set the loop's n_step to the agent's n_step"
            if window is not None or len(lead) == 2
            else ""
        )
        chex_check(
            chex.assert_shape,
            batch.reward,
            (None,) if window is None else (None, window),
            message=f"{owner}: batch.reward has shape {lead}, expected {want}{hint}",
        )
        what = f"leading {lead}"
    act_shape = () if spec.discrete else tuple(spec.action_shape)
    for field, tail in (
        ("obs", spec.obs_shape),
        ("next_obs", spec.obs_shape),
        ("action", act_shape),
        ("terminated", ()),
        ("truncated", ()),
    ):
        x = getattr(batch, field)
        chex_check(
            chex.assert_shape,
            x,
            lead + tuple(tail),
            message=(
                f"{owner}: batch.{field} has shape {tuple(np.shape(x))}, expected "
                f"{lead + tuple(tail)} ({what} from batch.reward, env {spec.name or '?'})"
            ),
        )


def one_of(owner: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise ``ValueError`` unless ``value`` is one of the strings ``choices``.

    ``owner`` names the field, e.g. ``one_of("RLConfig.anchor", "polyak", ("sft", "ema"))`` raises
    ``RLConfig.anchor must be one of ('sft', 'ema'), got 'polyak'``.
    """
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{owner} must be one of {choices}, got {value!r}")


def int_at_least(owner: str, value: object, low: int) -> None:
    """Raise ``ValueError`` unless ``value`` is an int (not a bool) ``>= low``.

    ``owner`` names the field, e.g. ``int_at_least("td3.Config.policy_delay", 0, 1)`` raises
    ``td3.Config.policy_delay must be an int >= 1, got 0``.
    """
    if not (isinstance(value, int) and not isinstance(value, bool) and value >= low):
        raise ValueError(f"{owner} must be an int >= {low}, got {value!r}")
