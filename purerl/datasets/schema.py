"""The offline dataset type: D4RL field names, validated on the way in.

A :class:`Dataset` holds flat, time-ordered transitions with the field names of D4RL
(Fu et al. 2020, ``d4rl.qlearning_dataset`` and the ``.hdf5`` files):

=====================  ==================  =========================================================
field                  shape, dtype        meaning
=====================  ==================  =========================================================
``observations``       [N, *obs], f32      ``s_t``
``actions``            [N, *act], f32      ``a_t`` in ``[-1, 1]`` (int32 indices for discrete envs)
``rewards``            [N], f32            ``r_t``
``next_observations``  [N, *obs], f32      ``s_{t+1}`` (the final observation at an episode end)
``terminals``          [N], bool           ``s_{t+1}`` is terminal: no bootstrapping
``timeouts``           [N], bool           the episode was cut after this step (time limit or end of
                                           collection): bootstrapping from ``s_{t+1}`` is correct
``episode_ids``        [N], int32          optional; episode index of each transition
=====================  ==================  =========================================================

Episodes are contiguous: an episode ends at the first index whose ``terminals`` or ``timeouts`` is
set. ``metadata`` is a JSON-able dict; :func:`normalized_score` reads its D4RL keys
``ref_min_score`` (random policy return) and ``ref_max_score`` (expert return).

:func:`validate` turns raw arrays into a :class:`Dataset` or raises :class:`DatasetError` naming the
field and the index: missing fields, length mismatches, NaN/inf, wrong dtypes or shapes, flags that are
not 0/1, and episodes that never end (longer than ``metadata["max_episode_steps"]``, default 1000,
without a terminal or timeout). A last episode cut by the end of the file within that limit is
accepted and marked as a timeout, as D4RL's own loaders do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

REQUIRED = (
    "observations",
    "actions",
    "rewards",
    "next_observations",
    "terminals",
    "timeouts",
)
OPTIONAL = ("episode_ids",)
DEFAULT_MAX_EPISODE_STEPS = 1000


class DatasetError(ValueError):
    """An invalid dataset, a corrupted file or a cache manifest mismatch; the message names the
    field (and index) at fault."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """Validated offline transitions (host numpy arrays) plus a JSON-able ``metadata`` dict.

    Build one with :func:`validate` (or ``purerl.datasets.load``), not directly, so the invariants
    in the module docstring hold.
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    timeouts: np.ndarray
    episode_ids: np.ndarray
    metadata: dict = dataclasses.field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.rewards.shape[0])

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return tuple(self.observations.shape[1:])

    @property
    def action_shape(self) -> tuple[int, ...]:
        return tuple(self.actions.shape[1:])

    @property
    def num_episodes(self) -> int:
        return int(np.unique(self.episode_ids).shape[0])

    def arrays(self) -> dict[str, np.ndarray]:
        """``{field: array}`` for every field in :data:`REQUIRED` and :data:`OPTIONAL`."""
        return {name: getattr(self, name) for name in (*REQUIRED, *OPTIONAL)}

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, in order of first appearance."""
        _, first, inverse = np.unique(self.episode_ids, return_index=True, return_inverse=True)
        sums = np.bincount(inverse, weights=self.rewards.astype(np.float64))
        return sums[np.argsort(first)].astype(np.float32)

    def next_actions(self) -> np.ndarray:
        """``a_{t+1}`` for every transition (zeros where the episode ends: at a terminal it is not
        needed, at a timeout it was never recorded). Needs contiguous, unsubsampled episodes."""
        every = int(self.metadata.get("subsample_every", 1))
        if every != 1:
            raise DatasetError(
                f"next_actions: this dataset keeps every {every}th transition "
                "(metadata subsample_every), so a_{t+1} is not in it; use whole episodes"
            )
        nxt = np.zeros_like(self.actions)
        nxt[:-1] = self.actions[1:]
        ends = self.terminals | self.timeouts
        nxt[ends] = 0
        return nxt

    def transitions(self, next_actions: bool = False):
        """All transitions as a ``purerl.core.types.Transition`` of ``jnp`` arrays (flags float32),
        ready to live on the device; ``next_actions=True`` also fills ``Transition.next_action``."""
        import jax.numpy as jnp

        from purerl.core.types import Transition

        return Transition(
            obs=jnp.asarray(self.observations),
            action=jnp.asarray(self.actions),
            reward=jnp.asarray(self.rewards),
            next_obs=jnp.asarray(self.next_observations),
            terminated=jnp.asarray(self.terminals, jnp.float32),
            truncated=jnp.asarray(self.timeouts & ~self.terminals, jnp.float32),
            next_action=jnp.asarray(self.next_actions()) if next_actions else None,
        )

    def normalized_score(self, returns):
        """:func:`normalized_score` with this dataset's ``ref_min_score`` / ``ref_max_score``."""
        for key in ("ref_min_score", "ref_max_score"):
            if key not in self.metadata:
                raise DatasetError(
                    f"normalized_score: metadata has no {key!r} (the random / expert reference "
                    "returns); datasets made by 'purerl generate dataset' store both"
                )
        return normalized_score(
            returns, self.metadata["ref_min_score"], self.metadata["ref_max_score"]
        )


