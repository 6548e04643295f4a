"""Many devices, many hosts: one program over every device of every process, the seed (and
hyperparameter) axis sharded over all of them with ``jax.sharding``.

On one host, :func:`~purerl.loops.common.run_seeds` and :func:`~purerl.loops.common.run_grid`
already shard over the local devices. On a TPU pod slice or several GPU hosts, JAX runs one
process per host (multi-controller SPMD): every process runs the same script, the devices of all
processes form one global mesh, and each process holds only the shards on its own devices::

    import jax
    from purerl.loops import distributed, run_seeds, writers

    distributed.initialize()  # before any other JAX call; TPU / Slurm / Open MPI fill in the rest
    states, metrics = run_seeds(train, jax.random.key(0), num_seeds=64)  # same key everywhere
    seeds, mine = distributed.local_rows(metrics)  # this process's seeds, host numpy
    writers.write_csv(f"out/metrics.process{jax.process_index()}.csv", mine, seeds=seeds)

With several processes ``run_seeds`` returns its metrics as global ``jax.Array`` s sharded on the
seed axis (no process holds the others' rows); :func:`local_rows` takes this process's rows and
:func:`gather` brings every row to every process (a collective). With one process both work on
the host arrays ``run_seeds`` returns, so a script written for many hosts runs unchanged on one.

This module imports nothing from the rest of purerl.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    num_cpu_devices: int | None = None,
    cpu_collectives: str | None = "gloo",
    timeout_s: int = 300,
) -> None:
    """Join this process to a multi-process JAX run (``jax.distributed.initialize``); call it first.

    Every process calls it with the same ``coordinator_address`` (``host:port`` of process 0, which
    runs the coordinator) and ``num_processes``, and its own ``process_id``. On Cloud TPU, Slurm and
    Open MPI leave all three out: JAX reads them from the environment. Afterwards ``jax.devices()``
    lists the devices of every process, ``jax.local_devices()`` this process's own.

    Args:
      coordinator_address: ``"10.0.0.1:1234"``; ``None``: ``$JAX_COORDINATOR_ADDRESS`` or detected.
      num_processes: number of processes in the run; ``None``: detected.
      process_id: this process's index in ``[0, num_processes)``; ``None``: detected.
      local_device_ids: the accelerators this process drives (e.g. one process per GPU); ``None``:
        all visible ones.
      num_cpu_devices: CPU only: split this process's CPU into that many devices
        (``jax_num_cpu_devices``; what tests and laptops use to stand in for accelerators).
      cpu_collectives: CPU only: the cross-process collectives (``jax_cpu_collectives_implementation``:
        ``"gloo"`` over TCP, or ``"mpi"``). Gloo is JAX 0.10's default; it is set explicitly because
        older JAX had none, and a CPU run across processes then fails at its first collective.
      timeout_s: how long to wait for every process to join before raising.
    """
    if num_cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", num_cpu_devices)
    if cpu_collectives is not None:
        jax.config.update("jax_cpu_collectives_implementation", cpu_collectives)
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        local_device_ids=local_device_ids,
        initialization_timeout=timeout_s,
    )


def is_multiprocess() -> bool:
    """True when this run spans several JAX processes (after :func:`initialize`)."""
    return jax.process_count() > 1


def put_global(x: Any, sharding: jax.sharding.Sharding) -> jax.Array:
    """``x`` (the same full value on every process) as one global array laid out by ``sharding``.

    Each process transfers only the slices its own devices hold (``jax.make_array_from_callback``);
    ``jax.device_put`` refuses a sharding over other processes' devices. PRNG key arrays work too.
    """
    if not isinstance(x, jax.Array):
        x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` copied whole onto every device of ``mesh`` (a global array with
    ``PartitionSpec()``); other leaves unchanged. For inputs every seed shares (e.g. a dataset)."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def one(x):
        return put_global(x, sharding) if isinstance(x, jax.Array | np.ndarray) else x

    return jax.tree.map(one, tree)


def _host(x: Any) -> np.ndarray:
    """A host copy; PRNG keys become their raw ``uint32`` key data."""
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def _span(index: tuple, shape: tuple, axes: int) -> list[tuple[int, ...]]:
    """The row indices (over the leading ``axes``) that a shard's ``index`` (slices) covers."""
    ranges = [range(*s.indices(n)) for s, n in zip(index[:axes], shape[:axes], strict=True)]
    return list(itertools.product(*ranges))


