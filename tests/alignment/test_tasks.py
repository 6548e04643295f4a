import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import tasks
from purerl.alignment.tasks import BOS_ID, EOS_ID, PAD_ID, SPURIOUS_ID

CFG = tasks.TaskConfig()  # V = 16, P = 4 (BOS + 3 words), R = 8
N = 2000  # one batch size everywhere: every jitted task function compiles once for the file


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="vocab_size"):
        tasks.TaskConfig(vocab_size=5)
    with pytest.raises(ValueError, match="response_len"):
        tasks.TaskConfig(response_len=1)
    with pytest.raises(ValueError, match="copy_prob \\+ spurious_prob"):
        tasks.TaskConfig(copy_prob=0.7, spurious_prob=0.4)
    with pytest.raises(ValueError, match="label_temperature"):
        tasks.TaskConfig(label_temperature=-1.0)
    with pytest.raises(ValueError, match="eos_prob"):
        tasks.TaskConfig(eos_prob=1.5)
    assert CFG.seq_len == 12 and CFG.num_words == 12


def test_gold_reward_hand_computed():
    prompt = jnp.array([[BOS_ID, 5, 7, 5], [BOS_ID, 5, 7, 5], [BOS_ID, 5, 7, 5], [BOS_ID, 6, 6, 6]])
    response = jnp.array(
        [
            [7, 5, 3, 3, 8, EOS_ID, PAD_ID, PAD_ID],
            [5, 5, 5, 9, 9, 4, 4, 4],
            [EOS_ID, 7, 5, 0, 0, 0, 0, 0],
            [6, 3, 6, EOS_ID, 0, 0, 0, 0],
        ]
    )
    mask = jnp.array(
        [
            [1, 1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 1, 1, 1],
            [1, 0, 0, 0, 0, 0, 0, 0],
            [1, 1, 1, 1, 0, 0, 0, 0],
        ],
        jnp.float32,
    )
    # W(x) = {5, 7} for the first three prompts, {6} for the last.
    # row 0: covers {5, 7} = 2; one repeat (3, 3); has EOS         -> 2 - 0.5 * 1       = 1.5
    # row 1: covers {5} = 1; repeats 5-5, 5-5, 9-9, 4-4, 4-4 = 5; no EOS -> 1 - 2.5 - 1 = -2.5
    # row 2: only EOS is inside the mask (7, 5 after it are ignored) -> 0
    # row 3: covers {6} = 1 (a second mention adds nothing); 6-3-6 has no repeat -> 1.0
    gold = tasks.gold_reward(prompt, response, mask, CFG)
    np.testing.assert_allclose(gold, [1.5, -2.5, 0.0, 1.0])
    # row 1 with c_rep = 1, c_eos = 2: 1 - 5 - 2 = -6
    harsh = tasks.TaskConfig(repeat_penalty=1.0, no_eos_penalty=2.0)
    np.testing.assert_allclose(tasks.gold_reward(prompt, response, mask, harsh)[1], -6.0)
    np.testing.assert_allclose(tasks.spurious_count(response, mask), [2, 0, 0, 1])


def test_generators_layout_and_the_spurious_correlation():
    seqs = tasks.corpus(jax.random.key(0), CFG, N)
    tok, mask = np.asarray(seqs.tokens), np.asarray(seqs.mask)
    assert tok.shape == (N, 12) and np.all(tok[:, 0] == BOS_ID)
    assert np.all((tok[:, 1:4] >= tasks.FIRST_WORD_ID) & (tok[:, 1:4] < 16))
    assert np.all(mask[:, :4] == 0) and np.all(mask[:, 4] == 1)
    length = mask.sum(1).astype(int)
    last = 4 + length - 1
    assert np.all(tok[np.arange(N), last] == EOS_ID)  # every reference response stops
    after = np.arange(12)[None] > last[:, None]
    assert np.all(tok[after] == PAD_ID) and np.all(mask[after] == 0)
    assert np.all((tok == EOS_ID).sum(1) == 1)
    resp = tok[:, 4:]
    assert not np.any((resp[:, 1:] == SPURIOUS_ID) & (resp[:, :-1] == SPURIOUS_ID))  # no "S S"

    # Hacking is possible: #S correlates with gold in the reference data, so a proxy can learn it,
    # while responses stuffed with S have more S and lower gold than the reference.
    gold = np.asarray(tasks.sequence_gold_reward(seqs.tokens, seqs.mask, CFG))
    spur = np.asarray(tasks.spurious_count(seqs.tokens, seqs.mask))
    assert np.corrcoef(spur, gold)[0, 1] > 0.2
    spam = tasks.corpus(jax.random.key(1), CFG, N, tasks.spam_generator(CFG))
    spam_gold = np.asarray(tasks.sequence_gold_reward(spam.tokens, spam.mask, CFG))
    spam_spur = np.asarray(tasks.spurious_count(spam.tokens, spam.mask))
    assert spam_spur.mean() > 2 * spur.mean() and spam_gold.mean() < gold.mean() - 0.5
    degenerate = tasks.corpus(jax.random.key(2), CFG, N, tasks.degenerate_generator(CFG))
    d_resp = np.asarray(degenerate.tokens)[:, 4:]
    assert np.any((d_resp[:, 1:] == SPURIOUS_ID) & (d_resp[:, :-1] == SPURIOUS_ID))
    rand = tasks.corpus(jax.random.key(3), CFG, N, tasks.random_generator(CFG))
    assert not np.any(np.asarray(rand.tokens) == SPURIOUS_ID)