def normalized_score(returns, random_return: float, expert_return: float):
    """D4RL normalized score ``100 * (R - R_random) / (R_expert - R_random)`` (Fu et al. 2020,
    ``d4rl.get_normalized_score``): 0 is the random policy, 100 the expert. Works on scalars and
    arrays (numpy or jax)."""
    random_return, expert_return = float(random_return), float(expert_return)
    if not (np.isfinite(random_return) and np.isfinite(expert_return)):
        raise DatasetError(
            f"normalized_score: reference returns must be finite, got random={random_return}, "
            f"expert={expert_return}"
        )
    if expert_return == random_return:
        raise DatasetError(
            f"normalized_score: expert and random reference returns are equal ({expert_return}); "
            "the score is undefined"
        )
    return 100.0 * (returns - random_return) / (expert_return - random_return)


# --------------------------------------------------------------------------------------------------
# Validation.


def _where(source: str) -> str:
    return f" in {source}" if source else ""


def _first_bad(mask: np.ndarray) -> int:
    if mask.ndim == 0:
        return 0
    flat = mask.reshape(mask.shape[0], -1).any(axis=1)
    return int(np.argmax(flat))


def _float_field(name: str, value: Any, source: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or not (
        np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)
    ):
        raise DatasetError(
            f"field {name!r}{_where(source)} has dtype {arr.dtype}, expected a real number type "
            "(float32)"
        )
    if np.issubdtype(arr.dtype, np.floating):
        bad = ~np.isfinite(arr)
        if bad.any():
            i = _first_bad(bad)
            raise DatasetError(
                f"field {name!r}{_where(source)} has a non-finite value (NaN/inf) at index {i}"
            )
    with np.errstate(over="ignore"):
        out = arr.astype(np.float32)
    overflow = ~np.isfinite(out)  # finite float64 / int beyond float32's range (~3.4e38)
    if overflow.any():
        i = _first_bad(overflow)
        raise DatasetError(
            f"field {name!r}{_where(source)} has a value at index {i} too large for float32 "
            f"({float(arr[overflow].flat[0]):g}; float32 holds up to ~3.4e38)"
        )
    return out


def _flag_field(name: str, value: Any, source: str) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == bool:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise DatasetError(
            f"field {name!r}{_where(source)} has dtype {arr.dtype}, expected bool (or 0/1 numbers)"
        )
    if arr.ndim != 1:
        raise DatasetError(f"field {name!r}{_where(source)} has shape {arr.shape}, expected [N]")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        i = int(np.argmax(bad))
        raise DatasetError(
            f"field {name!r}{_where(source)} must be 0/1, got {arr[i].item()!r} at index {i}"
        )
    return arr.astype(bool)


