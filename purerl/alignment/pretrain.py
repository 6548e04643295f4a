"""Pre-training and supervised fine-tuning (SFT) of the toy LM on the task's reference corpus.

The policy and reward-model trunk of the toy RLHF world (research notes ``alignment.md`` §6.1 Tier
B, item 2) are made in two stages, both by next-token maximum likelihood on fresh draws of
:func:`purerl.alignment.tasks.corpus` (the reference generator, the distribution preferences are
later collected on):

* **pre-training** from a random initialisation, on every non-pad token (prompt and response):
  ``L(theta) = -sum_t m_t log pi_theta(y_t | y_{<t}) / sum_t m_t`` with ``m_t = 1[y_t != PAD]``;
* **SFT** from the pre-trained parameters, on the response tokens only (``m_t`` = the response
  mask, EOS included): the same loss conditioned on the prompt.

Each stage is one compiled ``lax.scan`` over :func:`purerl.alignment.lm.make_train_step`'s
``update`` (Adam, global-norm clipping); the batch of step ``s`` is ``corpus(fold_in(key, s))``, so
the data is an unbounded stream drawn inside the scan. The scan can also keep the parameters after
chosen numbers of updates: the intermediate SFT checkpoints that WARM's "Baklava" variant
initialises its reward models from (WARM §3.3, Fig. 3(d): SFT steps 8k vs 12k).

Functions: :func:`pretrain` (both stages: ``init_params=None, response_only=False`` is
pre-training, ``init_params=theta_pt, response_only=True`` is SFT) and :func:`sft`, the second
spelled out.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purerl.alignment import lm, tasks, warm
from purerl.core import divergence, validation


class PretrainResult(NamedTuple):
    params: Any  # LM parameters after ``steps`` updates
    losses: jax.Array  # [steps] float32: the mean next-token NLL of each update's batch
    checkpoints: Any  # LM parameters stacked [K, ...] after each of ``checkpoint_steps``; or None
    checkpoint_steps: tuple[int, ...]  # K update counts, increasing, each in [1, steps]


def _positive_int(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive int, got {value!r}")
    return int(value)


def check_configs(owner: str, lm_config: lm.LMConfig, task_config: tasks.TaskConfig) -> None:
    """Raise ``ValueError`` unless the LM can read the task's sequences (vocabulary and length)."""
    if not isinstance(lm_config, lm.LMConfig):
        raise ValueError(f"{owner}: lm_config must be an lm.LMConfig, got {type(lm_config)}")
    if not isinstance(task_config, tasks.TaskConfig):
        raise ValueError(
            f"{owner}: task_config must be a tasks.TaskConfig, got {type(task_config)}"
        )
    if lm_config.vocab_size < task_config.vocab_size:
        raise ValueError(
            f"{owner}: LMConfig.vocab_size={lm_config.vocab_size} < TaskConfig.vocab_size="
            f"{task_config.vocab_size}: the LM cannot emit every task token"
        )
    if lm_config.max_len < task_config.seq_len:
        raise ValueError(
            f"{owner}: LMConfig.max_len={lm_config.max_len} < the task's sequence length "
            f"prompt_len + response_len = {task_config.seq_len}"
        )


