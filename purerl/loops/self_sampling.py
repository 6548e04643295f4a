"""The self-sampling loop: a compiled training loop for Algorithms that make their own data (the LM
policies of :mod:`purerl.alignment`, which sample responses to prompts they draw themselves); the
whole run is one ``lax.scan``.

    from purerl.loops import self_sampling

    rl_config = policy_gradient.RLConfig()
    algo = policy_gradient.make(rl_config, lm_config, task_config, reward_fn)
    evaluate_fn = policy_gradient.make_evaluate(rl_config, lm_config, task_config, reward_fn)
    loop_config = self_sampling.LoopConfig(num_updates=1000, eval_every=100)
    train = self_sampling.make_train(algo, loop_config, evaluate_fn)
    state, metrics = jax.jit(jax.vmap(train, in_axes=(0, None)))(keys, sft_params)  # one compile

The run is ``num_updates / eval_every`` *periods*; a period is ``eval_every`` calls of
``algo.update`` (an inner ``lax.scan``) followed by one call of ``evaluate_fn``, and it emits one
row of metrics. Nothing here knows about language models, rewards or KL: the loop is shared by
REINFORCE / RLOO (:mod:`purerl.alignment.policy_gradient`), the WARP procedure
(:mod:`purerl.alignment.warp`) and BOND / J-BOND (:mod:`purerl.alignment.bond`); any
:class:`~purerl.core.types.Algorithm` whose ``update`` draws its own data runs here.

Contract (what an Algorithm must provide to run here):

* ``algo.init(key, *init_args) -> state``: ``init_args`` are whatever ``train`` is called with after
  the key (for the policy gradient, ``(init_params, sft_params)``). They are run *arguments*, not
  constants baked into the compiled program, so one compile serves any starting weights (WARP's
  iterations) and ``vmap`` can map them or share them (``in_axes=None``).
* ``algo.update(state, None) -> (state, metrics)``: the loop passes no data. An alignment update
  draws its own prompts (from the task, with the key it carries in its state), samples responses and
  scores them, so it is a ``lax.scan`` body with ``xs=None``. ``metrics`` is a flat dict of scalars.
* ``evaluate_fn(state, key) -> metrics``: a flat dict of scalars (by convention ``eval/...`` keys:
  proxy reward, gold reward, KL to SFT). Its key comes from the loop's own key stream, never from the
  algorithm's, so evaluating does not change the training trajectory.

Output of ``train(key, *init_args) -> (final_state, metrics)``: ``metrics`` is a dict of arrays
``[num_rows]``, one row per period (plus a first row before any update when ``eval_at_start``):

* every key of ``algo.update``'s metrics: the mean over the period's updates (NaN in the
  ``eval_at_start`` row, where no update ran);
* every key of ``evaluate_fn``'s metrics, evaluated on the state at the end of the period;
* ``loop/updates``: the number of updates done when the row was taken (int32);
* with ``on_nonfinite="raise"`` (the default) ``check/nonfinite_step`` and ``check/nonfinite_what``:
  the first update whose metrics held NaN/inf, or the end of the first period whose final state
  did (-1 if none), and a code of ``train.checks`` naming the quantity. That update is undone (a
  non-finite state goes back to the period's start) and the run freezes there (its rows repeat
  the frozen state's evaluation); :func:`purerl.loops.common.check_finite` (called by
  ``run_seeds``) raises :class:`purerl.loops.common.Diverged` naming run, update and quantity.

Everything is traceable: ``jax.vmap(train)`` over keys runs seeds in parallel in one compile, and a
hyperparameter sweep builds the Algorithm inside the mapped function (``lambda key, beta:
make_train(policy_gradient.make(RLConfig(beta=beta), ...), ...)(key, sft_params)``). Progress (a
tqdm bar plus metric lines, :class:`purerl.loops.common.Progress`) leaves the compiled run through
``jax.debug.callback`` once per period; :func:`purerl.loops.common.run_seeds` closes it (``train``
carries it as ``train.progress``) and passes ``init_args`` as its ``args``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purerl.core.types import Algorithm, Metrics
from purerl.loops.common import (
    Checks,
    Progress,
    metrics_code,
    record_bad,
    revert_nonfinite_state,
)


@dataclasses.dataclass(frozen=True)
class LoopConfig:
    num_updates: int = 1000  # total calls of algo.update (WARP's T; 9k for Gemma 7B, sec. 4)
    eval_every: int = 100  # updates per period (= one metrics row)
    eval_at_start: bool = True  # one evaluation row of the initial state first (the SFT point)
    progress: bool = False  # stream a tqdm bar and metric lines out of the compiled run
    progress_keys: tuple[str, ...] = ("eval/reward", "eval/gold", "eval/kl_sft")  # printed keys
    desc: str = "alignment"  # progress bar label
    on_nonfinite: str = "raise"  # "raise": freeze before the first update whose metrics or state
    #                              hold NaN/inf and report it in check/...; "ignore": carry on

    def __post_init__(self):
        for name in ("num_updates", "eval_every"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"LoopConfig.{name} must be a positive int, got {v!r}")
        if self.num_updates % self.eval_every:
            raise ValueError(
                f"LoopConfig.num_updates ({self.num_updates}) must be a multiple of eval_every "
                f"({self.eval_every})"
            )
        for name in ("eval_at_start", "progress"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"LoopConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.on_nonfinite not in ("raise", "ignore"):
            raise ValueError(
                f"LoopConfig.on_nonfinite must be 'raise' or 'ignore', got {self.on_nonfinite!r}"
            )
        if not isinstance(self.progress_keys, tuple) or not all(
            isinstance(k, str) for k in self.progress_keys
        ):
            raise ValueError(
                f"LoopConfig.progress_keys must be a tuple of str, got {self.progress_keys!r}"
            )

    @property
    def num_periods(self) -> int:
        """Periods of ``eval_every`` updates (rows of metrics, not counting the start row)."""
        return self.num_updates // self.eval_every


class LoopCarry(NamedTuple):
    state: Any  # the Algorithm's state (holds the training key)
    key: jax.Array  # evaluation key stream, separate from the algorithm's
    updates: jax.Array  # int32 updates done
    bad_step: jax.Array  # int32 first update whose metrics or state were NaN/inf, -1 if none
    bad_what: jax.Array  # int32 what went non-finite then (a code of train.checks), -1 if none


def _check_scalars(owner: str, metrics: Any) -> None:
    if not isinstance(metrics, dict):
        raise ValueError(
            f"{owner} must return a flat dict of metrics, got {type(metrics).__name__}"
        )
    for k, v in metrics.items():
        if not isinstance(k, str) or jnp.ndim(v) != 0:
            raise ValueError(
                f"{owner} must return a flat dict of scalar metrics; {k!r} has shape {jnp.shape(v)}"
            )


def make_train(
    algo: Algorithm,
    config: LoopConfig,
    evaluate_fn: Callable[[Any, jax.Array], Metrics],
    callback: Callable[[jax.Array, Metrics], None] | None = None,
    snapshot: Callable[[Any], Any] | None = None,
) -> Callable[..., tuple[Any, ...]]:
    """``train(key, *init_args) -> (final_state, metrics)``, the whole run one ``lax.scan``.

    Args:
      algo: an Algorithm following the contract of the module docstring (``update(state, None)``).
      config: a :class:`LoopConfig`.
      evaluate_fn: ``evaluate_fn(state, key) -> flat dict of scalars``, run after every period.
      callback: host function ``callback(updates, row)`` called through ``jax.debug.callback`` after
        every row (once per mapped element under ``vmap``); default: a
        :class:`purerl.loops.common.Progress` bar when ``config.progress``, else nothing.
      snapshot: ``snapshot(state) -> pytree`` kept at every row (e.g. ``lambda s: s.params``, to
        pick a run's best checkpoint afterwards, as WARM's policy comparison does); then ``train``
        returns ``(final_state, metrics, snapshots)`` with snapshot leaves ``[rows, ...]``.

    Returns:
      ``train``; ``metrics`` holds arrays ``[num_periods (+ 1 with eval_at_start)]``.
    """
    if not isinstance(config, LoopConfig):
        raise ValueError(f"make_train needs a LoopConfig, got {type(config).__name__}")
    if callback is None and config.progress:
        callback = Progress(config.num_updates, keys=config.progress_keys, desc=config.desc)
    check = config.on_nonfinite == "raise"
    checks = Checks()

    def scan_body(carry: tuple, step: jax.Array) -> tuple[tuple, tuple[Metrics, jax.Array]]:
        """One update; with ``check``, an update whose metrics hold NaN/inf is undone, and so is
        every later one (the run freezes before it; its metrics output zeros). The state itself
        is checked at the period's end (:func:`period`)."""
        state, bad_step, bad_what = carry
        new, metrics = algo.update(state, None)
        if not check:
            return (new, bad_step, bad_what), (metrics, jnp.ones((), bool))
        code = metrics_code(checks, metrics, "agent")
        bad_step, bad_what = record_bad(bad_step, bad_what, code, step)
        ok = bad_step < 0
        new = jax.tree.map(lambda old, x: jnp.where(ok, x, old), state, new)
        metrics = jax.tree.map(lambda x: jnp.where(ok, x, jnp.zeros_like(x)), metrics)
        return (new, bad_step, bad_what), (metrics, ok)

    def emit(row: Metrics) -> None:
        if callback is not None:
            jax.debug.callback(callback, row["loop/updates"], row)

    def evaluate(state: Any, key: jax.Array) -> Metrics:
        metrics = evaluate_fn(state, key)
        _check_scalars("evaluate_fn", metrics)
        return dict(metrics)

    def mean(v: jax.Array, live: jax.Array) -> jax.Array:
        """The mean over the updates that ran (all of them: exactly ``jnp.mean``), NaN if none."""
        n = jnp.sum(live)
        partial = jnp.sum(jnp.where(live, v, 0), axis=0) / jnp.maximum(n, 1)
        return jnp.where(
            n == live.shape[0], jnp.mean(v, axis=0), jnp.where(n > 0, partial, jnp.nan)
        )

    def run_updates(inner: tuple) -> tuple[tuple, Metrics]:
        state, bad_step, bad_what, done = inner
        steps = done + 1 + jnp.arange(config.eval_every, dtype=jnp.int32)
        (state, bad_step, bad_what), (metrics, live) = jax.lax.scan(
            scan_body, (state, bad_step, bad_what), steps
        )
        _check_scalars("algo.update", jax.tree.map(lambda x: x[0], metrics))
        return (state, bad_step, bad_what, done), {k: mean(v, live) for k, v in metrics.items()}

    def no_updates(inner: tuple) -> tuple[tuple, Metrics]:
        shapes = jax.eval_shape(run_updates, inner)[1]
        return inner, {k: jnp.full(s.shape, jnp.nan, s.dtype) for k, s in shapes.items()}

    def period(carry: LoopCarry, first: jax.Array) -> tuple[LoopCarry, Metrics]:
        # The start row is a period without updates (a cond on an unbatched flag, so it stays a
        # cond under vmap): the evaluation is traced and compiled once, not twice.
        inner = (carry.state, carry.bad_step, carry.bad_what, carry.updates)
        if config.eval_at_start:
            inner, row = jax.lax.cond(first, no_updates, run_updates, inner)
            updates = carry.updates + jnp.where(first, 0, config.eval_every).astype(jnp.int32)
        else:
            inner, row = run_updates(inner)
            updates = carry.updates + config.eval_every
        state, bad_step, bad_what, _ = inner
        if check:
            # The state is checked once per period (cheap); a NaN/inf there sends it back to the
            # period's start and freezes the run from the period's end on.
            state, _, code = revert_nonfinite_state(
                checks, (carry.state, None), (state, None), "agent"
            )
            bad_step, bad_what = record_bad(bad_step, bad_what, code, updates)
        key, eval_key = jax.random.split(carry.key)
        row.update(evaluate(state, eval_key))
        row["loop/updates"] = updates
        if check:
            row["check/nonfinite_step"] = bad_step
            row["check/nonfinite_what"] = bad_what
        emit(row)
        carry = LoopCarry(state, key, updates, bad_step, bad_what)
        if snapshot is not None:
            return carry, (row, snapshot(state))
        return carry, row

    def train(key: jax.Array, *init_args: Any) -> tuple[Any, dict[str, jax.Array]]:
        init_key, key = jax.random.split(key)
        state = algo.init(init_key, *init_args)
        none = jnp.full((), -1, jnp.int32)
        carry = LoopCarry(state, key, jnp.zeros((), jnp.int32), none, none)
        num_rows = config.num_periods + int(config.eval_at_start)
        firsts = jnp.arange(num_rows) == 0
        carry, rows = jax.lax.scan(period, carry, firsts)
        if snapshot is not None:
            rows, kept = rows
            return carry.state, rows, kept
        return carry.state, rows

    train.progress = callback if isinstance(callback, Progress) else None
    train.checks = checks  # names of the codes in check/nonfinite_what (filled when traced)
    train.nonfinite_wording = {"what": "update's metrics or state", "unit": "update"}
    return train
