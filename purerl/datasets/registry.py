"""Named datasets (``halfcheetah-medium``, ...): the names, the cache and its sha256 manifests.

    ds = purerl.datasets.load("inverted_double_pendulum-medium")          # reads the cache
    ds = purerl.experts.load_or_generate("inverted_double_pendulum-medium")  # generates on a miss

A name is ``<env>-<level>``: ``env`` has an expert recipe in :data:`PRESETS`, ``level`` is one of
:data:`LEVELS`. This module only reads and writes the cache. Making a missing dataset needs a trained
expert, and training one needs ``purerl.loops``, which sit above ``purerl.datasets`` (the offline
loop reads :mod:`purerl.datasets.schema`). So :func:`load` never imports what generates: on a cache
miss it calls the ``generator`` passed to it (:class:`Generator`; ``purerl.experts.generate_named``
trains the expert on first use and rolls the level out), then writes the file and its manifest.
``purerl.experts.load_or_generate`` and the CLI pass that generator; without one a miss raises
:class:`DatasetError` saying how to generate the dataset.

Cache layout (root: ``$PURERL_CACHE``, else ``$XDG_CACHE_HOME/purerl``, else ``~/.cache/purerl``)::

    experts/<env>-<backend>-seed<k>/expert.json, policies/
    datasets/<env>-<level>-<backend>-seed<k>-n<size>.npz
    datasets/<env>-<level>-<backend>-seed<k>-n<size>.manifest.json

The manifest records env, backend, level, size, seed, the library versions that shape the data,
the expert it came from (the sha256 of its ``expert.json``), the returns and the data file's sha256.
Loading checks all of it: a manifest that does not match the request or the installed versions, a
missing manifest or a file whose hash differs (corrupted, edited, half-copied) raises
:class:`DatasetError` saying what differs and how to regenerate (``regenerate=True``,
``purerl generate dataset --force``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Any, NamedTuple, Protocol

from purerl import envs
from purerl.core import compilation, jsonio
from purerl.datasets import io
from purerl.datasets.schema import Dataset, DatasetError

LEVELS = ("random", "medium", "medium-replay", "medium-expert", "expert")


@dataclasses.dataclass(frozen=True)
class ExpertPreset:
    """How the expert behind an env's named datasets is trained: agent name, env steps, agent and
    loop overrides (plain data; ``purerl.experts.train_expert`` runs it)."""

    agent: str
    steps: int
    agent_set: tuple[tuple[str, Any], ...] = ()
    loop_set: tuple[tuple[str, Any], ...] = ()
    note: str = ""


_PPO_LOOP = (("num_envs", 32), ("unroll_length", 64))
_SAC_LOOP = (("num_envs", 16), ("utd", 0.5), ("warmup_steps", 10_000))
# SAC's default observation normalization came later (issue 13); the experts behind the named
# datasets keep the configuration they were measured with (benchmarks/results/experts.md).
_SAC_AGENT = (("normalize_observations", False),)

# Measured in benchmarks/results/experts.md (one seed, 2 CPU cores).
PRESETS: dict[str, ExpertPreset] = {
    "point_mass": ExpertPreset(
        "ppo", 65_536, loop_set=(*_PPO_LOOP, ("eval_every", 4096)), note="toy; seconds"
    ),
    "inverted_pendulum": ExpertPreset(
        "ppo", 524_288, loop_set=(*_PPO_LOOP, ("eval_every", 16_384))
    ),
    "inverted_double_pendulum": ExpertPreset(
        "ppo", 1_048_576, loop_set=(*_PPO_LOOP, ("eval_every", 32_768))
    ),
    "reacher": ExpertPreset(
        "sac",
        100_000,
        agent_set=_SAC_AGENT,
        loop_set=(*_SAC_LOOP, ("buffer_size", 100_000), ("eval_every", 4000)),
    ),
    "halfcheetah": ExpertPreset(
        "sac",
        200_000,
        agent_set=_SAC_AGENT,
        loop_set=(*_SAC_LOOP, ("buffer_size", 200_000), ("eval_every", 8000)),
    ),
}

DEFAULT_SIZES = {
    "random": 100_000,
    "medium": 200_000,
    "medium-replay": None,  # fixed by the expert's training run
    "medium-expert": 400_000,
    "expert": 200_000,
}
MANIFEST_FORMAT = "purerl.dataset-manifest/1"
# Versions whose change can change the data (python and numpy only print and store it).
CHECKED_VERSIONS = ("purerl", "jax", "jaxlib", "brax", "mujoco")


def cache_dir() -> str:
    """The cache root (``$PURERL_CACHE``, ``$XDG_CACHE_HOME/purerl`` or ``~/.cache/purerl``)."""
    return compilation.cache_dir()


def parse_name(name: str) -> tuple[str, str]:
    """``"halfcheetah-medium-replay"`` -> ``("halfcheetah", "medium-replay")``."""
    for level in sorted(LEVELS, key=len, reverse=True):
        if name.endswith("-" + level) and len(name) > len(level) + 1:
            env = name[: -len(level) - 1]
            if env not in PRESETS:
                raise DatasetError(
                    f"unknown dataset {name!r}: no expert preset for env {env!r}; envs: "
                    f"{', '.join(sorted(PRESETS))}"
                )
            return env, level
    raise DatasetError(
        f"unknown dataset {name!r}; names are <env>-<level> with level one of "
        f"{', '.join(LEVELS)} (e.g. halfcheetah-medium)"
    )


def list_datasets() -> list[str]:
    """Every registered name: each env with an expert preset times each level."""
    return [f"{env}-{level}" for env in PRESETS for level in LEVELS]


def default_backend(env: str) -> str | None:
    """The brax backend an env's named datasets use by default (``None`` for the pure-JAX envs)."""
    return envs.BRAX_DEFAULT_BACKEND.get(env)


