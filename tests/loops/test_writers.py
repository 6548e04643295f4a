"""Metrics writers (CSV, TensorBoard, W&B import errors), confidence intervals, learning curves
(bands inside the bounds, one seed without a band, reference lines) and the results table,
checked on hand-made metrics."""

import math
import struct
import sys

import numpy as np
import pytest

from purerl.loops import plots, writers

NAN = float("nan")

# Two seeds, two eval periods, as run_seeds returns them ([seeds, periods]).
METRICS = {
    "env_steps": np.array([[100, 200], [100, 200]], np.int32),
    "eval/return": np.array([[1.5, 2.25], [-1.0, 0.5]], np.float32),
    "loss/critic": np.array([[NAN, 0.125], [NAN, 0.375]], np.float32),
    "check/nonfinite_step": np.array([[-1, -1], [-1, -1]], np.int32),
}


def test_csv_rows_one_per_seed_and_period(tmp_path):
    path = writers.write_csv(tmp_path / "sub" / "metrics.csv", METRICS)
    lines = (tmp_path / "sub" / "metrics.csv").read_text().splitlines()
    assert lines == [
        "env_steps,seed,check/nonfinite_step,eval/return,loss/critic",
        "100,0,-1,1.5,nan",
        "200,0,-1,2.25,0.125",
        "100,1,-1,-1.0,nan",
        "200,1,-1,0.5,0.375",
    ]
    back = writers.read_csv(path)
    np.testing.assert_array_equal(back["seed"], [[0, 0], [1, 1]])
    np.testing.assert_array_equal(back["env_steps"], METRICS["env_steps"])
    np.testing.assert_array_equal(back["eval/return"], METRICS["eval/return"])
    np.testing.assert_array_equal(back["loss/critic"], METRICS["loss/critic"])  # NaN == NaN here


def test_csv_single_run_labels_and_appending(tmp_path):
    one = {k: v[1] for k, v in METRICS.items()}  # one run: leaves [periods]
    with writers.CSVWriter(tmp_path / "m.csv") as w:
        w.write(one, seeds=[7])
        later = {k: v[:1] for k, v in one.items()}
        later["env_steps"] = np.array([300])
        w.write(later, seeds=[7])  # a later chunk of periods (resumed run) appends
        with pytest.raises(ValueError, match="metric names changed"):
            w.write({"env_steps": np.array([400]), "other": np.array([1.0])}, seeds=[7])
    lines = (tmp_path / "m.csv").read_text().splitlines()
    assert lines[1:] == ["100,7,-1,-1.0,nan", "200,7,-1,0.5,0.375", "300,7,-1,-1.0,nan"]

    with pytest.raises(KeyError, match="env_steps"):
        writers.write_csv(tmp_path / "x.csv", {"eval/return": np.zeros(2)})
    with pytest.raises(ValueError, match="2 seed labels for 1 seeds"):
        writers.write_csv(tmp_path / "x.csv", one, seeds=[0, 1])


def test_period_rows_average_seeds_ignoring_nan():
    rows = list(writers.period_rows({**METRICS, "loss/critic": np.array([[NAN, 1.0], [3.0, NAN]])}))
    assert [step for step, _ in rows] == [100, 200]
    step, first = rows[0]
    assert first["eval/return"] == pytest.approx((1.5 - 1.0) / 2)
    assert first["seed0/eval/return"] == 1.5 and first["seed1/eval/return"] == -1.0
    assert first["loss/critic"] == 3.0  # the NaN of seed 0 is left out of the mean
    assert math.isnan(first["seed0/loss/critic"])


def _read_tfrecords(path):
    """Records of a TensorBoard event file: [len u64][crc u32][data][crc u32]."""
    from tensorboardX.proto import event_pb2

    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        event = event_pb2.Event()
        event.ParseFromString(data[i + 12 : i + 12 + n])
        out.append(event)
        i += 12 + n + 4
    return out


def test_tensorboard_writer_one_dir_per_seed(tmp_path):
    pytest.importorskip("tensorboardX")
    with writers.TensorBoardWriter(tmp_path / "tb") as tb:
        tb.write(METRICS)
    for seed in (0, 1):
        (event_file,) = (tmp_path / "tb" / f"seed_{seed}").iterdir()
        scalars = {
            (v.tag, e.step): v.simple_value
            for e in _read_tfrecords(event_file)
            for v in e.summary.value
        }
        assert scalars[("eval/return", 100)] == METRICS["eval/return"][seed, 0]
        assert scalars[("eval/return", 200)] == METRICS["eval/return"][seed, 1]
        assert scalars[("loss/critic", 200)] == METRICS["loss/critic"][seed, 1]
        assert ("loss/critic", 100) not in scalars  # NaN (warm-up) is skipped


