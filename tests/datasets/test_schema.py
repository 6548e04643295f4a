"""Tests for purerl.datasets.schema: every DatasetError of validate, and the Dataset helpers."""

import numpy as np
import pytest

from purerl.datasets.schema import (
    REQUIRED,
    Dataset,
    DatasetError,
    concatenate,
    normalized_score,
    validate,
)

N = 6  # two episodes: indices 0..2 end in a terminal, 3..5 in a timeout


def make_arrays(n=N, obs_dim=3, act_dim=2, terminal_at=(2,), timeout_at=(5,)):
    """Raw float64 arrays with distinct values, so casts and copies can be checked."""
    obs = np.arange(n * obs_dim, dtype=np.float64).reshape(n, obs_dim)
    terminals = np.zeros(n, bool)
    terminals[list(terminal_at)] = True
    timeouts = np.zeros(n, bool)
    timeouts[list(timeout_at)] = True
    return {
        "observations": obs,
        "actions": np.linspace(-1, 1, n * act_dim).reshape(n, act_dim),
        "rewards": np.arange(1, n + 1, dtype=np.float64),
        "next_observations": obs + 100.0,
        "terminals": terminals,
        "timeouts": timeouts,
    }


# --------------------------------------------------------------------------------------------------
# validate: what it accepts and how it casts.


def test_validate_casts_and_builds_episode_ids():
    arrays = make_arrays()
    arrays["infos/qpos"] = np.zeros((N, 7))  # D4RL extras are ignored
    ds = validate(arrays, {"env": "toy"})
    assert isinstance(ds, Dataset)
    assert len(ds) == N and ds.obs_shape == (3,) and ds.action_shape == (2,)
    for name in ("observations", "actions", "rewards", "next_observations"):
        assert getattr(ds, name).dtype == np.float32
        np.testing.assert_allclose(getattr(ds, name), arrays[name], rtol=1e-6)
    assert ds.terminals.dtype == bool and ds.timeouts.dtype == bool
    np.testing.assert_array_equal(ds.episode_ids, [0, 0, 0, 1, 1, 1])
    assert ds.episode_ids.dtype == np.int32
    assert ds.num_episodes == 2
    assert ds.metadata == {"env": "toy"}
    assert set(ds.arrays()) == {*REQUIRED, "episode_ids"}


def test_validate_accepts_0_1_number_flags_and_discrete_actions():
    arrays = make_arrays()
    arrays["terminals"] = arrays["terminals"].astype(np.float32)
    arrays["timeouts"] = arrays["timeouts"].astype(np.int64)
    arrays["actions"] = np.array([0, 1, 2, 0, 1, 2], np.int64)
    ds = validate(arrays)
    assert ds.terminals.dtype == bool and ds.timeouts.dtype == bool
    np.testing.assert_array_equal(ds.terminals, arrays["terminals"] == 1)
    assert ds.actions.dtype == np.int32  # discrete indices stay integers
    np.testing.assert_array_equal(ds.actions, [0, 1, 2, 0, 1, 2])


# --------------------------------------------------------------------------------------------------
# validate: every DatasetError, with the field and index in the message.


@pytest.mark.parametrize("name", REQUIRED)
def test_missing_field(name):
    arrays = make_arrays()
    del arrays[name]
    with pytest.raises(DatasetError, match=f"missing field '{name}' in my.npz"):
        validate(arrays, source="my.npz")


def test_missing_next_observations_hints_at_d4rl():
    arrays = make_arrays()
    del arrays["next_observations"]
    with pytest.raises(DatasetError, match="qlearning_dataset"):
        validate(arrays)


@pytest.mark.parametrize("name", ["observations", "actions", "next_observations", "terminals"])
def test_length_mismatch(name):
    arrays = make_arrays()
    arrays[name] = arrays[name][:-1]
    with pytest.raises(DatasetError, match=f"field '{name}' has length 5, but 'rewards' has 6"):
        validate(arrays)


def test_nan_in_observations_names_the_index():
    arrays = make_arrays()
    arrays["observations"][4, 1] = np.nan
    with pytest.raises(DatasetError, match=r"'observations' in d\.h5 has a non-finite .* index 4"):
        validate(arrays, source="d.h5")


def test_inf_in_rewards_names_the_index():
    arrays = make_arrays()
    arrays["rewards"][3] = -np.inf
    with pytest.raises(DatasetError, match="'rewards' has a non-finite value .* at index 3"):
        validate(arrays)


def test_values_beyond_float32_are_named_not_cast_to_inf():
    """float64 values finite before the float32 cast but inf after it (issue 20: they passed the
    NaN/inf check and reached training as inf)."""
    arrays = make_arrays()
    arrays["observations"] = arrays["observations"].astype(np.float64)
    arrays["observations"][2, 0] = 1e39
    with pytest.raises(DatasetError, match=r"'observations' has a value at index 2 too large"):
        validate(arrays)