def _tag(env: str, backend: str | None, seed: int) -> str:
    return f"{env}-{backend or 'jax'}-seed{seed}"


def expert_dir(env: str, seed: int = 0, backend: str | None = None, root: str | None = None) -> str:
    """Cache directory of the expert behind ``env``'s named datasets (``experts/<env>-...``)."""
    backend = backend or default_backend(env)
    return os.path.join(root or cache_dir(), "experts", _tag(env, backend, seed))


def dataset_path(
    name: str,
    seed: int = 0,
    backend: str | None = None,
    root: str | None = None,
    size: int | None = None,
) -> str:
    """Cache file of a named dataset; ``size`` (default :data:`DEFAULT_SIZES`) is in the name, so
    different sizes coexist."""
    env, level = parse_name(name)
    backend = backend or default_backend(env)
    tag = _tag(env, backend, seed).replace(f"{env}-", f"{env}-{level}-", 1)
    size = DEFAULT_SIZES[level] if size is None else size
    if size is not None:
        tag += f"-n{size}"
    return os.path.join(root or cache_dir(), "datasets", f"{tag}.npz")


def manifest_path(data_path: str) -> str:
    root, _ = os.path.splitext(data_path)
    return root + ".manifest.json"


def version_problems(stored: dict) -> list[str]:
    """``"jax 0.4.1 (installed: 0.4.2)"`` for each of :data:`CHECKED_VERSIONS` that differs between
    ``stored`` (a manifest's or an expert's ``versions``) and this install; empty when all match."""
    now = io.versions()
    return [
        f"{k} {stored.get(k)} (installed: {now.get(k)})"
        for k in CHECKED_VERSIONS
        if stored.get(k) != now.get(k)
    ]


class Generated(NamedTuple):
    """What a :class:`Generator` returns: the dataset, the manifest's ``expert`` record
    (``{"path", "expert_json_sha256", "agent"}``) and the seconds the rollouts took (expert training
    excluded; the manifest's ``generate_wall_s`` adds the time to write the file)."""

    dataset: Dataset
    expert: dict
    wall_s: float


class Generator(Protocol):
    """Makes a missing named dataset (``purerl.experts.generate_named`` is the one purerl ships).

    ``size`` is ``None`` for ``medium-replay`` (its size is fixed by the expert's run); ``root`` is
    the cache root (``None``: :func:`cache_dir`), where the expert is looked up or trained.
    """

    def __call__(
        self,
        env: str,
        level: str,
        size: int | None,
        *,
        seed: int,
        backend: str | None,
        root: str | None,
        check_versions: bool,
        progress: bool,
    ) -> Generated: ...