def test_missing_extras_name_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    with pytest.raises(ImportError, match=r"pip install purerl\[tensorboard\]"):
        writers.TensorBoardWriter(tmp_path)
    with pytest.raises(ImportError, match=r"pip install purerl\[wandb\]"):
        writers.WandbWriter(project="p")


def test_mean_ci_student_t_by_hand():
    # [1, 2, 3, 4]: mean 2.5; s^2 = (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3, s = 1.2909944;
    # se = s / 2 = 0.6454972; t_{0.975, 3} = 3.1824463 -> half = 2.0542603.
    mean, half, n = plots.mean_ci(np.array([[1.0], [2.0], [3.0], [4.0]]))
    assert mean[0] == pytest.approx(2.5) and n[0] == 4
    assert half[0] == pytest.approx(2.0542603, rel=1e-6)
    # Per period with a NaN: [1, NaN, 3] -> n = 2, mean 2, s = sqrt(2), se = 1, t_{0.975, 1} = 12.7062047.
    # [5, 5, 5] -> s = 0 -> half 0. One finite value -> no interval (NaN).
    x = np.array([[1.0, 5.0, NAN], [NAN, 5.0, 7.0], [3.0, 5.0, NAN]])
    mean, half, n = plots.mean_ci(x)
    np.testing.assert_allclose(mean, [2.0, 5.0, 7.0])
    np.testing.assert_array_equal(n, [2, 3, 1])
    assert half[0] == pytest.approx(12.7062047, rel=1e-6)
    assert half[1] == 0.0 and math.isnan(half[2])
    # 90%: t_{0.95, 3} = 2.3533634 -> half = 2.3533634 * 0.6454972 = 1.5190896.
    _, half90, _ = plots.mean_ci([1.0, 2.0, 3.0, 4.0], confidence=0.9)
    assert float(half90) == pytest.approx(1.5190896, rel=1e-6)
    with pytest.raises(ValueError, match="confidence"):
        plots.mean_ci([1.0, 2.0], confidence=95)


def test_results_table_markdown():
    runs = {
        "td3": METRICS,  # final returns [2.25, 0.5]: mean 1.375, s = 1.75 / sqrt(2), se = 0.875,
        #                  half = 12.7062047 * 0.875 = 11.118
        "one seed": {"env_steps": np.array([100, 200]), "eval/return": np.array([3.0, 5.0])},
    }
    table = plots.results_table(runs, extra_columns={"wall time (s)": {"td3": "12.5"}})
    assert table.splitlines() == [
        "| run | env steps | seeds | final eval/return (mean ± 95% CI) | wall time (s) |",
        "|---|---:|---:|---:|---:|",
        "| td3 | 200 | 2 | 1.38 ± 11.12 | 12.5 |",
        "| one seed | 200 | 1 | 5.00 ± n/a |  |",
    ]
    assert plots.format_ci(-3.14159, 0.5, precision=3) == "-3.142 ± 0.500"
    with pytest.raises(KeyError, match="eval/return"):
        plots.results_table({"x": {"env_steps": np.array([1])}})


def test_learning_curve_png(tmp_path):
    runs = {
        "td3": METRICS,
        "one seed": {"env_steps": np.array([100, 200]), "eval/return": np.array([3.0, 5.0])},
    }
    fig = plots.learning_curve(runs, tmp_path / "plots" / "curve.png", title="demo")
    data = (tmp_path / "plots" / "curve.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    ax = fig.axes[0]
    assert _legend_lines(ax) == ["td3 (2 seeds)", "one seed (1 seed)"]
    np.testing.assert_allclose(ax.lines[0].get_ydata(), [0.25, 1.375])  # seed means
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [100, 200])
    # td3's two seeds as thin lines; the one-seed run is its own line.
    thin = [line for line in ax.lines if line.get_label().startswith("_td3 seed")]
    assert len(thin) == 2
    np.testing.assert_allclose(thin[1].get_ydata(), [-1.0, 0.5])
    assert len(ax.collections) == 1  # a CI band for the 2-seed run only
    assert ax.get_xlabel() == "env steps"
    assert ax.get_ylabel().startswith("eval return (undiscounted, per episode)\n")
    assert "95% bootstrap CI" in ax.get_ylabel()
    with pytest.raises(KeyError, match="no metric 'q/mean'"):
        plots.learning_curve(runs, metric="q/mean")


def _legend_lines(ax) -> list[str]:
    return [line.get_label() for line in ax.lines if not line.get_label().startswith("_")]


def _band_y(ax) -> np.ndarray:
    return np.concatenate([p.vertices[:, 1] for c in ax.collections for p in c.get_paths()])