def validate(
    arrays: Mapping[str, Any],
    metadata: Mapping[str, Any] | None = None,
    source: str = "",
) -> Dataset:
    """Check raw arrays and build a :class:`Dataset`; raises :class:`DatasetError` naming the field
    and index (see the module docstring). ``source`` (e.g. a file path) goes into the messages.

    Casts: float fields to float32 (integer actions stay int32 for discrete data), flags to bool.
    Extra keys in ``arrays`` (e.g. D4RL's ``infos/*``) are ignored.
    """
    metadata = dict(metadata or {})
    missing = [name for name in REQUIRED if name not in arrays]
    if missing:
        hint = (
            "; D4RL files without next_observations can be rebuilt with d4rl.qlearning_dataset"
            if "next_observations" in missing
            else ""
        )
        raise DatasetError(
            f"missing field {missing[0]!r}{_where(source)} (required fields: "
            f"{', '.join(REQUIRED)}){hint}"
        )

    obs = _float_field("observations", arrays["observations"], source)
    next_obs = _float_field("next_observations", arrays["next_observations"], source)
    rewards = _float_field("rewards", arrays["rewards"], source)
    raw_actions = np.asarray(arrays["actions"])
    if np.issubdtype(raw_actions.dtype, np.integer) and raw_actions.ndim == 1:
        actions = raw_actions.astype(np.int32)  # discrete action indices
    else:
        actions = _float_field("actions", raw_actions, source)
    terminals = _flag_field("terminals", arrays["terminals"], source)
    timeouts = _flag_field("timeouts", arrays["timeouts"], source)

    n = rewards.shape[0] if rewards.ndim >= 1 else None
    if rewards.ndim != 1:
        raise DatasetError(
            f"field 'rewards'{_where(source)} has shape {rewards.shape}, expected [N]"
        )
    if n == 0:
        raise DatasetError(f"dataset{_where(source)} is empty (0 transitions)")
    for name, arr, min_ndim in (
        ("observations", obs, 2),
        ("next_observations", next_obs, 2),
        ("actions", actions, 1),
        ("terminals", terminals, 1),
        ("timeouts", timeouts, 1),
    ):
        if arr.ndim < 1 or arr.shape[0] != n:
            raise DatasetError(
                f"field {name!r}{_where(source)} has length "
                f"{arr.shape[0] if arr.ndim else 'scalar'}, but 'rewards' has {n}"
            )
        if arr.ndim < min_ndim:
            raise DatasetError(
                f"field {name!r}{_where(source)} has shape {arr.shape}, expected "
                f"[{n}, ...] with at least {min_ndim} dimensions"
            )
    for name in ("terminals", "timeouts"):
        if locals()[name].ndim != 1:
            raise DatasetError(
                f"field {name!r}{_where(source)} has shape {locals()[name].shape}, expected [{n}]"
            )
    if obs.shape != next_obs.shape:
        raise DatasetError(
            f"field 'next_observations'{_where(source)} has shape {next_obs.shape}, but "
            f"'observations' has {obs.shape}"
        )

    max_steps = metadata.get("max_episode_steps")
    max_steps = DEFAULT_MAX_EPISODE_STEPS if max_steps is None else max_steps
    if not (isinstance(max_steps, int | np.integer) and max_steps >= 1):
        raise DatasetError(
            f"metadata max_episode_steps{_where(source)} must be an int >= 1, got {max_steps!r}"
        )
    max_steps = int(max_steps)
    subsampled = int(metadata.get("subsample_every", 1)) != 1
    if "episode_ids" in arrays and arrays["episode_ids"] is not None:
        ids = np.asarray(arrays["episode_ids"])
        if not np.issubdtype(ids.dtype, np.integer):
            raise DatasetError(
                f"field 'episode_ids'{_where(source)} has dtype {ids.dtype}, expected integers"
            )
        if ids.shape != (n,):
            raise DatasetError(
                f"field 'episode_ids'{_where(source)} has shape {ids.shape}, expected [{n}]"
            )
        ids = ids.astype(np.int32)
        step = np.diff(ids)
        if (step < 0).any() or (step > 1).any():
            i = int(np.argmax((step < 0) | (step > 1))) + 1
            raise DatasetError(
                f"field 'episode_ids'{_where(source)} must count up by 0 or 1 from one transition "
                f"to the next (contiguous episodes); it jumps from {ids[i - 1]} to {ids[i]} at "
                f"index {i}"
            )
        if not subsampled:
            ends = terminals | timeouts
            changes = np.nonzero(step)[0]  # last index of every episode but the final one
            not_ended = changes[~ends[changes]]
            if not_ended.size:
                i = int(not_ended[0])
                raise DatasetError(
                    f"episode {ids[i]}{_where(source)} changes to {ids[i + 1]} after index {i}, "
                    "but neither 'terminals' nor 'timeouts' is set there"
                )
            inner_ends = ends[:-1] & (step == 0)
            if inner_ends.any():
                i = int(np.argmax(inner_ends))
                raise DatasetError(
                    f"'terminals'/'timeouts' is set at index {i}{_where(source)}, but "
                    f"'episode_ids' continues episode {ids[i]} at index {i + 1}"
                )
    else:
        ends = terminals | timeouts
        ids = np.concatenate([[0], np.cumsum(ends[:-1])]).astype(np.int32)

    if not subsampled:
        ends = terminals | timeouts
        starts = np.concatenate([[0], np.nonzero(ends[:-1])[0] + 1])
        stops = np.concatenate([np.nonzero(ends)[0] + 1, [n] if not ends[-1] else []]).astype(int)
        lengths = stops - starts[: stops.shape[0]]
        too_long = np.nonzero(lengths > max_steps)[0]
        if too_long.size:
            s = int(starts[too_long[0]])
            raise DatasetError(
                f"the episode starting at index {s}{_where(source)} never ends: no 'terminals' or "
                f"'timeouts' within max_episode_steps={max_steps} transitions (indices {s}.."
                f"{s + max_steps - 1}); if episodes are longer, set metadata max_episode_steps "
                "(or load(..., max_episode_steps=...))"
            )
        if not ends[-1]:
            timeouts = timeouts.copy()
            timeouts[-1] = True  # the last episode is cut by the end of the data (D4RL does so)
            metadata.setdefault("final_episode_cut", True)

    return Dataset(
        observations=obs,
        actions=actions,
        rewards=rewards,
        next_observations=next_obs,
        terminals=terminals,
        timeouts=timeouts,
        episode_ids=ids,
        metadata=metadata,
    )


def concatenate(parts: list[Dataset], metadata: Mapping[str, Any] | None = None) -> Dataset:
    """Concatenate datasets (e.g. D4RL's medium-expert = medium + expert); episode ids are
    renumbered so they stay contiguous. The parts must share shapes."""
    if not parts:
        raise DatasetError("concatenate: no datasets given")
    arrays: dict[str, list[np.ndarray]] = {name: [] for name in (*REQUIRED, *OPTIONAL)}
    offset = 0
    for part in parts:
        for name in REQUIRED:
            arrays[name].append(getattr(part, name))
        arrays["episode_ids"].append(part.episode_ids - part.episode_ids[0] + offset)
        offset = int(arrays["episode_ids"][-1][-1]) + 1
    try:
        joined = {name: np.concatenate(v) for name, v in arrays.items()}
    except ValueError as e:
        raise DatasetError(f"concatenate: datasets have different shapes ({e})") from None
    meta = dict(parts[0].metadata)
    meta.pop("final_episode_cut", None)
    meta.update(metadata or {})
    return validate(joined, meta, source="concatenate")
