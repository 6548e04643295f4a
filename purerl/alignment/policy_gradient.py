"""Sequence-level policy gradients with a KL anchor: REINFORCE / RLOO, k1 / k2 / k3 KL estimators.

Everything here is array math over per-token log-probabilities; nothing knows about a language
model. A batch holds ``B`` prompts with ``K`` sampled responses each and ``T`` response tokens:

* ``logp[b, k, t] = log pi(y_t | x_b, y_<t)`` of the sampled token under the policy,
* ``logp_anchor[b, k, t] = log pi_anchor(y_t | x_b, y_<t)`` under the anchor (SFT or EMA),
* ``mask[b, k, t]``: 1 (or ``True``) on response tokens, 0 on padding. Nonzero means "counts";
  padded positions may hold anything (``-inf``, NaN): they are replaced before any arithmetic, so
  they reach neither values nor gradients,
* ``reward[b, k] = r(x_b, y_bk)``, one scalar per sequence.

KL estimators (J. Schulman, "Approximating KL divergence", 2020), per sampled token ``y ~ pi``,
with ``r = pi_anchor(y) / pi(y)``:

* ``k1 = log pi - log pi_anchor = -log r``: unbiased for ``KL(pi || pi_anchor)``, can be negative,
* ``k2 = 0.5 (log pi - log pi_anchor)^2``: biased (second order in the log-ratio), always >= 0,
* ``k3 = (r - 1) - log r``: unbiased (``E_pi[r - 1] = 0``) and always >= 0,
* ``KL_t = sum_v pi(v) (log pi(v) - log pi_anchor(v))`` from full logits: exact per position, for
  evaluation -> :func:`analytic_kl`.

Summing a per-token estimate over the response estimates the sequence KL
``KL(pi(.|x) || pi_anchor(.|x))`` (chain rule; unbiased for k1, k3 and the analytic sum)
-> :func:`sequence_kl`.

Objective (WARP, Rame et al. 2024, eq. 1):
``max_theta E_x [E_{y~pi}[r(x, y)] - beta KL(pi(.|x) || pi_anchor(.|x))]``.
Two ways to put the KL into the gradient, both supported by :func:`pg_loss`:

* **KL in the reward** (``kl_in_reward=True``; WARP Algorithm 1 line 6, Ziegler et al. 2019 eq. 2,
  RLOO in Ahmadian et al. 2024 "Back to Basics"):
  ``r_beta(y) = r(y) - beta sum_t k_t(y)`` under ``stop_gradient`` -> :func:`kl_regularized_reward`,
  then REINFORCE on ``r_beta``. With k1 the expected gradient is exactly the gradient of the
  objective above (the term ``E_pi[grad log pi] = 0`` that the stop-gradient drops vanishes).
* **KL in the loss** (``kl_in_reward=False``; GRPO, Shao et al. 2024 "DeepSeekMath" sec. 4.1,
  eqs. 3-4, with k3): REINFORCE on the raw reward plus ``beta mean_seq sum_t k_t`` differentiated
  through ``log pi`` -> :func:`kl_loss`. For a single token the expected gradient of the k2 term is
  ``grad KL(pi || pi_anchor)`` and that of the k3 term is ``grad KL(pi_anchor || pi)`` (the
  *forward* KL); for sequences both are partial gradients that treat each position's context as
  fixed (Tang & Munos 2025, "On a few pitfalls in KL divergence gradient estimation for RL"). The k1
  term has zero expected gradient (``E_pi[grad log pi] = 0``), so that combination is refused.

REINFORCE (Williams 1992) over whole sequences -> :func:`reinforce_loss`:
``L = -mean_{b,k} sg(R_bk - b_bk) log pi(y_bk | x_b)`` with ``log pi(y|x) = sum_t logp_t`` and a
baseline ``b``:

* ``"rloo"``: leave-one-out, ``b_bk = (sum_j R_bj - R_bk) / (K - 1)`` (Kool, van Hoof & Welling
  2019, "Buy 4 REINFORCE samples, get a baseline for free!"; RLOO in Ahmadian et al. 2024; BOND 4.2
  and its REINFORCE baseline in Fig. 7) -> :func:`leave_one_out_baseline`. Unbiased; equals
  ``K / (K - 1) (R_bk - mean_j R_bj)``.
* ``"mean"``: the batch mean ``b = mean_{b,k} R_bk`` ("REINFORCE with baseline"; Ahmadian et al.
  2024 use a moving average across steps, this is its stateless one-step form)
  -> :func:`mean_baseline`.
  Each sample's own return is in the mean, so the expected gradient is ``(1 - 1/(B K))`` times the
  true one: same direction, slightly shrunk.
* ``"none"``: ``b = 0``, plain REINFORCE.

Pseudocode (WARP Algorithm 1, inner loop) -> functions: ``y ~ pi(.|x)`` (the caller's sampler);
``r_beta = r - beta log[pi(y|x) / pi_ema(y|x)]`` -> :func:`kl_regularized_reward`;
``Opt(theta, r_beta grad log pi(y|x))`` -> :func:`reinforce_loss` (gradient descent on its value);
the EMA anchor update lives in :mod:`purerl.alignment.warp`.

The Algorithm (bottom of the module) wires this math to the tiny LM of :mod:`purerl.alignment.lm`
and a task of :mod:`purerl.alignment.tasks`: :func:`make` builds REINFORCE / RLOO with a KL penalty
to an anchor that is the fixed SFT model (``anchor="sft"``) or an EMA of the policy
(``anchor="ema"``, WARP stage 1, ``theta_ema <- (1 - mu) theta_ema + mu theta``); one ``update``
draws ``B`` prompts, samples ``K`` responses per prompt at temperature ``tau``, scores them with any
jittable ``reward_fn(tokens, mask) -> [B K]`` and takes one Adam step on :func:`pg_loss`.
:func:`evaluate` / :func:`make_evaluate` report proxy reward, gold reward and the analytic
``KL(pi || pi_sft)``. :mod:`purerl.loops.self_sampling` runs it as one compiled scan.

Contract (``purerl.alignment.REGISTRY["policy_gradient"]``, :class:`purerl.core.types.Algorithm`):
the method starts from a pretrained policy, so ``init(key, init_params, sft_params=None)`` takes
the LM parameters in the ``spec`` slot of :class:`~purerl.core.types.InitFn` (plus the SFT weights
of the KL anchor, default ``init_params``); ``update(state, prompts)`` takes ``[B, P]`` prompts, or
``None`` to draw them from the task with the state's key.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree
from jax.typing import ArrayLike

from purerl.alignment import lm, pretrain, tasks, warm
from purerl.core import optim, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, Metrics

Estimator = Literal["k1", "k2", "k3"]
BaselineKind = Literal["rloo", "mean", "none"]
ESTIMATORS: tuple[str, ...] = ("k1", "k2", "k3")
BASELINES: tuple[str, ...] = ("rloo", "mean", "none")


@dataclasses.dataclass(frozen=True)
class PGConfig:
    """How the KL anchor and the baseline enter the sequence-level policy gradient.

    Attributes:
      beta: KL coefficient ``beta`` >= 0; may be traced (built inside ``vmap`` over values).
      estimator: per-token KL estimator, one of ``"k1"``, ``"k2"``, ``"k3"``.
      baseline: ``"rloo"`` (needs ``K >= 2`` samples per prompt), ``"mean"`` or ``"none"``.
      kl_in_reward: ``True`` subtracts ``beta KL_seq`` from the reward (WARP); ``False`` adds
        ``beta KL`` to the loss (GRPO), which needs ``estimator`` k2 or k3.
    """

    beta: float = 0.1  # WARP sec. 4 default (beta = 0.1)
    estimator: Estimator = "k1"  # WARP Alg. 1: log pi / pi_anchor on the sampled sequence
    baseline: BaselineKind = (
        "rloo"  # WARP leaves it unstated; BOND Fig. 7 REINFORCE uses leave-one-out
    )
    kl_in_reward: bool = True  # WARP Alg. 1, line 6

    def __post_init__(self):
        validation.non_negative("PGConfig", beta=self.beta)
        validation.one_of("PGConfig.estimator", self.estimator, ESTIMATORS)
        validation.one_of("PGConfig.baseline", self.baseline, BASELINES)
        if not isinstance(self.kl_in_reward, bool):
            raise ValueError(f"PGConfig.kl_in_reward must be a bool, got {self.kl_in_reward!r}")
        if not self.kl_in_reward and self.estimator == "k1":
            raise ValueError(_K1_IN_LOSS.format(owner="PGConfig"))


_K1_IN_LOSS = (
    "{owner}: estimator 'k1' as a loss term has zero expected gradient (E_pi[grad log pi] = 0), so "
    "the KL would not be enforced; use 'k2' (reverse-KL gradient) or 'k3' (forward-KL gradient, "
    "GRPO) in the loss, or put k1 in the reward (kl_in_reward=True)"
)


def _check_tokens(owner: str, logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike) -> None:
    shapes = {n: tuple(np.shape(a)) for n, a in (("logp", logp), ("logp_anchor", logp_anchor))}
    shapes["mask"] = tuple(np.shape(mask))
    if len(shapes["logp"]) < 1:
        raise ValueError(f"{owner}: logp must be [..., T] per-token log-probs, got a scalar")
    for name in ("logp_anchor", "mask"):
        if shapes[name] != shapes["logp"]:
            raise ValueError(
                f"{owner}: {name} has shape {shapes[name]}, expected {shapes['logp']} "
                "(the shape of logp, [..., T])"
            )


def _check_beta(owner: str, beta: ArrayLike) -> None:
    if np.ndim(beta) != 0:
        raise ValueError(f"{owner}: beta must be a scalar, got shape {np.shape(beta)}")
    validation.non_negative(owner, beta=beta)


def _valid(mask: ArrayLike) -> jax.Array:
    return jnp.asarray(mask) != 0


def _log_ratio(logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``log pi - log pi_anchor`` on response tokens, exactly 0 on padding (whatever it holds)."""
    valid = _valid(mask)
    # Sanitise the inputs, not the output, so padding's inf/NaN cannot reach gradients either.
    logp = jnp.where(valid, logp, 0.0)
    logp_anchor = jnp.where(valid, logp_anchor, 0.0)
    return logp - logp_anchor


