"""What brax 0.14.2's trainers (``brax.training.agents.ppo`` / ``.sac``) need to run on jax 0.10.2.

Benchmark-only: purerl never imports ``brax.training`` (it uses brax for environments only). The
benchmark scripts that run Brax's own trainers side by side with purerl's call :func:`install`
before importing ``brax.training``.

What breaks, and the fix (measured with jax 0.10.2, brax 0.14.2; see
shared/reference/cpu_feasibility.md section 3):

* ``jax.device_put_replicated`` is gone: JAX 0.10 keeps the name only to raise ``AttributeError``
  ("deprecated; use jax.device_put instead"). Brax's PPO and SAC call it once, to copy the initial
  ``TrainingState`` onto each local device before their ``jax.pmap``-ed training epochs.
  :func:`device_put_replicated` gives the same result: every leaf stacked ``len(devices)`` times on a
  new leading axis, that axis split one slice per device (a ``NamedSharding`` over a 1-D mesh of the
  devices), which is the layout ``pmap`` expects for a replicated input.

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


def device_put_replicated(x: Any, devices: Sequence[jax.Device]) -> Any:
    """``x`` (a pytree) replicated on ``devices``: leaves ``[len(devices), *leaf.shape]``, slice ``i``
    on ``devices[i]``; the layout ``jax.pmap`` takes for an input replicated across devices."""
    devices = list(devices)
    if not devices:
        raise ValueError("device_put_replicated needs at least one device")
    mesh = jax.sharding.Mesh(np.asarray(devices), ("replica",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("replica"))

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
