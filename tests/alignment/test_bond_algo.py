"""Tests for the BOND / J-BOND Algorithm (purerl.alignment.bond.make) and Best-of-N sampling.

One tiny LM (d_model 16, 1 layer, vocab 16, sequences of 4 + 6 tokens) and one config per variant:
the jitted ``update`` of each is compiled once (module cache) and shared by the contract and vmap
tests, and the eager sampling calls share two sampler shapes, to keep the number of compiles low.
"""

from __future__ import annotations

import dataclasses
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from purerl.alignment import best_of_n, bond, lm, policy_gradient, tasks
from purerl.loops import self_sampling

TASK = tasks.TaskConfig(vocab_size=16, prompt_len=4, response_len=6)
LM = lm.LMConfig(vocab_size=16, max_len=10, d_model=16, num_heads=2, num_layers=1)
P, R = TASK.prompt_len, TASK.response_len


def gold(tokens, mask):
    return tasks.sequence_gold_reward(tokens, mask, TASK)


CONFIGS = {
    # Iterative BOND with a hard anchor copy every 2 updates (period small enough to see it).
    "bond": bond.BondConfig(
        variant="bond", n=3, num_quantile_samples=4, batch_size=8, anchor="hard",
        anchor_period=2, learning_rate=1e-2, warmup_steps=0, gamma=0.1, use_cache=False,
    ),
    # J-BOND: EMA anchor eta = 0.02 (default); the same config drives the learning smoke test.
    "jbond": bond.BondConfig(
        variant="jbond", n=2, batch_size=32, learning_rate=1e-2, warmup_steps=0, gamma=0.1,
        use_cache=False,
    ),
}  # fmt: skip


@pytest.fixture(scope="module")
def sft():
    # An untrained tiny LM: near-uniform over tokens, so responses rarely stop (gold reward ~ 0) and
    # there is a lot for Best-of-N distillation to gain.
    return lm.make_lm(LM).init(jax.random.key(0), jnp.zeros((1, LM.max_len), jnp.int32))


@functools.cache
def _algo(variant):
    algo = bond.make(CONFIGS[variant], LM, TASK, gold)
    # chex keys its trace counter by source location, which both variants' `update` share.
    chex.clear_trace_counter()
    update = jax.jit(chex.assert_max_traces(algo.update, n=1))
    return algo, update


def _assert_same_structure(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype, (x.shape, y.shape, x.dtype, y.dtype)


def _assert_trees_close(a, b, atol=1e-5):
    unkey = lambda x: jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x  # noqa: E731
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        x, y = unkey(x), unkey(y)
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=atol)


def _flat(tree):
    return ravel_pytree(tree)[0]


# --- config and inputs ----------------------------------------------------------------------------


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="variant"):
        bond.BondConfig(variant="ppo")
    with pytest.raises(ValueError, match="n must be 2"):
        bond.BondConfig(variant="jbond", n=4)
    with pytest.raises(ValueError, match="beta"):
        bond.BondConfig(beta=1.5)
    with pytest.raises(ValueError, match="anchor"):
        bond.BondConfig(anchor="polyak")
    with pytest.raises(ValueError, match="anchor_period"):
        bond.BondConfig(anchor_period=0)
    with pytest.raises(ValueError, match="batch_size"):
        bond.BondConfig(batch_size=1)  # leave-one-out needs two samples
    with pytest.raises(ValueError, match="gamma"):
        bond.BondConfig(gamma=-1.0)
    assert bond.BondConfig().anchor_kind == "fixed"
    assert bond.BondConfig(variant="jbond", n=2).anchor_kind == "ema"
    assert bond.BondConfig(n=8, num_quantile_samples=16).num_anchor_samples == 24
    with pytest.raises(ValueError, match="max_len"):
        bond.make(bond.BondConfig(), dataclasses.replace(LM, max_len=8), TASK, gold)


def test_config_validation_prompts_shape(sft):
    with pytest.raises(ValueError, match="prompt_len"):
        bond.collect(
            CONFIGS["bond"],
            LM,
            TASK,
            gold,
            sft,
            sft,
            jnp.ones((2, 3), jnp.int32),
            jax.random.key(0),
        )


