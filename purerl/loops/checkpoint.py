"""Orbax checkpoints of a whole loop ``Carry``: resuming gives the same result as not stopping.

    loop = online.make_loop(algo, env, config)
    carry, metrics = jax.jit(loop.run, static_argnums=1)(loop.init(key), 1)
    checkpoint.save("/tmp/run/ckpt", carry)                          # params, optimizer states,
    carry = checkpoint.restore("/tmp/run/ckpt", like=loop.init(key))  # keys, counters, env, buffer
    carry, more = jax.jit(loop.run, static_argnums=1)(carry, 2)       # == run(init(key), 3)

Works for any pytree, in particular a single run's carry and a multi-seed carry from
``jax.vmap`` / ``run_seeds`` (leaves with a leading ``[seeds]`` axis; sharded arrays are restored onto
the template's shardings).

On disk (one orbax ``CompositeCheckpointHandler`` directory):

* ``arrays``: the leaves, a flat ``{"00000": array, ...}`` dict in ``jax.tree`` order. Leaf names
  carry haiku module paths (``"mlp/~/linear_0"``) that orbax would turn into nested directories, so
  they are kept in the metadata instead. Typed PRNG keys are stored as their ``uint32`` key data.
* ``meta``: JSON with the format tag, whether the replay buffer was saved, each leaf's path
  (``jax.tree_util.keystr``), shape and dtype (the key's dtype and implementation for PRNG keys), and
  the caller's ``metadata`` (the CLI stores the agent and loop configs there).

Overwriting is atomic with respect to kills: :func:`save` writes the new checkpoint beside the old
one (``<path>.new``; orbax commits it only when complete), then swaps the directories by two renames
(old -> ``<path>.previous``, new -> ``<path>``) and deletes the old one. A kill at any point leaves at
least one committed checkpoint; :func:`restore` reads ``<path>``, else a complete ``<path>.new``, else
``<path>.previous``, and the next :func:`save` finishes an interrupted swap first.

The replay buffer is the carry's top-level field named ``buffer`` (``online.Carry.buffer``).
``save(..., include_buffer=False)`` leaves it out (it can be most of the checkpoint's size).
Restoring such a checkpoint into a template that has a buffer **raises** :class:`CheckpointError` by
default, because a resumed online loop does not warm up again and would sample from whatever buffer
it is given. ``restore(..., missing_buffer="template")`` takes the buffer from ``like`` instead: right
for evaluating or exporting the agent, or when the caller has refilled the template's buffer itself.
"""

from __future__ import annotations

import os
import shutil
from typing import Any

import jax
import numpy as np

from purerl.core import jsonio

FORMAT = "purerl.carry/1"
BUFFER_FIELD = "buffer"


class CheckpointError(ValueError):
    """A checkpoint cannot be restored into the given template (structure, shapes, missing parts)."""


def _is_key(x: Any) -> bool:
    return jax.dtypes.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key)


def _in_buffer(path: tuple) -> bool:
    if not path:
        return False
    first = path[0]
    name = getattr(first, "name", getattr(first, "key", None))
    return name == BUFFER_FIELD


