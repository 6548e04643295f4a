"""BOND: Best-of-N Distillation, and J-BOND (Sessa, Dadashi, Hussenot, Ferret, Vieillard, Rame,
..., Bachem, 2024): the estimators and losses, on arrays of rewards and log-probabilities.

BOND trains ``pi`` to match ``pi_BoN``, the Best-of-N distribution of a reference (or anchor)
policy (:mod:`purerl.alignment.best_of_n`, Thm. 1). Since
``log pi_BoN = log pi_ref + (N-1) r_BOND``, the pieces are:

* reward quantiles, by Monte Carlo over ``k`` reference samples of the same prompt (eq. 10),
  ``p^<=(y) = (1/k) sum_i 1{r(y_i) <= r(y)}``                              -> :func:`quantile_mc`
* the BOND reward (sec. 3.3): ``pi_BoN`` is the optimum of KL-regularised RL with
  ``r_BOND(y) = log p<=(y) + 1/(N-1) log sum_{i=1}^{N} (p<(y)/p<=(y))^(i-1)`` -> :func:`bond_reward`
  and ``beta_BOND = 1/(N-1)``                                                 -> :func:`beta_bond`;
  in practice term (B) is dropped (sec. 4.2), ``r_BOND ~= log p<=(y)``
                                                                      -> :func:`log_quantile_reward`
* forward KL (eqs. 12-13): ``grad KL(pi_BoN || pi) = -E_{y ~ pi_BoN} grad log pi(y)``, the NLL of
  Best-of-N samples of the reference                                    -> :func:`forward_kl_loss`
* backward KL (eqs. 14-15, App. A.3), REINFORCE with the multiplier under stop-gradient and a
  baseline ("the average return of the other generations in the batch", sec. 4.2):
  ``grad KL(pi || pi_BoN)
  = -(N-1) E_{y ~ pi}[grad log pi(y) (r_BOND(y) - beta_BOND log(pi(y) / pi_ref(y)))]``
                                                                        -> :func:`backward_kl_loss`
* Jeffreys divergence (eq. 11): ``J_beta = (1 - beta) KL(pi_BoN || pi) + beta KL(pi || pi_BoN)``
                                                                           -> :func:`jeffreys_loss`

J-BOND (sec. 5, Algorithm 2): ``n = 2``; per prompt one policy sample ``y`` and two anchor samples
``y'_1, y'_2``; an EMA anchor.

* ``r_J-BOND(y) = -log(16) 1{r(y) < min(r(y'_1), r(y'_2))}`` (eq. 17)       -> :func:`jbond_reward`;
  ``E[r_J-BOND(y)] = -log(16) (1 - p<=(y))^2`` equals ``log p<=(y)`` at ``p<= = 1/2`` (App. A.4)
* the loss, with ``R = r_J-BOND(y) - (log pi(y) - log pi_anchor(y))`` (Alg. 2; the gamma term is the
  score-function gradient of ``gamma KL(pi || pi_anchor)``, eq. 19)          -> :func:`jbond_loss`
  ``L = (1 - beta) NLL(y'_Bo2) - beta sg(R - B) log pi(y)
  + gamma sg(log pi(y) - log pi_anchor(y)) log pi(y)``
* ``theta_anchor <- (1 - eta) theta_anchor + eta theta`` (eq. 18)
  -> :func:`purerl.core.tree.lerp` ``(theta_anchor, theta, eta)`` in :func:`next_anchor`

Conventions (shared with :mod:`purerl.alignment.policy_gradient`): log-probs are per token,
``[..., T]``, with a ``mask`` ``[..., T]`` that is nonzero on response tokens (padding may hold
anything, even ``-inf``); ``log pi(y) = sum_t mask_t logp_t``. Rewards and quantiles are per
sequence, ``[...]``. The REINFORCE baseline averages over the *last* sequence axis: ``[B]`` (one
sample per prompt, BOND's "other generations in the batch") or ``[B, K]`` (``K`` per prompt).

Choices the paper leaves open (numbered on the BOND doc page):

1. Zero counts: with eq. 10 as written ``p^<=(y) = 0`` when ``y`` is worse than all ``k`` samples,
   and ``log p^<=`` is ``-inf``. :func:`quantile_mc` defaults to ``include_self=True``: ``y`` counts
   as one more sample, ``p^<= = (count + 1)/(k + 1)`` and ``p^< = count_</(k + 1)``, always > 0
   (biased by ``(1 - p<=)/(k + 1)``). ``include_self=False`` is eq. 10 exactly (unbiased).
2. Sec. 4.2 writes ``r_BOND(y) = p^<=(y)`` in one place and ``log p^<=(y)`` elsewhere; the
   derivation needs the log, used here.
3. The backward loss is scaled by ``N - 1`` so that its gradient *is* ``grad KL(pi || pi_BoN)``
   (eq. 15) and ``beta`` in :func:`jeffreys_loss` weighs the two KLs as eq. 11 says. Without it (a
   plain policy-gradient loss on ``r_BOND - beta_BOND KL``) the effective mix for ``N > 2`` would
   be ``beta / (beta + (N - 1)(1 - beta))``. For J-BOND (``n = 2``) the two readings agree.
4. Eq. 17 uses a strict ``<`` (App. A.4 writes ``<=`` once): tied samples are not penalised, and
   ``E[r_J-BOND] = -log 16 (1 - p<=)^2`` holds exactly with ties.
5. Signs in Alg. 2 (inconsistent in the paper's pseudocode): :func:`jbond_loss` is *minimised*.
6. Baseline: leave-one-out mean of the multipliers over the last sequence axis (needs >= 2
   there); ``"mean"`` (includes the sample itself, slightly shrinks the gradient) and ``"none"``
   are available.

The algorithm on a language model (bottom of the module; docs/alignment/bond.md lists its choices):

* :class:`BondConfig` (``variant="bond"`` or ``"jbond"``), :class:`BondState`, :class:`BondBatch`;
* :func:`collect`: one policy sample and ``m`` anchor samples per prompt, scored, Best-of-n picked,
  backward reward computed (Alg. 2 lines 2-4);
* :func:`next_anchor`: fixed (BOND), hard copy every ``K`` updates (iterative BOND, sec. 4.3), EMA
  (J-BOND, eq. 18);
* :func:`make` -> ``Algorithm(init, act, loss, update)``, ``update`` a ``lax.scan`` body that draws
  its own prompts;
* :func:`evaluate` / :func:`make_evaluate`: reward, gold reward, log-quantile and KL to ``pi_ref``,
  and MC estimates of both KLs to ``BoN_N(pi_ref)`` through :func:`best_of_n.log_bon_prob`.

Contract (``purerl.alignment.REGISTRY["bond"]``, :class:`purerl.core.types.Algorithm`): BOND
distils a pretrained policy, so ``init(key, sft_params)`` takes the SFT parameters in the ``spec``
slot of :class:`~purerl.core.types.InitFn` (policy, anchor and reference all start there);
``update(state, prompts)`` takes ``[B, P]`` prompts, or ``None`` to draw them from the task.
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

from purerl.alignment import best_of_n, lm, policy_gradient, tasks
from purerl.core import optim, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, Metrics

LOG_16 = math.log(16.0)  # -r_J-BOND of a sample worse than both anchor samples (BOND eq. 17)


def _check_seq_reward(owner: str, name: str, reward: ArrayLike, logp: ArrayLike) -> None:
    expected = tuple(np.shape(logp))[:-1]
    if tuple(np.shape(reward)) != expected:
        raise ValueError(
            f"{owner}: {name} has shape {tuple(np.shape(reward))}, expected {expected} "
            "(one value per sequence: the token log-probs' shape without T)"
        )


def _check_tokens(owner: str, mask: ArrayLike, **logps: ArrayLike) -> None:
    shape = tuple(np.shape(mask))
    if len(shape) < 1:
        raise ValueError(f"{owner}: mask must be [..., T] (per token), got a scalar")
    for name, x in logps.items():
        if tuple(np.shape(x)) != shape:
            raise ValueError(
                f"{owner}: {name} has shape {tuple(np.shape(x))}, expected {shape} "
                "(per-token log-probs [..., T], the shape of mask)"
            )


def _check_weight(owner: str, **values: ArrayLike) -> None:
    for name, v in values.items():
        if np.ndim(v) != 0:
            raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(v)}")


# --- quantiles and rewards ------------------------------------------------------------------------


def quantile_mc(
    r_y: ArrayLike, r_anchor: ArrayLike, *, strict: bool = False, include_self: bool = True
) -> jax.Array:
    """Monte Carlo reward quantile of ``y`` among ``k`` reference samples (BOND eq. 10).

    ``strict=False``: ``p^<=(y) = (1/k) sum_i 1{r(y_i) <= r(y)}``;
    ``strict=True``: ``p^<(y) = (1/k) sum_i 1{r(y_i) < r(y)}`` (for term (B) of Thm. 1).

    ``include_self=True`` (default) counts ``y`` itself as an extra sample, ``(count + 1)/(k + 1)``
    for ``<=`` and ``count/(k + 1)`` for ``<``, so that ``log p^<=`` is finite even when ``y`` is
    worse than every anchor sample (the zero-count problem eq. 10 leaves open). Its mean is
    ``(k p<= + 1)/(k + 1)``. ``include_self=False`` is eq. 10 as written, an unbiased estimate of
    ``p<=(y)`` (of ``p<(y)`` with ``strict``) but possibly 0.

    Args:
      r_y: ``[...]`` rewards of the samples being scored.
      r_anchor: ``[..., k]`` rewards of ``k >= 1`` samples of the reference / anchor policy for the
        same prompts.
      strict: count ``<`` instead of ``<=``.
      include_self: the ``(count + 1)/(k + 1)`` estimator (see above).

    Returns:
      ``[...]`` float32 quantile estimates in ``[0, 1]``.
    """
    sy, sa = tuple(np.shape(r_y)), tuple(np.shape(r_anchor))
    if len(sa) < 1 or sa[:-1] != sy or sa[-1] < 1:
        raise ValueError(
            f"quantile_mc: r_anchor has shape {sa}, expected {(*sy, 'k')} with k >= 1 "
            f"(k anchor rewards for each entry of r_y, shape {sy})"
        )
    return _quantile_kernel(r_y, r_anchor, bool(strict), bool(include_self))


# Jitted so that eager calls compile one kernel per shape (inlined inside a caller's jit).
@functools.partial(jax.jit, static_argnums=(2, 3))
def _quantile_kernel(
    r_y: ArrayLike, r_anchor: ArrayLike, strict: bool, include_self: bool
) -> jax.Array:
    r_y = jnp.asarray(r_y)[..., None]
    r_anchor = jnp.asarray(r_anchor)
    below = r_anchor < r_y if strict else r_anchor <= r_y
    count = jnp.sum(below, axis=-1).astype(jnp.float32)
    k = r_anchor.shape[-1]
    if include_self:
        return (count + (0.0 if strict else 1.0)) / (k + 1.0)
    return count / k


def beta_bond(n: int | ArrayLike) -> jax.Array | float:
    """``beta_BOND = 1 / (N - 1)``, the KL coefficient making ``pi_BoN`` optimal (BOND sec. 3.3).

    Args:
      n: ``N >= 2`` (may be traced).
    """
    best_of_n.check_n("beta_bond", n, minimum=2)
    return 1.0 / (n - 1)


def bond_reward(p_le: ArrayLike, p_lt: ArrayLike, n: int | ArrayLike) -> jax.Array:
    """``r_BOND(y) = log p<=(y) + 1/(N-1) log sum_{i=1}^{N} (p<(y)/p<=(y))^(i-1)`` (BOND sec. 3.3).

    So that ``log pi_BoN(y) = log pi_ref(y) + (N - 1) r_BOND(y)`` (Thm. 1). Term (B) is computed by
    :func:`purerl.alignment.best_of_n.log_collision_term` (stable). ``-inf`` where ``p<= = 0``.

    Args:
      p_le: ``[...]`` ``p<=(y)`` (exact, or :func:`quantile_mc`).
      p_lt: ``[...]`` ``p<(y)`` (exact, or :func:`quantile_mc` with ``strict=True``).
      n: ``N >= 2``.

    Returns:
      ``[...]``.
    """
    beta = beta_bond(n)
    return log_quantile_reward(p_le) + beta * best_of_n.log_collision_term(p_le, p_lt, n)


def log_quantile_reward(p_le: ArrayLike) -> jax.Array:
    """``r_BOND(y) ~= log p<=(y)``: the BOND reward with term (B) dropped (BOND sec. 4.2).

    Where single outcomes are unlikely (``p< ~= p<=``, so term (B) ~= ``N``) it differs from
    :func:`bond_reward` by the constant ``log N / (N - 1)``, which a baseline removes; BOND reports
    that term (B) "does not play a significant role". ``-inf`` where ``p<= = 0``.

    Args:
      p_le: ``[...]`` ``p<=(y)``.
    """
    p_le = jnp.asarray(p_le, jnp.result_type(p_le, jnp.float32))
    return jnp.where(p_le > 0, jnp.log(jnp.where(p_le > 0, p_le, 1.0)), -jnp.inf)


def jbond_reward(r_y: ArrayLike, r_a1: ArrayLike, r_a2: ArrayLike) -> jax.Array:
    """``r_J-BOND(y) = -log(16) 1{r(y) < min(r(y'_1), r(y'_2))}`` (BOND eq. 17, strict ``<``).

    ``y`` is penalised only when it is strictly worse than both anchor samples. With
    ``y'_1, y'_2 ~ pi_anchor``, ``E[r_J-BOND(y)] = -log(16) (1 - p<=(y))^2``, which equals
    ``log p<=(y)`` at ``p<= = 1/2`` (App. A.4).

    Args:
      r_y: ``[...]`` rewards of the policy samples.
      r_a1, r_a2: ``[...]`` rewards of the two anchor samples of the same prompts.

    Returns:
      ``[...]`` float32 rewards in ``{-log 16, 0}``.
    """
    shape = tuple(np.shape(r_y))
    for name, r in (("r_a1", r_a1), ("r_a2", r_a2)):
        if tuple(np.shape(r)) != shape:
            raise ValueError(
                f"jbond_reward: {name} has shape {tuple(np.shape(r))}, expected {shape} "
                "(the shape of r_y: one anchor sample per policy sample)"
            )
    return _jbond_kernel(r_y, r_a1, r_a2)


@jax.jit
def _jbond_kernel(r_y: ArrayLike, r_a1: ArrayLike, r_a2: ArrayLike) -> jax.Array:
    worse = jnp.asarray(r_y) < jnp.minimum(jnp.asarray(r_a1), jnp.asarray(r_a2))
    return jnp.where(worse, -LOG_16, 0.0).astype(jnp.float32)


# --- losses ---------------------------------------------------------------------------------------


def forward_kl_loss(logp_bon: ArrayLike, mask: ArrayLike) -> jax.Array:
    """``-mean_y log pi(y)`` over Best-of-N samples: the forward-KL term (BOND eqs. 12-13).

    With ``y ~ pi_BoN`` (draw ``N`` reference samples, keep :func:`best_of_n.bon_select`), the
    expected gradient is exactly ``grad KL(pi_BoN || pi)``. Sequences are not length-normalised.

    Args:
      logp_bon: ``[..., T]`` policy log-probs of the Best-of-N samples' tokens (differentiable).
      mask: ``[..., T]`` nonzero on response tokens.

    Returns:
      scalar: the mean over sequences of ``-log pi(y)``.
    """
    _check_tokens("forward_kl_loss", mask, logp_bon=logp_bon)
    return -jnp.mean(policy_gradient.sequence_logprob(logp_bon, mask))


def backward_kl_loss(
    logp: ArrayLike,
    logp_ref: ArrayLike,
    mask: ArrayLike,
    reward: ArrayLike,
    n: int | ArrayLike,
    baseline: policy_gradient.BaselineKind = "rloo",
) -> jax.Array:
    """REINFORCE surrogate whose gradient estimates ``grad KL(pi || pi_BoN)`` (BOND eqs. 14-15).

        A(y) = (N - 1) (r_BOND(y) - beta_BOND (log pi(y) - log pi_ref(y)))
             = (N - 1) r_BOND(y) - log pi(y) + log pi_ref(y)        [= log pi_BoN(y) - log pi(y)]
        L = -mean_y sg(A(y) - b(y)) log pi(y)

    With the exact ``r_BOND`` (:func:`bond_reward` of exact quantiles) and ``y ~ pi``, the expected
    gradient is exactly ``grad KL(pi || pi_BoN)`` (see choice 3 in the module docstring for the
    ``N - 1`` factor). BOND's practical version passes :func:`log_quantile_reward` of
    :func:`quantile_mc` estimates. ``pi_ref`` is the anchor whose Best-of-N is distilled.

    Args:
      logp: ``[..., T]`` policy log-probs of the policy samples' tokens (differentiable).
      logp_ref: ``[..., T]`` reference log-probs of the same tokens.
      mask: ``[..., T]`` nonzero on response tokens.
      reward: ``[...]`` ``r_BOND`` estimates of the samples (constants).
      n: ``N >= 2`` of the Best-of-N being distilled.
      baseline: ``"rloo"`` (leave-one-out over the last sequence axis, BOND sec. 4.2), ``"mean"``
        or ``"none"``.

    Returns:
      scalar.
    """
    _check_tokens("backward_kl_loss", mask, logp=logp, logp_ref=logp_ref)
    _check_seq_reward("backward_kl_loss", "reward", reward, logp)
    scale = 1.0 / beta_bond(n)  # N - 1
    seq_logp = policy_gradient.sequence_logprob(logp, mask)
    log_ratio = seq_logp - policy_gradient.sequence_logprob(logp_ref, mask)
    multiplier = jax.lax.stop_gradient(scale * jnp.asarray(reward) - log_ratio)
    return policy_gradient.reinforce_loss(seq_logp, multiplier, baseline)


def jeffreys_loss(forward: ArrayLike, backward: ArrayLike, beta: ArrayLike) -> jax.Array:
    """``(1 - beta) forward + beta backward``, the Jeffreys divergence mix (BOND eq. 11, sec. 4.2).

    ``beta = 0`` is pure forward KL (SFT on Best-of-N samples), ``beta = 1`` pure backward KL; BOND
    uses ``beta = 0.5`` (sec. 4.4 and 6).

    Args:
      forward: scalar, e.g. :func:`forward_kl_loss`.
      backward: scalar, e.g. :func:`backward_kl_loss`.
      beta: scalar in ``[0, 1]`` (may be traced).
    """
    _check_weight("jeffreys_loss", beta=beta, forward=forward, backward=backward)
    validation.in_unit_interval("jeffreys_loss", beta=beta)
    return (1.0 - beta) * jnp.asarray(forward) + beta * jnp.asarray(backward)


def jbond_loss(
    logp: ArrayLike,
    logp_anchor: ArrayLike,
    mask: ArrayLike,
    logp_bo2: ArrayLike,
    mask_bo2: ArrayLike,
    reward: ArrayLike,
    beta: ArrayLike,
    gamma: ArrayLike,
    baseline: policy_gradient.BaselineKind = "rloo",
) -> tuple[jax.Array, Metrics]:
    """The J-BOND objective, minimised (BOND sec. 5, Algorithm 2, eqs. 17-19).

        R = r_J-BOND(y) - (log pi(y) - log pi_anchor(y))              [beta_BOND = 1 for n = 2]
        L = (1 - beta) mean -log pi(y'_Bo2)                           (forward KL to Bo2(anchor))
            - beta mean sg(R - B) log pi(y)                            (backward KL, REINFORCE)
            + gamma mean sg(log pi(y) - log pi_anchor(y)) log pi(y)    (gamma KL(pi || pi_anchor))

    ``y ~ pi`` is the policy sample, ``y'_Bo2`` the better of the two anchor samples
    (:func:`best_of_n.bon_select`), and ``B`` the leave-one-out baseline over the last sequence axis
    ("the average of the other generations in the batch"). In expectation the gradient is
    ``(1 - beta) grad KL(Bo2 || pi) + beta grad[KL(pi || pi_anchor) - E_pi rbar] + gamma grad
    KL(pi || pi_anchor)`` with ``rbar(y) = E[r_J-BOND(y)] = -log 16 (1 - p<=(y))^2``.

    Args:
      logp: ``[..., T]`` policy log-probs of the policy samples' tokens (differentiable).
      logp_anchor: ``[..., T]`` anchor log-probs of the same tokens.
      mask: ``[..., T]`` nonzero on the policy samples' response tokens.
      logp_bo2: ``[..., T2]`` policy log-probs of the tokens of ``y'_Bo2`` (differentiable).
      mask_bo2: ``[..., T2]`` nonzero on ``y'_Bo2``'s response tokens.
      reward: ``[...]`` :func:`jbond_reward` of the policy samples.
      beta: Jeffreys weight in ``[0, 1]`` (BOND sec. 6: 0.5).
      gamma: weight >= 0 of the extra ``KL(pi || pi_anchor)`` term (eq. 19; Fig. 6 sweeps 0 to 2).
      baseline: ``"rloo"``, ``"mean"`` or ``"none"`` for ``B``.

    Returns:
      ``(loss, metrics)``: ``loss/total``, ``loss/forward`` (mean NLL of ``y'_Bo2``),
      ``reward/jbond`` (mean ``r_J-BOND``), ``reward/regularized`` (mean ``R``), ``kl/anchor`` (mean
      ``log pi(y) - log pi_anchor(y)``, the k1 estimate of ``KL(pi || pi_anchor)``).
    """
    _check_tokens("jbond_loss", mask, logp=logp, logp_anchor=logp_anchor)
    _check_tokens("jbond_loss", mask_bo2, logp_bo2=logp_bo2)
    _check_seq_reward("jbond_loss", "reward", reward, logp)
    if tuple(np.shape(logp_bo2))[:-1] != tuple(np.shape(logp))[:-1]:
        raise ValueError(
            f"jbond_loss: logp_bo2 has shape {tuple(np.shape(logp_bo2))}, expected "
            f"{(*tuple(np.shape(logp))[:-1], 'T2')} (one Bo2 anchor sample per policy sample)"
        )
    _check_weight("jbond_loss", beta=beta, gamma=gamma)
    validation.in_unit_interval("jbond_loss", beta=beta)
    validation.non_negative("jbond_loss", gamma=gamma)
    seq_logp = policy_gradient.sequence_logprob(logp, mask)
    log_ratio = jax.lax.stop_gradient(
        seq_logp - policy_gradient.sequence_logprob(logp_anchor, mask)
    )
    regularized = jax.lax.stop_gradient(jnp.asarray(reward)) - log_ratio
    forward = forward_kl_loss(logp_bo2, mask_bo2)
    backward = policy_gradient.reinforce_loss(seq_logp, regularized, baseline)
    anchor_kl = jnp.mean(log_ratio * seq_logp)
    total = (1.0 - beta) * forward + beta * backward + gamma * anchor_kl
    metrics = {
        "loss/total": total,
        "loss/forward": forward,
        "reward/jbond": jnp.mean(reward),
        "reward/regularized": jnp.mean(regularized),
        "kl/anchor": jnp.mean(log_ratio),
    }
    return total, metrics


# --- the algorithm: BOND / iterative BOND / J-BOND on a language model ----------------------------

VARIANTS: tuple[str, ...] = ("bond", "jbond")
ANCHORS: tuple[str, ...] = ("fixed", "hard", "ema")

RewardFn = Callable[[jax.Array, jax.Array], jax.Array]
"""``reward_fn(tokens [M, P + R], mask [M, P + R]) -> [M]``: one reward per full sequence."""


@dataclasses.dataclass(frozen=True)
class BondConfig:
    """BOND (sec. 4), iterative BOND (sec. 4.3) and J-BOND (sec. 5, Alg. 2) on a language model.

    ``variant="bond"``: distil Best-of-``n`` of the anchor with the Jeffreys mix of the forward
    (NLL of a Best-of-``n`` anchor sample) and backward (REINFORCE with ``log p^<=``) terms; the
    anchor is the SFT policy (``anchor="fixed"``, plain BOND) or is copied from the policy every
    ``anchor_period`` steps (``"hard"``, iterative BOND) or follows it by EMA (``"ema"``).
    ``variant="jbond"``: ``n = 2``, one policy sample and two anchor samples per prompt, reward
    eq. 17, EMA anchor (eq. 18) by default, ``gamma KL(pi || pi_anchor)`` (eq. 19).
    """

    variant: str = "bond"  # "bond" (sec. 4) or "jbond" (sec. 5, Alg. 2)
    n: int = 8  # N of Best-of-N (sec. 4.4: N = 8, also 4 and 16); J-BOND requires n = 2
    num_quantile_samples: int = 16  # k anchor samples for p^<= (sec. 4.4 / 5: k = 16 in training)
    beta: float = 0.5  # Jeffreys weight on the backward KL (sec. 4.4 and 6: beta = 0.5)
    gamma: float = 0.0  # weight of gamma KL(pi || pi_anchor) (eq. 19; Fig. 6 sweeps 0, .5, 1, 2)
    anchor: str | None = None  # "fixed" | "hard" | "ema"; None: "fixed" for bond, "ema" for jbond
    anchor_period: int = 1000  # hard-copy period K (sec. 4.4, Fig. 4: every 1000 steps)
    anchor_eta: float = 0.02  # EMA rate eta, weight on the new params (sec. 6, Fig. 7: 0.02)
    batch_size: int = 128  # prompts per update (sec. 6: batch size 128)
    learning_rate: float = 1e-3  # toy-LM scale; the paper's Adam lr is 3e-6 for Gemma (sec. 6)
    warmup_steps: int = 100  # linear warm-up, core.optim (sec. 6: 100 warm-up steps)
    max_grad_norm: float = 1.0  # global-norm clipping (not in the paper; a numerical guard)
    temperature: float = 1.0  # tau > 0 of policy and anchor, sampled and scored (paper: unstated)
    baseline: str = "rloo"  # leave-one-out over the batch (sec. 4.2: "other generations")
    drop_collision_term: bool = True  # r_BOND = log p^<= (sec. 4.2); False keeps term (B)
    use_cache: bool = True  # KV-cache sampler; False: lm.sample's reference path (same tokens,
    # a smaller program: faster to compile, slower to run; for tiny models and tests)

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"BondConfig.variant must be one of {VARIANTS}, got {self.variant!r}")
        if self.anchor is not None and self.anchor not in ANCHORS:
            raise ValueError(
                f"BondConfig.anchor must be None or one of {ANCHORS}, got {self.anchor!r}"
            )
        for name, low in (
            ("n", 2),
            ("num_quantile_samples", 1),
            ("anchor_period", 1),
            ("batch_size", 1),
            ("warmup_steps", 0),
        ):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
                raise ValueError(f"BondConfig.{name} must be an int >= {low}, got {v!r}")
        if self.variant == "jbond" and self.n != 2:
            raise ValueError(f"BondConfig.n must be 2 for variant 'jbond' (Alg. 2), got {self.n}")
        validation.in_unit_interval("BondConfig", beta=self.beta, anchor_eta=self.anchor_eta)
        validation.non_negative("BondConfig", gamma=self.gamma)
        validation.positive(
            "BondConfig",
            temperature=self.temperature,
            learning_rate=self.learning_rate,
            max_grad_norm=self.max_grad_norm,
        )
        validation.one_of("BondConfig.baseline", self.baseline, policy_gradient.BASELINES)
        if self.baseline == "rloo" and self.batch_size < 2:
            raise ValueError(
                f"BondConfig.batch_size must be >= 2 for the leave-one-out baseline, got "
                f"{self.batch_size}"
            )
        for name in ("drop_collision_term", "use_cache"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"BondConfig.{name} must be a bool, got {getattr(self, name)!r}")

    @property
    def anchor_kind(self) -> str:
        """The anchor rule in effect: ``anchor``, or the variant's default."""
        if self.anchor is not None:
            return self.anchor
        return "ema" if self.variant == "jbond" else "fixed"

    @property
    def num_anchor_samples(self) -> int:
        """Anchor samples per prompt: ``n`` Best-of-n candidates + ``k`` quantile samples (BOND), or
        the 2 samples that serve both (J-BOND)."""
        if self.variant == "jbond":
            return 2
        return self.n + self.num_quantile_samples


class BondState(NamedTuple):
    """Everything BOND's update changes (a ``lax.scan`` carry).

    Attributes:
      params: policy parameters ``theta``.
      anchor_params: the anchor whose Best-of-N is distilled (``= ref_params`` for plain BOND).
      ref_params: the SFT policy ``pi_ref`` (fixed; for ``kl/ref``).
      opt_state: Adam state over the raveled ``params``.
      key: PRNG key.
      step: int32 number of updates done.
    """

    params: Any
    anchor_params: Any
    ref_params: Any
    opt_state: optax.OptState
    key: jax.Array
    step: jax.Array


class BondBatch(NamedTuple):
    """One update's samples and rewards (made by :func:`collect`; ``B`` prompts, ``T = P + R``).

    Attributes:
      prompts: ``[B, P]``.
      tokens, mask: ``[B, T]`` policy samples ``y ~ pi`` and their response masks.
      reward: ``[B]`` ``r(y)``.
      bon_tokens, bon_mask: ``[B, T]`` the Best-of-n of the anchor's candidates (``y'_Bo2`` for
        J-BOND): the forward term's target.
      bon_reward: ``[B]`` its reward.
      anchor_rewards: ``[B, m]`` rewards of all anchor samples (BOND: ``n`` candidates then ``k``
        quantile samples; J-BOND: ``y'_1, y'_2``).
      bond_reward: ``[B]`` the backward term's reward: ``log p^<=(y)`` (or ``r_BOND`` with term (B))
        for BOND, ``r_J-BOND(y)`` for J-BOND.
      log_p_le: ``[B]`` ``log p^<=(y)`` of the policy samples among the anchor's quantile samples
        (``(count + 1)/(k + 1)``; J-BOND: ``k = 2``).
    """

    prompts: jax.Array
    tokens: jax.Array
    mask: jax.Array
    reward: jax.Array
    bon_tokens: jax.Array
    bon_mask: jax.Array
    bon_reward: jax.Array
    anchor_rewards: jax.Array
    bond_reward: jax.Array
    log_p_le: jax.Array


def _check_lm_task(lm_config: lm.LMConfig, task_config: tasks.TaskConfig) -> None:
    if not isinstance(lm_config, lm.LMConfig):
        raise ValueError(f"bond: lm_config must be an LMConfig, got {type(lm_config).__name__}")
    if not isinstance(task_config, tasks.TaskConfig):
        raise ValueError(
            f"bond: task_config must be a TaskConfig, got {type(task_config).__name__}"
        )
    if task_config.seq_len > lm_config.max_len:
        raise ValueError(
            f"bond: TaskConfig.seq_len={task_config.seq_len} (prompt + response) exceeds "
            f"LMConfig.max_len={lm_config.max_len}"
        )
    if task_config.vocab_size > lm_config.vocab_size:
        raise ValueError(
            f"bond: TaskConfig.vocab_size={task_config.vocab_size} exceeds "
            f"LMConfig.vocab_size={lm_config.vocab_size}"
        )


def _rewards(reward_fn: RewardFn, tokens: jax.Array, mask: jax.Array) -> jax.Array:
    """``reward_fn`` on ``[..., T]`` sequences, one call, reshaped back to ``[...]``."""
    lead, t = tokens.shape[:-1], tokens.shape[-1]
    m = math.prod(lead)
    r = jnp.asarray(reward_fn(tokens.reshape(m, t), mask.reshape(m, t)), jnp.float32)
    if r.shape != (m,):
        raise ValueError(
            f"bond: reward_fn returned shape {r.shape}, expected ({m},) (one reward per sequence)"
        )
    return r.reshape(lead)


def collect(
    config: BondConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
    params: Any,
    anchor_params: Any,
    prompts: ArrayLike,
    key: jax.Array,
) -> BondBatch:
    """Sample and score one update's data (BOND sec. 4.2 / Alg. 2, lines 2-4).

    Per prompt: one policy sample ``y ~ pi``; ``m`` anchor samples (BOND: ``n`` Best-of-n
    candidates and ``k`` independent quantile samples; J-BOND: ``y'_1, y'_2``, which serve both);
    every sequence is scored with one ``reward_fn`` call. Then the Best-of-n candidate
    (:func:`best_of_n.bon_select`), ``p^<=(y)`` (:func:`quantile_mc`, ``include_self=True``) and the
    backward reward (:func:`log_quantile_reward` / :func:`bond_reward` / :func:`jbond_reward`).

    Args:
      prompts: ``[B, P]`` int prompts (``P = task_config.prompt_len``).
      key: PRNG key (split for the policy and the anchor samples).

    Returns:
      a :class:`BondBatch`.
    """
    _check_lm_task(lm_config, task_config)
    shape = tuple(np.shape(prompts))
    if len(shape) != 2 or shape[1] != task_config.prompt_len:
        raise ValueError(
            f"bond: prompts have shape {shape}, expected [B, prompt_len={task_config.prompt_len}]"
        )
    b, r_len = shape[0], task_config.response_len
    policy_key, anchor_key = jax.random.split(key)
    sample_args = (r_len, config.temperature, tasks.EOS_ID, tasks.PAD_ID, config.use_cache)
    y = lm.sample(
        lm_config,
        params,
        prompts,
        policy_key,
        r_len,
        config.temperature,
        None,
        tasks.EOS_ID,
        tasks.PAD_ID,
        config.use_cache,
    )
    m = config.num_anchor_samples
    a_tokens, a_mask = best_of_n.sample_candidates(
        lm_config, anchor_params, prompts, anchor_key, m, *sample_args
    )
    t = y.tokens.shape[-1]
    all_tokens = jnp.concatenate([y.tokens, a_tokens.reshape(b * m, t)], axis=0)
    all_mask = jnp.concatenate([y.mask, a_mask.reshape(b * m, t)], axis=0)
    all_r = _rewards(reward_fn, all_tokens, all_mask)
    r_y, r_anchor = all_r[:b], all_r[b:].reshape(b, m)
    if config.variant == "jbond":
        r_cand, r_quant = r_anchor, r_anchor
        bond_r = jbond_reward(r_y, r_anchor[:, 0], r_anchor[:, 1])
    else:
        r_cand, r_quant = r_anchor[:, : config.n], r_anchor[:, config.n :]
    p_le = quantile_mc(r_y, r_quant)
    if config.variant == "bond":
        if config.drop_collision_term:
            bond_r = log_quantile_reward(p_le)
        else:
            bond_r = bond_reward(p_le, quantile_mc(r_y, r_quant, strict=True), config.n)
    index = best_of_n.bon_select(r_cand)
    pick = lambda x: jnp.take_along_axis(x, index[:, None, None], axis=1)[:, 0]  # noqa: E731
    return BondBatch(
        prompts=jnp.asarray(prompts, jnp.int32),
        tokens=y.tokens,
        mask=y.mask,
        reward=r_y,
        bon_tokens=pick(a_tokens),
        bon_mask=pick(a_mask),
        bon_reward=jnp.take_along_axis(r_cand, index[:, None], axis=1)[:, 0],
        anchor_rewards=r_anchor,
        bond_reward=jax.lax.stop_gradient(bond_r),
        log_p_le=jnp.log(p_le),
    )


def next_anchor(config: BondConfig, anchor_params: Any, params: Any, step: ArrayLike) -> Any:
    """The anchor after update number ``step`` (1-based; ``params`` are the new policy weights).

    ``"fixed"``: unchanged (plain BOND distils Best-of-N of ``pi_ref``); ``"hard"``: ``params``
    when ``step % anchor_period == 0``, else unchanged (iterative BOND, sec. 4.3, Alg. 1);
    ``"ema"``: ``(1 - eta) anchor + eta params`` with ``eta = anchor_eta`` (J-BOND eq. 18), every
    step: :func:`purerl.core.tree.lerp` (``BondConfig`` checks ``eta`` in ``[0, 1]``); ``eta = 1``
    is the hard copy of iterative BOND (sec. 4.3).
    """
    kind = config.anchor_kind
    if kind == "fixed":
        return anchor_params
    if kind == "hard":
        copy = jnp.asarray(step) % config.anchor_period == 0
        return jax.tree.map(lambda a, p: jnp.where(copy, p, a), anchor_params, params)
    return lerp(anchor_params, params, config.anchor_eta)


def _response_logp(
    lm_config: lm.LMConfig,
    params: Any,
    tokens: jax.Array,
    mask: jax.Array,
    p: int,
    temperature: ArrayLike,
) -> jax.Array:
    """``[N, R]`` per-token log-probs of the response tokens under the tempered policy
    ``softmax(l / tau)``, the distribution :func:`collect` samples from (0 on prompt and pad)."""
    return lm.token_logprobs(lm_config, params, tokens, mask, temperature=temperature)[:, p - 1 :]


def make(
    config: BondConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
) -> Algorithm:
    """BOND / iterative BOND / J-BOND as an :class:`~purerl.core.types.Algorithm`.

    * ``init(key, sft_params) -> BondState``: policy, anchor and reference all start at the SFT
      parameters (the ``spec`` slot of the contract holds them).
    * ``act(state, prompts [B, P], key, deterministic=False) -> (tokens [B, P + R], {"mask"})``:
      samples the policy (greedy when ``deterministic``).
    * ``loss(params, state, batch: BondBatch, key) -> (scalar, metrics)``: BOND's
      ``jeffreys_loss(forward_kl_loss, backward_kl_loss) + gamma KL`` or J-BOND's
      :func:`jbond_loss`, on the samples of :func:`collect`.
    * ``update(state, prompts=None) -> (state, metrics)``, a ``lax.scan`` body: draws
      ``batch_size`` prompts (:func:`tasks.sample_prompts`) unless ``[B, P]`` prompts are given,
      :func:`collect`, one Adam step on ``loss``, then :func:`next_anchor`.

    Args:
      config: :class:`BondConfig`.
      lm_config: architecture of the policy (and of the SFT parameters given to ``init``).
      task_config: prompt / response lengths and the token ids of the task.
      reward_fn: ``reward_fn(tokens [M, P + R], mask [M, P + R]) -> [M]``, jittable (gold reward or
        a reward model).
    """
    if not isinstance(config, BondConfig):
        raise ValueError(f"bond.make: config must be a BondConfig, got {type(config).__name__}")
    _check_lm_task(lm_config, task_config)
    if not callable(reward_fn):
        raise ValueError("bond.make: reward_fn must be callable (tokens, mask) -> [M]")
    p = task_config.prompt_len
    # The warm-up of purerl.core.optim: update k uses lr * min(1, (k + 1) / W), so the first one
    # already moves the policy (the former optax.linear_schedule(0, lr, W) made it a no-op).
    optimizer = optim.adam(
        config.learning_rate,
        warmup_steps=config.warmup_steps,
        max_grad_norm=config.max_grad_norm,
    )

    def init(key: jax.Array, sft_params: Any) -> BondState:
        flat = ravel_pytree(sft_params)[0]
        return BondState(
            params=sft_params,
            anchor_params=sft_params,
            ref_params=sft_params,
            opt_state=optimizer.init(flat),
            key=key,
            step=jnp.zeros((), jnp.int32),
        )

    def act(state: BondState, obs: ArrayLike, key: jax.Array, deterministic: bool = False):
        prompts = jnp.asarray(obs, jnp.int32)
        if prompts.ndim == 1:
            prompts = prompts[None]
        temperature = 0.0 if deterministic else config.temperature
        tokens, mask = lm.sample(
            lm_config,
            state.params,
            prompts,
            key,
            task_config.response_len,
            temperature,
            None,
            tasks.EOS_ID,
            tasks.PAD_ID,
            config.use_cache,
        )
        if jnp.ndim(obs) == 1:
            tokens, mask = tokens[0], mask[0]
        return tokens, {"mask": mask}

    def loss(params: Any, state: BondState, batch: BondBatch, key: jax.Array | None = None):
        del key  # no dropout: the loss is deterministic given the samples
        # Every log-prob is of the tempered distribution softmax(l / tau) that collect samples
        # from (policy, anchor and reference alike), so the REINFORCE term is on-policy.
        tau = config.temperature
        b = batch.tokens.shape[0]
        both = jnp.concatenate([batch.tokens, batch.bon_tokens], axis=0)
        both_mask = jnp.concatenate([batch.mask, batch.bon_mask], axis=0)
        logp_both = _response_logp(lm_config, params, both, both_mask, p, tau)
        logp, logp_bon = logp_both[:b], logp_both[b:]
        mask, mask_bon = batch.mask[:, p:], batch.bon_mask[:, p:]
        sg = jax.lax.stop_gradient
        if config.anchor_kind == "fixed":  # the anchor is the reference: one pass serves both
            logp_anchor = sg(
                _response_logp(lm_config, state.anchor_params, batch.tokens, batch.mask, p, tau)
            )
            logp_ref = logp_anchor
        else:  # one vmapped pass over the stacked (anchor, ref) weights: a smaller program
            stacked = jax.tree.map(
                lambda a, r: jnp.stack([a, r]), state.anchor_params, state.ref_params
            )
            logp_anchor, logp_ref = sg(
                jax.vmap(lambda q: _response_logp(lm_config, q, batch.tokens, batch.mask, p, tau))(
                    stacked
                )
            )
        seq_logp = policy_gradient.sequence_logprob(logp, mask)
        log_ratio_anchor = sg(seq_logp - policy_gradient.sequence_logprob(logp_anchor, mask))
        log_ratio_ref = sg(seq_logp - policy_gradient.sequence_logprob(logp_ref, mask))
        n_bw = 2 if config.variant == "jbond" else config.n
        backward = backward_kl_loss(
            logp, logp_anchor, mask, batch.bond_reward, n_bw, config.baseline
        )
        if config.variant == "jbond":
            total, jm = jbond_loss(
                logp,
                logp_anchor,
                mask,
                logp_bon,
                mask_bon,
                batch.bond_reward,
                config.beta,
                config.gamma,
                config.baseline,
            )
            forward = jm["loss/forward"]
        else:
            forward = forward_kl_loss(logp_bon, mask_bon)
            total = jeffreys_loss(forward, backward, config.beta)
            total = total + config.gamma * jnp.mean(log_ratio_anchor * seq_logp)
        metrics = {
            "loss/total": total,
            "loss/forward": forward,
            "loss/backward": backward,
            "reward/mean": jnp.mean(batch.reward),
            "reward/bon": jnp.mean(batch.bon_reward),
            "reward/anchor": jnp.mean(batch.anchor_rewards),
            "reward/bond": jnp.mean(batch.bond_reward),
            "quantile/log_p_le": jnp.mean(batch.log_p_le),
            "kl/anchor": jnp.mean(log_ratio_anchor),
            "kl/ref": jnp.mean(log_ratio_ref),
            "length/mean": jnp.mean(jnp.sum(mask, axis=-1)),
        }
        return total, metrics

    def update(state: BondState, prompts: ArrayLike | None = None):
        key, prompt_key, sample_key = jax.random.split(state.key, 3)
        if prompts is None:
            prompts = tasks.sample_prompts(prompt_key, task_config, config.batch_size)
        batch = collect(
            config,
            lm_config,
            task_config,
            reward_fn,
            state.params,
            state.anchor_params,
            prompts,
            sample_key,
        )
        flat, unravel = ravel_pytree(state.params)
        grads, metrics = jax.grad(lambda f: loss(unravel(f), state, batch), has_aux=True)(flat)
        updates, opt_state = optimizer.update(grads, state.opt_state, flat)
        params = unravel(optax.apply_updates(flat, updates))
        step = state.step + 1
        anchor = next_anchor(config, state.anchor_params, params, step)
        metrics["optim/grad_norm"] = optax.tree.norm(grads)
        if config.anchor_kind == "hard":
            metrics["anchor/updated"] = (step % config.anchor_period == 0).astype(jnp.float32)
        else:
            metrics["anchor/updated"] = jnp.float32(config.anchor_kind == "ema")
        new_state = BondState(params, anchor, state.ref_params, opt_state, key, step)
        return new_state, metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)


# --- evaluation -----------------------------------------------------------------------------------


def evaluate(
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
    params: Any,
    ref_params: Any,
    prompts: ArrayLike,
    key: jax.Array,
    n: int = 8,
    num_quantile_samples: int = 32,
    temperature: ArrayLike = 1.0,
    use_cache: bool = True,
) -> Metrics:
    """Evaluate a policy against ``pi_ref`` and against ``pi_BoN = BoN_N(pi_ref)`` (BOND sec. 4.4).

    Per prompt: one policy sample ``y ~ pi``; ``N`` reference candidates whose best is
    ``z ~ pi_BoN``; ``k`` independent reference samples for the quantiles (sec. 4.4: ``k = 32`` in
    evaluation). With ``log pi^_BoN(.) =`` :func:`best_of_n.log_bon_prob` ``(log pi_ref(.), p^<=(.),
    p^<(.), N)`` (quantiles by :func:`quantile_mc` with ``include_self=True``, so always finite):

    * ``eval/kl_backward_bon = mean_y [log pi(y) - log pi^_BoN(y)]``, MC estimate of
      ``KL(pi || pi_BoN)``;
    * ``eval/kl_forward_bon = mean_z [log pi^_BoN(z) - log pi(z)]``, MC estimate of
      ``KL(pi_BoN || pi)``;
    * ``eval/kl_bon_ref = mean_z [log pi^_BoN(z) - log pi_ref(z)]`` next to its bound
      ``eval/kl_bon_ref_bound = log N - (N - 1)/N`` (:func:`best_of_n.kl_bon_ref_bound`);
    * ``eval/kl_sft``: ``KL(pi || pi_ref)`` as the analytic per-token sum on the policy samples
      (:func:`policy_gradient.analytic_kl`), lower variance than the sampled log-ratio;
    * ``eval/log_p_le``, ``eval/p_le``: the policy samples' reward quantile among the ``k``
      reference samples (``(count + 1)/(k + 1)``);
    * ``eval/reward``, ``eval/gold`` (``r`` and the task's gold reward of ``y``),
      ``eval/bon_reward``, ``eval/bon_gold`` (the same for ``z``: the Best-of-N baseline, at ``N``
      times the sampling cost), ``eval/length`` (response tokens, EOS included).

    Keys are ``eval/...`` so that :func:`purerl.loops.self_sampling.make_train` can put them next to
    the update's metrics in one row.

    Args:
      params: the evaluated policy; ``ref_params``: ``pi_ref`` (the SFT policy).
      prompts: ``[B, P]``.
      n: ``N >= 1`` of the Best-of-N being compared with (BOND's own for plain BOND).
      num_quantile_samples: ``k``.
      temperature: ``tau > 0``: every policy and reference sample is drawn from, and every log-prob
        and KL is of, the tempered distribution ``softmax(l / tau)`` (the ``pi`` and ``pi_ref``
        being compared).
      use_cache: the sampler's KV cache (:func:`purerl.alignment.lm.sample`).

    Returns:
      flat metrics, scalars.
    """
    _check_lm_task(lm_config, task_config)
    validation.positive("bond.evaluate", temperature=temperature)
    best_of_n.check_n("bond.evaluate", n)
    best_of_n.check_n("bond.evaluate (num_quantile_samples)", num_quantile_samples)
    shape = tuple(np.shape(prompts))
    if len(shape) != 2 or shape[1] != task_config.prompt_len:
        raise ValueError(
            f"bond.evaluate: prompts have shape {shape}, expected [B, {task_config.prompt_len}]"
        )
    b, p, r_len = shape[0], task_config.prompt_len, task_config.response_len
    policy_key, ref_key = jax.random.split(key)
    sample_args = (r_len, temperature, tasks.EOS_ID, tasks.PAD_ID, use_cache)
    y = lm.sample(
        lm_config,
        params,
        prompts,
        policy_key,
        r_len,
        temperature,
        None,
        tasks.EOS_ID,
        tasks.PAD_ID,
        use_cache,
    )
    m = n + num_quantile_samples
    a_tokens, a_mask = best_of_n.sample_candidates(
        lm_config, ref_params, prompts, ref_key, m, *sample_args
    )
    t = y.tokens.shape[-1]
    all_r = _rewards(
        reward_fn,
        jnp.concatenate([y.tokens, a_tokens.reshape(b * m, t)]),
        jnp.concatenate([y.mask, a_mask.reshape(b * m, t)]),
    )
    r_y, r_anchor = all_r[:b], all_r[b:].reshape(b, m)
    r_cand, r_quant = r_anchor[:, :n], r_anchor[:, n:]
    index = best_of_n.bon_select(r_cand)
    z_tokens = jnp.take_along_axis(a_tokens, index[:, None, None], axis=1)[:, 0]
    z_mask = jnp.take_along_axis(a_mask, index[:, None, None], axis=1)[:, 0]
    r_z = jnp.take_along_axis(r_cand, index[:, None], axis=1)[:, 0]

    both = jnp.concatenate([y.tokens, z_tokens])
    both_mask = jnp.concatenate([y.mask, z_mask])
    # Policy and reference scored as the tempered distributions the samples were drawn from.
    logits = policy_gradient.response_logits(lm_config, params, both, p, temperature)
    logits_ref = policy_gradient.response_logits(lm_config, ref_params, both, p, temperature)
    resp, resp_mask = both[:, p:], both_mask[:, p:]

    def seq_logp(lg):
        lp = jnp.take_along_axis(jax.nn.log_softmax(lg, -1), resp[..., None], -1)[..., 0]
        return policy_gradient.sequence_logprob(lp, resp_mask)

    logp, logp_ref = seq_logp(logits), seq_logp(logits_ref)
    kl_ref = policy_gradient.sequence_kl(
        policy_gradient.analytic_kl(logits[:b], logits_ref[:b], resp_mask[:b]), resp_mask[:b]
    )
    r_both = jnp.concatenate([r_y, r_z])
    r_quant2 = jnp.concatenate([r_quant, r_quant])
    p_le = quantile_mc(r_both, r_quant2)
    p_lt = quantile_mc(r_both, r_quant2, strict=True)
    log_bon = best_of_n.log_bon_prob(logp_ref, p_le, p_lt, n)
    gold = tasks.sequence_gold_reward(both, both_mask, task_config)
    return {
        "eval/reward": jnp.mean(r_y),
        "eval/gold": jnp.mean(gold[:b]),
        "eval/bon_reward": jnp.mean(r_z),
        "eval/bon_gold": jnp.mean(gold[b:]),
        "eval/log_p_le": jnp.mean(jnp.log(p_le[:b])),
        "eval/p_le": jnp.mean(p_le[:b]),
        "eval/kl_sft": jnp.mean(kl_ref),
        "eval/kl_backward_bon": jnp.mean(logp[:b] - log_bon[:b]),
        "eval/kl_forward_bon": jnp.mean(log_bon[b:] - logp[b:]),
        "eval/kl_bon_ref": jnp.mean(log_bon[b:] - logp_ref[b:]),
        "eval/kl_bon_ref_bound": best_of_n.kl_bon_ref_bound(n),
        "eval/length": jnp.mean(jnp.sum(y.mask[:, p:], axis=-1)),
    }


def make_evaluate(
    config: BondConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: RewardFn,
    num_prompts: int = 128,
    n: int | None = None,
    num_quantile_samples: int = 32,
) -> Callable[[BondState, jax.Array], Metrics]:
    """``evaluate_fn(state, key) -> metrics``: :func:`evaluate` of ``state.params`` against
    ``state.ref_params`` on ``num_prompts`` fresh prompts (:func:`tasks.sample_prompts`), with
    ``N = n`` (default ``config.n``; for J-BOND pass the ``N`` to compare with) and ``k =
    num_quantile_samples`` (sec. 4.4: 32). Pure; jit it or hand it to a training loop."""
    n = config.n if n is None else n
    best_of_n.check_n("bond.make_evaluate", n)
    best_of_n.check_n("bond.make_evaluate (num_prompts)", num_prompts)

    def evaluate_fn(state: BondState, key: jax.Array) -> Metrics:
        prompt_key, eval_key = jax.random.split(key)
        prompts = tasks.sample_prompts(prompt_key, task_config, num_prompts)
        return evaluate(
            lm_config,
            task_config,
            reward_fn,
            state.params,
            state.ref_params,
            prompts,
            eval_key,
            n,
            num_quantile_samples,
            config.temperature,
            config.use_cache,
        )

    return evaluate_fn