def load(
    name: str,
    seed: int = 0,
    size: int | None = None,
    backend: str | None = None,
    root: str | None = None,
    regenerate: bool = False,
    check_versions: bool = True,
    progress: bool = True,
    generator: Generator | None = None,
) -> Dataset:
    """Load the named dataset from the cache; on a miss (or ``regenerate``) make it with
    ``generator`` and cache it with its manifest.

    Args:
      name: ``<env>-<level>`` (see :func:`list_datasets`).
      seed: seed of the expert's training run and of the rollouts.
      size: transitions; default :data:`DEFAULT_SIZES` (``medium-replay`` has a fixed size).
      backend: brax backend (default: the env's default).
      root: cache root (default :func:`cache_dir`).
      regenerate: generate again even if cached (the expert is reused when it is valid).
      check_versions: treat a library version change as a manifest mismatch.
      progress: print what is being generated and show training progress.
      generator: makes a missing dataset (``purerl.experts.generate_named``); ``None``: a miss
        raises :class:`DatasetError` naming the commands that generate it.
    """
    env, level = parse_name(name)
    backend = backend or default_backend(env)
    if size is None:
        size = DEFAULT_SIZES[level]
    elif level == "medium-replay":
        raise DatasetError(
            "medium-replay holds everything the expert's run collected up to the medium policy; "
            "its size is fixed by that run, so do not pass a size"
        )
    path = dataset_path(name, seed, backend, root, size)
    mpath = manifest_path(path)
    want = {"name": name, "env": env, "backend": backend, "level": level, "seed": int(seed)}
    if size is not None:
        want["size"] = int(size)
    if not regenerate and os.path.exists(path):
        return _load_checked(path, mpath, want, check_versions)
    if generator is None:
        why = "regenerating it" if regenerate else f"{name} is not in the cache ({path}); making it"
        raise DatasetError(
            f"{why} needs a trained expert, which purerl.datasets does not train: use "
            f"purerl.experts.load_or_generate({name!r}, ...) or `purerl generate dataset --env "
            f"{env} --level {level}` (trains the expert on first use)"
        )

    if progress:
        print(f"generating {name} (seed {seed}, size {size or 'fixed'}) into {path}")
    made = generator(
        env,
        level,
        size,
        seed=int(seed),
        backend=backend,
        root=root,
        check_versions=check_versions,
        progress=progress,
    )
    ds = made.dataset
    start = time.perf_counter()
    io.save(path, ds)
    manifest = {
        "format": MANIFEST_FORMAT,
        **want,
        "size": len(ds),
        "file": os.path.basename(path),
        "sha256": io.sha256(path),
        "versions": io.versions(),
        "expert": made.expert,
        "ref_min_score": ds.metadata["ref_min_score"],
        "ref_max_score": ds.metadata["ref_max_score"],
        "mean_episode_return": ds.metadata["mean_episode_return"],
        "num_episodes": ds.metadata["num_episodes"],
        "generate_wall_s": made.wall_s + time.perf_counter() - start,  # rollouts + writing
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    jsonio.write(mpath, manifest)
    return ds


def _load_checked(path: str, mpath: str, want: dict, check_versions: bool) -> Dataset:
    fix = "regenerate it (regenerate=True, or purerl generate dataset ... --force)"
    if not os.path.exists(mpath):
        raise DatasetError(f"cached dataset {path} has no manifest ({mpath}); {fix}")
    try:
        with open(mpath) as f:
            manifest = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"manifest {mpath} is corrupted ({e}); {fix}") from None
    problems = [
        f"{k} is {manifest.get(k)!r}, requested {v!r}"
        for k, v in want.items()
        if manifest.get(k) != v
    ]
    if check_versions:
        problems += version_problems(manifest.get("versions", {}))
    if problems:
        raise DatasetError(f"manifest mismatch for {path}: {'; '.join(problems)}; {fix}")
    digest = io.sha256(path)
    if digest != manifest.get("sha256"):
        raise DatasetError(
            f"cached dataset {path} is corrupted: sha256 {digest[:12]}... differs from the "
            f"manifest's {str(manifest.get('sha256'))[:12]}...; {fix}"
        )
    return io.load(path)