def pretrain(
    key: jax.Array,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    steps: int,
    batch_size: int,
    lr: float = 3e-3,
    checkpoints: Sequence[int] = (),
    init_params: Any = None,
    response_only: bool = False,
    max_grad_norm: float = 1.0,
) -> PretrainResult:
    """Train the LM by next-token NLL on ``steps`` fresh corpus batches in one ``lax.scan``.

    ``L(theta) = -sum_{b,t} m_{b,t} log pi_theta(y_{b,t} | y_{b,<t}) / sum_{b,t} m_{b,t}`` per batch
    (:func:`purerl.alignment.lm.next_token_loss`), with ``m = 1[y != PAD]`` (pre-training) or the
    response mask (``response_only``, SFT). Adam with step size ``lr`` and global-norm clipping at
    ``max_grad_norm``; dropout at ``lm_config.dropout``.

    Args:
      key: PRNG key; ``split(key)`` gives the initialisation/dropout stream and the data stream.
      lm_config: the LM (``vocab_size >= task vocab``, ``max_len >= prompt_len + response_len``).
      task_config: the task whose reference corpus is modelled.
      steps: number of updates ``S >= 1``; each draws ``batch_size`` new sequences ``[B, P + R]``.
      batch_size: ``B >= 1``.
      lr: Adam step size.
      checkpoints: update counts ``1 <= k <= S`` (increasing, distinct) after which to keep the
        parameters (WARM §3.3 "Baklava" SFT checkpoints).
      init_params: start from these LM parameters (SFT from a pre-trained model); ``None``: a
        fresh initialisation (GPT-2 scheme of :func:`purerl.alignment.lm.make_lm`).
      response_only: the loss covers the response only (SFT) instead of every non-pad token.
    Returns:
      :class:`PretrainResult` ``(params, losses [S], checkpoints [K, ...] or None, steps)``.
    Raises:
      purerl.core.divergence.Diverged: an update's loss or new state (parameters, Adam moments)
        held NaN/inf (e.g. a huge ``lr``); the scan froze before that update and the error names
        it, the update count and the quantity (run ``"pre-training"`` or ``"SFT"``).
    """
    check_configs("pretrain", lm_config, task_config)
    steps = _positive_int("pretrain", "steps", steps)
    batch_size = _positive_int("pretrain", "batch_size", batch_size)
    validation.positive("pretrain", lr=lr, max_grad_norm=max_grad_norm)
    ckpts = tuple(_positive_int("pretrain", "checkpoint step", c) for c in checkpoints)
    if any(c > steps for c in ckpts) or any(
        b <= a for a, b in zip(ckpts[:-1], ckpts[1:], strict=True)
    ):
        raise ValueError(
            f"pretrain: checkpoints must be increasing distinct update counts in [1, steps={steps}]"
            f", got {ckpts}"
        )
    step_fn = lm.make_train_step(lm_config, float(lr), float(max_grad_norm))
    init_key, data_key = jax.random.split(key)
    # Fresh parameters, a fresh Adam state (zeros: SFT restarts the optimiser) and dropout key.
    state = step_fn.init(init_key)
    if init_params is not None:
        warm.check_compatible("pretrain", state.params, init_params, ("the LM", "init_params"))
        state = state._replace(params=jax.tree.map(jnp.asarray, init_params))
    params, losses, stacked, bad_step, bad_what = _run(
        lm_config,
        task_config,
        steps,
        batch_size,
        float(lr),
        float(max_grad_norm),
        state,
        data_key,
        jnp.asarray(bool(response_only)),
        # Traced and padded to a power of two >= 4 with never-reached 0s, so a pre-training and
        # an SFT run of the same length share one compile whatever their (few) checkpoints.
        jnp.asarray(ckpts + (0,) * (_slots(len(ckpts)) - len(ckpts)), jnp.int32),
    )
    if int(bad_step) >= 0:
        tokens = jnp.zeros((batch_size, task_config.seq_len), jnp.int32)
        mask = jnp.zeros((batch_size, task_config.seq_len), jnp.float32)
        metrics = jax.eval_shape(step_fn.update, state, (tokens, mask))[1]
        names = divergence.update_names(metrics, state)
        run = "SFT" if response_only else "pre-training"
        divergence.raise_if_diverged(bad_step, bad_what, names, [run])
    if not ckpts:
        return PretrainResult(params, losses, None, ckpts)
    return PretrainResult(params, losses, jax.tree.map(lambda x: x[: len(ckpts)], stacked), ckpts)


def _slots(k: int) -> int:
    return max(4, 1 << (k - 1).bit_length())


def sft(
    key: jax.Array,
    params: Any,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    steps: int,
    batch_size: int,
    lr: float = 3e-3,
    checkpoints: Sequence[int] = (),
    max_grad_norm: float = 1.0,
) -> PretrainResult:
    """Supervised fine-tuning: :func:`pretrain` from ``params`` with the loss on the response
    tokens only, ``-sum_t m_t log pi(y_t | x, y_{<t}) / sum_t m_t`` (``m`` = response mask)."""
    if params is None:
        raise ValueError("sft: params must be LM parameters (e.g. pretrain(...).params), got None")
    return pretrain(
        key,
        lm_config,
        task_config,
        steps,
        batch_size,
        lr,
        checkpoints,
        init_params=params,
        response_only=True,
        max_grad_norm=max_grad_norm,
    )


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3, 4, 5))
def _run(
    lm_config,
    task_config,
    steps,
    batch_size,
    lr,
    max_grad_norm,
    state,
    data_key,
    response_only,
    ckpt_steps,
):
    step_fn = lm.make_train_step(lm_config, lr, max_grad_norm)
    stacked = jax.tree.map(lambda x: jnp.zeros((len(ckpt_steps),) + x.shape, x.dtype), state.params)

    def body(carry, step):
        state, stacked, bad_step, bad_what = carry
        seqs = tasks.corpus(jax.random.fold_in(data_key, state.step), task_config, batch_size)
        mask = jnp.where(
            response_only, seqs.mask, (seqs.tokens != tasks.PAD_ID).astype(jnp.float32)
        )
        # Divergence guard: an update with a NaN/inf loss or state is not kept (nor any later one).
        state, metrics, bad_step, bad_what = divergence.guarded_update(
            step_fn.update, state, (seqs.tokens, mask), bad_step, bad_what, step
        )
        # One write of a checkpoint slot per update, a no-op unless this update count is kept
        # (padding slots wait for update 0, which never comes).
        hit = ckpt_steps == state.step
        slot = jnp.argmax(hit)
        stacked = jax.tree.map(
            lambda s, p: s.at[slot].set(jnp.where(jnp.any(hit), p, s[slot])), stacked, state.params
        )
        return (state, stacked, bad_step, bad_what), metrics["loss/nll"]

    none = jnp.full((), -1, jnp.int32)
    (state, stacked, bad_step, bad_what), losses = jax.lax.scan(
        body, (state, stacked, none, none), jnp.arange(1, steps + 1, dtype=jnp.int32)
    )
    return state.params, losses, stacked, bad_step, bad_what