def test_nan_in_next_observations_and_actions():
    arrays = make_arrays()
    arrays["next_observations"][5, 0] = np.nan
    with pytest.raises(DatasetError, match="'next_observations' .* at index 5"):
        validate(arrays)
    arrays = make_arrays()
    arrays["actions"][1, 1] = np.inf
    with pytest.raises(DatasetError, match="'actions' .* at index 1"):
        validate(arrays)


@pytest.mark.parametrize(
    "name, value, dtype",
    [
        ("observations", np.full((N, 3), "a"), "<U1"),
        ("rewards", np.ones(N, np.complex128), "complex128"),
        ("actions", np.ones((N, 2), np.complex64), "complex64"),
        ("next_observations", np.empty((N, 3), object), "object"),
        ("terminals", np.full(N, "x"), "<U1"),
    ],
)
def test_wrong_dtype(name, value, dtype):
    arrays = make_arrays()
    arrays[name] = value
    with pytest.raises(DatasetError, match=f"field '{name}' has dtype {dtype}"):
        validate(arrays)


def test_rewards_must_be_1d():
    arrays = make_arrays()
    arrays["rewards"] = arrays["rewards"][:, None]
    with pytest.raises(DatasetError, match=r"field 'rewards' has shape \(6, 1\), expected \[N\]"):
        validate(arrays)


def test_observations_must_be_at_least_2d():
    arrays = make_arrays()
    arrays["observations"] = arrays["observations"][:, 0]
    arrays["next_observations"] = arrays["next_observations"][:, 0]
    with pytest.raises(DatasetError, match=r"'observations' has shape \(6,\), .* at least 2"):
        validate(arrays)


def test_next_observations_shape_must_match_observations():
    arrays = make_arrays()
    arrays["next_observations"] = np.zeros((N, 4))
    with pytest.raises(
        DatasetError,
        match=r"'next_observations' has shape \(6, 4\), but 'observations' has \(6, 3\)",
    ):
        validate(arrays)


def test_flags_must_be_1d():
    arrays = make_arrays()
    arrays["timeouts"] = np.zeros((N, 2), bool)
    with pytest.raises(DatasetError, match=r"field 'timeouts' has shape \(6, 2\), expected \[6\]"):
        validate(arrays)


def test_terminals_not_0_1_names_value_and_index():
    arrays = make_arrays()
    arrays["terminals"] = np.array([0, 0, 2, 0, 0, 0])
    # numpy 2 reprs scalars as np.int64(2); the pattern accepts that and the plain 2
    with pytest.raises(
        DatasetError, match=r"field 'terminals' must be 0/1, got (np\.\w+\()?2\)? at index 2"
    ):
        validate(arrays)


def test_timeouts_not_0_1_names_value_and_index():
    arrays = make_arrays()
    arrays["timeouts"] = np.array([0, 0, 0, 0, 0.5, 1])
    with pytest.raises(
        DatasetError, match=r"field 'timeouts' must be 0/1, got (np\.\w+\()?0\.5\)? at index 4"
    ):
        validate(arrays)


def test_empty_dataset():
    arrays = {
        "observations": np.zeros((0, 3)),
        "actions": np.zeros((0, 2)),
        "rewards": np.zeros(0),
        "next_observations": np.zeros((0, 3)),
        "terminals": np.zeros(0, bool),
        "timeouts": np.zeros(0, bool),
    }
    with pytest.raises(DatasetError, match=r"dataset in e\.npz is empty \(0 transitions\)"):
        validate(arrays, source="e.npz")


def test_episode_that_never_ends_names_its_start():
    # Episodes: 0..2 (terminal), then 3..9 with its first end at 9: 7 steps > max_episode_steps=4.
    arrays = make_arrays(n=10, terminal_at=(2, 9), timeout_at=())
    with pytest.raises(
        DatasetError, match=r"episode starting at index 3 never ends.*max_episode_steps=4"
    ):
        validate(arrays, {"max_episode_steps": 4})
    validate(arrays, {"max_episode_steps": 7})  # exactly at the limit is fine


def test_default_max_episode_steps_is_1000():
    arrays = make_arrays(n=1001, terminal_at=(), timeout_at=())
    with pytest.raises(DatasetError, match="starting at index 0 never ends"):
        validate(arrays)


