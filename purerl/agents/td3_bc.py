"""TD3+BC: TD3 with a behaviour-cloning term in the actor (Fujimoto & Gu, NeurIPS 2021).

*A Minimalist Approach to Offline Reinforcement Learning* (arXiv 2106.06860), sec. 5. The critic is
TD3's, unchanged; only the actor objective differs:

* ``pi = argmax_pi E_{(s, a) ~ D}[lambda Q_1(s, pi(s)) - (pi(s) - a)^2]``, written as the loss
  ``-lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2`` -> :func:`actor_loss`
* ``lambda = alpha / ((1/N) sum_i |Q_1(s_i, pi(s_i))|)``, a constant of the step (no gradient flows
  through it), ``alpha = 2.5`` -> :func:`bc_lambda`
* the critic (clipped double Q, target policy smoothing, delay, Polyak) is TD3's:
  :func:`purerl.agents.td3.critic_loss`, :func:`purerl.agents.td3.target_action`; the update
  skeleton is :func:`purerl.agents.td3.make_template` with this actor loss plugged in.

The paper's third change, normalising states with the dataset mean and standard deviation, lives in
the offline loop (``purerl.loops.offline``), not here: the agent sees whatever observations the loop
hands it, and evaluation must apply the same normalisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp

from purerl.agents import td3
from purerl.core import validation
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "offline"  # which loop trains this agent (purerl.loops.offline)
NEEDS_NEXT_ACTION = False  # the TD3 target uses the target policy at s', not the dataset's a'
ACTOR_METRICS = ("loss/actor", "loss/bc", "bc/lambda")

# mean |Q| below this would make lambda overflow (e.g. a critic that outputs exactly 0).
_MIN_MEAN_ABS_Q = 1e-6

Params = td3.Params
State = td3.State


@dataclasses.dataclass(frozen=True)
class Config(td3.Config):
    # The paper keeps TD3's hyperparameters (sec. 5): td3.Config's values are the authors' code's
    # (sfujim/TD3_BC, TD3_BC.py). exploration_noise only serves act(..., deterministic=False).
    alpha: float = 2.5  # paper, sec. 5, one value for every D4RL task; TD3_BC.py
    normalize_observations: bool = False  # offline: the paper's raw (or dataset-normalized) obs

    def __post_init__(self):
        super().__post_init__()
        validation.non_negative("td3_bc.Config", alpha=self.alpha)


def bc_lambda(q: jax.Array, alpha: float) -> jax.Array:
    """``lambda = alpha / mean |Q|`` over the batch, with no gradient (paper, sec. 5).

    Args:
      q: ``[B]`` critic values ``Q_1(s, pi(s))``.
      alpha: the BC trade-off (2.5 in the paper).
    """
    mean_abs_q = jnp.maximum(jnp.mean(jnp.abs(q)), _MIN_MEAN_ABS_Q)
    return jax.lax.stop_gradient(alpha / mean_abs_q)


def actor_loss(
    actor_params: Any,
    critic_params: Any,
    batch: Transition,
    actor: Network,
    critic: Network,
    alpha: float,
) -> tuple[jax.Array, Metrics]:
    """TD3+BC actor loss ``-lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2`` (paper, sec. 5).

    The squared error is averaged over the batch and the action dimensions (``F.mse_loss`` in the
    authors' code). Shapes: batch leaves ``[B, ...]``.
    """
    pi = actor.apply(actor_params, batch.obs)
    q1 = critic.apply(critic_params, batch.obs, pi)[0]  # [B]
    lam = bc_lambda(q1, alpha)
    bc = jnp.mean((pi - batch.action) ** 2)
    loss = -lam * jnp.mean(q1) + bc
    return loss, {"loss/actor": loss, "loss/bc": bc, "bc/lambda": lam}


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build TD3+BC for ``spec`` (continuous actions in [-1, 1]): TD3's template (same networks,
    key use and update skeleton) with :func:`actor_loss`."""
    actor, critic = td3.networks_for(config, spec, "TD3+BC")
    td3_config = config.td3_config

    def c_loss(critic_params, state: td3.State, batch: Transition, key: jax.Array):
        return td3.critic_loss(critic_params, state.target, batch, key, actor, critic, td3_config)

    def a_loss(actor_params, critic_params, state: td3.State, batch: Transition):
        return actor_loss(actor_params, critic_params, batch, actor, critic, config.alpha)

    variant = td3.Variant(critic_loss=c_loss, actor_loss=a_loss, actor_metrics=ACTOR_METRICS)
    return td3.make_template(config, spec, variant, "td3_bc")
