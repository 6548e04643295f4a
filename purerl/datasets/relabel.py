"""Relabel a dataset's rewards with a :class:`~purerl.core.types.Rewarder` (offline imitation:
PWIL- or GAIL-style rewards on demonstrations or on unlabelled data, intrinsic bonuses).

    ds = purerl.datasets.load("hopper-medium")
    ds = purerl.datasets.relabel(ds, rewarder, jax.random.key(0), mode="replace")

The transitions are fed to ``rewarder.reward`` one at a time, in dataset order, as ``[1]``
transitions inside one compiled ``lax.scan``: episodes are contiguous in a validated
:class:`Dataset` and end with ``terminals`` or ``timeouts``, so a stateful rewarder (PWIL's
remaining expert weights) sees each episode whole, from its first step to its last, and its episode
state is reset where ``terminated`` or ``truncated`` says. Learned rewarders are not trained here:
pass their trained state as ``state``.
"""

from __future__ import annotations

import jax
import numpy as np

from purerl.core import rewarder as rewarding
from purerl.core.types import EnvSpec, Rewarder, State
from purerl.datasets.schema import Dataset, validate


def relabel(
    dataset: Dataset,
    rewarder: Rewarder,
    key: jax.Array,
    *,
    mode: str = "replace",
    weight: float = 1.0,
    spec: EnvSpec | None = None,
    state: State | None = None,
) -> Dataset:
    """A new validated :class:`Dataset` whose ``rewards`` are ``w r^rew`` ("replace") or
    ``r^env + w r^rew`` ("add"); every other field and the metadata are kept, and
    ``metadata["relabel"] = {"mode": ..., "weight": ...}`` records what was done.

    Args:
      dataset: the data, ``N`` transitions; ``rewards [N]`` is ``r^env``.
      rewarder: any :class:`Rewarder`; it is called on ``[1]`` transitions, so one with per-env
        episode state must be made for one env.
      key: for ``rewarder.init`` (unused when ``state`` is given).
      mode, weight: how ``r^rew`` enters the reward (:func:`purerl.core.rewarder.combine`).
      spec: the env spec handed to ``rewarder.init``; default: from the dataset's shapes
        (continuous actions; discrete datasets must pass the env's spec).
      state: a rewarder state to start from (e.g. a trained discriminator) instead of ``init``.

    Raises:
      DatasetError: the rewarder produced NaN/inf (names the index), like any invalid dataset.
    """
    rewarding.check_mode(mode, weight, "relabel")
    if spec is None:
        if np.issubdtype(dataset.actions.dtype, np.integer):
            raise ValueError("relabel: a discrete-action dataset needs spec= (the env's EnvSpec)")
        spec = EnvSpec(
            obs_shape=dataset.obs_shape,
            action_shape=dataset.action_shape,
            episode_length=int(dataset.metadata.get("max_episode_steps", 1000)),
            name=str(dataset.metadata.get("env", "")),
        )
    if state is None:
        state = rewarding.init(rewarder, key, spec, 1, "relabel")
    else:
        rewarding.check_state(rewarder, state, rewarding.example_transition(spec, 1), "relabel")

    def one(r_state, transition):
        single = jax.tree.map(lambda x: x[None], transition)
        r_state, single, _, _ = rewarding.apply(rewarder, r_state, single, mode, weight)
        return r_state, single.reward[0]

    @jax.jit
    def run(r_state, transitions):
        return jax.lax.scan(one, r_state, transitions)[1]

    rewards = np.asarray(run(state, dataset.transitions()))
    arrays = {**dataset.arrays(), "rewards": rewards}
    metadata = {**dataset.metadata, "relabel": {"mode": mode, "weight": float(weight)}}
    return validate(arrays, metadata, source="relabel")
