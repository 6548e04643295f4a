"""Compiled training loops: each ``make_train`` returns ``train(key) -> (final_carry, metrics)``."""

from purerl.loops import common, evaluate, online
from purerl.loops.common import NonFiniteError, run_seeds, shard_seeds

__all__ = ["NonFiniteError", "common", "evaluate", "online", "run_seeds", "shard_seeds"]
