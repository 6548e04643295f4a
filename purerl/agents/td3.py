"""TD3: Twin Delayed Deep Deterministic policy gradient (Fujimoto, van Hoof & Meger, ICML 2018).

Pseudocode (paper, Algorithm 1) -> functions:

* target action ``a' = clip(pi'(s') + clip(eps, -c, c), -1, 1)``, ``eps ~ N(0, sigma~)``
  -> :func:`target_action` (target policy smoothing, sec. 5.3)
* ``y = r + gamma (1 - d) min_i Q'_i(s', a')`` -> :func:`critic_loss` (clipped double Q, sec. 4.2)
* ``L(theta_i) = mean (y - Q_i(s, a))^2`` -> :func:`critic_loss`
* every ``d`` critic updates: ``grad_phi mean Q_1(s, pi(s))`` -> :func:`actor_loss`, then Polyak
  averaging of both targets with rate ``tau`` (sec. 5.2) -> :func:`update`
* exploration ``a = clip(pi(s) + N(0, sigma), -1, 1)`` -> ``act``.

Truncation: ``d`` is ``terminated`` only; time-limit truncations bootstrap from ``next_obs`` (the
final observation, kept by the env wrappers).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purerl.core import networks, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "online"  # which loop trains this agent (purerl.loops.online)


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4  # authors' repo (sfujim/TD3, 2019 update); 1e-3 in the paper's Table 3
    critic_lr: float = 3e-4  # authors' repo; 1e-3 in the paper
    hidden: tuple[int, ...] = (256, 256)  # authors' repo; (400, 300) in the paper
    discount: float = 0.99  # paper, Table 3
    tau: float = 0.005  # paper, Table 3
    policy_noise: float = 0.2  # sigma~, paper sec. 6.1
    noise_clip: float = 0.5  # c, paper sec. 6.1
    policy_delay: int = 2  # d, paper sec. 5.2
    exploration_noise: float = 0.1  # sigma, paper sec. 6.1

    def __post_init__(self):
        validation.positive("td3.Config", actor_lr=self.actor_lr, critic_lr=self.critic_lr)
        validation.in_unit_interval("td3.Config", discount=self.discount, tau=self.tau)
        validation.non_negative(
            "td3.Config",
            policy_noise=self.policy_noise,
            noise_clip=self.noise_clip,
            exploration_noise=self.exploration_noise,
        )
        validation.layer_sizes("td3.Config", "hidden", self.hidden)
        if not (isinstance(self.policy_delay, int) and self.policy_delay >= 1):
            raise ValueError(
                f"td3.Config.policy_delay must be an int >= 1, got {self.policy_delay!r}"
            )


class Params(NamedTuple):
    actor: Any
    critic: Any


class State(NamedTuple):
    params: Params
    target: Params
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array
    step: jax.Array  # critic updates done, int32
    actor_loss: jax.Array  # last actor loss (the actor is updated every policy_delay steps)


def target_action(
    actor: Network, target_actor_params: Any, next_obs: jax.Array, key: jax.Array, config: Config
) -> jax.Array:
    """Target policy smoothing: ``clip(pi'(s') + clip(N(0, sigma~), -c, c), -1, 1)`` (eq. 14)."""
    a = actor.apply(target_actor_params, next_obs)
    noise = jnp.clip(
        config.policy_noise * jax.random.normal(key, a.shape), -config.noise_clip, config.noise_clip
    )
    return jnp.clip(a + noise, -1.0, 1.0)


def critic_loss(
    critic_params: Any,
    target: Params,
    batch: Transition,
    key: jax.Array,
    actor: Network,
    critic: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Clipped double-Q TD loss ``sum_i mean (y - Q_i(s, a))^2``, ``y = r + gamma (1 - term) min_i Q'_i``
    (eq. 10). Shapes: batch leaves ``[B, ...]``."""
    next_a = target_action(actor, target.actor, batch.next_obs, key, config)
    next_q = jnp.min(critic.apply(target.critic, batch.next_obs, next_a), axis=0)
    y = batch.reward + config.discount * (1.0 - batch.terminated) * next_q
    q = critic.apply(critic_params, batch.obs, batch.action)  # [2, B]
    loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(y)) ** 2, axis=-1))
    return loss, {"loss/critic": loss, "q/mean": jnp.mean(q), "q/target": jnp.mean(y)}


def actor_loss(
    actor_params: Any, critic_params: Any, batch: Transition, actor: Network, critic: Network
) -> tuple[jax.Array, Metrics]:
    """Deterministic policy gradient objective ``-mean Q_1(s, pi(s))`` (eq. 6, sec. 5.2)."""
    q1 = critic.apply(critic_params, batch.obs, actor.apply(actor_params, batch.obs))[0]
    loss = -jnp.mean(q1)
    return loss, {"loss/actor": loss}


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build TD3's networks and optimizers for ``spec`` (continuous actions in [-1, 1])."""
    if spec.discrete:
        raise ValueError(f"TD3 needs continuous actions; env {spec.name!r} is discrete")
    actor = networks.deterministic_policy(config.hidden, spec.action_size)
    critic = networks.q_network(config.hidden, num_critics=2)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        key, actor_key, critic_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, *spec.obs_shape))
        act = jnp.zeros((1, spec.action_size))
        params = Params(actor=actor.init(actor_key, obs), critic=critic.init(critic_key, obs, act))
        return State(
            params=params,
            target=params,
            actor_opt=actor_opt.init(params.actor),
            critic_opt=critic_opt.init(params.critic),
            key=key,
            step=jnp.zeros((), jnp.int32),
            actor_loss=jnp.zeros((), jnp.float32),
        )

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        validation.check_obs(obs, spec)
        a = actor.apply(state.params.actor, obs)
        if not deterministic:
            a = jnp.clip(a + config.exploration_noise * jax.random.normal(key, a.shape), -1.0, 1.0)
        return a, {}

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        validation.check_batch(batch, spec, "td3.loss")
        c_loss, c_metrics = critic_loss(
            params.critic, state.target, batch, key, actor, critic, config
        )
        a_loss, a_metrics = actor_loss(params.actor, params.critic, batch, actor, critic)
        return c_loss + a_loss, {**c_metrics, **a_metrics}

    def update(state: State, batch: Transition):
        validation.check_batch(batch, spec, "td3.update")
        key, noise_key = jax.random.split(state.key)
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            state.params.critic, state.target, batch, noise_key, actor, critic, config
        )
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt)
        params = state.params._replace(critic=optax.apply_updates(state.params.critic, updates))
        step = state.step + 1

        def delayed(operand):
            params, target, opt_state = operand
            grads, a_metrics = jax.grad(actor_loss, has_aux=True)(
                params.actor, params.critic, batch, actor, critic
            )
            updates, opt_state = actor_opt.update(grads, opt_state)
            params = params._replace(actor=optax.apply_updates(params.actor, updates))
            return params, lerp(target, params, config.tau), opt_state, a_metrics["loss/actor"]

        def skip(operand):
            params, target, opt_state = operand
            return params, target, opt_state, state.actor_loss

        # A real branch when step is not batched (e.g. the whole loop vmapped over seeds).
        params, target, actor_opt_state, a_loss = jax.lax.cond(
            step % config.policy_delay == 0, delayed, skip, (params, state.target, state.actor_opt)
        )
        metrics = {**metrics, "loss/actor": a_loss}
        new_state = State(params, target, actor_opt_state, critic_opt_state, key, step, a_loss)
        return new_state, metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)
