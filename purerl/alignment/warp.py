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
  anchors, SLERP merge, LITI to the next init, final front from ``theta_sft``) -> :func:`run_warp`
  with a :class:`WarpConfig`.

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

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from purerl.alignment import lm, tasks
from purerl.alignment import policy_gradient as pg
from purerl.alignment.warm import check_compatible, stack_size
from purerl.core import validation
from purerl.core.tree import lerp
from purerl.loops import self_sampling

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


# ----------------------------------------------------------------------------- the procedure


@dataclasses.dataclass(frozen=True)
class WarpConfig:
    """Iterated WARP (Algorithm 1): ``I = len(steps)`` iterations of ``M = num_runs`` RL runs."""

    steps: tuple[int, ...] = (9000, 7000, 7000, 5000, 5000)  # T per iteration (sec. 4, I = 5)
    num_runs: int = 2  # M parallel RL runs per iteration (sec. 4 default; Fig. 4b goes to 5)
    liti_eta: float = 0.3  # eta of LITI towards the next init (sec. 4; Fig. 16 also 0.5)
    rl: pg.RLConfig = pg.RLConfig()  # EMA anchor, beta = 0.1, mu = 0.01 (sec. 4 defaults)
    eval_every: int = 500  # updates between evaluations inside each run (must divide each T)
    front_etas: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5, 0.8, 1.0)  # LITI grid (notes 6.3 P5)
    num_eval_prompts: int = 256  # held-out prompts, the same for every evaluation
    slerp_eps: float = DEFAULT_EPS  # sin(Omega) below this -> LERP (numerical guard)

    def __post_init__(self):
        if not isinstance(self.steps, tuple) or not self.steps:
            raise ValueError(
                f"WarpConfig.steps must be a non-empty tuple of ints, got {self.steps!r}"
            )
        for name in ("num_runs", "eval_every", "num_eval_prompts"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"WarpConfig.{name} must be a positive int, got {v!r}")
        for t in self.steps:
            if isinstance(t, bool) or not isinstance(t, int) or t < 1:
                raise ValueError(f"WarpConfig.steps must hold positive ints, got {self.steps!r}")
            if t % self.eval_every:
                raise ValueError(
                    f"WarpConfig.steps entry {t} is not a multiple of eval_every ({self.eval_every})"
                )
        if not isinstance(self.rl, pg.RLConfig):
            raise ValueError(f"WarpConfig.rl must be a policy_gradient.RLConfig, got {self.rl!r}")
        if not isinstance(self.front_etas, tuple) or not self.front_etas:
            raise ValueError(
                f"WarpConfig.front_etas must be a non-empty tuple of numbers, got {self.front_etas!r}"
            )
        for eta in (self.liti_eta, *self.front_etas):
            if isinstance(eta, bool) or not isinstance(eta, (int, float)) or not np.isfinite(eta):
                raise ValueError(f"WarpConfig: LITI weights must be finite numbers, got {eta!r}")
        validation.non_negative("WarpConfig", slerp_eps=self.slerp_eps)

    @property
    def num_iterations(self) -> int:
        """``I``."""
        return len(self.steps)


class WarpResult(NamedTuple):
    """What :func:`run_warp` returns (``I`` iterations, ``M`` runs, ``E = len(front_etas)``).

    Attributes:
      inits: ``I + 1`` pytrees: ``inits[i]`` is ``theta_init`` of iteration ``i`` (``inits[0] =
        theta_sft``), ``inits[I]`` the LITI point a further iteration would start from.
      merged: ``I`` pytrees ``theta_slerp^i``.
      run_params: ``I`` pytrees with leaves ``[M, ...]``: the final policies of each iteration's runs.
      run_metrics: ``I`` dicts of arrays ``[M, rows]``: the loop metrics of each run
        (:mod:`purerl.loops.self_sampling`; row 0 evaluates ``theta_init``).
      iteration_fronts: ``I`` dicts of arrays ``[E]``: evaluation of ``lerp(inits[i], merged[i],
        eta)`` over ``front_etas`` (the per-iteration LITI curves of Fig. 4c).
      front: dict of arrays ``[E]``: evaluation of the output ``(1 - eta) theta_sft + eta
        theta_slerp^I`` over ``front_etas``, plus ``"eta"``.
      eval_prompts: ``[N, P]`` the held-out prompts of every evaluation.
      eval_key: the sampling key shared by every front evaluation (common random numbers).
    """

    inits: list
    merged: list
    run_params: list
    run_metrics: list
    iteration_fronts: list
    front: dict
    eval_prompts: jax.Array
    eval_key: jax.Array