def test_first_update_moves_the_params_during_warmup(sft):
    # Regression (issue 12): the warm-up was optax.linear_schedule(0, lr, W), so the first update
    # had step size 0 and left the policy exactly at the SFT weights. purerl.core.optim's warm-up
    # gives update k the step size lr * min(1, (k + 1) / W): lr / W > 0 at k = 0.
    config = dataclasses.replace(CONFIGS["bond"], anchor="fixed", warmup_steps=100)
    algo = bond.make(config, LM, TASK, gold)
    state = algo.init(jax.random.key(1), sft)
    state, metrics = jax.jit(algo.update)(state, None)
    assert float(metrics["optim/grad_norm"]) > 0
    moved = np.abs(np.asarray(_flat(state.params) - _flat(sft)))
    # Adam's first step is ~lr_0 = 1e-2 / 100 per coordinate with a nonzero gradient.
    assert moved.max() == pytest.approx(1e-4, rel=1e-2)


# --- the Algorithm contract -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", ["bond", "jbond"])
def test_contract_and_anchor_rule(sft, variant):
    config = CONFIGS[variant]
    algo, update = _algo(variant)
    state0 = algo.init(jax.random.key(1), sft)
    states, state = [state0], state0
    for _ in range(3):
        state, metrics = update(state, None)  # one compile (assert_max_traces) for many updates
        _assert_same_structure(state, state0)
        for k, v in metrics.items():
            assert np.isfinite(np.asarray(v)).all(), (k, v)
        states.append(state)
    assert int(state.step) == 3
    expected = {
        "loss/total", "loss/forward", "loss/backward", "reward/mean", "reward/bon", "reward/anchor",
        "reward/bond", "quantile/log_p_le", "kl/anchor", "kl/ref", "length/mean",
        "optim/grad_norm", "anchor/updated",
    }  # fmt: skip
    assert set(metrics) == expected
    _assert_trees_close(state.ref_params, sft, atol=0)
    assert not np.allclose(_flat(state.params), _flat(sft))
    if variant == "bond":
        # Hard copy every K = 2 updates: unchanged after 1, = params after 2, kept after 3.
        np.testing.assert_array_equal(_flat(states[1].anchor_params), _flat(sft))
        np.testing.assert_array_equal(_flat(states[2].anchor_params), _flat(states[2].params))
        np.testing.assert_array_equal(_flat(states[3].anchor_params), _flat(states[2].params))
        assert float(metrics["anchor/updated"]) == 0.0
    else:
        # EMA: anchor_t = (1 - eta) anchor_{t-1} + eta params_t, eta = 0.02.
        eta = config.anchor_eta
        for prev, new in zip(states[:-1], states[1:], strict=False):
            np.testing.assert_allclose(
                _flat(new.anchor_params),
                (1 - eta) * _flat(prev.anchor_params) + eta * _flat(new.params),
                rtol=1e-6, atol=1e-7,
            )  # fmt: skip
    # act samples the policy: [B, P + R] tokens with the prompt kept, greedy when deterministic.
    prompts = tasks.sample_prompts(jax.random.key(3), TASK, 4)
    tokens, extras = algo.act(state, prompts, jax.random.key(4))
    assert tokens.shape == extras["mask"].shape == (4, P + R)
    np.testing.assert_array_equal(tokens[:, :P], prompts)
    greedy_a, _ = algo.act(state, prompts, jax.random.key(5), deterministic=True)
    greedy_b, _ = algo.act(state, prompts, jax.random.key(6), deterministic=True)
    np.testing.assert_array_equal(greedy_a, greedy_b)


@pytest.mark.parametrize("variant", ["bond", "jbond"])
def test_vmap_over_seeds_equals_python_loop(sft, variant):
    algo, update = _algo(variant)
    states = [algo.init(jax.random.key(10 + i), sft) for i in range(2)]
    stacked = jax.tree.map(lambda *x: jnp.stack(x), *states)
    v_state, v_metrics = jax.jit(jax.vmap(lambda s: algo.update(s, None)))(stacked)
    for i, s in enumerate(states):
        s, metrics = update(s, None)
        _assert_trees_close(jax.tree.map(lambda x, i=i: x[i], v_state), s, atol=1e-5)
        _assert_trees_close({k: v[i] for k, v in v_metrics.items()}, metrics, atol=1e-4)


