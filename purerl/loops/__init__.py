"""Compiled training loops: each ``make_train`` returns ``train(key) -> (final_carry, metrics)``."""

from purerl.loops import (
    checkpoint,
    common,
    distributed,
    evaluate,
    offline,
    on_policy,
    online,
    plots,
    writers,
)
from purerl.loops.common import (
    Loop,
    NonFiniteError,
    RewarderCarry,
    run_grid,
    run_seeds,
    shard_seeds,
)

__all__ = [
    "Loop",
    "NonFiniteError",
    "RewarderCarry",
    "checkpoint",
    "common",
    "distributed",
    "evaluate",
    "offline",
    "on_policy",
    "online",
    "plots",
    "run_grid",
    "run_seeds",
    "self_sampling",  # imported on demand (the LM policies' loop pulls in purerl.alignment)
    "shard_seeds",
    "writers",
]
