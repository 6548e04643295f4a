"""Alignment: reward models, KL-regularised policy gradients, WARM / WARP / BOND / Best-of-N.

Modules: ``lm`` (tiny decoder-only transformer, KV-cache sampling), ``tasks`` (synthetic task with a
gold reward), ``pretrain`` (pre-training / SFT), ``reward_model`` (Bradley-Terry), ``warm``,
``policy_gradient`` (REINFORCE / RLOO with KL), ``loop`` (compiled training loop), ``warp``,
``best_of_n`` and ``bond``. docs/alignment/ has one page per method.
"""

from purerl.alignment import (  # noqa: F401
    best_of_n,
    bond,
    lm,
    loop,
    policy_gradient,
    pretrain,
    reward_model,
    tasks,
    warm,
    warp,
)
