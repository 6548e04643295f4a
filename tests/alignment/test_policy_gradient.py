"""Tests for purerl.alignment.policy_gradient: hand values, exact enumeration on tabular models."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import policy_gradient as pg

# A tiny autoregressive tabular policy: T = 2 tokens from a vocabulary of V = 3.
# pi(y1, y2) = softmax(first)[y1] * softmax(second[y1])[y2]; all V^T = 9 sequences are enumerated.
V, T = 3, 2
SEQS = jnp.array(list(itertools.product(range(V), repeat=T)))  # [9, 2]


def _theta(seed: int, scale: float = 1.0):
    rng = np.random.default_rng(seed)
    return (jnp.asarray(scale * rng.normal(size=V)), jnp.asarray(scale * rng.normal(size=(V, V))))


def _normal(seed: int, *shapes):
    """float32 standard normals (numpy: cheaper than compiling jax.random for each shape)."""
    rng = np.random.default_rng(seed)
    return [jnp.asarray(rng.normal(size=shape), jnp.float32) for shape in shapes]


def _token_logp(theta, seqs):
    """[..., T] per-token log-probs of ``seqs`` [..., T]."""
    first, second = theta
    # one-hot contractions rather than indexing: their gradients compile much faster than scatters
    y1, y2 = jax.nn.one_hot(seqs[..., 0], V), jax.nn.one_hot(seqs[..., 1], V)
    l1 = y1 @ jax.nn.log_softmax(first)
    l2 = jnp.einsum("...i,ij,...j->...", y1, jax.nn.log_softmax(second, axis=-1), y2)
    return jnp.stack([l1, l2], axis=-1)


def _token_logits(theta, seqs):
    """[..., T, V] logits at each position of ``seqs``."""
    first, second = theta
    l1 = jnp.broadcast_to(first, (*seqs.shape[:-1], V))
    return jnp.stack([l1, jax.nn.one_hot(seqs[..., 0], V) @ second], axis=-2)


def _seq_logp(theta):
    return _token_logp(theta, SEQS).sum(-1)  # [9]


def _exact_kl(theta, theta_ref):
    lp, lq = _seq_logp(theta), _seq_logp(theta_ref)
    return jnp.sum(jnp.exp(lp) * (lp - lq))


REWARD = jnp.array([1.0, -0.5, 2.0, 0.3, 0.0, -1.2, 0.7, 1.5, -0.2])  # R(y) for each of SEQS
ONES = jnp.ones((9, T))


# --- KL estimators -----------------------------------------------------------------------------


def test_k1_k2_k3_hand_values():
    logp = jnp.log(jnp.array([[0.5, 0.25, 0.5]]))
    logp_anchor = jnp.log(jnp.array([[0.25, 0.5, 0.5]]))
    mask = jnp.ones((1, 3))
    # token 0: pi = 0.5, pi_anchor = 0.25: log pi - log pi_a = log 2 = 0.693147
    #   k1 = 0.693147; k2 = 0.5 * 0.693147^2 = 0.240227
    #   r = 0.25 / 0.5 = 0.5, k3 = (0.5 - 1) - log 0.5 = 0.193147
    # token 1: pi = 0.25, pi_anchor = 0.5: log-ratio = -log 2
    #   k1 = -0.693147; k2 = 0.240227; r = 2, k3 = (2 - 1) - log 2 = 0.306853
    # token 2: equal probabilities: all three are 0
    ln2 = math.log(2.0)
    np.testing.assert_allclose(pg.kl_k1(logp, logp_anchor, mask), [[ln2, -ln2, 0.0]], atol=1e-6)
    np.testing.assert_allclose(
        pg.kl_k2(logp, logp_anchor, mask), [[0.5 * ln2**2, 0.5 * ln2**2, 0.0]], atol=1e-6
    )
    np.testing.assert_allclose(
        pg.kl_k3(logp, logp_anchor, mask), [[-0.5 + ln2, 1.0 - ln2, 0.0]], atol=1e-6
    )
    for name, fn in (("k1", pg.kl_k1), ("k2", pg.kl_k2), ("k3", pg.kl_k3)):
        np.testing.assert_array_equal(
            pg.per_token_kl(logp, logp_anchor, mask, name), fn(logp, logp_anchor, mask)
        )
    # sequence sums: k1 = ln2 - ln2 + 0 = 0; k3 = -0.5 + ln2 + 1 - ln2 = 0.5
    np.testing.assert_allclose(
        pg.sequence_kl(pg.kl_k1(logp, logp_anchor, mask), mask), [0.0], atol=1e-6
    )
    np.testing.assert_allclose(
        pg.sequence_kl(pg.kl_k3(logp, logp_anchor, mask), mask), [0.5], atol=1e-6
    )


def test_k2_k3_nonnegative():
    logp, logp_anchor = (6.0 * x for x in _normal(0, (64, 16), (64, 16)))
    # include log-ratios so close to 0 that expm1(x) - x is at the edge of float32 rounding
    tiny = jnp.array([[0.0, 1e-8, -1e-8, 1e-6, -1e-6, 3e-4, -3e-4, 1e-3]])
    logp = jnp.concatenate([logp, jnp.pad(tiny, ((0, 0), (0, 8)))])
    logp_anchor = jnp.concatenate([logp_anchor, jnp.zeros((1, 16))])
    mask = jnp.ones(logp.shape)
    k2, k3 = jax.jit(lambda a, b: (pg.kl_k2(a, b, mask), pg.kl_k3(a, b, mask)))(logp, logp_anchor)
    assert bool(jnp.all(jnp.isfinite(k3))) and bool(jnp.all(k3 >= 0.0))
    assert bool(jnp.all(k2 >= 0.0))


def test_expected_k1_k3_and_analytic_equal_exact_kl():
    @jax.jit
    def expectations(theta, theta_ref):
        exact = _exact_kl(theta, theta_ref)  # sum_y pi(y) log(pi(y) / pi_ref(y)), all 9 sequences
        prob = jnp.exp(_seq_logp(theta))
        lp, lq = _token_logp(theta, SEQS), _token_logp(theta_ref, SEQS)
        out = {"exact": exact}
        for estimator in ("k1", "k2", "k3"):
            kl_seq = pg.sequence_kl(pg.per_token_kl(lp, lq, ONES, estimator), ONES)
            out[estimator] = jnp.sum(prob * kl_seq)
        # analytic: sum_t KL(pi(.|y_<t) || pi_ref(.|y_<t)), averaged over the sampled contexts
        logits, logits_ref = _token_logits(theta, SEQS), _token_logits(theta_ref, SEQS)
        out["analytic"] = jnp.sum(
            prob * pg.sequence_kl(pg.analytic_kl(logits, logits_ref, ONES), ONES)
        )
        return out

    out = expectations(_theta(1), _theta(2))
    assert float(out["exact"]) > 0.1  # a non-trivial KL
    for name in ("k1", "k3", "analytic"):
        np.testing.assert_allclose(out[name], out["exact"], rtol=1e-5, atol=1e-6, err_msg=name)
    # k2 is biased (second order in the log-ratio): it does not match, but is positive
    assert float(out["k2"]) > 0.0 and abs(float(out["k2"] - out["exact"])) > 1e-3


def test_analytic_kl_hand_value_and_zero_probability_tokens():
    # pi = (0.5, 0.5, 0) via a -inf logit (top-k style), pi_ref = (0.25, 0.25, 0.5):
    # KL = 0.5 log(0.5/0.25) * 2 + 0 = log 2
    logits = jnp.array([[[0.0, 0.0, -jnp.inf]]])
    logits_ref = jnp.log(jnp.array([[[0.25, 0.25, 0.5]]]))
    kl, grad = jax.jit(
        jax.value_and_grad(lambda x: pg.analytic_kl(x, logits_ref, jnp.ones((1, 1))).sum())
    )(logits)
    np.testing.assert_allclose(kl, math.log(2.0), rtol=1e-6)
    assert bool(jnp.all(jnp.isfinite(grad)))


# --- baselines and REINFORCE -----------------------------------------------------------------


def test_baselines_hand_values():
    returns = jnp.array([[1.0, 2.0, 3.0], [0.0, 0.0, 6.0]])
    # row 0: (2 + 3) / 2 = 2.5, (1 + 3) / 2 = 2, (1 + 2) / 2 = 1.5; row 1: 3, 3, 0
    np.testing.assert_allclose(
        pg.leave_one_out_baseline(returns), [[2.5, 2.0, 1.5], [3.0, 3.0, 0.0]]
    )
    # batch mean: (1 + 2 + 3 + 0 + 0 + 6) / 6 = 2
    np.testing.assert_allclose(pg.mean_baseline(returns), jnp.full((2, 3), 2.0))
    np.testing.assert_array_equal(pg.compute_baseline(returns, "none"), jnp.zeros((2, 3)))


def test_reinforce_loss_hand_value():
    seq_logp = jnp.array([[-1.0, -2.0, -3.0]])
    returns = jnp.array([[1.0, 2.0, 3.0]])
    # RLOO advantages: 1 - 2.5 = -1.5, 2 - 2 = 0, 3 - 1.5 = 1.5
    # loss = -mean(-1.5 * -1, 0 * -2, 1.5 * -3) = -(1.5 + 0 - 4.5) / 3 = 1
    np.testing.assert_allclose(pg.reinforce_loss(seq_logp, returns, "rloo"), 1.0, rtol=1e-6)
    # mean baseline 2: advantages -1, 0, 1: loss = -(1 + 0 - 3) / 3 = 2/3
    np.testing.assert_allclose(pg.reinforce_loss(seq_logp, returns, "mean"), 2.0 / 3.0, rtol=1e-6)
    # no baseline: loss = -(-1 - 4 - 9) / 3 = 14/3
    np.testing.assert_allclose(pg.reinforce_loss(seq_logp, returns, "none"), 14.0 / 3.0, rtol=1e-6)
    # an explicit baseline array
    np.testing.assert_allclose(
        pg.reinforce_loss(seq_logp, returns, jnp.array([[2.5, 2.0, 1.5]])), 1.0, rtol=1e-6
    )
    # the gradient is -advantage / (B K) per sequence log-prob, and none flows into returns
    g_logp, g_ret = jax.grad(pg.reinforce_loss, argnums=(0, 1))(seq_logp, returns, "rloo")
    np.testing.assert_allclose(g_logp, [[0.5, 0.0, -0.5]], atol=1e-7)
    np.testing.assert_array_equal(g_ret, jnp.zeros_like(returns))


def test_kl_regularized_reward_hand_value():
    reward = jnp.array([[1.0]])
    logp = jnp.log(jnp.array([[[0.5, 0.5, 0.1]]]))
    logp_anchor = jnp.log(jnp.array([[[0.25, 0.5, 0.9]]]))
    mask = jnp.array([[[1.0, 1.0, 0.0]]])
    # k1 sum over unmasked tokens = log 2 + 0 = 0.693147; r_beta = 1 - 0.5 * 0.693147 = 0.653426
    out = pg.kl_regularized_reward(reward, logp, logp_anchor, mask, 0.5)
    np.testing.assert_allclose(out, [[1.0 - 0.5 * math.log(2.0)]], rtol=1e-6)
    # it is a constant for differentiation
    grad = jax.grad(lambda lp: pg.kl_regularized_reward(reward, lp, logp_anchor, mask, 0.5).sum())(
        logp
    )
    np.testing.assert_array_equal(grad, jnp.zeros_like(logp))


def _expected_pg_grad(config: pg.PGConfig, theta, theta_ref, k: int):
    """Exact ``E[grad pg_loss]``: the sum over all K-tuples of P(tuple) grad loss(tuple)."""
    n = SEQS.shape[0]
    tuples = jnp.array(list(itertools.product(range(n), repeat=k)))  # [n^K, K]
    prob = jax.lax.stop_gradient(jnp.exp(_seq_logp(theta)))
    weights = jnp.prod(prob[tuples], axis=-1)  # independent samples of one prompt

    def loss(th, idx):
        seqs = SEQS[idx][None]  # [B=1, K, T]
        lp, lq = _token_logp(th, seqs), _token_logp(theta_ref, seqs)
        return pg.pg_loss(config, lp, lq, jnp.ones(lp.shape), REWARD[idx][None])[0]

    grads = jax.vmap(jax.grad(loss), in_axes=(None, 0))(theta, tuples)
    return jax.tree.map(lambda g: jnp.tensordot(weights, g, axes=1), grads)


def test_expected_reinforce_gradient_equals_exact_policy_gradient():
    theta, theta_ref = _theta(3), _theta(4)
    beta = 0.3
    cases = {  # name: (config, K samples per prompt, scale, beta) with E[grad L] = -scale grad J
        # plain REINFORCE: E[R grad log pi] = grad E[R]
        "none": (pg.PGConfig(beta=0.0, baseline="none"), 1, 1.0, 0.0),
        # leave-one-out baseline (unbiased) with WARP's r - beta k1 in the reward: exact grad J
        "rloo": (pg.PGConfig(beta=beta, baseline="rloo"), 2, 1.0, beta),
        # the batch mean over B K = 2 samples includes each sample's own return: (1 - 1/2) grad J
        "mean": (pg.PGConfig(beta=beta, baseline="mean"), 2, 0.5, beta),
    }

    def expected_return(th):  # E_pi[R], by enumeration
        return jnp.sum(jnp.exp(_seq_logp(th)) * REWARD)

    @jax.jit
    def run(th):
        expected = {n: _expected_pg_grad(c, th, theta_ref, k) for n, (c, k, _, _) in cases.items()}
        return expected, jax.grad(expected_return)(th), jax.grad(_exact_kl)(th, theta_ref)

    expected, grad_r, grad_kl = run(theta)
    for name, (_, _, scale, b) in cases.items():
        # J = E_pi[R] - b KL(pi || pi_ref)
        want = jax.tree.map(lambda r, kl, b=b, scale=scale: -scale * (r - b * kl), grad_r, grad_kl)
        for e, w in zip(jax.tree.leaves(expected[name]), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(e, w, rtol=1e-4, atol=1e-6, err_msg=name)


def test_kl_in_loss_expected_gradients_single_token():
    # One token (T = 1): the k2 loss term's expected gradient is grad KL(pi || pi_ref) and the k3
    # term's is grad KL(pi_ref || pi) (Tang & Munos 2025).
    theta, logits_q = _normal(5, (V,), (V,))
    logq = jax.nn.log_softmax(logits_q)
    tokens = jnp.arange(V)

    def expected_grad(theta, estimator):
        prob = jax.lax.stop_gradient(jax.nn.softmax(theta))

        def term(th, y):
            lp = jax.nn.log_softmax(th)[y].reshape(1, 1, 1)
            return pg.kl_loss(lp, logq[y].reshape(1, 1, 1), jnp.ones((1, 1, 1)), estimator)

        grads = jax.vmap(jax.grad(term), in_axes=(None, 0))(theta, tokens)
        return jnp.tensordot(prob, grads, axes=1)

    def reverse_kl(th):
        lp = jax.nn.log_softmax(th)
        return jnp.sum(jnp.exp(lp) * (lp - logq))

    def forward_kl(th):
        return jnp.sum(jnp.exp(logq) * (logq - jax.nn.log_softmax(th)))

    g2, g3, g_reverse, g_forward = jax.jit(
        lambda th: (
            expected_grad(th, "k2"),
            expected_grad(th, "k3"),
            jax.grad(reverse_kl)(th),
            jax.grad(forward_kl)(th),
        )
    )(theta)
    np.testing.assert_allclose(g2, g_reverse, atol=1e-6)
    np.testing.assert_allclose(g3, g_forward, atol=1e-6)


@pytest.mark.parametrize(
    "config",
    [
        pg.PGConfig(beta=0.0, estimator="k1", baseline="rloo", kl_in_reward=True),
        pg.PGConfig(beta=0.0, estimator="k3", baseline="mean", kl_in_reward=False),
        pg.PGConfig(beta=0.0, estimator="k2", baseline="none", kl_in_reward=True),
    ],
)
def test_beta_zero_is_plain_reinforce(config):
    logp, logp_anchor, reward = _normal(7, (2, 3, 4), (2, 3, 4), (2, 3))
    logp, logp_anchor = -jnp.abs(logp), -jnp.abs(logp_anchor)
    mask = jnp.ones((2, 3, 4)).at[:, :, 3].set(0.0)

    def ours(lp):
        return pg.pg_loss(config, lp, logp_anchor, mask, reward)[0]

    def plain(lp):
        return pg.reinforce_loss(pg.sequence_logprob(lp, mask), reward, config.baseline)

    (v_ours, g_ours), (v_plain, g_plain) = jax.jit(
        lambda lp: (jax.value_and_grad(ours)(lp), jax.value_and_grad(plain)(lp))
    )(logp)
    np.testing.assert_allclose(v_ours, v_plain, rtol=1e-6)
    np.testing.assert_allclose(g_ours, g_plain, rtol=1e-6)


@pytest.mark.parametrize("kl_in_reward", [True, False])
def test_masked_tokens_contribute_nothing(kl_in_reward):
    estimator = "k1" if kl_in_reward else "k3"
    config = pg.PGConfig(beta=0.2, estimator=estimator, baseline="rloo", kl_in_reward=kl_in_reward)
    logp, logp_anchor, reward = _normal(8, (2, 2, 3), (2, 2, 3), (2, 2))
    logp, logp_anchor = -jnp.abs(logp), -jnp.abs(logp_anchor)
    mask = jnp.array([[True, True, False]] * 4).reshape(2, 2, 3)
    # padding holds garbage: NaN, -inf and +inf must not reach values or gradients
    garbage = jnp.array([jnp.nan, -jnp.inf, jnp.inf, 1e30])
    bad_lp = logp.at[:, :, 2].set(garbage.reshape(2, 2))
    bad_lq = logp_anchor.at[:, :, 2].set(garbage[::-1].reshape(2, 2))

    def loss(lp, lq, m):
        return pg.pg_loss(config, lp, lq, m, reward)

    @jax.jit
    def run(bad_lp, bad_lq, lp, lq):
        value_and_grad = jax.value_and_grad(loss, has_aux=True)
        cut = value_and_grad(lp[..., :2], lq[..., :2], jnp.ones((2, 2, 2)))
        bad = value_and_grad(bad_lp, bad_lq, mask)
        bad_float = value_and_grad(bad_lp, bad_lq, mask.astype(jnp.float32))  # float mask = bool
        per_token = [pg.per_token_kl(bad_lp, bad_lq, mask, e) for e in ("k1", "k2", "k3")]
        return cut, bad, bad_float, per_token

    results = run(bad_lp, bad_lq, logp, logp_anchor)
    (val_cut, met_cut), g_cut = results[0]
    for (val, met), grad in results[1:3]:
        np.testing.assert_allclose(val, val_cut, rtol=1e-6)
        for name in met_cut:
            np.testing.assert_allclose(met[name], met_cut[name], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(grad[..., :2], g_cut, rtol=1e-6)
        np.testing.assert_array_equal(grad[..., 2], 0.0)
    for out in results[3]:  # every per-token estimator zeroes the padding
        np.testing.assert_array_equal(out[..., 2], 0.0)


def test_jit_and_vmap_over_beta():
    logp, logp_anchor, reward = _normal(9, (2, 3, 4), (2, 3, 4), (2, 3))
    logp, logp_anchor = -jnp.abs(logp), -jnp.abs(logp_anchor)
    mask = jnp.ones((2, 3, 4))
    betas = jnp.array([0.0, 0.1, 1.0])

    def run(beta):
        config = pg.PGConfig(beta=beta, estimator="k3", baseline="rloo", kl_in_reward=False)
        return jax.value_and_grad(lambda lp: pg.pg_loss(config, lp, logp_anchor, mask, reward)[0])(
            logp
        )

    vals, grads = jax.jit(jax.vmap(run))(betas)
    run_one = jax.jit(run)
    for i, beta in enumerate([0.0, 0.1, 1.0]):
        val, grad = run_one(beta)
        np.testing.assert_allclose(vals[i], val, rtol=1e-5)
        np.testing.assert_allclose(grads[i], grad, rtol=1e-5, atol=1e-7)
    # per-token functions vmap over any leading axis
    np.testing.assert_allclose(
        jax.vmap(pg.kl_k3)(logp, logp_anchor, mask), pg.kl_k3(logp, logp_anchor, mask)
    )


# --- bad input ---------------------------------------------------------------------------------


def test_config_validation():
    with pytest.raises(ValueError, match="beta"):
        pg.PGConfig(beta=-0.1)
    with pytest.raises(ValueError, match="beta"):
        pg.PGConfig(beta=float("nan"))
    with pytest.raises(ValueError, match="estimator.*'k4'"):
        pg.PGConfig(estimator="k4")
    with pytest.raises(ValueError, match="baseline.*'grpo'"):
        pg.PGConfig(baseline="grpo")
    with pytest.raises(ValueError, match="kl_in_reward.*'yes'"):
        pg.PGConfig(kl_in_reward="yes")
    with pytest.raises(ValueError, match="k1.*zero expected gradient"):
        pg.PGConfig(estimator="k1", kl_in_reward=False)


def test_bad_input_raises():
    lp = jnp.zeros((2, 3, 4))
    mask = jnp.ones((2, 3, 4))
    with pytest.raises(ValueError, match="logp_anchor has shape"):
        pg.kl_k1(lp, jnp.zeros((2, 3, 5)), mask)
    with pytest.raises(ValueError, match="mask has shape"):
        pg.kl_k3(lp, lp, jnp.ones((2, 3)))
    with pytest.raises(ValueError, match="scalar"):
        pg.kl_k2(jnp.zeros(()), jnp.zeros(()), jnp.ones(()))
    with pytest.raises(ValueError, match="estimator.*'kl'"):
        pg.per_token_kl(lp, lp, mask, "kl")
    with pytest.raises(ValueError, match="K >= 2"):
        pg.leave_one_out_baseline(jnp.zeros((4, 1)))
    with pytest.raises(ValueError, match="K >= 2"):
        pg.reinforce_loss(jnp.zeros((4, 1)), jnp.zeros((4, 1)), "rloo")
    with pytest.raises(ValueError, match="seq_logp has shape"):
        pg.reinforce_loss(jnp.zeros((4, 2)), jnp.zeros((4, 3)))
    with pytest.raises(ValueError, match="kind.*'median'"):
        pg.reinforce_loss(jnp.zeros((4, 2)), jnp.zeros((4, 2)), "median")
    with pytest.raises(ValueError, match="does not broadcast"):
        pg.reinforce_loss(jnp.zeros((4, 2)), jnp.zeros((4, 2)), jnp.zeros((3,)))
    with pytest.raises(ValueError, match="reward has shape"):
        pg.kl_regularized_reward(jnp.zeros((2,)), lp, lp, mask, 0.1)
    with pytest.raises(ValueError, match="beta"):
        pg.kl_regularized_reward(jnp.zeros((2, 3)), lp, lp, mask, -1.0)
    with pytest.raises(ValueError, match="k1.*zero expected gradient"):
        pg.kl_loss(lp, lp, mask, "k1")
    with pytest.raises(ValueError, match="logits_anchor has shape"):
        pg.analytic_kl(jnp.zeros((2, 4, 5)), jnp.zeros((2, 4, 6)), jnp.ones((2, 4)))
    with pytest.raises(ValueError, match="mask has shape"):
        pg.analytic_kl(jnp.zeros((2, 4, 5)), jnp.zeros((2, 4, 5)), jnp.ones((2, 5)))
    with pytest.raises(ValueError, match="mask has shape"):
        pg.sequence_kl(jnp.zeros((2, 4)), jnp.ones((2, 3)))
    config = pg.PGConfig()
    with pytest.raises(ValueError, match=r"\[B, K, T\]"):
        pg.pg_loss(config, jnp.zeros((3, 4)), jnp.zeros((3, 4)), jnp.ones((3, 4)), jnp.zeros(3))
    with pytest.raises(ValueError, match="reward has shape"):
        pg.pg_loss(config, lp, lp, mask, jnp.zeros((2, 4)))
    # shape errors are raised at trace time, inside jit too
    with pytest.raises(ValueError, match="mask has shape"):
        jax.jit(pg.kl_k1)(lp, lp, jnp.ones((2, 3)))
