"""Metrics out of a run, on the host (outside jit): CSV, TensorBoard and Weights & Biases writers.

A loop's metrics are a flat dict of arrays, ``[num_periods]`` for one run or ``[num_seeds,
num_periods]`` from ``run_seeds`` / ``jax.vmap``, with an ``env_steps`` entry. Every writer takes that
dict as it comes back from the run (or from each ``Loop.run`` chunk when resuming period by period):

    states, metrics = loops.run_seeds(train, key, num_seeds=4)
    writers.write_csv("out/metrics.csv", metrics)           # one row per (seed, period)
    with writers.TensorBoardWriter("out/tb") as tb:         # pip install purerl[tensorboard]
        tb.write(metrics)

Writers append: calling ``write`` again with the next chunk of periods continues the same file/run.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

STEP_KEY = "env_steps"  # online and on-policy loops
STEP_KEYS = (STEP_KEY, "updates")  # the offline loop counts gradient updates


def step_key(metrics: Mapping[str, Any]) -> str:
    """The x-axis entry of a metrics dict: ``env_steps`` (online loops) or ``updates`` (offline)."""
    for key in STEP_KEYS:
        if key in metrics:
            return key
    raise KeyError(
        f"metrics need an {STEP_KEY!r} or 'updates' entry (the loops emit it), got {sorted(metrics)}"
    )


SEED_KEY = "seed"


def as_seed_major(metrics: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Host copies of the metrics with leaves ``[num_seeds, num_periods]`` (one run -> one seed)."""
    step_key(metrics)
    out = {}
    for k, v in metrics.items():
        a = np.asarray(v)
        if a.ndim == 1:
            a = a[None]
        if a.ndim != 2:
            raise ValueError(
                f"metric {k!r} has shape {a.shape}; expected [periods] or [seeds, periods]"
            )
        out[k] = a
    shapes = {a.shape for a in out.values()}
    if len(shapes) != 1:
        raise ValueError(
            f"metrics have different shapes {sorted(shapes)}; expected one common shape"
        )
    return out


def rows(
    metrics: Mapping[str, Any], seeds: Sequence[int] | None = None
) -> Iterator[dict[str, Any]]:
    """One dict per ``(seed, period)``, seed-major: ``{"env_steps", "seed", <metric>: value}``.

    Args:
      metrics: ``{name: [periods] or [seeds, periods]}``.
      seeds: labels for the seed axis (default ``0, 1, ...``).
    """
    m = as_seed_major(metrics)
    sk = step_key(m)
    num_seeds, num_periods = m[sk].shape
    labels = list(range(num_seeds)) if seeds is None else list(seeds)
    if len(labels) != num_seeds:
        raise ValueError(f"{len(labels)} seed labels for {num_seeds} seeds")
    names = sorted(k for k in m if k != sk)
    for s in range(num_seeds):
        for p in range(num_periods):
            row = {sk: int(m[sk][s, p]), SEED_KEY: labels[s]}
            row.update({k: m[k][s, p].item() for k in names})
            yield row


def _format(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)  # shortest string that reads back to the same float
    return str(value)


class CSVWriter:
    """Append metrics to a CSV file: columns ``env_steps, seed`` then every metric, sorted by name.

    The header is written with the first rows; later ``write`` calls must bring the same metric
    names. NaN (e.g. losses of periods spent in warm-up) is written as ``nan``.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        self.columns: list[str] | None = None
        parent = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(parent, exist_ok=True)
        self._file = open(self.path, "w", newline="")  # noqa: SIM115 (closed by close())
        self._csv = csv.writer(self._file)

    def write(self, metrics: Mapping[str, Any], seeds: Sequence[int] | None = None) -> None:
        for row in rows(metrics, seeds):
            if self.columns is None:
                self.columns = list(row)
                self._csv.writerow(self.columns)
            elif list(row) != self.columns:
                raise ValueError(
                    f"metric names changed between writes: {list(row)} vs {self.columns}"
                )
            self._csv.writerow([_format(row[c]) for c in self.columns])
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> CSVWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def write_csv(
    path: str | os.PathLike, metrics: Mapping[str, Any], seeds: Sequence[int] | None = None
) -> str:
    """Write ``metrics`` to ``path`` as one CSV row per ``(seed, period)``; returns the path."""
    with CSVWriter(path) as w:
        w.write(metrics, seeds)
    return os.fspath(path)


def read_csv(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a CSV written by :class:`CSVWriter` back into ``{name: [seeds, periods]}`` (float64;
    ``env_steps`` int64), seeds in order of first appearance; the ``seed`` column becomes
    ``{"seed": [seeds, periods]}`` too."""
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        data = [r for r in reader if r]
    if not set(STEP_KEYS) & set(header) or SEED_KEY not in header:
        raise ValueError(
            f"{path}: not a purerl metrics CSV (needs {STEP_KEY!r} or 'updates', and {SEED_KEY!r})"
        )
    seed_col = header.index(SEED_KEY)
    order: dict[str, list[list[str]]] = {}
    for r in data:
        order.setdefault(r[seed_col], []).append(r)
    lengths = {len(v) for v in order.values()}
    if len(lengths) != 1:
        raise ValueError(f"{path}: seeds have different numbers of rows {sorted(lengths)}")
    out = {}
    for i, name in enumerate(header):
        table = [[float(r[i]) for r in order[s]] for s in order]
        dtype = np.int64 if name in (*STEP_KEYS, SEED_KEY) else np.float64
        out[name] = np.asarray(table, dtype)
    return out


