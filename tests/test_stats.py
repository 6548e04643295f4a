"""purerl.stats: rliable's aggregates on hand-computed examples, the stratified bootstrap, bad
input, and (when rliable imports) the same numbers as rliable. Pure numpy; no JAX."""

import functools

import numpy as np
import pytest
from scipy import stats as scipy_stats

from purerl import stats


def test_iqm_by_hand_and_as_scipy_trim_mean():
    # 8 scores 1..8: floor(8 / 4) = 2 cut from each end -> mean(3, 4, 5, 6) = 4.5.
    assert stats.iqm([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]]) == pytest.approx(4.5)
    # An outlier: [0, 1, 2, 3, 4, 100] -> cut 1 each end -> mean(1, 2, 3, 4) = 2.5 (mean 18.33).
    assert stats.iqm([[0.0, 100.0], [1.0, 2.0], [3.0, 4.0]]) == pytest.approx(2.5)
    # 5 scores: floor(5 / 4) = 1 cut -> mean(2, 3, 4) = 3, as scipy's trim_mean (and rliable).
    five = np.array([[1.0], [2.0], [3.0], [4.0], [100.0]])
    assert stats.iqm(five) == pytest.approx(3.0)
    x = np.random.default_rng(0).normal(size=(7, 3))
    assert stats.iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25, axis=None), rel=1e-12)
    # Batched: one value per leading index.
    np.testing.assert_allclose(stats.iqm(np.stack([x, x + 1.0])), stats.iqm(x) + [0.0, 1.0])


def test_mean_median_optimality_gap_by_hand():
    s = [[1.0, 2.0, 10.0], [3.0, 4.0, 20.0]]  # per-task means 2, 3, 15
    assert stats.mean(s) == pytest.approx(20.0 / 3.0)
    assert stats.median(s) == pytest.approx(3.0)
    # max(0, 1 - x) for 0.5, 1.2, 0.9, -0.1 = 0.5, 0, 0.1, 1.1 -> 1.7 / 4 = 0.425.
    og = [[0.5, 1.2], [0.9, -0.1]]
    assert stats.optimality_gap(og) == pytest.approx(0.425)
    # gamma = 2: 1.5, 0.8, 1.1, 2.1 -> 5.5 / 4.
    assert stats.optimality_gap(og, gamma=2.0) == pytest.approx(1.375)


def test_probability_of_improvement_by_hand():
    # Task 0: x = {1, 3}, y = {2, 3}: pairs (1,2) 0, (1,3) 0, (3,2) 1, (3,3) 1/2 -> 1.5 / 4.
    # Task 1: x = {5, 5}, y = {0, 0} -> 1. Average over tasks: (0.375 + 1) / 2 = 0.6875.
    x = [[1.0, 5.0], [3.0, 5.0]]
    y = [[2.0, 0.0], [3.0, 0.0]]
    assert stats.probability_of_improvement(x, y) == pytest.approx(0.6875)
    assert stats.probability_of_improvement(y, x) == pytest.approx(1 - 0.6875)
    assert stats.probability_of_improvement(x, x) == pytest.approx(0.5)
    # Different run counts: x = {1, 3}, y = {2} on one task -> 1 / 2.
    assert stats.probability_of_improvement([[1.0], [3.0]], [[2.0]]) == pytest.approx(0.5)


def test_stratified_resample_keeps_each_tasks_runs():
    runs, tasks, reps = 4, 3, 500
    x = 10.0 * np.arange(tasks)[None, :] + np.arange(runs)[:, None]  # task m: 10m + {0..3}
    r = stats.resample(x, reps, np.random.default_rng(0))
    assert r.shape == (reps, runs, tasks)  # every resample keeps `runs` scores per task
    for m in range(tasks):
        assert set(np.unique(r[:, :, m])) <= set(x[:, m])  # never borrows another task's runs
    # Tasks are resampled independently: the run drawn for task 0 does not decide task 1's.
    assert not np.array_equal(r[:, :, 0] - 0.0, r[:, :, 1] - 10.0)
    assert len({tuple(row) for row in r[:, :, 0]}) > 50  # and resamples differ


