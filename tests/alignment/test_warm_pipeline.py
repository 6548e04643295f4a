"""WARM on the toy LM world: pretrain/SFT, M reward models under one vmap, WA/ENS evaluation.

Sizes are shared with tests/alignment/test_align_cli.py (which runs ``purerl align --baklava`` with
the same settings), so when both files run in one process the CLI reuses these compiles.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import lm, pretrain, tasks, warm
from purerl.alignment import reward_model as rm
from purerl.core import divergence

TASK = tasks.TaskConfig()  # sequences [N, 12]
LM = lm.LMConfig(vocab_size=16, max_len=12, d_model=16, num_heads=2, num_layers=1)
STEPS, BATCH = 20, 16  # pretrain / SFT updates and batch
PAIRS = EVAL_PAIRS = 64  # one size: the task generators compile once
CFG = warm.WarmConfig(
    rm=rm.RMConfig(lm=LM, probe_steps=20),
    num_members=3,
    steps=6,
    batch_size=16,
    learning_rates=(3e-3, 1e-3),
    dropout_rates=(0.0, 0.1),
)


@pytest.fixture(scope="module")
def lms():
    pre = pretrain.pretrain(jax.random.key(0), LM, TASK, STEPS, BATCH)
    sft = pretrain.sft(jax.random.key(1), pre.params, LM, TASK, STEPS, BATCH, 3e-3, (10, 20))
    return pre, sft


@pytest.fixture(scope="module")
def data():
    prefs = tasks.preference_dataset(jax.random.key(2), TASK, PAIRS, noise=0.25)
    return prefs, tasks.evaluation_sets(jax.random.key(3), TASK, EVAL_PAIRS)


@pytest.fixture(scope="module")
def baklava(lms, data):
    """Members from the 2 SFT checkpoints (Baklava), diverse lr / dropout / data order."""
    return warm.train_reward_models(jax.random.key(4), lms[1].checkpoints, data[0], CFG)


def test_pretrain_divergence_is_named():
    """Issue 20: a diverging pre-training returned NaN losses and the pipeline carried on. The
    guard freezes the scan and raises naming the stage, the update and the quantity (the same
    compile as tests/alignment/test_align_cli.py's divergence test)."""
    with pytest.raises(divergence.Diverged, match=r"first at update \d+ of pre-training") as e:
        pretrain.pretrain(jax.random.key(0), LM, TASK, 3, BATCH, lr=1e30)
    assert e.value.cause == "agent" and e.value.quantity.startswith(("update metric", "state"))


def test_reward_model_divergence_is_named(lms, data, baklava, monkeypatch):
    """Member 1 with an absurd learning rate (its plan's step size is traced: the baklava
    fixture's compile serves): each member's scan freezes before its first NaN/inf update; the
    error names member 1, the update and the quantity."""
    plan = warm.member_plan

    def huge_lr(*args):
        p = plan(*args)
        return p._replace(learning_rate=p.learning_rate.at[1].set(1e30))

    monkeypatch.setattr(warm, "member_plan", huge_lr)
    with pytest.raises(divergence.Diverged, match=r"first at update \d of reward model member 1"):
        warm.train_reward_models(jax.random.key(4), lms[1].checkpoints, data[0], CFG)


def _member(tree, i):
    return jax.tree.map(lambda x: x[i], tree)


def test_pretrain_and_sft_losses_and_checkpoints(lms):
    pre, sft = lms
    assert pre.losses.shape == (STEPS,) and pre.checkpoints is None
    assert np.all(np.isfinite(pre.losses)) and np.all(np.isfinite(sft.losses))
    # A uniform guess over 16 tokens costs log 16 = 2.77 nats; pre-training goes below it.
    assert float(pre.losses[-3:].mean()) < np.log(16) - 0.1
    assert sft.checkpoint_steps == (10, 20)
    for c, p in zip(jax.tree.leaves(sft.checkpoints), jax.tree.leaves(sft.params), strict=True):
        assert c.shape == (2, *p.shape)
        np.testing.assert_array_equal(c[1], p)  # the checkpoint after the last update is the result
    emb = sft.checkpoints["token_embed"]["embeddings"]
    assert not np.allclose(emb[0], emb[1])
    assert not np.allclose(emb[1], pre.params["token_embed"]["embeddings"])


def test_pretrain_bad_input():
    with pytest.raises(ValueError, match="checkpoints must be increasing"):
        pretrain.pretrain(jax.random.key(0), LM, TASK, STEPS, BATCH, checkpoints=(30,))
    with pytest.raises(ValueError, match="checkpoints must be increasing"):
        pretrain.pretrain(jax.random.key(0), LM, TASK, STEPS, BATCH, checkpoints=(5, 5))
    with pytest.raises(ValueError, match="max_len"):
        short = lm.LMConfig(vocab_size=16, max_len=8, d_model=16, num_heads=2, num_layers=1)
        pretrain.pretrain(jax.random.key(0), short, TASK, STEPS, BATCH)
    with pytest.raises(ValueError, match="steps must be a positive int"):
        pretrain.pretrain(jax.random.key(0), LM, TASK, 0, BATCH)
    wide = lm.make_lm(lm.LMConfig(vocab_size=16, max_len=12, d_model=32, num_heads=2))
    with pytest.raises(ValueError, match="init_params"):
        params = wide.init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))
        pretrain.sft(jax.random.key(0), params, LM, TASK, STEPS, BATCH)


