"""Qsarsa-AC / Qsarsa-AC2: offline actor-critic regularised towards a SARSA estimate of Q^{pi_beta}.

Shi, Dadashi, Chi, Castro & Geist, *Offline Reinforcement Learning with On-Policy Q-Function
Regularization*, ECML-PKDD 2023 (arXiv 2307.13824): regularise towards the behaviour policy's
Q-function, estimated in-sample by SARSA (targets use only the dataset's next actions). Only that
idea is verified from the paper's text (abstract, Fig. 1); the regularisers are our reading
(docs/agents/qsarsa.md lists what is verified and what is chosen). Equations -> functions:

* ``y = r + gamma (1 - term) Q'_sarsa(s', a'_D)``, ``a'_D`` the dataset's next action
  -> :func:`sarsa_target`
* ``L_sarsa = mean over non-truncated (Q_sarsa(s, a) - y)^2`` (``a'`` is unknown where an episode
  was cut by a time limit) -> :func:`sarsa_loss`; own Adam and Polyak target -> :func:`sarsa_update`
* ``L_critic = L_TD3 + lambda_c sum_i mean (Q_i(s, pi(s)) - sg Q_sarsa(s, pi(s)))^2``
  -> :func:`critic_regularizer`, :func:`critic_loss` (TD3 part: ``td3.critic_loss``)
* ``L_actor = L_base + lambda_a * R_actor``, ``L_base`` = TD3's actor loss (variant ``"ac"``) or
  TD3+BC's (variant ``"ac2"``) -> :func:`actor_regularizer`, :func:`actor_loss`
* ``Q_sarsa(s, a)`` for evaluation (e.g. against Monte-Carlo returns) -> :func:`sarsa_q`.

The agent is the TD3 template (:func:`purerl.agents.td3.make_template`) with Q_sarsa as extra
state: every update takes a SARSA step, then (after ``sarsa_steps`` updates of Q_sarsa alone) a
TD3 / TD3+BC step against the fresh Q_sarsa. With ``critic_reg = actor_reg = 0`` the TD3 part is
bit-identical to ``td3`` (``"ac"``) or ``td3_bc`` (``"ac2"``); the SARSA part draws no keys.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purerl.agents import td3, td3_bc
from purerl.core import networks, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "offline"  # which loop trains this agent (purerl.loops.offline)
NEEDS_NEXT_ACTION = True  # the loop must fill Transition.next_action (a_{t+1} from the dataset)
VARIANTS = ("ac", "ac2")  # "ac": TD3-based (Qsarsa-AC); "ac2": TD3+BC-based (Qsarsa-AC2)
ACTOR_REG_FORMS = ("linear", "squared")

_SARSA_INIT_SALT = 1  # fold_in salt: Q_sarsa's init key, apart from td3's split of the init key

Params = td3.Params  # actor and twin critics; Q_sarsa is in State.extra (a SarsaState)
State = td3.State


@dataclasses.dataclass(frozen=True)
class Config(td3.Config):
    # TD3 / TD3+BC part: td3.Config's fields and values (the base algorithms', not this paper's);
    # `hidden` sizes the actor, both critics and Q_sarsa.
    variant: str = "ac"  # "ac" (TD3 base) or "ac2" (TD3+BC base); names from the paper [unverified]
    alpha: float = 2.5  # TD3+BC's BC trade-off, used by variant "ac2" only (Fujimoto & Gu, sec. 5)
    normalize_observations: bool = False  # offline: the paper's raw (or dataset-normalized) obs
    # Q_sarsa: our choices, the paper's values were not retrievable (docs: deviations 2-4).
    sarsa_lr: float = 3e-4  # same as the critic
    sarsa_tau: float = 0.005  # same as TD3's tau, applied every update
    sarsa_steps: int = 50_000  # updates of Q_sarsa alone before the TD3 part (docs: deviation 4)
    # Regularisers: our reading of the paper (docs: deviations 5-6).
    critic_reg: float = 1.0  # lambda_c
    actor_reg: float = 0.5  # lambda_a; with "linear": 0 = base actor, 1 = greedy on Q_sarsa alone
    actor_reg_form: str = "linear"  # R_actor, see actor_regularizer

    def __post_init__(self):
        owner = "qsarsa.Config"
        validation.one_of(f"{owner}.variant", self.variant, VARIANTS)
        validation.one_of(f"{owner}.actor_reg_form", self.actor_reg_form, ACTOR_REG_FORMS)
        super().__post_init__()
        validation.positive(owner, sarsa_lr=self.sarsa_lr)
        validation.in_unit_interval(owner, sarsa_tau=self.sarsa_tau)
        validation.non_negative(
            owner, alpha=self.alpha, critic_reg=self.critic_reg, actor_reg=self.actor_reg
        )
        validation.int_at_least(f"{owner}.sarsa_steps", self.sarsa_steps, 0)


class SarsaState(NamedTuple):  # Q_sarsa's state, the agent's State.extra
    params: Any  # Q_sarsa, one head
    target: Any  # its Polyak target
    opt: optax.OptState


def _is_zero(weight: Any) -> bool:
    """True for a concrete weight equal to 0. The term is then left out of the loss (it stays a
    metric): XLA fuses ``base + 0 * reg`` differently from ``base``, so only leaving it out keeps
    the update bit-identical to td3 / td3_bc. A traced weight (vmapped hyperparameter) keeps it."""
    return not isinstance(weight, jax.core.Tracer) and float(weight) == 0.0


def check_next_action(batch: Transition, owner: str) -> None:
    """Raise ``ValueError`` unless ``batch.next_action`` exists, shaped like ``batch.action``."""
    if batch.next_action is None:
        raise ValueError(
            f"{owner}: batch.next_action is missing. Q_sarsa's target uses the dataset's next "
            "action a_{t+1}, so the dataset/loop must supply next actions "
            "(Dataset.transitions(next_actions=True); purerl.loops.offline does this for agents "
            "with NEEDS_NEXT_ACTION = True)"
        )
    got, want = tuple(np.shape(batch.next_action)), tuple(np.shape(batch.action))
    if got != want:
        raise ValueError(
            f"{owner}: batch.next_action has shape {got}, expected {want} (batch.action's shape)"
        )


def sarsa_target(
    q_sarsa: Network, target_params: Any, batch: Transition, discount: float
) -> jax.Array:
    """In-sample SARSA target ``y = r + gamma (1 - term) Q'_sarsa(s', a'_D)`` (paper, abstract).

    ``a'_D`` is ``batch.next_action``, the action the dataset's behaviour policy took in ``s'``;
    the learned policy never enters. Shapes: batch leaves ``[B, ...]``; returns ``[B]``.
    """
    next_q = q_sarsa.apply(target_params, batch.next_obs, batch.next_action)[0]
    # where, not a product: a terminal's next action is a placeholder and must not leak in.
    next_q = jnp.where(batch.terminated > 0, 0.0, next_q)
    return batch.reward + discount * next_q


def sarsa_valid(batch: Transition) -> jax.Array:
    """``[B]`` bool: transitions whose SARSA target is known. A truncated, non-terminal transition
    needs ``a_{t+1}``, which the time limit cut off (``next_action`` is a zero placeholder)."""
    return (batch.truncated <= 0) | (batch.terminated > 0)


def sarsa_loss(
    sarsa_params: Any, target_params: Any, batch: Transition, q_sarsa: Network, discount: float
) -> tuple[jax.Array, Metrics]:
    """``L = sum_valid (Q_sarsa(s, a) - sg y)^2 / max(#valid, 1)``, ``y`` from :func:`sarsa_target`.

    Truncated transitions (:func:`sarsa_valid`) are masked out. Shapes: batch leaves ``[B, ...]``.
    """
    valid = sarsa_valid(batch)
    y = jax.lax.stop_gradient(sarsa_target(q_sarsa, target_params, batch, discount))
    y = jnp.where(valid, y, 0.0)  # masked targets may be garbage; keep them out of the gradient
    q = q_sarsa.apply(sarsa_params, batch.obs, batch.action)[0]  # [B]
    err = jnp.where(valid, q - y, 0.0)
    count = jnp.maximum(jnp.sum(valid), 1)
    loss = jnp.sum(err**2) / count
    return loss, {
        "loss/sarsa": loss,
        "q_sarsa/mean": jnp.mean(q),
        "q_sarsa/target": jnp.sum(y) / count,
    }


def critic_regularizer(
    critic_params: Any,
    sarsa_params: Any,
    actor_params: Any,
    obs: jax.Array,
    actor: Network,
    critic: Network,
    q_sarsa: Network,
) -> jax.Array:
    """``sum_i mean (Q_i(s, pi(s)) - sg Q_sarsa(s, pi(s)))^2`` over both critics (our reading).

    Pulls the critics towards the behaviour value at the policy's action, where extrapolation
    error is made. Gradients reach the critics only. Shapes: ``obs [B, o]``.
    """
    pi = jax.lax.stop_gradient(actor.apply(actor_params, obs))
    q = critic.apply(critic_params, obs, pi)  # [2, B]
    q_s = jax.lax.stop_gradient(q_sarsa.apply(sarsa_params, obs, pi)[0])  # [B]
    return jnp.sum(jnp.mean((q - q_s) ** 2, axis=-1))


def critic_loss(
    critic_params: Any,
    sarsa_params: Any,
    actor_params: Any,
    target: Params,
    batch: Transition,
    key: jax.Array,
    actor: Network,
    critic: Network,
    q_sarsa: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """TD3's critic loss plus ``critic_reg`` times :func:`critic_regularizer`.

    ``key`` is the target-smoothing noise key, used exactly as in :func:`td3.critic_loss`.
    """
    td_loss, metrics = td3.critic_loss(critic_params, target, batch, key, actor, critic, config)
    nets = (actor, critic, q_sarsa)
    reg = critic_regularizer(critic_params, sarsa_params, actor_params, batch.obs, *nets)
    loss = td_loss if _is_zero(config.critic_reg) else td_loss + config.critic_reg * reg
    return loss, {**metrics, "loss/critic": loss, "reg/critic": reg}


def actor_regularizer(
    actor_params: Any,
    critic_params: Any,
    sarsa_params: Any,
    obs: jax.Array,
    actor: Network,
    critic: Network,
    q_sarsa: Network,
    form: str = "linear",
) -> jax.Array:
    """``R_actor`` at the policy's action, differentiable in the actor only (our reading).

    * ``"linear"``: ``mean (Q_1(s, pi(s)) - Q_sarsa(s, pi(s)))``. Added to the base loss
      ``-mean Q_1`` with weight ``lambda_a`` it gives ``-mean ((1 - lambda_a) Q_1 + lambda_a
      Q_sarsa)``: the actor climbs a mix of the learned critic and the behaviour value.
    * ``"squared"``: ``mean (Q_1(s, pi(s)) - Q_sarsa(s, pi(s)))^2``: steer the policy to actions
      where the critic agrees with the behaviour value.

    Both are 0 where ``Q_1 == Q_sarsa``. Shapes: ``obs [B, o]``.
    """
    pi = actor.apply(actor_params, obs)
    gap = critic.apply(critic_params, obs, pi)[0] - q_sarsa.apply(sarsa_params, obs, pi)[0]
    if form == "linear":
        return jnp.mean(gap)
    if form == "squared":
        return jnp.mean(gap**2)
    raise ValueError(f"actor_regularizer: form must be one of {ACTOR_REG_FORMS}, got {form!r}")


def actor_loss(
    actor_params: Any,
    critic_params: Any,
    sarsa_params: Any,
    batch: Transition,
    actor: Network,
    critic: Network,
    q_sarsa: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """``L_base + actor_reg * c * R_actor``.

    ``L_base`` is :func:`td3.actor_loss` (``"ac"``, ``c = 1``) or :func:`td3_bc.actor_loss`
    (``"ac2"``, ``c = lambda``, TD3+BC's ``alpha / mean |Q|``, so ``R_actor`` is on the same
    normalised scale as the Q term; ``c^2`` for the squared form).
    """
    if config.variant == "ac":
        base, metrics = td3.actor_loss(actor_params, critic_params, batch, actor, critic)
        scale = 1.0
    else:
        base, metrics = td3_bc.actor_loss(
            actor_params, critic_params, batch, actor, critic, config.alpha
        )
        scale = metrics["bc/lambda"]  # already stop-gradient
    nets, form = (actor, critic, q_sarsa), config.actor_reg_form
    reg = actor_regularizer(actor_params, critic_params, sarsa_params, batch.obs, *nets, form)
    weight = scale if form == "linear" else scale**2
    loss = base if _is_zero(config.actor_reg) else base + config.actor_reg * (weight * reg)
    return loss, {**metrics, "loss/actor": loss, "reg/actor": reg}


def _hidden_sizes(sarsa_params: Any) -> tuple[int, ...]:
    """Hidden layer sizes of a ``networks.q_network`` from its parameters (haiku names its layers
    ``linear``, ``linear_1``, ...; the last one is the output)."""
    names = sorted(sarsa_params, key=lambda n: 0 if n == "linear" else int(n.rsplit("_", 1)[1]))
    return tuple(int(sarsa_params[n]["b"].shape[-1]) for n in names[:-1])


def sarsa_q(state: State, obs: jax.Array, action: jax.Array) -> jax.Array:
    """``Q_sarsa(s, a)`` of the online SARSA network in ``state``: ``obs [..., o]``,
    ``action [..., a]`` -> ``[...]``.

    Pass observations the way training saw them (normalised if the offline loop normalised).
    Works on one state; ``jax.vmap`` it over a batch of seeds.
    """
    net = networks.q_network(_hidden_sizes(state.extra.params), num_critics=1)
    return net.apply(state.extra.params, obs, action)[0]


def sarsa_update(
    state: SarsaState, batch: Transition, q_sarsa: Network, config: Config
) -> tuple[SarsaState, Metrics]:
    """One in-sample SARSA step: Adam on :func:`sarsa_loss`, then Polyak averaging of the target
    with ``sarsa_tau``. Never sees the policy or the TD3 critics."""
    grads, metrics = jax.grad(sarsa_loss, has_aux=True)(
        state.params, state.target, batch, q_sarsa, config.discount
    )
    updates, opt = optax.adam(config.sarsa_lr).update(grads, state.opt)
    params = optax.apply_updates(state.params, updates)
    return SarsaState(params, lerp(state.target, params, config.sarsa_tau), opt), metrics


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build Qsarsa-AC (``variant="ac"``) or Qsarsa-AC2 (``"ac2"``) for ``spec`` (continuous
    actions in [-1, 1]): the TD3 template with Q_sarsa as extra state."""
    actor, critic = td3.networks_for(config, spec, "qsarsa")
    q_sarsa = networks.q_network(config.hidden, num_critics=1)
    actor_metrics = ("loss/actor", "reg/actor")
    if config.variant == "ac2":
        actor_metrics += ("loss/bc", "bc/lambda")

    def init_extra(key: jax.Array):
        obs, act = jnp.zeros((1, *spec.obs_shape)), jnp.zeros((1, spec.action_size))
        params = q_sarsa.init(jax.random.fold_in(key, _SARSA_INIT_SALT), obs, act)
        return key, SarsaState(params, params, optax.adam(config.sarsa_lr).init(params))

    def c_loss(critic_params, state: td3.State, batch: Transition, key: jax.Array):
        sarsa, pi = state.extra.params, state.params.actor
        return critic_loss(
            critic_params, sarsa, pi, state.target, batch, key, actor, critic, q_sarsa, config
        )

    def a_loss(actor_params, critic_params, state: td3.State, batch: Transition):
        sarsa = state.extra.params
        return actor_loss(actor_params, critic_params, sarsa, batch, actor, critic, q_sarsa, config)

    variant = td3.Variant(
        critic_loss=c_loss,
        actor_loss=a_loss,
        actor_metrics=actor_metrics,
        init_extra=init_extra,
        extra_update=lambda extra, batch, step: sarsa_update(extra, batch, q_sarsa, config),
        extra_loss=lambda s, b, _: sarsa_loss(*s.extra[:2], b, q_sarsa, config.discount),
        pretrain_steps=config.sarsa_steps,
        frozen_extra=False,
        phase_metric="sarsa/pretraining",
        check=check_next_action,
    )
    return td3.make_template(config, spec, variant, "qsarsa")
