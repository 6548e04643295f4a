"""Adapter from ``brax.envs`` (backends spring / positional / generalized / mjx) to purerl's protocol.

The adapter exposes the raw physics task: ``terminated`` is brax's ``done`` (the pole falling for the
pendulums, the unhealthy-state condition for hopper/walker2d/ant/humanoid, never for
halfcheetah/reacher), and the time limit is added by ``wrappers.time_limit`` so truncation is never
confused with termination.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import sys
import warnings
from types import ModuleType

import jax.numpy as jnp
import numpy as np

from purerl.core.types import EnvSpec
from purerl.envs.protocol import Env, initial_state, next_state

BACKENDS = ("spring", "positional", "generalized", "mjx")

# mujoco's MJX prints these two lines with print() when it is imported (through brax.envs) and the
# optional NVIDIA ``warp`` package is absent (mujoco/mjx/warp/__init__.py, mujoco 3.3+); warp is a
# GPU kernel library none of our backends use. Only these exact lines are dropped: a warp that is
# installed but broken prints a different error, which goes through.
WARP_ABSENT = (
    "Failed to import warp: No module named 'warp'",
    "Failed to import mujoco_warp: No module named 'warp'",
)


def import_dropping_lines(name: str, drop: tuple[str, ...]) -> ModuleType:
    """``importlib.import_module(name)`` with the lines in ``drop`` removed from what the import
    prints on stdout; every other line is written to stdout after the import (also when it
    raises). stderr, warnings and logging are untouched."""
    captured = io.StringIO()
    try:
        with contextlib.redirect_stdout(captured):
            return importlib.import_module(name)
    finally:
        kept = [
            line
            for line in captured.getvalue().splitlines(keepends=True)
            if line.rstrip("\r\n") not in drop
        ]
        if kept:
            sys.stdout.write("".join(kept))
            sys.stdout.flush()


def make_brax(
    name: str,
    backend: str,
    episode_length: int = 1000,
    mjx_iterations: int | None = None,
    mjx_ls_iterations: int | None = None,
) -> tuple[Env, np.ndarray, np.ndarray]:
    """A brax env as an unwrapped purerl :class:`Env` plus its action bounds ``(low, high)``.

    Args:
      name: brax registry name (``halfcheetah``, ``hopper``, ...).
      backend: one of :data:`BACKENDS`.
      episode_length: recorded in the spec; applied by ``wrappers.time_limit``.
      mjx_iterations, mjx_ls_iterations: cap MJX's Newton solver (brax already does 1/4 for ant and
        humanoid). Vmapped MJX solvers run until the slowest env converges, so capping makes batched
        hopper/walker2d ~10x faster on CPU (shared/reference/cpu_feasibility.md); too hard a cap can
        give NaNs on halfcheetah.
    """
    # deferred: the brax import is slow; and without mujoco's warp noise (WARP_ABSENT).
    import_dropping_lines("brax.envs", WARP_ABSENT)
    import brax.envs

    if backend not in BACKENDS:
        raise ValueError(f"unknown brax backend {backend!r}; choose one of {BACKENDS}")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*not actively being maintained.*")
        warnings.filterwarnings("ignore", message=".*settotalmass.*")
        benv = brax.envs.get_environment(name, backend=backend)
    if backend == "mjx" and (mjx_iterations or mjx_ls_iterations):
        updates = {}
        if mjx_iterations:
            updates["opt.iterations"] = mjx_iterations
        if mjx_ls_iterations:
            updates["opt.ls_iterations"] = mjx_ls_iterations
        benv.sys = benv.sys.tree_replace(updates)
    elif mjx_iterations or mjx_ls_iterations:
        raise ValueError("mjx_iterations / mjx_ls_iterations only apply to backend='mjx'")

    spec = EnvSpec(
        obs_shape=(int(benv.observation_size),),
        action_shape=(int(benv.action_size),),
        episode_length=episode_length,
        name=f"{name}",
    )
    ctrl_range = np.asarray(
        getattr(benv.sys.actuator, "ctrl_range", None) if hasattr(benv.sys, "actuator") else None
    )
    if ctrl_range.ndim == 2 and ctrl_range.shape[0] == spec.action_size:
        low, high = ctrl_range[:, 0].astype(np.float32), ctrl_range[:, 1].astype(np.float32)
        bad = ~(high > low)
        low[bad], high[bad] = -1.0, 1.0
    else:
        low = -np.ones(spec.action_size, np.float32)
        high = np.ones(spec.action_size, np.float32)

    def strip(s):
        # brax metrics/info dicts are left out: their weak types and per-env keys are noise to us.
        return s.pipeline_state

    def reset(key):
        s = benv.reset(key)
        return initial_state(inner=(strip(s), s.obs), obs=s.obs)

    def step(key, state, action):
        del key
        pipeline_state, obs = state.inner
        bstate = brax.envs.State(
            pipeline_state=pipeline_state,
            obs=obs,
            reward=jnp.zeros(()),
            done=jnp.zeros(()),
        )
        s = benv.step(bstate, action)
        return next_state(state, (strip(s), s.obs), s.obs, s.reward, s.done)

    return Env(spec=spec, reset=reset, step=step), low, high
