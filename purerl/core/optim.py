"""The one optimizer factory and the one learning-rate warm-up of purerl.

    optimizer = optim.adam(3e-4, warmup_steps=100, max_grad_norm=1.0)
    opt_state = optimizer.init(params)
    updates, opt_state = optimizer.update(grads, opt_state, params)

Warm-up (:func:`warmup_schedule`): update ``k = 0, 1, ...`` uses

    lr_k = lr * min(1, (k + 1) / W)

so the first update already moves the parameters (``lr / W``), the step size grows linearly and
reaches ``lr`` at update ``W - 1``. (A schedule that starts at ``lr_0 = 0``, as
``optax.linear_schedule(0, lr, W)`` does, wastes the first update: Adam's first step is then
exactly zero.) The papers that warm up (WARP sec. 4, BOND sec. 6: "100 warm-up steps") say
"linear warm-up" without the endpoint; this is the reading where every one of the ``W`` steps
counts.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import optax
from jax.typing import ArrayLike

from purerl.core import validation


def _check_warmup(owner: str, warmup_steps: int) -> None:
    if (
        isinstance(warmup_steps, bool)
        or not isinstance(warmup_steps, (int, np.integer))
        or warmup_steps < 0
    ):
        raise ValueError(f"{owner}: warmup_steps must be an int >= 0, got {warmup_steps!r}")


def warmup_schedule(learning_rate: ArrayLike, warmup_steps: int) -> optax.ScalarOrSchedule:
    """Linear warm-up ``lr_k = lr * min(1, (k + 1) / W)`` for update ``k = 0, 1, ...``.

    ``lr_0 = lr / W > 0``: the first update moves the parameters; ``lr_k = lr`` from ``k = W - 1``
    on. ``W = 0`` returns ``learning_rate`` itself (a constant step size).

    Args:
      learning_rate: ``lr > 0`` (may be traced, e.g. built inside a ``vmap`` over values).
      warmup_steps: ``W >= 0`` (static).

    Returns:
      ``learning_rate`` when ``W = 0``, else an optax schedule ``count -> lr_count`` (``count`` is
      optax's int32 update counter).
    """
    validation.positive("optim.warmup_schedule", learning_rate=learning_rate)
    _check_warmup("optim.warmup_schedule", warmup_steps)
    if warmup_steps == 0:
        return learning_rate

    def schedule(count: ArrayLike) -> ArrayLike:
        return learning_rate * jnp.minimum(1.0, (count + 1.0) / warmup_steps)

    return schedule


def adam(
    learning_rate: ArrayLike | None,
    *,
    warmup_steps: int = 0,
    max_grad_norm: float | None = None,
) -> optax.GradientTransformation:
    """Adam (Kingma & Ba 2015; optax defaults ``b1 = 0.9, b2 = 0.999, eps = 1e-8``), optionally
    after global-norm gradient clipping, with the linear warm-up of :func:`warmup_schedule`.

        g <- g * min(1, c / |g|_2)                  (when max_grad_norm = c is given)
        u_k = -lr_k * m_hat_k / (sqrt(v_hat_k) + eps)

    Args:
      learning_rate: ``lr > 0`` (may be traced). ``None`` returns the Adam direction only
        (``m_hat / (sqrt(v_hat) + eps)``, optax's ``scale_by_adam``, no sign flip) for callers that
        keep the step size in their state, e.g. to ``vmap`` over it, and apply
        ``params - lr * updates`` themselves; then ``warmup_steps`` must be 0.
      warmup_steps: ``W >= 0`` linear warm-up updates (:func:`warmup_schedule`).
      max_grad_norm: clip the global gradient norm to this value first (``None``: no clipping).

    Returns:
      an ``optax.GradientTransformation`` (``optax.chain(clip, adam)`` when clipping, else the
      Adam transformation itself).
    """
    _check_warmup("optim.adam", warmup_steps)
    if max_grad_norm is not None:
        validation.positive("optim.adam", max_grad_norm=max_grad_norm)
    if learning_rate is None:
        if warmup_steps:
            raise ValueError(
                "optim.adam: warmup_steps needs a learning_rate (with learning_rate=None the "
                "caller applies the step size itself)"
            )
        transform = optax.scale_by_adam()
    else:
        transform = optax.adam(warmup_schedule(learning_rate, warmup_steps))
    if max_grad_norm is None:
        return transform
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), transform)