@pytest.mark.parametrize("band", ["bootstrap", "t"])
def test_learning_curve_band_never_leaves_bounds(band):
    # 4 seeds that swing between the floor and the ceiling of [0, 1000] (the t band would reach
    # about -500 and 1500 unclipped), one seed wildly outside the range at the last period.
    ret = np.array([[0.0, 1000.0, 0.0], [1000.0, 0.0, 1000.0], [0.0, 1000.0, 1e6], [1000, 0, -1e6]])
    runs = {"wild": {"env_steps": np.tile([10, 20, 30], (4, 1)), "eval/return": ret}}
    for bounds in ((0.0, 1000.0), (0.0, None), (None, 1000.0)):
        ax = plots.learning_curve(runs, band=band, bounds=bounds).axes[0]
        y = _band_y(ax)
        assert y.size > 0
        assert y.min() >= (bounds[0] if bounds[0] is not None else -np.inf)
        assert y.max() <= (bounds[1] if bounds[1] is not None else np.inf)
    # Unclipped, the t band leaves the range: the clip is what keeps it inside.
    if band == "t":
        y = _band_y(plots.learning_curve(runs, band="t").axes[0])
        assert y.min() < 0.0 and y.max() > 1000.0
    with pytest.raises(ValueError, match="low < high"):
        plots.learning_curve(runs, bounds=(1000.0, 0.0))
    with pytest.raises(ValueError, match="band"):
        plots.learning_curve(runs, band="sd")


def test_learning_curve_one_seed_no_band_and_reference_lines():
    runs = {"solo": {"env_steps": np.array([100, 200]), "eval/return": np.array([300.0, 990.0])}}
    ref = {"random": 23.7, "expert": 971.5}
    ax = plots.learning_curve(runs, bounds=(0.0, 1000.0), reference=ref).axes[0]
    assert len(ax.collections) == 0  # one seed: no band
    assert _legend_lines(ax) == ["solo (1 seed)", "random (23.7)", "expert (971.5)"]
    assert not [line for line in ax.lines if line.get_label().startswith("_")]  # no thin lines
    for line, y in zip(ax.lines[1:], (23.7, 971.5), strict=True):
        np.testing.assert_allclose(line.get_ydata(), [y, y])  # horizontal lines at the levels


def test_bootstrap_ci_by_hand():
    # Two seeds a, b: resampled means are a, (a + b) / 2, b with probability 1/4, 1/2, 1/4, so the
    # 2.5% and 97.5% quantiles over 2000 resamples are a and b.
    mean, low, high, n = plots.bootstrap_ci(np.array([[1.0, 5.0], [3.0, 5.0]]))
    np.testing.assert_allclose(mean, [2.0, 5.0])
    np.testing.assert_allclose(low, [1.0, 5.0])
    np.testing.assert_allclose(high, [3.0, 5.0])
    np.testing.assert_array_equal(n, [2, 2])
    # NaNs: only the finite seeds are resampled; one finite value -> no interval.
    x = np.array([[1.0, NAN], [NAN, 7.0], [3.0, NAN]])
    mean, low, high, n = plots.bootstrap_ci(x, seed=1)
    np.testing.assert_allclose(mean, [2.0, 7.0])
    assert (low[0], high[0]) == (1.0, 3.0) and math.isnan(low[1]) and math.isnan(high[1])
    # Reproducible with the seed; inside the seeds' range always.
    y = np.random.default_rng(0).normal(size=(5, 7))
    a = plots.bootstrap_ci(y, seed=3)
    b = plots.bootstrap_ci(y, seed=3)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_array_equal(u, v)
    assert np.all(a[1] >= y.min(0)) and np.all(a[2] <= y.max(0))
    assert np.all(a[1] <= a[0]) and np.all(a[0] <= a[2])


def test_results_table_clips_ci_to_bounds():
    # Final returns [990, 1000]: mean 995, s = 7.0711, se = 5, half = 12.7062 * 5 = 63.53 ->
    # [931.47, 1058.53] clipped to [931.47, 1000].
    runs = {
        "ip": {
            "env_steps": np.array([[1, 2], [1, 2]]),
            "eval/return": np.array([[0, 990.0], [0, 1000.0]]),
        }
    }
    table = plots.results_table(runs, bounds=(0.0, 1000.0))
    assert table.splitlines()[0] == (
        "| run | env steps | seeds | final eval/return (mean ± 95% CI, clipped to [0, 1000]) |"
    )
    assert table.splitlines()[2] == "| ip | 2 | 2 | 995.00 [931.47, 1000.00] |"
    # An interval inside the bounds keeps the ± form; one seed stays n/a.
    assert plots.format_ci(5.0, 1.0, 1, (0.0, 10.0)) == "5.0 ± 1.0"
    assert plots.format_ci(5.0, NAN, 1, (0.0, 10.0)) == "5.0 ± n/a"
    assert plots.format_ci(0.5, 2.0, 1, (0.0, None)) == "0.5 [0.0, 2.5]"