def test_last_episode_cut_by_end_of_data_is_accepted_and_marked():
    arrays = make_arrays(terminal_at=(2,), timeout_at=())  # 3..5 has no end flag
    ds = validate(arrays, {"max_episode_steps": 3})
    assert ds.timeouts[-1] and not ds.terminals[-1]
    np.testing.assert_array_equal(ds.timeouts, [0, 0, 0, 0, 0, 1])
    assert ds.metadata["final_episode_cut"] is True
    assert not arrays["timeouts"][-1]  # the caller's array is not modified
    np.testing.assert_array_equal(ds.episode_ids, [0, 0, 0, 1, 1, 1])


def test_last_episode_cut_beyond_the_limit_is_an_error():
    arrays = make_arrays(terminal_at=(1,), timeout_at=())  # 0..1, then 2..5: 4 steps > 2
    with pytest.raises(DatasetError, match="starting at index 2 never ends"):
        validate(arrays, {"max_episode_steps": 2})


def test_complete_data_is_not_marked_cut():
    assert "final_episode_cut" not in validate(make_arrays()).metadata


# --------------------------------------------------------------------------------------------------
# episode_ids.


def test_episode_ids_are_kept():
    arrays = make_arrays()
    arrays["episode_ids"] = np.array([7, 7, 7, 8, 8, 8], np.int64)
    ds = validate(arrays)
    np.testing.assert_array_equal(ds.episode_ids, [7, 7, 7, 8, 8, 8])
    assert ds.episode_ids.dtype == np.int32


@pytest.mark.parametrize(
    "ids, frm, to, index",
    [([0, 0, 0, 2, 2, 2], 0, 2, 3), ([1, 1, 1, 0, 0, 0], 1, 0, 3)],
)
def test_episode_ids_jump(ids, frm, to, index):
    arrays = make_arrays()
    arrays["episode_ids"] = np.array(ids)
    with pytest.raises(
        DatasetError, match=f"'episode_ids' must count up .* from {frm} to {to} at index {index}"
    ):
        validate(arrays)


def test_episode_ids_change_without_an_end():
    arrays = make_arrays()
    arrays["episode_ids"] = np.array([0, 0, 1, 1, 1, 1])  # changes after 1, but the end is at 2
    with pytest.raises(
        DatasetError,
        match="episode 0 changes to 1 after index 1, but neither 'terminals' nor 'timeouts'",
    ):
        validate(arrays)


def test_episode_ids_continue_after_an_end():
    arrays = make_arrays()
    arrays["episode_ids"] = np.zeros(N, int)  # the terminal at 2 should start episode 1 at 3
    with pytest.raises(
        DatasetError, match="set at index 2, but 'episode_ids' continues episode 0 at index 3"
    ):
        validate(arrays)


def test_episode_ids_dtype_and_shape():
    arrays = make_arrays()
    arrays["episode_ids"] = np.zeros(N, np.float32)
    with pytest.raises(DatasetError, match="'episode_ids' has dtype float32, expected integers"):
        validate(arrays)
    arrays["episode_ids"] = np.zeros(N - 1, int)
    with pytest.raises(DatasetError, match=r"'episode_ids' has shape \(5,\), expected \[6\]"):
        validate(arrays)


def test_subsampled_data_skips_the_episode_end_checks():
    # Every 20th transition of long episodes: ids change without flags, and no episode "ends".
    arrays = make_arrays(terminal_at=(), timeout_at=())
    arrays["episode_ids"] = np.array([0, 0, 1, 1, 2, 2])
    ds = validate(arrays, {"subsample_every": 20, "max_episode_steps": 2})
    np.testing.assert_array_equal(ds.episode_ids, [0, 0, 1, 1, 2, 2])
    assert "final_episode_cut" not in ds.metadata
    arrays["episode_ids"] = np.array([0, 0, 3, 3, 3, 3])  # jumps are still errors
    with pytest.raises(DatasetError, match="jumps from 0 to 3 at index 2"):
        validate(arrays, {"subsample_every": 20})


# --------------------------------------------------------------------------------------------------
# Dataset helpers.


def test_next_actions():
    ds = validate(make_arrays())
    a = ds.actions
    expected = np.stack([a[1], a[2], 0 * a[0], a[4], a[5], 0 * a[0]])  # zeros at the ends 2 and 5
    np.testing.assert_array_equal(ds.next_actions(), expected)
    assert ds.next_actions().dtype == np.float32


def test_next_actions_discrete():
    arrays = make_arrays()
    arrays["actions"] = np.array([3, 1, 4, 1, 5, 9])
    np.testing.assert_array_equal(validate(arrays).next_actions(), [1, 4, 0, 5, 9, 0])


def test_next_actions_refuses_subsampled_data():
    ds = validate(make_arrays(), {"subsample_every": 20})
    with pytest.raises(DatasetError, match="every 20th transition .*subsample_every"):
        ds.next_actions()


