"""Dataset files: ``.npz`` and D4RL-layout ``.hdf5`` reading and writing, plus Minari import.

Formats (all host-side numpy):

- ``.npz``: one array per field of :meth:`Dataset.arrays` plus a 0-d string array ``metadata``
  holding the metadata dict as JSON. Read with ``allow_pickle=False``: loading a file never runs
  code from it.
- ``.hdf5`` / ``.h5``: the layout of the D4RL files (Fu et al. 2020, the ``.hdf5`` files read by
  ``d4rl.OfflineEnv.get_dataset``): every field as a root-level dataset (``terminals`` and
  ``timeouts`` as bool), metadata as ``metadata/<key>`` scalar datasets. The full metadata dict is
  also kept as JSON in the root attribute ``purerl_metadata``, because D4RL's scalar layout cannot
  hold nested values. Reading ignores ``infos/*`` and every other group, so real D4RL files load as
  they are. HDF5 itself keeps no checksum of the data (a flipped bit loads silently), so purerl's
  files also carry ``purerl_sha256``, a sha256 of the content (:func:`content_sha256`: every field's
  name, dtype, shape and bytes, then the metadata JSON), checked on load; a file without it (D4RL's
  own) loads unchecked. ``.npz`` needs no such attribute: zip stores a CRC-32 per array and numpy's
  reader checks it.

:func:`save` is atomic: the data goes to a temporary file in the target directory, is flushed to
disk, and only then renamed onto the target (``os.replace``), so a crash or an error mid-write never
leaves a half-written file at ``path`` nor damages the file that was there. :func:`load` checks
everything with :func:`purerl.datasets.schema.validate`; a file that cannot be parsed raises
:class:`DatasetError` naming it.

:func:`atomic_write_text` writes small text files (manifests, ``expert.json``) the same way, and
:func:`versions` lists the library versions that shape generated data (stored in manifests).

:func:`from_minari` converts a Minari dataset (Farama Foundation; episodes of ``T + 1``
observations and ``T`` actions/rewards/terminations/truncations) to the flat D4RL fields.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import tempfile
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from purerl.core import jsonio
from purerl.datasets.schema import OPTIONAL, REQUIRED, Dataset, DatasetError, validate

FORMATS = {".npz": "npz", ".hdf5": "hdf5", ".h5": "hdf5"}
METADATA_KEY = "metadata"  # npz: the JSON string; hdf5: the group of D4RL-style scalar entries
HDF5_METADATA_ATTR = "purerl_metadata"
HDF5_SHA256_ATTR = "purerl_sha256"
_CHUNK = 1 << 20


# --------------------------------------------------------------------------------------------------
# Formats and metadata.


def _format(path: str, format: str | None) -> str:
    if format is not None:
        key = format.lower().lstrip(".")
        if key == "h5":
            key = "hdf5"
        if key not in ("npz", "hdf5"):
            raise DatasetError(f"unknown dataset format {format!r} for {path}; use 'npz' or 'hdf5'")
        return key
    ext = os.path.splitext(path)[1].lower()
    if ext not in FORMATS:
        raise DatasetError(
            f"cannot tell the dataset format of {path} from its extension {ext or '(none)'!r}; "
            f"use one of {', '.join(FORMATS)} or pass format='npz' / 'hdf5'"
        )
    return FORMATS[ext]


def _json_default(value: Any) -> Any:
    # numpy scalars and arrays in metadata (e.g. a return computed with np.mean) become plain JSON
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON-serializable")


def _metadata_json(metadata: Mapping[str, Any], path: str) -> str:
    try:
        return jsonio.dumps(dict(metadata), indent=None, default=_json_default)
    except (TypeError, ValueError) as e:
        raise DatasetError(
            f"metadata of the dataset for {path} is not JSON-serializable: {e}"
        ) from e


def _parse_metadata(text: Any) -> dict:
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    metadata = json.loads(str(text))
    if not isinstance(metadata, dict):
        raise ValueError(f"metadata is a JSON {type(metadata).__name__}, expected an object")
    return metadata


# --------------------------------------------------------------------------------------------------
# Saving.


def save(path: str | os.PathLike, dataset: Dataset, format: str | None = None) -> str:
    """Write ``dataset`` to ``path`` atomically and return the path as a string.

    The format comes from the extension (``.npz``, ``.hdf5``, ``.h5``) unless ``format`` is given.
    Parent directories are created. The data is written to a temporary file next to ``path``,
    flushed and fsynced, then renamed onto ``path``; on any error the temporary file is removed and
    the error re-raised, and a file already at ``path`` is left untouched. Metadata is stored as
    JSON, so it comes back as JSON types (tuples as lists, numpy scalars as Python numbers).

    Args:
      path: target file.
      dataset: a validated :class:`Dataset`.
      format: ``"npz"`` or ``"hdf5"`` (``"h5"`` is accepted); ``None`` to use the extension.

    Raises:
      DatasetError: unknown format, or metadata that is not JSON-serializable.
    """
    path = os.fspath(path)
    kind = _format(path, format)
    if kind == "hdf5":
        _h5py()
    meta_json = _metadata_json(dataset.metadata, path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp"
    )
    try:
        if kind == "npz":
            with os.fdopen(fd, "wb") as f:
                fd = -1  # owned (and closed) by f from here on
                _write_npz(f, dataset, meta_json)
                f.flush()
                os.fsync(f.fileno())
        else:
            os.close(fd)
            fd = -1
            _write_hdf5(tmp, dataset, meta_json)
            _fsync_file(tmp)
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    _fsync_dir(directory)
    return path


def _write_npz(f, dataset: Dataset, meta_json: str) -> None:
    # Uncompressed: datasets are mostly float noise that compresses poorly, and loading stays fast.
    np.savez(f, **dataset.arrays(), **{METADATA_KEY: np.asarray(meta_json)})


def _h5py():
    try:
        import h5py
    except ImportError:
        raise DatasetError(
            "reading or writing .hdf5 datasets needs h5py: pip install h5py"
        ) from None
    return h5py


def _write_hdf5(tmp: str, dataset: Dataset, meta_json: str) -> None:
    h5py = _h5py()
    with h5py.File(tmp, "w") as f:
        for name, arr in dataset.arrays().items():
            f.create_dataset(name, data=arr)
        f.attrs[HDF5_METADATA_ATTR] = meta_json
        f.attrs[HDF5_SHA256_ATTR] = content_sha256(_schema_fields(dataset.arrays()), meta_json)
        group = f.create_group(METADATA_KEY)
        for key, value in dataset.metadata.items():
            # D4RL keeps metadata as scalar datasets (metadata/algorithm, ...); nested values and
            # keys that h5py would read as paths only live in the JSON attribute.
            if isinstance(value, str | bool | int | float) and "/" not in key and key != ".":
                group.create_dataset(key, data=value)


def _file_mode(path: str) -> int:
    # mkstemp creates the file 0600; give the result the mode of the file it replaces, or the
    # mode a plain open() would give under the current umask.
    try:
        return os.stat(path).st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: str) -> None:
    # Makes the rename itself durable; impossible on some platforms (Windows), so best effort.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------------------
# Loading.


def load(path: str | os.PathLike, max_episode_steps: int | None = None) -> Dataset:
    """Read a ``.npz`` or ``.hdf5`` dataset file (purerl's or D4RL's) and validate it.

    Args:
      path: the file; the format comes from the extension, else from the file's magic bytes.
      max_episode_steps: overrides the file's ``metadata["max_episode_steps"]`` (the episode length
        beyond which an episode without a terminal or timeout is an error).

    Raises:
      FileNotFoundError: no file at ``path``.
      DatasetError: the file is corrupted or unreadable, or its contents fail
        :func:`purerl.datasets.schema.validate` (the message names the field and index).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f"no dataset file at {path}", path)
    if max_episode_steps is not None and int(max_episode_steps) < 1:
        raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
    kind = _sniff(path)
    if kind == "hdf5":
        _h5py()  # a missing h5py is not a corrupted file
    reader: Callable[[str], tuple[dict, dict]] = _read_npz if kind == "npz" else _read_hdf5
    try:
        arrays, metadata = reader(path)
    except (PermissionError, IsADirectoryError):
        raise
    except DatasetError:
        raise
    except Exception as e:  # any failure to parse means the file is damaged or not a dataset
        raise DatasetError(
            f"dataset file {path} is corrupted or unreadable as {kind} ({type(e).__name__}: {e})"
        ) from e
    if max_episode_steps is not None:
        metadata["max_episode_steps"] = int(max_episode_steps)
    return validate(arrays, metadata, source=path)