def test_member_plan_cycles_the_hyperparameter_grid():
    plan = warm.member_plan(jax.random.key(0), CFG, num_checkpoints=2)
    np.testing.assert_allclose(plan.learning_rate, [3e-3, 1e-3, 3e-3])
    np.testing.assert_allclose(plan.dropout_rate, [0.0, 0.1, 0.0])
    np.testing.assert_array_equal(plan.checkpoint, [0, 1, 0])
    keys = jax.random.key_data(plan.order_key)
    assert not np.array_equal(keys[0], keys[1])
    shared = warm.member_plan(
        jax.random.key(0), warm.WarmConfig(num_members=3, shared_data_order=True)
    )
    shared_keys = jax.random.key_data(shared.order_key)
    assert np.array_equal(shared_keys[0], shared_keys[2])


# sup_t |m_hat_t / sqrt(v_hat_t)| for optax.scale_by_adam (b1 = 0.9, b2 = 0.999): by Cauchy-Schwarz,
# |sum_k b1^k g_k| <= sqrt(sum_k (b1^2 / b2)^k) sqrt(sum_k b2^k g_k^2), so
# |m / sqrt(v)| <= (1 - b1) / sqrt(1 - b2) / sqrt(1 - b1^2 / b2) ~= 7.27 (bias corrections make it
# smaller at small t and tend to 1 at large t).
ADAM_STEP_BOUND = (1 - 0.9) / np.sqrt(1 - 0.999) / np.sqrt(1 - 0.9**2 / 0.999)


