"""The offline loop: device-resident data, sampling inside the scan, seeds, resume, errors, CLI."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import cli, envs, experts
from purerl.agents import td3
from purerl.core.types import Algorithm
from purerl.datasets import io
from purerl.datasets.schema import DatasetError, validate
from purerl.loops import common, offline, writers
from tests.loops.blowup import blows_up

ENV = envs.make("point_mass")


@pytest.fixture(scope="module")
def dataset():
    """2000 uniformly random point_mass transitions, with reference scores in the metadata."""
    collect = experts.collector(ENV, None, 20, 100, False)
    arrays = experts.to_arrays(collect(None, jax.random.key(0), jnp.int32(0), jnp.int32(0)))
    meta = {"env": "point_mass", "ref_min_score": -100.0, "ref_max_score": -10.0}
    return validate(arrays, {**meta, "max_episode_steps": ENV.spec.episode_length})


def tiny(config=None):
    return td3.make(config or td3.Config(hidden=(16, 16)), ENV.spec)


CONFIG = offline.Config(total_steps=40, eval_every=20, batch_size=32, eval_episodes=2)


def test_prepare_data_normalizes(dataset):
    data = offline.prepare_data(dataset, CONFIG)
    obs = np.asarray(data.transitions.obs)
    np.testing.assert_allclose(obs.mean(0), 0, atol=1e-4)
    raw_std = dataset.observations.std(0)
    np.testing.assert_allclose(obs.std(0), raw_std / (raw_std + 1e-3), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(data.transitions.next_obs),
        (dataset.next_observations - np.asarray(data.obs_mean)) / np.asarray(data.obs_std),
        rtol=1e-5,
        atol=1e-5,
    )
    assert data.transitions.next_action is None
    raw = offline.prepare_data(dataset, offline.Config(normalize_obs=False))
    np.testing.assert_array_equal(np.asarray(raw.transitions.obs), dataset.observations)
    with_next = offline.prepare_data(dataset, CONFIG, needs_next_action=True)
    np.testing.assert_array_equal(
        np.asarray(with_next.transitions.next_action), dataset.next_actions()
    )


def test_run_seeds_rows_and_equivalence(dataset):
    algo = tiny()
    data = offline.prepare_data(dataset, CONFIG)
    train = offline.make_train(algo, ENV, CONFIG, ref_scores=(-100.0, -10.0))
    states, metrics = common.run_seeds(train, jax.random.key(0), 2, args=(data,))
    assert np.asarray(metrics["updates"]).tolist() == [[20, 40], [20, 40]]
    for k in ("eval/return", "eval/normalized", "loss/critic", "check/nonfinite_step"):
        assert np.asarray(metrics[k]).shape == (2, 2), k
    np.testing.assert_allclose(
        metrics["eval/normalized"], 100 * (metrics["eval/return"] + 100) / 90, rtol=1e-5
    )
    # seed 1 of the vmapped run == the same key run alone
    key1 = jax.random.split(jax.random.key(0), 2)[1]
    _, alone = jax.jit(train)(key1, data)
    np.testing.assert_allclose(metrics["loss/critic"][1], alone["loss/critic"], rtol=2e-4)


def test_resume_equals_uninterrupted(dataset):
    algo = tiny()
    data = offline.prepare_data(dataset, CONFIG)
    loop = offline.make_loop(algo, ENV, CONFIG)
    run = jax.jit(loop.run, static_argnums=1)
    carry = loop.init(jax.random.key(3))
    full, m_full = run(carry, 2, data)
    half, _ = run(carry, 1, data)
    resumed, m_rest = run(half, 1, data)
    np.testing.assert_array_equal(m_full["loss/critic"][1], m_rest["loss/critic"][0])
    for a, b in zip(
        jax.tree.leaves(full.agent.params), jax.tree.leaves(resumed.agent.params), strict=True
    ):
        np.testing.assert_array_equal(a, b)


def test_data_is_an_argument_not_a_constant(dataset):
    """The dataset is passed to the compiled program, not embedded: the program text stays small
    and one compilation serves any dataset of the same shape."""
    train = offline.make_train(tiny(), ENV, CONFIG)
    data = offline.prepare_data(dataset, CONFIG)
    text = jax.jit(train).lower(jax.random.key(0), data).as_text()
    assert len(text) < 2_000_000  # the 2000x4 observations alone would be ~0.2 MB of text each
    jitted = jax.jit(train)
    jitted(jax.random.key(0), data)
    other = data._replace(transitions=jax.tree.map(lambda x: x[::-1], data.transitions))
    jitted(jax.random.key(0), other)
    assert jitted._cache_size() == 1


def test_nonfinite_metrics_raise(dataset):
    algo = tiny()

    def bad_update(state, batch):
        state, metrics = algo.update(state, batch)
        return state, {**metrics, "loss/critic": metrics["loss/critic"] * jnp.nan}

    broken = Algorithm(algo.init, algo.act, algo.loss, bad_update)
    data = offline.prepare_data(dataset, CONFIG)
    train = offline.make_train(broken, ENV, CONFIG)
    with pytest.raises(common.NonFiniteError, match="first at update 1 of seed 0"):
        common.run_seeds(train, jax.random.key(0), 1, args=(data,))


@pytest.mark.parametrize(
    "where, at, step, kept",
    [("loss", 3, 3, 2), ("param", 23, 40, 20)],  # a parameter: found at the period's end (40)
)
def test_diverged_update_is_not_kept_and_named(dataset, where, at, step, kept):
    """Issue 20: only metrics were checked, after the bad update's state was kept, and a NaN
    parameter with finite metrics was never caught. An inf loss at update 3: the run keeps the
    agent of update 2. A NaN parameter at update 23: the period-end state check (updates 21-40)
    sends the agent back to the period's start, update 20."""
    data = offline.prepare_data(dataset, CONFIG)
    train = offline.make_train(blows_up(ENV.spec, at=at, where=where), ENV, CONFIG)
    carry, m = common.run_seeds(train, jax.random.key(0), 1, args=(data,), check=False)
    quantity = "update metric loss/toy" if where == "loss" else "agent state w"
    with pytest.raises(
        common.Diverged, match=f"in {quantity}.* first at update {step} of seed 0"
    ) as e:
        common.check_finite(m, "", "update", checks=train.checks)
    assert e.value.cause == "data"  # agent hyperparameters or the data's scale
    np.testing.assert_array_equal(carry.agent["updates"], [kept])
    np.testing.assert_array_equal(carry.agent["w"], [[kept, kept]])


