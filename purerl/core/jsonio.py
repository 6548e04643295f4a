"""Valid JSON out, always: every JSON file purerl writes goes through :func:`dumps` / :func:`write`.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which are not JSON (``jq``, browsers
and most other languages reject the file). Here non-finite floats become ``null`` and, when the
top level is an object, their paths are listed under :data:`NOTE_KEY` so a reader can tell a
missing value from a NaN; numpy scalars and arrays become plain numbers and lists. The final
``json.dumps`` runs with ``allow_nan=False``, so a non-finite value that slips past (e.g. from a
``default`` hook) raises ``ValueError`` instead of writing an invalid file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

NOTE_KEY = "nonfinite_as_null"  # the JSON paths whose NaN/inf value was written as null


def sanitize(obj: Any, path: str = "", nulls: list[str] | None = None) -> Any:
    """``obj`` with non-finite floats replaced by ``None`` (their paths appended to ``nulls``),
    numpy scalars/arrays as Python numbers/lists and tuples as lists."""
    nulls = [] if nulls is None else nulls
    if isinstance(obj, np.ndarray):
        obj = obj.tolist()
    elif isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float):
        if math.isfinite(obj):
            return obj
        nulls.append(path or "/")
        return None
    if isinstance(obj, Mapping):
        return {k: sanitize(v, f"{path}/{k}", nulls) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [sanitize(v, f"{path}/{i}", nulls) for i, v in enumerate(obj)]
    return obj


def dumps(obj: Any, indent: int | None = 2, default: Callable[[Any], Any] | None = None) -> str:
    """Valid JSON text of ``obj`` (see the module docstring); ``default`` as in ``json.dumps``."""
    nulls: list[str] = []
    clean = sanitize(obj, "", nulls)
    if nulls and isinstance(clean, dict):
        clean = {**clean, NOTE_KEY: nulls}
    return json.dumps(clean, indent=indent, default=default, allow_nan=False)


def write(
    path: str | os.PathLike,
    obj: Any,
    indent: int | None = 2,
    default: Callable[[Any], Any] | None = None,
) -> str:
    """Write ``dumps(obj)`` to ``path`` atomically (a temporary sibling, then ``os.replace``), so
    a reader never sees half a file. Returns the path."""
    path = os.fspath(path)
    text = dumps(obj, indent=indent, default=default)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