def _holders(x: Any, axes: int) -> dict[tuple[int, ...], set[int]]:
    """``{row: the processes whose devices hold it}``; host values count as held by every one."""
    shape = np.shape(x)
    if len(shape) < axes:
        raise ValueError(f"a leaf of shape {shape} has fewer than {axes} leading axes")
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        everyone = set(range(jax.process_count()))
        return {i: everyone for i in np.ndindex(*shape[:axes])}
    holders: dict[tuple[int, ...], set[int]] = {}
    for device, index in x.sharding.devices_indices_map(shape).items():
        for row in _span(index, shape, axes):
            holders.setdefault(row, set()).add(device.process_index)
    return holders


def _local(x: Any, axes: int) -> dict[tuple[int, ...], np.ndarray]:
    """``{row: host copy}`` for the rows this process's devices hold."""
    shape = np.shape(x)
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        a = _host(x)
        return {i: a[i] for i in np.ndindex(*shape[:axes])}
    rows: dict[tuple[int, ...], np.ndarray] = {}
    for shard in x.addressable_shards:
        data = _host(shard.data)
        if data.shape[axes:] != shape[axes:]:
            raise ValueError(
                f"a leaf of shape {shape} is sharded past its first {axes} axes "
                f"({data.shape} per device); local_rows splits the leading axes only"
            )
        for pos, row in enumerate(_span(shard.index, shape, axes)):
            rows.setdefault(row, data[np.unravel_index(pos, data.shape[:axes])])
    return rows


def local_rows(tree: Any, axes: int = 1) -> tuple[np.ndarray, Any]:
    """This process's rows of ``tree``: the seeds (or grid cells) its own devices computed.

    Every row belongs to exactly one process, the lowest-numbered one whose devices hold it for
    every leaf (a leaf replicated on all devices does not change whose a row is), so the rows that
    all processes write make up the whole tree once. Reads only this process's
    ``addressable_shards``: nothing moves between processes. With one process every row is local.

    Args:
      tree: leaves ``[num_seeds, ...]`` from :func:`~purerl.loops.common.run_seeds` (``axes=1``)
        or ``[num_hparams, num_seeds, ...]`` from :func:`~purerl.loops.common.run_grid`
        (``axes=2``), global arrays sharded on those leading axes (or replicated), or host arrays.
      axes: how many leading axes index a row.

    Returns:
      ``(index, rows)``: ``index`` the global positions of this process's rows in ascending order,
      ``[n]`` for ``axes=1`` (seed numbers, for ``writers.write_csv(..., seeds=index)``) or
      ``[n, axes]``; ``rows`` the tree with host leaves ``[n, ...]`` (PRNG keys as key data).
    """
    leaves, treedef = jax.tree.flatten(tree)
    if not leaves:
        raise ValueError("local_rows needs a tree with at least one array leaf")
    holders = [_holders(x, axes) for x in leaves]
    me = jax.process_index()
    index = []
    for row in sorted(holders[0]):
        common = set.intersection(*[h.get(row, set()) for h in holders])
        if not common:
            raise ValueError(
                f"no process holds row {row} of every leaf: the leaves are sharded differently"
            )
        if min(common) == me:
            index.append(row)
    local = [_local(x, axes) for x in leaves]
    out = [
        np.stack([rows[i] for i in index]) if index else np.zeros((0, *np.shape(x)[axes:]))
        for rows, x in zip(local, leaves, strict=True)
    ]
    idx = np.asarray(index, np.int64).reshape(len(index), axes)
    return (idx[:, 0] if axes == 1 else idx), jax.tree.unflatten(treedef, out)


def gather(tree: Any) -> Any:
    """The whole of ``tree`` on every process, as host numpy (PRNG keys as key data).

    A collective: every process must call it at the same point of the program. Metrics are small
    (``[num_seeds, num_periods]`` scalars); gathering final states moves all of them.
    """

    def one(x):
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
                x = jax.random.key_data(x)
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return _host(x)

    return jax.tree.map(one, tree)


def assert_same_everywhere(tree: Any, what: str) -> None:
    """Raise ``AssertionError`` unless every process holds the same host values (a collective; a
    no-op on one process). Seeds split from different keys on different processes would silently
    train other runs than the ones asked for."""
    if is_multiprocess():
        multihost_utils.assert_equal(jax.tree.map(_host, tree), f"{what} differs between processes")
