"""What every loop shares: multi-seed running (with sharding), progress, non-finite checks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class NonFiniteError(FloatingPointError):
    """NaN or inf appeared in observations or rewards (or the agent's metrics) during a run."""


def first_nonfinite(tree: Any) -> jax.Array:
    """1.0 if any leaf of ``tree`` holds NaN or inf, else 0.0 (inside jit)."""
    bad = [~jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.any(jnp.stack(bad)).astype(jnp.float32)


def update_bad_step(bad_step: jax.Array, is_bad: jax.Array, step: jax.Array) -> jax.Array:
    """Keep the first step at which something went non-finite (-1 while none)."""
    return jnp.where((bad_step < 0) & (is_bad > 0), step, bad_step)


def check_finite(metrics: dict[str, Any], what: str = "observation or reward") -> None:
    """Raise :class:`NonFiniteError` naming the seed and env step where a run first saw NaN/inf.

    ``metrics["check/nonfinite_step"]`` is ``[num_periods]`` for one seed or ``[seeds, periods]``.
    """
    steps = np.asarray(metrics["check/nonfinite_step"])
    steps = steps.reshape(-1, steps.shape[-1])[:, -1]
    for seed, step in enumerate(steps):
        if step >= 0:
            raise NonFiniteError(
                f"NaN or inf in the {what} first at env step {int(step)} of seed {seed} "
                f"(the run froze its state there; fix the env/data or set on_nonfinite='ignore')"
            )


class Progress:
    """Host-side progress bar + periodic metric lines, fed from inside the compiled run through
    ``jax.debug.callback``. Called once per seed under ``vmap``; it reports each period once (the
    first seed to reach it) and prints the metrics of that call."""

    def __init__(self, total_steps: int, keys: tuple[str, ...] = ("eval/return",), desc: str = ""):
        self.total = total_steps
        self.keys = keys
        self.desc = desc
        self.seen = -1
        self.start = time.perf_counter()
        self.bar = None

    def __call__(self, env_steps, metrics) -> None:
        steps = int(np.asarray(env_steps))
        if steps <= self.seen:
            return
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, desc=self.desc, unit="step", dynamic_ncols=True, mininterval=1.0
            )
        self.bar.update(steps - max(self.seen, 0))
        self.seen = steps
        parts = [f"{k}={float(np.asarray(metrics[k])):.4g}" for k in self.keys if k in metrics]
        elapsed = time.perf_counter() - self.start
        self.bar.write(f"[{self.desc}] step {steps:>9,d}  {'  '.join(parts)}  ({elapsed:.0f}s)")
        if steps >= self.total:
            self.bar.close()


def shard_seeds(keys: jax.Array, devices: list | None = None) -> jax.Array:
    """Place a ``[num_seeds]`` key array sharded across devices along the seed axis.

    ``jax.jit(jax.vmap(train))(shard_seeds(keys))`` then runs each device's share of seeds on that
    device (GSPMD partitions the vmapped axis; no pmap). ``num_seeds`` must divide evenly.
    """
    devices = devices or jax.devices()
    n = keys.shape[0]
    if n % len(devices):
        raise ValueError(
            f"{n} seeds cannot be split evenly over {len(devices)} devices; use a multiple"
        )
    mesh = jax.sharding.Mesh(np.asarray(devices), ("seed",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seed"))
    return jax.device_put(keys, sharding)


def run_seeds(
    train: Callable[[jax.Array], tuple[Any, dict]],
    key: jax.Array,
    num_seeds: int,
    shard: bool = True,
    check: bool = True,
) -> tuple[Any, dict]:
    """``jit(vmap(train))`` over ``num_seeds`` keys split from ``key``; shards seeds over all local
    devices when there are several; raises :class:`NonFiniteError` if a run saw NaN/inf."""
    keys = jax.random.split(key, num_seeds)
    if shard and len(jax.devices()) > 1 and num_seeds % len(jax.devices()) == 0:
        keys = shard_seeds(keys)
    states, metrics = jax.jit(jax.vmap(train))(keys)
    metrics = jax.device_get(metrics)
    if check and "check/nonfinite_step" in metrics:
        check_finite(metrics)
    return states, metrics
