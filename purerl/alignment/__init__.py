"""Alignment: reward models, KL-regularised policy gradients, WARM / WARP / BOND / Best-of-N.

Modules: ``lm`` (tiny decoder-only transformer, KV-cache sampling), ``tasks`` (synthetic task with a
gold reward), ``pretrain`` (pre-training / SFT), ``reward_model`` (Bradley-Terry), ``warm``,
``policy_gradient`` (REINFORCE / RLOO with KL), ``warp``, ``best_of_n`` and ``bond``.
docs/alignment/ has one page per method. The compiled training loop they run in is
:mod:`purerl.loops.self_sampling`.
"""

from purerl.alignment import (  # noqa: F401
    best_of_n,
    bond,
    lm,
    policy_gradient,
    pretrain,
    reward_model,
    tasks,
    warm,
    warp,
)