# --- Jeffreys endpoints: beta = 0 is the forward term only, beta = 1 the backward only -----------


def _synthetic_batch(variant, b=8, seed=0):
    """A BondBatch from numpy (no sampling to compile): random responses that stop at random
    lengths, random rewards of the right kind."""
    rng = np.random.default_rng(seed)

    def seqs():
        prompts = rng.integers(tasks.FIRST_WORD_ID, TASK.vocab_size, (b, P))
        prompts[:, 0] = tasks.BOS_ID
        resp = rng.integers(tasks.FIRST_WORD_ID, TASK.vocab_size, (b, R))
        stop = rng.integers(1, R, b)
        t = np.arange(R)[None]
        resp = np.where(t == stop[:, None], tasks.EOS_ID, np.where(t > stop[:, None], 0, resp))
        mask = np.concatenate([np.zeros((b, P)), (t <= stop[:, None])], 1)
        return np.concatenate([prompts, resp], 1), mask.astype(np.float32), prompts

    (tokens, mask, prompts), (bon_tokens, bon_mask, _) = seqs(), seqs()
    if variant == "jbond":
        bond_reward = -np.log(16.0) * (rng.random(b) < 0.5)
    else:
        bond_reward = np.log(rng.integers(1, 6, b) / 5.0)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return bond.BondBatch(
        prompts=jnp.asarray(prompts, jnp.int32),
        tokens=jnp.asarray(tokens, jnp.int32),
        mask=f32(mask),
        reward=f32(rng.random(b)),
        bon_tokens=jnp.asarray(bon_tokens, jnp.int32),
        bon_mask=f32(bon_mask),
        bon_reward=f32(rng.random(b)),
        anchor_rewards=f32(rng.random((b, 2))),
        bond_reward=f32(bond_reward),
        log_p_le=f32(np.log(rng.random(b))),
    )


@pytest.mark.parametrize("variant", ["bond", "jbond"])
def test_beta_endpoints(sft, variant):
    """beta = 0: the gradient is the NLL gradient of the Best-of-n samples (eqs. 12-13); beta = 1:
    the backward term's alone (eqs. 14-15; J-BOND's is backward_kl_loss with n = 2)."""
    batch = _synthetic_batch(variant)
    # A policy away from the anchor (= SFT), so the log-ratio terms are not trivially 0.
    params = jax.tree.map(lambda x: x * 1.05 + 0.01, sft)
    mask, bon_mask = batch.mask[:, P:], batch.bon_mask[:, P:]

    def nll(q):
        logp_bon = lm.token_logprobs(LM, q, batch.bon_tokens, batch.bon_mask)[:, P - 1 :]
        return -jnp.mean(policy_gradient.sequence_logprob(logp_bon, bon_mask))

    def backward(q):
        logp = lm.token_logprobs(LM, q, batch.tokens, batch.mask)[:, P - 1 :]
        logp_anchor = lm.token_logprobs(LM, sft, batch.tokens, batch.mask)[:, P - 1 :]
        n = 2 if variant == "jbond" else CONFIGS[variant].n
        return bond.backward_kl_loss(logp, logp_anchor, mask, batch.bond_reward, n)

    @jax.jit
    def grads(q):
        def algo_grad(beta):  # beta traced: the config is built inside jit (vmapped over beta)
            config = dataclasses.replace(CONFIGS[variant], beta=beta, gamma=0.0)
            algo = bond.make(config, LM, TASK, gold)
            state = algo.init(jax.random.key(0), sft)
            return jax.grad(lambda x: algo.loss(x, state, batch), has_aux=True)(q)

        g, metrics = jax.vmap(algo_grad)(jnp.array([0.0, 1.0]))
        return g, metrics, jax.grad(nll)(q), jax.grad(backward)(q)

    g, metrics, g_nll, g_bw = grads(params)
    for i, (g_ref, term) in enumerate(((g_nll, "loss/forward"), (g_bw, "loss/backward"))):
        _assert_trees_close(jax.tree.map(lambda x, i=i: x[i], g), g_ref, atol=1e-5)
        np.testing.assert_allclose(metrics["loss/total"][i], metrics[term][i], rtol=1e-6)
    assert not np.allclose(_flat(g_nll), _flat(g_bw))


