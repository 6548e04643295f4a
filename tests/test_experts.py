"""purerl.experts: experts, dataset levels, demonstrations, named datasets generated on a cache miss,
and the generate CLI (tiny configs). The cache itself (without experts) is tested in
tests/datasets/test_registry.py."""

import json
import os

import jax
import numpy as np
import pytest

from purerl import cli, datasets, experts
from purerl.datasets import io, registry
from purerl.datasets.schema import DatasetError

TINY = experts.ExpertPreset(
    "ppo",
    8192,
    agent_set=(("hidden", (16, 16)),),
    loop_set=(("num_envs", 16), ("unroll_length", 32), ("eval_every", 2048)),
)


@pytest.fixture(scope="module")
def expert_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("expert"))
    experts.train_expert("point_mass", path, seed=0, preset=TINY, progress=False)
    return path


@pytest.fixture(scope="module")
def expert(expert_dir):
    return experts.load_expert(expert_dir)


def test_expert_bundle(expert):
    info = expert.info
    assert info["agent"] == "ppo" and info["env"] == "point_mass"
    assert len(info["curve"]["eval_return"]) == 4
    assert 1 <= info["medium_period"] <= info["expert_period"] <= 4
    assert info["snapshot_periods"] == list(range(info["medium_period"] + 1))
    assert info["ref_max_score"] > info["ref_min_score"]
    assert {"jax", "brax", "purerl"} <= set(info["versions"])
    # the stacked states hold the snapshots + the expert, restorable and usable
    n = len(info["snapshot_periods"]) + 1
    assert all(x.shape[0] == n for x in jax.tree.leaves(expert.states))
    a, _ = expert.algo.act(expert.expert_state, np.zeros((3, 4), np.float32), jax.random.key(0))
    assert a.shape == (3, 2)


def test_existing_expert_is_not_overwritten(expert_dir):
    with pytest.raises(FileExistsError, match="overwrite"):
        experts.train_expert("point_mass", expert_dir, preset=TINY, progress=False)


@pytest.mark.parametrize("level", ["random", "medium", "expert", "medium-expert"])
def test_levels(expert, level):
    ds = experts.generate_dataset(expert, level, 1000, seed=1, num_envs=10)
    assert len(ds) == 1000 and ds.obs_shape == (4,) and ds.action_shape == (2,)
    assert np.all(np.abs(ds.actions) <= 1.0)
    meta = ds.metadata
    assert meta["level"] == level and meta["env"] == "point_mass"
    assert meta["ref_min_score"] == expert.info["ref_min_score"]
    assert meta["max_episode_steps"] == expert.env.spec.episode_length
    np.testing.assert_allclose(meta["mean_episode_return"], ds.episode_returns().mean(), rtol=1e-5)
    # each env's column is contiguous and ends in a timeout: 10 columns of 100 steps
    assert ds.timeouts[99::100].all()
    if level == "random":  # uniform on [-1, 1]^2
        assert abs(ds.actions.mean()) < 0.1 and 0.25 < ds.actions.var() < 0.42


def test_level_returns_are_ordered(expert):
    means = {
        lvl: experts.generate_dataset(expert, lvl, 2000, seed=0, num_envs=20).metadata[
            "mean_episode_return"
        ]
        for lvl in ("random", "medium", "expert")
    }
    assert means["random"] < means["medium"] < means["expert"]


def test_medium_expert_is_half_and_half(expert):
    ds = experts.generate_dataset(expert, "medium-expert", 1000, seed=3, num_envs=10)
    medium = experts.generate_dataset(expert, "medium", 500, seed=3, num_envs=10)
    assert ds.episode_ids[499] != ds.episode_ids[500] and ds.timeouts[499]
    assert ds.obs_shape == medium.obs_shape


def test_medium_replay(expert):
    ds = experts.generate_dataset(expert, "medium-replay", None, seed=0)
    period = expert.loop_config.eval_every
    assert len(ds) == expert.info["medium_period"] * period
    assert ds.metadata["periods"] == expert.info["medium_period"]
    with pytest.raises(DatasetError, match="size is fixed"):
        experts.generate_dataset(expert, "medium-replay", 100)


def test_bad_requests(expert):
    with pytest.raises(DatasetError, match="unknown dataset level 'meduim'"):
        experts.generate_dataset(expert, "meduim", 100)
    with pytest.raises(DatasetError, match="positive size"):
        experts.generate_dataset(expert, "medium", 0)
    with pytest.raises(DatasetError, match="no expert preset for env 'nope'"):
        experts.train_expert("nope", "/tmp/never", progress=False)


def test_demos_whole_episodes_and_subsampling(expert):
    full = experts.generate_demos(expert, 3, seed=0)
    length = expert.env.spec.episode_length
    assert full.num_episodes == 3 and len(full) == 3 * length  # point_mass never terminates
    assert full.metadata["subsample_every"] == 1
    np.testing.assert_allclose(full.episode_returns(), full.metadata["episode_returns"], rtol=1e-5)
    sub = experts.generate_demos(expert, 3, seed=0, subsample=20)
    assert len(sub) == 3 * length // 20 and sub.metadata["subsample_every"] == 20
    # same episodes (same seed): every kept transition is one of the full episode's, 20 apart
    for e in range(3):
        kept = sub.observations[sub.episode_ids == e]
        column = full.observations[full.episode_ids == e]
        idx = [int(np.nonzero((column == row).all(axis=1))[0][0]) for row in kept]
        assert 0 <= idx[0] < 20 and np.all(np.diff(idx) == 20)
    with pytest.raises(DatasetError, match="every 20th"):
        sub.next_actions()
    with pytest.raises(DatasetError, match="subsample"):
        experts.generate_demos(expert, 2, subsample=0)


