"""Checkpoint/resume of the full online-loop carry: stopping, saving, restoring and going on gives
exactly the same run as not stopping (single run and vmapped seeds)."""

import jax
import numpy as np
import pytest

from purerl import envs
from purerl.agents import td3
from purerl.loops import checkpoint, online

CONFIG = online.Config(
    total_steps=1500,
    warmup_steps=300,
    eval_every=500,
    batch_size=32,
    buffer_size=1500,
    eval_episodes=2,
)


def _loop(hidden=(32, 32)):
    env = envs.make("point_mass")
    return online.make_loop(td3.make(td3.Config(hidden=hidden), env.spec), env, CONFIG)


def _plain(x):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def assert_trees_equal(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    for (path, x), y in zip(
        jax.tree_util.tree_flatten_with_path(a)[0], jax.tree.leaves(b), strict=True
    ):
        assert x.dtype == y.dtype, jax.tree_util.keystr(path)
        np.testing.assert_array_equal(_plain(x), _plain(y), err_msg=jax.tree_util.keystr(path))


@pytest.fixture(scope="module")
def single():
    """One seed: the initial carry and the carry/metrics after one period."""
    loop = _loop()
    key = jax.random.key(0)
    run = jax.jit(loop.run, static_argnums=1)
    c0 = jax.jit(loop.init)(key)
    c1, m1 = run(c0, 1)
    return loop, key, run, c0, c1, m1


def test_resume_single_run_equals_uninterrupted_run(single, tmp_path):
    loop, key, run, c0, c1, m1 = single
    path = checkpoint.save(tmp_path / "ckpt", c1)
    restored = checkpoint.restore(path, like=c0)
    assert_trees_equal(restored, c1)
    # The template's (untrained) values must not leak into the restored carry.
    assert int(restored.iteration) == 500 and int(c0.iteration) == 0
    assert int(restored.buffer.size) == 500

    c2, m2 = run(restored, 2)
    c3, m3 = run(c0, 3)
    assert set(m3) == set(m1) == set(m2)
    for k in m3:
        np.testing.assert_array_equal(np.concatenate([m1[k], m2[k]]), m3[k], err_msg=k)
    assert_trees_equal(c2.agent.params, c3.agent.params)
    assert_trees_equal(c2, c3)
    np.testing.assert_array_equal(m3["env_steps"], [500, 1000, 1500])
    # 1500 - 300 warm-up steps, one critic update each (utd 1, one env).
    assert int(c3.agent.step) == 1200
    assert np.all(np.isfinite(m3["eval/return"]))


def test_resume_vmapped_seeds_equals_uninterrupted_run(tmp_path):
    loop = _loop()
    keys = jax.random.split(jax.random.key(1), 2)
    run = jax.jit(jax.vmap(loop.run, in_axes=(0, None)), static_argnums=1)
    c0 = jax.jit(jax.vmap(loop.init))(keys)
    c1, m1 = run(c0, 1)
    path = checkpoint.save(tmp_path / "seeds", c1, metadata={"note": "two seeds"})
    assert checkpoint.read_metadata(path)["metadata"] == {"note": "two seeds"}
    restored = checkpoint.restore(path, like=c0)
    assert_trees_equal(restored, c1)

    # The restored carry goes on exactly as the one that was saved (one compile: the period count
    # is static; the single-seed test checks 1 + 2 periods against 3).
    c2, m2 = run(restored, 1)
    c3, m3 = run(c1, 1)
    for k in m3:
        assert m3[k].shape == (2, 1), k
        np.testing.assert_array_equal(m2[k], m3[k], err_msg=k)
    assert_trees_equal(c2, c3)
    # The two seeds are genuinely different runs.
    assert not np.array_equal(m1["eval/return"][0], m1["eval/return"][1])
    np.testing.assert_array_equal(np.asarray(c3.agent.step), [700, 700])  # 1000 - 300 warm-up


def test_checkpoint_without_buffer_refuses_to_resume_unless_asked(single, tmp_path):
    loop, key, run, c0, c1, m1 = single
    path = checkpoint.save(tmp_path / "nobuf", c1, include_buffer=False)
    meta = checkpoint.read_metadata(path)
    assert meta["include_buffer"] is False and meta["has_buffer"] is True
    assert not any(leaf["path"].startswith(".buffer") for leaf in meta["leaves"])
    assert any(leaf["path"].startswith(".agent.params") for leaf in meta["leaves"])

    with pytest.raises(checkpoint.CheckpointError, match="saved without the replay buffer"):
        checkpoint.restore(path, like=c0)

    # Documented opt-in: everything from the checkpoint, the buffer from the template.
    restored = checkpoint.restore(path, like=c0, missing_buffer="template")
    assert_trees_equal(restored._replace(buffer=c1.buffer), c1)
    assert_trees_equal(restored.buffer, c0.buffer)
    assert int(restored.buffer.size) == 0 and int(restored.iteration) == 500

    # An abstract template has no buffer values to keep.
    with pytest.raises(checkpoint.CheckpointError, match="abstract"):
        checkpoint.restore(path, like=jax.eval_shape(loop.init, key), missing_buffer="template")


def test_restore_into_abstract_template(single, tmp_path):
    loop, key, run, c0, c1, m1 = single
    path = checkpoint.save(tmp_path / "ckpt", c1)
    restored = checkpoint.restore(path, like=jax.eval_shape(loop.init, key))
    assert_trees_equal(restored, c1)


def test_mismatched_template_raises_naming_the_leaves(single, tmp_path):
    loop, key, run, c0, c1, m1 = single
    path = checkpoint.save(tmp_path / "ckpt", c1)

    wider = jax.eval_shape(_loop(hidden=(16, 16)).init, key)
    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"60 leaves differ in shape/dtype: \.agent\.params\.actor\['linear'\]\['b'\] is \(32,\) float32 in the checkpoint but \(16,\) float32 in the template",
    ):
        checkpoint.restore(path, like=wider)

    two_seeds = jax.eval_shape(jax.vmap(loop.init), jax.random.split(key, 2))
    with pytest.raises(checkpoint.CheckpointError, match=r"number of seeds"):
        checkpoint.restore(path, like=two_seeds)

    with pytest.raises(
        checkpoint.CheckpointError,
        match=r"checkpoint leaves are not in the template: \.agent\.params\.actor",
    ):
        checkpoint.restore(path, like={"params": c0.agent.params})

    with pytest.raises(FileExistsError, match="overwrite=True"):
        checkpoint.save(path, c1)
    checkpoint.save(path, c0, overwrite=True)
    assert_trees_equal(checkpoint.restore(path, like=c1), c0)

    with pytest.raises(FileNotFoundError):
        checkpoint.restore(tmp_path / "missing", like=c0)
    (tmp_path / "junk").mkdir()
    with pytest.raises(checkpoint.CheckpointError, match="not a purerl checkpoint"):
        checkpoint.restore(tmp_path / "junk", like=c0)
    with pytest.raises(ValueError, match="missing_buffer"):
        checkpoint.restore(path, like=c0, missing_buffer="zeros")