def test_vmapped_members_equal_separate_runs(baklava, lms, data):
    prefs = data[0]
    run = baklava
    assert run.params.head.shape == (3, LM.d_model)
    assert run.init.head.shape == (2, LM.d_model)  # one linear-probed head per SFT checkpoint
    assert run.metrics["loss/bt"].shape == (CFG.steps, 3)
    assert run.metrics["probe/accuracy"].shape == (2,)
    assert all(np.all(np.isfinite(v)) for v in run.metrics.values())
    # The initial trunks are the Baklava checkpoints, member i from checkpoint i % 2.
    for k in range(2):
        np.testing.assert_array_equal(
            run.init.trunk["token_embed"]["embeddings"][k],
            lms[1].checkpoints["token_embed"]["embeddings"][k],
        )
    step = rm.make_train_step(CFG.rm)
    one_run = jax.jit(lambda state, batches: jax.lax.scan(step.update, state, batches))
    plan, separate = run.plan, []
    for i in range(3):
        init = _member(run.init, int(plan.checkpoint[i]))
        state = step.init(init, plan.key[i], plan.learning_rate[i], plan.dropout_rate[i])
        batches = rm.minibatches(plan.order_key[i], prefs, CFG.batch_size, CFG.steps)
        state, metrics = one_run(state, batches)
        np.testing.assert_allclose(metrics["loss/bt"], run.metrics["loss/bt"][:, i], rtol=1e-4)
        vmapped = _member(run.params, i)
        for (path, a), b in zip(
            jax.tree_util.tree_flatten_with_path(state.params)[0],
            jax.tree.leaves(vmapped),
            strict=True,
        ):
            a, b, where = np.asarray(a), np.asarray(b), jax.tree_util.keystr(path)
            gauge = np.zeros(a.shape, bool)
            # Directions the BT loss cannot see have a zero gradient up to round-off, which Adam
            # normalises into steps of order lr: the final LayerNorm offset (it shifts r(x, y+)
            # and r(x, y-) alike) and the attention key bias (softmax is shift-invariant).
            if "final_ln" in where and "offset" in where:
                gauge[:] = True
            if "attn_qkv" in where and where.endswith("['b']"):
                gauge[LM.d_model : 2 * LM.d_model] = True
            np.testing.assert_allclose(a[~gauge], b[~gauge], rtol=1e-4, atol=1e-5, err_msg=where)
            # Adam's step on a coordinate is lr |m_hat / sqrt(v_hat)| <= lr * ADAM_STEP_BOUND
            # (Cauchy-Schwarz on the two moving averages), whatever the (round-off) gradients are;
            # both runs move from the same init, so they differ by at most twice their drift.
            bound = 2 * CFG.steps * float(plan.learning_rate[i]) * ADAM_STEP_BOUND
            assert np.all(np.abs(a[gauge] - b[gauge]) <= bound), where
        separate.append(state.params)
    # The rewards' differences, all the BT loss and accuracy see, agree to float tolerance (scored
    # on evaluate_warm's batch layout: in_distribution, shifted, train pairs; a cached compile).
    sets = [*data[1].values(), prefs]
    tokens = jnp.concatenate([x for p in sets for x in (p.chosen, p.rejected)])
    mask = jnp.concatenate([x for p in sets for x in (p.chosen_mask, p.rejected_mask)])
    r_sep = warm.score(LM, warm.stack(separate), tokens, mask).members.reshape(3, -1, PAIRS)
    r_vm = warm.score(LM, run.params, tokens, mask).members.reshape(3, -1, PAIRS)
    diff = lambda r: r[:, 0::2] - r[:, 1::2]  # chosen minus rejected, per set
    np.testing.assert_allclose(diff(r_sep), diff(r_vm), atol=1e-4)
    # The members really are different models.
    assert not np.allclose(run.params.head[0], run.params.head[2])


def test_evaluate_warm_keys_and_ranges(baklava, data):
    prefs, eval_sets = data
    out = warm.evaluate_warm(LM, baklava.params, eval_sets, prefs)
    assert 0 < int(np.sum(prefs.flipped)) < PAIRS
    models = ["member_0", "member_1", "member_2", "member_mean", "wa", "ens"]
    sets = ["in_distribution", "shifted", "train", "train_corrupted", "train_clean"]
    assert set(out) == {f"{s}/{m}" for s in sets for m in models}
    assert all(isinstance(v, float) and 0.0 <= v <= 1.0 for v in out.values())
    for m in models:  # the corrupted and clean subsets partition the training pairs
        f = float(np.mean(prefs.flipped))
        expected = f * out[f"train_corrupted/{m}"] + (1 - f) * out[f"train_clean/{m}"]
        assert out[f"train/{m}"] == pytest.approx(expected, abs=1e-6)
    means = [np.mean([out[f"{s}/member_{i}"] for i in range(3)]) for s in sets]
    np.testing.assert_allclose([out[f"{s}/member_mean"] for s in sets], means)
    # Without train_prefs there are only the evaluation sets.
    assert {k.split("/")[0] for k in warm.evaluate_warm(LM, baklava.params, eval_sets)} == {
        "in_distribution",
        "shifted",
    }