class TensorBoardWriter:
    """TensorBoard event files through ``tensorboardX``: one subdirectory ``seed_<i>`` per seed, each
    metric a scalar at ``global_step = env_steps``; non-finite values are skipped."""

    def __init__(self, logdir: str | os.PathLike):
        try:
            from tensorboardX import SummaryWriter
        except ImportError as e:
            raise ImportError(
                "TensorBoardWriter needs tensorboardX: pip install purerl[tensorboard]"
            ) from e
        self._summary_writer = SummaryWriter
        self.logdir = os.fspath(logdir)
        self._writers: dict[Any, Any] = {}

    def write(self, metrics: Mapping[str, Any], seeds: Sequence[int] | None = None) -> None:
        for row in rows(metrics, seeds):
            seed = row.pop(SEED_KEY)
            if seed not in self._writers:
                self._writers[seed] = self._summary_writer(
                    os.path.join(self.logdir, f"seed_{seed}")
                )
            w = self._writers[seed]
            step = row.pop(step_key(row))
            for name, value in row.items():
                if math.isfinite(value):
                    w.add_scalar(name, value, global_step=step)
        for w in self._writers.values():
            w.flush()

    def close(self) -> None:
        for w in self._writers.values():
            w.close()

    def __enter__(self) -> TensorBoardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WandbWriter:
    """Weights & Biases: one W&B run for all seeds, one ``log`` call per period at
    ``step = env_steps`` with each metric's mean over seeds under its own name and the per-seed values
    under ``seed<i>/<name>``; non-finite values are skipped. (One run rather than one per seed keeps
    steps monotonic and works on every wandb version.)

    Args:
      project: W&B project.
      name: run name.
      config: the run config (e.g. the agent and loop configs as dicts).
      **init_kwargs: passed to ``wandb.init`` (``mode="offline"``, ``dir=...``, ``group=...``).
    """

    def __init__(
        self,
        project: str | None = None,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        **init_kwargs: Any,
    ):
        try:
            import wandb
        except ImportError as e:
            raise ImportError("WandbWriter needs wandb: pip install purerl[wandb]") from e
        self._run = wandb.init(project=project, name=name, config=dict(config or {}), **init_kwargs)

    def write(self, metrics: Mapping[str, Any], seeds: Sequence[int] | None = None) -> None:
        for step, values in period_rows(metrics, seeds):
            self._run.log({k: v for k, v in values.items() if math.isfinite(v)}, step=step)

    def close(self) -> None:
        self._run.finish()

    def __enter__(self) -> WandbWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def period_rows(
    metrics: Mapping[str, Any], seeds: Sequence[int] | None = None
) -> Iterator[tuple[int, dict[str, float]]]:
    """Period-major view for loggers with one monotonic step: ``(env_steps, {name: mean over seeds
    (NaN-ignoring), "seed<i>/name": value})``; ``env_steps`` is taken from the first seed."""
    m = as_seed_major(metrics)
    sk = step_key(m)
    num_seeds, num_periods = m[sk].shape
    labels = list(range(num_seeds)) if seeds is None else list(seeds)
    names = sorted(k for k in m if k != sk)
    for p in range(num_periods):
        values: dict[str, float] = {}
        for k in names:
            column = m[k][:, p].astype(np.float64)
            finite = column[np.isfinite(column)]
            values[k] = float(np.mean(finite)) if finite.size else math.nan
            values.update({f"seed{s}/{k}": float(column[i]) for i, s in enumerate(labels)})
        yield int(m[sk][0, p]), values


__all__ = [
    "CSVWriter",
    "TensorBoardWriter",
    "WandbWriter",
    "as_seed_major",
    "period_rows",
    "read_csv",
    "rows",
    "write_csv",
]
