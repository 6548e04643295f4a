"""Contract cases for ``purerl.alignment.REGISTRY``: one tiny Algorithm per registered method.

:func:`contract_cases` gives, for every registered name, what a generic contract test needs: the
Algorithm (a 1-layer LM with ``d_model`` 16 on a vocabulary of 16, prompts of 4 tokens and
responses of 6, so each compiles in seconds), the arguments of ``init`` after the key (the pretrained
policy the method starts from) and a batch for ``update`` (``[B, P]`` prompts). Each case also reads
as the ``Case`` of ``tests/test_contract.py``: ``init(key) -> state``, ``bodies`` (``update`` as a
scan body) and ``batch(key)``.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from purerl import alignment
from purerl.alignment import bond, lm, tasks
from purerl.alignment import policy_gradient as pg
from purerl.core.types import Algorithm

TASK = tasks.TaskConfig(vocab_size=16, prompt_len=4, response_len=6)
LM = lm.LMConfig(vocab_size=16, max_len=10, d_model=16, num_heads=2, num_layers=1)
BATCH = 4  # prompts per update (>= 2 for the leave-one-out baselines)


class ContractCase(NamedTuple):
    """One registered alignment method under the contract.

    Attributes:
      name: its name in ``purerl.alignment.REGISTRY``.
      algo: a tiny :class:`~purerl.core.types.Algorithm` of it.
      init_args: the arguments of ``algo.init`` after the key (the pretrained / SFT parameters).
      prompts: ``[B, P]`` int32, the batch handed to ``algo.update``.
    """

    name: str
    algo: Algorithm
    init_args: tuple[Any, ...]
    prompts: jax.Array

    @property
    def init(self):
        """``init(key) -> state``, the pretrained parameters closed over."""
        return lambda key: self.algo.init(key, *self.init_args)

    @property
    def bodies(self):
        """The scan bodies of the contract: ``(("update", algo.update),)``."""
        return (("update", self.algo.update),)

    def batch(self, key: jax.Array) -> jax.Array:
        """The update batch (fixed prompts; ``key`` unused: the update samples its own responses)."""
        del key
        return self.prompts


def gold(tokens: jax.Array, mask: jax.Array) -> jax.Array:
    return tasks.sequence_gold_reward(tokens, mask, TASK)


def _make(name: str) -> Algorithm:
    if name == "policy_gradient":
        config = pg.RLConfig(batch_size=BATCH, num_samples=2, ema_rate=0.1, learning_rate=1e-2)
        return pg.make(config, LM, TASK, gold)
    if name == "bond":
        config = bond.BondConfig(
            n=2, num_quantile_samples=2, batch_size=BATCH, learning_rate=1e-2, use_cache=False
        )
        return bond.make(config, LM, TASK, gold)
    raise KeyError(f"no contract case for alignment method {name!r}: add one to {__name__}")


def contract_cases() -> list[ContractCase]:
    """One :class:`ContractCase` per name of ``purerl.alignment.REGISTRY`` (sorted)."""
    sft = lm.make_lm(LM).init(jax.random.key(0), jnp.zeros((1, LM.max_len), jnp.int32))
    prompts = tasks.sample_prompts(jax.random.key(1), TASK, BATCH)
    return [ContractCase(name, _make(name), (sft,), prompts) for name in sorted(alignment.REGISTRY)]
