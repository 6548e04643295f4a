"""Aggregate metrics over runs x tasks with stratified bootstrap intervals, as in rliable.

The definitions are those of Agarwal et al., *Deep Reinforcement Learning at the Edge of the
Statistical Precipice* (NeurIPS 2021) and of their library rliable (``rliable/metrics.py``,
``rliable/library.py``, v1.2.0), written in numpy alone: rliable itself pulls in arch, statsmodels,
pandas and seaborn, and its arch 7 fails to import with pandas 3.

Scores follow rliable's convention: ``{algorithm: array[runs, tasks]}`` of normalized scores
(0 = random, 1 = expert; divide D4RL-style scores by 100). Every aggregate reduces the last two
axes, ``[..., runs, tasks] -> [...]``, so the bootstrap evaluates all resamples in one call.

    scores = {"td3_bc": s1, "bc": s2}                        # each [runs, tasks]
    points, cis = stats.interval_estimates(scores, stats.iqm, seed=0)
    taus = np.linspace(0.0, 1.1, 111)
    profiles, bands = stats.performance_profile(scores, taus, seed=0)
    stats.plot_performance_profile(taus, profiles, bands, "profile.png")

Bad input (ragged nested lists, NaN or inf, empty arrays, a differing number of tasks between
algorithms) raises ``ValueError`` naming the algorithm and the problem.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

# Resampled scores evaluated per chunk of bootstrap replicates: bounds the memory of the
# vectorized aggregates (a performance profile holds [reps, runs * tasks, taus] booleans).
CHUNK_ELEMENTS = 1 << 18


def as_scores(scores: Any, what: str = "scores") -> np.ndarray:
    """``scores`` as a finite float64 array ``[..., runs, tasks]`` with at least one run and task.

    Raises ``ValueError`` naming ``what`` for ragged input, fewer than 2 dimensions, an empty
    axis, or a NaN / infinite entry (with the first bad index).
    """
    try:
        x = np.asarray(scores, dtype=np.float64)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{what} must be a rectangular array [runs, tasks] of numbers; it is ragged or not "
            f"numeric ({e})"
        ) from None
    if x.ndim < 2:
        raise ValueError(
            f"{what} must be [runs, tasks], got shape {x.shape}; for one task pass x[:, None]"
        )
    if x.size == 0:
        raise ValueError(f"{what} is empty (shape {x.shape}); it needs >= 1 run and >= 1 task")
    bad = ~np.isfinite(x)
    if bad.any():
        first = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(
            f"{what} has {int(bad.sum())} non-finite score(s) (first at index {first}: "
            f"{x[first]}); drop or fix those runs before aggregating"
        )
    return x


def check_scores(score_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Validate ``{algorithm: array[runs, tasks]}``: each entry as in :func:`as_scores`, 2-D, and
    the same number of tasks for all (the runs may differ). Returns float64 arrays."""
    if not isinstance(score_dict, Mapping):
        raise ValueError(
            f"scores must be a dict {{algorithm: array[runs, tasks]}}, got {type(score_dict)}"
        )
    if not score_dict:
        raise ValueError("scores is empty: pass {algorithm: array[runs, tasks]}")
    out = {}
    for name, value in score_dict.items():
        x = as_scores(value, f"scores[{name!r}]")
        if x.ndim != 2:
            raise ValueError(f"scores[{name!r}] must be [runs, tasks], got shape {x.shape}")
        out[name] = x
    tasks = {name: x.shape[1] for name, x in out.items()}
    if len(set(tasks.values())) > 1:
        raise ValueError(f"every algorithm needs the same tasks; tasks per algorithm: {tasks}")
    return out


# --------------------------------------------------------------------------------------------------
# Aggregate metrics: [..., runs, tasks] -> [...]


