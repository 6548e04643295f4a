"""Alignment: reward models, KL-regularised policy gradients, WARM / WARP / BOND / Best-of-N.

Modules: ``lm`` (tiny decoder-only transformer, KV-cache sampling), ``tasks`` (synthetic task with a
gold reward), ``pretrain`` (pre-training / SFT), ``reward_model`` (Bradley-Terry), ``warm``,
``policy_gradient`` (REINFORCE / RLOO with KL), ``warp``, ``best_of_n`` and ``bond``.
docs/alignment/ has one page per method. The compiled training loop they run in is
:mod:`purerl.loops.self_sampling`.

``REGISTRY`` maps a name to the module of each alignment method that is an
:class:`~purerl.core.types.Algorithm` (``list_methods()`` / ``get(name)``, as ``purerl.agents``).
Each registered module has ``make(config, lm_config, task_config, reward_fn) -> Algorithm`` whose
``init(key, *pretrained)`` takes the pretrained (SFT) policy parameters where the contract's
``spec`` slot is (see :class:`purerl.core.types.InitFn`) and whose ``update(state, prompts)`` draws
its own responses (``prompts`` ``[B, P]``, or ``None`` to draw the prompts too):

* ``policy_gradient``: REINFORCE / RLOO with a KL penalty to an SFT or EMA anchor (WARP Alg. 1's
  RL step); ``init(key, init_params, sft_params=None)``;
* ``bond``: BOND / iterative BOND / J-BOND (Sessa et al. 2024); ``init(key, sft_params)``.

The other methods are not Algorithms and are not registered: WARP (:mod:`warp`) is
``policy_gradient`` runs with an EMA anchor plus weight-space merges (``slerp``, LITI) and the
procedure ``run_warp``; WARM (:mod:`warm`) trains reward models (``reward_model.make_train_step``,
no policy to ``act``) and averages them; Best-of-N (:mod:`best_of_n`) is a sampler.
"""

from __future__ import annotations

from types import ModuleType

from purerl.alignment import (
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

REGISTRY: dict[str, ModuleType] = {
    "policy_gradient": policy_gradient,
    "bond": bond,
}
"""``{name: module}`` of the alignment methods that follow the Algorithm contract."""

_DESCRIPTIONS = {
    "policy_gradient": "REINFORCE / RLOO with a KL penalty to an SFT or EMA anchor (WARP Alg. 1)",
    "bond": "BOND / iterative BOND / J-BOND, Best-of-N distillation (Sessa et al. 2024)",
}


def list_methods() -> dict[str, str]:
    """``{name: one-line description}`` of the registered alignment methods."""
    return {name: _DESCRIPTIONS[name] for name in REGISTRY}


def get(name: str) -> ModuleType:
    """The alignment method module ``name`` (``policy_gradient``, ``bond``)."""
    if name not in REGISTRY:
        raise ValueError(
            f"unknown alignment method {name!r}; known methods: {', '.join(sorted(REGISTRY))}"
        )
    return REGISTRY[name]


__all__ = [
    "REGISTRY",
    "best_of_n",
    "bond",
    "get",
    "list_methods",
    "lm",
    "pipeline",  # imported on demand: it sits above loops (purerl.loops.self_sampling)
    "policy_gradient",
    "pretrain",
    "reward_model",
    "tasks",
    "warm",
    "warp",
]
