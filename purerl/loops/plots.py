"""Learning curves and results tables from loop metrics (host side; matplotlib's Agg canvas).

Confidence intervals are Student-t intervals across seeds: for ``n`` seeds with mean ``m`` and sample
standard deviation ``s`` (``ddof=1``), the 95% interval is ``m +- t_{0.975, n-1} s / sqrt(n)``. With
the handful of seeds RL runs use this is wider (more honest) than ``1.96 s / sqrt(n)``; it assumes
the seeds' values are roughly normal (bootstrap intervals are too narrow at n < 10). With one seed
there is no interval: the half-width is NaN, the plot draws no band and the table writes ``n/a``.

    runs = {"td3": metrics_td3, "sac": metrics_sac}       # {label: {name: [seeds, periods]}}
    plots.learning_curve(runs, "curve.png")
    print(plots.results_table(runs))
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


def learning_curve(
    runs: Mapping[str, Mapping[str, Any]],
    path: str | os.PathLike | None = None,
    metric: str = "eval/return",
    confidence: float = 0.95,
    title: str | None = None,
    ylabel: str | None = None,
):
    """Plot the across-seed mean of ``metric`` vs env steps with a ``confidence`` t-band, one line per
    run on one axis; save a PNG to ``path`` if given.

    Args:
      runs: ``{label: metrics}``, each metrics dict ``{name: [periods] or [seeds, periods]}`` with
        ``env_steps``.
      path: PNG file to write (parent directories are created).
      metric: which metric to plot.
      confidence: band coverage (0.95 -> 95% CI of the mean across seeds).
      title, ylabel: axis text (``ylabel`` defaults to ``metric``).

    Returns:
      The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not runs:
        raise ValueError("learning_curve needs at least one run")
    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for label, metrics in runs.items():
        m = as_seed_major(metrics)
        if metric not in m:
            raise KeyError(f"run {label!r} has no metric {metric!r}; it has {sorted(m)}")
        sk = step_key(m)
        steps = m[sk][0]
        mean, half, n = mean_ci(m[metric], confidence)
        seeds = m[metric].shape[0]
        (line,) = ax.plot(steps, mean, label=f"{label} ({seeds} seed{'s' * (seeds != 1)})")
        if np.any(np.isfinite(half)):
            ax.fill_between(steps, mean - half, mean + half, color=line.get_color(), alpha=0.25)
    ax.set_xlabel("env steps" if sk == "env_steps" else "gradient updates")
    ax.set_ylabel(ylabel or f"{metric} (mean, {confidence:.0%} t-CI over seeds)")
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
    """``(mean, half_width, seeds)`` of ``metric`` at the last period across seeds."""
    m = as_seed_major(metrics)
    if metric not in m:
        raise KeyError(f"no metric {metric!r}; have {sorted(m)}")
    mean, half, n = mean_ci(m[metric][:, -1], confidence)
    return float(mean), float(half), int(n)


def format_ci(mean: float, half: float, precision: int = 2) -> str:
    """``"12.34 ± 5.67"``; ``"12.34 ± n/a"`` when there is no interval (one seed)."""
    half_text = "n/a" if not math.isfinite(half) else f"{half:.{precision}f}"
    return f"{mean:.{precision}f} ± {half_text}"


def results_table(
    runs: Mapping[str, Mapping[str, Any]],
    metric: str = "eval/return",
    confidence: float = 0.95,
    extra_columns: Mapping[str, Mapping[str, Any]] | None = None,
    precision: int = 2,
) -> str:
    """A markdown table: per run, the final ``metric`` as mean ± ``confidence`` CI across seeds.

    Columns: ``run | env steps | seeds | final <metric> (mean ± 95% CI)`` and then each
    ``extra_columns[name][run]`` (e.g. ``{"wall time (s)": {"td3": "41.2"}}``; missing -> empty).
    """
    extra = dict(extra_columns or {})
    pct = f"{confidence:.0%}"
    first = next(iter(runs.values()), {})
    steps_name = "env steps" if "env_steps" in first else "updates"
    header = ["run", steps_name, "seeds", f"final {metric} (mean ± {pct} CI)", *extra]
    align = ["---", "---:", "---:", "---:", *(["---:"] * len(extra))]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for label, metrics in runs.items():
        m = as_seed_major(metrics)
        mean, half, _ = final_ci(m, metric, confidence)
        cells = [
            str(label),
            str(int(m[step_key(m)][0, -1])),
            str(m[step_key(m)].shape[0]),
            format_ci(mean, half, precision),
            *(str(extra[c].get(label, "")) for c in extra),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["final_ci", "format_ci", "learning_curve", "mean_ci", "results_table"]