def run_warp(
    key: jax.Array,
    sft_params: Any,
    config: WarpConfig,
    lm_config: lm.LMConfig,
    task_config: tasks.TaskConfig,
    reward_fn: Callable[[jax.Array, jax.Array], jax.Array],
    eval_prompts: ArrayLike | None = None,
    progress: bool = False,
    compiler_options: dict[str, Any] | None = None,
) -> WarpResult:
    """Iterated WARP, Algorithm 1 of the paper.

        theta_init <- theta_sft
        for i = 1..I:
          for m = 1..M in parallel (one vmapped, compiled lax.scan; runs differ only in their key,
                                    i.e. in prompt order and sampling noise):
            theta_m, theta_m^ema <- theta_init
            T_i steps of policy_gradient (REINFORCE/RLOO on r - beta log pi/pi_ema, EMA anchor)
          theta_slerp^i <- slerp_uniform(theta_init, {theta_m})     (eq. 26, lambda = 1/M)
          theta_init <- (1 - eta) theta_init + eta theta_slerp^i     (LITI, eta = 0.3)
        output: {(1 - eta) theta_sft + eta theta_slerp^I : eta in front_etas}

    The outer loop over iterations is Python (the paper's); each iteration's ``M`` runs are one
    ``jax.jit(jax.vmap(self_sampling.make_train(...)))`` call, compiled once per distinct ``T``
    (without a progress bar). Every run starts a fresh Adam state and an EMA anchor equal to ``theta_init``.
    All front evaluations (:func:`purerl.alignment.policy_gradient.evaluate`: proxy reward, gold
    reward, analytic ``KL(pi || pi_sft)``) use the same prompts and sampling key, so points are
    compared on common random numbers; one compiled evaluator serves all of them.

    Args:
      key: PRNG key of the whole procedure.
      sft_params: ``theta_sft`` (LM parameters of ``lm_config``).
      config: a :class:`WarpConfig` (its ``rl`` field configures every run).
      lm_config, task_config, reward_fn: as in :func:`purerl.alignment.policy_gradient.make`.
      eval_prompts: ``[N, P]`` held-out prompts; default ``config.num_eval_prompts`` fresh ones.
      progress: show a progress bar per iteration (recompiles each iteration).
      compiler_options: XLA options for every ``jax.jit`` here (e.g.
        ``{"xla_backend_optimization_level": 0}`` trades run speed for compile speed in tests).

    Returns:
      a :class:`WarpResult`.
    """
    if not isinstance(config, WarpConfig):
        raise ValueError(f"run_warp needs a WarpConfig, got {type(config).__name__}")
    key, prompt_key, eval_key = jax.random.split(key, 3)
    if eval_prompts is None:
        eval_prompts = tasks.sample_prompts(prompt_key, task_config, config.num_eval_prompts)
    eval_prompts = jnp.asarray(eval_prompts, jnp.int32)
    if eval_prompts.ndim != 2 or eval_prompts.shape[1] != task_config.prompt_len:
        raise ValueError(
            f"run_warp: eval_prompts must be [N, prompt_len={task_config.prompt_len}], got "
            f"{eval_prompts.shape}"
        )
    algo = pg.make(config.rl, lm_config, task_config, reward_fn)
    evaluate_fn = pg.make_evaluate(
        config.rl, lm_config, task_config, reward_fn, prompts=np.asarray(eval_prompts)
    )
    etas = jnp.asarray(config.front_etas, jnp.float32)

    jit = functools.partial(jax.jit, compiler_options=compiler_options)

    @jit
    def evaluate_front(init, merged, sft, prompts, key):
        def one(eta):
            params = lerp(init, merged, eta)  # LITI (stage 3) along the front
            return pg.evaluate(
                config.rl, lm_config, task_config, reward_fn, params, sft, prompts, key
            )

        return jax.vmap(one)(etas)

    @jit
    def merge(init, stacked):  # SLERP of the M runs, then LITI to the next init
        merged = slerp_uniform(init, stacked, config.slerp_eps)
        return merged, lerp(init, merged, config.liti_eta)  # LITI to the next init

    runners: dict[int, Callable] = {}
    theta_init = sft_params
    result = WarpResult([sft_params], [], [], [], [], {}, eval_prompts, eval_key)
    for i, num_updates in enumerate(config.steps):
        loop_config = self_sampling.LoopConfig(
            num_updates=num_updates,
            eval_every=config.eval_every,
            progress=progress,
            desc=f"WARP iteration {i + 1}/{config.num_iterations}",
        )
        runner, bar = (None, None) if progress else (runners.get(num_updates), None)
        if runner is None:
            train = self_sampling.make_train(algo, loop_config, evaluate_fn)
            runner = jit(jax.vmap(train, in_axes=(0, None, None)))
            bar = train.progress
            if not progress:
                runners[num_updates] = runner
        key, runs_key = jax.random.split(key)
        states, metrics = runner(
            jax.random.split(runs_key, config.num_runs), theta_init, sft_params
        )
        if bar is not None:
            bar.close()
        merged, next_init = merge(theta_init, states.params)
        result.iteration_fronts.append(
            evaluate_front(theta_init, merged, sft_params, eval_prompts, eval_key)
        )
        theta_init = next_init
        result.merged.append(merged)
        result.run_params.append(states.params)
        result.run_metrics.append(metrics)
        result.inits.append(theta_init)
    front = evaluate_front(sft_params, result.merged[-1], sft_params, eval_prompts, eval_key)
    result.front.update(front)
    result.front["eta"] = etas
    return result
