"""Tests for purerl.alignment.best_of_n: BOND Thm. 1 (with ties) against brute-force enumeration."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import best_of_n

# Tabular world: all V^L = 27 sequences of length L = 3 over V = 3 tokens, a random reference
# distribution, and a reward with deliberate ties: r(y) = #{t: y_t = 2} - #{t: y_t = 0} in {-3..3}.
V, L = 3, 3
SEQS = np.array(list(itertools.product(range(V), repeat=L)))  # [27, 3]
K = len(SEQS)
REF = np.random.default_rng(0).dirichlet(np.ones(K))  # float64, sums to 1
REWARD = (SEQS == 2).sum(-1) - (SEQS == 0).sum(-1)
assert len(np.unique(REWARD)) < K  # ties by construction
REF_J, REWARD_J = jnp.asarray(REF, jnp.float32), jnp.asarray(REWARD, jnp.float32)


def _brute_force_bon(ref: np.ndarray, reward: np.ndarray, n: int) -> np.ndarray:
    """pi_BoN by enumerating all K^N tuples of i.i.d. draws, keeping the first argmax."""
    k = len(ref)
    tuples = np.stack(np.meshgrid(*[np.arange(k)] * n, indexing="ij"), -1).reshape(-1, n)
    prob = np.prod(ref[tuples], axis=-1)
    winner = tuples[np.arange(len(tuples)), np.argmax(reward[tuples], axis=-1)]
    return np.bincount(winner, weights=prob, minlength=k)


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_bon_probs_matches_brute_force_with_ties(n):
    expected = _brute_force_bon(REF, REWARD, n)
    got = best_of_n.bon_probs(REF_J, REWARD_J, n)
    np.testing.assert_allclose(np.asarray(got), expected, rtol=0, atol=1e-6)
    assert abs(float(jnp.sum(got)) - 1.0) < 1e-6


def test_bon_select_matches_brute_force_selection():
    # The selection rule the formula assumes is bon_select's: the first of the tied maxima.
    rewards = jnp.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, -1.0, 5.0, 5.0]])
    np.testing.assert_array_equal(np.asarray(best_of_n.bon_select(rewards)), [1, 0, 2])
    assert best_of_n.bon_select(rewards).dtype == jnp.int32
    tuples = np.array(list(itertools.product(range(K), repeat=2)))
    np.testing.assert_array_equal(
        np.asarray(best_of_n.bon_select(jnp.asarray(REWARD[tuples]))),
        np.argmax(REWARD[tuples], axis=-1),
    )


def test_exact_quantiles_by_hand():
    # rewards [1, 0, 1, 2] with probs [.1, .2, .3, .4]:
    # p<=: r=1 -> .1+.2+.3 = .6, r=0 -> .2, r=2 -> 1;  p<: r=1 -> .2, r=0 -> 0, r=2 -> .6
    p_le, p_lt = best_of_n.exact_quantiles(
        jnp.array([0.1, 0.2, 0.3, 0.4]), jnp.array([1.0, 0.0, 1.0, 2.0])
    )
    np.testing.assert_allclose(np.asarray(p_le), [0.6, 0.2, 0.6, 1.0], atol=1e-7)
    np.testing.assert_allclose(np.asarray(p_lt), [0.2, 0.0, 0.2, 0.6], atol=1e-7)


def test_log_collision_term_hand_values_and_limits():
    # p< / p<= = 1/2, N = 3: 1 + 1/2 + 1/4 = 1.75
    np.testing.assert_allclose(
        best_of_n.log_collision_term(0.5, 0.25, 3), math.log(1.75), atol=1e-6
    )
    # no ties (p< = p<=): N;  p< = 0: 1;  p<= = 0: log N by convention (pi_BoN is 0 there anyway)
    np.testing.assert_allclose(best_of_n.log_collision_term(0.3, 0.3, 8), math.log(8), atol=1e-6)
    np.testing.assert_allclose(best_of_n.log_collision_term(0.3, 0.0, 8), 0.0, atol=1e-7)
    np.testing.assert_allclose(best_of_n.log_collision_term(0.0, 0.0, 8), math.log(8), atol=1e-6)
    # stable near p< = p<= and for large N (the naive ratio form 0/0s or overflows)
    near = best_of_n.log_collision_term(jnp.float32(0.5), jnp.float32(0.5 * (1 - 1e-7)), 1000)
    assert np.isfinite(near) and abs(float(near) - math.log(1000)) < 1e-3
    big = best_of_n.log_collision_term(0.9, 0.1, 10_000)
    np.testing.assert_allclose(big, -math.log(1 - 1 / 9), rtol=1e-5)  # geometric series 1/(1-1/9)


def test_log_bon_prob_matches_bon_probs_and_edge_cases():
    n = 4
    p_le, p_lt = best_of_n.exact_quantiles(REF_J, REWARD_J)
    logp = best_of_n.log_bon_prob(jnp.log(REF_J), p_le, p_lt, n)
    np.testing.assert_allclose(np.exp(logp), _brute_force_bon(REF, REWARD, n), atol=1e-6)
    # N = 1 is pi_ref, even where p<= = 0;  p<= = 0 and N >= 2 gives -inf, never NaN
    assert float(best_of_n.log_bon_prob(-1.5, 0.0, 0.0, 1)) == -1.5
    assert float(best_of_n.log_bon_prob(-1.5, 0.0, 0.0, 2)) == -np.inf


def test_bon_probs_batched_and_jit_with_traced_n():
    probs = jnp.stack([REF_J, jnp.full((K,), 1.0 / K)])
    rewards = jnp.stack([REWARD_J] * 2)
    batched = jax.jit(best_of_n.bon_probs)(probs, rewards, jnp.int32(3))  # [2, K], n traced
    for b in range(2):
        np.testing.assert_allclose(
            batched[b], best_of_n.bon_probs(probs[b], rewards[b], 3), atol=1e-6
        )


@pytest.mark.parametrize("n", [2, 4, 8, 16])
def test_kl_bon_ref_below_bound(n):
    bon = best_of_n.bon_probs(REF_J, REWARD_J, n)
    bon = np.asarray(bon, np.float64)
    kl = np.sum(np.where(bon > 0, bon * np.log(np.where(bon > 0, bon, 1) / REF), 0.0))
    assert 0.0 < kl <= float(best_of_n.kl_bon_ref_bound(n)) + 1e-6


def test_kl_bound_hand_value_and_tight_without_ties():
    np.testing.assert_allclose(best_of_n.kl_bon_ref_bound(4), math.log(4) - 0.75, atol=1e-7)
    assert float(best_of_n.kl_bon_ref_bound(1)) == 0.0
    # K equally likely outcomes, distinct rewards: pi_BoN(j) = (j/K)^N - ((j-1)/K)^N and the KL
    # tends to the bound as K grows (BOND sec. 3.2).
    k, n = 4000, 4
    bon = best_of_n.bon_probs(jnp.full((k,), 1.0 / k), jnp.arange(k, dtype=jnp.float32), n)
    j = np.arange(1, k + 1)
    np.testing.assert_allclose(bon, (j / k) ** n - ((j - 1) / k) ** n, atol=1e-6)
    bon = np.asarray(bon, np.float64)
    kl = np.sum(bon * np.log(bon * k))
    assert abs(kl - float(best_of_n.kl_bon_ref_bound(n))) < 5e-3


@pytest.mark.parametrize("n", [0, -1, 2.5, True])
def test_bad_n_raises(n):
    with pytest.raises(ValueError, match="n"):
        best_of_n.bon_probs(REF_J, REWARD_J, n)


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="rewards has shape"):
        best_of_n.bon_probs(REF_J, REWARD_J[:-1], 2)
    with pytest.raises(ValueError, match="sum to 1"):
        best_of_n.bon_probs(REF * 2, REWARD_J, 2)
    with pytest.raises(ValueError, match="N >= 1"):
        best_of_n.bon_select(jnp.float32(1.0))
    with pytest.raises(ValueError, match=">= 1"):
        best_of_n.kl_bon_ref_bound(0)
