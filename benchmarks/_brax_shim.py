"""What brax 0.14.2's trainers (``brax.training.agents.ppo`` / ``.sac``) need to run on jax 0.10.2.

Benchmark-only: purerl never imports ``brax.training`` (it uses brax for environments only). The
benchmark scripts that run Brax's own trainers side by side with purerl's call :func:`install`
before importing ``brax.training``.

What breaks, and the fix (measured with jax 0.10.2, brax 0.14.2; see
shared/reference/cpu_feasibility.md section 3):

* ``jax.device_put_replicated`` is gone: JAX 0.10 keeps the name only to raise ``AttributeError``
  ("deprecated; use jax.device_put instead"). Brax's PPO and SAC call it once, to copy the initial
  ``TrainingState`` onto each local device before their ``jax.pmap``-ed training epochs.
  :func:`device_put_replicated` gives what that call is for: every leaf stacked ``len(devices)``
  times on a new leading axis, that axis split one slice per device, the layout ``pmap`` takes for a
  replicated input.

  The sharding matters for compile time, not for results: JAX 0.10's ``pmap`` returns arrays with
  a ``NamedSharding`` over a 1-D mesh named after its ``axis_name`` (``"i"`` in both trainers), and
  a ``pmap``-ed function compiles again when an input's mesh differs. Replicating onto a mesh with
  another axis name (the first version of this shim used ``"replica"``) made Brax compile its
  training epoch twice (the first epoch's input came from the shim, the next from ``pmap``) and its
  evaluation program once more: about 25 s and 15 s of extra compilation per run on this CPU,
  seen with ``jax_log_compiles``. With ``axis_name="i"`` the epoch compiles once, as Brax intends.

Nothing else in the two trainers' code paths fails on jax 0.10.2 (``jax.pmap`` is still present;
checked by running both trainers end to end in ``benchmarks/peers.py --quick``). Brax's import
prints "Failed to import warp" lines (mujoco's MJX module); they are harmless here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

BRAX_PMAP_AXIS = "i"  # the axis_name of every jax.pmap in brax.training's ppo and sac trainers


def device_put_replicated(
    x: Any, devices: Sequence[jax.Device], axis_name: str = BRAX_PMAP_AXIS
) -> Any:
    """``x`` (a pytree) replicated on ``devices``: leaves ``[len(devices), *leaf.shape]``, slice ``i``
    on ``devices[i]``, as a ``NamedSharding`` over a 1-D mesh named ``axis_name``: the sharding
    ``jax.pmap(f, axis_name=axis_name)`` gives its outputs on JAX 0.10, so feeding these arrays to
    that ``pmap`` and then its own outputs reuses one compiled program."""
    devices = list(devices)
    if not devices:
        raise ValueError("device_put_replicated needs at least one device")
    mesh = jax.sharding.Mesh(np.asarray(devices), (axis_name,))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(axis_name))

    def replicate(leaf):
        leaf = jnp.asarray(leaf)
        return jax.device_put(jnp.broadcast_to(leaf, (len(devices), *leaf.shape)), sharding)

    return jax.tree.map(replicate, x)


def install() -> bool:
    """Give ``jax`` a working ``device_put_replicated`` if this JAX lacks one (idempotent).

    Returns True when ``jax.device_put_replicated`` is (now) this module's function, False when
    JAX still has its own."""
    try:
        existing = jax.device_put_replicated
    except AttributeError:  # JAX 0.10: the name raises "deprecated; use jax.device_put instead"
        jax.device_put_replicated = device_put_replicated
        return True
    return existing is device_put_replicated
