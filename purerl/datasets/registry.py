"""Named datasets (``halfcheetah-medium``, ...) generated on first use and cached with a manifest.

    ds = purerl.datasets.load("inverted_double_pendulum-medium")   # trains the expert the first
    ds = purerl.datasets.load("inverted_double_pendulum-medium")   # time, then reads the cache

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

import json
import os
import time

from purerl.datasets import generate, io
from purerl.datasets.schema import Dataset, DatasetError

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
    if os.environ.get("PURERL_CACHE"):
        return os.environ["PURERL_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "purerl")


def parse_name(name: str) -> tuple[str, str]:
    """``"halfcheetah-medium-replay"`` -> ``("halfcheetah", "medium-replay")``."""
    for level in sorted(generate.LEVELS, key=len, reverse=True):
        if name.endswith("-" + level) and len(name) > len(level) + 1:
            env = name[: -len(level) - 1]
            if env not in generate.PRESETS:
                raise DatasetError(
                    f"unknown dataset {name!r}: no expert preset for env {env!r}; envs: "
                    f"{', '.join(sorted(generate.PRESETS))}"
                )
            return env, level
    raise DatasetError(
        f"unknown dataset {name!r}; names are <env>-<level> with level one of "
        f"{', '.join(generate.LEVELS)} (e.g. halfcheetah-medium)"
    )


def list_datasets() -> list[str]:
    """Every registered name: each env with an expert preset times each level."""
    return [f"{env}-{level}" for env in generate.PRESETS for level in generate.LEVELS]


def _tag(env: str, backend: str | None, seed: int) -> str:
    return f"{env}-{backend or 'jax'}-seed{seed}"


def expert_dir(env: str, seed: int = 0, backend: str | None = None, root: str | None = None) -> str:
    backend = backend or generate.default_backend(env)
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
    backend = backend or generate.default_backend(env)
    tag = _tag(env, backend, seed).replace(f"{env}-", f"{env}-{level}-", 1)
    size = DEFAULT_SIZES[level] if size is None else size
    if size is not None:
        tag += f"-n{size}"
    return os.path.join(root or cache_dir(), "datasets", f"{tag}.npz")


def manifest_path(data_path: str) -> str:
    root, _ = os.path.splitext(data_path)
    return root + ".manifest.json"


def _version_problems(stored: dict) -> list[str]:
    now = generate.versions()
    return [
        f"{k} {stored.get(k)} (installed: {now.get(k)})"
        for k in CHECKED_VERSIONS
        if stored.get(k) != now.get(k)
    ]


def get_expert(
    env: str,
    seed: int = 0,
    backend: str | None = None,
    root: str | None = None,
    regenerate: bool = False,
    check_versions: bool = True,
    progress: bool = True,
) -> generate.Expert:
    """The cached expert of ``env`` (trained with :data:`generate.PRESETS` on first use)."""
    if env not in generate.PRESETS:
        raise DatasetError(
            f"no expert preset for env {env!r}; presets: {', '.join(sorted(generate.PRESETS))}"
        )
    path = expert_dir(env, seed, backend, root)
    if regenerate or not os.path.exists(os.path.join(path, "expert.json")):
        if progress:
            print(f"training the {env} expert (seed {seed}) into {path}")
        generate.train_expert(env, path, seed, backend, progress=progress, overwrite=True)
    expert = generate.load_expert(path)
    preset = generate.PRESETS[env]
    info = expert.info
    problems = []
    if info["agent"] != preset.agent or info["loop_config"]["total_steps"] != preset.steps:
        problems.append(
            f"trained with {info['agent']} for {info['loop_config']['total_steps']} steps, preset "
            f"is {preset.agent} for {preset.steps}"
        )
    if check_versions:
        problems += _version_problems(info["versions"])
    if problems:
        raise DatasetError(
            f"cached expert {path} does not match this install: {'; '.join(problems)}; regenerate "
            "it (regenerate=True, purerl generate expert --force) or pass check_versions=False"
        )
    return expert


def _expert_hash(expert_path: str) -> str:
    return io.sha256(os.path.join(expert_path, "expert.json"))


def load(
    name: str,
    seed: int = 0,
    size: int | None = None,
    backend: str | None = None,
    root: str | None = None,
    regenerate: bool = False,
    check_versions: bool = True,
    progress: bool = True,
) -> Dataset:
    """Load the named dataset from the cache, generating it (and its expert) on first use.

    Args:
      name: ``<env>-<level>`` (see :func:`list_datasets`).
      seed: seed of the expert's training run and of the rollouts.
      size: transitions; default :data:`DEFAULT_SIZES` (``medium-replay`` has a fixed size).
      backend: brax backend (default: the env's default).
      root: cache root (default :func:`cache_dir`).
      regenerate: generate again even if cached (the expert is reused when it is valid).
      check_versions: treat a library version change as a manifest mismatch.
      progress: print what is being generated and show training progress.
    """
    env, level = parse_name(name)
    backend = backend or generate.default_backend(env)
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

    expert = get_expert(env, seed, backend, root, check_versions=check_versions, progress=progress)
    if progress:
        print(f"generating {name} (seed {seed}, size {size or 'fixed'}) into {path}")
    start = time.perf_counter()
    ds = generate.generate_dataset(expert, level, size, seed)
    io.save(path, ds)
    manifest = {
        "format": MANIFEST_FORMAT,
        **want,
        "size": len(ds),
        "file": os.path.basename(path),
        "sha256": io.sha256(path),
        "versions": generate.versions(),
        "expert": {
            "path": expert_dir(env, seed, backend, root),
            "expert_json_sha256": _expert_hash(expert_dir(env, seed, backend, root)),
            "agent": expert.info["agent"],
        },
        "ref_min_score": ds.metadata["ref_min_score"],
        "ref_max_score": ds.metadata["ref_max_score"],
        "mean_episode_return": ds.metadata["mean_episode_return"],
        "num_episodes": ds.metadata["num_episodes"],
        "generate_wall_s": time.perf_counter() - start,
        "created": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    generate.atomic_write_text(mpath, json.dumps(manifest, indent=2))
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
        problems += _version_problems(manifest.get("versions", {}))
    if problems:
        raise DatasetError(f"manifest mismatch for {path}: {'; '.join(problems)}; {fix}")
    digest = io.sha256(path)
    if digest != manifest.get("sha256"):
        raise DatasetError(
            f"cached dataset {path} is corrupted: sha256 {digest[:12]}... differs from the "
            f"manifest's {str(manifest.get('sha256'))[:12]}...; {fix}"
        )
    return io.load(path)
