"""TD3+BC: TD3 with a behaviour-cloning term in the actor (Fujimoto & Gu, NeurIPS 2021).

*A Minimalist Approach to Offline Reinforcement Learning* (arXiv 2106.06860), sec. 5. The critic is
TD3's, unchanged; only the actor objective differs:

* ``pi = argmax_pi E_{(s, a) ~ D}[lambda Q_1(s, pi(s)) - (pi(s) - a)^2]``, written as the loss
  ``-lambda mean Q_1(s, pi(s)) + mean (pi(s) - a)^2`` -> :func:`actor_loss`
* ``lambda = alpha / ((1/N) sum_i |Q_1(s_i, pi(s_i))|)``, a constant of the step (no gradient flows
  through it), ``alpha = 2.5`` -> :func:`bc_lambda`
* the critic (clipped double Q, target policy smoothing, delay, Polyak) is TD3's:
  :func:`purerl.agents.td3.critic_loss`, :func:`purerl.agents.td3.target_action`.

The paper's third change, normalising states with the dataset mean and standard deviation, lives in
the offline loop (``purerl.loops.offline``), not here: the agent sees whatever observations the loop
hands it, and evaluation must apply the same normalisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purerl.agents import td3
from purerl.core import networks, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "offline"  # which loop trains this agent (purerl.loops.offline)
NEEDS_NEXT_ACTION = False  # the TD3 target uses the target policy at s', not the dataset's a'

# mean |Q| below this would make lambda overflow (e.g. a critic that outputs exactly 0).
_MIN_MEAN_ABS_Q = 1e-6

Params = td3.Params


@dataclasses.dataclass(frozen=True)
class Config:
    # Defaults: the paper keeps TD3's hyperparameters (sec. 5); values as in the authors' code,
    # sfujim/TD3_BC, TD3_BC.py.
    actor_lr: float = 3e-4  # TD3_BC.py (Adam lr=3e-4)
    critic_lr: float = 3e-4  # TD3_BC.py
    hidden: tuple[int, ...] = (256, 256)  # TD3_BC.py (actor and both critics)
    discount: float = 0.99  # TD3_BC.py
    tau: float = 0.005  # TD3_BC.py
    policy_noise: float = 0.2  # TD3_BC.py, target policy smoothing sigma
    noise_clip: float = 0.5  # TD3_BC.py
    policy_delay: int = 2  # TD3_BC.py (policy_freq)
    alpha: float = 2.5  # paper, sec. 5, one value for every D4RL task; TD3_BC.py
    exploration_noise: float = 0.1  # only for act(..., deterministic=False); offline never explores

    def __post_init__(self):
        validation.positive("td3_bc.Config", actor_lr=self.actor_lr, critic_lr=self.critic_lr)
        validation.in_unit_interval("td3_bc.Config", discount=self.discount, tau=self.tau)
        validation.non_negative(
            "td3_bc.Config",
            policy_noise=self.policy_noise,
            noise_clip=self.noise_clip,
            alpha=self.alpha,
            exploration_noise=self.exploration_noise,
        )
        validation.layer_sizes("td3_bc.Config", "hidden", self.hidden)
        if not (isinstance(self.policy_delay, int) and self.policy_delay >= 1):
            raise ValueError(
                f"td3_bc.Config.policy_delay must be an int >= 1, got {self.policy_delay!r}"
            )

    @property
    def td3_config(self) -> td3.Config:
        """The TD3 part of this config (what :func:`purerl.agents.td3.critic_loss` reads)."""
        return td3.Config(
            actor_lr=self.actor_lr,
            critic_lr=self.critic_lr,
            hidden=self.hidden,
            discount=self.discount,
            tau=self.tau,
            policy_noise=self.policy_noise,
            noise_clip=self.noise_clip,
            policy_delay=self.policy_delay,
            exploration_noise=self.exploration_noise,
        )


class State(NamedTuple):
    params: Params
    target: Params
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array
    step: jax.Array  # critic updates done, int32
    actor_metrics: Metrics  # last actor update's metrics (the actor moves every policy_delay steps)


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
    """Build TD3+BC's networks and optimizers for ``spec`` (continuous actions in [-1, 1])."""
    if spec.discrete:
        raise ValueError(f"TD3+BC needs continuous actions; env {spec.name!r} is discrete")
    actor = networks.deterministic_policy(config.hidden, spec.action_size)
    critic = networks.q_network(config.hidden, num_critics=2)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)
    td3_config = config.td3_config

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        # The same key use as td3.init, so both agents start from the same networks.
        key, actor_key, critic_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, *spec.obs_shape))
        act = jnp.zeros((1, spec.action_size))
        params = Params(actor=actor.init(actor_key, obs), critic=critic.init(critic_key, obs, act))
        zero = jnp.zeros((), jnp.float32)
        return State(
            params=params,
            target=params,
            actor_opt=actor_opt.init(params.actor),
            critic_opt=critic_opt.init(params.critic),
            key=key,
            step=jnp.zeros((), jnp.int32),
            actor_metrics={"loss/actor": zero, "loss/bc": zero, "bc/lambda": zero},
        )

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        validation.check_obs(obs, spec)
        a = actor.apply(state.params.actor, obs)
        if not deterministic:
            a = jnp.clip(a + config.exploration_noise * jax.random.normal(key, a.shape), -1.0, 1.0)
        return a, {}

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        validation.check_batch(batch, spec, "td3_bc.loss")
        c_loss, c_metrics = td3.critic_loss(
            params.critic, state.target, batch, key, actor, critic, td3_config
        )
        a_loss, a_metrics = actor_loss(
            params.actor, params.critic, batch, actor, critic, config.alpha
        )
        return c_loss + a_loss, {**c_metrics, **a_metrics}

    def update(state: State, batch: Transition):
        validation.check_batch(batch, spec, "td3_bc.update")
        # Key use, critic step, delay and Polyak mirror td3.update exactly; only the actor differs.
        key, noise_key = jax.random.split(state.key)
        grads, metrics = jax.grad(td3.critic_loss, has_aux=True)(
            state.params.critic, state.target, batch, noise_key, actor, critic, td3_config
        )
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt)
        params = state.params._replace(critic=optax.apply_updates(state.params.critic, updates))
        step = state.step + 1

        def delayed(operand):
            params, target, opt_state, _ = operand
            grads, a_metrics = jax.grad(actor_loss, has_aux=True)(
                params.actor, params.critic, batch, actor, critic, config.alpha
            )
            updates, opt_state = actor_opt.update(grads, opt_state)
            params = params._replace(actor=optax.apply_updates(params.actor, updates))
            return params, lerp(target, params, config.tau), opt_state, a_metrics

        def skip(operand):
            return operand

        # A real branch when step is not batched (e.g. the whole loop vmapped over seeds).
        params, target, actor_opt_state, a_metrics = jax.lax.cond(
            step % config.policy_delay == 0,
            delayed,
            skip,
            (params, state.target, state.actor_opt, state.actor_metrics),
        )
        new_state = State(params, target, actor_opt_state, critic_opt_state, key, step, a_metrics)
        return new_state, {**metrics, **a_metrics}

    return Algorithm(init=init, act=act, loss=loss, update=update)
