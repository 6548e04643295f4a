"""Compiled training loops: each ``make_train`` returns ``train(key) -> (final_carry, metrics)``."""

from purerl.loops import (
    checkpoint,
    common,
    evaluate,
    offline,
    on_policy,
    online,
    plots,
    writers,
)
from purerl.loops.common import Loop, NonFiniteError, RewarderCarry, run_seeds, shard_seeds

__all__ = [
    "Loop",
    "NonFiniteError",
    "RewarderCarry",
    "checkpoint",
    "common",
    "evaluate",
    "offline",
    "on_policy",
    "online",
    "plots",
    "run_seeds",
    "self_sampling",  # imported on demand (the LM policies' loop pulls in purerl.alignment)
    "shard_seeds",
    "writers",
]