def test_generation_is_deterministic(expert_dir, expert, tmp_path):
    a = experts.generate_dataset(expert, "medium", 500, seed=5, num_envs=5)
    b = experts.generate_dataset(experts.load_expert(expert_dir), "medium", 500, seed=5, num_envs=5)
    c = experts.generate_dataset(expert, "medium", 500, seed=6, num_envs=5)
    for name, x in a.arrays().items():
        np.testing.assert_array_equal(x, getattr(b, name))
    assert not np.array_equal(a.observations, c.observations)
    # retraining the expert with the same seed gives the same expert
    again = str(tmp_path / "again")
    experts.train_expert("point_mass", again, seed=0, preset=TINY, progress=False)
    with open(os.path.join(expert_dir, "expert.json")) as f1, open(f"{again}/expert.json") as f2:
        i1, i2 = json.load(f1), json.load(f2)
    for k in ("curve", "ref_min_score", "ref_max_score", "medium_period", "expert_period"):
        assert i1[k] == i2[k], k


# ---------------------------------------------------------------------------------------------------
# Registry and cache.


@pytest.fixture
def tiny_registry(monkeypatch, tmp_path, expert_dir):
    monkeypatch.setitem(registry.PRESETS, "point_mass", TINY)
    root = str(tmp_path / "cache")
    # seed the cache with the module's expert so no test trains again
    target = registry.expert_dir("point_mass", 0, root=root)
    os.makedirs(os.path.dirname(target))
    import shutil

    shutil.copytree(expert_dir, target)
    return root


def test_load_or_generate_makes_then_datasets_load_reads(tiny_registry, monkeypatch, capsys):
    with pytest.raises(DatasetError, match=r"not in the cache .*purerl.experts.load_or_generate"):
        datasets.load("point_mass-random", size=300, root=tiny_registry)
    ds = experts.load_or_generate("point_mass-random", size=300, root=tiny_registry)
    assert "generating point_mass-random" in capsys.readouterr().out
    path = registry.dataset_path("point_mass-random", root=tiny_registry, size=300)
    manifest = json.load(open(registry.manifest_path(path)))
    assert manifest["sha256"] == io.sha256(path) and manifest["size"] == 300
    assert manifest["expert"]["agent"] == "ppo" and manifest["level"] == "random"
    expert_json = os.path.join(
        registry.expert_dir("point_mass", 0, root=tiny_registry), "expert.json"
    )
    assert manifest["expert"]["expert_json_sha256"] == io.sha256(expert_json)
    assert manifest["generate_wall_s"] > 0

    def boom(*a, **k):
        raise AssertionError("should read the cache")

    monkeypatch.setattr(experts, "generate_dataset", boom)
    # both read the cache now: datasets.load needs no generator for a cached name
    again = experts.load_or_generate("point_mass-random", size=300, root=tiny_registry)
    plain = datasets.load("point_mass-random", size=300, root=tiny_registry)
    np.testing.assert_array_equal(ds.observations, again.observations)
    np.testing.assert_array_equal(ds.observations, plain.observations)
    with pytest.raises(AssertionError, match="should read the cache"):  # regenerate really does
        experts.load_or_generate(
            "point_mass-random", size=300, root=tiny_registry, regenerate=True, progress=False
        )


def test_generate_named_matches_generate_dataset(tiny_registry, expert):
    made = experts.generate_named(
        "point_mass",
        "expert",
        200,
        seed=0,
        backend=None,
        root=tiny_registry,
        check_versions=True,
        progress=False,
    )
    direct = experts.generate_dataset(expert, "expert", 200, seed=0)
    for name, x in made.dataset.arrays().items():
        np.testing.assert_array_equal(x, getattr(direct, name))
    assert made.expert["path"] == registry.expert_dir("point_mass", 0, root=tiny_registry)


def test_get_expert_checks_the_preset(tiny_registry, monkeypatch):
    monkeypatch.setitem(registry.PRESETS, "point_mass", experts.ExpertPreset("ppo", 4096))
    with pytest.raises(DatasetError, match="preset is ppo for 4096"):
        experts.get_expert("point_mass", root=tiny_registry, progress=False)


def test_cli_generate(tiny_registry, tmp_path, capsys, expert_dir):
    out = str(tmp_path / "demos.hdf5")
    code = cli.main(
        ["generate", "demos", "--env", "point_mass", "--episodes", "2", "--subsample", "20"]
        + ["--out", out, "--expert", expert_dir, "--no-progress"]
    )
    assert code == 0 and "2 expert episodes" in capsys.readouterr().out
    assert io.load(out).metadata["subsample_every"] == 20
    code = cli.main(
        ["generate", "dataset", "--env", "point_mass", "--level", "random", "--size", "300"]
        + ["--cache", tiny_registry, "--no-progress"]
    )
    assert code == 0 and "point_mass-random: 300 transitions" in capsys.readouterr().out
    code = cli.main(
        ["generate", "dataset", "--env", "point_mass", "--level", "best", "--cache", tiny_registry]
    )
    assert code == 2 and "unknown --level 'best'" in capsys.readouterr().err
    code = cli.main(["generate", "expert", "--env", "pong"])
    assert code == 2 and "no expert preset for env 'pong'" in capsys.readouterr().err
    code = cli.main(
        ["generate", "demos", "--env", "point_mass", "--episodes", "1"]
        + ["--expert", str(tmp_path / "none")]
    )
    assert code == 2 and "no expert at" in capsys.readouterr().err
