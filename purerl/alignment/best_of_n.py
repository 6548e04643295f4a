"""Best-of-N sampling and its exact distribution (BOND, Sessa et al. 2024, sec. 3).

Best-of-N (BoN): draw ``y_1, ..., y_N ~ pi_ref`` independently and keep the one with the highest
reward ``r``; ties between samples go to the *first* of them (:func:`bon_select`). With the reward
quantiles of ``y`` under the reference policy

    p<(y)  = P_{y' ~ pi_ref}[r(y') <  r(y)],        p<=(y) = P_{y' ~ pi_ref}[r(y') <= r(y)],

the BoN distribution is (BOND Theorem 1, which allows ties and repeated samples)

    pi_BoN(y) = pi_ref(y) * p<=(y)^(N-1) * sum_{i=1}^{N} (p<(y) / p<=(y))^(i-1)
                            \\___ (A) ___/   \\_______________ (B), in [1, N] ______/

Term (B) corrects for ties and for collisions (the same ``y`` drawn twice); when every single
outcome is unlikely (``p< ~= p<=``, e.g. continuous rewards) it is ``N``. The proof: ``y`` is
kept at position ``i`` iff ``y_i = y``, the ``i - 1`` earlier samples are strictly worse and the
``N - i`` later ones are not better, so ``pi_BoN(y) = pi_ref(y) sum_i p<^(i-1) p<=^(N-i)``, the
statement (BOND App. A.1 has index typos -- ``<=`` for ``j > i`` and exponent ``N - i`` -- the
theorem itself is right; tests/alignment/test_best_of_n.py checks it by brute force).

Because ``r`` enters only through quantiles, BoN is invariant to monotone transformations of the
reward. Its KL to the reference is at most ``log N - (N - 1) / N`` (BOND sec. 3, after Beirami
et al. 2024), the x-axis of WARM's BoN plots (WARM sec. 5).

Functions:

* ``argmax_i r(y_i)`` -> :func:`bon_select`
* ``p<=``, ``p<`` exactly, for a tabular (enumerated) reference -> :func:`exact_quantiles`
* ``log (B)`` computed stably -> :func:`log_collision_term`
* ``log pi_BoN(y)`` from ``log pi_ref(y)`` and quantiles (exact or Monte Carlo, BOND sec. 4.1) ->
  :func:`log_bon_prob`
* the whole ``pi_BoN`` of a tabular reference -> :func:`bon_probs`
* ``log N - (N - 1) / N`` -> :func:`kl_bon_ref_bound`
* Best-of-N *sampling* with a language model: ``N`` responses per prompt, keep the best ->
  :func:`sample_best_of_n` (candidates: :func:`sample_candidates`), and what it costs at inference
  time (``N`` sequences per answer where a distilled policy needs 1) -> :func:`inference_cost`
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from purerl.alignment import lm

# Tolerance for "ref_probs sums to 1" when the probabilities are concrete (float32 round-off).
_SUM_TOL = 1e-4


def check_n(owner: str, n: int | ArrayLike, minimum: int = 1) -> None:
    """Raise ``ValueError`` unless ``n`` (a number of samples ``N``) is an int >= ``minimum``; a
    traced value passes unchecked. Shared by :mod:`purerl.alignment.bond`."""
    if isinstance(n, jax.core.Tracer):
        return
    if isinstance(n, (jax.Array, np.ndarray)) and np.ndim(n) == 0:
        n = n.item()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(
            f"{owner}: n (the number of samples N) must be an int >= {minimum}, got {n!r}"
        )


def bon_select(rewards: ArrayLike) -> jax.Array:
    """Index of the Best-of-N sample, ``argmax_i r(y_i)`` over the last axis.

    Ties go to the lowest index (the first sample drawn). This is the tie-breaking that makes
    :func:`bon_probs` exact: position ``i`` wins iff the earlier samples are strictly worse and the
    later ones are not better. Since samples are i.i.d., any fixed positional rule gives the same
    distribution.

    Args:
      rewards: ``[..., N]`` rewards of ``N`` candidate samples per prompt.

    Returns:
      ``[...]`` int32 indices into the last axis.
    """
    shape = tuple(np.shape(rewards))
    if len(shape) < 1 or shape[-1] < 1:
        raise ValueError(f"bon_select: rewards must be [..., N] with N >= 1, got shape {shape}")
    return jnp.argmax(jnp.asarray(rewards), axis=-1).astype(jnp.int32)


def _check_probs(owner: str, ref_probs: ArrayLike, rewards: ArrayLike) -> None:
    sp, sr = tuple(np.shape(ref_probs)), tuple(np.shape(rewards))
    if len(sp) < 1 or sp[-1] < 1:
        raise ValueError(f"{owner}: ref_probs must be [..., K] with K >= 1, got shape {sp}")
    if sr != sp:
        raise ValueError(f"{owner}: rewards has shape {sr}, expected {sp} (the shape of ref_probs)")
    if not isinstance(ref_probs, jax.core.Tracer):
        p = np.asarray(ref_probs, np.float64)
        if np.any(~np.isfinite(p)) or np.any(p < 0):
            raise ValueError(f"{owner}: ref_probs must be finite and >= 0")
        if np.any(np.abs(p.sum(-1) - 1.0) > _SUM_TOL):
            raise ValueError(
                f"{owner}: ref_probs must sum to 1 over the last axis (all K outcomes enumerated), "
                f"got sums {p.sum(-1)}"
            )


def _exact_quantiles_1d(ref_probs: jax.Array, rewards: jax.Array) -> tuple[jax.Array, jax.Array]:
    # Sort once and read both quantiles from the cumulative mass: O(K log K), no [K, K] matrix.
    order = jnp.argsort(rewards)
    sorted_r = rewards[order]
    cum = jnp.concatenate([jnp.zeros((1,), ref_probs.dtype), jnp.cumsum(ref_probs[order])])
    p_le = cum[jnp.searchsorted(sorted_r, rewards, side="right")]
    p_lt = cum[jnp.searchsorted(sorted_r, rewards, side="left")]
    return p_le, p_lt


# The kernels are jitted so that eager calls compile once rather than op by op (inside a caller's
# jit they are inlined).
_exact_quantiles_kernel = jax.jit(jnp.vectorize(_exact_quantiles_1d, signature="(k),(k)->(k),(k)"))


def exact_quantiles(ref_probs: ArrayLike, rewards: ArrayLike) -> tuple[jax.Array, jax.Array]:
    """Exact reward quantiles ``(p<=(y), p<(y))`` of every outcome of an enumerated reference.

    ``p<=(y) = sum_{y': r(y') <= r(y)} pi_ref(y')`` and
    ``p<(y) = sum_{y': r(y') < r(y)} pi_ref(y')`` (BOND sec. 3.1, the quantities of Theorem 1).

    Args:
      ref_probs: ``[..., K]`` probabilities ``pi_ref(y)`` of all ``K`` outcomes (sum to 1).
      rewards: ``[..., K]`` their rewards ``r(y)`` (ties allowed).

    Returns:
      ``(p_le, p_lt)``, each ``[..., K]``.
    """
    _check_probs("exact_quantiles", ref_probs, rewards)
    ref_probs = jnp.asarray(ref_probs, jnp.result_type(ref_probs, jnp.float32))
    return _exact_quantiles_kernel(ref_probs, jnp.asarray(rewards))


def log_collision_term(p_le: ArrayLike, p_lt: ArrayLike, n: int | ArrayLike) -> jax.Array:
    """``log (B) = log sum_{i=1}^{N} (p< / p<=)^(i-1)``, in ``[0, log N]`` (BOND Theorem 1).

    Computed stably with ``t = log p<= - log p< >= 0`` and the geometric sum
    ``sum_{i=0}^{N-1} e^(-i t) = expm1(-N t) / expm1(-t)``, accurate as ``t -> 0`` (then ``N``, the
    no-ties limit) and as ``t -> inf`` (``p< = 0``: then 1): no ``p< / p<=`` division, no
    cancellation.
    Where ``p<= = 0`` the term is set to ``log N`` (``pi_BoN`` is 0 there anyway, through term (A)).

    Args:
      p_le: ``[...]`` ``p<=(y)`` in ``[0, 1]``.
      p_lt: ``[...]`` ``p<(y)`` in ``[0, p<=(y)]``.
      n: the number of samples ``N >= 1`` (int; may be traced).

    Returns:
      ``[...]`` (broadcast of ``p_le`` and ``p_lt``).
    """
    check_n("log_collision_term", n)
    return _log_collision_kernel(p_le, p_lt, n)


@jax.jit
def _log_collision_kernel(p_le: ArrayLike, p_lt: ArrayLike, n: ArrayLike) -> jax.Array:
    p_le = jnp.asarray(p_le, jnp.result_type(p_le, jnp.float32))
    p_lt = jnp.asarray(p_lt, p_le.dtype)
    log_le = jnp.log(jnp.where(p_le > 0, p_le, 1.0))
    log_lt = jnp.where(p_lt > 0, jnp.log(jnp.where(p_lt > 0, p_lt, 1.0)), -jnp.inf)
    t = log_le - log_lt  # +inf where p< = 0
    ties = (p_le > 0) & (t > 0)
    t_safe = jnp.where(ties, t, 1.0)
    geometric = jnp.expm1(-n * t_safe) / jnp.expm1(-t_safe)
    return jnp.where(ties, jnp.log(geometric), jnp.log(jnp.asarray(n, p_le.dtype)))


def log_bon_prob(
    logp_ref: ArrayLike, p_le: ArrayLike, p_lt: ArrayLike, n: int | ArrayLike
) -> jax.Array:
    """Best-of-N log-likelihood from reference log-prob and reward quantiles (BOND Thm. 1, in logs).

        log pi_BoN(y) = log pi_ref(y) + (N-1) log p<=(y) + log sum_{i=1}^{N} (p<(y)/p<=(y))^(i-1)

    With exact quantiles (:func:`exact_quantiles`) this is exact; with Monte Carlo ones
    (:func:`purerl.alignment.bond.quantile_mc`, BOND eq. 10) it is BOND's quantile estimate of the
    BoN log-likelihood, used to evaluate ``KL(pi || pi_BoN)`` (BOND sec. 4.1). Where ``p<= = 0``
    (and ``N >= 2``) the result is ``-inf``.

    Args:
      logp_ref: ``[...]`` ``log pi_ref(y)`` (a sequence log-prob).
      p_le: ``[...]`` ``p<=(y)``.
      p_lt: ``[...]`` ``p<(y)``.
      n: ``N >= 1``.

    Returns:
      ``[...]``.
    """
    check_n("log_bon_prob", n)
    return _log_bon_prob_kernel(logp_ref, p_le, p_lt, n)


@jax.jit
def _log_bon_prob_kernel(
    logp_ref: ArrayLike, p_le: ArrayLike, p_lt: ArrayLike, n: ArrayLike
) -> jax.Array:
    p_le = jnp.asarray(p_le, jnp.result_type(p_le, jnp.float32))
    # xlogy: (N - 1) log p<= with 0 * log 0 = 0, so N = 1 gives pi_ref exactly.
    term_a = jax.scipy.special.xlogy(jnp.asarray(n - 1, p_le.dtype), p_le)
    return jnp.asarray(logp_ref) + term_a + _log_collision_kernel(p_le, p_lt, n)


def bon_probs(ref_probs: ArrayLike, rewards: ArrayLike, n: int | ArrayLike) -> jax.Array:
    """The exact Best-of-N distribution of an enumerated reference (BOND Theorem 1, with ties).

    ``pi_BoN(y) = pi_ref(y) p<=(y)^(N-1) sum_{i=1}^{N} (p<(y)/p<=(y))^(i-1)``, the selection rule
    being :func:`bon_select` (first sample among equal rewards).

    Args:
      ref_probs: ``[..., K]`` ``pi_ref`` over all ``K`` outcomes (sums to 1 over the last axis).
      rewards: ``[..., K]`` rewards of the outcomes; ties allowed.
      n: ``N >= 1``.

    Returns:
      ``[..., K]`` probabilities, summing to 1 over the last axis.
    """
    check_n("bon_probs", n)
    _check_probs("bon_probs", ref_probs, rewards)
    ref_probs = jnp.asarray(ref_probs, jnp.result_type(ref_probs, jnp.float32))
    return _bon_probs_kernel(ref_probs, jnp.asarray(rewards), n)


@jax.jit
def _bon_probs_kernel(ref_probs: jax.Array, rewards: jax.Array, n: ArrayLike) -> jax.Array:
    p_le, p_lt = _exact_quantiles_kernel(ref_probs, rewards)
    log_weight = _log_bon_prob_kernel(jnp.zeros_like(p_le), p_le, p_lt, n)  # log (A) + log (B)
    return ref_probs * jnp.exp(log_weight)


def kl_bon_ref_bound(n: int | ArrayLike) -> jax.Array:
    """``log N - (N - 1) / N``, the upper bound on ``KL(pi_BoN || pi_ref)`` (BOND sec. 3).

    It is attained when every single outcome is unlikely (continuous rewards); with ties or heavy
    outcomes the true KL is below it. WARM (sec. 5, Figs. 6-7) uses it as the KL axis of BoN.

    Args:
      n: ``N >= 1`` (int or an array of them).
    """
    n = jnp.asarray(n, jnp.float32)
    if not isinstance(n, jax.core.Tracer) and bool(jnp.any(n < 1)):
        raise ValueError(f"kl_bon_ref_bound: n must be >= 1, got {n}")
    return jnp.log(n) - (n - 1.0) / n


# --- Best-of-N sampling with a language model -----------------------------------------------------


class InferenceCost(NamedTuple):
    """What one answer costs at inference time (for comparing Best-of-N with a distilled policy).

    Counts per prompt; sampling uses :func:`purerl.alignment.lm.sample` with its KV cache, which runs
    one prefill pass over the prompt and then one one-token decoding pass per new token.

    Attributes:
      sequences: ``N``, the responses sampled per answer (BOND's policy needs 1).
      lm_forward_passes: ``N (1 + max_new_tokens)``: prefill plus decoding passes of the LM.
      tokens_generated: ``N max_new_tokens``: decoding positions (pad included: the batch runs them).
      reward_calls: ``N`` reward evaluations (``0`` for ``N = 1``: nothing needs ranking).
    """

    sequences: int
    lm_forward_passes: int
    tokens_generated: int
    reward_calls: int


def inference_cost(n: int, max_new_tokens: int) -> InferenceCost:
    """The :class:`InferenceCost` of Best-of-``n`` with responses of ``max_new_tokens`` tokens.

    ``inference_cost(1, T)`` is the cost of one sample of a (BOND-distilled) policy, so the ratio of
    the two is the inference saving BOND claims (``N`` times fewer samples, sec. 1 and 3).
    """
    check_n("inference_cost", n)
    if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)):
        raise ValueError(f"inference_cost: max_new_tokens must be an int, got {max_new_tokens!r}")
    n, t = int(n), int(max_new_tokens)
    return InferenceCost(
        sequences=n,
        lm_forward_passes=n * (1 + t),
        tokens_generated=n * t,
        reward_calls=n if n > 1 else 0,
    )


class BestOfNSample(NamedTuple):
    """Best-of-N answers for ``B`` prompts.

    Attributes:
      tokens: ``[B, P + R]`` the chosen sequences (prompt, response, pad), ``lm.sample`` layout.
      mask: ``[B, P + R]`` 1 on the chosen responses' tokens (EOS included).
      reward: ``[B]`` the chosen responses' rewards, ``max_i r(y_i)``.
      rewards: ``[B, N]`` the rewards of all ``N`` candidates, in sampling order.
      index: ``[B]`` int32 position of the chosen candidate (:func:`bon_select`: first among ties).
    """

    tokens: jax.Array
    mask: jax.Array
    reward: jax.Array
    rewards: jax.Array
    index: jax.Array


def sample_candidates(
    lm_config: lm.LMConfig,
    params: Any,
    prompts: ArrayLike,
    key: jax.Array,
    n: int,
    max_new_tokens: int,
    temperature: ArrayLike = 1.0,
    eos_id: int | ArrayLike | None = None,
    pad_id: int | ArrayLike = 0,
    use_cache: bool = True,
) -> tuple[jax.Array, jax.Array]:
    """``N`` i.i.d. responses per prompt in one batched :func:`purerl.alignment.lm.sample` call.

    Row ``b N + i`` of the batch is candidate ``i`` of prompt ``b``, so with ``n = 1`` this is
    exactly ``lm.sample(lm_config, params, prompts, key, ...)``.

    Args:
      lm_config: the :class:`purerl.alignment.lm.LMConfig` of ``params``.
      prompts: ``[B, P]`` int prompts.
      n: ``N >= 1`` candidates per prompt (static).
      max_new_tokens: response length ``R`` (static).
      temperature, eos_id, pad_id, use_cache: passed to :func:`purerl.alignment.lm.sample`.

    Returns:
      ``(tokens [B, N, P + R], mask [B, N, P + R])``.
    """
    check_n("sample_candidates", n)
    shape = tuple(np.shape(prompts))
    if len(shape) != 2:
        raise ValueError(f"sample_candidates: prompts must be [B, P] token ids, got shape {shape}")
    b = shape[0]
    repeated = jnp.repeat(jnp.asarray(prompts, jnp.int32), int(n), axis=0)
    out = lm.sample(
        lm_config,
        params,
        repeated,
        key,
        max_new_tokens,
        temperature,
        None,
        eos_id,
        pad_id,
        use_cache,
    )
    t = out.tokens.shape[-1]
    return out.tokens.reshape(b, int(n), t), out.mask.reshape(b, int(n), t)


def sample_best_of_n(
    lm_config: lm.LMConfig,
    params: Any,
    prompts: ArrayLike,
    key: jax.Array,
    n: int,
    reward_fn: Callable[[jax.Array, jax.Array], jax.Array],
    max_new_tokens: int,
    temperature: ArrayLike = 1.0,
    eos_id: int | ArrayLike | None = None,
    pad_id: int | ArrayLike = 0,
    use_cache: bool = True,
) -> tuple[BestOfNSample, InferenceCost]:
    """Best-of-N sampling: draw ``y_1 .. y_N ~ pi(.|x)``, answer ``y_{argmax_i r(x, y_i)}`` (BOND
    sec. 3; the procedure whose distribution is :func:`bon_probs`).

    Pure and jittable (``n``, ``max_new_tokens`` and ``reward_fn`` are static); all ``B N``
    candidates are sampled in one batch and scored with one ``reward_fn`` call. Ties go to the first
    candidate (:func:`bon_select`).

    Args:
      lm_config: :class:`purerl.alignment.lm.LMConfig` of ``params``.
      params: LM parameters of the sampling policy (``pi_ref`` for the Best-of-N baseline).
      prompts: ``[B, P]`` int prompts.
      key: PRNG key.
      n: ``N >= 1``.
      reward_fn: ``reward_fn(tokens [M, P + R], mask [M, P + R]) -> [M]`` (e.g. the gold reward
        ``tasks.sequence_gold_reward(t, m, task_config)`` or a reward model).
      max_new_tokens: ``R``.
      temperature, eos_id, pad_id, use_cache: passed to :func:`purerl.alignment.lm.sample`.

    Returns:
      ``(BestOfNSample, InferenceCost)``; the cost is :func:`inference_cost` ``(n, max_new_tokens)``.
      At ``n = 1`` ``reward_fn`` is still called, to fill ``reward`` for measurement; the cost
      counts 0 reward calls because serving one sample needs no ranking.
    """
    check_n("sample_best_of_n", n)
    tokens, mask = sample_candidates(
        lm_config, params, prompts, key, n, max_new_tokens, temperature, eos_id, pad_id, use_cache
    )
    b, n_, t = tokens.shape
    rewards = jnp.asarray(reward_fn(tokens.reshape(b * n_, t), mask.reshape(b * n_, t)))
    if rewards.shape != (b * n_,):
        raise ValueError(
            f"sample_best_of_n: reward_fn returned shape {rewards.shape}, expected ({b * n_},) "
            "(one reward per sequence)"
        )
    rewards = rewards.reshape(b, n_)
    index = bon_select(rewards)
    pick = lambda x: jnp.take_along_axis(x, index[:, None, None], axis=1)[:, 0]  # noqa: E731
    chosen = BestOfNSample(
        tokens=pick(tokens),
        mask=pick(mask),
        reward=jnp.take_along_axis(rewards, index[:, None], axis=1)[:, 0],
        rewards=rewards,
        index=index,
    )
    return chosen, inference_cost(n, max_new_tokens)
