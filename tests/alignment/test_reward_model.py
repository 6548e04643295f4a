import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import lm, tasks
from purerl.alignment import reward_model as rm

TASK = tasks.TaskConfig()  # sequences [N, 12]
LM = lm.LMConfig(vocab_size=16, max_len=12, d_model=16, num_heads=2, num_layers=1)
CFG = rm.RMConfig(lm=LM, learning_rate=3e-3, probe_steps=100, probe_learning_rate=0.05)
N, BATCH, STEPS = 2000, 32, 25  # one shape per compiled function (N as in test_tasks)


@pytest.fixture(scope="module")
def lm_params():
    return lm.make_lm(LM).init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))


@pytest.fixture(scope="module")
def prefs():
    return tasks.preference_dataset(jax.random.key(1), TASK, N, temperature=0.0)


@pytest.fixture(scope="module")
def train():
    step = rm.make_train_step(CFG)

    @jax.jit
    def run(states, batches):  # STEPS updates of a stack of runs on shared batches
        return jax.lax.scan(jax.vmap(step.update, in_axes=(0, None)), states, batches)

    return step, run


def test_bt_loss_hand_computed():
    # r+ = 1, r- = 0: -log sigmoid(1) = log(1 + e^-1) = 0.31326; r+ = r-: log 2 = 0.69315
    np.testing.assert_allclose(rm.bt_loss(jnp.array([1.0]), jnp.array([0.0])), 0.31326, atol=1e-5)
    np.testing.assert_allclose(rm.bt_loss(jnp.array([2.0]), jnp.array([2.0])), np.log(2), atol=1e-6)
    # the mean over pairs: (0.31326 + 0.69315) / 2 = 0.50320
    loss = rm.bt_loss(jnp.array([1.0, 3.0]), jnp.array([0.0, 3.0]))
    np.testing.assert_allclose(loss, 0.50320, atol=1e-5)


def test_accuracy_counts_ties_as_correct():
    # 1 >= 1 (tie: correct), 0 >= 1 (wrong), 2 >= 0 (correct) -> 2 / 3
    acc = rm.accuracy(jnp.array([1.0, 0.0, 2.0]), jnp.array([1.0, 1.0, 0.0]))
    np.testing.assert_allclose(acc, 2 / 3)


def test_calibration_error_hand_computed():
    # r+ - r- = [0, 0, 2, -2] -> p = [.5, .5, .8808, .1192], confidence max(p, 1 - p) =
    # [.5, .5, .8808, .8808], correct 1{r+ >= r-} = [1, 1, 1, 0].
    # bins over [0.5, 1] of width 0.05: .5 -> bin 0, .8808 -> bin floor(.3808 * 20) = 7.
    # bin 0: |(1 - .5) + (1 - .5)| = 1; bin 7: |(1 - .8808) + (0 - .8808)| = .7616
    # ECE = (1 + .7616) / 4 = 0.4404
    ece = rm.calibration_error(jnp.array([0.0, 1.0, 2.0, 0.0]), jnp.array([0.0, 1.0, 0.0, 2.0]))
    np.testing.assert_allclose(ece, 0.44040, atol=1e-4)
    # A confident, correct model is calibrated: r+ - r- = 20 -> confidence 1, accuracy 1.
    np.testing.assert_allclose(
        rm.calibration_error(jnp.full(5, 20.0), jnp.zeros(5)), 0.0, atol=1e-6
    )


def test_reward_reads_the_last_response_token(lm_params, prefs):
    params = rm.init_reward_model(jax.random.key(2), lm_params, CFG)
    tokens, mask = prefs.chosen, prefs.chosen_mask
    r = rm.reward(LM, params, tokens, mask)
    assert r.shape == (N,)
    last = np.asarray(jnp.max(jnp.where(mask > 0, jnp.arange(12), 0), axis=1))
    hidden = lm.make_lm(LM).apply(lm_params, tokens).hidden
    np.testing.assert_allclose(r, hidden[np.arange(N), last] @ params.head, atol=1e-5)
    # Tokens after the last response token (pad) do not matter; the last token itself does.
    after = jnp.arange(12)[None] > last[:, None]
    r_pad = rm.reward(LM, params, jnp.where(after, 5, tokens), mask)
    np.testing.assert_allclose(r_pad, r, atol=1e-5)
    at_last = jnp.arange(12)[None] == last[:, None]
    r_last = rm.reward(LM, params, jnp.where(at_last, (tokens + 1) % 16, tokens), mask)
    assert np.all(np.abs(np.asarray(r_last - r)) > 0)