def _sniff(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in FORMATS:
        return FORMATS[ext]
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK"):
        return "npz"
    if head == b"\x89HDF\r\n\x1a\n":
        return "hdf5"
    raise DatasetError(
        f"cannot tell the dataset format of {path}: extension {ext or '(none)'!r} is not one of "
        f"{', '.join(FORMATS)} and the file is neither a zip (npz) nor an HDF5 file"
    )


def _read_npz(path: str) -> tuple[dict, dict]:
    arrays: dict[str, np.ndarray] = {}
    with np.load(path, allow_pickle=False) as data:
        for name in (*REQUIRED, *OPTIONAL):
            if name in data.files:
                arrays[name] = data[name]
        metadata = _parse_metadata(data[METADATA_KEY][()]) if METADATA_KEY in data else {}
    return arrays, metadata


def _read_hdf5(path: str) -> tuple[dict, dict]:
    h5py = _h5py()
    arrays: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as f:
        # Only the schema's fields are read: D4RL files also hold infos/* (qpos, qvel, ...) and
        # metadata/policy/* weights that a Dataset does not keep.
        for name in (*REQUIRED, *OPTIONAL):
            if name not in f:
                continue
            obj = f[name]
            if not isinstance(obj, h5py.Dataset):
                raise DatasetError(
                    f"field {name!r} in {path} is an HDF5 group, not an array (dict observations "
                    "are not supported; flatten them first)"
                )
            arrays[name] = obj[()]
        if HDF5_METADATA_ATTR in f.attrs:
            meta_json = f.attrs[HDF5_METADATA_ATTR]
            if HDF5_SHA256_ATTR in f.attrs:
                _verify_sha256(path, arrays, meta_json, f.attrs[HDF5_SHA256_ATTR])
            metadata = _parse_metadata(meta_json)
        else:
            metadata = {}
            group = f.get(METADATA_KEY)
            if isinstance(group, h5py.Group):
                for key, obj in group.items():
                    if isinstance(obj, h5py.Dataset) and obj.shape == ():
                        metadata[key] = _scalar(obj[()])
    return arrays, metadata


def _schema_fields(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: arrays[name] for name in (*REQUIRED, *OPTIONAL) if name in arrays}


def content_sha256(arrays: Mapping[str, np.ndarray], meta_json: str | bytes) -> str:
    """sha256 hex digest of a dataset's content, as stored in purerl's HDF5 files.

    Hashed in order: for each field of ``arrays`` in the schema's order (required, then optional
    fields), its name, dtype (``dtype.str``, e.g. ``<f4``), shape and C-order bytes; then the
    metadata JSON text (UTF-8). The same data written twice gives the same digest.
    """
    digest = hashlib.sha256()
    for name in (*REQUIRED, *OPTIONAL):
        if name not in arrays:
            continue
        arr = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{arr.dtype.str}|{arr.shape}|".encode())
        digest.update(memoryview(arr.reshape(-1).view(np.uint8)))
    if isinstance(meta_json, str):
        meta_json = meta_json.encode("utf-8")
    digest.update(meta_json)
    return digest.hexdigest()


def _verify_sha256(
    path: str, arrays: Mapping[str, np.ndarray], meta_json: Any, stored: Any
) -> None:
    stored = stored.decode("ascii", errors="replace") if isinstance(stored, bytes) else str(stored)
    actual = content_sha256(arrays, meta_json)
    if actual != stored:
        raise DatasetError(
            f"dataset file {path} is corrupted: the sha256 of its content is {actual[:16]}..., the "
            f"file's {HDF5_SHA256_ATTR} attribute says {stored[:16]}... (a changed byte in the data "
            "or the metadata); regenerate it or restore it from a copy"
        )


def _scalar(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, np.generic):
        return value.item()
    return value


# --------------------------------------------------------------------------------------------------
# Minari.


def from_minari(source: Any, max_episode_steps: int | None = None) -> Dataset:
    """Convert a Minari dataset to a :class:`Dataset`.

    Each Minari episode holds ``T + 1`` observations and ``T`` actions, rewards, terminations and
    truncations; the flat fields are ``observations = obs[:-1]``, ``next_observations = obs[1:]``,
    ``terminals = terminations``, ``timeouts = truncations``, with episodes renumbered ``0, 1, ...``
    in iteration order. An episode whose last step has neither flag (collection stopped) gets a
    timeout there, as the schema does for a final episode cut by the end of the data. Episodes
    with no steps are skipped.

    Args:
      source: a Minari dataset id (``str``, loaded with ``minari.load_dataset``) or a loaded
        dataset object (anything with ``iterate_episodes()``; ``spec`` is read when present).
      max_episode_steps: overrides the environment spec's ``max_episode_steps``.

    Raises:
      DatasetError: minari is not installed (for a dataset id), dict/tuple observations or
        actions, inconsistent episode lengths, or contents that fail validation.
    """
    dataset_id = None
    if isinstance(source, str):
        dataset_id = source
        try:
            import minari
        except ImportError:
            raise DatasetError(
                f"from_minari({dataset_id!r}) needs the minari package: pip install purerl[minari]"
            ) from None
        source = minari.load_dataset(dataset_id)

    spec = getattr(source, "spec", None)
    dataset_id = dataset_id or getattr(spec, "dataset_id", None) or getattr(source, "id", None)
    name = f"minari dataset {dataset_id!r}" if dataset_id else "minari dataset"

    columns: dict[str, list[np.ndarray]] = {
        "observations": [],
        "actions": [],
        "rewards": [],
        "next_observations": [],
        "terminals": [],
        "timeouts": [],
        "episode_ids": [],
    }
    count = 0
    for episode in source.iterate_episodes():
        ep_id = getattr(episode, "id", count)
        for field in ("observations", "actions"):
            if isinstance(getattr(episode, field), dict | tuple):
                kind = type(getattr(episode, field)).__name__
                raise DatasetError(
                    f"{name}: episode {ep_id} has {kind} {field}; dict/tuple {field} are not "
                    "supported, flatten them first (e.g. gymnasium.spaces.flatten)"
                )
        obs = np.asarray(episode.observations)
        rewards = np.asarray(episode.rewards).reshape(-1)
        steps = rewards.shape[0]
        if steps == 0:
            continue
        if obs.ndim == 0 or obs.shape[0] != steps + 1:
            raise DatasetError(
                f"{name}: episode {ep_id} has {obs.shape[0] if obs.ndim else 0} observations for "
                f"{steps} rewards; Minari episodes hold T + 1 observations for T steps"
            )
        terminals = np.asarray(episode.terminations).astype(bool).reshape(-1)
        timeouts = np.asarray(episode.truncations).astype(bool).reshape(-1)
        if terminals.shape != (steps,) or timeouts.shape != (steps,):
            raise DatasetError(
                f"{name}: episode {ep_id} has {terminals.shape[0]} terminations and "
                f"{timeouts.shape[0]} truncations for {steps} rewards"
            )
        if not (terminals[-1] or timeouts[-1]):
            timeouts = timeouts.copy()
            timeouts[-1] = True  # the recording stopped here: cut, not terminal
        columns["observations"].append(obs[:-1])
        columns["next_observations"].append(obs[1:])
        columns["actions"].append(np.asarray(episode.actions))
        columns["rewards"].append(rewards)
        columns["terminals"].append(terminals)
        columns["timeouts"].append(timeouts)
        columns["episode_ids"].append(np.full(steps, count, np.int32))
        count += 1
    if count == 0:
        raise DatasetError(f"{name} has no episodes with at least one step")
    try:
        arrays = {key: np.concatenate(parts) for key, parts in columns.items()}
    except ValueError as e:
        raise DatasetError(f"{name}: episodes have different shapes ({e})") from None

    metadata: dict[str, Any] = {"source": "minari"}
    if dataset_id:
        metadata["dataset_id"] = str(dataset_id)
    if max_episode_steps is None:
        max_episode_steps = getattr(getattr(spec, "env_spec", None), "max_episode_steps", None)
    if max_episode_steps is not None:
        metadata["max_episode_steps"] = int(max_episode_steps)
    for key in ("ref_min_score", "ref_max_score"):
        value = getattr(spec, key, None)
        if isinstance(value, int | float | np.number) and np.isfinite(value):
            metadata[key] = float(value)
    return validate(arrays, metadata, source=name)


# --------------------------------------------------------------------------------------------------
# Checksums.


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 digest of the file at ``path``, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------
# Small files and provenance (used by the registry's manifests and by purerl.experts).


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and ``os.replace`` (never half-written)."""
    path = os.fspath(path)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def versions() -> dict[str, str]:
    """Versions that change generated data: python, purerl, jax, jaxlib, brax, mujoco, numpy."""
    from importlib import metadata

    import purerl

    out = {"purerl": purerl.__version__, "python": platform.python_version()}
    for dist in ("jax", "jaxlib", "brax", "mujoco", "numpy"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out
