"""The divergence guard: find the first NaN/inf among named quantities inside a compiled run, keep
the step and a code of what it was, and raise :class:`Diverged` naming both after the run.

Inside ``jit`` a check is one ``isfinite`` reduction per floating-point leaf of the checked pytrees
(an update's metrics, the new agent state): :func:`nonfinite_code` returns the index of the first
non-finite leaf (-1 if none), :func:`record_bad` keeps the first step at which a code was >= 0.
On the host, :func:`leaf_names` names the leaves in the same order (a :class:`Checks` collects the
names of a loop's check sites while it is traced) and :func:`check_finite` raises :class:`Diverged`
from a run's ``check/nonfinite_step`` and ``check/nonfinite_what`` metrics.

Used by every loop (purerl.loops) and by the compiled training scans of purerl.alignment.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(FloatingPointError):
    """NaN or inf appeared during a run (observations, rewards, losses, metrics or parameters)."""


# What a non-finite value of each kind most likely means, for Diverged's message.
CAUSES = {
    "env": "the env produced it: check its dynamics and rewards (or the actions driving it)",
    "rewarder": "the rewarder produced it: check the rewarder, its inputs and its learning rate",
    "agent": "the update diverged: most likely the agent's hyperparameters; try a smaller "
    "learning rate, gradient clipping or smaller rewards",
    "data": "the update diverged on the data: check the agent's hyperparameters (learning rate) "
    "and the data's scale (rewards, unnormalized observations)",
}


class Diverged(NonFiniteError):
    """A run went NaN/inf. Raised after the run (by ``loops.run_seeds``, :func:`check_finite` or an
    alignment stage); the message names the run, the step, the quantity that went non-finite first
    and its likely cause. The CLI exits with status 3 on it.

    Attributes:
      run: which run, e.g. ``"seed 1"`` (the index among the vmapped seeds) or ``"pre-training"``.
      step: the env step or update at which it was first seen.
      unit: ``"env step"`` or ``"update"``.
      quantity: e.g. ``"update metric loss/critic"``, ``"agent state params/linear/w"``,
        ``"observation"``.
      cause: a key of :data:`CAUSES` (``"env"``, ``"rewarder"``, ``"agent"``, ``"data"``) or None.
    """

    def __init__(self, run: str, step: int, unit: str, quantity: str, cause: str | None = None):
        self.run, self.step, self.unit, self.quantity, self.cause = run, step, unit, quantity, cause
        hint = f" ({CAUSES[cause]})" if cause in CAUSES else ""
        super().__init__(
            f"NaN or inf in {quantity} first at {unit} {step} of {run}{hint}; the run froze its "
            f"state before that {unit}"
        )

    def relabel(self, run: str) -> Diverged:
        """The same error for a run named ``run`` (e.g. adding the seed of a whole pipeline)."""
        return Diverged(run, self.step, self.unit, self.quantity, self.cause)


def _is_float(leaf: Any) -> bool:
    dtype = getattr(leaf, "dtype", None)
    return bool(jnp.issubdtype(np.result_type(leaf) if dtype is None else dtype, jnp.inexact))


def leaf_names(tree: Any, prefix: str = "") -> list[str]:
    """Names of the floating-point leaves of ``tree`` (the ones :func:`nonfinite_code` checks), in
    its order: ``prefix`` + the leaf's path joined by ``/`` (dict keys, field names, indices)."""
    names = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        if not _is_float(leaf):
            continue
        parts = [str(getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))) for p in path]
        names.append(prefix + "/".join(parts))
    return names


def nonfinite_code(tree: Any, offset: int = 0) -> jax.Array:
    """int32 ``offset + i`` for the first floating-point leaf ``i`` of ``tree`` (in
    :func:`leaf_names` order) holding NaN or inf, else -1 (inside jit; one ``isfinite`` reduction
    per leaf, fused by XLA)."""
    leaves = [x for x in jax.tree.leaves(tree) if _is_float(x)]
    if not leaves:
        return jnp.full((), -1, jnp.int32)
    bad = jnp.stack([~jnp.all(jnp.isfinite(x)) for x in leaves])
    return jnp.where(jnp.any(bad), offset + jnp.argmax(bad).astype(jnp.int32), -1)


def first_code(*codes: jax.Array) -> jax.Array:
    """The first of ``codes`` that is >= 0, else -1."""
    out = codes[-1]
    for code in reversed(codes[:-1]):
        out = jnp.where(code >= 0, code, out)
    return out