def mean(scores: Any) -> np.ndarray:
    """Mean over tasks of the per-task mean score (rliable ``aggregate_mean``).

    ``mean = 1/M sum_m (1/N sum_n x_{n,m})``; with the same runs on every task this is the mean
    of all ``N M`` scores. Agarwal et al. (2021), Sec. 4.3 (the mean it compares IQM against).

    Args:
      scores: ``[..., runs, tasks]``.
    """
    x = as_scores(scores)
    return x.mean(axis=-2).mean(axis=-1)


def median(scores: Any) -> np.ndarray:
    """Median over tasks of the per-task mean score (rliable ``aggregate_median``).

    ``median = median_m (1/N sum_n x_{n,m})``. Agarwal et al. (2021), Sec. 4.3 (the median it
    shows to be unreliable with few runs).

    Args:
      scores: ``[..., runs, tasks]``.
    """
    x = as_scores(scores)
    return np.median(x.mean(axis=-2), axis=-1)


def iqm(scores: Any) -> np.ndarray:
    """Interquartile mean over all runs and tasks (rliable ``aggregate_iqm``).

    The 25% trimmed mean of the ``n = N M`` scores pooled over runs and tasks: sort them, drop
    ``k = floor(n / 4)`` from each end and average the ``n - 2k`` left, exactly
    ``scipy.stats.trim_mean(scores, 0.25, axis=None)`` as rliable computes it (for ``n`` not a
    multiple of 4 scipy trims the whole scores below the cut, no fractional weights, so slightly
    more than the middle 50% is kept). Agarwal et al. (2021), Sec. 4.3, "IQM".

    Args:
      scores: ``[..., runs, tasks]``.
    """
    x = as_scores(scores)
    flat = np.sort(x.reshape(*x.shape[:-2], -1), axis=-1)
    n = flat.shape[-1]
    k = int(0.25 * n)
    return flat[..., k : n - k].mean(axis=-1)


def optimality_gap(scores: Any, gamma: float = 1.0) -> np.ndarray:
    """How far the scores fall short of ``gamma`` (rliable ``aggregate_optimality_gap``).

    ``OG = 1/(N M) sum_{n,m} max(0, gamma - x_{n,m}) = gamma - mean(min(x, gamma))``: scores
    above ``gamma`` count as ``gamma`` (no credit for beating the expert); lower is better.
    ``gamma = 1`` for normalized scores. Agarwal et al. (2021), Sec. 4.3, "Optimality gap".

    Args:
      scores: ``[..., runs, tasks]``.
      gamma: the target score.
    """
    x = as_scores(scores)
    if not np.isfinite(gamma):
        raise ValueError(f"gamma must be finite, got {gamma}")
    return np.maximum(0.0, gamma - x).mean(axis=(-2, -1))


def probability_of_improvement(scores_x: Any, scores_y: Any) -> np.ndarray:
    """Average probability that algorithm X beats Y on a task (rliable
    ``probability_of_improvement``).

    ``P(X > Y) = 1/M sum_m P(X_m > Y_m)``, with the Mann-Whitney statistic per task
    ``P(X_m > Y_m) = 1/(N K) sum_{i,j} S(x_{i,m}, y_{j,m})``, ``S(a, b) = 1`` if ``a > b``,
    ``1/2`` if ``a = b``, ``0`` otherwise (over all pairs of X's ``N`` and Y's ``K`` runs).
    Agarwal et al. (2021), Sec. 4.3, "Probability of improvement".

    Args:
      scores_x: ``[..., N, tasks]``.
      scores_y: ``[..., K, tasks]`` (the same tasks; ``K`` may differ from ``N``).
    """
    x = as_scores(scores_x, "scores_x")
    y = as_scores(scores_y, "scores_y")
    if x.shape[-1] != y.shape[-1]:
        raise ValueError(f"scores_x has {x.shape[-1]} tasks, scores_y {y.shape[-1]}")
    a, b = x[..., :, None, :], y[..., None, :, :]
    s = (a > b).astype(np.float64) + 0.5 * (a == b)  # [..., N, K, tasks]
    return s.mean(axis=(-3, -2)).mean(axis=-1)


