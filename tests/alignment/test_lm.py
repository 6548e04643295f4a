import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from purerl.alignment import lm, tasks

# One tiny config and one sequence shape ([4, 12] = prompt 3 + 9 new tokens) keep compiles few.
CFG = lm.LMConfig(vocab_size=16, max_len=12, d_model=16, num_heads=2, num_layers=2)
B, P, N = 4, 3, 9
RNG = np.random.default_rng(0)  # test inputs from numpy: no PRNG kernels to compile


@jax.jit
def _spread(p, key):
    # Spread the logits so sampling is far from ties (the GPT-2 init is near-uniform).
    flat, unravel = ravel_pytree(p)
    return unravel(flat + 0.3 * jax.random.normal(key, flat.shape))


@pytest.fixture(scope="module")
def params():
    p = lm.make_lm(CFG).init(jax.random.key(0), jnp.zeros((B, CFG.max_len), jnp.int32))
    return _spread(p, jax.random.key(1))


@pytest.fixture(scope="module")
def prompt():
    return jnp.asarray(RNG.integers(3, CFG.vocab_size, (B, P)), jnp.int32)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        lm.LMConfig(d_model=10, num_heads=4)
    with pytest.raises(ValueError, match="dropout"):
        lm.LMConfig(dropout=1.0)
    with pytest.raises(ValueError, match="num_layers"):
        lm.LMConfig(num_layers=0)
    with pytest.raises(ValueError, match="vocab_size"):
        lm.LMConfig(vocab_size=1)


def test_shapes_tied_untied_and_causality(params):
    tokens = jnp.asarray(RNG.integers(0, CFG.vocab_size, (B, CFG.max_len)), jnp.int32)
    apply = lm.make_lm(CFG).apply
    out = apply(params, tokens)
    assert out.logits.shape == (B, 12, 16) and out.hidden.shape == (B, 12, 16)
    # Changing the last token leaves every earlier position's output untouched (causal mask).
    other = apply(params, tokens.at[:, -1].set((tokens[:, -1] + 1) % 16))
    np.testing.assert_allclose(other.logits[:, :-1], out.logits[:, :-1], atol=1e-5)
    assert not np.allclose(other.logits[:, -1], out.logits[:, -1])
    untied = lm.LMConfig(**{**CFG.__dict__, "tie_embeddings": False})
    shapes = jax.eval_shape(lm.make_lm(untied).init, jax.random.key(0), tokens)
    assert shapes["unembed"]["w"].shape == (16, 16) and "unembed" not in params


@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (1.0, None), (0.7, 3)])
def test_kv_cache_sampling_equals_no_cache(params, prompt, temperature, top_k):
    kw = dict(temperature=temperature, top_k=top_k, eos_id=2, pad_id=0)
    fast = lm.sample(CFG, params, prompt, jax.random.key(4), N, **kw)
    slow = lm.sample(CFG, params, prompt, jax.random.key(4), N, use_cache=False, **kw)
    np.testing.assert_array_equal(fast.tokens, slow.tokens)
    np.testing.assert_array_equal(fast.mask, slow.mask)
    np.testing.assert_array_equal(fast.tokens[:, :P], prompt)
    if top_k is not None:
        # Every sampled token is among the top-k of the model's logits at its position.
        logits = lm.make_lm(CFG).apply(params, fast.tokens).logits[:, P - 1 : -1]
        chosen = jnp.take_along_axis(logits, fast.tokens[:, P:, None], -1)
        rank = jnp.sum(logits > chosen, -1)
        assert int(jnp.max(jnp.where(fast.mask[:, P:] > 0, rank, 0))) < top_k


def test_greedy_is_argmax_and_eos_masks_the_rest(params, prompt):
    s = lm.sample(CFG, params, prompt, jax.random.key(0), N, temperature=0.0)
    logits = lm.make_lm(CFG).apply(params, s.tokens).logits
    np.testing.assert_array_equal(s.tokens[:, P:], jnp.argmax(logits[:, P - 1 : -1], -1))
    assert np.all(np.asarray(s.mask)[:, P:] == 1)  # no EOS: every new token counts
    # With an EOS: mask 0 on the prompt, 1 up to and including the first EOS, then pad with mask 0.
    eos = int(s.tokens[0, P + 2])  # row 0's greedy path emits this token at its third step
    t = lm.sample(CFG, params, prompt, jax.random.key(0), N, temperature=0.0, eos_id=eos, pad_id=0)
    tok, mask = np.asarray(t.tokens), np.asarray(t.mask)
    assert np.all(mask[:, :P] == 0)
    for row in range(B):
        hits = np.flatnonzero(tok[row, P:] == eos)
        end = P + (hits[0] if hits.size else N - 1)
        assert np.all(mask[row, P : end + 1] == 1) and np.all(mask[row, end + 1 :] == 0)
        assert np.all(tok[row, end + 1 :] == 0)
    assert np.all(mask[0, P + 3 :] == 0)  # row 0 stopped by its third new token


