"""Bradley-Terry reward models on the LM trunk (the RMs that WARM averages; Ramé et al., ICML 2024).

Pseudocode (WARM §3.1 and research notes ``alignment.md`` §1.2) -> functions:

* reward ``r_phi(x, y) = w^T h_L(x, y)[last]``: a scalar linear head on the final hidden state of the
  last response token (the last position whose mask is 1; EOS when the response stopped) of the
  :mod:`purerl.alignment.lm` trunk -> :func:`reward`, :func:`features`;
* shared initialisation ``(theta_sft, omega)``: the SFT trunk plus a **linear-probed** head, fitted
  with the trunk frozen (WARM §3.1, Remark 1) -> :func:`init_reward_model`, :func:`linear_probe`;
* Bradley-Terry loss (WARM Eq. 1) ``L_R = -E_{(x, y+, y-)} log sigmoid(r(x, y+) - r(x, y-))``
  -> :func:`bt_loss`;
* pairwise accuracy ``Acc = E[1{r(x, y+) >= r(x, y-)}]`` (WARM §3, notes §1.2; ties count as correct)
  -> :func:`accuracy`;
* calibration: expected calibration error of ``p = sigmoid(r+ - r-)`` -> :func:`calibration_error`;
* one fine-tuning run of the BT loss (Adam, global-norm clipping) as a ``lax.scan`` body whose learning
  rate, dropout rate and key live in the state, so ``jax.vmap`` over states runs WARM's M diverse
  fine-tunings (seeds / data orders / learning rates / dropout, WARM §3.3) in one compile ->
  :func:`make_train_step`, :func:`minibatches`.

The BT loss only sees reward differences, so a head bias would get no gradient: the head is the
weight vector ``w [D]`` alone.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from purerl.alignment import lm
from purerl.alignment.tasks import Preferences
from purerl.core import optim, validation
from purerl.core.types import Metrics


@dataclasses.dataclass(frozen=True)
class RMConfig:
    lm: lm.LMConfig = lm.LMConfig()  # the trunk's architecture (the SFT policy's)
    learning_rate: float = 1e-3  # toy scale; WARM's PaLM-XXS values (App. B.3) were not retrieved
    dropout: float = 0.0  # WARM §3.3 varies it across runs (notes §6.1: {0, 0.05, 0.1})
    max_grad_norm: float = 1.0  # global-norm clipping (not in the paper)
    probe_learning_rate: float = 0.05  # Adam step size of the linear probe (full batch)
    probe_steps: int = 300  # linear-probe iterations
    probe_l2: float = 1e-3  # L2 penalty on the probe's w (keeps separable data finite)

    def __post_init__(self):
        if not isinstance(self.lm, lm.LMConfig):
            raise ValueError(f"RMConfig.lm must be an LMConfig, got {type(self.lm).__name__}")
        validation.positive(
            "RMConfig",
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
            probe_learning_rate=self.probe_learning_rate,
        )
        validation.non_negative("RMConfig", dropout=self.dropout, probe_l2=self.probe_l2)
        if not self.dropout < 1.0:
            raise ValueError(f"RMConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.probe_steps, bool) or not isinstance(self.probe_steps, int):
            raise ValueError(f"RMConfig.probe_steps must be an int >= 1, got {self.probe_steps!r}")
        if self.probe_steps < 1:
            raise ValueError(f"RMConfig.probe_steps must be an int >= 1, got {self.probe_steps!r}")


class RMParams(NamedTuple):
    trunk: Any  # LM parameters (lm.make_lm); the unembedding is carried along but unused
    head: jax.Array  # [D] linear head w


# ----------------------------------------------------------------------------- checks


def check_preferences(prefs: Preferences, config: lm.LMConfig, owner: str) -> int:
    """Raise ``ValueError`` for an empty set or inconsistent shapes; returns ``N``."""
    names = ("chosen", "chosen_mask", "rejected", "rejected_mask")
    missing = [n for n in names if not hasattr(prefs, n)]
    if missing:
        raise ValueError(f"{owner}: preferences lack fields {missing}; use tasks.Preferences")
    shape = tuple(np.shape(prefs.chosen))
    if len(shape) != 2:
        raise ValueError(f"{owner}: chosen must be [N, T] tokens, got shape {shape}")
    if shape[0] == 0:
        raise ValueError(f"{owner}: empty preference set (N = 0 pairs)")
    for name in names[1:]:
        got = tuple(np.shape(getattr(prefs, name)))
        if got != shape:
            raise ValueError(f"{owner}: {name} has shape {got}, expected chosen's shape {shape}")
    lm.check_tokens(prefs.chosen, config, f"{owner}: chosen")
    lm.check_tokens(prefs.rejected, config, f"{owner}: rejected")
    return shape[0]


def _check_rewards(r_chosen: ArrayLike, r_rejected: ArrayLike, owner: str) -> None:
    a, b = tuple(np.shape(r_chosen)), tuple(np.shape(r_rejected))
    if a != b:
        raise ValueError(f"{owner}: r_chosen has shape {a} but r_rejected has shape {b}")
    if len(a) != 1 or a[0] == 0:
        raise ValueError(f"{owner}: expected non-empty [N] rewards, got shape {a}")


def check_head(trunk: Any, head: ArrayLike, config: lm.LMConfig) -> None:
    """Raise ``ValueError`` unless ``trunk`` is :func:`purerl.alignment.lm.make_lm` parameters of
    ``config`` and ``head`` is a ``[d_model]`` reward head (shared by :mod:`purerl.alignment.warm`).
    """
    try:
        emb = trunk["token_embed"]["embeddings"]
    except (KeyError, TypeError, IndexError):
        raise ValueError("reward model trunk is not lm.make_lm parameters") from None
    if tuple(np.shape(emb)) != (config.vocab_size, config.d_model):
        raise ValueError(
            f"trunk embeddings have shape {tuple(np.shape(emb))}, but the LMConfig says "
            f"(vocab_size, d_model) = {(config.vocab_size, config.d_model)}"
        )
    if tuple(np.shape(head)) != (config.d_model,):
        raise ValueError(
            f"reward head has shape {tuple(np.shape(head))}, expected [d_model={config.d_model}]"
        )


# ----------------------------------------------------------------------------- the model


def features(
    config: lm.LMConfig,
    trunk: Any,
    tokens: ArrayLike,
    mask: ArrayLike,
    key: jax.Array | None = None,
    dropout_rate: Any = None,
) -> jax.Array:
    """``h_L[b, last_b]`` ``[B, D]``: the trunk's final hidden state at the last position whose mask
    is 1 (position 0 if the mask is all zero). Dropout only with a ``key``."""
    lm.check_tokens(tokens, config)
    lm.check_mask(mask, tokens)
    hidden = lm.make_lm(config).apply(trunk, tokens, key, dropout_rate).hidden
    t = jnp.arange(hidden.shape[1])
    last = jnp.max(jnp.where(jnp.asarray(mask) > 0, t, 0), axis=1)
    return jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0]


def reward(
    config: lm.LMConfig,
    params: RMParams,
    tokens: ArrayLike,
    mask: ArrayLike,
    key: jax.Array | None = None,
    dropout_rate: Any = None,
) -> jax.Array:
    """``r_phi(x, y) = w^T h_L[last]``, ``[B]``, for sequences ``tokens [B, T]`` (prompt + response,
    right-padded) with response ``mask [B, T]``."""
    check_head(params.trunk, params.head, config)
    return features(config, params.trunk, tokens, mask, key, dropout_rate) @ params.head


def pair_rewards(
    config: lm.LMConfig,
    params: RMParams,
    prefs: Preferences,
    key: jax.Array | None = None,
    dropout_rate: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """``(r(x, y+), r(x, y-))``, each ``[N]``, from one forward pass over both sides."""
    n = check_preferences(prefs, config, "pair_rewards")
    tokens = jnp.concatenate([jnp.asarray(prefs.chosen), jnp.asarray(prefs.rejected)], axis=0)
    mask = jnp.concatenate([jnp.asarray(prefs.chosen_mask), jnp.asarray(prefs.rejected_mask)], 0)
    r = reward(config, params, tokens, mask, key, dropout_rate)
    return r[:n], r[n:]


# ----------------------------------------------------------------------------- metrics and loss


@jax.jit
def bt_loss(r_chosen: ArrayLike, r_rejected: ArrayLike) -> jax.Array:
    """WARM Eq. 1: ``-mean log sigmoid(r+ - r-)`` over ``[N]`` pairs."""
    _check_rewards(r_chosen, r_rejected, "bt_loss")
    return -jnp.mean(jax.nn.log_sigmoid(jnp.asarray(r_chosen) - jnp.asarray(r_rejected)))


@jax.jit
def accuracy(r_chosen: ArrayLike, r_rejected: ArrayLike) -> jax.Array:
    """Pairwise accuracy ``mean 1{r+ >= r-}`` (WARM §3, notes §1.2; ties count as correct)."""
    _check_rewards(r_chosen, r_rejected, "accuracy")
    return jnp.mean((jnp.asarray(r_chosen) >= jnp.asarray(r_rejected)).astype(jnp.float32))


@functools.partial(jax.jit, static_argnames="num_bins")
def calibration_error(r_chosen: ArrayLike, r_rejected: ArrayLike, num_bins: int = 10) -> jax.Array:
    """Expected calibration error (Guo et al. 2017) of the BT probability ``p = sigmoid(r+ - r-)``.

    Top-label form for a binary prediction: confidence ``c = max(p, 1 - p)``, correct
    ``1{r+ >= r-}`` (as :func:`accuracy`), ``num_bins`` equal-width bins of ``c`` over
    ``[0.5, 1]``, ``ECE = sum_b |sum_{i in b} (correct_i - c_i)| / N``.
    """
    _check_rewards(r_chosen, r_rejected, "calibration_error")
    if isinstance(num_bins, bool) or not isinstance(num_bins, int) or num_bins < 1:
        raise ValueError(f"num_bins must be a positive int, got {num_bins!r}")
    diff = jnp.asarray(r_chosen, jnp.float32) - jnp.asarray(r_rejected, jnp.float32)
    p = jax.nn.sigmoid(diff)
    conf = jnp.maximum(p, 1.0 - p)
    correct = (diff >= 0).astype(jnp.float32)
    bins = jnp.clip(jnp.floor((conf - 0.5) * 2.0 * num_bins).astype(jnp.int32), 0, num_bins - 1)
    gap = jnp.zeros(num_bins).at[bins].add(correct - conf)
    return jnp.sum(jnp.abs(gap)) / diff.shape[0]


def evaluate(config: lm.LMConfig, params: RMParams, prefs: Preferences) -> Metrics:
    """``{"loss/bt", "rm/accuracy", "rm/ece", "rm/margin"}`` on a preference set (no dropout);
    ``rm/margin`` is ``mean(r+ - r-)``."""
    r_pos, r_neg = pair_rewards(config, params, prefs)
    return {
        "loss/bt": bt_loss(r_pos, r_neg),
        "rm/accuracy": accuracy(r_pos, r_neg),
        "rm/ece": calibration_error(r_pos, r_neg),
        "rm/margin": jnp.mean(r_pos - r_neg),
    }


# ----------------------------------------------------------------------------- initialisation


def init_reward_model(key: jax.Array, lm_params: Any, config: RMConfig | lm.LMConfig) -> RMParams:
    """Reward model from an LM: the trunk is ``lm_params`` itself (the same pytree, e.g. an SFT
    checkpoint; different checkpoints give WARM's "Baklava" inits), the head ``w ~ N(0, 1/D)``.
    Fit the head with :func:`linear_probe` before fine-tuning (WARM §3.1)."""
    lm_config = config.lm if isinstance(config, RMConfig) else config
    head = jax.random.normal(key, (lm_config.d_model,)) / math.sqrt(lm_config.d_model)
    check_head(lm_params, head, lm_config)
    return RMParams(trunk=lm_params, head=head)


def linear_probe(
    config: RMConfig, params: RMParams, prefs: Preferences
) -> tuple[RMParams, Metrics]:
    """Fit the head with the trunk frozen (WARM §3.1 "linear probing", Remark 1).

    With fixed features the BT loss is logistic regression on feature differences:
    ``min_w -mean log sigmoid(w^T (h+ - h-)) + l2/2 |w|^2``, solved by ``probe_steps`` full-batch
    Adam steps from ``params.head``. Returns the params with the new head (trunk untouched) and
    ``{"loss/probe", "rm/accuracy"}`` on ``prefs``.
    """
    check_preferences(prefs, config.lm, "linear_probe")
    check_head(params.trunk, params.head, config.lm)
    return _linear_probe(config, params, prefs)


@functools.partial(jax.jit, static_argnames="config")
def _linear_probe(config: RMConfig, params: RMParams, prefs: Preferences):
    lm_config = config.lm
    trunk = jax.lax.stop_gradient(params.trunk)
    delta = features(lm_config, trunk, prefs.chosen, prefs.chosen_mask) - features(
        lm_config, trunk, prefs.rejected, prefs.rejected_mask
    )
    delta = jax.lax.stop_gradient(delta)
    optimizer = optim.adam(config.probe_learning_rate)

    def objective(w):
        return -jnp.mean(jax.nn.log_sigmoid(delta @ w)) + 0.5 * config.probe_l2 * jnp.sum(w * w)

    def step(carry, _):
        w, opt_state = carry
        updates, opt_state = optimizer.update(jax.grad(objective)(w), opt_state)
        return (optax.apply_updates(w, updates), opt_state), None

    w0 = jnp.asarray(params.head, jnp.float32)
    (w, _), _ = jax.lax.scan(step, (w0, optimizer.init(w0)), None, length=config.probe_steps)
    margin = delta @ w
    metrics = {
        "loss/probe": -jnp.mean(jax.nn.log_sigmoid(margin)),
        "rm/accuracy": jnp.mean((margin >= 0).astype(jnp.float32)),
    }
    return params._replace(head=w), metrics


# ----------------------------------------------------------------------------- fine-tuning


class TrainState(NamedTuple):
    params: RMParams
    opt_state: optax.OptState  # clip + scale_by_adam on the raveled parameter vector
    key: jax.Array  # dropout key stream
    learning_rate: jax.Array  # [] float32, in the state so vmap can sweep it
    dropout_rate: jax.Array  # [] float32, idem
    step: jax.Array  # [] int32 updates done


class TrainStep(NamedTuple):
    """``init(params, key, learning_rate=None, dropout_rate=None) -> TrainState``;
    ``loss(params, batch, key=None, dropout_rate=None) -> (scalar, metrics)``;
    ``update(state, batch) -> (state, metrics)``, a ``lax.scan`` body."""

    init: Callable[..., TrainState]
    loss: Callable[..., tuple[jax.Array, Metrics]]
    update: Callable[..., tuple[TrainState, Metrics]]


def make_train_step(config: RMConfig) -> TrainStep:
    """BT fine-tuning of the whole reward model (trunk and head), WARM §3.1 step 2.

    ``update`` differentiates :func:`bt_loss` on a batch of :class:`~purerl.alignment.tasks.
    Preferences` ``[B, T]`` with dropout at ``state.dropout_rate``, clips the global gradient norm,
    applies Adam with step size ``state.learning_rate``. ``init``'s ``learning_rate`` /
    ``dropout_rate`` default to the config and may be traced, e.g.
    ``jax.vmap(step.init, in_axes=(None, 0, 0, 0))(params, keys, lrs, dropouts)``.
    """
    lm_config = config.lm
    # The Adam direction only: the step size lives in the state (so vmap can sweep it).
    optimizer = optim.adam(None, max_grad_norm=config.max_grad_norm)

    def init(
        params: RMParams,
        key: jax.Array,
        learning_rate: ArrayLike | None = None,
        dropout_rate: ArrayLike | None = None,
    ) -> TrainState:
        check_head(params.trunk, params.head, lm_config)
        lr = config.learning_rate if learning_rate is None else learning_rate
        rate = config.dropout if dropout_rate is None else dropout_rate
        validation.non_negative("reward_model.init", learning_rate=lr)
        lm.check_rate(rate)
        return TrainState(
            params=params,
            opt_state=optimizer.init(ravel_pytree(params)[0]),
            key=key,
            learning_rate=jnp.asarray(lr, jnp.float32),
            dropout_rate=jnp.asarray(rate, jnp.float32),
            step=jnp.zeros((), jnp.int32),
        )

    def loss(
        params: RMParams, batch: Preferences, key: jax.Array | None = None, dropout_rate: Any = None
    ) -> tuple[jax.Array, Metrics]:
        r_pos, r_neg = pair_rewards(lm_config, params, batch, key, dropout_rate)
        value = bt_loss(r_pos, r_neg)
        return value, {
            "loss/bt": value,
            "rm/accuracy": accuracy(r_pos, r_neg),
            "rm/margin": jnp.mean(r_pos - r_neg),
        }

    def update(state: TrainState, batch: Preferences) -> tuple[TrainState, Metrics]:
        check_preferences(batch, lm_config, "reward_model.update")
        key, dropout_key = jax.random.split(state.key)
        # Adam on one flat vector: the same arithmetic as leaf by leaf, a much smaller program.
        flat, unravel = ravel_pytree(state.params)
        grads, metrics = jax.grad(
            lambda f: loss(unravel(f), batch, dropout_key, state.dropout_rate), has_aux=True
        )(flat)
        updates, opt_state = optimizer.update(grads, state.opt_state, flat)
        params = unravel(flat - state.learning_rate * updates)
        return state._replace(
            params=params, opt_state=opt_state, key=key, step=state.step + 1
        ), metrics

    return TrainStep(init=init, loss=loss, update=update)


def minibatches(key: jax.Array, prefs: Preferences, batch_size: int, num_steps: int) -> Preferences:
    """``num_steps`` minibatches ``[num_steps, batch_size, ...]`` for ``lax.scan(update, ...)``:
    consecutive epochs of fresh random permutations of the ``N`` pairs (the data order that WARM
    varies across runs, §3.3); ``batch_size <= N``."""
    n = len(np.shape(prefs.chosen)) == 2 and np.shape(prefs.chosen)[0]
    if not n:
        raise ValueError("minibatches: empty preference set (N = 0 pairs)")
    for name, v in (("batch_size", batch_size), ("num_steps", num_steps)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"minibatches: {name} must be a positive int, got {v!r}")
    if batch_size > n:
        raise ValueError(f"minibatches: batch_size={batch_size} > N={n} pairs")
    return _minibatches(key, prefs, int(batch_size), int(num_steps))


@functools.partial(jax.jit, static_argnames=("batch_size", "num_steps"))
def _minibatches(key: jax.Array, prefs: Preferences, batch_size: int, num_steps: int):
    n = prefs.chosen.shape[0]
    epochs = -(-num_steps * batch_size // n)
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, epochs))
    idx = perms.reshape(-1)[: num_steps * batch_size].reshape(num_steps, batch_size)
    return jax.tree.map(lambda x: jnp.asarray(x)[idx], prefs)
