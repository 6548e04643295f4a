"""Learning curves and results tables from loop metrics (host side; matplotlib's Agg canvas).

A curve shows the across-seed mean, each seed as a thin line, and a band around the mean:

* ``band="bootstrap"`` (the default for curves): the percentile bootstrap over seeds of the mean
  (resample the seeds with replacement, take the ``(1 -+ confidence) / 2`` quantiles of the
  resampled means). It never leaves the range of the seeds' values, so it respects the task's
  attainable range by construction, but with few seeds it is too narrow (at 2 seeds it is the
  range of the two values).
* ``band="t"``: the Student-t interval ``m +- t_{0.975, n-1} s / sqrt(n)`` (``s`` with
  ``ddof=1``), wider (more honest) at the handful of seeds RL runs use, assuming roughly normal
  seed values; it can leave the attainable range, hence ``bounds``.

``bounds=(low, high)`` (either may be None) is the range the metric can take (e.g. ``[0, 1000]``
for inverted_pendulum's return: reward 1 per step, 1000 steps; ``envs.return_bounds``): bands and
table intervals are clipped to it. ``reference={"random": r, "expert": e}`` draws horizontal
reference lines. With one seed there is no interval: no band, just the line, and the table writes
``n/a``. ``results_table`` keeps the Student-t interval.

    runs = {"td3": metrics_td3, "sac": metrics_sac}       # {label: {name: [seeds, periods]}}
    plots.learning_curve(runs, "curve.png", bounds=(0.0, 1000.0))
    print(plots.results_table(runs, bounds=(0.0, 1000.0)))
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from purerl.loops.writers import as_seed_major, step_key


def mean_ci(
    values: Any, confidence: float = 0.95, axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and Student-t confidence half-width over ``axis`` (NaNs ignored).

    ``half = t_{(1 + confidence) / 2, n - 1} * std(values, ddof=1) / sqrt(n)``; NaN where ``n < 2``.

    Args:
      values: e.g. ``[seeds, periods]`` returns.
      confidence: e.g. 0.95.
      axis: the seed axis.

    Returns:
      ``(mean, half_width, n)`` with ``axis`` reduced.
    """
    from scipy import stats

    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = np.asarray(values, np.float64)
    finite = np.isfinite(x)
    n = np.sum(finite, axis=axis)
    total = np.sum(np.where(finite, x, 0.0), axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1), np.nan)
        dev = np.where(finite, x - np.expand_dims(mean, axis), 0.0)
        var = np.sum(dev**2, axis=axis) / np.maximum(n - 1, 1)
        t = stats.t.ppf(0.5 + confidence / 2.0, np.maximum(n - 1, 1))
        half = np.where(n >= 2, t * np.sqrt(var) / np.sqrt(np.maximum(n, 1)), np.nan)
    return mean, half, n


Bounds = tuple[float | None, float | None]
BANDS = ("bootstrap", "t", "none")
# Axis text for the metrics the loops log; any other metric is labelled by its name.
METRIC_LABELS = {
    "eval/return": "eval return (undiscounted, per episode)",
    "eval/normalized": "eval normalized score (0 = random, 100 = expert)",
    "eval/length": "eval episode length (env steps)",
}


def check_bounds(bounds: Bounds | None) -> tuple[float, float]:
    """``(low, high)`` with None -> -inf / +inf; raises ``ValueError`` unless ``low < high``."""
    if bounds is None:
        return -math.inf, math.inf
    try:
        low, high = bounds
    except (TypeError, ValueError):
        raise ValueError(
            f"bounds must be (low, high), either may be None; got {bounds!r}"
        ) from None
    low = -math.inf if low is None else float(low)
    high = math.inf if high is None else float(high)
    if math.isnan(low) or math.isnan(high) or not low < high:
        raise ValueError(f"bounds must satisfy low < high, got {bounds!r}")
    return low, high


