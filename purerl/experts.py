"""Experts: train one with purerl's own agent and loop, load it, roll out D4RL levels and demos.

Nothing is downloaded: an expert is trained here (:func:`train_expert`), and every dataset level and
demonstration set is rolled out from it (:func:`generate_dataset`, :func:`generate_demos`), vmapped
across envs inside one compiled ``lax.scan``. Everything is deterministic for a given seed.

    expert = purerl.experts.get_expert("point_mass")                  # cached; trained on first use
    ds = purerl.experts.generate_dataset(expert, "medium", 10_000)
    ds = purerl.experts.load_or_generate("inverted_double_pendulum-medium")   # named, cached

Layering. Training an expert runs ``purerl.loops``, and the loops read datasets (the offline loop
takes a :class:`purerl.datasets.Dataset`), so this module sits above both: core <- datasets <- envs,
agents <- loops <- experts <- cli. ``purerl.datasets`` never imports it. ``purerl.datasets.load``
reads named datasets from the cache; on a miss it calls a generator passed to it, and
:func:`generate_named` is that generator (what :func:`load_or_generate` and the CLI pass). This was
chosen over a generator registered at import time: nothing changes behaviour because some module
happened to be imported, and the call that may train for minutes says so in its name.

Levels, following D4RL (Fu et al. 2020, sec. 5 "MuJoCo locomotion"):

* ``random``: a uniformly random policy (D4RL: "a randomly initialized policy"; see deviation 2 in
  docs/datasets.md).
* ``medium``: a policy of the expert's training run at about 1/3 to 1/2 of the expert return
  (:data:`MEDIUM_BAND`), acting with its exploration noise.
* ``medium-replay``: everything the training run collected up to that policy (D4RL: "the replay
  buffer of a policy trained up to the performance of the medium agent"), regenerated period by
  period from the run's policy snapshots (deviation 1 in docs/datasets.md).
* ``medium-expert``: medium and expert data, half and half (D4RL: 1M + 1M transitions).
* ``expert``: the trained expert, acting with its exploration noise.

An expert directory holds ``expert.json`` (settings, versions, learning curve, chosen periods,
reference returns, wall time) and ``policies/`` (an orbax checkpoint of the agent states needed: the
snapshots at the start of every period up to the medium one, plus the expert). The recipe of each
env's expert is :data:`purerl.datasets.registry.PRESETS` (plain data, so the registry can name the
datasets without importing this module).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from purerl import agents, datasets, envs
from purerl.core import jsonio
from purerl.core.types import Algorithm, Transition
from purerl.datasets import io, registry
from purerl.datasets.registry import LEVELS, PRESETS, ExpertPreset
from purerl.datasets.schema import Dataset, DatasetError, validate
from purerl.envs.protocol import Env
from purerl.loops import checkpoint, on_policy, online
from purerl.loops.common import check_finite
from purerl.loops.evaluate import evaluate

MEDIUM_BAND = (1 / 3, 1 / 2)  # medium policy: this fraction of the expert's (normalized) return
REFERENCE_EPISODES = 20  # episodes behind ref_min_score / ref_max_score
EXPERT_FORMAT = "purerl.expert/1"


def _loop_module(kind: str):
    return {"online": online, "on_policy": on_policy}[kind]


def _build(info: dict):
    """env, algo and loop config from an expert.json dict (or the same keys for a new run)."""
    module = agents.get(info["agent"])
    agent_config = module.Config(**_tuples(module.Config, info["agent_config"]))
    env = envs.make(info["env"], backend=info["backend"])
    algo = module.make(agent_config, env.spec)
    loop_module = _loop_module(module.LOOP)
    loop_config = loop_module.Config(**_tuples(loop_module.Config, info["loop_config"]))
    return module, env, algo, loop_module, loop_config


def _tuples(cls, values: dict) -> dict:
    """JSON turned tuples into lists; turn them back for the dataclass fields."""
    out = {}
    names = {f.name for f in dataclasses.fields(cls)}
    for k, v in values.items():
        if k not in names:
            raise DatasetError(
                f"unknown {cls.__module__}.{cls.__name__} field {k!r} in expert.json"
            )
        out[k] = tuple(v) if isinstance(v, list) else v
    return out


# --------------------------------------------------------------------------------------------------
# Rollouts.


def _random_actions(spec, key, n):
    if spec.discrete:
        return jax.random.randint(key, (n,), 0, spec.num_actions)
    return jax.random.uniform(key, (n, *spec.action_shape), minval=-1.0, maxval=1.0)


@functools.lru_cache(maxsize=16)
def collector(
    env: Env, algo: Algorithm | None, num_envs: int, steps_per_env: int, deterministic: bool
) -> Callable[..., Transition]:
    """Jitted ``collect(agent_state, key, start_step, random_until) -> Transition[T, E]``: actions are
    uniform random while the global env step (``start_step`` plus the steps so far, all envs
    together) is below ``random_until``, else ``algo.act`` (``algo=None``: always random). Cached
    per (env, algo, sizes), so repeated calls reuse one compiled scan."""
    spec = env.spec

    def collect(agent_state, key, start_step, random_until):
        reset_key, key = jax.random.split(key)
        state = jax.vmap(env.reset)(jax.random.split(reset_key, num_envs))

        def body(state, inputs):
            t, step_key = inputs
            act_key, rand_key, env_key = jax.random.split(step_key, 3)
            if algo is None:
                action = _random_actions(spec, rand_key, num_envs)
            else:
                policy = algo.act(agent_state, state.obs, act_key, deterministic)[0]
                rand = _random_actions(spec, rand_key, num_envs).astype(policy.dtype)
                use_random = start_step + t * num_envs < random_until
                action = jnp.where(use_random, rand, policy)
            nxt = jax.vmap(env.step)(jax.random.split(env_key, num_envs), state, action)
            tr = Transition(
                obs=state.obs,
                action=action,
                reward=nxt.reward,
                next_obs=nxt.final_obs,
                terminated=nxt.terminated,
                truncated=nxt.truncated,
            )
            return nxt, tr

        steps = jnp.arange(steps_per_env)
        _, traj = jax.lax.scan(body, state, (steps, jax.random.split(key, steps_per_env)))
        return traj

    return jax.jit(collect)


def to_arrays(traj: Transition) -> dict[str, np.ndarray]:
    """``[T, E]`` rollouts -> flat env-major arrays (each env's episodes stay contiguous); the last
    step of every env's column is a timeout (collection ended there)."""
    traj = jax.device_get(traj)
    t_len, n_envs = np.shape(traj.reward)[:2]

    def flat(x):
        x = np.asarray(x)
        return np.swapaxes(x, 0, 1).reshape(t_len * n_envs, *x.shape[2:])

    terminals = flat(traj.terminated) > 0
    timeouts = (flat(traj.truncated) > 0) & ~terminals
    col_end = np.zeros((n_envs, t_len), bool)
    col_end[:, -1] = True
    timeouts |= col_end.reshape(-1) & ~terminals
    return {
        "observations": flat(traj.obs),
        "actions": flat(traj.action),
        "rewards": flat(traj.reward),
        "next_observations": flat(traj.next_obs),
        "terminals": terminals,
        "timeouts": timeouts,
    }


def _join(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _take(arrays: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    """The first ``n`` transitions; the last one becomes a timeout (collection ended there)."""
    out = {k: v[:n].copy() for k, v in arrays.items()}
    out["timeouts"][-1] |= ~out["terminals"][-1]
    return out


def _mean_return(env, algo, agent_state, key, episodes: int) -> float:
    if algo is None:
        policy = lambda obs, k: _random_actions(env.spec, k, obs.shape[0])
    else:
        policy = lambda obs, k: algo.act(agent_state, obs, k, True)[0]
    returns, _ = jax.jit(lambda k: evaluate(env, policy, k, episodes))(key)
    return float(np.mean(np.asarray(returns)))


# --------------------------------------------------------------------------------------------------
# Experts.


class Expert(NamedTuple):
    """A loaded expert directory: ``info`` is expert.json; ``states`` stacks the saved agent states
    (index ``info["snapshot_periods"][i]``; the expert is the last entry)."""

    info: dict
    env: Any
    algo: Any
    loop_config: Any
    states: Any

    def state(self, index: int):
        return jax.tree.map(lambda x: x[index], self.states)

    @property
    def expert_state(self):
        return self.state(len(self.info["snapshot_periods"]))


def train_expert(
    env_name: str,
    out_dir: str,
    seed: int = 0,
    backend: str | None = None,
    preset: ExpertPreset | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> dict:
    """Train an expert with purerl's own agent and save it to ``out_dir``; returns its info dict.

    The run is the agent's own loop (``loops.online`` / ``loops.on_policy``), one period at a time
    so the agent state at every evaluation is kept. The expert is the period with the best
    deterministic evaluation return; ``medium`` is the period at or before it whose return,
    normalized between the uniform random policy and the expert, is closest to the middle of
    :data:`MEDIUM_BAND`. Both references (``ref_min_score``: uniform random actions,
    ``ref_max_score``: the expert, deterministic) are re-measured on :data:`REFERENCE_EPISODES`
    fresh episodes.
    """
    if preset is None:
        if env_name not in PRESETS:
            raise DatasetError(
                f"no expert preset for env {env_name!r}; presets exist for "
                f"{', '.join(sorted(PRESETS))} (or pass an ExpertPreset)"
            )
        preset = PRESETS[env_name]
    if os.path.exists(os.path.join(out_dir, "expert.json")) and not overwrite:
        raise FileExistsError(f"an expert already exists in {out_dir}; pass overwrite=True")
    backend = backend or registry.default_backend(env_name)
    module = agents.get(preset.agent)
    agent_config = module.Config(**dict(preset.agent_set))
    loop_module = _loop_module(module.LOOP)
    loop_kw = dict(preset.loop_set)
    if "n_step" in {f.name for f in dataclasses.fields(loop_module.Config)}:
        loop_kw.setdefault("n_step", getattr(agent_config, "n_step", 1))
    loop_config = loop_module.Config(total_steps=preset.steps, progress=progress, **loop_kw)
    info: dict[str, Any] = {
        "format": EXPERT_FORMAT,
        "env": env_name,
        "backend": backend,
        "seed": int(seed),
        "agent": preset.agent,
        "agent_config": dataclasses.asdict(agent_config),
        "loop": module.LOOP,
        "loop_config": {**dataclasses.asdict(loop_config), "progress": False},
        "versions": io.versions(),
    }
    _, env, algo, _, _ = _build(info)
    loop = loop_module.make_loop(algo, env, loop_config)

    start = time.perf_counter()
    key = jax.random.key(seed)
    train_key, ref_key = jax.random.split(key)
    carry = jax.jit(loop.init)(train_key)
    run = jax.jit(loop.run, static_argnums=1)
    snapshots, steps, returns = [carry.agent], [0], []
    for _ in range(loop_config.num_evals):
        carry, row = run(carry, 1)
        row = jax.device_get(row)
        if "check/nonfinite_step" in row:  # Diverged naming the step and the quantity
            check_finite(row, checks=loop.checks, runs=[f"the {env_name} expert (seed {seed})"])
        snapshots.append(carry.agent)
        steps.append(int(np.asarray(row["env_steps"]).reshape(-1)[-1]))
        returns.append(float(np.asarray(row["eval/return"]).reshape(-1)[-1]))
    if loop.progress is not None:
        loop.progress.close()
    train_wall = time.perf_counter() - start

    rand_key, exp_key, med_key = jax.random.split(ref_key, 3)
    best = int(np.argmax(returns)) + 1  # snapshot index (period p ends at snapshot p)
    ref_min = _mean_return(env, None, None, rand_key, REFERENCE_EPISODES)
    ref_max = _mean_return(env, algo, snapshots[best], exp_key, REFERENCE_EPISODES)
    if not ref_max > ref_min:
        raise DatasetError(
            f"the expert trained on {env_name} (return {ref_max:.1f}) is no better than uniform "
            f"random actions ({ref_min:.1f}); train longer or pick another preset"
        )
    scale = lambda r: (r - ref_min) / (ref_max - ref_min)
    target = sum(MEDIUM_BAND) / 2
    # candidates: periods 1..best (snapshot index), by the run's own evaluation
    medium = 1 + int(np.argmin([abs(scale(r) - target) for r in returns[:best]]))
    medium_return = _mean_return(env, algo, snapshots[medium], med_key, REFERENCE_EPISODES)

    kept = list(range(medium + 1))  # snapshot p = policy at the start of period p + 1
    states = jax.tree.map(lambda *xs: jnp.stack(xs), *[snapshots[i] for i in kept], snapshots[best])
    info.update(
        {
            "curve": {"env_steps": steps[1:], "eval_return": returns},
            "expert_period": best,
            "medium_period": medium,
            "snapshot_periods": kept,
            "ref_min_score": ref_min,
            "ref_max_score": ref_max,
            "medium_return": medium_return,
            "medium_normalized": 100 * scale(medium_return),
            "medium_in_band": bool(MEDIUM_BAND[0] <= scale(returns[medium - 1]) <= MEDIUM_BAND[1]),
            "train_wall_s": train_wall,
            "wall_s": time.perf_counter() - start,
            "devices": [str(d) for d in jax.devices()],
        }
    )
    os.makedirs(out_dir, exist_ok=True)
    checkpoint.save(os.path.join(out_dir, "policies"), states, overwrite=True)
    jsonio.write(os.path.join(out_dir, "expert.json"), info)
    return info


def load_expert(path: str) -> Expert:
    """Read an expert directory written by :func:`train_expert`."""
    meta_path = os.path.join(path, "expert.json")
    if not os.path.exists(meta_path):
        raise FileNotFoundError(f"no expert at {path} (missing expert.json)")
    try:
        with open(meta_path) as f:
            info = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"{meta_path} is corrupted ({e})") from None
    if info.get("format") != EXPERT_FORMAT:
        raise DatasetError(f"{meta_path} is not a purerl expert ({EXPERT_FORMAT})")
    _, env, algo, _, loop_config = _build(info)
    one = jax.eval_shape(lambda k: algo.init(k, env.spec), jax.random.key(0))
    count = len(info["snapshot_periods"]) + 1
    like = jax.tree.map(lambda s: jax.ShapeDtypeStruct((count, *s.shape), s.dtype), one)
    try:
        states = checkpoint.restore(os.path.join(path, "policies"), like)
    except (checkpoint.CheckpointError, FileNotFoundError, ValueError) as e:
        raise DatasetError(f"cannot read the expert policies in {path}: {e}") from None
    return Expert(info, env, algo, loop_config, states)


# --------------------------------------------------------------------------------------------------
# Datasets and demonstrations.


def _dataset_metadata(expert: Expert, **extra) -> dict:
    info = expert.info
    return {
        "env": info["env"],
        "backend": info["backend"],
        "max_episode_steps": int(expert.env.spec.episode_length),
        "ref_min_score": info["ref_min_score"],
        "ref_max_score": info["ref_max_score"],
        "expert_agent": info["agent"],
        "expert_seed": info["seed"],
        "versions": io.versions(),
        **extra,
    }


def _rollouts(expert, state, key, size, num_envs, deterministic=False, random_until=0):
    steps = math.ceil(size / num_envs)
    algo = None if state is None else expert.algo
    collect = collector(expert.env, algo, num_envs, steps, deterministic)
    traj = collect(state, key, jnp.int32(0), jnp.int32(random_until))
    return _take(to_arrays(traj), size)


def generate_dataset(
    expert: Expert | str,
    level: str,
    size: int | None = None,
    seed: int = 0,
    num_envs: int = 50,
) -> Dataset:
    """Roll out one D4RL level from an expert (a directory or a loaded :class:`Expert`).

    Args:
      level: one of :data:`LEVELS`.
      size: transitions (``medium-expert``: half from each policy). ``medium-replay`` takes what
        the training run collected up to the medium policy, so its size is fixed: pass ``None``.
      seed: PRNG seed of the rollouts.
      num_envs: parallel envs of the rollouts (each env's episodes are contiguous in the output).
    """
    if isinstance(expert, str):
        expert = load_expert(expert)
    if level not in LEVELS:
        raise DatasetError(f"unknown dataset level {level!r}; levels: {', '.join(LEVELS)}")
    if level == "medium-replay":
        if size is not None:
            raise DatasetError(
                "medium-replay holds everything the expert's run collected up to the medium "
                "policy; its size is fixed by that run, so do not pass a size"
            )
    elif size is None or int(size) < 1:
        raise DatasetError(f"level {level!r} needs a positive size, got {size!r}")
    if num_envs < 1:
        raise DatasetError(f"num_envs must be >= 1, got {num_envs}")
    info = expert.info
    key = jax.random.fold_in(jax.random.key(seed), LEVELS.index(level))
    medium_state = expert.state(info["medium_period"])
    policies = {"random": None, "medium": medium_state, "expert": expert.expert_state}
    meta = {"level": level, "seed": int(seed), "collect_num_envs": int(num_envs)}
    if level in policies:
        arrays = _rollouts(expert, policies[level], key, size, num_envs)
    elif level == "medium-expert":
        k1, k2 = jax.random.split(key)
        half = size // 2
        arrays = _join(
            [
                _rollouts(expert, medium_state, k1, half, num_envs),
                _rollouts(expert, expert.expert_state, k2, size - half, num_envs),
            ]
        )
    else:  # medium-replay: period by period, from the snapshot at the start of each period
        cfg = expert.loop_config
        period_steps = cfg.eval_every
        warmup = getattr(cfg, "warmup_steps", 0)
        collect = collector(
            expert.env, expert.algo, cfg.num_envs, period_steps // cfg.num_envs, False
        )
        parts = []
        for p in range(info["medium_period"]):
            traj = collect(
                expert.state(p),
                jax.random.fold_in(key, p),
                jnp.int32(p * period_steps),
                jnp.int32(warmup),
            )
            parts.append(to_arrays(traj))
        arrays = _join(parts)
        meta["periods"] = int(info["medium_period"])
    ds = validate(arrays, _dataset_metadata(expert, **meta, size=len(arrays["rewards"])))
    returns = ds.episode_returns()
    ds.metadata["mean_episode_return"] = float(np.mean(returns))
    ds.metadata["num_episodes"] = int(returns.shape[0])
    return ds


def generate_demos(
    expert: Expert | str,
    episodes: int,
    seed: int = 0,
    subsample: int = 1,
    deterministic: bool = True,
) -> Dataset:
    """``episodes`` whole expert episodes (deterministic policy by default), optionally subsampled
    the GAIL/PWIL way: from each episode keep every ``subsample``-th transition starting at a random
    offset in ``[0, subsample)`` (Ho & Ermon 2016, sec. 6; Dadashi et al. 2021, sec. 4)."""
    if isinstance(expert, str):
        expert = load_expert(expert)
    if episodes < 1:
        raise DatasetError(f"episodes must be >= 1, got {episodes}")
    if subsample < 1:
        raise DatasetError(f"subsample must be >= 1, got {subsample}")
    length = expert.env.spec.episode_length
    key = jax.random.key(seed)
    state = expert.expert_state
    collect = collector(expert.env, expert.algo, episodes, length, deterministic)
    traj = jax.device_get(collect(state, key, jnp.int32(0), jnp.int32(0)))
    rng = np.random.default_rng(seed)
    parts, returns = [], []
    for e in range(episodes):
        col = jax.tree.map(lambda x, e=e: np.asarray(x)[:, e], traj)
        ends = np.nonzero((col.terminated > 0) | (col.truncated > 0))[0]
        stop = int(ends[0]) + 1 if ends.size else length
        keep = np.arange(stop)
        returns.append(float(np.sum(col.reward[:stop])))
        if subsample > 1:
            keep = keep[int(rng.integers(subsample)) :: subsample]
        terminals = col.terminated[keep] > 0
        part = {
            "observations": col.obs[keep],
            "actions": col.action[keep],
            "rewards": col.reward[keep],
            "next_observations": col.next_obs[keep],
            "terminals": terminals,
            "timeouts": (keep == stop - 1) & ~terminals,
            "episode_ids": np.full(keep.shape, e, np.int32),
        }
        parts.append(part)
    meta = _dataset_metadata(
        expert,
        level="demos",
        seed=int(seed),
        episodes=int(episodes),
        subsample_every=int(subsample),
        deterministic=bool(deterministic),
        episode_returns=returns,
        mean_episode_return=float(np.mean(returns)),
        num_episodes=int(episodes),
    )
    return validate(_join(parts), meta)


# --------------------------------------------------------------------------------------------------
# Named datasets: the cached expert of an env, and the generator behind purerl.datasets.load.


def get_expert(
    env: str,
    seed: int = 0,
    backend: str | None = None,
    root: str | None = None,
    regenerate: bool = False,
    check_versions: bool = True,
    progress: bool = True,
) -> Expert:
    """The cached expert of ``env`` (trained with :data:`PRESETS` on first use)."""
    if env not in PRESETS:
        raise DatasetError(
            f"no expert preset for env {env!r}; presets: {', '.join(sorted(PRESETS))}"
        )
    path = registry.expert_dir(env, seed, backend, root)
    if regenerate or not os.path.exists(os.path.join(path, "expert.json")):
        if progress:
            print(f"training the {env} expert (seed {seed}) into {path}")
        train_expert(env, path, seed, backend, progress=progress, overwrite=True)
    expert = load_expert(path)
    preset = PRESETS[env]
    info = expert.info
    problems = []
    if info["agent"] != preset.agent or info["loop_config"]["total_steps"] != preset.steps:
        problems.append(
            f"trained with {info['agent']} for {info['loop_config']['total_steps']} steps, preset "
            f"is {preset.agent} for {preset.steps}"
        )
    if check_versions:
        problems += registry.version_problems(info["versions"])
    if problems:
        raise DatasetError(
            f"cached expert {path} does not match this install: {'; '.join(problems)}; regenerate "
            "it (regenerate=True, purerl generate expert --force) or pass check_versions=False"
        )
    return expert


def generate_named(
    env: str,
    level: str,
    size: int | None,
    *,
    seed: int,
    backend: str | None,
    root: str | None,
    check_versions: bool,
    progress: bool,
) -> registry.Generated:
    """The :class:`purerl.datasets.registry.Generator` of named datasets: the cached expert of
    ``env`` (trained on first use, :func:`get_expert`), then :func:`generate_dataset` of ``level``
    with the rollout seed ``seed``. ``registry.load`` writes the file and its manifest."""
    expert = get_expert(env, seed, backend, root, check_versions=check_versions, progress=progress)
    start = time.perf_counter()
    ds = generate_dataset(expert, level, size, seed)
    wall = time.perf_counter() - start
    path = registry.expert_dir(env, seed, backend, root)
    record = {
        "path": path,
        "expert_json_sha256": io.sha256(os.path.join(path, "expert.json")),
        "agent": expert.info["agent"],
    }
    return registry.Generated(ds, record, wall)


def load_or_generate(
    name_or_path: str | os.PathLike,
    *,
    seed: int | None = None,
    size: int | None = None,
    backend: str | None = None,
    root: str | None = None,
    regenerate: bool | None = None,
    check_versions: bool | None = None,
    progress: bool = True,
    max_episode_steps: int | None = None,
) -> Dataset:
    """:func:`purerl.datasets.load` that makes a missing named dataset: trains the env's expert on
    first use (minutes to an hour, see benchmarks/results/datasets.md), rolls the level out and
    caches it. Files and cached names load exactly as with ``purerl.datasets.load`` (same
    arguments)."""
    return datasets.load(
        name_or_path,
        seed=seed,
        size=size,
        backend=backend,
        root=root,
        regenerate=regenerate,
        check_versions=check_versions,
        progress=progress,
        max_episode_steps=max_episode_steps,
        generator=generate_named,
    )