class Checks:
    """The named quantities a loop checks for NaN/inf inside its compiled run.

    A check site calls :meth:`code` with a pytree while the loop is traced; its leaves' names and
    cause are registered here once per site (retracing reuses them), and the compiled run gets an
    int code (-1: all finite) that it keeps as ``check/nonfinite_what`` with the step. After the
    run, :func:`check_finite` turns the code back into a name (:meth:`describe`)."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.causes: list[str] = []
        self.sites: dict[str, tuple[int, int]] = {}

    def code(
        self, site: str, tree: Any, cause: str, prefix: str = "", suffix: str = ""
    ) -> jax.Array:
        """int32 code of the first NaN/inf leaf of ``tree`` (-1: all finite); the leaves are named
        ``prefix + path + suffix`` and blamed on ``cause`` (a key of :data:`CAUSES`)."""
        names = [n + suffix for n in leaf_names(tree, prefix)]
        if site not in self.sites:
            self.sites[site] = (len(self.names), len(names))
            self.names += names
            self.causes += [cause] * len(names)
        offset, count = self.sites[site]
        if count != len(names):  # a site is one place in the loop: one structure
            raise ValueError(f"check site {site!r} traced with {len(names)} leaves, then {count}")
        return nonfinite_code(tree, offset)

    def describe(self, code: int) -> tuple[str | None, str | None]:
        """``(quantity, cause)`` of a code, ``(None, None)`` if unknown."""
        if 0 <= code < len(self.names):
            return self.names[code], self.causes[code]
        return None, None


def record_bad(
    bad_step: jax.Array, bad_what: jax.Array, code: jax.Array, step: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Keep the first step at which a check's ``code`` was >= 0, and that code (-1 while none)."""
    new = (bad_step < 0) & (code >= 0)
    return jnp.where(new, step, bad_step), jnp.where(new, code, bad_what)


def check_finite(
    metrics: dict[str, Any],
    what: str = "observation or reward",
    unit: str = "env step",
    checks: Checks | None = None,
    runs: Sequence[str] | None = None,
) -> None:
    """Raise :class:`Diverged` naming the run, the step and the quantity where a run first saw
    NaN/inf; return if none did.

    ``metrics["check/nonfinite_step"]`` (and ``"check/nonfinite_what"``, a code of ``checks``) are
    ``[num_periods]`` for one run or ``[runs, periods]``. ``what`` names the quantity when no code
    was recorded or ``checks`` is None; ``runs`` names the runs (default ``seed <i>``).
    """
    steps = np.asarray(metrics["check/nonfinite_step"])
    steps = steps.reshape(-1, steps.shape[-1])[:, -1]
    codes = np.full(steps.shape, -1)
    if "check/nonfinite_what" in metrics:
        codes = np.asarray(metrics["check/nonfinite_what"])
        codes = codes.reshape(-1, codes.shape[-1])[:, -1]
    for i, step in enumerate(steps):
        if step < 0:
            continue
        run = runs[i] if runs is not None else f"seed {i}"
        quantity, cause = checks.describe(int(codes[i])) if checks is not None else (None, None)
        raise Diverged(run, int(step), unit, quantity or f"the {what}", cause)


def guarded_update(
    update: Callable[[Any, Any], tuple[Any, Any]],
    state: Any,
    inputs: Any,
    bad_step: jax.Array,
    bad_what: jax.Array,
    step: jax.Array,
) -> tuple[Any, Any, jax.Array, jax.Array]:
    """``update(state, inputs) -> (new_state, metrics)`` under the guard, for a scan body: if the
    metrics or the new state hold NaN/inf (or the run froze earlier) the state is kept as it was.

    Returns ``(state, metrics, bad_step, bad_what)``; ``bad_what`` indexes
    :func:`update_names` ``(metrics, state)``."""
    new, metrics = update(state, inputs)
    code = first_code(nonfinite_code(metrics), nonfinite_code(new, len(leaf_names(metrics))))
    bad_step, bad_what = record_bad(bad_step, bad_what, code, step)
    ok = bad_step < 0
    new = jax.tree.map(lambda old, x: jnp.where(ok, x, old), state, new)
    return new, metrics, bad_step, bad_what


def update_names(metrics: Any, state: Any) -> list[str]:
    """The names of :func:`guarded_update`'s codes (works on abstract shapes too)."""
    return leaf_names(metrics, "update metric ") + leaf_names(state, "state ")


def raise_if_diverged(
    bad_step: Any,
    bad_what: Any,
    names: Sequence[str],
    runs: Sequence[str],
    unit: str = "update",
    cause: str = "agent",
) -> None:
    """Raise :class:`Diverged` for the first run whose ``bad_step`` (scalar, or ``[runs]``) is >= 0,
    naming ``names[bad_what]``."""
    steps, codes = np.asarray(bad_step).reshape(-1), np.asarray(bad_what).reshape(-1)
    for run, step, code in zip(runs, steps, codes, strict=True):
        if step >= 0:
            quantity = names[code] if 0 <= code < len(names) else "a checked quantity"
            raise Diverged(run, int(step), unit, quantity, cause)
