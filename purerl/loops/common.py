"""What every loop shares: multi-seed running (with sharding), progress, non-finite checks, and the
loop side of a :class:`~purerl.core.types.Rewarder` (its carry, its per-step call, its metrics)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purerl.core import rewarder as rewarding
from purerl.core.divergence import (  # noqa: F401  (re-exported: loops.common.Diverged ...)
    CAUSES,
    Checks,
    Diverged,
    NonFiniteError,
    check_finite,
    first_code,
    leaf_names,
    nonfinite_code,
    record_bad,
)
from purerl.core.types import EnvSpec, Metrics, Rewarder, Transition
from purerl.loops import distributed

# How a state leaf is named in Diverged's message: found at a period's end, not at its exact step.
PERIOD_NOTE = " (checked at the end of each period)"


def first_nonfinite(tree: Any) -> jax.Array:
    """1.0 if any leaf of ``tree`` holds NaN or inf, else 0.0 (inside jit)."""
    bad = [~jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]
    return jnp.any(jnp.stack(bad)).astype(jnp.float32)


def update_bad_step(bad_step: jax.Array, is_bad: jax.Array, step: jax.Array) -> jax.Array:
    """Keep the first step at which something went non-finite (-1 while none)."""
    return jnp.where((bad_step < 0) & (is_bad > 0), step, bad_step)


class Progress:
    """Host-side progress bar + periodic metric lines, fed from inside the compiled run through
    ``jax.debug.callback`` once per period (once per seed and period under ``vmap``), or from the
    host after each call of :func:`run_periods` (the CLI: a program with a callback is never
    stored in JAX's persistent compilation cache).

    Under ``vmap`` every seed reports period ``k`` before any seed reports period ``k + 1``, so the
    line for period ``k`` is printed, as the mean over all seeds, when period ``k + 1`` first arrives;
    the last period's line is printed when the bar closes (``close()``, called by ``run_seeds``).
    """

    def __init__(self, total_steps: int, keys: tuple[str, ...] = ("eval/return",), desc: str = ""):
        self.total = total_steps
        self.keys = keys
        self.desc = desc
        self.seen = 0
        self.pending: dict[str, list[float]] = {}
        self.start = time.perf_counter()
        self.bar = None

    def _flush(self) -> None:
        if not self.pending or self.bar is None:
            return
        n = len(next(iter(self.pending.values())))
        parts = [f"{k}={np.nanmean(v):.4g}" for k, v in self.pending.items() if v]
        elapsed = time.perf_counter() - self.start
        seeds = f" (mean of {n} seeds)" if n > 1 else ""
        self.bar.write(
            f"[{self.desc}] step {self.seen:>9,d}  {'  '.join(parts)}{seeds}  ({elapsed:.0f}s)"
        )
        self.pending = {}

    def __call__(self, env_steps, metrics) -> None:
        steps = int(np.asarray(env_steps))
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=self.total, desc=self.desc, unit="step", dynamic_ncols=True, mininterval=1.0
            )
        if steps > self.seen:
            self._flush()
            self.bar.update(steps - self.seen)
            self.seen = steps
        for k in self.keys:
            if k in metrics:
                self.pending.setdefault(k, []).append(float(np.asarray(metrics[k])))

    def close(self) -> None:
        self._flush()
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def shard_seeds(keys: jax.Array, devices: list | None = None) -> jax.Array:
    """Place a ``[num_seeds]`` key array sharded across devices along the seed axis.

    ``jax.jit(jax.vmap(train))(shard_seeds(keys))`` then runs each device's share of seeds on that
    device (GSPMD partitions the vmapped axis; no pmap). ``devices`` defaults to ``jax.devices()``:
    with several processes (:func:`purerl.loops.distributed.initialize`) that is every process's
    devices, and each process transfers only its own shards. ``num_seeds`` must divide evenly.
    """
    devices = devices or jax.devices()
    n = keys.shape[0]
    if n % len(devices):
        raise ValueError(
            f"{n} seeds cannot be split evenly over {len(devices)} devices; use a multiple"
        )
    mesh = jax.sharding.Mesh(np.asarray(devices), ("seed",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seed"))
    return distributed.put_global(keys, sharding)


def _sharded_inputs(keys: jax.Array, args: tuple, shard: bool) -> tuple[jax.Array, tuple]:
    """``(keys, args)`` as ``run_seeds`` passes them: keys sharded over all devices when asked and
    possible; with several processes, ``args`` replicated onto every device."""
    devices = jax.devices()
    multi = distributed.is_multiprocess()
    # One process falls back to one device when the seeds do not divide; several processes raise
    # (each would otherwise silently train every seed on its own devices).
    if shard and len(devices) > 1 and (multi or keys.shape[0] % len(devices) == 0):
        keys = shard_seeds(keys, devices)
        if multi:
            args = distributed.replicate(args, keys.sharding.mesh)
    return keys, args


def _to_host(tree: Any) -> Any:
    """Host copies when this process holds every value; global arrays (several processes) as they
    are, for :func:`purerl.loops.distributed.local_rows` / ``gather``."""
    if all(not isinstance(x, jax.Array) or x.is_fully_addressable for x in jax.tree.leaves(tree)):
        return jax.device_get(tree)
    return tree


def _check(
    metrics: dict, check: bool, train: Any, runs: list[str] | None = None, index: Any = ()
) -> None:
    """:func:`check_finite` on ``check/nonfinite_step`` / ``check/nonfinite_what`` (gathered to
    every process, so they all raise the same error together rather than one hanging at the next
    collective); ``index`` selects one hyperparameter setting of a grid, ``runs`` names its runs."""
    if not (check and "check/nonfinite_step" in metrics):
        return
    gathered = {
        k: distributed.gather(metrics[k])[index]
        for k in ("check/nonfinite_step", "check/nonfinite_what")
        if k in metrics
    }
    wording = getattr(train, "nonfinite_wording", {})
    check_finite(gathered, **wording, checks=getattr(train, "checks", None), runs=runs)


def run_seeds(
    train: Callable[[jax.Array], tuple[Any, dict]],
    key: jax.Array,
    num_seeds: int,
    shard: bool = True,
    check: bool = True,
    args: tuple = (),
) -> tuple[Any, dict]:
    """``jit(vmap(train))`` over ``num_seeds`` keys split from ``key``; shards seeds over all
    devices when there are several; raises :class:`NonFiniteError` if a run in
    ``on_nonfinite='raise'`` mode saw NaN/inf (those runs report ``check/nonfinite_step``; 'ignore'
    runs do not).

    ``args`` are extra arguments of ``train(key, *args)`` shared by all seeds (not vmapped), e.g. the
    offline loop's dataset, which is then passed to the compiled run rather than baked into it.

    With several processes (:mod:`purerl.loops.distributed`) every process calls it with the same
    ``key`` (checked), the seeds are sharded over every process's devices (``num_seeds`` must be a
    multiple of ``jax.device_count()``), and the metrics come back as global arrays sharded on the
    seed axis: take this process's rows with :func:`purerl.loops.distributed.local_rows`. With one
    process they come back as host numpy arrays ``[num_seeds, ...]``."""
    if distributed.is_multiprocess():
        distributed.assert_same_everywhere(jax.random.key_data(key), "run_seeds: the key")
    keys, args = _sharded_inputs(jax.random.split(key, num_seeds), args, shard)
    in_axes = (0, *([None] * len(args)))
    states, metrics = jax.jit(jax.vmap(train, in_axes=in_axes))(keys, *args)
    metrics = _to_host(metrics)
    progress = getattr(train, "progress", None)
    if progress is not None:
        progress.close()
    _check(metrics, check, train)
    return states, metrics


def grid_mesh_shape(num_hparams: int, num_seeds: int, num_devices: int) -> tuple[int, int] | None:
    """``(devices along the hyperparameter axis, devices along the seed axis)`` that tile a
    ``[num_hparams, num_seeds]`` grid evenly over ``num_devices`` devices (as many along the
    hyperparameter axis as divide it), or None if no factorization does."""
    for on_hparams in range(min(num_hparams, num_devices), 0, -1):
        on_seeds, rest = divmod(num_devices, on_hparams)
        if not rest and num_hparams % on_hparams == 0 and num_seeds % on_seeds == 0:
            return on_hparams, on_seeds
    return None


def run_grid(
    train: Callable[..., tuple[Any, dict]],
    key: jax.Array,
    hparams: Any,
    num_seeds: int,
    shard: bool = True,
    check: bool = True,
    args: tuple = (),
) -> tuple[Any, dict]:
    """``train(key, hparams, *args)`` over every (hyperparameter setting, seed) pair, one compiled
    ``jit(vmap(vmap(train)))`` with the grid sharded over all devices (every process's, with
    several processes) on a 2-D ``("hparam", "seed")`` mesh.

    Every setting runs the same ``num_seeds`` keys, those :func:`run_seeds` splits from ``key``, so
    differences between settings are not differences of seeds (common random numbers). ``train``
    builds its config from ``hparams`` inside (a learning rate, a coefficient: traced leaves).

    Args:
      train: ``train(key, hp, *args) -> (state, metrics)``, ``hp`` one setting (leaves scalars).
      hparams: a pytree whose leaves share a leading axis ``[num_hparams]``, e.g.
        ``{"lr": jnp.array([1e-4, 3e-4, 1e-3])}``.
      shard: shard the grid when the devices tile it (:func:`grid_mesh_shape`); one process falls
        back to one device when they do not, several processes raise.

    Returns:
      ``(states, metrics)`` with leaves ``[num_hparams, num_seeds, ...]``; metrics as in
      :func:`run_seeds` (host arrays, or global arrays with several processes: take this process's
      cells with ``distributed.local_rows(metrics, axes=2)``).
    """
    leaves = jax.tree.leaves(hparams)
    sizes = {np.shape(x)[0] if np.ndim(x) else None for x in leaves}
    if not leaves or len(sizes) != 1 or None in sizes:
        raise ValueError(
            f"hparams need array leaves with one common leading axis [num_hparams], got sizes "
            f"{sorted(map(str, sizes))}"
        )
    num_hparams = sizes.pop()
    multi = distributed.is_multiprocess()
    if multi:
        distributed.assert_same_everywhere((jax.random.key_data(key), hparams), "run_grid inputs")
    keys = jax.random.split(key, num_seeds)
    keys = jnp.broadcast_to(keys, (num_hparams, num_seeds))
    hparams = jax.tree.map(jnp.asarray, hparams)
    devices = jax.devices()
    tiling = grid_mesh_shape(num_hparams, num_seeds, len(devices))
    if shard and len(devices) > 1 and (tiling is not None or multi):
        if tiling is None:
            raise ValueError(
                f"a {num_hparams} x {num_seeds} grid cannot be tiled evenly over {len(devices)} "
                "devices; change the number of seeds"
            )
        mesh = jax.sharding.Mesh(np.asarray(devices).reshape(tiling), ("hparam", "seed"))
        spec = jax.sharding.PartitionSpec
        keys = distributed.put_global(
            keys, jax.sharding.NamedSharding(mesh, spec("hparam", "seed"))
        )
        hparams = jax.tree.map(
            lambda x: distributed.put_global(
                x, jax.sharding.NamedSharding(mesh, spec("hparam", *[None] * (x.ndim - 1)))
            ),
            hparams,
        )
        if multi:
            args = distributed.replicate(args, mesh)
    shared = [None] * len(args)
    over_seeds = jax.vmap(train, in_axes=(0, None, *shared))
    states, metrics = jax.jit(jax.vmap(over_seeds, in_axes=(0, 0, *shared)))(keys, hparams, *args)
    metrics = _to_host(metrics)
    progress = getattr(train, "progress", None)
    if progress is not None:
        progress.close()
    if check and "check/nonfinite_step" in metrics:
        for h in range(num_hparams):
            names = [f"hyperparameter setting {h}, seed {i}" for i in range(num_seeds)]
            _check(metrics, True, train, runs=names, index=h)
    return states, metrics


class RewarderCarry(NamedTuple):
    """A rewarder inside a loop's carry (so checkpoints and resumes keep it).

    Attributes:
      state: the rewarder's own state (``rewarder.init``; learned parameters, per-episode state).
      episode_return: ``[num_envs]`` sum of the rewarder's own (unweighted) reward over each env's
        running episode, for ``return/rewarder``.
    """

    state: Any
    episode_return: jax.Array


def rewarder_key(key: jax.Array) -> jax.Array:
    """The key a loop gives ``rewarder.init``: folded out of the run's key without consuming it, so
    the agent's and env's keys are those of the same run without a rewarder."""
    return jax.random.fold_in(key, 0x52455744)


def init_rewarder(
    rewarder: Rewarder, key: jax.Array, spec: EnvSpec, num_envs: int, owner: str
) -> RewarderCarry:
    """``rewarder.init`` (checked: ``reward`` keeps the state's shapes on ``num_envs`` transitions)
    and zero episode returns."""
    state = rewarding.init(rewarder, key, spec, num_envs, owner)
    return RewarderCarry(state, jnp.zeros((num_envs,), jnp.float32))


def reward_step(
    rewarder: Rewarder, carry: RewarderCarry, transition: Transition, mode: str, weight: float
) -> tuple[RewarderCarry, Transition, jax.Array, Metrics]:
    """Apply the rewarder to one env step of ``num_envs`` envs (``transition.reward`` = env reward).

    Returns the new carry, the transition with the combined reward (:func:`purerl.core.rewarder.
    combine`), ``rewarder_return_sum`` (the rewarder's return summed over the episodes that ended on
    this step, scalar) and the reward's metrics. Episodes end where ``terminated`` or ``truncated``.
    """
    state, transition, reward, metrics = rewarding.apply(
        rewarder, carry.state, transition, mode, weight
    )
    done = jnp.maximum(transition.terminated, transition.truncated)
    ret = carry.episode_return + reward
    finished = jnp.sum(done * ret)
    return RewarderCarry(state, ret * (1.0 - done)), transition, finished, metrics


def env_step_stats(
    state: Any,
    transition: Transition,
    rewarder: Rewarder | None,
    r_carry: RewarderCarry | None,
    mode: str,
    weight: float,
    checks: Checks,
) -> tuple[RewarderCarry | None, Transition, dict, jax.Array]:
    """What the online and on-policy loops do after each env step of ``num_envs`` envs: episode
    stats from the env state's info (``episodes``, ``return_sum``), the rewarder applied
    (:func:`reward_step`; adds ``rewarder_return_sum`` and ``reward_metrics``), and the check for
    non-finite values of the observation and env reward (cause "env") and, with a rewarder, the
    reward the agent learns from (cause "rewarder").

    Returns ``(r_carry, transition, stats, code)`` (``code``: :meth:`Checks.code`, -1 if all
    finite); without a rewarder ``r_carry`` and ``transition`` come back unchanged.
    """
    done = state.info["episode_done"]
    stats = {"episodes": jnp.sum(done), "return_sum": jnp.sum(done * state.info["last_return"])}
    code = checks.code("env", {"observation": state.obs, "env reward": state.reward}, "env")
    if rewarder is not None:
        r_carry, transition, finished, r_metrics = reward_step(
            rewarder, r_carry, transition, mode, weight
        )
        stats.update(rewarder_return_sum=finished, reward_metrics=r_metrics)
        r_code = checks.code(
            "rewarder", {"reward with the rewarder's": transition.reward}, "rewarder"
        )
        code = first_code(code, r_code)
    return r_carry, transition, stats, code


def metrics_code(checks: Checks, metrics: Metrics, cause: str) -> jax.Array:
    """The :meth:`Checks.code` of an update's metrics (its losses): checked every iteration, one
    ``isfinite`` per scalar."""
    return checks.code("update metrics", metrics, cause, "update metric ")


def revert_nonfinite_state(
    checks: Checks, start: tuple[Any, Any], end: tuple[Any, Any], cause: str
) -> tuple[Any, Any, jax.Array]:
    """The period-end check of the agent's state and the rewarder's: every floating-point leaf
    (parameters, optimizer and normalizer state) is checked once per period, not every iteration
    (measured: one ``isfinite`` reduction per leaf per iteration cost up to a third of a tiny run's
    steps/s). If any is NaN/inf, both go back to ``start``, the states at the period's start (the
    last ones known finite).

    Args:
      start, end: ``(agent, rewarder_state)`` at the start and the end of the period.

    Returns:
      ``(agent, rewarder_state, code)``: ``end``'s, or ``start``'s with ``code >= 0`` naming the
      first non-finite leaf.
    """
    code = first_code(
        checks.code("agent state", end[0], cause, "agent state ", PERIOD_NOTE),
        checks.code("rewarder state", end[1], "rewarder", "rewarder state ", PERIOD_NOTE),
    )
    keep = lambda old, x: jnp.where(code >= 0, old, x)  # noqa: E731
    return jax.tree.map(keep, start[0], end[0]), jax.tree.map(keep, start[1], end[1]), code


def merge_metrics(agent: Metrics, rewarder: Metrics, owner: str) -> Metrics:
    """``{**agent, **rewarder}``; raises ``ValueError`` (at trace time) if a name is in both."""
    both = sorted(set(agent) & set(rewarder))
    if both:
        raise ValueError(
            f"{owner}: the rewarder's metrics {both} have the same names as the agent's; give the "
            "rewarder's metrics their own group (e.g. 'reward/...', 'rewarder/...')"
        )
    return {**agent, **rewarder}


def run_periods(
    loop: Loop,
    key: jax.Array,
    num_seeds: int,
    num_periods: int,
    args: tuple = (),
    shard: bool = True,
    on_period: Callable[[dict], None] | None = None,
    on_compiled: Callable[[float, float], None] | None = None,
) -> tuple[Any, dict]:
    """The result of ``run_seeds(make_train_fn(loop, num_periods), key, num_seeds, check=False)``,
    computed one eval period per call of a compiled ``jit(vmap(loop.run(carry, 1, *args)))``.

    Why: the compiled program then holds no host callback when ``loop`` was built without one
    (progress is reported here, between calls, through ``on_period``), so JAX's persistent
    compilation cache can store it (JAX never writes programs with host callbacks), and its compile
    time is measured apart from the run. The results are those of the single program: the loops'
    ``run(run(c, k), n - k) == run(c, n)`` contract (tests/loops/test_checkpoint.py).

    Args:
      loop: a :class:`Loop`; ``loop.run(carry, num_periods, *args)``.
      args: extra arguments of ``loop.run`` shared by all seeds (not vmapped), e.g. offline data.
      on_period: called after each period with that period's metrics row, leaves ``[num_seeds]``.
      on_compiled: called once, before the first period runs, with the seconds spent tracing and
        lowering the init and period programs to XLA, and the seconds XLA spent compiling them (a
        hit in the persistent compilation cache makes this the time to load them).

    Returns:
      ``(final carries [num_seeds, ...], metrics {name: [num_seeds, num_periods]})``.
    """
    if distributed.is_multiprocess():
        raise ValueError(
            "run_periods runs on one process (it fetches every period's rows to the host); with "
            "several processes use run_seeds(make_train_fn(loop, num_periods), ...)"
        )
    keys = jax.random.split(key, num_seeds)
    if shard and len(jax.devices()) > 1 and num_seeds % len(jax.devices()) == 0:
        keys = shard_seeds(keys)
    init = jax.jit(jax.vmap(loop.init))

    t0 = time.perf_counter()
    lowered = init.lower(keys)
    t1 = time.perf_counter()
    init = lowered.compile()
    t2 = time.perf_counter()
    carry = init(keys)
    # Fields in loop.shared are the same for every seed: pass them unbatched (one copy), so that
    # e.g. the online loop's warm-up branch on the iteration counter stays a real branch.
    axes: Any = 0
    if loop.shared:
        carry = carry._replace(**{f: getattr(carry, f)[0] for f in loop.shared})
        axes = type(carry)(*[None if f in loop.shared else 0 for f in carry._fields])
    # The carry is donated: each call updates it (the replay buffer included) in place.
    period = jax.jit(
        jax.vmap(
            lambda c, *a: loop.run(c, 1, *a),
            in_axes=(axes, *([None] * len(args))),
            out_axes=(axes, 0),
        ),
        donate_argnums=0,
    )
    t3 = time.perf_counter()
    lowered = period.lower(carry, *args)
    t4 = time.perf_counter()
    period = lowered.compile()
    t5 = time.perf_counter()
    if on_compiled is not None:
        on_compiled((t1 - t0) + (t4 - t3), (t2 - t1) + (t5 - t4))

    rows = []
    for _ in range(num_periods):
        carry, row = period(carry, *args)
        row = jax.device_get(row)  # [num_seeds, 1] leaves
        rows.append(row)
        if on_period is not None:
            on_period(jax.tree.map(lambda x: x[:, 0], row))
    metrics = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *rows)
    if loop.shared:
        carry = carry._replace(
            **{f: jnp.broadcast_to(getattr(carry, f), (num_seeds,)) for f in loop.shared}
        )
    return carry, metrics


class Loop(NamedTuple):
    """A loop split at period boundaries, for checkpoint/resume:
    ``run(init(key), config.num_evals) == train(key)``, and running ``k`` periods, saving the carry,
    then ``run(carry, num_evals - k)`` gives the same result as not stopping."""

    init: Callable[[jax.Array], Any]
    run: Callable[[Any, int], tuple[Any, dict]]  # num_periods must be a static Python int
    progress: Progress | None = None  # host-side progress printer, if the config asked for one
    shared: tuple[str, ...] = ()  # carry fields equal for every seed (e.g. the iteration counter):
    #                               run_periods passes them unbatched, so branches on them stay
    #                               real ``lax.cond`` branches under vmap instead of selects
    checks: Checks | None = None  # names of the NaN/inf codes in check/nonfinite_what (filled
    #                               when the loop is traced), for check_finite


def make_train_fn(loop: Loop, num_periods: int) -> Callable[[jax.Array], tuple[Any, dict]]:
    """``train(key) = loop.run(loop.init(key), num_periods)``; carries ``train.progress`` so
    :func:`run_seeds` can close the progress bar after the run."""

    def train(key: jax.Array) -> tuple[Any, dict]:
        return loop.run(loop.init(key), num_periods)

    train.progress = loop.progress
    train.checks = loop.checks
    return train


def progress_callback(callback, enabled: bool, total_steps: int, desc: str):
    """The user's callback, else a :class:`Progress` bar when ``enabled``, else None."""
    if callback is None and enabled:
        return Progress(total_steps, desc=desc)
    return callback