def kl_k1(logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``k1 = log pi(y_t) - log pi_anchor(y_t)`` per sampled token, 0 on padding (Schulman 2020).

    Args:
      logp: ``[..., T]`` policy log-probs of the sampled tokens.
      logp_anchor: ``[..., T]`` anchor log-probs of the same tokens.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.

    Returns:
      ``[..., T]``.
    """
    _check_tokens("kl_k1", logp, logp_anchor, mask)
    return _log_ratio(logp, logp_anchor, mask)


def kl_k2(logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``k2 = 0.5 (log pi(y_t) - log pi_anchor(y_t))^2`` per sampled token, 0 on padding.

    Shapes as in :func:`kl_k1`.
    """
    _check_tokens("kl_k2", logp, logp_anchor, mask)
    return 0.5 * jnp.square(_log_ratio(logp, logp_anchor, mask))


def kl_k3(logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``k3 = (r - 1) - log r``, ``r = pi_anchor(y_t) / pi(y_t)``, per sampled token, 0 on padding.

    Computed as ``expm1(log r) - log r`` (accurate for ``r`` near 1), clamped at 0 against rounding.
    Not clipped: a token the anchor finds far likelier than the policy (``log r`` > ~88 in float32)
    gives ``inf``, which is the honest value. Shapes as in :func:`kl_k1`.
    """
    _check_tokens("kl_k3", logp, logp_anchor, mask)
    log_r = -_log_ratio(logp, logp_anchor, mask)
    return jnp.maximum(jnp.expm1(log_r) - log_r, 0.0)


_ESTIMATOR_FNS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}


def per_token_kl(
    logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike, estimator: Estimator = "k1"
) -> jax.Array:
    """The per-token KL estimate ``k_t`` named by ``estimator`` (``"k1"``, ``"k2"``, ``"k3"``).

    Args:
      logp: ``[..., T]`` policy log-probs of the sampled tokens.
      logp_anchor: ``[..., T]`` anchor log-probs of the same tokens.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.
      estimator: which of Schulman's estimators.

    Returns:
      ``[..., T]``, 0 on padding.
    """
    validation.one_of("per_token_kl: estimator", estimator, ESTIMATORS)
    return _ESTIMATOR_FNS[estimator](logp, logp_anchor, mask)


def analytic_kl(logits: ArrayLike, logits_anchor: ArrayLike, mask: ArrayLike) -> jax.Array:
    """Exact per-position ``KL_t = sum_v pi(v|y_<t) (log pi(v|y_<t) - log pi_anchor(v|y_<t))``.

    For evaluation (lower variance than a sampled estimate: only the context is sampled). Vocabulary
    entries with ``pi(v) = 0`` (``-inf`` logits, e.g. top-k) contribute 0; an entry with
    ``pi(v) > 0 = pi_anchor(v)`` gives ``inf``.

    Args:
      logits: ``[..., T, V]`` policy logits at each response position.
      logits_anchor: ``[..., T, V]`` anchor logits at the same positions.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.

    Returns:
      ``[..., T]``, 0 on padding.
    """
    s, sa, sm = (tuple(np.shape(a)) for a in (logits, logits_anchor, mask))
    if len(s) < 2:
        raise ValueError(f"analytic_kl: logits must be [..., T, V], got shape {s}")
    if sa != s:
        raise ValueError(f"analytic_kl: logits_anchor has shape {sa}, expected {s} (logits' shape)")
    if sm != s[:-1]:
        raise ValueError(f"analytic_kl: mask has shape {sm}, expected {s[:-1]} (logits' [..., T])")
    valid = _valid(mask)[..., None]
    logq_all = jax.nn.log_softmax(jnp.where(valid, logits, 0.0), axis=-1)
    logq_anchor = jax.nn.log_softmax(jnp.where(valid, logits_anchor, 0.0), axis=-1)
    prob = jnp.exp(logq_all)
    support = prob > 0
    # 0 log 0 = 0: keep -inf log-probs of unsupported tokens out of the product (and its gradient).
    diff = jnp.where(support, logq_all, 0.0) - jnp.where(support, logq_anchor, 0.0)
    return jnp.sum(jnp.where(support, prob * diff, 0.0), axis=-1)


def sequence_kl(per_token: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``KL_seq = sum_t mask_t k_t``: a sequence-level KL estimate from per-token ones.

    Args:
      per_token: ``[..., T]`` from :func:`per_token_kl` or :func:`analytic_kl`.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.

    Returns:
      ``[...]``.
    """
    sp, sm = tuple(np.shape(per_token)), tuple(np.shape(mask))
    if len(sp) < 1 or sm != sp:
        raise ValueError(f"sequence_kl: mask has shape {sm}, expected {sp} (per_token's [..., T])")
    return jnp.sum(jnp.where(_valid(mask), per_token, 0.0), axis=-1)


def sequence_logprob(logp: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``log pi(y|x) = sum_t mask_t log pi(y_t|x, y_<t)``; differentiable, padding ignored.

    Args:
      logp: ``[..., T]`` per-token log-probs of the sampled tokens.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.

    Returns:
      ``[...]``.
    """
    sp, sm = tuple(np.shape(logp)), tuple(np.shape(mask))
    if len(sp) < 1 or sm != sp:
        raise ValueError(f"sequence_logprob: mask has shape {sm}, expected {sp} (logp's [..., T])")
    return jnp.sum(jnp.where(_valid(mask), logp, 0.0), axis=-1)


def kl_regularized_reward(
    reward: ArrayLike,
    logp: ArrayLike,
    logp_anchor: ArrayLike,
    mask: ArrayLike,
    beta: ArrayLike,
    estimator: Estimator = "k1",
) -> jax.Array:
    """``r_beta = sg(r - beta sum_t k_t)`` (WARP Algorithm 1, line 6, with ``k = k1``).

    The result is a constant for differentiation: it multiplies ``grad log pi`` in REINFORCE.

    Args:
      reward: ``[...]`` one reward per sequence, e.g. ``[B, K]``.
      logp: ``[..., T]`` policy log-probs of the sampled tokens.
      logp_anchor: ``[..., T]`` anchor log-probs of the same tokens.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.
      beta: scalar KL coefficient >= 0 (may be traced).
      estimator: ``"k1"`` (the paper's), ``"k2"`` or ``"k3"``.

    Returns:
      ``[...]``, the shape of ``reward``.
    """
    _check_tokens("kl_regularized_reward", logp, logp_anchor, mask)
    _check_beta("kl_regularized_reward", beta)
    sr = tuple(np.shape(reward))
    if sr != tuple(np.shape(logp))[:-1]:
        raise ValueError(
            f"kl_regularized_reward: reward has shape {sr}, expected {tuple(np.shape(logp))[:-1]} "
            "(one reward per sequence: logp's shape without T)"
        )
    kl = sequence_kl(per_token_kl(logp, logp_anchor, mask, estimator), mask)
    return jax.lax.stop_gradient(jnp.asarray(reward, kl.dtype) - beta * kl)


def _check_returns(owner: str, returns: ArrayLike) -> tuple[int, ...]:
    shape = tuple(np.shape(returns))
    if len(shape) < 1:
        raise ValueError(f"{owner}: returns must be [B, K] (or [..., K]), got a scalar")
    return shape


def leave_one_out_baseline(returns: ArrayLike) -> jax.Array:
    """RLOO baseline ``b_k = (sum_j R_j - R_k) / (K - 1)``: the mean of the other samples' returns.

    Args:
      returns: ``[B, K]`` (any ``[..., K]``): ``K >= 2`` returns per prompt on the last axis.

    Returns:
      ``[B, K]``, under ``stop_gradient``.
    """
    shape = _check_returns("leave_one_out_baseline", returns)
    k = shape[-1]
    if k < 2:
        raise ValueError(
            f"leave_one_out_baseline: needs K >= 2 samples per prompt, got returns of shape "
            f"{shape} (K = last axis); use baseline 'mean' or 'none' with one sample per prompt"
        )
    returns = jax.lax.stop_gradient(jnp.asarray(returns))
    return (jnp.sum(returns, axis=-1, keepdims=True) - returns) / (k - 1)


def mean_baseline(returns: ArrayLike) -> jax.Array:
    """Batch-mean baseline ``b = mean_{b,k} R_bk``, broadcast to ``returns``' shape, under sg.

    Args:
      returns: ``[B, K]`` (any shape).
    """
    _check_returns("mean_baseline", returns)
    returns = jax.lax.stop_gradient(jnp.asarray(returns))
    return jnp.broadcast_to(jnp.mean(returns), returns.shape)


def compute_baseline(returns: ArrayLike, kind: BaselineKind) -> jax.Array:
    """The baseline named by ``kind``: ``"rloo"``, ``"mean"`` or ``"none"`` (zeros); ``[B, K]``."""
    validation.one_of("compute_baseline: kind", kind, BASELINES)
    if kind == "rloo":
        return leave_one_out_baseline(returns)
    if kind == "mean":
        return mean_baseline(returns)
    _check_returns("compute_baseline", returns)
    return jnp.zeros(np.shape(returns), jnp.result_type(returns, jnp.float32))


def reinforce_loss(
    seq_logp: ArrayLike, returns: ArrayLike, baseline: BaselineKind | ArrayLike = "rloo"
) -> jax.Array:
    """``L = -mean_{b,k} sg(R_bk - b_bk) log pi(y_bk | x_b)``, sequence-level REINFORCE.

    No length normalisation: ``log pi(y|x)`` is the sum over tokens (:func:`sequence_logprob`), so
    the gradient is the score-function estimate of ``grad E[R]``, whatever the lengths.

    Args:
      seq_logp: ``[B, K]`` (any ``[..., K]``) sequence log-probs, differentiable.
      returns: ``[B, K]`` returns (rewards, possibly KL-regularised); treated as constants.
      baseline: ``"rloo"``, ``"mean"``, ``"none"``, or an array broadcastable to ``[B, K]``.

    Returns:
      scalar loss.
    """
    shape = _check_returns("reinforce_loss", returns)
    if tuple(np.shape(seq_logp)) != shape:
        raise ValueError(
            f"reinforce_loss: seq_logp has shape {tuple(np.shape(seq_logp))}, expected {shape} "
            "(the shape of returns, [B, K])"
        )
    if isinstance(baseline, str):
        b = compute_baseline(returns, baseline)
    else:
        try:
            b = jnp.broadcast_to(jnp.asarray(baseline), shape)
        except ValueError:
            raise ValueError(
                f"reinforce_loss: baseline array of shape {np.shape(baseline)} does not broadcast "
                f"to returns' shape {shape}"
            ) from None
    advantage = jax.lax.stop_gradient(jnp.asarray(returns) - b)
    return -jnp.mean(advantage * jnp.asarray(seq_logp))


def kl_loss(
    logp: ArrayLike, logp_anchor: ArrayLike, mask: ArrayLike, estimator: Estimator = "k3"
) -> jax.Array:
    """``mean_seq sum_t k_t``: the KL as a loss term, differentiated through ``logp`` only.

    GRPO's convention (Shao et al. 2024, eqs. 3-4) with ``k3``, except that tokens are summed per
    sequence (the same scale as :func:`kl_regularized_reward`) where GRPO averages them. The anchor
    is under ``stop_gradient``. ``k1`` is refused: its expected gradient is 0.

    Args:
      logp: ``[..., T]`` policy log-probs of the sampled tokens (differentiable).
      logp_anchor: ``[..., T]`` anchor log-probs of the same tokens.
      mask: ``[..., T]`` float or bool, nonzero on response tokens.
      estimator: ``"k2"`` (reverse-KL gradient per position) or ``"k3"`` (forward-KL gradient).

    Returns:
      scalar.
    """
    validation.one_of("kl_loss: estimator", estimator, ESTIMATORS)
    if estimator == "k1":
        raise ValueError(_K1_IN_LOSS.format(owner="kl_loss"))
    per_token = per_token_kl(logp, jax.lax.stop_gradient(logp_anchor), mask, estimator)
    return jnp.mean(sequence_kl(per_token, mask))


def pg_loss(
    config: PGConfig,
    logp: ArrayLike,
    logp_anchor: ArrayLike,
    mask: ArrayLike,
    reward: ArrayLike,
) -> tuple[jax.Array, Metrics]:
    """The KL-anchored REINFORCE objective of ``config``; what a policy update differentiates.

    ``kl_in_reward``: ``L = reinforce_loss(log pi(y|x), r - beta KL_seq, baseline)`` (WARP Alg. 1).
    Otherwise: ``L = reinforce_loss(log pi(y|x), r, baseline) + beta kl_loss(...)`` (GRPO-style).

    Args:
      config: a :class:`PGConfig`.
      logp: ``[B, K, T]`` policy log-probs of the sampled tokens (differentiable).
      logp_anchor: ``[B, K, T]`` anchor log-probs of the same tokens.
      mask: ``[B, K, T]`` float or bool, nonzero on response tokens.
      reward: ``[B, K]`` one reward per sequence.

    Returns:
      ``(loss, metrics)`` with ``loss/total``, ``loss/pg``, ``loss/kl`` (the ``beta``-weighted KL
      term, 0 with ``kl_in_reward``), ``kl/sequence`` (mean sequence KL, ``config.estimator``),
      ``reward/mean`` (raw) and ``reward/regularized`` (mean ``r - beta KL_seq``).
    """
    _check_tokens("pg_loss", logp, logp_anchor, mask)
    if np.ndim(logp) != 3:
        raise ValueError(f"pg_loss: logp must be [B, K, T], got shape {tuple(np.shape(logp))}")
    sr = tuple(np.shape(reward))
    if sr != tuple(np.shape(logp))[:-1]:
        raise ValueError(
            f"pg_loss: reward has shape {sr}, expected {tuple(np.shape(logp))[:-1]} ([B, K])"
        )
    seq_logp = sequence_logprob(logp, mask)
    reward = jax.lax.stop_gradient(jnp.asarray(reward, seq_logp.dtype))
    kl_seq = jax.lax.stop_gradient(
        sequence_kl(per_token_kl(logp, logp_anchor, mask, config.estimator), mask)
    )
    regularized = reward - config.beta * kl_seq
    if config.kl_in_reward:
        loss_pg = reinforce_loss(seq_logp, regularized, config.baseline)
        loss_kl = jnp.zeros((), loss_pg.dtype)
    else:
        loss_pg = reinforce_loss(seq_logp, reward, config.baseline)
        loss_kl = config.beta * kl_loss(logp, logp_anchor, mask, config.estimator)
    total = loss_pg + loss_kl
    metrics = {
        "loss/total": total,
        "loss/pg": loss_pg,
        "loss/kl": loss_kl,
        "kl/sequence": jnp.mean(kl_seq),
        "reward/mean": jnp.mean(reward),
        "reward/regularized": jnp.mean(regularized),
    }
    return total, metrics


# ----------------------------------------------------------------------------- the Algorithm

ANCHORS: tuple[str, ...] = ("sft", "ema")
AnchorKind = Literal["sft", "ema"]
RewardFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclasses.dataclass(frozen=True)
class RLConfig:
    """REINFORCE / RLOO with a KL penalty to an anchor (WARP Algorithm 1, inner loop).

    Numeric fields may be traced (build the config inside a ``vmap`` over values); then they are not
    checked.
    """

    beta: float = 0.1  # WARP sec. 4: beta = 0.1 (the SFT-anchor sweep uses 0 .. 0.1)
    anchor: AnchorKind = "ema"  # WARP stage 1: EMA anchor; "sft" is the classical fixed anchor
    ema_rate: float = 0.01  # WARP mu = 0.01 (sec. 3.1, sec. 4; the 0.1 of sec. 4.1 is a typo)
    estimator: Estimator = "k1"  # WARP Alg. 1 line 6: log pi / pi_anchor of the sampled sequence
    baseline: BaselineKind = "rloo"  # WARP leaves it unstated; leave-one-out (BOND Fig. 7, RLOO)
    kl_in_reward: bool = True  # WARP Alg. 1 line 6: r_beta = r - beta KL
    num_samples: int = 2  # K responses per prompt (RLOO needs K >= 2; notes sec. 6.2: 2-4)
    batch_size: int = 64  # B prompts per update; B K = 128 sequences (WARP sec. 4: batch 128)
    temperature: float = 0.9  # WARP sec. 4: sampling temperature 0.9
    learning_rate: float = 1e-3  # toy scale (WARP: 1e-6 for Gemma 7B)
    warmup_steps: int = 0  # linear lr warm-up updates (WARP: 100 of T = 9k; 0 at toy scale)
    max_grad_norm: float = 1.0  # global-norm clipping (not in the paper; a guard)
    log_kl_sft: bool = True  # also log the sampled KL to the SFT model (one more forward pass)

    def __post_init__(self):
        validation.one_of("RLConfig.anchor", self.anchor, ANCHORS)
        validation.in_unit_interval("RLConfig", ema_rate=self.ema_rate)
        validation.positive(
            "RLConfig",
            temperature=self.temperature,
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
        )
        for name, low in (("num_samples", 1), ("batch_size", 1), ("warmup_steps", 0)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"RLConfig.{name} must be an int >= {low}, got {v!r}")
        for name in ("kl_in_reward", "log_kl_sft"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"RLConfig.{name} must be a bool, got {getattr(self, name)!r}")
        if self.baseline == "rloo" and self.num_samples < 2:
            raise ValueError(
                f"RLConfig: baseline 'rloo' needs num_samples >= 2, got {self.num_samples}; "
                "use baseline 'mean' or 'none' with one sample per prompt"
            )
        self.pg  # noqa: B018 -- validates beta, estimator, baseline, kl_in_reward

    @property
    def pg(self) -> PGConfig:
        """The :class:`PGConfig` of the loss."""
        return PGConfig(self.beta, self.estimator, self.baseline, self.kl_in_reward)


class Rollout(NamedTuple):
    """``K`` sampled responses to each of ``B`` prompts, scored (what :func:`make`'s loss reads)."""

    tokens: jax.Array  # [B, K, P + R] int32: prompt, response, pad
    mask: jax.Array  # [B, K, P + R] float32: 1 on response tokens (EOS included)
    reward: jax.Array  # [B, K] reward_fn of each sequence


class RLState(NamedTuple):
    params: Any  # policy theta
    anchor_params: Any  # theta_anchor: an EMA of theta ("ema") or the SFT weights ("sft")
    sft_params: Any  # theta_sft, for the KL-to-SFT metric (and the anchor when anchor="sft")
    opt_state: optax.OptState  # Adam state of the raveled parameter vector
    key: jax.Array  # training key stream (prompts, sampling)
    step: jax.Array  # int32 updates done


def response_logits(
    lm_config: lm.LMConfig,
    params: Any,
    tokens: ArrayLike,
    prompt_len: int,
    temperature: ArrayLike = 1.0,
) -> jax.Array:
    """Tempered next-token logits ``l(x, y_<t) / tau`` at every response position, ``[N, R, V]``.

    Entry ``t`` is the distribution of response token ``t`` (sequence position ``P + t``), i.e. the
    LM's logits at position ``P + t - 1``. Dividing by the sampling temperature makes the policy
    ``pi = softmax(l / tau)`` exactly the distribution the responses were drawn from.

    Args:
      tokens: ``[N, P + R]`` prompt-then-response sequences.
      prompt_len: ``P`` (static).
      temperature: ``tau > 0`` (may be traced; then unchecked). A greedy policy (``tau = 0``) has
        no log-probs to score, so ``tau <= 0`` is rejected.
    """
    validation.positive("policy_gradient.response_logits", temperature=temperature)
    logits = lm.make_lm(lm_config).apply(params, tokens).logits
    return logits[:, prompt_len - 1 : -1].astype(jnp.float32) / temperature


def _picked(logits: jax.Array, tokens: jax.Array, prompt_len: int) -> jax.Array:
    logp = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(logp, tokens[:, prompt_len:, None], axis=-1)[..., 0]


def response_logprobs(
    lm_config: lm.LMConfig,
    params: Any,
    tokens: ArrayLike,
    mask: ArrayLike,
    prompt_len: int,
    temperature: ArrayLike = 1.0,
) -> jax.Array:
    """``log pi(y_t | x, y_<t)`` of the response tokens under ``softmax(l / tau)``, ``[N, R]``,
    0 where ``mask`` (``[N, P + R]``) is 0."""
    tokens = jnp.asarray(tokens)
    logp = _picked(
        response_logits(lm_config, params, tokens, prompt_len, temperature), tokens, prompt_len
    )
    return jnp.where(jnp.asarray(mask)[:, prompt_len:] != 0, logp, 0.0)


def _sample(lm_config, task_config, params, prompts, key, temperature):
    return lm.sample(
        lm_config,
        params,
        prompts,
        key,
        task_config.response_len,
        temperature=temperature,
        eos_id=tasks.EOS_ID,
        pad_id=tasks.PAD_ID,
    )


def _score(owner: str, reward_fn: RewardFn, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    reward = jnp.asarray(reward_fn(tokens, mask))
    if reward.shape != tokens.shape[:1]:
        raise ValueError(
            f"{owner}: reward_fn(tokens [N, T], mask [N, T]) must return [N] = "
            f"{tokens.shape[:1]} rewards, got shape {reward.shape}"
        )
    return jax.lax.stop_gradient(reward.astype(jnp.float32))


def make(
    config: RLConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
) -> Algorithm:
    """REINFORCE / RLOO on the KL-regularised reward with an SFT or EMA anchor (WARP Alg. 1).

    Per ``update`` (WARP Algorithm 1, lines 4-8):

    1. ``x ~ X``: ``B`` prompts from the task, drawn with the state's key;
    2. ``y ~ pi_theta(.|x)``: ``K`` responses per prompt at temperature ``tau`` (:func:`lm.sample`);
    3. ``r(x, y) = reward_fn(tokens, mask)`` and ``r_beta = r - beta sum_t k_t`` under stop-gradient;
    4. ``theta <- Adam(theta, grad pg_loss)`` (:func:`pg_loss`: ``-mean sg(r_beta - b) log pi``);
    5. ``anchor="ema"``: ``theta_ema <- (1 - mu) theta_ema + mu theta`` with the *new* ``theta``
       (:func:`purerl.core.tree.lerp` ``(theta_ema, theta, mu)``); ``anchor="sft"``: the anchor stays
       ``theta_sft``.

    The policy is the tempered distribution ``pi = softmax(l_theta / tau)`` that the samples come
    from; the anchor's log-probs use the same ``tau``.

    Returned functions:

    * ``init(key, init_params, sft_params=None) -> RLState``: ``theta = theta_ema = init_params``
      (WARP: ``theta_m, theta_m^ema <- theta_init``), ``sft_params`` defaults to ``init_params``;
    * ``act(state, prompts [B, P] or [P], key, deterministic=False) -> (tokens, {"mask": mask})``:
      one response per prompt (greedy when deterministic);
    * ``loss(params, state, rollout: Rollout, key) -> (scalar, metrics)``;
    * ``update(state, batch=None) -> (state, metrics)``: a ``lax.scan`` body; ``batch`` is ``None``
      (prompts drawn from the task) or a ``[B, P]`` array of prompts.

    Args:
      config: an :class:`RLConfig`.
      lm_config: the policy's architecture (``max_len >= task_config.seq_len``).
      task_config: the task whose prompts are drawn and whose ``response_len`` bounds sampling.
      reward_fn: jittable ``reward_fn(tokens [N, P + R], mask [N, P + R]) -> [N]``: a reward model
        closure or the gold reward (``lambda t, m: tasks.sequence_gold_reward(t, m, task_config)``).
    """
    if not isinstance(config, RLConfig):
        raise ValueError(f"policy_gradient.make needs an RLConfig, got {type(config).__name__}")
    pretrain.check_configs("policy_gradient.make", lm_config, task_config)
    if not callable(reward_fn):
        raise ValueError(f"policy_gradient.make: reward_fn must be callable, got {reward_fn!r}")
    b, k, p = config.batch_size, config.num_samples, task_config.prompt_len
    pg_config = config.pg

    optimizer = optim.adam(
        config.learning_rate,
        warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm,
    )

    def init(key: jax.Array, init_params: Any, sft_params: Any = None) -> RLState:
        sft = init_params if sft_params is None else sft_params
        warm.check_compatible(
            "policy_gradient.init", init_params, sft, ("init_params", "sft_params")
        )
        anchor = init_params if config.anchor == "ema" else sft
        opt_state = optimizer.init(ravel_pytree(init_params)[0])
        return RLState(init_params, anchor, sft, opt_state, key, jnp.zeros((), jnp.int32))

    def act(state: RLState, obs: ArrayLike, key: jax.Array, deterministic: bool = False):
        prompts = jnp.asarray(obs, jnp.int32)
        single = prompts.ndim == 1
        prompts = prompts[None] if single else prompts
        temperature = 0.0 if deterministic else config.temperature
        out = _sample(lm_config, task_config, state.params, prompts, key, temperature)
        if single:
            return out.tokens[0], {"mask": out.mask[0]}
        return out.tokens, {"mask": out.mask}

    def rollout(state: RLState, prompts: jax.Array, key: jax.Array) -> Rollout:
        repeated = jnp.repeat(prompts, k, axis=0)  # [B K, P], the K samples of a prompt adjacent
        out = _sample(lm_config, task_config, state.params, repeated, key, config.temperature)
        reward = _score("policy_gradient.update", reward_fn, out.tokens, out.mask)
        n = prompts.shape[0]
        return Rollout(
            out.tokens.reshape(n, k, -1), out.mask.reshape(n, k, -1), reward.reshape(n, k)
        )

    def loss(params: Any, state: RLState, batch: Rollout, key: jax.Array | None = None):
        del key  # no dropout in the policy
        n = batch.tokens.shape[0]
        tokens = batch.tokens.reshape(n * k, -1)
        mask = batch.mask.reshape(n * k, -1)
        resp_mask = mask[:, p:].reshape(n, k, -1)
        logp = response_logprobs(lm_config, params, tokens, mask, p, config.temperature)
        anchor = jax.lax.stop_gradient(state.anchor_params)
        logp_anchor = response_logprobs(lm_config, anchor, tokens, mask, p, config.temperature)
        logp = logp.reshape(n, k, -1)
        logp_anchor = logp_anchor.reshape(n, k, -1)
        total, pg_metrics = pg_loss(pg_config, logp, logp_anchor, resp_mask, batch.reward)
        metrics = {
            "loss/total": pg_metrics["loss/total"],
            "loss/pg": pg_metrics["loss/pg"],
            "loss/kl": pg_metrics["loss/kl"],
            "kl/anchor": pg_metrics["kl/sequence"],
            "reward/mean": pg_metrics["reward/mean"],
            "reward/std": jnp.std(batch.reward),
            "reward/regularized": pg_metrics["reward/regularized"],
            "response/length": jnp.mean(jnp.sum(resp_mask, axis=-1)),
        }
        if config.anchor == "sft":
            kl_sft = sequence_kl(kl_k1(logp, logp_anchor, resp_mask), resp_mask)
            metrics["kl/sft"] = jax.lax.stop_gradient(jnp.mean(kl_sft))
        elif config.log_kl_sft:
            sft = jax.lax.stop_gradient(state.sft_params)
            logp_sft = response_logprobs(lm_config, sft, tokens, mask, p, config.temperature)
            kl_sft = sequence_kl(kl_k1(logp, logp_sft.reshape(n, k, -1), resp_mask), resp_mask)
            metrics["kl/sft"] = jax.lax.stop_gradient(jnp.mean(kl_sft))
        return total, metrics

    def update(state: RLState, batch: ArrayLike | None = None) -> tuple[RLState, Metrics]:
        key, prompt_key, sample_key, loss_key = jax.random.split(state.key, 4)
        if batch is None:
            prompts = tasks.sample_prompts(prompt_key, task_config, b)
        else:
            prompts = jnp.asarray(batch, jnp.int32)
            if prompts.ndim != 2 or prompts.shape[1] != p:
                raise ValueError(
                    f"policy_gradient.update: batch must be None or [B, prompt_len={p}] prompts, "
                    f"got shape {prompts.shape}"
                )
        data = rollout(state, prompts, sample_key)
        # Adam on one flat vector: the same arithmetic as leaf by leaf, a much smaller program.
        flat, unravel = ravel_pytree(state.params)
        grads, metrics = jax.grad(lambda f: loss(unravel(f), state, data, loss_key), has_aux=True)(
            flat
        )
        updates, opt_state = optimizer.update(grads, state.opt_state, flat)
        params = unravel(optax.apply_updates(flat, updates))
        if config.anchor == "ema":
            # RLConfig checks ema_rate in [0, 1]; policy and anchor share one structure (init).
            anchor = lerp(state.anchor_params, params, config.ema_rate)
        else:
            anchor = state.anchor_params
        metrics["optim/grad_norm"] = optax.tree.norm(grads)
        new_state = RLState(params, anchor, state.sft_params, opt_state, key, state.step + 1)
        return new_state, metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)


def evaluate(
    config: RLConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
    params: Any,
    sft_params: Any,
    prompts: ArrayLike,
    key: jax.Array,
) -> Metrics:
    """Proxy reward, gold reward and ``KL(pi || pi_sft)`` of one sampled response per prompt.

    The KL is the analytic per-token sum (notes sec. 4.1 ``kl_seq_estimate``, sec. 6.1 item 7):
    ``KL_seq(x) ~= sum_t sum_v pi(v | x, y_<t) log[pi(v | x, y_<t) / pi_sft(v | x, y_<t)]`` on
    ``y ~ pi`` (only the contexts are sampled), both models at ``config.temperature``.

    Args:
      params: the policy (or any weights to evaluate: a merge, a LITI point).
      sft_params: the reference ``theta_sft``.
      prompts: ``[N, P]`` evaluation prompts.
      key: sampling key.

    Returns:
      ``eval/reward`` (mean ``reward_fn``), ``eval/gold`` (mean gold reward
      :func:`tasks.sequence_gold_reward`), ``eval/kl_sft`` (mean analytic sequence KL),
      ``eval/length`` (mean response tokens, EOS included), ``eval/spurious`` (mean count of the
      task's spurious token, the feature a hacked proxy rewards).
    """
    pretrain.check_configs("policy_gradient.evaluate", lm_config, task_config)
    prompts = jnp.asarray(prompts, jnp.int32)
    p = task_config.prompt_len
    if prompts.ndim != 2 or prompts.shape[1] != p:
        raise ValueError(
            f"policy_gradient.evaluate: prompts must be [N, prompt_len={p}], got {prompts.shape}"
        )
    out = _sample(lm_config, task_config, params, prompts, key, config.temperature)
    tokens, mask = out.tokens, out.mask
    resp_mask = mask[:, p:]
    logits = response_logits(lm_config, params, tokens, p, config.temperature)
    logits_sft = response_logits(lm_config, sft_params, tokens, p, config.temperature)
    kl = sequence_kl(analytic_kl(logits, logits_sft, resp_mask), resp_mask)
    return {
        "eval/reward": jnp.mean(_score("policy_gradient.evaluate", reward_fn, tokens, mask)),
        "eval/gold": jnp.mean(tasks.sequence_gold_reward(tokens, mask, task_config)),
        "eval/kl_sft": jnp.mean(kl),
        "eval/length": jnp.mean(jnp.sum(resp_mask, axis=-1)),
        "eval/spurious": jnp.mean(tasks.spurious_count(tokens[:, p:], resp_mask)),
    }


def make_evaluate(
    config: RLConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
    num_prompts: int = 256,
    prompts: ArrayLike | None = None,
) -> Callable[[RLState, jax.Array], Metrics]:
    """``evaluate_fn(state, key) -> metrics`` for :func:`purerl.loops.self_sampling.make_train`:
    :func:`evaluate` of ``state.params`` against ``state.sft_params``.

    Args:
      num_prompts: fresh prompts drawn from ``key`` at every evaluation (when ``prompts`` is None).
      prompts: a fixed ``[N, P]`` held-out prompt set instead (the same at every evaluation, so
        points along a run are compared on the same prompts; closed over as a constant).
    """
    pretrain.check_configs("policy_gradient.make_evaluate", lm_config, task_config)
    if prompts is None:
        if isinstance(num_prompts, bool) or not isinstance(num_prompts, int) or num_prompts < 1:
            raise ValueError(f"make_evaluate: num_prompts must be an int >= 1, got {num_prompts!r}")
    elif isinstance(prompts, jax.core.Tracer):
        prompts = jnp.asarray(prompts, jnp.int32)  # e.g. a slice taken inside a jitted function
    else:
        prompts = np.asarray(prompts, np.int32)

    def evaluate_fn(state: RLState, key: jax.Array) -> Metrics:
        prompt_key, sample_key = jax.random.split(key)
        if prompts is None:
            batch = tasks.sample_prompts(prompt_key, task_config, num_prompts)
        else:
            batch = prompts
        return evaluate(
            config,
            lm_config,
            task_config,
            reward_fn,
            state.params,
            state.sft_params,
            batch,
            sample_key,
        )

    return evaluate_fn
