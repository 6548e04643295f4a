"""Small pytree helpers."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike


def lerp(a: Any, b: Any, t: ArrayLike) -> Any:
    """``(1 - t) a + t b`` leafwise: the one interpolation of purerl.

    It is the soft target update ``target <- (1 - tau) target + tau online`` (Polyak averaging,
    Lillicrap et al. 2016: ``lerp(target, online, tau)``), WARM's weight interpolation (Ramé et al.
    2024, Obs. 1, eq. 2), WARP's EMA anchor and LERP baseline (Ramé et al. 2024b, Alg. 1, App. B) and
    J-BOND's anchor update (Sessa et al. 2024, eq. 18). ``t = 0`` gives ``a``, ``t = 1`` gives ``b``;
    values outside ``[0, 1]`` extrapolate. Each leaf keeps ``result_type(a_leaf, b_leaf)``, so a
    float32 ``t`` does not promote bfloat16 weights.

    Args:
      a, b: pytrees of the same structure and leaf shapes.
      t: scalar weight on ``b`` (may be traced).
    """
    if np.ndim(t) != 0:
        raise ValueError(f"lerp: t must be a scalar, got shape {np.shape(t)}")
    return jax.tree.map(lambda x, y: _lerp_leaf(x, y, t), a, b)


# Jitted so that eager calls compile one fused kernel per leaf shape instead of one per primitive
# (inside a caller's jit it is simply inlined).
@jax.jit
def _lerp_leaf(a: jax.Array, b: jax.Array, t: ArrayLike) -> jax.Array:
    return ((1.0 - t) * a + t * b).astype(jnp.result_type(a, b))


def select(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise ``where(pred, on_true, on_false)`` for a scalar ``pred``."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


def mean_metrics(metrics: dict[str, jax.Array]) -> dict[str, jax.Array]:
    """Average every metric over its leading axes (e.g. a scan over updates)."""
    return {k: jnp.mean(v) for k, v in metrics.items()}
