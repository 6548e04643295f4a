"""REINFORCE / RLOO with a KL anchor (policy_gradient.make) and the self-sampling loop
(purerl.loops.self_sampling)."""

import functools
import types

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import lm, tasks
from purerl.alignment import policy_gradient as pg
from purerl.core.tree import lerp
from purerl.loops import common, self_sampling

TASK = tasks.TaskConfig()  # sequences [N, 4 + 8]
LM = lm.LMConfig(vocab_size=16, max_len=12, d_model=16, num_heads=2, num_layers=1)
# LLVM -O0 halves the compile time of these programs on the loaded 2-core machine; same semantics.
FAST = {"xla_backend_optimization_level": 0}
MU = 0.1  # a large EMA rate so the anchor visibly moves in a few updates
CFG = pg.RLConfig(batch_size=4, num_samples=2, ema_rate=MU, learning_rate=1e-2)
LOOP = self_sampling.LoopConfig(num_updates=150, eval_every=50)
SWEEP_BETAS = (0.0, 0.05)


def gold(tokens, mask):
    return tasks.sequence_gold_reward(tokens, mask, TASK)


@pytest.fixture(scope="module")
def params():
    return lm.make_lm(LM).init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))


@pytest.fixture(scope="module")
def algo():
    return pg.make(CFG, LM, TASK, gold)


@pytest.fixture(scope="module")
def update(algo):
    return jax.jit(chex.assert_max_traces(algo.update, n=1), compiler_options=FAST)


def _assert_same_structure(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        assert x.shape == y.shape and x.dtype == y.dtype


def _assert_close(a, b, atol=1e-5):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5)


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"anchor": "policy"}, "anchor"),
        ({"ema_rate": 1.5}, "ema_rate"),
        ({"num_samples": 1}, "num_samples >= 2"),
        ({"temperature": 0.0}, "temperature"),
        ({"batch_size": 0}, "batch_size"),
        ({"beta": -0.1}, "beta"),
        ({"kl_in_reward": False, "estimator": "k1"}, "zero expected gradient"),
        ({"warmup_steps": -1}, "warmup_steps"),
    ],
)
def test_rl_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pg.RLConfig(**kwargs)


def test_make_and_loop_config_reject_inconsistent_setups():
    with pytest.raises(ValueError, match="max_len"):
        pg.make(CFG, lm.LMConfig(vocab_size=16, max_len=8, d_model=16), TASK, gold)
    with pytest.raises(ValueError, match="vocab_size"):
        pg.make(CFG, lm.LMConfig(vocab_size=8, max_len=12, d_model=16), TASK, gold)
    with pytest.raises(ValueError, match="multiple of eval_every"):
        self_sampling.LoopConfig(num_updates=10, eval_every=3)
    with pytest.raises(ValueError, match="num_updates"):
        self_sampling.LoopConfig(num_updates=0, eval_every=1)
    # pg.RLConfig().pg carries the loss options
    assert CFG.pg == pg.PGConfig(beta=0.1, estimator="k1", baseline="rloo", kl_in_reward=True)


# ----------------------------------------------------------------------------- contract


@jax.jit
def expected_anchor(anchor, params):
    by_hand = jax.tree.map(lambda a, p: (1 - MU) * a + MU * p, anchor, params)
    return by_hand, lerp(anchor, params, MU)


def test_update_contract_and_ema_anchor(params, algo, update):
    state = algo.init(jax.random.key(1), params)
    _assert_close(state.anchor_params, params, atol=0)  # theta_ema <- theta_init
    keys = {
        "loss/total",
        "loss/pg",
        "loss/kl",
        "kl/anchor",
        "kl/sft",
        "reward/mean",
        "reward/std",
        "reward/regularized",
        "response/length",
        "optim/grad_norm",
    }
    for _ in range(3):  # one trace for many updates (assert_max_traces)
        new, metrics = update(state)
        _assert_same_structure(new, state)
        assert set(metrics) == keys
        for k, v in metrics.items():
            assert v.shape == () and np.isfinite(v), k
        # EMA anchor: theta_ema <- (1 - mu) theta_ema + mu theta, with the *new* theta.
        by_hand, by_lerp = expected_anchor(state.anchor_params, new.params)
        _assert_close(new.anchor_params, by_hand, atol=1e-7)
        _assert_close(new.anchor_params, by_lerp, atol=1e-7)
        _assert_close(new.sft_params, params, atol=0)
        state = new
    assert int(state.step) == 3
    moved = jax.tree.map(lambda a, b: jnp.max(jnp.abs(a - b)), state.params, params)
    assert max(jax.tree.leaves(moved)) > 0


