"""Offline datasets and demonstrations: D4RL-compatible schema, file I/O, local generation.

    ds = purerl.datasets.load("halfcheetah-medium")      # named: generated on first use, cached
    ds = purerl.datasets.load("path/to/file.hdf5")       # a file (ours, or a real D4RL .hdf5)
    purerl.datasets.save("out.npz", ds)
    purerl.datasets.normalized_score(returns, ds.metadata["ref_min_score"], ds.metadata["ref_max_score"])

See docs/datasets.md.
"""

from __future__ import annotations

import os

from purerl.datasets import generate, io, registry, schema
from purerl.datasets.generate import (
    LEVELS,
    PRESETS,
    ExpertPreset,
    generate_dataset,
    generate_demos,
    load_expert,
    train_expert,
)
from purerl.datasets.io import from_minari, save, sha256
from purerl.datasets.registry import cache_dir, list_datasets
from purerl.datasets.relabel import relabel
from purerl.datasets.schema import (
    Dataset,
    DatasetError,
    concatenate,
    normalized_score,
    validate,
)

_FILE_SUFFIXES = (".npz", ".hdf5", ".h5")


def load(name_or_path: str | os.PathLike, **kwargs) -> Dataset:
    """A dataset by registry name (``"halfcheetah-medium"``, see :func:`registry.load` for the
    keyword arguments) or from a file (``.npz`` / ``.hdf5``, see :func:`io.load`)."""
    text = os.fspath(name_or_path)
    if text.endswith(_FILE_SUFFIXES) or os.path.sep in text or os.path.exists(text):
        return io.load(text, **kwargs)
    return registry.load(text, **kwargs)


__all__ = [
    "LEVELS",
    "PRESETS",
    "Dataset",
    "DatasetError",
    "ExpertPreset",
    "cache_dir",
    "concatenate",
    "from_minari",
    "generate",
    "generate_dataset",
    "generate_demos",
    "io",
    "list_datasets",
    "load",
    "load_expert",
    "normalized_score",
    "registry",
    "relabel",
    "save",
    "schema",
    "sha256",
    "train_expert",
    "validate",
]
