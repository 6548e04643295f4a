"""The named-dataset cache and ``purerl.datasets.load`` without experts: a fake generator stands in
for ``purerl.experts.generate_named`` (tests/test_experts.py runs the real one)."""

import json
import os

import numpy as np
import pytest

from purerl import datasets
from purerl.datasets import io, registry
from purerl.datasets.schema import DatasetError, validate


def _tiny(n: int, seed: int) -> datasets.Dataset:
    rng = np.random.default_rng(seed)
    timeouts = np.zeros(n, bool)
    timeouts[9::10] = True
    arrays = {
        "observations": rng.normal(size=(n, 3)).astype(np.float32),
        "actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": rng.normal(size=(n, 3)).astype(np.float32),
        "terminals": np.zeros(n, bool),
        "timeouts": timeouts,
    }
    meta = {"env": "point_mass", "max_episode_steps": 10, "ref_min_score": -1.0}
    ds = validate(arrays, {**meta, "ref_max_score": 1.0})
    returns = ds.episode_returns()
    ds.metadata.update(mean_episode_return=float(returns.mean()), num_episodes=len(returns))
    return ds


class FakeGenerator:
    """Records its calls; the data depends on the seed only."""

    def __init__(self):
        self.calls = []

    def __call__(self, env, level, size, *, seed, backend, root, check_versions, progress):
        self.calls.append((env, level, size, seed, backend, root, check_versions, progress))
        return registry.Generated(_tiny(size, seed), {"agent": "fake"}, 0.5)


def test_miss_without_generator_says_how_to_generate(tmp_path):
    with pytest.raises(DatasetError, match=r"not in the cache .*purerl generate dataset"):
        datasets.load("point_mass-medium", root=str(tmp_path))
    with pytest.raises(DatasetError, match="regenerating it needs a trained expert"):
        registry.load("point_mass-medium", root=str(tmp_path), regenerate=True)
    assert not os.listdir(tmp_path)


def test_generates_then_reads_cache(tmp_path):
    gen, root = FakeGenerator(), str(tmp_path)
    ds = datasets.load("point_mass-medium", size=50, root=root, progress=False, generator=gen)
    assert gen.calls == [("point_mass", "medium", 50, 0, None, root, True, False)]
    path = registry.dataset_path("point_mass-medium", root=root, size=50)
    manifest = json.load(open(registry.manifest_path(path)))
    assert manifest["sha256"] == io.sha256(path) and manifest["size"] == 50
    assert manifest["expert"] == {"agent": "fake"} and manifest["level"] == "medium"
    assert manifest["generate_wall_s"] >= 0.5 and manifest["versions"] == io.versions()
    # cached: read without calling any generator, with or without one
    again = datasets.load("point_mass-medium", size=50, root=root, generator=gen)
    plain = datasets.load("point_mass-medium", size=50, root=root)
    assert len(gen.calls) == 1
    for name, x in ds.arrays().items():
        np.testing.assert_array_equal(x, getattr(again, name))
        np.testing.assert_array_equal(x, getattr(plain, name))
    datasets.load("point_mass-medium", size=50, root=root, regenerate=True, generator=gen)
    assert len(gen.calls) == 2


def test_detects_corruption_and_mismatch(tmp_path):
    gen, root = FakeGenerator(), str(tmp_path)
    registry.load("point_mass-expert", size=40, root=root, progress=False, generator=gen)
    path = registry.dataset_path("point_mass-expert", root=root, size=40)
    mpath = registry.manifest_path(path)
    manifest = json.load(open(mpath))

    bad = dict(manifest, seed=7)
    json.dump(bad, open(mpath, "w"))
    with pytest.raises(DatasetError, match="manifest mismatch.*seed is 7, requested 0"):
        registry.load("point_mass-expert", size=40, root=root)

    bad = dict(manifest, versions=dict(manifest["versions"], jax="0.0.1"))
    json.dump(bad, open(mpath, "w"))
    with pytest.raises(DatasetError, match=r"jax 0.0.1 \(installed"):
        registry.load("point_mass-expert", size=40, root=root)
    registry.load("point_mass-expert", size=40, root=root, check_versions=False)

    json.dump(manifest, open(mpath, "w"))
    with open(path, "r+b") as f:  # flip bytes in the middle of the file
        f.seek(os.path.getsize(path) // 2)
        f.write(b"\x00\x01\x02\x03")
    with pytest.raises(DatasetError, match="corrupted"):
        registry.load("point_mass-expert", size=40, root=root)
    # regenerate repairs it
    registry.load(
        "point_mass-expert", size=40, root=root, regenerate=True, progress=False, generator=gen
    )
    registry.load("point_mass-expert", size=40, root=root)

    os.remove(mpath)
    with pytest.raises(DatasetError, match="no manifest"):
        registry.load("point_mass-expert", size=40, root=root)


def test_names():
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
    assert registry.default_backend("halfcheetah") == "spring"
    assert registry.default_backend("point_mass") is None


def test_cache_dir(monkeypatch):
    monkeypatch.setenv("PURERL_CACHE", "/x/y")
    assert registry.cache_dir() == "/x/y"
    monkeypatch.delenv("PURERL_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", "/c")
    assert registry.cache_dir() == "/c/purerl"


# ---------------------------------------------------------------------------------------------------
# datasets.load: one entry for files and names.


def test_load_files_with_and_without_suffix(tmp_path, monkeypatch):
    ds = _tiny(30, 0)
    io.save(tmp_path / "runs" / "mydata.npz", ds)
    io.save(tmp_path / "d4rl.hdf5", ds)
    os.replace(tmp_path / "d4rl.hdf5", tmp_path / "nosuffix")  # a file of a known format
    for target in ("runs/mydata.npz", "runs/mydata", "nosuffix", str(tmp_path / "runs/mydata")):
        monkeypatch.chdir(tmp_path)
        got = datasets.load(target)
        np.testing.assert_array_equal(got.observations, ds.observations)
    assert datasets.load("runs/mydata", max_episode_steps=20).metadata["max_episode_steps"] == 20
    # a bare word that is no registry name finds word.npz too
    monkeypatch.chdir(tmp_path / "runs")
    np.testing.assert_array_equal(datasets.load("mydata").rewards, ds.rewards)


def test_load_says_why_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no dataset file at runs/none \(nor runs/none"):
        datasets.load("runs/none")
    with pytest.raises(FileNotFoundError, match="or a registry name <env>-<level>"):
        datasets.load("x.npz")
    with pytest.raises(DatasetError, match="unknown dataset 'mydata'.*no dataset file at mydata"):
        datasets.load("mydata")
    os.makedirs("adir")
    with pytest.raises(DatasetError, match="adir is a directory, not a dataset file"):
        datasets.load("adir")
    io.save("two.npz", _tiny(10, 0))
    io.save("two.h5", _tiny(10, 0))
    with pytest.raises(DatasetError, match=r"ambiguous: ./two.npz and ./two.h5 all exist"):
        datasets.load("./two")
    with pytest.raises(DatasetError, match="seed only apply to named datasets"):
        datasets.load("two.npz", seed=3)
    with pytest.raises(DatasetError, match="max_episode_steps only applies to dataset files"):
        datasets.load("point_mass-medium", max_episode_steps=5)