def freeze_on_nonfinite(live: Callable, carry: Any, enabled: bool):
    """Run ``live(carry) -> (carry, outputs)`` unless ``carry.bad_step >= 0``; then keep the carry
    and output zeros, so nothing downstream of the first NaN/inf is silently corrupted."""
    if not enabled:
        return live(carry)

    def frozen(carry):
        shapes = jax.eval_shape(live, carry)[1]
        return carry, jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

    return jax.lax.cond(carry.bad_step >= 0, frozen, live, carry)


def period_row(
    algo,
    eval_env,
    agent: Any,
    key: jax.Array,
    num_episodes: int,
    stats: dict,
    metrics: dict,
    env_steps: jax.Array,
    bad_step: jax.Array | None,
    callback,
    bad_what: jax.Array | None = None,
) -> dict:
    """One metrics row at the end of a period: deterministic evaluation, training-episode stats and
    the mean of the update metrics over the iterations that learned (NaN if none did).

    Args:
      stats: ``{"episodes": [I], "return_sum": [I]}`` per iteration of the period; with a rewarder
        also ``"rewarder_return_sum": [I]`` and ``"reward_metrics": {name: [I]}``.
      metrics: update metrics ``[I]`` plus ``"learning": [I]`` (1.0 where an update ran).
      bad_step: first non-finite env step (reported as ``check/nonfinite_step``), or None.
      bad_what: the :class:`Checks` code of what went non-finite (``check/nonfinite_what``).
    """
    from purerl.loops.evaluate import evaluate

    returns, lengths = evaluate(
        eval_env, lambda obs, k: algo.act(agent, obs, k, deterministic=True)[0], key, num_episodes
    )
    metrics = dict(metrics)
    weight = metrics.pop("learning")
    learned = jnp.sum(weight)
    row = {
        k: jnp.where(learned > 0, jnp.sum(v * weight) / jnp.maximum(learned, 1.0), jnp.nan)
        for k, v in metrics.items()
    }
    episodes = jnp.sum(stats["episodes"])
    row.update(
        {
            "env_steps": env_steps,
            "eval/return": jnp.mean(returns),
            "eval/return_std": jnp.std(returns),
            "eval/length": jnp.mean(lengths),
            "train/episode_return": jnp.where(
                episodes > 0, jnp.sum(stats["return_sum"]) / jnp.maximum(episodes, 1), jnp.nan
            ),
            "train/episodes": episodes,
        }
    )
    if "rewarder_return_sum" in stats:
        finished = jnp.maximum(episodes, 1)
        row["return/env"] = row["train/episode_return"]
        row["return/rewarder"] = jnp.where(
            episodes > 0, jnp.sum(stats["rewarder_return_sum"]) / finished, jnp.nan
        )
        reward_metrics = {k: jnp.mean(v) for k, v in stats["reward_metrics"].items()}
        row.update(merge_metrics(row, reward_metrics, "the loop's rows"))
    if bad_step is not None:
        row["check/nonfinite_step"] = bad_step
    if bad_what is not None:
        row["check/nonfinite_what"] = bad_what
    if callback is not None:
        jax.debug.callback(callback, env_steps, row)
    return row