def test_bad_inputs(dataset):
    with pytest.raises(DatasetError, match="fewer than batch_size"):
        offline.prepare_data(dataset, offline.Config(batch_size=5000))
    with pytest.raises(TypeError, match="purerl.datasets.Dataset"):
        offline.prepare_data({"observations": 1}, CONFIG)
    with pytest.raises(ValueError, match="multiple of eval_every"):
        offline.Config(total_steps=10, eval_every=3)
    sub = validate(dataset.arrays(), {**dataset.metadata, "subsample_every": 20})
    with pytest.raises(DatasetError, match="every 20th"):
        offline.prepare_data(sub, CONFIG, needs_next_action=True)
    wide = validate({**dataset.arrays(), "actions": dataset.actions * 3.0}, dataset.metadata)
    with pytest.raises(DatasetError, match=r"must lie in \[-1, 1\].*actions\[\d+, \d+\] = "):
        offline.prepare_data(wide, CONFIG)  # before: trained silently on unreachable targets
    data = offline.prepare_data(dataset, CONFIG)
    other = envs.make("probe1_continuous")
    algo = td3.make(td3.Config(hidden=(8,)), other.spec)
    loop = offline.make_loop(algo, other, CONFIG)
    with pytest.raises(ValueError, match="offline dataset vs env"):
        loop.run(loop.init(jax.random.key(0)), 1, data)


def test_cli_train_offline(dataset, tmp_path, capsys):
    path = str(tmp_path / "pm.npz")
    io.save(path, dataset)
    out = str(tmp_path / "run")
    code = cli.main(
        ["train-offline", "td3_bc", "--dataset", path, "--steps", "40", "--seeds", "2"]
        + ["--set", "hidden=16,16", "--loop-set", "batch_size=32", "--out", out, "--no-progress"]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "final eval/normalized" in printed
    metrics = writers.read_csv(os.path.join(out, "metrics.csv"))
    assert metrics["updates"].shape == (2, 10) and "eval/normalized" in metrics
    assert os.path.exists(os.path.join(out, "curve.png"))
    other = str(tmp_path / "other")  # `out` is not empty now
    code = cli.main(["train-offline", "ppo", "--dataset", path, "--steps", "10", "--out", other])
    assert code == 2 and "on-policy" in capsys.readouterr().err
    bare = validate(dataset.arrays(), {"max_episode_steps": 100})
    io.save(str(tmp_path / "bare.npz"), bare)
    code = cli.main(
        ["train-offline", "bc", "--dataset", str(tmp_path / "bare.npz"), "--steps", "10"]
        + ["--out", other]
    )
    assert code == 2 and "--env" in capsys.readouterr().err


@pytest.mark.parametrize("refs", [(5.0, 5.0), (0.0, float("nan"))])
def test_undefined_reference_scores_are_a_named_error(refs):
    """Equal (or non-finite) reference returns make the D4RL score undefined: the loop refuses them
    when it is built, through schema.normalized_score, instead of reporting -inf/NaN scores."""
    with pytest.raises(DatasetError, match="normalized_score"):
        offline.make_loop(tiny(), ENV, CONFIG, ref_scores=refs)
