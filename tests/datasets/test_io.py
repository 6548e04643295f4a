"""Tests for purerl.datasets.io: npz/HDF5 round trips, D4RL files, atomic writes, corrupted files,
Minari conversion (with a fake dataset object: minari is not a dependency) and checksums."""

import hashlib
import os
import re
import sys
import types

import h5py
import numpy as np
import pytest

import purerl.datasets.io as io
from purerl.datasets.schema import OPTIONAL, REQUIRED, DatasetError, validate

METADATA = {
    "env": "hopper",
    "max_episode_steps": 1000,
    "ref_min_score": -20.5,
    "ref_max_score": 3234.3,
    "deterministic": False,
    "nested": {"widths": [256, 256], "note": None, "lr": 3e-4},
    "seeds": [0, 1, 2],
}


def make_dataset(n=8, metadata=METADATA):
    rng = np.random.default_rng(0)
    terminals = np.zeros(n, bool)
    terminals[2] = True
    timeouts = np.zeros(n, bool)
    timeouts[[5, n - 1]] = True
    obs = rng.normal(size=(n, 3))
    return validate(
        {
            "observations": obs,
            "actions": rng.uniform(-1, 1, size=(n, 2)),
            "rewards": rng.normal(size=n),
            "next_observations": obs + 1.0,
            "terminals": terminals,
            "timeouts": timeouts,
        },
        metadata,
    )


def assert_same(a, b):
    for name in (*REQUIRED, *OPTIONAL):
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)
    assert a.metadata == b.metadata


def dir_listing(path):
    return sorted(os.listdir(path))


# --------------------------------------------------------------------------------------------------
# Round trips.


@pytest.mark.parametrize("name", ["d.npz", "d.hdf5", "d.h5"])
def test_round_trip(tmp_path, name):
    ds = make_dataset()
    path = tmp_path / "sub" / "dir" / name  # parent directories are created
    out = io.save(path, ds)
    assert out == str(path) and isinstance(out, str)
    loaded = io.load(path)
    assert_same(ds, loaded)
    assert loaded.metadata["nested"] == {"widths": [256, 256], "note": None, "lr": 3e-4}
    assert dir_listing(path.parent) == [name]  # no temporary file left


def test_round_trip_discrete_actions_and_cut_final_episode(tmp_path):
    arrays = {k: v for k, v in make_dataset().arrays().items() if k != "episode_ids"}
    arrays["actions"] = np.arange(8) % 3
    arrays["timeouts"] = arrays["timeouts"].copy()
    arrays["timeouts"][-1] = False
    ds = validate(arrays, {"env": "grid"})
    assert ds.metadata["final_episode_cut"] is True
    for name in ("d.npz", "d.hdf5"):
        loaded = io.load(io.save(tmp_path / name, ds))
        assert_same(ds, loaded)
        assert loaded.actions.dtype == np.int32


def test_format_argument_overrides_the_extension(tmp_path):
    ds = make_dataset()
    path = io.save(tmp_path / "data.bin", ds, format="hdf5")
    assert h5py.is_hdf5(path)
    assert_same(ds, io.load(path))  # unknown extension: the magic bytes tell the format
    path = io.save(tmp_path / "data.dat", ds, format="npz")
    assert_same(ds, io.load(path))


def test_save_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "d.npz"
    io.save(path, make_dataset(metadata={"v": 1}))
    io.save(path, make_dataset(metadata={"v": 2}))
    assert io.load(path).metadata == {"v": 2}
    assert dir_listing(tmp_path) == ["d.npz"]


def test_saved_file_gets_normal_permissions(tmp_path):
    path = io.save(tmp_path / "d.npz", make_dataset())
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600


def test_npz_layout(tmp_path):
    path = io.save(tmp_path / "d.npz", make_dataset())
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {*REQUIRED, *OPTIONAL, "metadata"}
        assert data["metadata"].shape == ()
        assert '"env": "hopper"' in str(data["metadata"])