def test_vmap_over_seeds_equals_python_loop(params, algo, update):
    keys = jax.random.split(jax.random.key(2), 2)
    looped = []
    for key in keys:
        state = algo.init(key, params)
        for _ in range(2):
            state, metrics = update(state)
        looped.append((state, metrics))
    states = jax.vmap(algo.init, in_axes=(0, None))(keys, params)
    vupdate = jax.jit(jax.vmap(algo.update), compiler_options=FAST)
    for _ in range(2):
        states, vmetrics = vupdate(states)
    # Equal up to float reassociation in batched matmuls (Adam turns a 1e-9 gradient difference
    # on a near-zero gradient entry into a ~1e-5 step difference).
    for i, (state, metrics) in enumerate(looped):
        _assert_close(jax.tree.map(lambda x, i=i: x[i], states.params), state.params, atol=1e-4)
        _assert_close(
            jax.tree.map(lambda x, i=i: x[i], states.anchor_params), state.anchor_params, atol=1e-4
        )
        _assert_close({k: v[i] for k, v in vmetrics.items()}, metrics, atol=1e-4)


def test_beta_zero_is_plain_reinforce(params):
    """beta = 0: the loss and its gradient are REINFORCE with the RLOO baseline on the raw reward,
    whatever the anchor."""
    cfg = pg.RLConfig(beta=0.0, anchor="sft", batch_size=4, num_samples=2, temperature=0.9)
    algo0 = pg.make(cfg, LM, TASK, gold)
    data = tasks.corpus(jax.random.key(3), TASK, 8)
    batch = pg.Rollout(
        data.tokens.reshape(4, 2, -1),
        data.mask.reshape(4, 2, -1),
        gold(data.tokens, data.mask).reshape(4, 2),
    )
    other = lm.make_lm(LM).init(jax.random.key(9), jnp.zeros((1, 12), jnp.int32))

    def reference(p):
        logp = pg.response_logprobs(LM, p, data.tokens, data.mask, 4, 0.9).reshape(4, 2, -1)
        seq = pg.sequence_logprob(logp, data.mask[:, 4:].reshape(4, 2, -1))
        return pg.reinforce_loss(seq, batch.reward, "rloo")

    @functools.partial(jax.jit, compiler_options=FAST)
    def both(p, state):
        return jax.value_and_grad(reference)(p), jax.value_and_grad(algo0.loss, has_aux=True)(
            p, state, batch
        )

    for anchor in (params, other):
        state = algo0.init(jax.random.key(4), params, anchor)
        (ref_loss, ref_grad), ((loss, metrics), grad) = both(params, state)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
        _assert_close(grad, ref_grad, atol=1e-7)
        np.testing.assert_allclose(metrics["reward/regularized"], metrics["reward/mean"])
    assert metrics["kl/anchor"] != 0  # the anchor differs, but beta = 0 ignores it


