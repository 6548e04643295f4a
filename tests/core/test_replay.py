import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.core import replay
from purerl.core.types import Transition


def _item(v):
    return {"x": jnp.asarray(v, jnp.float32)}


def test_ring_buffer_overwrites_oldest_and_tracks_size():
    state = replay.init(_item(0.0), capacity=3, num_envs=2)
    for t in range(5):
        state = replay.add(state, {"x": jnp.array([t, 10 + t], jnp.float32)})
    # 5 writes into 3 slots: slots hold t=3, 4, 2 (slot = t mod 3); insert points at slot 2.
    np.testing.assert_array_equal(state.data["x"][:, 0], [3, 4, 2])
    np.testing.assert_array_equal(state.data["x"][:, 1], [13, 14, 12])
    assert int(state.size) == 3 and int(state.insert) == 2


def test_sample_only_valid_items_and_windows_are_consecutive():
    state = replay.init(_item(0.0), capacity=8, num_envs=2)
    for t in range(5):  # t = 0..4 written, slots 5..7 empty (zeros must never be sampled)
        state = replay.add(state, {"x": jnp.array([100 + t, 200 + t], jnp.float32)})
    single = replay.sample(state, jax.random.key(0), 512)["x"]
    assert set(np.unique(np.asarray(single))) <= {100 + t for t in range(5)} | {
        200 + t for t in range(5)
    }
    windows = np.asarray(replay.sample(state, jax.random.key(1), 512, n=3)["x"])
    assert windows.shape == (512, 3)
    np.testing.assert_array_equal(np.diff(windows, axis=1), 1.0)  # same env, consecutive steps
    assert windows[:, 0].max() % 100 <= 2  # a window of 3 must start at t <= 2


def test_windows_wrap_around_the_ring_in_time_order():
    state = replay.init(_item(0.0), capacity=4, num_envs=1)
    for t in range(6):  # holds t = 2, 3, 4, 5 in slots 2, 3, 0, 1
        state = replay.add(state, {"x": jnp.array([t], jnp.float32)})
    windows = np.asarray(replay.sample(state, jax.random.key(0), 256, n=2)["x"])
    assert {tuple(w) for w in windows} == {(2, 3), (3, 4), (4, 5)}


def test_sample_under_vmap_matches_loop():
    def fill(seed):
        state = replay.init(_item(0.0), capacity=4, num_envs=3)
        for t in range(4):
            state = replay.add(state, {"x": seed * 100.0 + t + jnp.arange(3.0) * 10})
        return replay.sample(state, jax.random.key(7), 5, n=2)["x"]

    batched = jax.vmap(fill)(jnp.arange(3.0))
    for i in range(3):
        np.testing.assert_array_equal(batched[i], fill(float(i)))


def test_n_step_target_hand_computed():
    gamma = 0.5
    reward = jnp.array([[1.0, 2.0, 4.0], [1.0, 2.0, 4.0], [1.0, 2.0, 4.0]])
    term = jnp.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    trunc = jnp.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 0.0, 0.0]])
    g, w, m = replay.n_step_target(reward, term, trunc, gamma)
    # row 0: 1 + .5*2 + .25*4 = 3, bootstrap .5^3 = .125 from step 2
    # row 1: terminated at step 1: 1 + .5*2 = 2, no bootstrap
    # row 2: truncated at step 0: 1, bootstrap .5 from step 0's next_obs
    np.testing.assert_allclose(g, [3.0, 2.0, 1.0])
    np.testing.assert_allclose(w, [0.125, 0.0, 0.5])
    np.testing.assert_array_equal(m, [2, 1, 0])
    x = jnp.arange(9.0).reshape(3, 3)
    np.testing.assert_array_equal(replay.select_step(x, m), [2.0, 4.0, 6.0])


def test_bad_capacity_raises():
    with pytest.raises(ValueError, match="capacity"):
        replay.init(_item(0.0), capacity=0, num_envs=1)


def test_transition_items_roundtrip():
    t = Transition(
        obs=jnp.zeros(3),
        action=jnp.zeros(2),
        reward=jnp.zeros(()),
        next_obs=jnp.zeros(3),
        terminated=jnp.zeros(()),
        truncated=jnp.zeros(()),
    )
    state = replay.init(t, capacity=2, num_envs=4)
    batch = jax.tree.map(lambda x: jnp.ones((4, *x.shape)), t)
    state = replay.add(state, batch)
    out = replay.sample(state, jax.random.key(0), 6)
    assert out.obs.shape == (6, 3) and out.action.shape == (6, 2) and out.reward.shape == (6,)
    np.testing.assert_array_equal(out.obs, 1.0)
