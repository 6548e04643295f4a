"""Experts, dataset levels, demonstrations, the cache registry and the generate CLI (tiny configs)."""

import json
import os

import jax
import numpy as np
import pytest

from purerl import cli
from purerl.datasets import generate, io, registry
from purerl.datasets.schema import DatasetError

TINY = generate.ExpertPreset(
    "ppo",
    8192,
    agent_set=(("hidden", (16, 16)),),
    loop_set=(("num_envs", 16), ("unroll_length", 32), ("eval_every", 2048)),
)


@pytest.fixture(scope="module")
def expert_dir(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("expert"))
    generate.train_expert("point_mass", path, seed=0, preset=TINY, progress=False)
    return path


@pytest.fixture(scope="module")
def expert(expert_dir):
    return generate.load_expert(expert_dir)


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
        generate.train_expert("point_mass", expert_dir, preset=TINY, progress=False)


@pytest.mark.parametrize("level", ["random", "medium", "expert", "medium-expert"])
def test_levels(expert, level):
    ds = generate.generate_dataset(expert, level, 1000, seed=1, num_envs=10)
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
        lvl: generate.generate_dataset(expert, lvl, 2000, seed=0, num_envs=20).metadata[
            "mean_episode_return"
        ]
        for lvl in ("random", "medium", "expert")
    }
    assert means["random"] < means["medium"] < means["expert"]


def test_medium_expert_is_half_and_half(expert):
    ds = generate.generate_dataset(expert, "medium-expert", 1000, seed=3, num_envs=10)
    medium = generate.generate_dataset(expert, "medium", 500, seed=3, num_envs=10)
    assert ds.episode_ids[499] != ds.episode_ids[500] and ds.timeouts[499]
    assert ds.obs_shape == medium.obs_shape


def test_medium_replay(expert):
    ds = generate.generate_dataset(expert, "medium-replay", None, seed=0)
    period = expert.loop_config.eval_every
    assert len(ds) == expert.info["medium_period"] * period
    assert ds.metadata["periods"] == expert.info["medium_period"]
    with pytest.raises(DatasetError, match="size is fixed"):
        generate.generate_dataset(expert, "medium-replay", 100)


def test_bad_requests(expert):
    with pytest.raises(DatasetError, match="unknown dataset level 'meduim'"):
        generate.generate_dataset(expert, "meduim", 100)
    with pytest.raises(DatasetError, match="positive size"):
        generate.generate_dataset(expert, "medium", 0)
    with pytest.raises(DatasetError, match="no expert preset for env 'nope'"):
        generate.train_expert("nope", "/tmp/never", progress=False)


def test_demos_whole_episodes_and_subsampling(expert):
    full = generate.generate_demos(expert, 3, seed=0)
    length = expert.env.spec.episode_length
    assert full.num_episodes == 3 and len(full) == 3 * length  # point_mass never terminates
    assert full.metadata["subsample_every"] == 1
    np.testing.assert_allclose(full.episode_returns(), full.metadata["episode_returns"], rtol=1e-5)
    sub = generate.generate_demos(expert, 3, seed=0, subsample=20)
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
        generate.generate_demos(expert, 2, subsample=0)


def test_generation_is_deterministic(expert_dir, expert, tmp_path):
    a = generate.generate_dataset(expert, "medium", 500, seed=5, num_envs=5)
    b = generate.generate_dataset(
        generate.load_expert(expert_dir), "medium", 500, seed=5, num_envs=5
    )
    c = generate.generate_dataset(expert, "medium", 500, seed=6, num_envs=5)
    for name, x in a.arrays().items():
        np.testing.assert_array_equal(x, getattr(b, name))
    assert not np.array_equal(a.observations, c.observations)
    # retraining the expert with the same seed gives the same expert
    again = str(tmp_path / "again")
    generate.train_expert("point_mass", again, seed=0, preset=TINY, progress=False)
    with open(os.path.join(expert_dir, "expert.json")) as f1, open(f"{again}/expert.json") as f2:
        i1, i2 = json.load(f1), json.load(f2)
    for k in ("curve", "ref_min_score", "ref_max_score", "medium_period", "expert_period"):
        assert i1[k] == i2[k], k