def test_act_and_evaluate(params, algo):
    prompts = tasks.sample_prompts(jax.random.key(5), TASK, 16)
    state = algo.init(jax.random.key(6), params)
    greedy = [algo.act(state, prompts, jax.random.key(k), deterministic=True)[0] for k in (0, 1)]
    np.testing.assert_array_equal(greedy[0], greedy[1])
    assert greedy[0].shape == (16, 12)
    np.testing.assert_array_equal(greedy[0][:, :4], prompts)

    key = jax.random.key(7)

    # Eager: its sampler is the jitted lm.sample that act and the check below already compiled.
    def evaluate(p, sft, x, k):
        return pg.evaluate(CFG, LM, TASK, gold, p, sft, x, k)

    metrics = evaluate(params, params, prompts, key)
    assert metrics["eval/kl_sft"] == 0.0  # identical logits: every term is exactly 0
    sample = lm.sample(LM, params, prompts, key, 8, CFG.temperature, eos_id=2, pad_id=0)
    expected_gold = jnp.mean(gold(sample.tokens, sample.mask))
    np.testing.assert_allclose(metrics["eval/gold"], expected_gold, rtol=1e-6)
    np.testing.assert_allclose(metrics["eval/reward"], metrics["eval/gold"])  # reward_fn = gold
    np.testing.assert_allclose(metrics["eval/length"], jnp.mean(jnp.sum(sample.mask, -1)))
    shifted = jax.tree.map(lambda x: x + 0.05, params)
    assert evaluate(shifted, params, prompts, key)["eval/kl_sft"] > 0


# ----------------------------------------------------------------------------- the loop


def _train(key, beta, sft_params, callback=None):
    """The loop for one (seed, beta); the config is built inside, so beta may be traced."""
    cfg = pg.RLConfig(
        beta=beta, anchor="sft", batch_size=16, num_samples=2, learning_rate=1e-2, temperature=1.0
    )
    algo = pg.make(cfg, LM, TASK, gold)
    evaluate_fn = pg.make_evaluate(cfg, LM, TASK, gold, num_prompts=128)
    return self_sampling.make_train(algo, LOOP, evaluate_fn, callback=callback)(key, sft_params)


CALLS = []


def _record(updates, row):
    CALLS.append((int(updates), float(row["eval/gold"])))


@pytest.fixture(scope="module")
def sweep(params):
    """Two seeds x two betas, one compile: jit(vmap(train)) over keys and a traced beta."""
    fn = chex.assert_max_traces(lambda k, b, p: _train(k, b, p, _record), n=1)
    run = jax.jit(jax.vmap(fn, in_axes=(0, 0, None)), compiler_options=FAST)
    keys = jax.random.split(jax.random.key(11), 2)
    states, metrics = run(keys, jnp.asarray(SWEEP_BETAS), params)
    return run, keys, states, jax.device_get(metrics)


def test_loop_rows_and_one_compile(params, sweep):
    run, keys, states, metrics = sweep
    rows = LOOP.num_periods + 1
    for k, v in metrics.items():
        assert v.shape == (2, rows), k
    np.testing.assert_array_equal(metrics["loop/updates"], [[0, 50, 100, 150]] * 2)
    for k, v in metrics.items():
        if k.startswith(("loss/", "kl/", "reward/", "response/", "optim/")):
            assert np.all(np.isnan(v[:, 0])), k  # no update before the start row
            assert np.all(np.isfinite(v[:, 1:])), k
        else:
            assert np.all(np.isfinite(v)), k
    np.testing.assert_array_equal(metrics["eval/kl_sft"][:, 0], 0.0)  # row 0 is theta_sft
    assert np.all(metrics["eval/kl_sft"][:, -1] > 0)
    # beta = 0: the regularised reward is the reward; beta > 0 subtracts beta KL > 0.
    np.testing.assert_allclose(metrics["reward/regularized"][0, 1:], metrics["reward/mean"][0, 1:])
    assert np.all(metrics["reward/regularized"][1, 1:] < metrics["reward/mean"][1, 1:])
    # The SFT anchor never moves; the sft weights ride along unchanged.
    _assert_close(jax.tree.map(lambda x: x[0], states.anchor_params), params, atol=0)
    assert np.all(np.asarray(states.step) == LOOP.num_updates)
    # The progress callback saw every row of every (seed, beta) element.
    assert sorted({u for u, _ in CALLS}) == [0, 50, 100, 150]
    assert len(CALLS) == 2 * rows
    # Another sweep (new seeds, other betas): no new trace (assert_max_traces), other numbers.
    _, again = run(jax.random.split(jax.random.key(12), 2), jnp.asarray([0.01, 0.02]), params)
    assert not np.allclose(again["eval/gold"][:, 1:], metrics["eval/gold"][:, 1:])