def test_token_logprobs_match_naive_recomputation(params, prompt):
    s = lm.sample(CFG, params, prompt, jax.random.key(7), N, eos_id=2)
    lp = lm.token_logprobs(CFG, params, s.tokens, s.mask)
    assert lp.shape == (B, 11)
    apply = lm.make_lm(CFG).apply
    naive = np.zeros((B, 11))
    for b in range(B):
        for t in range(11):  # log p(token t+1 | tokens <= t), from the prefix (later tokens erased)
            prefix = jnp.where(jnp.arange(12) <= t, s.tokens[b], 0)[None]
            logits = apply(params, jnp.repeat(prefix, B, 0)).logits[0, t]
            naive[b, t] = jax.nn.log_softmax(logits)[s.tokens[b, t + 1]] * s.mask[b, t + 1]
    np.testing.assert_allclose(lp, naive, atol=1e-5)
    # Prompt positions and pad are excluded: the sequence log-prob is the response sum only.
    assert np.all(np.asarray(lp)[:, : P - 1] == 0)
    assert np.all(np.asarray(lp)[np.asarray(s.mask)[:, 1:] == 0] == 0)
    seq = lm.sequence_logprob(CFG, params, s.tokens, s.mask)
    np.testing.assert_allclose(seq, naive.sum(1), atol=1e-5)
    zero = lm.sequence_logprob(CFG, params, s.tokens, jnp.zeros_like(s.mask))
    np.testing.assert_array_equal(zero, np.zeros(B))


def test_dropout_key_rate_and_traced_rate(params):
    tokens = jnp.asarray(RNG.integers(0, CFG.vocab_size, (B, 12)), jnp.int32)
    apply = lm.make_lm(CFG).apply
    base = apply(params, tokens).logits
    rates = jnp.array([0.0, 0.5])
    out = jax.jit(jax.vmap(lambda r: apply(params, tokens, jax.random.key(0), r).logits))(rates)
    np.testing.assert_allclose(out[0], base, atol=1e-5)  # rate 0 is exactly no dropout
    assert not np.allclose(out[1], base)


def test_bad_inputs_raise_clear_errors(params):
    apply = lm.make_lm(CFG).apply
    with pytest.raises(ValueError, match="max_len"):
        apply(params, jnp.zeros((1, 13), jnp.int32))
    with pytest.raises(ValueError, match=r"outside \[0, 16\)"):
        apply(params, jnp.full((1, 4), 16, jnp.int32))
    with pytest.raises(ValueError, match="integer"):
        apply(params, jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\[B, T\]"):
        apply(params, jnp.zeros((4,), jnp.int32))
    with pytest.raises(ValueError, match="P \\+ N"):
        lm.sample(CFG, params, jnp.zeros((1, 4), jnp.int32), jax.random.key(0), 9)
    with pytest.raises(ValueError, match="top_k"):
        lm.sample(CFG, params, jnp.zeros((1, 4), jnp.int32), jax.random.key(0), 2, top_k=0)
    with pytest.raises(ValueError, match="temperature"):
        lm.sample(CFG, params, jnp.zeros((1, 4), jnp.int32), jax.random.key(0), 2, -1.0)
    with pytest.raises(ValueError, match="eos_id"):
        lm.sample(CFG, params, jnp.zeros((1, 4), jnp.int32), jax.random.key(0), 2, eos_id=16)
    with pytest.raises(ValueError, match="mask has shape"):
        lm.token_logprobs(CFG, params, jnp.zeros((2, 4), jnp.int32), jnp.zeros((2, 3)))


def test_tiny_lm_pretraining_loss_drops():
    task = tasks.TaskConfig()
    cfg = lm.LMConfig(vocab_size=16, max_len=task.seq_len, d_model=32, num_heads=2, num_layers=1)
    data = tasks.corpus(jax.random.key(0), task, 2000)
    step = lm.make_train_step(cfg, learning_rate=1e-2)
    idx = np.random.default_rng(1).integers(0, 2000, (300, 32))
    batches = (data.tokens[idx], data.mask[idx])  # SFT: response tokens only
    _, metrics = jax.jit(lambda s: jax.lax.scan(step.update, s, batches))(
        step.init(jax.random.key(2))
    )
    loss = np.asarray(metrics["loss/nll"])
    assert loss[0] == pytest.approx(np.log(16), abs=0.1)  # starts near uniform over 16 tokens
    # Below 12 equiprobable words (log 12 = 2.48): it learned EOS, copying and the spurious token.
    assert loss[-30:].mean() < np.log(12) - 0.05 and loss[-30:].mean() < loss[:5].mean() - 0.25