def test_transitions():
    arrays = make_arrays(terminal_at=(2, 5), timeout_at=(5,))  # 5 is both: terminal wins
    ds = validate(arrays)
    t = ds.transitions()
    assert t.terminated.dtype == np.float32 and t.truncated.dtype == np.float32
    np.testing.assert_array_equal(t.terminated, [0, 0, 1, 0, 0, 1])
    np.testing.assert_array_equal(t.truncated, [0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(t.obs, ds.observations)
    np.testing.assert_array_equal(t.next_obs, ds.next_observations)
    np.testing.assert_array_equal(t.action, ds.actions)
    np.testing.assert_array_equal(t.reward, ds.rewards)
    assert t.next_action is None
    t = validate(make_arrays()).transitions(next_actions=True)
    np.testing.assert_array_equal(t.truncated, [0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(t.next_action, validate(make_arrays()).next_actions())


def test_episode_returns():
    # Rewards 1..6; episodes [0], [1, 2], [3, 4, 5] -> returns 1, 2+3=5, 4+5+6=15.
    ds = validate(make_arrays(terminal_at=(0, 2), timeout_at=(5,)))
    np.testing.assert_allclose(ds.episode_returns(), [1.0, 5.0, 15.0])
    assert ds.episode_returns().dtype == np.float32


def test_episode_returns_follow_order_of_appearance():
    arrays = make_arrays(terminal_at=(0, 2), timeout_at=(5,))
    arrays["episode_ids"] = np.array([4, 5, 5, 6, 6, 6])
    np.testing.assert_allclose(validate(arrays).episode_returns(), [1.0, 5.0, 15.0])


def test_normalized_score_scalar():
    # 100 * (50 - 10) / (90 - 10) = 100 * 40 / 80 = 50
    assert normalized_score(50.0, 10.0, 90.0) == pytest.approx(50.0)
    # 100 * (-5 - (-10)) / (10 - (-10)) = 100 * 5 / 20 = 25
    assert normalized_score(-5.0, -10.0, 10.0) == pytest.approx(25.0)


def test_normalized_score_array():
    # random -> 0, expert -> 100, halfway -> 50, beyond the expert -> 150 (130 = 90 + 40)
    scores = normalized_score(np.array([10.0, 90.0, 50.0, 130.0]), 10, 90)
    np.testing.assert_allclose(scores, [0.0, 100.0, 50.0, 150.0])


def test_normalized_score_bad_references():
    with pytest.raises(DatasetError, match=r"equal \(5\.0\)"):
        normalized_score(1.0, 5.0, 5.0)
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(DatasetError, match="must be finite"):
            normalized_score(1.0, bad, 5.0)
        with pytest.raises(DatasetError, match="must be finite"):
            normalized_score(1.0, 0.0, bad)


def test_dataset_normalized_score():
    ds = validate(make_arrays(), {"ref_min_score": 10.0, "ref_max_score": 90.0})
    assert ds.normalized_score(50.0) == pytest.approx(50.0)
    np.testing.assert_allclose(ds.normalized_score(np.array([10.0, 90.0])), [0.0, 100.0])


@pytest.mark.parametrize("missing", ["ref_min_score", "ref_max_score"])
def test_dataset_normalized_score_without_references(missing):
    meta = {"ref_min_score": 10.0, "ref_max_score": 90.0}
    del meta[missing]
    with pytest.raises(DatasetError, match=f"metadata has no '{missing}'"):
        validate(make_arrays(), meta).normalized_score(50.0)


# --------------------------------------------------------------------------------------------------
# concatenate.


def test_concatenate_renumbers_episodes():
    first = validate(make_arrays(), {"env": "toy", "policy": "medium"})
    arrays = make_arrays(n=4, terminal_at=(0,), timeout_at=(1, 3))
    arrays["episode_ids"] = np.array([10, 11, 12, 12])
    second = validate(arrays)
    joined = concatenate([first, second], {"policy": "medium-expert"})
    assert len(joined) == 10
    np.testing.assert_array_equal(joined.episode_ids, [0, 0, 0, 1, 1, 1, 2, 3, 4, 4])
    for name in REQUIRED:
        np.testing.assert_array_equal(
            getattr(joined, name), np.concatenate([getattr(first, name), getattr(second, name)])
        )
    assert joined.metadata == {"env": "toy", "policy": "medium-expert"}
    np.testing.assert_allclose(joined.episode_returns(), [6.0, 15.0, 1.0, 2.0, 7.0])


def test_concatenate_rejects_mismatched_shapes():
    a = validate(make_arrays(obs_dim=3))
    b = validate(make_arrays(obs_dim=4))
    with pytest.raises(DatasetError, match="concatenate: datasets have different shapes"):
        concatenate([a, b])


def test_concatenate_nothing():
    with pytest.raises(DatasetError, match="no datasets given"):
        concatenate([])