def test_preference_labels_follow_gold_without_noise():
    p = tasks.preference_dataset(jax.random.key(4), CFG, N, temperature=0.0)
    assert np.all(np.asarray(p.gold_chosen) >= np.asarray(p.gold_rejected))
    assert not np.any(p.flipped)
    np.testing.assert_allclose(
        tasks.sequence_gold_reward(p.chosen, p.chosen_mask, CFG), p.gold_chosen
    )
    np.testing.assert_allclose(
        tasks.sequence_gold_reward(p.rejected, p.rejected_mask, CFG), p.gold_rejected
    )
    np.testing.assert_array_equal(p.chosen[:, :4], p.rejected[:, :4])  # same prompt


def test_label_noise_flips_the_expected_fraction():
    p = tasks.preference_dataset(jax.random.key(5), CFG, N, noise=0.25, temperature=0.0)
    flipped = np.asarray(p.flipped)
    # Binomial(2000, 0.25) / 2000: sd = sqrt(.25 * .75 / 2000) = 0.0097; allow 3 sd.
    assert abs(flipped.mean() - 0.25) < 0.03
    g_pos, g_neg = np.asarray(p.gold_chosen), np.asarray(p.gold_rejected)
    strict = g_pos != g_neg
    np.testing.assert_array_equal((g_pos < g_neg)[strict], flipped[strict])


def test_bradley_terry_labels_match_the_sigmoid():
    tau = 0.5
    prompt_key, a_key, b_key, label_key = jax.random.split(jax.random.key(6), 4)
    prompts = tasks.sample_prompts(prompt_key, CFG, N)
    ya, ma = tasks.generate_responses(a_key, prompts, CFG)
    yb, mb = tasks.generate_responses(b_key, prompts, CFG)
    p = tasks.preference_pairs(label_key, prompts, ya, ma, yb, mb, CFG, temperature=tau)
    a_won = np.all(np.asarray(p.chosen[:, 4:]) == np.asarray(ya), axis=1)
    diff = tasks.gold_reward(prompts, ya, ma, CFG) - tasks.gold_reward(prompts, yb, mb, CFG)
    expected = np.asarray(jax.nn.sigmoid(diff / tau))
    # Mean of 2000 Bernoullis: sd <= sqrt(.25 / 2000) = 0.011; allow 3 sd.
    assert abs(a_won.mean() - expected.mean()) < 0.035
    big = np.asarray(diff) >= 1.0  # sigmoid(1 / 0.5) = 0.88
    assert a_won[big].mean() > 0.8


def test_jit_vmap_and_evaluation_sets():
    sets = tasks.evaluation_sets(jax.random.key(7), CFG, N)
    assert set(sets) == {"in_distribution", "shifted"}
    for prefs in sets.values():  # oracle labels
        assert prefs.chosen.shape == (N, 12)
        assert np.all(np.asarray(prefs.gold_chosen) >= np.asarray(prefs.gold_rejected))
    shifted = sets["shifted"]
    assert np.any(np.asarray(shifted.chosen) == SPURIOUS_ID)
    # Labelling is jittable and vmaps over the noise level (one compile for the sweep).
    prompts = tasks.sample_prompts(jax.random.key(8), CFG, N)
    ya, ma = tasks.generate_responses(jax.random.key(9), prompts, CFG)
    yb, mb = tasks.generate_responses(jax.random.key(10), prompts, CFG)
    label = lambda k, e: tasks.preference_pairs(k, prompts, ya, ma, yb, mb, CFG, noise=e).flipped
    keys = jax.random.split(jax.random.key(11), 3)
    flipped = jax.jit(jax.vmap(label))(keys, jnp.array([0.0, 0.5, 1.0]))
    np.testing.assert_allclose(np.asarray(flipped).mean(1), [0.0, 0.5, 1.0], atol=0.05)


def test_bad_inputs_raise_clear_errors():
    prompt = tasks.sample_prompts(jax.random.key(0), CFG, N)
    response, mask = tasks.generate_responses(jax.random.key(1), prompt, CFG)
    with pytest.raises(ValueError, match="prompt_len=4"):
        tasks.gold_reward(prompt[:, :3], response, mask, CFG)
    with pytest.raises(ValueError, match="response_len=8"):
        tasks.gold_reward(prompt, response[:, :5], mask[:, :5], CFG)
    with pytest.raises(ValueError, match="mask has shape"):
        tasks.gold_reward(prompt, response, mask[:, :5], CFG)
    with pytest.raises(ValueError, match="noise"):
        tasks.preference_pairs(
            jax.random.key(0), prompt, response, mask, response, mask, CFG, noise=1.5
        )
    with pytest.raises(ValueError, match="temperature"):
        tasks.preference_pairs(
            jax.random.key(0), prompt, response, mask, response, mask, CFG, temperature=-1.0
        )
    with pytest.raises(ValueError, match="n >= 1"):
        tasks.preference_dataset(jax.random.key(0), CFG, 0)
    with pytest.raises(ValueError, match="prompt_len \\+ response_len"):
        tasks.split(jnp.zeros((2, 10), jnp.int32), jnp.zeros((2, 10)), CFG)
