"""Tests for purerl.alignment.bond: exact expectations by enumeration on tiny tabular worlds."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import best_of_n, bond

LOG16 = math.log(16.0)


# Autoregressive tabular policies: one logit table per position and prefix,
# pi(y) = prod_t softmax(theta[t][y_<t])[y_t]; every sequence is enumerated.
def _tables(seed: int, v: int, length: int, scale: float = 1.0) -> list[jax.Array]:
    rng = np.random.default_rng(seed)
    return [
        jnp.asarray(scale * rng.standard_normal((v,) * (t + 1)), jnp.float32) for t in range(length)
    ]


def _token_logp(theta: list[jax.Array], seqs: jax.Array) -> jax.Array:
    """[..., L] per-token log-probs of integer sequences ``seqs`` [..., L]."""
    out = []
    for t, table in enumerate(theta):
        logits = table[tuple(seqs[..., j] for j in range(t))]
        logits = jnp.broadcast_to(logits, (*seqs.shape[:-1], table.shape[-1]))
        logp = jax.nn.log_softmax(logits, axis=-1)
        out.append(jnp.take_along_axis(logp, seqs[..., t : t + 1], axis=-1)[..., 0])
    return jnp.stack(out, axis=-1)


# World A: V = 3, L = 3 (27 sequences), tied rewards r = #{y_t = 2} - #{y_t = 0} in {-3..3}.
SEQS = jnp.array(list(itertools.product(range(3), repeat=3)))
K, L = SEQS.shape
REWARD = jnp.asarray((SEQS == 2).sum(-1) - (SEQS == 0).sum(-1), jnp.float32)
THETA_REF = _tables(0, 3, 3)
THETA = _tables(1, 3, 3, scale=0.5)
REF_LOGP = jax.jit(lambda theta: _token_logp(theta, SEQS).sum(-1))(THETA_REF)
REF = jnp.exp(REF_LOGP)

# World B (for J-BOND's six-index enumeration): V = 2, L = 2 (4 sequences),
# r = y_1 + y_2 = [0, 1, 1, 2].
SEQS2 = jnp.array(list(itertools.product(range(2), repeat=2)))
REWARD2 = SEQS2.sum(-1).astype(jnp.float32)


def _seq_logp(theta, seqs=SEQS):
    return _token_logp(theta, seqs).sum(-1)


def _weighted_grads(grads, weights):
    return jax.tree.map(lambda g: jnp.tensordot(weights, g, axes=1), grads)


def _assert_trees_close(a, b, atol=2e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-4, atol=atol)


# --- quantiles ------------------------------------------------------------------------------------


def test_quantile_mc_hand_values():
    r_anchor = jnp.array([0.0, 1.0, 2.0, 3.0])
    # r(y) = 1: two anchors <= 1 (0 and 1), one < 1.
    assert float(bond.quantile_mc(1.0, r_anchor, include_self=False)) == 2 / 4
    assert float(bond.quantile_mc(1.0, r_anchor, strict=True, include_self=False)) == 1 / 4
    # include_self: y is a fifth sample, <= itself and not < itself: (2 + 1)/5, 1/5.
    np.testing.assert_allclose(bond.quantile_mc(1.0, r_anchor), 3 / 5, atol=1e-7)
    np.testing.assert_allclose(bond.quantile_mc(1.0, r_anchor, strict=True), 1 / 5, atol=1e-7)
    # Zero count: Eq. 10 gives 0 (log = -inf); include_self gives 1/(k+1).
    assert float(bond.quantile_mc(-1.0, r_anchor, include_self=False)) == 0.0
    np.testing.assert_allclose(bond.quantile_mc(-1.0, r_anchor), 1 / 5, atol=1e-7)
    batched = bond.quantile_mc(jnp.array([1.0, 3.0]), jnp.stack([r_anchor, r_anchor]))
    np.testing.assert_allclose(batched, [3 / 5, 5 / 5], atol=1e-7)


def test_quantile_mc_expectation_equals_exact_quantile():
    # E over k = 3 i.i.d. anchor samples (all 27^3 tuples enumerated) of the MC estimate.
    k = 3
    tuples = jnp.array(list(itertools.product(range(K), repeat=k)))  # [19683, 3]
    weights = jnp.prod(REF[tuples], axis=-1)

    @jax.jit
    def expectations():
        r_anchor = jnp.broadcast_to(REWARD[tuples], (K, *tuples.shape))  # [27, 19683, 3]
        r_y = jnp.broadcast_to(REWARD[:, None], (K, len(tuples)))
        return [
            bond.quantile_mc(r_y, r_anchor, strict=strict, include_self=include_self) @ weights
            for strict in (False, True)
            for include_self in (False, True)
        ]

    le, le_self, lt, lt_self = expectations()
    p_le, p_lt = best_of_n.exact_quantiles(REF, REWARD)
    np.testing.assert_allclose(le, p_le, atol=1e-6)
    np.testing.assert_allclose(lt, p_lt, atol=1e-6)
    # The zero-count fix is biased, by a known amount: (k p + 1)/(k + 1) and k p_lt/(k + 1).
    np.testing.assert_allclose(le_self, (k * p_le + 1) / (k + 1), atol=1e-6)
    np.testing.assert_allclose(lt_self, k * p_lt / (k + 1), atol=1e-6)


def test_quantile_mc_bad_shapes():
    with pytest.raises(ValueError, match="r_anchor has shape"):
        bond.quantile_mc(jnp.zeros(3), jnp.zeros((4, 5)))
    with pytest.raises(ValueError, match="k >= 1"):
        bond.quantile_mc(jnp.zeros(3), jnp.zeros((3, 0)))


# --- rewards --------------------------------------------------------------------------------------


def test_bond_reward_hand_values_and_bon_identity():
    # p<= = 1/2, p< = 1/4, N = 3: log(1/2) + (1/2) log(1 + 1/2 + 1/4)
    np.testing.assert_allclose(
        bond.bond_reward(0.5, 0.25, 3), math.log(0.5) + 0.5 * math.log(1.75), atol=1e-6
    )
    # no ties: term (B) = log N / (N - 1);  p< = 0: term (B) = 0
    np.testing.assert_allclose(
        bond.bond_reward(0.5, 0.5, 3), math.log(0.5) + 0.5 * math.log(3), atol=1e-6
    )
    np.testing.assert_allclose(bond.bond_reward(0.5, 0.0, 3), math.log(0.5), atol=1e-6)
    np.testing.assert_allclose(bond.log_quantile_reward(0.25), math.log(0.25), atol=1e-7)
    assert float(bond.log_quantile_reward(0.0)) == -np.inf
    # log pi_BoN = log pi_ref + (N - 1) r_BOND (BOND sec. 3.3), on the tied world.
    p_le, p_lt = best_of_n.exact_quantiles(REF, REWARD)
    for n in (2, 5):
        np.testing.assert_allclose(
            best_of_n.log_bon_prob(REF_LOGP, p_le, p_lt, n),
            REF_LOGP + (n - 1) * bond.bond_reward(p_le, p_lt, n),
            atol=1e-5,
        )


def test_beta_bond():
    assert bond.beta_bond(2) == 1.0
    assert bond.beta_bond(8) == pytest.approx(1 / 7)
    for bad in (1, 0, 2.0):
        with pytest.raises(ValueError, match="n"):
            bond.beta_bond(bad)
    with pytest.raises(ValueError, match=">= 2"):
        bond.bond_reward(0.5, 0.5, 1)


def test_jbond_reward_hand_values():
    # strictly worse than both -> -log 16; tied with the worse anchor -> 0 (strict <, eq. 17)
    r = bond.jbond_reward(jnp.array([0.0, 1.0, 1.5, 3.0]), jnp.full(4, 1.0), jnp.full(4, 2.0))
    np.testing.assert_allclose(r, [-LOG16, 0.0, 0.0, 0.0], atol=1e-7)
    with pytest.raises(ValueError, match="r_a2 has shape"):
        bond.jbond_reward(jnp.zeros(3), jnp.zeros(3), jnp.zeros(4))


def test_jbond_reward_expectation_by_enumeration():
    # E_{y'1, y'2 ~ pi_ref}[r_J-BOND(y)] = -log 16 (1 - p<=(y))^2, exactly, with ties.
    pairs = np.array(list(itertools.product(range(K), repeat=2)))
    weights = np.prod(np.asarray(REF, np.float64)[pairs], axis=-1)
    r_y = jnp.broadcast_to(REWARD[:, None], (K, len(pairs)))
    r1 = jnp.broadcast_to(REWARD[pairs[:, 0]], (K, len(pairs)))
    r2 = jnp.broadcast_to(REWARD[pairs[:, 1]], (K, len(pairs)))
    expected_r = np.asarray(bond.jbond_reward(r_y, r1, r2), np.float64) @ weights
    p_le = np.asarray(best_of_n.exact_quantiles(REF, REWARD)[0], np.float64)
    np.testing.assert_allclose(expected_r, -LOG16 * (1 - p_le) ** 2, atol=1e-6)


def test_jbond_reward_calibrated_at_the_median():
    # App. A.4: a reference putting mass 1/2 on reward 0 and 1/2 on reward 1; y with r = 0 has
    # p<= = 1/2 and E[r_J-BOND(y)] = -log 16 * P(both anchors score 1) = -log(16)/4 = log(1/2).
    rewards, probs = jnp.array([0.0, 1.0]), np.array([0.5, 0.5])
    expected = sum(
        probs[i] * probs[j] * float(bond.jbond_reward(0.0, rewards[i], rewards[j]))
        for i in range(2)
        for j in range(2)
    )
    assert abs(expected - math.log(0.5)) < 1e-6


# --- losses: hand values --------------------------------------------------------------------------


def test_forward_kl_loss_hand_value_and_padding():
    # two BoN samples, per-token probs (1/2, 1/2) and (1/4, 1): both log pi = log(1/4); NLL = log 4
    logp = jnp.log(jnp.array([[0.5, 0.5], [0.25, 1.0]]))
    np.testing.assert_allclose(bond.forward_kl_loss(logp, jnp.ones((2, 2))), math.log(4), atol=1e-6)
    padded = jnp.concatenate([logp, jnp.full((2, 1), -jnp.inf)], axis=-1)
    mask = jnp.array([[1, 1, 0], [1, 1, 0]])
    np.testing.assert_allclose(bond.forward_kl_loss(padded, mask), math.log(4), atol=1e-6)
    with pytest.raises(ValueError, match="logp_bon has shape"):
        bond.forward_kl_loss(logp, jnp.ones((2, 3)))


def test_backward_kl_loss_hand_value():
    # T = 1 token per sequence. N = 2 so the multiplier is A = r - (log pi - log pi_ref):
    #   A = [0 - (log 1/2 - log 1/4), -1 - (log 1/4 - log 1/4)] = [-log 2, -1]
    #   leave-one-out b = [-1, -log 2];  A - b = [1 - log 2, log 2 - 1] = [c, -c], c = 0.30685
    #   L = -mean([c log(1/2), -c log(1/4)]) = -(c (-log 2) + c (2 log 2)) / 2 = -c log(2) / 2
    logp = jnp.log(jnp.array([[0.5], [0.25]]))
    logp_ref = jnp.log(jnp.array([[0.25], [0.25]]))
    c = 1 - math.log(2)
    loss = bond.backward_kl_loss(logp, logp_ref, jnp.ones((2, 1)), jnp.array([0.0, -1.0]), 2)
    np.testing.assert_allclose(loss, -c * math.log(2) / 2, atol=1e-6)
    with pytest.raises(ValueError, match="reward has shape"):
        bond.backward_kl_loss(logp, logp_ref, jnp.ones((2, 1)), jnp.zeros(3), 2)
    with pytest.raises(ValueError, match="logp_ref has shape"):
        bond.backward_kl_loss(logp, logp_ref[:1], jnp.ones((2, 1)), jnp.zeros(2), 2)


def test_jeffreys_loss():
    np.testing.assert_allclose(bond.jeffreys_loss(2.0, 4.0, 0.25), 0.75 * 2 + 0.25 * 4)
    with pytest.raises(ValueError, match="beta"):
        bond.jeffreys_loss(2.0, 4.0, 1.5)
    with pytest.raises(ValueError, match="forward must be a scalar"):
        bond.jeffreys_loss(jnp.zeros(2), 4.0, 0.5)


def test_ema_anchor_is_eq_18():
    anchor, params = {"w": jnp.array([0.0, 10.0])}, {"w": jnp.array([10.0, 0.0])}
    ema = lambda eta: bond.BondConfig(variant="jbond", n=2, anchor_eta=eta)  # noqa: E731
    # eta = 0.02: 0.98 * [0, 10] + 0.02 * [10, 0] = [0.2, 9.8]
    np.testing.assert_allclose(bond.next_anchor(ema(0.02), anchor, params, 1)["w"], [0.2, 9.8])
    np.testing.assert_array_equal(bond.next_anchor(ema(1.0), anchor, params, 1)["w"], params["w"])


# --- losses: unbiased gradients against exact KL gradients (enumeration, no sampling) -------------


def test_forward_kl_gradient_unbiased():
    def exact(theta, bon):  # KL(pi_BoN || pi_theta)
        return jnp.sum(bon * (jnp.log(bon) - _seq_logp(theta)))

    def one_sample(theta, y):
        return bond.forward_kl_loss(_token_logp(theta, SEQS[y][None]), jnp.ones((1, L)))

    @jax.jit
    def estimated_and_exact(theta):
        grads = jax.vmap(jax.grad(one_sample), in_axes=(None, 0))(theta, jnp.arange(K))
        out = []
        for n in (2, 4):
            bon = best_of_n.bon_probs(REF, REWARD, n)
            out.append((_weighted_grads(grads, bon), jax.grad(exact)(theta, bon)))
        return out

    for estimated, exact_grad in estimated_and_exact(THETA):
        _assert_trees_close(estimated, exact_grad)


def test_backward_kl_gradient_unbiased():
    # Batches of B = 2 i.i.d. policy samples, all 27^2 of them, exact r_BOND (term (B) kept).
    n = 3
    p_le, p_lt = best_of_n.exact_quantiles(REF, REWARD)
    r_bond = bond.bond_reward(p_le, p_lt, n)
    log_bon = jnp.log(best_of_n.bon_probs(REF, REWARD, n))
    pairs = jnp.array(list(itertools.product(range(K), repeat=2)))

    def exact(theta):  # KL(pi_theta || pi_BoN)
        lp = _seq_logp(theta)
        return jnp.sum(jnp.exp(lp) * (lp - log_bon))

    def batch_loss(theta, idx, baseline):
        seqs = SEQS[idx]
        return bond.backward_kl_loss(
            _token_logp(theta, seqs),
            _token_logp(THETA_REF, seqs),
            jnp.ones((2, L)),
            r_bond[idx],
            n,
            baseline=baseline,
        )

    @jax.jit
    def estimated_and_exact(theta):
        pi = jnp.exp(_seq_logp(theta))
        weights = pi[pairs[:, 0]] * pi[pairs[:, 1]]
        estimated = [
            _weighted_grads(
                jax.vmap(jax.grad(batch_loss), in_axes=(None, 0, None))(theta, pairs, baseline),
                weights,
            )
            for baseline in ("rloo", "none")
        ]
        return estimated, jax.grad(exact)(theta)

    estimated, exact_grad = estimated_and_exact(THETA)
    for est in estimated:
        _assert_trees_close(est, exact_grad)


def test_jbond_gradient_matches_its_exact_objective():
    # World B, batches of B = 2 rows (y, y'1, y'2): all 4^6 combinations enumerated. In expectation
    # the J-BOND gradient is that of
    #   (1 - beta) KL(Bo2(anchor) || pi) + beta (KL(pi || anchor) - E_pi rbar)
    #   + gamma KL(pi || anchor)
    # with rbar(y) = -log 16 (1 - p<=_anchor(y))^2.
    beta, gamma = 0.5, 0.7
    theta, theta_a = _tables(2, 2, 2, scale=0.7), _tables(3, 2, 2, scale=0.7)
    log_pa = jax.jit(lambda t: _seq_logp(t, SEQS2))(theta_a)
    pa = jnp.exp(log_pa)
    rbar = -LOG16 * (1 - best_of_n.exact_quantiles(pa, REWARD2)[0]) ** 2
    bo2 = best_of_n.bon_probs(pa, REWARD2, 2)
    combos = jnp.array(list(itertools.product(range(4), repeat=6)))

    def exact(theta):
        lp = _seq_logp(theta, SEQS2)
        p = jnp.exp(lp)
        kl = jnp.sum(p * (lp - log_pa))
        fkl = jnp.sum(bo2 * (jnp.log(bo2) - lp))
        return (1 - beta) * fkl + beta * (kl - jnp.sum(p * rbar)) + gamma * kl

    def batch_loss(theta, c):
        y, a1, a2 = c[jnp.array([0, 3])], c[jnp.array([1, 4])], c[jnp.array([2, 5])]
        pick = best_of_n.bon_select(jnp.stack([REWARD2[a1], REWARD2[a2]], axis=-1))
        y_bo2 = jnp.where(pick == 0, a1, a2)
        loss, _ = bond.jbond_loss(
            _token_logp(theta, SEQS2[y]),
            _token_logp(theta_a, SEQS2[y]),
            jnp.ones((2, 2)),
            _token_logp(theta, SEQS2[y_bo2]),
            jnp.ones((2, 2)),
            bond.jbond_reward(REWARD2[y], REWARD2[a1], REWARD2[a2]),
            beta,
            gamma,
        )
        return loss

    @jax.jit
    def estimated_and_exact(theta):
        pi = jnp.exp(_seq_logp(theta, SEQS2))
        probs = jnp.stack([pi, pa, pa, pi, pa, pa])  # distribution of each of the six indices
        weights = jnp.prod(probs[jnp.arange(6), combos], axis=-1)
        grads = jax.vmap(jax.grad(batch_loss), in_axes=(None, 0))(theta, combos)
        return _weighted_grads(grads, weights), jax.grad(exact)(theta)

    _assert_trees_close(*estimated_and_exact(theta))


def test_jbond_loss_metrics_padding_and_bad_input():
    logp = jnp.log(jnp.array([[0.5, 0.5], [0.25, 1.0]]))
    logp_a = jnp.log(jnp.array([[0.25, 0.5], [0.25, 1.0]]))
    reward = jnp.array([-LOG16, 0.0])
    args = (logp, logp_a, jnp.ones((2, 2)), logp, jnp.ones((2, 2)), reward, 0.5, 1.0)
    loss, metrics = bond.jbond_loss(*args)
    assert set(metrics) == {
        "loss/total",
        "loss/forward",
        "reward/jbond",
        "reward/regularized",
        "kl/anchor",
    }
    # log pi(y) = log 1/4 for both; log-ratios [log 2, 0]; mean r = -log(16)/2
    np.testing.assert_allclose(metrics["kl/anchor"], math.log(2) / 2, atol=1e-6)
    np.testing.assert_allclose(metrics["loss/forward"], math.log(4), atol=1e-6)
    np.testing.assert_allclose(metrics["reward/regularized"], (-LOG16 - math.log(2)) / 2, atol=1e-6)
    assert float(loss) == pytest.approx(float(metrics["loss/total"]))
    # padding (even -inf) changes neither the value nor the gradient
    pad = lambda x: jnp.concatenate([x, jnp.full((2, 1), -jnp.inf)], axis=-1)
    mask = jnp.array([[1, 1, 0], [1, 1, 0]])

    def value(lp):
        return bond.jbond_loss(lp, logp_a, jnp.ones((2, 2)), lp, jnp.ones((2, 2)), *args[5:])[0]

    def value_padded(lp):
        return bond.jbond_loss(lp, pad(logp_a), mask, lp, mask, *args[5:])[0]

    value_and_grad = jax.jit(jax.value_and_grad(value))
    value_and_grad_padded = jax.jit(jax.value_and_grad(value_padded))
    v_pad, g_pad = value_and_grad_padded(pad(logp))
    v, g = value_and_grad(logp)
    np.testing.assert_allclose(v_pad, v, atol=1e-6)
    np.testing.assert_allclose(g_pad[:, :2], g, atol=1e-6)
    np.testing.assert_array_equal(g_pad[:, 2], 0.0)
    with pytest.raises(ValueError, match="beta"):
        bond.jbond_loss(*args[:6], 1.5, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        bond.jbond_loss(*args[:6], 0.5, -1.0)
    with pytest.raises(ValueError, match="logp_bo2 has shape"):
        bond.jbond_loss(logp, logp_a, jnp.ones((2, 2)), logp[:1], jnp.ones((1, 2)), *args[5:])