def test_reinforce_raises_the_gold_reward(sweep):
    """A tiny randomly initialised LM trained by REINFORCE (RLOO) on the gold reward for 150
    updates: the gold reward of its samples rises clearly (about 0.3 -> 0.9 here)."""
    _, _, _, metrics = sweep
    gold_reward = metrics["eval/gold"]
    for run in range(2):
        assert gold_reward[run, -1] > gold_reward[run, 0] + 0.25, gold_reward[run]


def test_snapshot_keeps_the_state_of_every_row():
    """``make_train(..., snapshot=fn)`` also returns ``fn(state)`` at every row (row 0: the init),
    stacked; without it the rows are the same."""
    algo = types.SimpleNamespace(
        init=lambda key, x0: x0,
        update=lambda x, _: (x + 1.0, {"loss/x": x}),
    )
    evaluate_fn = lambda x, key: {"eval/x": x}  # noqa: E731
    config = self_sampling.LoopConfig(num_updates=6, eval_every=2)
    state, rows, kept = jax.jit(
        self_sampling.make_train(algo, config, evaluate_fn, snapshot=lambda x: 2 * x)
    )(jax.random.key(0), jnp.float32(10.0))
    np.testing.assert_array_equal(kept, [20.0, 24.0, 28.0, 32.0])
    np.testing.assert_array_equal(rows["eval/x"], [10.0, 12.0, 14.0, 16.0])
    assert float(state) == 16.0
    _, plain = self_sampling.make_train(algo, config, evaluate_fn)(
        jax.random.key(0), jnp.float32(10.0)
    )
    np.testing.assert_array_equal(plain["eval/x"], rows["eval/x"])


@pytest.mark.parametrize("where", ["param", "loss"])
def test_diverged_update_is_undone_and_named(where):
    """Issue 20: the loop checked nothing; a NaN/inf metric or state ran on to the end. The 4th
    update (the second period: updates 3-4) blows up. An inf loss: that update is undone, the run
    freezes with x = 3. A NaN state: the period-end check sends it back to the period's start
    (x = 2). The rows report it and check_finite (as run_seeds and the align pipeline call it)
    names the update and the quantity."""

    def update(state, _):
        (x,) = state
        bad = x == 3.0  # the 4th update, from x = 3
        new = jnp.where(bad & (where == "param"), jnp.nan, x + 1.0)
        return (new,), {"loss/x": jnp.where(bad & (where == "loss"), jnp.inf, x)}

    algo = types.SimpleNamespace(init=lambda key, x0: (x0,), update=update)
    evaluate_fn = lambda s, key: {"eval/x": s[0]}  # noqa: E731
    config = self_sampling.LoopConfig(num_updates=6, eval_every=2)
    train = self_sampling.make_train(algo, config, evaluate_fn)
    state, rows = jax.jit(train)(jax.random.key(0), jnp.float32(0.0))
    np.testing.assert_array_equal(rows["check/nonfinite_step"], [-1, -1, 4, 4])
    kept = 3.0 if where == "loss" else 2.0
    np.testing.assert_array_equal(rows["eval/x"], [0.0, 2.0, kept, kept])
    assert float(state[0]) == kept
    # Row 2 averages the updates that ran (with an inf loss, update 4 did not); row 3 ran none.
    np.testing.assert_array_equal(rows["loss/x"][1:3], [0.5, 2.0 if where == "loss" else 2.5])
    assert np.isnan(rows["loss/x"][3])
    quantity = "update metric loss/x" if where == "loss" else "agent state 0"
    with pytest.raises(common.Diverged, match=f"in {quantity}.* first at update 4 of seed 0"):
        common.check_finite(rows, unit="update", checks=train.checks)