def test_hdf5_layout_is_d4rl_like(tmp_path):
    ds = make_dataset()
    path = io.save(tmp_path / "d.hdf5", ds)
    with h5py.File(path, "r") as f:
        for name in (*REQUIRED, *OPTIONAL):
            assert isinstance(f[name], h5py.Dataset)
            np.testing.assert_array_equal(f[name][()], getattr(ds, name))
        assert f["terminals"].dtype == bool and f["timeouts"].dtype == bool
        assert f["observations"].dtype == np.float32
        assert "purerl_metadata" in f.attrs
        meta = f["metadata"]
        assert meta["env"][()] == b"hopper"
        assert meta["max_episode_steps"][()] == 1000
        assert meta["ref_min_score"][()] == pytest.approx(-20.5)
        assert not meta["deterministic"][()]
        assert "nested" not in meta and "seeds" not in meta  # only scalars, as D4RL does


def test_hdf5_metadata_falls_back_to_scalar_datasets(tmp_path):
    path = io.save(tmp_path / "d.hdf5", make_dataset())
    with h5py.File(path, "r+") as f:
        del f.attrs["purerl_metadata"]
    meta = io.load(path).metadata
    assert meta == {
        "env": "hopper",
        "max_episode_steps": 1000,
        "ref_min_score": -20.5,
        "ref_max_score": 3234.3,
        "deterministic": False,
    }
    assert type(meta["env"]) is str and type(meta["max_episode_steps"]) is int


# --------------------------------------------------------------------------------------------------
# A file laid out like a real D4RL .hdf5 (e.g. hopper-medium-v2).


def write_d4rl_file(path, n=10):
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(n, 11)).astype(np.float32)
    values = {
        "observations": obs,
        "actions": rng.uniform(-1, 1, size=(n, 3)).astype(np.float32),
        "rewards": rng.normal(size=n).astype(np.float32),
        "next_observations": (obs + 0.1).astype(np.float32),
        "terminals": np.arange(n) == 3,
        "timeouts": np.arange(n) == n - 1,
    }
    with h5py.File(path, "w") as f:
        for name, value in values.items():
            f.create_dataset(name, data=value)
        f.create_dataset("infos/qpos", data=rng.normal(size=(n, 6)))
        f.create_dataset("infos/qvel", data=rng.normal(size=(n, 6)))
        f.create_dataset("infos/action_log_probs", data=rng.normal(size=n).astype(np.float32))
        f.create_dataset("metadata/algorithm", data=b"SAC")
        f.create_dataset("metadata/iteration", data=np.int64(1000000))
        f.create_dataset("metadata/policy/nonlinearity", data=b"relu")
        f.create_dataset("metadata/policy/fc0/weight", data=rng.normal(size=(256, 11)))
        f.create_dataset("metadata/policy/fc0/bias", data=np.zeros(256))
    return values


