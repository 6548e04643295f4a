"""WARP: Weight Averaged Rewarded Policies (Rame, Ferret, Vieillard, Dadashi, Hussenot, Cedoz,
Sessa, Girgin, Douillard & Bachem, 2024): the three weight-space operations, on parameter pytrees.

WARP Algorithm 1 -> functions (the RL inner loop itself is :mod:`purerl.alignment.policy_gradient`):

* stage 1, the EMA anchor of each RL run, updated every step (sec. 3.1, mu = 0.01):
  ``theta_ema <- (1 - mu) theta_ema + mu theta``
                   -> :func:`purerl.core.tree.lerp` ``(theta_ema, theta, mu)`` in the RL update
* stage 2, spherical interpolation of *task vectors* ``delta_m = theta_m - theta_init`` (sec. 3,
  "SLERP"; App. B), one angle ``Omega = angle(delta_1, delta_2)`` per leaf ("layer by layer"):
  ``slerp(theta_init, theta_1, theta_2, lam) = theta_init + sin((1-lam) Omega)/sin(Omega) delta_1
  + sin(lam Omega)/sin(Omega) delta_2``                                        -> :func:`slerp`
  and for ``M > 2`` runs the left fold of App. B.3, eq. 26, ``lam = 1/m`` at step ``m``:
  ``slerp_M = slerp(theta_init, slerp_{M-1}(theta_1..theta_{M-1}), theta_M, 1/M)``
                                                                          -> :func:`slerp_uniform`
* stage 3, linear interpolation towards the init (LITI, sec. 3 stage 3, eta = 0.3):
  ``theta_eta = (1 - eta) theta_init + eta theta_slerp``
                               -> :func:`purerl.core.tree.lerp` ``(theta_init, theta_slerp, eta)``
* the final Pareto front ``{(1 - eta) theta_sft + eta theta_slerp^I}`` is that LITI from
  ``theta_sft`` over a grid of ``eta``; WARP's LERP baseline of two runs (App. B, Lemma 2) is
  ``lerp(theta_1, theta_2, lam)`` = ``theta_init + (1 - lam) delta_1 + lam delta_2``. All of them
  are purerl's one interpolation, :func:`purerl.core.tree.lerp` (no second name for it here).
* Obs. 4 (task vectors nearly orthogonal, full weights nearly colinear)
                                                                    -> :func:`task_vector_cosines`
* the whole iterated procedure (Algorithm 1: ``I`` iterations of ``M`` vmapped RL runs with EMA
  anchors, SLERP merge, LITI to the next init, final front from ``theta_sft``) ->
  :func:`purerl.alignment.pipeline.run_warp` with a :class:`purerl.alignment.pipeline.WarpConfig`
  (it runs the self-sampling loop, so it sits above ``purerl.loops`` with the pipeline).

Geometry (App. B, Assumption 1: ``|delta_1| = |delta_2| = l``): SLERP keeps the norm,
``|delta| = l`` (Lemma 1); LERP shrinks it to ``l sqrt(1 - 2 (1 - cos Omega)(lam - lam^2))``
(Lemma 2).

Note: mergekit's ``slerp`` interpolates *full weights*; those are nearly colinear (Obs. 4), so it
behaves like LERP (WARP Fig. 10c, "SLERP w/ weights"). :func:`slerp` interpolates task vectors.

Choices the paper leaves open (documented on the WARP doc page):

* granularity: one angle per pytree leaf (per tensor). The paper says "layer by layer"; for a model
  whose layer is one leaf these agree. A 0-d or 1-element leaf is always colinear, hence LERP.
* fallback: where a task vector is zero or ``sin(Omega) < eps`` (colinear, or anti-parallel where
  the great circle is undefined) the leaf is LERPed, the ``Omega -> 0`` limit of SLERP.
* ``Omega = 2 atan2(|u1 - u2|, |u1 + u2|)`` with unit vectors ``u``: the same angle as
  ``arccos(<u1, u2>)`` but accurate for small and near-pi angles.
* eq. 26 merges in stack order (run 0 first); it is not associative, so the order matters a little.
* arithmetic is done in at least float32; each leaf comes back in its input dtype.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from purerl.alignment.warm import check_compatible, stack_size
from purerl.core import validation

DEFAULT_EPS = 1e-6  # sin(Omega) below this -> LERP (no paper value; a numerical guard)


def _check_scalar(owner: str, name: str, value: ArrayLike) -> None:
    if np.ndim(value) != 0:
        raise ValueError(f"{owner}: {name} must be a scalar, got shape {np.shape(value)}")


def _safe_norm(x: jax.Array) -> jax.Array:
    """``|x|`` with a finite gradient (0) at ``x = 0``, where ``jnp.linalg.norm``'s is NaN."""
    sq = jnp.sum(jnp.square(x))
    return jnp.where(sq > 0, jnp.sqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


# Jitted so that eager calls compile one fused kernel per leaf shape (inlined in a caller's jit).
@jax.jit
def _slerp_leaf(init, theta1, theta2, lam, eps):
    out_dtype = jnp.result_type(init, theta1, theta2)
    dtype = jnp.promote_types(out_dtype, jnp.float32)
    init = jnp.asarray(init, dtype)
    d1 = jnp.asarray(theta1, dtype) - init
    d2 = jnp.asarray(theta2, dtype) - init
    n1, n2 = _safe_norm(d1), _safe_norm(d2)
    nonzero = (n1 > 0) & (n2 > 0)
    u1 = d1 / jnp.where(n1 > 0, n1, 1.0)
    u2 = d2 / jnp.where(n2 > 0, n2, 1.0)
    omega = 2.0 * jnp.arctan2(_safe_norm(u1 - u2), _safe_norm(u1 + u2))
    sin_omega = jnp.sin(omega)
    spherical = nonzero & (sin_omega >= eps)
    safe_sin = jnp.where(spherical, sin_omega, 1.0)
    lam = jnp.asarray(lam, dtype)
    w1 = jnp.where(spherical, jnp.sin((1.0 - lam) * omega) / safe_sin, 1.0 - lam)
    w2 = jnp.where(spherical, jnp.sin(lam * omega) / safe_sin, lam)
    return (init + w1 * d1 + w2 * d2).astype(out_dtype)


def slerp(init: Any, theta1: Any, theta2: Any, lam: ArrayLike, eps: float = DEFAULT_EPS) -> Any:
    """Task-vector SLERP, one angle per leaf (WARP Alg. 1, stage 2; App. B).

    Per leaf, with ``delta_i = theta_i - theta_init`` and ``Omega`` the angle between them:

        theta_init + sin((1 - lam) Omega) / sin(Omega) delta_1 + sin(lam Omega) / sin(Omega) delta_2

    ``lam = 0`` gives ``theta1``, ``lam = 1`` gives ``theta2``; equal-norm task vectors keep their
    norm (Lemma 1). Where a task vector is zero or ``sin(Omega) < eps`` the leaf falls back to LERP
    ``theta_init + (1 - lam) delta_1 + lam delta_2`` (the ``Omega -> 0`` limit). Not mergekit's
    ``slerp``, which interpolates full weights.

    Args:
      init: pytree ``theta_init``, the shared starting point of both runs.
      theta1, theta2: pytrees of the fine-tuned weights (same structure and shapes as ``init``).
      lam: scalar interpolation weight on ``theta2`` (WARP: 0.5 for ``M = 2``; may be traced).
      eps: threshold on ``sin(Omega)`` below which a leaf is LERPed.

    Returns:
      the merged pytree, each leaf in ``result_type`` of its three inputs.
    """
    check_compatible("slerp", init, theta1, ("init", "theta1"))
    check_compatible("slerp", init, theta2, ("init", "theta2"))
    _check_scalar("slerp", "lam", lam)
    validation.non_negative("slerp", eps=eps)
    return jax.tree.map(lambda i, a, b: _slerp_leaf(i, a, b, lam, eps), init, theta1, theta2)


def slerp_uniform(init: Any, stacked_thetas: Any, eps: float = DEFAULT_EPS) -> Any:
    """Uniform SLERP of ``M`` runs, the left fold of WARP App. B.3, eq. 26.

        slerp_1 = theta_1,   slerp_m = slerp(theta_init, slerp_{m-1}, theta_m, lam = 1/m)

    so every run gets weight ``1/M`` in the last step. SLERP is not associative: the result depends
    (slightly, Fig. 4b) on the order, which is the stack order here. ``M = 1`` returns ``theta_1``.

    Args:
      init: pytree ``theta_init``.
      stacked_thetas: pytree with leaves ``[M, *init_leaf.shape]`` (the ``M`` runs, e.g. from
        ``jax.vmap``).
      eps: as in :func:`slerp`.

    Returns:
      the merged pytree (leaves shaped like ``init``).
    """
    m = stack_size("slerp_uniform", stacked_thetas, "stacked_thetas", like=init)
    validation.non_negative("slerp_uniform", eps=eps)
    merged = jax.tree.map(lambda i, x: x[0].astype(jnp.result_type(i, x)), init, stacked_thetas)
    # A Python loop (M is a static shape, and small: WARP uses M <= 5): each step reuses the same
    # compiled leaf kernel when called eagerly, and unrolls into M - 1 SLERPs under jit.
    for step in range(2, m + 1):
        theta = jax.tree.map(lambda x, step=step: x[step - 1], stacked_thetas)
        merged = jax.tree.map(
            lambda i, a, b, lam=1.0 / step: _slerp_leaf(i, a, b, lam, eps), init, merged, theta
        )
    return merged


def task_vector_cosines(init: Any, stacked: Any) -> Any:
    """Per-leaf cosines between the ``M`` task vectors ``delta_m = theta_m - theta_init``.

    ``cos[i, j] = <delta_i, delta_j> / (|delta_i| |delta_j|)``, for WARP Obs. 4 / Fig. 11 (task
    vectors of independent RL runs are nearly orthogonal). A zero task vector has cosine 0 with
    everything, itself included. Passing ``init`` as zeros gives the cosines of the full weights
    (nearly 1 in Obs. 4).

    Args:
      init: pytree ``theta_init``.
      stacked: pytree with leaves ``[M, *init_leaf.shape]``.

    Returns:
      pytree like ``init`` whose leaves are ``[M, M]`` float32 (or wider) matrices.
    """
    stack_size("task_vector_cosines", stacked, "stacked", like=init)
    return jax.tree.map(_cosines_leaf, init, stacked)


@jax.jit
def _cosines_leaf(init: jax.Array, stacked: jax.Array) -> jax.Array:
    dtype = jnp.promote_types(jnp.result_type(init, stacked), jnp.float32)
    d = (jnp.asarray(stacked, dtype) - jnp.asarray(init, dtype)).reshape(stacked.shape[0], -1)
    norm = jnp.linalg.norm(d, axis=-1, keepdims=True)
    u = d / jnp.where(norm > 0, norm, 1.0)
    return jnp.clip(u @ u.T, -1.0, 1.0)