def run_score_distribution(scores: Any, taus: Any) -> np.ndarray:
    """Fraction of runs scoring above each threshold (rliable ``score_distributions``).

    ``F(tau) = 1/(N M) sum_{n,m} 1[x_{n,m} > tau]``: the performance profile of Agarwal et al.
    (2021), Sec. 4.2 ("run-score distribution"), non-increasing in ``tau``.

    Args:
      scores: ``[..., runs, tasks]``.
      taus: ``[K]`` thresholds.

    Returns:
      ``[..., K]``.
    """
    x = as_scores(scores)
    t = _taus(taus)
    flat = x.reshape(*x.shape[:-2], -1)
    return (flat[..., :, None] > t).mean(axis=-2)


def _taus(taus: Any) -> np.ndarray:
    t = np.asarray(taus, np.float64)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"taus must be a non-empty 1-D array of finite thresholds, got {taus!r}")
    return t


# --------------------------------------------------------------------------------------------------
# Stratified bootstrap


def resample(scores: Any, reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap resamples of ``scores[runs, tasks]``: within each task, draw
    its ``runs`` scores with replacement from that task's runs, independently across tasks
    (Agarwal et al. 2021, Sec. 4.1; rliable ``StratifiedBootstrap`` without ``task_bootstrap``).

    Returns:
      ``[reps, runs, tasks]``; column ``m`` holds only task ``m``'s scores.
    """
    x = as_scores(scores)
    if x.ndim != 2:
        raise ValueError(f"resample takes one [runs, tasks] array, got shape {x.shape}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    runs, tasks = x.shape
    idx = rng.integers(0, runs, size=(reps, runs, tasks))
    return x[idx, np.arange(tasks)]


def interval_estimates(
    score_dict: Mapping[str, Any],
    aggregate: Callable[..., Any],
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Point estimates and stratified bootstrap percentile intervals of ``aggregate``.

    For each algorithm, the runs of each task are resampled with replacement (independently per
    task, :func:`resample`), ``aggregate`` is evaluated on every resample, and the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of those values (the
    percentile bootstrap). Agarwal et al. (2021), Sec. 4.1; rliable ``get_interval_estimates``
    with ``method='percentile'`` (its default ``reps`` 50,000 too). The same ``seed`` gives the
    same intervals.

    Args:
      score_dict: ``{name: array[runs, tasks]}``, or ``{name: (array_x, array_y, ...)}`` for an
        aggregate of several score arrays (e.g. ``probability_of_improvement``), each array
        resampled independently (rliable ``StratifiedIndependentBootstrap``).
      aggregate: maps ``[reps, runs, tasks]`` (one per array) to ``[reps]`` or ``[reps, K]``, like
        every aggregate here; use ``functools.partial`` for extra arguments.
      reps: bootstrap replicates.
      confidence: interval coverage, in (0, 1).
      seed: seeds numpy's ``default_rng``.

    Returns:
      ``(points, intervals)``: ``points[name]`` is ``aggregate`` on the data (``[]`` or ``[K]``),
      ``intervals[name]`` is ``[2, ...]``, lower then upper bound, as in rliable.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if reps < 1:
        raise ValueError(f"reps must be >= 1, got {reps}")
    if not isinstance(score_dict, Mapping) or not score_dict:
        check_scores(score_dict)  # raises, naming the problem
    tuples = {k: isinstance(v, tuple) for k, v in score_dict.items()}
    if any(tuples.values()):
        if not all(tuples.values()):
            raise ValueError("give every entry as a tuple of arrays, or none")
        data = {}
        for name, arrays in score_dict.items():
            checked = check_scores({f"{name}[{i}]": a for i, a in enumerate(arrays)})
            data[name] = tuple(checked.values())
    else:
        data = {name: (x,) for name, x in check_scores(score_dict).items()}
    rng = np.random.default_rng(seed)
    q = [(1.0 - confidence) / 2.0, (1.0 + confidence) / 2.0]
    points, intervals = {}, {}
    for name, arrays in data.items():
        points[name] = np.asarray(aggregate(*arrays))
        per_rep = sum(a.size for a in arrays)
        chunk = max(1, CHUNK_ELEMENTS // per_rep)
        values = []
        for start in range(0, reps, chunk):
            n = min(chunk, reps - start)
            values.append(np.asarray(aggregate(*(resample(a, n, rng) for a in arrays))))
        intervals[name] = np.quantile(np.concatenate(values, axis=0), q, axis=0)
    return points, intervals


def performance_profile(
    score_dict: Mapping[str, Any],
    taus: Any,
    reps: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Run-score distributions (performance profiles) with stratified bootstrap bands.

    ``F(tau)`` of :func:`run_score_distribution` at each ``tau``, and its percentile interval
    from :func:`interval_estimates`. Agarwal et al. (2021), Sec. 4.2; rliable
    ``create_performance_profile`` (score distributions, ``reps`` 2,000 as there).

    Args:
      score_dict: ``{name: array[runs, tasks]}``.
      taus: ``[K]`` thresholds.
      reps, confidence, seed: as in :func:`interval_estimates`.

    Returns:
      ``(profiles, intervals)``: ``profiles[name]`` ``[K]``, ``intervals[name]`` ``[2, K]``.
    """
    t = _taus(taus)
    return interval_estimates(
        score_dict, lambda x: run_score_distribution(x, t), reps, confidence, seed
    )


def plot_performance_profile(
    taus: Any,
    profiles: Mapping[str, Any],
    intervals: Mapping[str, Any] | None = None,
    path: str | os.PathLike | None = None,
    xlabel: str = "normalized score τ (0 = random, 1 = expert)",
    title: str | None = None,
    reference: Mapping[str, float] | None = None,
    confidence: float = 0.95,
):
    """Plot performance profiles (``F(tau)`` vs ``tau``), one line per algorithm with its band
    clipped to [0, 1]; save a PNG to ``path`` if given.

    Args:
      taus: ``[K]``.
      profiles, intervals: the outputs of :func:`performance_profile`.
      path: PNG file to write (parent directories are created).
      xlabel, title: axis text.
      reference: vertical lines, e.g. ``{"expert": 1.0}``.
      confidence: the bands' coverage, for the label.

    Returns:
      The matplotlib ``Figure``.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    t = _taus(taus)
    if not profiles:
        raise ValueError("plot_performance_profile needs at least one profile")
    fig = Figure(figsize=(6.0, 4.0), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for name, profile in profiles.items():
        p = np.asarray(profile, np.float64)
        if p.shape != t.shape:
            raise ValueError(f"profile {name!r} has shape {p.shape}, taus {t.shape}")
        (line,) = ax.plot(t, p, label=str(name))
        if intervals is not None and name in intervals:
            lo, hi = np.clip(np.asarray(intervals[name], np.float64), 0.0, 1.0)
            ax.fill_between(t, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
    for i, (label, x) in enumerate((reference or {}).items()):
        ax.axvline(float(x), color=("0.5", "0.2")[i % 2], ls="--", lw=1.0, label=f"{label} ({x:g})")
    ax.set_xlabel(xlabel)
    band = f"\nband: {confidence:.0%} stratified bootstrap CI" if intervals is not None else ""
    ax.set_ylabel(f"fraction of runs with score > τ{band}", fontsize="small")
    ax.set_ylim(-0.02, 1.02)
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


def format_interval(point: float, interval: Sequence[float], precision: int = 2) -> str:
    """``"0.71 [0.65, 0.78]"``: a point estimate and its interval."""
    lo, hi = (float(v) for v in interval)
    return f"{float(point):.{precision}f} [{lo:.{precision}f}, {hi:.{precision}f}]"


__all__ = [
    "as_scores",
    "check_scores",
    "format_interval",
    "interval_estimates",
    "iqm",
    "mean",
    "median",
    "optimality_gap",
    "performance_profile",
    "plot_performance_profile",
    "probability_of_improvement",
    "resample",
    "run_score_distribution",
]