def test_weight_average_of_identical_members_is_that_member(baklava, data):
    member = _member(baklava.params, 1)
    same = warm.stack([member] * 3)
    for a, b in zip(
        jax.tree.leaves(warm.weight_average(same)), jax.tree.leaves(member), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    out = warm.evaluate_warm(LM, same, data[1], data[0])
    for s in ("in_distribution", "shifted", "train_corrupted"):
        assert out[f"{s}/wa"] == out[f"{s}/ens"] == out[f"{s}/member_0"] == out[f"{s}/member_2"]


def test_interpolation_curve_endpoints(baklava, data):
    phi1, phi2 = _member(baklava.params, 0), _member(baklava.params, 1)
    shifted = data[1]["shifted"]
    curve = warm.interpolation_curve(LM, phi1, phi2, np.linspace(0.0, 1.0, 5), shifted)
    assert set(curve) == {"lambda", "wa", "ens", "diagonal"}
    assert all(v.shape == (5,) for v in curve.values())
    ev = warm.evaluate_warm(LM, baklava.params, data[1])
    # lam = 0 is phi1 and lam = 1 is phi2 for all three curves (float32 lerp is exact there).
    for j, m in ((0, "member_0"), (-1, "member_1")):
        for name in ("wa", "ens", "diagonal"):
            assert curve[name][j] == pytest.approx(ev[f"shifted/{m}"], abs=1e-6)


def test_bad_input_raises(lms, data):
    prefs = data[0]
    sft = lms[1]
    with pytest.raises(ValueError, match="num_members"):
        warm.WarmConfig(num_members=0)
    with pytest.raises(ValueError, match="learning_rates"):
        warm.WarmConfig(learning_rates=())
    with pytest.raises(ValueError, match="dropout_rates"):
        warm.WarmConfig(dropout_rates=(1.0,))
    empty = jax.tree.map(lambda x: x[:0], prefs)
    with pytest.raises(ValueError, match="empty preference set"):
        warm.train_reward_models(jax.random.key(0), sft.params, empty, CFG)
    # Checkpoint stacks whose leaves disagree on K.
    bad = dict(sft.checkpoints)
    bad["final_ln"] = jax.tree.map(lambda x: x[:1], bad["final_ln"])
    with pytest.raises(ValueError, match="disagree on the number of members"):
        warm.train_reward_models(jax.random.key(0), bad, prefs, CFG)
    other = lm.make_lm(lm.LMConfig(vocab_size=16, max_len=12, d_model=32, num_heads=2))
    with pytest.raises(ValueError, match="neither LM parameters"):
        params = other.init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))
        warm.train_reward_models(jax.random.key(0), params, prefs, CFG)
    four = jax.tree.map(lambda x: jnp.concatenate([x, x]), sft.checkpoints)  # K = 4 > M = 3
    with pytest.raises(ValueError, match="1 <= K <= M"):
        warm.train_reward_models(jax.random.key(0), four, prefs, CFG)
    with pytest.raises(ValueError, match="batch_size"):
        warm.train_reward_models(jax.random.key(0), sft.params, _first(prefs, 8), CFG)
    no_members = rm.RMParams(
        trunk=jax.tree.map(lambda x: x[:0], sft.checkpoints), head=jnp.zeros((0, LM.d_model))
    )
    with pytest.raises(ValueError, match="M = 0"):
        warm.evaluate_warm(LM, no_members, data[1])


def _first(prefs, n):
    return jax.tree.map(lambda x: x[:n], prefs)
