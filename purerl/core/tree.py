"""Small pytree helpers."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp


def polyak(target: Any, online: Any, tau: float) -> Any:
    """``target <- (1 - tau) * target + tau * online`` (soft target update, Lillicrap et al. 2016)."""
    return jax.tree.map(lambda t, o: (1.0 - tau) * t + tau * o, target, online)


def select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise ``where(pred, on_true, on_false)`` for a scalar ``pred``."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def mean_metrics(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Average every metric over its leading axes (e.g. a scan over updates)."""
    return {k: jnp.mean(v) for k, v in metrics.items()}