def _flatten(tree: Any) -> tuple[list[tuple[str, Any, bool]], Any]:
    """``[(path string, leaf, in_buffer)]`` in ``jax.tree`` order, and the treedef."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(p), x, _in_buffer(p)) for p, x in leaves], treedef


def _describe(x: Any) -> dict:
    """Shape/dtype of a leaf as stored in the metadata (PRNG keys: logical and stored form)."""
    if _is_key(x):
        impl = str(jax.random.key_impl(x)) if isinstance(x, jax.Array) else None
        data_shape = tuple(x.shape) + (2,) if impl is None else jax.random.key_data(x).shape
        return {
            "shape": list(x.shape),
            "dtype": str(x.dtype),
            "key_impl": impl,
            "stored_shape": list(data_shape),
            "stored_dtype": "uint32",
        }
    shape = list(np.shape(x))
    dtype = str(x.dtype) if hasattr(x, "dtype") else str(np.asarray(x).dtype)
    return {"shape": shape, "dtype": dtype}


def _siblings(path: str) -> tuple[str, str]:
    return path + ".new", path + ".previous"


def _committed(path: str) -> str | None:
    """The directory holding the newest committed checkpoint for ``path``: ``path`` itself, or
    after a kill between :func:`save`'s two renames ``<path>.new`` (complete, since it is renamed
    only after orbax committed it) or ``<path>.previous``; ``None`` if there is none."""
    for candidate in (path, *_siblings(path)):
        if os.path.isdir(candidate):
            return candidate
    return None


def _finish_interrupted_swap(path: str) -> None:
    """Complete a swap a kill interrupted: a committed ``<path>.new`` without ``<path>`` becomes
    ``<path>``; a leftover ``<path>.previous`` next to ``<path>`` is deleted."""
    new, previous = _siblings(path)
    if not os.path.isdir(path) and os.path.isdir(new):
        os.rename(new, path)
    if os.path.isdir(path) and os.path.isdir(previous):
        shutil.rmtree(previous)
    if not os.path.isdir(path) and os.path.isdir(previous):
        os.rename(previous, path)


def save(
    path: str | os.PathLike,
    carry: Any,
    include_buffer: bool = True,
    metadata: dict | None = None,
    overwrite: bool = False,
) -> str:
    """Write ``carry`` (any pytree of arrays, e.g. a loop ``Carry``, vmapped or not) to ``path``.

    Args:
      path: checkpoint directory (created; its parent must be writable).
      carry: the pytree to save; typed PRNG keys are allowed.
      include_buffer: also save the top-level ``buffer`` field (the replay buffer).
      metadata: JSON-serializable extras stored alongside (read back with :func:`read_metadata`).
      overwrite: replace an existing checkpoint at ``path`` (otherwise that is an error).

    Returns:
      The absolute checkpoint path.
    """
    import orbax.checkpoint as ocp

    path = os.path.abspath(os.fspath(path))
    _finish_interrupted_swap(path)
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(
            f"checkpoint {path} already exists; pass overwrite=True to replace it"
        )
    flat, treedef = _flatten(carry)
    arrays, leaves_meta = {}, []
    for i, (name, x, in_buffer) in enumerate(flat):
        if in_buffer and not include_buffer:
            continue
        leaves_meta.append({"path": name, "index": f"{i:05d}", **_describe(x)})
        arrays[f"{i:05d}"] = jax.random.key_data(x) if _is_key(x) else x
    meta = {
        "format": FORMAT,
        "include_buffer": bool(include_buffer),
        "has_buffer": any(b for _, _, b in flat),
        "treedef": str(treedef),
        "leaves": leaves_meta,
        "metadata": jsonio.sanitize(metadata or {}),  # valid JSON: NaN/inf as null
    }
    new, previous = _siblings(path)
    if os.path.exists(new):  # left by a save killed before its first rename; <path> is committed
        shutil.rmtree(new)
    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    checkpointer.save(
        new,
        ocp.args.Composite(arrays=ocp.args.StandardSave(arrays), meta=ocp.args.JsonSave(meta)),
    )
    # The swap: at every point at least one committed checkpoint exists (see the module docstring).
    if os.path.exists(path):
        os.rename(path, previous)
    os.rename(new, path)
    if os.path.exists(previous):
        shutil.rmtree(previous)
    return path


def _read_meta(path: str) -> dict:
    import orbax.checkpoint as ocp

    found = _committed(path)
    if found is None:
        raise FileNotFoundError(f"no checkpoint at {path}")
    path = found
    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    try:
        meta = checkpointer.restore(path, ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # orbax raises several types for a directory that is not a checkpoint
        raise CheckpointError(f"{path} is not a purerl checkpoint ({type(e).__name__}: {e})") from e
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a purerl carry checkpoint (format {FORMAT})")
    return meta


def read_metadata(path: str | os.PathLike) -> dict:
    """The checkpoint's description: ``include_buffer``, ``leaves`` (path/shape/dtype) and the
    ``metadata`` dict given to :func:`save`."""
    return _read_meta(os.path.abspath(os.fspath(path)))


def _sharding(x: Any, stored_rank: int):
    """Where to put a restored leaf: the template leaf's sharding, else the default device."""
    default = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    if isinstance(x, jax.Array):
        return jax.random.key_data(x).sharding if _is_key(x) else x.sharding
    sharding = getattr(x, "sharding", None)
    if sharding is None:
        return default
    if isinstance(sharding, jax.sharding.NamedSharding | jax.sharding.SingleDeviceSharding):
        return sharding  # a PartitionSpec shorter than the key data's rank replicates the rest
    return default if stored_rank != len(x.shape) else sharding