def test_init_reuses_the_trunk_and_the_probe_freezes_it(lm_params, prefs):
    params = rm.init_reward_model(jax.random.key(3), lm_params, CFG)
    assert params.trunk is lm_params and params.head.shape == (16,)
    before = rm.evaluate(LM, params, prefs)
    probed, metrics = rm.linear_probe(CFG, params, prefs)
    for a, b in zip(jax.tree.leaves(probed.trunk), jax.tree.leaves(lm_params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(metrics["loss/probe"]) < float(before["loss/bt"]) - 0.02
    after = rm.evaluate(LM, probed, prefs)
    np.testing.assert_allclose(after["rm/accuracy"], metrics["rm/accuracy"], atol=1e-6)
    assert set(after) == {"loss/bt", "rm/accuracy", "rm/ece", "rm/margin"}


def test_train_step_scans_and_vmaps_over_seeds_lr_and_dropout(lm_params, prefs, train):
    step, run = train
    params = rm.init_reward_model(jax.random.key(4), lm_params, CFG)
    keys = jax.random.split(jax.random.key(5), 3)
    lrs, rates = jnp.array([0.0, 3e-3, 3e-3]), jnp.array([0.0, 0.1, 0.0])
    states = jax.vmap(step.init, in_axes=(None, 0, 0, 0))(params, keys, lrs, rates)
    batches = rm.minibatches(jax.random.key(6), prefs, BATCH, STEPS)
    assert batches.chosen.shape == (STEPS, BATCH, 12)
    new, metrics = run(states, batches)
    assert jax.tree.structure(new) == jax.tree.structure(states)
    for a, b in zip(jax.tree.leaves(new), jax.tree.leaves(states), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    assert all(np.all(np.isfinite(v)) for v in metrics.values())
    np.testing.assert_array_equal(new.step, [STEPS] * 3)
    # learning rate 0 leaves the run's parameters exactly where they started
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a[0], b)
    assert not np.allclose(new.params.head[2], params.head)
    # runs 1 and 2 differ only in seed and dropout rate
    assert not np.allclose(new.params.head[1], new.params.head[2])


def test_reward_model_learns_gold_preferences_above_chance(lm_params, prefs, train):
    step, run = train
    params = rm.init_reward_model(jax.random.key(7), lm_params, CFG)
    params, _ = rm.linear_probe(CFG, params, prefs)
    keys = jax.random.split(jax.random.key(8), 3)  # three seeds (data order is shared)
    states = jax.vmap(step.init, in_axes=(None, 0))(params, keys)
    for k in jax.random.split(jax.random.key(9), 8):  # 8 x 25 = 200 updates
        states, metrics = run(states, rm.minibatches(k, prefs, BATCH, STEPS))
    held_out = tasks.preference_dataset(jax.random.key(10), TASK, N, temperature=0.0)
    strict = np.asarray(held_out.gold_chosen) > np.asarray(held_out.gold_rejected)
    for i in range(3):
        params_i = jax.tree.map(lambda x, i=i: x[i], states.params)
        r_pos, r_neg = rm.pair_rewards(LM, params_i, held_out)
        acc = float(np.mean((np.asarray(r_pos) > np.asarray(r_neg))[strict]))
        assert acc > 0.65, (i, acc)  # chance is 0.5 on pairs the gold reward strictly orders
    assert float(metrics["loss/bt"][-5:].mean()) < np.log(2) - 0.1


def test_bad_inputs_raise_clear_errors(lm_params, prefs):
    params = rm.init_reward_model(jax.random.key(0), lm_params, CFG)
    empty = jax.tree.map(lambda x: x[:0], prefs)
    with pytest.raises(ValueError, match="empty preference set"):
        rm.linear_probe(CFG, params, empty)
    with pytest.raises(ValueError, match="empty preference set"):
        rm.make_train_step(CFG).loss(params, empty)
    bad = prefs._replace(rejected=prefs.rejected[:, :10], rejected_mask=prefs.rejected_mask[:, :10])
    with pytest.raises(ValueError, match="rejected has shape"):
        rm.evaluate(LM, params, bad)
    with pytest.raises(ValueError, match="r_rejected has shape"):
        rm.bt_loss(jnp.zeros(3), jnp.zeros(4))
    with pytest.raises(ValueError, match="non-empty"):
        rm.accuracy(jnp.zeros(0), jnp.zeros(0))
    other = lm.LMConfig(vocab_size=16, max_len=12, d_model=32, num_heads=2, num_layers=2)
    with pytest.raises(ValueError, match="LMConfig says"):
        rm.reward(other, params, prefs.chosen, prefs.chosen_mask)
    with pytest.raises(ValueError, match="reward head"):
        rm.reward(LM, params._replace(head=jnp.zeros(3)), prefs.chosen, prefs.chosen_mask)
    with pytest.raises(ValueError, match="batch_size"):
        rm.minibatches(jax.random.key(0), prefs, N + 1, 2)
    with pytest.raises(ValueError, match="learning_rate"):
        rm.RMConfig(learning_rate=0.0)
    with pytest.raises(ValueError, match="probe_steps"):
        rm.RMConfig(probe_steps=0)