def test_next_anchor_rules(sft):
    a = {"w": jnp.zeros(3)}
    p = {"w": jnp.ones(3)}
    hard = bond.BondConfig(anchor="hard", anchor_period=3)
    copied = [float(bond.next_anchor(hard, a, p, step)["w"][0]) for step in range(1, 8)]
    assert copied == [0, 0, 1, 0, 0, 1, 0]  # exactly every K = 3 updates
    ema = bond.BondConfig(anchor="ema", anchor_eta=0.25)
    np.testing.assert_allclose(bond.next_anchor(ema, a, p, 1)["w"], 0.25)  # 0.75 * 0 + 0.25 * 1
    fixed = bond.BondConfig(anchor="fixed")
    assert bond.next_anchor(fixed, a, p, 5) is a


# --- Best-of-N sampling -----------------------------------------------------------------------------


def test_best_of_n_picks_the_argmax_and_n1_is_plain_sampling(sft):
    prompts = tasks.sample_prompts(jax.random.key(30), TASK, 4)  # the shapes act() compiled
    key = jax.random.key(31)

    def reward_fn(tokens, mask):  # ties on purpose: integer counts of one word
        return jnp.sum((tokens == 7) * mask, axis=-1)

    n = 7
    args = (R, 1.0, tasks.EOS_ID, tasks.PAD_ID, False)
    chosen, cost = best_of_n.sample_best_of_n(LM, sft, prompts, key, n, reward_fn, *args)
    cand_tokens, cand_mask = best_of_n.sample_candidates(LM, sft, prompts, key, n, *args)
    rewards = np.asarray(jax.vmap(reward_fn)(cand_tokens, cand_mask))
    np.testing.assert_array_equal(chosen.rewards, rewards)
    np.testing.assert_array_equal(chosen.index, rewards.argmax(-1))  # first among ties
    np.testing.assert_array_equal(chosen.reward, rewards.max(-1))
    idx = np.asarray(chosen.index)
    np.testing.assert_array_equal(chosen.tokens, np.asarray(cand_tokens)[np.arange(4), idx])
    np.testing.assert_array_equal(chosen.mask, np.asarray(cand_mask)[np.arange(4), idx])
    assert cost == best_of_n.InferenceCost(
        sequences=7, lm_forward_passes=7 * (1 + R), tokens_generated=7 * R, reward_calls=7
    )
    one, cost1 = best_of_n.sample_best_of_n(LM, sft, prompts, key, 1, reward_fn, *args)
    plain = lm.sample(LM, sft, prompts, key, R, 1.0, None, tasks.EOS_ID, tasks.PAD_ID, False)
    np.testing.assert_array_equal(one.tokens, plain.tokens)
    np.testing.assert_array_equal(one.mask, plain.mask)
    assert cost1.sequences == 1 and cost1.reward_calls == 0
    with pytest.raises(ValueError, match="must be an int >= 1"):
        best_of_n.sample_best_of_n(LM, sft, prompts, key, 0, reward_fn, R)


# --- evaluation and learning ------------------------------------------------------------------------


def test_evaluate_at_the_reference(sft):
    prompts = tasks.sample_prompts(jax.random.key(40), TASK, 4)
    # n + k = 7 candidates per prompt: the sampler shapes the Best-of-N test compiled.
    m = bond.evaluate(LM, TASK, gold, sft, sft, prompts, jax.random.key(41), 3, 4, use_cache=False)
    for k, v in m.items():
        assert np.isfinite(float(v)), (k, v)
    assert abs(float(m["eval/kl_sft"])) < 1e-5  # pi = pi_ref: the analytic KL is exactly 0
    np.testing.assert_allclose(m["eval/reward"], m["eval/gold"])  # reward_fn is the gold reward
    np.testing.assert_allclose(m["eval/kl_bon_ref_bound"], np.log(3) - 2 / 3, rtol=1e-6)
    assert float(m["eval/bon_reward"]) >= float(m["eval/reward"])  # best of 3 vs one sample


def _sharpen(params, c=2.0):
    """The same LM with logits ``c l`` exactly (``c`` a power of 2): the final LayerNorm's scale and
    offset times ``c`` (the unembedding is tied, linear, without bias)."""
    return {**params, "final_ln": {k: v * c for k, v in params["final_ln"].items()}}