# ---------------------------------------------------------------------------------------------------
# Registry and cache.


@pytest.fixture
def tiny_registry(monkeypatch, tmp_path, expert_dir):
    monkeypatch.setitem(generate.PRESETS, "point_mass", TINY)
    root = str(tmp_path / "cache")
    # seed the cache with the module's expert so no test trains again
    target = registry.expert_dir("point_mass", 0, root=root)
    os.makedirs(os.path.dirname(target))
    import shutil

    shutil.copytree(expert_dir, target)
    return root


def test_registry_generates_then_reads_cache(tiny_registry, monkeypatch):
    ds = registry.load("point_mass-random", size=300, root=tiny_registry, progress=False)
    path = registry.dataset_path("point_mass-random", root=tiny_registry, size=300)
    manifest = json.load(open(registry.manifest_path(path)))
    assert manifest["sha256"] == io.sha256(path) and manifest["size"] == 300
    assert manifest["expert"]["agent"] == "ppo" and manifest["level"] == "random"

    def boom(*a, **k):
        raise AssertionError("should read the cache")

    monkeypatch.setattr(generate, "generate_dataset", boom)
    again = registry.load("point_mass-random", size=300, root=tiny_registry, progress=False)
    np.testing.assert_array_equal(ds.observations, again.observations)


def test_registry_detects_corruption_and_mismatch(tiny_registry):
    registry.load("point_mass-expert", size=200, root=tiny_registry, progress=False)
    path = registry.dataset_path("point_mass-expert", root=tiny_registry, size=200)
    mpath = registry.manifest_path(path)
    manifest = json.load(open(mpath))

    bad = dict(manifest, seed=7)
    json.dump(bad, open(mpath, "w"))
    with pytest.raises(DatasetError, match="manifest mismatch.*seed is 7, requested 0"):
        registry.load("point_mass-expert", size=200, root=tiny_registry)

    bad = dict(manifest, versions=dict(manifest["versions"], jax="0.0.1"))
    json.dump(bad, open(mpath, "w"))
    with pytest.raises(DatasetError, match=r"jax 0.0.1 \(installed"):
        registry.load("point_mass-expert", size=200, root=tiny_registry)
    registry.load("point_mass-expert", size=200, root=tiny_registry, check_versions=False)

    json.dump(manifest, open(mpath, "w"))
    with open(path, "r+b") as f:  # flip bytes in the middle of the file
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(DatasetError, match="corrupted"):
        registry.load("point_mass-expert", size=200, root=tiny_registry)
    # regenerate repairs it
    registry.load(
        "point_mass-expert", size=200, root=tiny_registry, regenerate=True, progress=False
    )
    registry.load("point_mass-expert", size=200, root=tiny_registry)

    os.remove(mpath)
    with pytest.raises(DatasetError, match="no manifest"):
        registry.load("point_mass-expert", size=200, root=tiny_registry)


def test_registry_names():
    assert registry.parse_name("halfcheetah-medium-replay") == ("halfcheetah", "medium-replay")
    assert registry.parse_name("inverted_double_pendulum-medium-expert") == (
        "inverted_double_pendulum",
        "medium-expert",
    )
    assert "halfcheetah-medium" in registry.list_datasets()
    with pytest.raises(DatasetError, match="unknown dataset 'halfcheetah-meduim'"):
        registry.parse_name("halfcheetah-meduim")
    with pytest.raises(DatasetError, match="no expert preset for env 'pong'"):
        registry.parse_name("pong-medium")
    with pytest.raises(DatasetError, match="size is fixed"):
        registry.load("halfcheetah-medium-replay", size=10)


def test_cache_dir(monkeypatch):
    monkeypatch.setenv("PURERL_CACHE", "/x/y")
    assert registry.cache_dir() == "/x/y"
    monkeypatch.delenv("PURERL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert registry.cache_dir() == "/c/purerl"


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