def clip_interval(low: Any, high: Any, bounds: Bounds | None) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` clipped to ``bounds`` (NaN stays NaN: no interval)."""
    lo, hi = check_bounds(bounds)
    return np.clip(np.asarray(low, np.float64), lo, hi), np.clip(
        np.asarray(high, np.float64), lo, hi
    )


def bootstrap_ci(
    values: Any, confidence: float = 0.95, axis: int = 0, reps: int = 2000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean and percentile-bootstrap interval of the mean over ``axis`` (NaNs ignored).

    The seeds are resampled with replacement ``reps`` times (a seed's whole curve at once); the
    interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the
    resampled means (Efron & Tibshirani 1993, ch. 13). Where some seeds are NaN only the finite
    ones are resampled. NaN where fewer than 2 values are finite. Reproducible with ``seed``.

    Args:
      values: e.g. ``[seeds, periods]`` returns.
      confidence: e.g. 0.95.
      axis: the seed axis.
      reps: bootstrap replicates.
      seed: seeds numpy's ``default_rng``.

    Returns:
      ``(mean, low, high, n)`` with ``axis`` reduced.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    x = np.moveaxis(np.asarray(values, np.float64), axis, 0)
    rest = x.shape[1:]
    x = x.reshape(x.shape[0], -1)  # [seeds, columns]
    finite = np.isfinite(x)
    n = finite.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, np.where(finite, x, 0.0).sum(axis=0) / np.maximum(n, 1), np.nan)
    low = np.full(x.shape[1], np.nan)
    high = np.full(x.shape[1], np.nan)
    rng = np.random.default_rng(seed)
    q = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    # Columns sharing the same finite seeds are resampled together: weights W[reps, m] count how
    # often each of the m seeds is drawn, so the resampled means are W @ x / m.
    masks, groups = np.unique(finite.T, axis=0, return_inverse=True)
    for g, mask in enumerate(masks):
        m = int(mask.sum())
        if m < 2:
            continue
        cols = np.flatnonzero(groups.reshape(-1) == g)
        counts = rng.multinomial(m, np.full(m, 1.0 / m), size=reps)
        means = counts @ x[np.ix_(mask, cols)] / m
        low[cols], high[cols] = np.quantile(means, q, axis=0)
    return mean.reshape(rest), low.reshape(rest), high.reshape(rest), n.reshape(rest)


def seed_interval(
    values: Any,
    band: str = "bootstrap",
    confidence: float = 0.95,
    bounds: Bounds | None = None,
    axis: int = 0,
    reps: int = 2000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(mean, low, high, n)`` over the seeds on ``axis``: the ``band`` interval (``"bootstrap"``
    from :func:`bootstrap_ci`, ``"t"`` from :func:`mean_ci`, ``"none"``: NaN) clipped to
    ``bounds``."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    check_bounds(bounds)
    if band == "bootstrap":
        mean, low, high, n = bootstrap_ci(values, confidence, axis, reps, seed)
    else:
        mean, half, n = mean_ci(values, confidence, axis)
        low, high = mean - half, mean + half
        if band == "none":
            low, high = np.full_like(mean, np.nan), np.full_like(mean, np.nan)
    low, high = clip_interval(low, high, bounds)
    return mean, low, high, n


def learning_curve(
    runs: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike | None = None,
    metric: str = "eval/return",
    confidence: float = 0.95,
    title: str | None = None,
    ylabel: str | None = None,
    *,
    band: str = "bootstrap",
    bounds: Bounds | None = None,
    reference: Mapping[str, float] | None = None,
    xlabel: str | None = None,
    seed_lines: bool = True,
    reps: int = 2000,
    seed: int = 0,
):
    """Plot the across-seed mean of ``metric`` vs env steps (or gradient updates), each seed as a
    thin line and a ``confidence`` band clipped to ``bounds``, one color per run; save a PNG to
    ``path`` if given.

    Args:
      runs: ``{label: metrics}``, each metrics dict ``{name: [periods] or [seeds, periods]}`` with
        ``env_steps`` (or ``updates``).
      path: PNG file to write (parent directories are created).
      metric: which metric to plot.
      confidence: band coverage (0.95 -> 95% CI of the mean across seeds).
      title, ylabel, xlabel: axis text (``ylabel`` defaults to :data:`METRIC_LABELS` or
        ``metric``, with the band's description; ``xlabel`` to the step unit).
      band: ``"bootstrap"`` (percentile bootstrap of the mean over seeds), ``"t"`` (Student-t,
        :func:`mean_ci`) or ``"none"``; one seed never gets a band.
      bounds: ``(low, high)``, either may be None: the metric's attainable range; bands are
        clipped to it.
      reference: horizontal lines, e.g. ``{"random": 23.7, "expert": 971.5}``.
      seed_lines: draw each seed's curve (thin, same color) when there are several.
      reps, seed: bootstrap replicates and RNG seed (the plot is reproducible).

    Returns:
      The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("learning_curve needs at least one run")
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    check_bounds(bounds)
    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, metrics in runs.items():
        m = as_seed_major(metrics)
        if metric not in m:
            raise KeyError(f"run {label!r} has no metric {metric!r}; it has {sorted(m)}")
        sk = step_key(m)
        steps = m[sk][0]
        values = m[metric]
        seeds = values.shape[0]
        mean, low, high, _ = seed_interval(values, band, confidence, bounds, 0, reps, seed)
        (line,) = ax.plot(steps, mean, label=f"{label} ({seeds} seed{'s' * (seeds != 1)})", lw=1.8)
        if seeds > 1 and seed_lines:
            for i in range(seeds):
                ax.plot(
                    steps,
                    values[i],
                    color=line.get_color(),
                    lw=0.6,
                    alpha=0.35,
                    label=f"_{label} seed {i}",
                    zorder=line.get_zorder() - 0.5,
                )
        if seeds > 1 and np.any(np.isfinite(low)):
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    for i, (name, y) in enumerate((reference or {}).items()):
        ax.axhline(
            float(y), color=("0.45", "0.15")[i % 2], ls="--", lw=1.0, label=f"{name} ({y:g})"
        )
    ax.set_xlabel(xlabel or ("env steps" if sk == "env_steps" else "gradient updates"))
    band_text = {
        "bootstrap": f"{confidence:.0%} bootstrap CI",
        "t": f"{confidence:.0%} t-CI",
        "none": "no band",
    }[band]
    ax.set_ylabel(
        ylabel or f"{METRIC_LABELS.get(metric, metric)}\nmean over seeds, {band_text}",
        fontsize="small",
    )
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize="small")
    fig.tight_layout()
    if path is not None:
        path = os.fspath(path)
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        fig.savefig(path, format="png")
    return fig


def final_ci(
    metrics: Mapping[str, Any], metric: str = "eval/return", confidence: float = 0.95
) -> tuple[float, float, int]:
    """``(mean, half_width, seeds)`` of ``metric`` at the last period across seeds (Student-t)."""
    m = as_seed_major(metrics)
    if metric not in m:
        raise KeyError(f"no metric {metric!r}; have {sorted(m)}")
    mean, half, n = mean_ci(m[metric][:, -1], confidence)
    return float(mean), float(half), int(n)


def format_ci(mean: float, half: float, precision: int = 2, bounds: Bounds | None = None) -> str:
    """``"12.34 ± 5.67"``; ``"12.34 ± n/a"`` when there is no interval (one seed). Where
    ``mean ± half`` leaves ``bounds`` the clipped interval is written out:
    ``"98.20 [95.10, 100.00]"``."""
    if not math.isfinite(half):
        return f"{mean:.{precision}f} ± n/a"
    lo, hi = check_bounds(bounds)
    if mean - half < lo or mean + half > hi:
        low, high = max(mean - half, lo), min(mean + half, hi)
        return f"{mean:.{precision}f} [{low:.{precision}f}, {high:.{precision}f}]"
    return f"{mean:.{precision}f} ± {half:.{precision}f}"


def format_bounds(bounds: Bounds | None, precision: int = 4) -> str:
    """``"[0, 1000]"``, ``"[-inf, 0]"``: the range in words for headers and captions."""
    lo, hi = check_bounds(bounds)
    return f"[{lo:.{precision}g}, {hi:.{precision}g}]"


def results_table(
    runs: Mapping[str, Mapping[str, Any]],
    metric: str = "eval/return",
    confidence: float = 0.95,
    extra_columns: Mapping[str, Mapping[str, Any]] | None = None,
    precision: int = 2,
    bounds: Bounds | None = None,
) -> str:
    """A markdown table: per run, the final ``metric`` as mean ± ``confidence`` Student-t CI across
    seeds, clipped to ``bounds`` (then written ``mean [low, high]``, see :func:`format_ci`).

    Columns: ``run | env steps | seeds | final <metric> (mean ± 95% CI)`` and then each
    ``extra_columns[name][run]`` (e.g. ``{"wall time (s)": {"td3": "41.2"}}``; missing -> empty).
    """
    extra = dict(extra_columns or {})
    pct = f"{confidence:.0%}"
    first = next(iter(runs.values()), {})
    steps_name = "env steps" if "env_steps" in first else "updates"
    clipped = "" if bounds is None else f", clipped to {format_bounds(bounds)}"
    header = ["run", steps_name, "seeds", f"final {metric} (mean ± {pct} CI{clipped})", *extra]
    align = ["---", "---:", "---:", "---:", *(["---:"] * len(extra))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for label, metrics in runs.items():
        m = as_seed_major(metrics)
        mean, half, _ = final_ci(m, metric, confidence)
        cells = [
            str(label),
            str(int(m[step_key(m)][0, -1])),
            str(m[step_key(m)].shape[0]),
            format_ci(mean, half, precision, bounds),
            *(str(extra[c].get(label, "")) for c in extra),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = [
    "BANDS",
    "METRIC_LABELS",
    "bootstrap_ci",
    "check_bounds",
    "clip_interval",
    "final_ci",
    "format_bounds",
    "format_ci",
    "learning_curve",
    "mean_ci",
    "results_table",
    "seed_interval",
]