@pytest.mark.parametrize("killed_at", [0, 1])
def test_overwrite_killed_mid_swap_loses_no_committed_checkpoint(
    killed_at, single, tmp_path, monkeypatch
):
    """A kill during ``save(..., overwrite=True)`` after the new checkpoint was committed: at the
    first rename (old -> .previous) or the second (.new -> path). ``restore`` still finds a
    committed checkpoint (the new one: it is complete), and the next ``save`` finishes the swap.
    Before issue 20 orbax's ``force=True`` deleted the old checkpoint before writing the new one."""
    import os

    loop, key, run, c0, c1, m1 = single
    path = checkpoint.save(tmp_path / "ckpt", c0)
    real_rename, calls = os.rename, []

    def dying_rename(src, dst):  # orbax's own commit renames pass through
        if os.fspath(src) in (path, path + ".new"):
            calls.append((src, dst))
            if len(calls) == killed_at + 1:
                raise KeyboardInterrupt("killed")
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", dying_rename)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, c1, overwrite=True)
    monkeypatch.setattr(os, "rename", real_rename)
    # killed_at 0: old still at path, new committed at .new; killed_at 1: old at .previous, new at
    # .new, nothing at path. Either way a committed checkpoint is readable.
    assert os.path.isdir(path + ".new")
    restored = checkpoint.restore(path, like=c1)
    assert_trees_equal(restored, c0 if killed_at == 0 else c1)
    # The next save completes the interrupted swap, then replaces it as asked.
    with pytest.raises(FileExistsError):
        checkpoint.save(path, c0)
    checkpoint.save(path, c1, overwrite=True)
    assert_trees_equal(checkpoint.restore(path, like=c1), c1)
    assert sorted(os.listdir(tmp_path)) == ["ckpt"]