def test_bootstrap_ci_contains_point_and_is_reproducible():
    rng = np.random.default_rng(1)
    scores = {"a": rng.normal(0.7, 0.2, (5, 4)), "b": rng.normal(0.4, 0.3, (3, 4))}
    agg = lambda s: np.stack([stats.iqm(s), stats.optimality_gap(s)], axis=-1)
    points, cis = stats.interval_estimates(scores, agg, reps=2000, seed=3)
    for name in scores:
        assert points[name].shape == (2,) and cis[name].shape == (2, 2)
        assert np.all(cis[name][0] <= points[name]) and np.all(points[name] <= cis[name][1])
        assert np.all(cis[name][0] < cis[name][1])
    _, again = stats.interval_estimates(scores, agg, reps=2000, seed=3)
    _, other = stats.interval_estimates(scores, agg, reps=2000, seed=4)
    for name in scores:
        np.testing.assert_array_equal(cis[name], again[name])
        assert not np.array_equal(cis[name], other[name])
    # A narrower confidence gives a nested interval (same seed, same resamples).
    _, c80 = stats.interval_estimates(scores, agg, reps=2000, confidence=0.8, seed=3)
    assert np.all(c80["a"][0] >= cis["a"][0]) and np.all(c80["a"][1] <= cis["a"][1])
    # Pairs resampled independently: probability of improvement with its interval.
    pairs = {"a > b": (scores["a"], scores["b"])}
    p, ci = stats.interval_estimates(pairs, stats.probability_of_improvement, reps=1000)
    assert ci["a > b"][0] <= p["a > b"] <= ci["a > b"][1]
    # Constant scores: the interval collapses on the point.
    p, ci = stats.interval_estimates({"c": np.full((3, 2), 0.5)}, stats.iqm, reps=100)
    np.testing.assert_allclose(ci["c"], [0.5, 0.5])


def test_performance_profile_by_hand_and_monotone():
    # Scores 0.2, 0.8, 0.5, 1.0: > 0 all 4; > 0.5: 0.8, 1.0 -> 1/2; > 0.9: 1.0 -> 1/4.
    s = [[0.2, 0.8], [0.5, 1.0]]
    np.testing.assert_allclose(stats.run_score_distribution(s, [0.0, 0.5, 0.9]), [1, 0.5, 0.25])
    rng = np.random.default_rng(2)
    scores = {"a": rng.normal(0.6, 0.3, (5, 6)), "b": rng.normal(0.3, 0.3, (5, 6))}
    taus = np.linspace(-0.5, 1.5, 41)
    profiles, bands = stats.performance_profile(scores, taus, reps=500, seed=0)
    for name in scores:
        assert profiles[name].shape == taus.shape and bands[name].shape == (2, taus.size)
        # Non-increasing in tau: the profile and both band edges (quantiles keep the order).
        assert np.all(np.diff(profiles[name]) <= 0)
        assert np.all(np.diff(bands[name], axis=1) <= 0)
        assert np.all((bands[name][0] <= profiles[name]) & (profiles[name] <= bands[name][1]))
    assert profiles["a"][0] == 1.0 and profiles["a"][-1] == 0.0


def test_plot_performance_profile(tmp_path):
    taus = np.linspace(0.0, 1.0, 11)
    scores = {"a": np.random.default_rng(0).uniform(size=(4, 3))}
    profiles, bands = stats.performance_profile(scores, taus, reps=200)
    path = tmp_path / "p" / "profile.png"
    fig = stats.plot_performance_profile(taus, profiles, bands, path, reference={"expert": 1.0})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.lines] == ["a", "expert (1)"]
    band = ax.collections[0].get_paths()[0].vertices[:, 1]
    assert band.min() >= 0.0 and band.max() <= 1.0