def test_scores_the_tempered_distribution_it_samples(sft):
    # Regression (issue 12): BOND sampled from softmax(l / tau) but scored with log softmax(l).
    # (params, tau = 0.5) and (params with logits 2 l, tau = 1) are the same policy, bit for bit
    # (2 l / 1 = l / 0.5 exactly): every sample and every number BOND computes must agree. On the
    # old code the samples agreed but the losses and KLs did not (log softmax(l) vs (2 l)).
    base = dataclasses.replace(CONFIGS["bond"], anchor="fixed")
    metrics = {}
    for tau, params in ((0.5, sft), (1.0, _sharpen(sft))):
        algo = bond.make(dataclasses.replace(base, temperature=tau), LM, TASK, gold)
        _, metrics[tau] = jax.jit(algo.update)(algo.init(jax.random.key(3), params), None)
    for k in metrics[1.0]:
        if k != "optim/grad_norm":  # the final LayerNorm's gradient is halved: not the same
            np.testing.assert_allclose(metrics[0.5][k], metrics[1.0][k], rtol=1e-6, err_msg=k)

    other = lm.make_lm(LM).init(jax.random.key(5), jnp.zeros((1, LM.max_len), jnp.int32))
    prompts = tasks.sample_prompts(jax.random.key(40), TASK, 4)

    @jax.jit
    def evaluate(params, ref_params, tau):
        return bond.evaluate(
            LM, TASK, gold, params, ref_params, prompts, jax.random.key(41), 3, 4, tau, False
        )

    cold = evaluate(other, sft, 0.5)
    sharp = evaluate(_sharpen(other), _sharpen(sft), 1.0)
    assert float(cold["eval/kl_sft"]) > 1e-3  # two different policies
    for k in cold:
        np.testing.assert_allclose(cold[k], sharp[k], rtol=1e-6, atol=1e-6, err_msg=k)


def test_temperature_must_be_positive(sft):
    # Everything that scores a tempered policy rejects tau <= 0 by name (samplers keep tau = 0 as
    # greedy decoding: lm.sample, best_of_n.sample_candidates, the act of every policy).
    tokens = jnp.ones((2, LM.max_len), jnp.int32)
    for tau in (0.0, -1.0):
        with pytest.raises(ValueError, match="BondConfig.temperature"):
            bond.BondConfig(temperature=tau)
        with pytest.raises(ValueError, match="bond.evaluate.temperature"):
            bond.evaluate(LM, TASK, gold, sft, sft, jnp.ones((2, P), jnp.int32), None, 2, 2, tau)
        with pytest.raises(ValueError, match="lm.token_logprobs.temperature"):
            lm.token_logprobs(LM, sft, tokens, tokens, temperature=tau)
        with pytest.raises(ValueError, match="policy_gradient.response_logits.temperature"):
            policy_gradient.response_logits(LM, sft, tokens, P, tau)


def test_jbond_learning_smoke_with_the_loop(sft):
    """150 J-BOND updates (gold reward, EMA anchor eta = 0.02) in purerl.loops.self_sampling's compiled
    run raise the gold reward of the tiny LM and move it away from the SFT policy."""
    config = CONFIGS["jbond"]
    algo = bond.make(config, LM, TASK, gold)
    evaluate_fn = bond.make_evaluate(config, LM, TASK, gold, num_prompts=64, n=2,
                                     num_quantile_samples=4)  # fmt: skip
    train = self_sampling.make_train(
        algo, self_sampling.LoopConfig(num_updates=150, eval_every=50), evaluate_fn
    )
    state, rows = jax.jit(train)(jax.random.key(50), sft)
    assert int(state.step) == 150
    np.testing.assert_array_equal(rows["loop/updates"], [0, 50, 100, 150])
    gold_curve = np.asarray(rows["eval/gold"])
    assert gold_curve[-1] > gold_curve[0] + 0.1, gold_curve
    train_reward = np.asarray(rows["reward/mean"])[1:]  # row 0 is before any update (NaN)
    assert train_reward[-1] > train_reward[0], train_reward
    assert float(rows["eval/kl_sft"][-1]) > 0.0
    for k, v in rows.items():
        assert np.isfinite(np.asarray(v)[1:]).all(), k