def test_d4rl_file_loads_as_is(tmp_path):
    path = tmp_path / "hopper-medium-v2.hdf5"
    values = write_d4rl_file(path)
    ds = io.load(path)
    assert len(ds) == 10
    for name, value in values.items():
        np.testing.assert_array_equal(getattr(ds, name), value, err_msg=name)
    assert ds.observations.dtype == np.float32 and ds.terminals.dtype == bool
    np.testing.assert_array_equal(ds.episode_ids, [0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    assert set(ds.arrays()) == {*REQUIRED, *OPTIONAL}  # infos/* ignored
    assert ds.metadata == {"algorithm": "SAC", "iteration": 1000000}  # policy/* groups skipped
    assert io.load(path, max_episode_steps=6).metadata["max_episode_steps"] == 6


def test_d4rl_file_without_final_timeout(tmp_path):
    path = tmp_path / "d4rl.hdf5"
    write_d4rl_file(path)
    with h5py.File(path, "r+") as f:
        f["timeouts"][-1] = False
    ds = io.load(path)
    assert ds.timeouts[-1] and ds.metadata["final_episode_cut"] is True


def test_hdf5_group_in_place_of_a_field(tmp_path):
    path = tmp_path / "dict_obs.hdf5"
    write_d4rl_file(path)
    with h5py.File(path, "r+") as f:
        del f["observations"]
        f.create_dataset("observations/pixels", data=np.zeros((10, 2)))
    with pytest.raises(DatasetError, match="'observations' in .* is an HDF5 group"):
        io.load(path)


# --------------------------------------------------------------------------------------------------
# Atomic writes.


def _fail(*args, **kwargs):
    raise RuntimeError("disk full (simulated)")


def _half_written_savez(file, *args, **kwargs):
    file.write(b"PK\x03\x04 partial zip")
    raise RuntimeError("disk full (simulated)")


def _patch_h5_create_dataset(monkeypatch):
    real = h5py.Group.create_dataset
    calls = []

    def flaky(self, *args, **kwargs):
        calls.append(args)
        if len(calls) == 3:  # fail midway, after some fields went to disk
            raise RuntimeError("disk full (simulated)")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(h5py.Group, "create_dataset", flaky)


FAILURES = {
    "npz-savez": ("d.npz", lambda mp: mp.setattr(np, "savez", _half_written_savez)),
    "npz-fsync": ("d.npz", lambda mp: mp.setattr(io.os, "fsync", _fail)),
    "npz-replace": ("d.npz", lambda mp: mp.setattr(io.os, "replace", _fail)),
    "hdf5-create": ("d.hdf5", _patch_h5_create_dataset),
    "hdf5-replace": ("d.hdf5", lambda mp: mp.setattr(io.os, "replace", _fail)),
}


@pytest.mark.parametrize("failure", sorted(FAILURES))
@pytest.mark.parametrize("existing", [False, True])
def test_failed_write_leaves_nothing_behind(tmp_path, monkeypatch, failure, existing):
    name, patch = FAILURES[failure]
    path = tmp_path / name
    if existing:
        io.save(path, make_dataset(metadata={"old": True}))
        before = path.read_bytes()
    with monkeypatch.context() as mp:
        patch(mp)
        with pytest.raises(RuntimeError, match="simulated"):
            io.save(path, make_dataset())
    if existing:
        assert path.read_bytes() == before
        assert io.load(path).metadata == {"old": True}
        assert dir_listing(tmp_path) == [name]
    else:
        assert dir_listing(tmp_path) == []


def test_unknown_format(tmp_path):
    with pytest.raises(DatasetError, match=r"format of .*d\.csv .*'\.csv'"):
        io.save(tmp_path / "d.csv", make_dataset())
    with pytest.raises(DatasetError, match="unknown dataset format 'parquet'"):
        io.save(tmp_path / "d.npz", make_dataset(), format="parquet")
    assert dir_listing(tmp_path) == []


def test_metadata_must_be_json(tmp_path):
    with pytest.raises(DatasetError, match="not JSON-serializable"):
        io.save(tmp_path / "d.npz", make_dataset(metadata={"fn": print}))
    assert dir_listing(tmp_path) == []


def test_numpy_scalars_in_metadata_are_saved_as_json(tmp_path):
    ds = make_dataset(metadata={"mean_return": np.float64(1.5), "n": np.int32(3)})
    assert io.load(io.save(tmp_path / "d.npz", ds)).metadata == {"mean_return": 1.5, "n": 3}


def test_missing_h5py_is_not_reported_as_corruption(tmp_path, monkeypatch):
    path = io.save(tmp_path / "d.hdf5", make_dataset())
    monkeypatch.setitem(sys.modules, "h5py", None)  # makes `import h5py` fail
    with pytest.raises(DatasetError, match="needs h5py"):
        io.load(path)
    with pytest.raises(DatasetError, match="needs h5py"):
        io.save(tmp_path / "e.hdf5", make_dataset())
    assert dir_listing(tmp_path) == ["d.hdf5"]


# --------------------------------------------------------------------------------------------------
# Unreadable and invalid files.


def test_missing_file(tmp_path):
    path = tmp_path / "nope.npz"
    with pytest.raises(FileNotFoundError, match=re.escape(str(path))):
        io.load(path)


@pytest.mark.parametrize("name", ["d.npz", "d.hdf5"])
def test_random_bytes_are_reported_as_corrupted(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(DatasetError, match=f"{re.escape(str(path))} is corrupted or unreadable"):
        io.load(path)


@pytest.mark.parametrize("name", ["d.npz", "d.hdf5"])
def test_truncated_file_is_reported_as_corrupted(tmp_path, name):
    path = tmp_path / name
    io.save(path, make_dataset(n=200))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"{re.escape(str(path))} is corrupted or unreadable"):
        io.load(path)


def _flip_one_bit(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def _first_observation_offset(path):
    with h5py.File(path, "r") as f:
        return f["observations"].id.get_offset()  # contiguous layout: where the raw data starts


def test_hdf5_carries_a_content_sha256_that_load_checks(tmp_path):
    ds = make_dataset(n=200)
    path = tmp_path / "d.hdf5"
    io.save(path, ds)
    with h5py.File(path, "r") as f:
        stored = f.attrs["purerl_sha256"]
        meta_json = f.attrs["purerl_metadata"]
    assert stored == io.content_sha256(ds.arrays(), meta_json)
    assert re.fullmatch(r"[0-9a-f]{64}", stored)
    # A flipped bit in the data: an HDF5 file has no checksum of its own, so before the sha256 this
    # loaded silently with one observation changed.
    _flip_one_bit(path, _first_observation_offset(path) + 3)
    with pytest.raises(DatasetError, match=f"{re.escape(str(path))} is corrupted: the sha256"):
        io.load(path)


def test_hdf5_metadata_edit_breaks_the_sha256(tmp_path):
    path = tmp_path / "d.hdf5"
    io.save(path, make_dataset())
    with h5py.File(path, "r+") as f:
        f.attrs["purerl_metadata"] = f.attrs["purerl_metadata"].replace("3234.3", "3234.4")
    with pytest.raises(DatasetError, match="is corrupted: the sha256"):
        io.load(path)


def test_hdf5_without_sha256_loads_unchecked(tmp_path):
    ds = make_dataset()
    path = tmp_path / "d.hdf5"
    io.save(path, ds)
    with h5py.File(path, "r+") as f:
        del f.attrs["purerl_sha256"]  # D4RL's own files have none
    np.testing.assert_array_equal(io.load(path).observations, ds.observations)


def test_npz_flipped_bit_is_caught_by_zip_crc(tmp_path):
    ds = make_dataset(n=200)
    path = tmp_path / "d.npz"
    io.save(path, ds)
    raw = path.read_bytes()
    target = np.ascontiguousarray(ds.observations).tobytes()[:64]
    offset = raw.index(target)  # uncompressed npz: the array bytes appear as they are
    _flip_one_bit(path, offset + 3)
    with pytest.raises(DatasetError, match="is corrupted or unreadable as npz"):
        io.load(path)


def test_unrecognised_file_without_known_extension(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("hello")
    with pytest.raises(DatasetError, match=r"d\.txt: extension '\.txt' is not one of"):
        io.load(path)


def test_load_validates(tmp_path):
    arrays = make_dataset().arrays()
    arrays["observations"] = arrays["observations"].copy()
    arrays["observations"][4, 2] = np.nan
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(
        DatasetError, match=rf"'observations' in {re.escape(str(path))} .*non-finite.* index 4"
    ):
        io.load(path)


def test_load_npz_without_metadata_or_episode_ids(tmp_path):
    ds = make_dataset()
    path = tmp_path / "plain.npz"
    np.savez(path, **{k: v for k, v in ds.arrays().items() if k != "episode_ids"})
    loaded = io.load(path)
    assert loaded.metadata == {}
    np.testing.assert_array_equal(loaded.episode_ids, ds.episode_ids)


def test_load_missing_field_names_the_file(tmp_path):
    path = tmp_path / "partial.npz"
    arrays = make_dataset().arrays()
    del arrays["rewards"]
    np.savez(path, **arrays)
    with pytest.raises(DatasetError, match=rf"missing field 'rewards' in {re.escape(str(path))}"):
        io.load(path)


def test_max_episode_steps_overrides_metadata(tmp_path):
    path = io.save(tmp_path / "d.npz", make_dataset())  # episodes of 3, 3 and 2 steps
    assert io.load(path).metadata["max_episode_steps"] == 1000
    assert io.load(path, max_episode_steps=3).metadata["max_episode_steps"] == 3
    with pytest.raises(DatasetError, match="episode starting at index 0 in .*d.npz never ends"):
        io.load(path, max_episode_steps=2)
    with pytest.raises(ValueError, match="max_episode_steps must be >= 1"):
        io.load(path, max_episode_steps=0)


# --------------------------------------------------------------------------------------------------
# Minari.


def fake_episode(ep_id, steps, end, obs_dim=2, start=0.0):
    obs = start + np.arange((steps + 1) * obs_dim, dtype=np.float64).reshape(steps + 1, obs_dim)
    terminations = np.zeros(steps, bool)
    truncations = np.zeros(steps, bool)
    if end == "terminated":
        terminations[-1] = True
    elif end == "truncated":
        truncations[-1] = True
    return types.SimpleNamespace(
        id=ep_id,
        observations=obs,
        actions=np.full((steps, 1), 0.1 * ep_id),
        rewards=np.arange(steps, dtype=np.float64) + 10 * ep_id,
        terminations=terminations,
        truncations=truncations,
    )


class FakeMinariDataset:
    def __init__(self, episodes, max_episode_steps=3):
        self.episodes = episodes
        self.spec = types.SimpleNamespace(
            dataset_id="mujoco/toy/expert-v0",
            env_spec=types.SimpleNamespace(max_episode_steps=max_episode_steps),
            ref_min_score=-5.0,
            ref_max_score=None,
        )

    def iterate_episodes(self):
        return iter(self.episodes)


def test_from_minari_fake_dataset():
    episodes = [
        fake_episode(0, 3, "terminated"),
        fake_episode(1, 2, "truncated", start=100.0),
        fake_episode(2, 3, "truncated", start=200.0),
    ]
    ds = io.from_minari(FakeMinariDataset(episodes))
    assert len(ds) == 8
    np.testing.assert_array_equal(ds.episode_ids, [0, 0, 0, 1, 1, 2, 2, 2])
    np.testing.assert_array_equal(ds.terminals, [0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(ds.timeouts, [0, 0, 0, 0, 1, 0, 0, 1])
    for i, ep in enumerate(episodes):
        rows = ds.episode_ids == i
        np.testing.assert_array_equal(ds.observations[rows], ep.observations[:-1])
        np.testing.assert_array_equal(ds.next_observations[rows], ep.observations[1:])
        np.testing.assert_allclose(ds.actions[rows], ep.actions)
        np.testing.assert_array_equal(ds.rewards[rows], ep.rewards)
    # the next observation at the last step of an episode is its final observation
    np.testing.assert_array_equal(ds.next_observations[4], [104.0, 105.0])
    assert ds.metadata == {
        "source": "minari",
        "dataset_id": "mujoco/toy/expert-v0",
        "max_episode_steps": 3,
        "ref_min_score": -5.0,
    }


def test_from_minari_checks_max_episode_steps():
    fake = FakeMinariDataset([fake_episode(0, 3, "terminated")], max_episode_steps=2)
    with pytest.raises(DatasetError, match="starting at index 0 in minari dataset .* never ends"):
        io.from_minari(fake)
    assert io.from_minari(fake, max_episode_steps=3).metadata["max_episode_steps"] == 3


def test_from_minari_without_spec_and_unflagged_episode_end():
    fake = types.SimpleNamespace(
        iterate_episodes=lambda: iter([fake_episode(0, 2, None), fake_episode(1, 2, None)])
    )
    ds = io.from_minari(fake)
    np.testing.assert_array_equal(ds.timeouts, [0, 1, 0, 1])  # recording stopped: cut
    assert ds.metadata == {"source": "minari"}


def test_from_minari_dict_observations():
    ep = fake_episode(7, 2, "terminated")
    ep.observations = {"pos": ep.observations, "vel": ep.observations}
    with pytest.raises(DatasetError, match="episode 7 has dict observations.*flatten them first"):
        io.from_minari(FakeMinariDataset([ep]))


def test_from_minari_bad_episode_length():
    ep = fake_episode(0, 3, "terminated")
    ep.observations = ep.observations[:-1]
    with pytest.raises(DatasetError, match="episode 0 has 3 observations for 3 rewards"):
        io.from_minari(FakeMinariDataset([ep]))


def test_from_minari_id_without_minari(monkeypatch):
    monkeypatch.setitem(sys.modules, "minari", None)  # makes `import minari` fail
    with pytest.raises(
        DatasetError, match=r"needs the minari package: pip install purerl\[minari\]"
    ):
        io.from_minari("mujoco/hopper/expert-v0")


# --------------------------------------------------------------------------------------------------
# Checksums.


def test_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)  # spans several read chunks
    path.write_bytes(data)
    assert io.sha256(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert io.sha256(str(empty)) == hashlib.sha256(b"").hexdigest()