def test_bad_input_names_the_problem():
    with pytest.raises(ValueError, match="ragged"):
        stats.iqm([[1.0, 2.0], [3.0]])
    with pytest.raises(ValueError, match=r"non-finite.*index \(1, 0\)"):
        stats.optimality_gap([[1.0, 2.0], [np.nan, 3.0]])
    with pytest.raises(ValueError, match="empty"):
        stats.iqm(np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"\[runs, tasks\]"):
        stats.mean([1.0, 2.0])
    with pytest.raises(ValueError, match="scores is empty"):
        stats.interval_estimates({}, stats.iqm)
    with pytest.raises(ValueError, match=r"scores\['b'\] has 1 non-finite"):
        stats.interval_estimates(
            {"a": np.ones((2, 2)), "b": [[1.0, np.inf], [0.0, 0.0]]}, stats.iqm
        )
    with pytest.raises(ValueError, match="same tasks"):
        stats.performance_profile({"a": np.ones((2, 3)), "b": np.ones((2, 4))}, [0.5])
    with pytest.raises(ValueError, match="tasks"):
        stats.probability_of_improvement(np.ones((2, 3)), np.ones((2, 4)))
    with pytest.raises(ValueError, match="confidence"):
        stats.interval_estimates({"a": np.ones((2, 2))}, stats.iqm, confidence=95)
    with pytest.raises(ValueError, match="taus"):
        stats.run_score_distribution(np.ones((2, 2)), [])


def _rliable():
    try:  # a broken install (arch 7 with pandas 3) raises TypeError, not ImportError
        from rliable import library, metrics
    except Exception as e:  # noqa: BLE001
        pytest.skip(f"rliable does not import here: {type(e).__name__}: {e}")
    return library, metrics


def test_same_numbers_as_rliable():
    library, metrics = _rliable()
    rng = np.random.default_rng(5)
    scores = {"a": rng.normal(0.7, 0.3, (5, 4)), "b": rng.normal(0.5, 0.4, (5, 4))}
    a, b = scores["a"], scores["b"]
    for ours, theirs in (
        (stats.iqm, metrics.aggregate_iqm),
        (stats.mean, metrics.aggregate_mean),
        (stats.median, metrics.aggregate_median),
        (stats.optimality_gap, metrics.aggregate_optimality_gap),
    ):
        assert ours(a) == pytest.approx(theirs(a), abs=1e-12)
    assert stats.probability_of_improvement(a, b) == pytest.approx(
        metrics.probability_of_improvement(a, b), abs=1e-12
    )
    # Intervals: different random streams, so equal up to Monte Carlo error.
    agg = lambda s: np.stack([stats.iqm(s), stats.optimality_gap(s)], axis=-1)
    their_agg = lambda s: np.array([metrics.aggregate_iqm(s), metrics.aggregate_optimality_gap(s)])
    _, ours = stats.interval_estimates(scores, agg, reps=20_000, seed=0)
    np.random.seed(0)  # rliable draws its indices from numpy's global RNG
    _, theirs = library.get_interval_estimates(scores, their_agg, reps=5000)
    for name in scores:
        np.testing.assert_allclose(ours[name], theirs[name], atol=0.02)
    taus = np.linspace(0.0, 1.2, 13)
    profiles, bands = stats.performance_profile(scores, taus, reps=2000)
    their_profiles, their_bands = library.create_performance_profile(scores, taus, reps=1000)
    for name in scores:
        np.testing.assert_allclose(profiles[name], their_profiles[name], atol=1e-12)
        # Quantiles of a distribution on multiples of 1/20 may land one atom apart.
        np.testing.assert_allclose(bands[name], their_bands[name], atol=1 / 20 + 1e-9)
    pairs = {"a > b": (a, b)}
    p, ci = stats.interval_estimates(pairs, stats.probability_of_improvement, reps=5000)
    np.random.seed(0)
    their_p, their_ci = library.get_interval_estimates(
        pairs, metrics.probability_of_improvement, reps=1000
    )
    assert p["a > b"] == pytest.approx(their_p["a > b"], abs=1e-12)
    np.testing.assert_allclose(ci["a > b"], np.ravel(their_ci["a > b"]), atol=0.04)


def test_partial_aggregate():
    s = {"a": np.array([[0.5, 1.5], [0.5, 1.5]])}
    p, _ = stats.interval_estimates(s, functools.partial(stats.optimality_gap, gamma=1.0), reps=10)
    assert p["a"] == pytest.approx(0.25)  # (0.5 + 0 + 0.5 + 0) / 4
