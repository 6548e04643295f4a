"""Core types, networks, replay, normalization and pytree helpers shared by every algorithm."""

from purerl.core import (
    compilation,
    divergence,
    jsonio,
    networks,
    normalization,
    optim,
    replay,
    rewarder,
    tree,
    types,
    validation,
)
from purerl.core.types import (
    Algorithm,
    Batch,
    EnvSpec,
    Metrics,
    Network,
    Rewarder,
    State,
    Transition,
    fixed_update,
)

__all__ = [
    "Algorithm",
    "Batch",
    "EnvSpec",
    "Metrics",
    "Network",
    "Rewarder",
    "State",
    "Transition",
    "compilation",
    "divergence",
    "fixed_update",
    "jsonio",
    "networks",
    "normalization",
    "optim",
    "replay",
    "rewarder",
    "tree",
    "types",
    "validation",
]