def _mismatch(
    path: str, missing: list[str], extra: list[str], different: list[str]
) -> CheckpointError:
    def some(items: list[str]) -> str:
        return "; ".join(items[:3]) + (f"; ... ({len(items) - 3} more)" if len(items) > 3 else "")

    parts = []
    if different:
        parts.append(f"{len(different)} leaves differ in shape/dtype: {some(different)}")
    if missing:
        parts.append(f"{len(missing)} template leaves are not in the checkpoint: {some(missing)}")
    if extra:
        parts.append(f"{len(extra)} checkpoint leaves are not in the template: {some(extra)}")
    return CheckpointError(
        f"checkpoint {path} does not match the template: {'. '.join(parts)}. (Saved from a "
        "different agent, env, network size, loop config or number of seeds?)"
    )


def restore(path: str | os.PathLike, like: Any, missing_buffer: str = "raise") -> Any:
    """Read a checkpoint into the structure of ``like``.

    Args:
      path: a directory written by :func:`save`.
      like: a template with the same structure, shapes and dtypes: e.g. ``loop.init(key)`` (vmapped
        for several seeds), or abstract leaves from ``jax.eval_shape``. Restored arrays take the
        template's shardings.
      missing_buffer: what to do when the checkpoint was saved with ``include_buffer=False`` but
        ``like`` has a buffer: ``"raise"`` (default) raises :class:`CheckpointError`;
        ``"template"`` keeps ``like``'s buffer (which must then be concrete arrays).

    Returns:
      A pytree with ``like``'s structure holding the saved values.

    Raises:
      CheckpointError: structure/shape/dtype mismatch (naming the leaves) or a missing buffer.
    """
    import orbax.checkpoint as ocp

    if missing_buffer not in ("raise", "template"):
        raise ValueError(f"missing_buffer must be 'raise' or 'template', got {missing_buffer!r}")
    path = os.path.abspath(os.fspath(path))
    meta = _read_meta(path)
    path = _committed(path)  # after a kill mid-swap: the committed sibling _read_meta read
    stored = {leaf["path"]: leaf for leaf in meta["leaves"]}
    flat, treedef = _flatten(like)

    skip_buffer = not meta["include_buffer"] and any(b for _, _, b in flat)
    if skip_buffer and missing_buffer == "raise":
        raise CheckpointError(
            f"checkpoint {path} was saved without the replay buffer (include_buffer=False), but the "
            "template has one: a resumed loop would not warm up again and would learn from the "
            "template's buffer. Save with include_buffer=True to resume training, or pass "
            "missing_buffer='template' to keep the template's buffer (e.g. for evaluation)."
        )

    missing, different = [], []
    wanted = [(name, x) for name, x, in_buffer in flat if not (in_buffer and skip_buffer)]
    for name, x in wanted:
        if name not in stored:
            missing.append(name)
            continue
        want, got = _describe(x), stored[name]
        if (want["shape"], want["dtype"]) != (got["shape"], got["dtype"]):
            different.append(
                f"{name} is {tuple(got['shape'])} {got['dtype']} in the checkpoint but "
                f"{tuple(want['shape'])} {want['dtype']} in the template"
            )
    names = {name for name, _, _ in flat}
    extra = [p for p in stored if p not in names]
    if missing or extra or different:
        raise _mismatch(path, missing, extra, different)

    abstract = {}
    for name, x in wanted:
        leaf = stored[name]
        shape = tuple(leaf.get("stored_shape", leaf["shape"]))
        dtype = jax.numpy.dtype(leaf.get("stored_dtype", leaf["dtype"]))  # bfloat16 too
        abstract[leaf["index"]] = jax.ShapeDtypeStruct(
            shape, dtype, sharding=_sharding(x, len(shape))
        )
    checkpointer = ocp.Checkpointer(ocp.CompositeCheckpointHandler())
    arrays = checkpointer.restore(
        path, ocp.args.Composite(arrays=ocp.args.StandardRestore(abstract))
    )["arrays"]

    out = []
    for name, x, in_buffer in flat:
        if in_buffer and skip_buffer:
            if not isinstance(x, jax.Array | np.ndarray):
                raise CheckpointError(
                    f"checkpoint {path} has no replay buffer and the template's buffer leaf {name} "
                    "is abstract; pass a concrete template (e.g. loop.init(key)) to keep its buffer"
                )
            out.append(x)
            continue
        leaf = stored[name]
        value = arrays[leaf["index"]]
        if "key_impl" in leaf:
            impl = leaf["key_impl"] or str(jax.random.key_impl(x))
            value = jax.random.wrap_key_data(value, impl=impl)
        out.append(value)
    return jax.tree_util.tree_unflatten(treedef, out)


__all__ = ["FORMAT", "CheckpointError", "read_metadata", "restore", "save"]
