"""SAC: Soft Actor-Critic with a learned temperature (Haarnoja et al., "Soft Actor-Critic Algorithms
and Applications", arXiv 1812.05905, 2018).

Pseudocode (paper, Algorithm 1, one gradient step) -> functions:

* ``a' ~ pi(.|s')``, ``log pi(a'|s')`` with the tanh change of variables (App. C)
  -> :func:`sample_action`
* ``y = r + gamma (1 - d) (min_i Q'_i(s', a') - alpha log pi(a'|s'))`` (sec. 4.2; twin Q, sec. 6)
  -> :func:`soft_td_target`
* ``theta_i <- theta_i - lambda_Q grad J_Q(theta_i)``, ``J_Q = E 1/2 (Q_i(s, a) - y)^2`` (sec. 4.2)
  -> :func:`critic_loss`
* ``phi <- phi - lambda_pi grad J_pi(phi)``, ``J_pi = E [alpha log pi(a|s) - min_i Q_i(s, a)]``,
  ``a ~ pi(.|s)`` reparameterized (sec. 4.2, 6), with the critic just updated -> :func:`actor_loss`
* ``alpha <- alpha - lambda grad J(alpha)``, ``J = E [-alpha (log pi(a|s) + H_bar)]`` (eq. 18),
  descended in ``log alpha`` with the policy just updated -> :func:`temperature_loss`
* ``theta'_i <- tau theta_i + (1 - tau) theta'_i`` -> :func:`update` (``purerl.core.tree.lerp``)
* acting: ``a ~ pi(.|s)``; deterministic (evaluation) ``a = tanh(mean)`` -> ``act``.

Truncation: ``d`` is ``terminated`` only; time-limit truncations bootstrap from ``next_obs`` (the
final observation, kept by the env wrappers).

Observation normalization (``normalize_observations``, not in the paper; Brax's SAC trainer option,
on in its published env configs): networks see ``clip((s - mean) / std, -5, 5)`` with running moments
of the observations. Brax updates the moments with every collected observation; the contract's
``update(state, batch)`` sees only replay batches, so here the moments are merged from each sampled
batch's ``obs`` before the losses (the replay distribution, which is what the agent learns from).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purerl.core import networks, normalization, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "online"  # which loop trains this agent (purerl.loops.online)


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 3e-4  # paper, App. D Table 1 (Adam, one rate for all)
    critic_lr: float = 3e-4  # paper, App. D Table 1
    alpha_lr: float = 3e-4  # paper, App. D Table 1 (same rate in the authors' softlearning code)
    hidden: tuple[int, ...] = (256, 256)  # paper, App. D Table 1 (actor and critics)
    discount: float = 0.99  # paper, App. D Table 1
    tau: float = 0.005  # target smoothing coefficient, App. D Table 1 (target update interval 1)
    init_alpha: float = 1.0  # authors' softlearning code (log alpha starts at 0); not in the paper
    target_entropy: float | None = None  # H_bar; None = -dim(A), paper App. D Table 1
    learn_alpha: bool = True  # False keeps alpha = init_alpha fixed (Haarnoja et al. 2018a)
    normalize_observations: bool = True  # running mean/std of observations (module docstring)
    obs_clip: float = 5.0  # clip of normalized observations (brax running_statistics: 5)
    reward_scale: float = 1.0  # r -> reward_scale * r in the target (Brax's SAC reward_scaling)

    def __post_init__(self):
        validation.positive(
            "sac.Config",
            actor_lr=self.actor_lr,
            critic_lr=self.critic_lr,
            alpha_lr=self.alpha_lr,
            init_alpha=self.init_alpha,
        )
        validation.in_unit_interval("sac.Config", discount=self.discount, tau=self.tau)
        validation.layer_sizes("sac.Config", "hidden", self.hidden)
        if self.target_entropy is not None and not (
            isinstance(self.target_entropy, (int, float)) and math.isfinite(self.target_entropy)
        ):
            raise ValueError(
                f"sac.Config.target_entropy must be a finite number or None, "
                f"got {self.target_entropy!r}"
            )
        for name in ("learn_alpha", "normalize_observations"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"sac.Config.{name} must be a bool, got {getattr(self, name)!r}")
        validation.positive("sac.Config", obs_clip=self.obs_clip, reward_scale=self.reward_scale)


class Params(NamedTuple):
    actor: Any
    critic: Any  # two Q-functions in one network, apply -> [2, B]
    log_alpha: jax.Array  # scalar float32


class State(NamedTuple):
    params: Params
    target_critic: Any  # Polyak average of params.critic (SAC has no target actor)
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState
    key: jax.Array
    step: jax.Array  # updates done, int32
    normalizer: normalization.NormalizerState  # running observation moments (unused when off)


def sample_action(
    actor: Network, actor_params: Any, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterized ``a = tanh(mu(s) + sigma(s) eps)``, ``eps ~ N(0, I)``, and its log-density

    ``log pi(a|s) = log N(u; mu, sigma) - sum_j log(1 - tanh(u_j)^2)`` (paper App. C),
    computed from ``u`` (numerically stable; never through ``atanh(a)``).

    Args:
      actor: ``networks.gaussian_policy``; ``apply(params, obs) -> (loc, log_std)``.
      obs: ``[B, *obs_shape]`` (or one observation).

    Returns:
      ``(action [B, A], log_prob [B])``.
    """
    loc, log_std = actor.apply(actor_params, obs)
    return networks.tanh_gaussian(loc, log_std).sample_and_log_prob(seed=key)


def soft_td_target(
    reward: jax.Array,
    terminated: jax.Array,
    next_q: jax.Array,
    next_log_prob: jax.Array,
    alpha: jax.Array,
    discount: float,
) -> jax.Array:
    """Soft Bellman target ``y = r + gamma (1 - term) (min_i Q'_i(s', a') - alpha log pi(a'|s'))``
    (paper sec. 4.2 with the twin-Q minimum of sec. 6).

    Args:
      reward, terminated: ``[B]``.
      next_q: ``[num_critics, B]`` target-critic values at ``(s', a')``, ``a' ~ pi(.|s')``.
      next_log_prob: ``[B]``, ``log pi(a'|s')``.
      alpha: temperature (scalar).
      discount: gamma.
    """
    soft_value = jnp.min(next_q, axis=0) - alpha * next_log_prob
    return reward + discount * (1.0 - terminated) * soft_value


def critic_loss(
    critic_params: Any,
    target_critic_params: Any,
    actor_params: Any,
    log_alpha: jax.Array,
    batch: Transition,
    key: jax.Array,
    actor: Network,
    critic: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Soft TD loss ``sum_i mean 1/2 (Q_i(s, a) - y)^2`` with ``y`` from :func:`soft_td_target`
    (paper sec. 4.2; the target is held fixed). Shapes: batch leaves ``[B, ...]``.

    ``key`` draws ``a' ~ pi(.|s')`` through :func:`sample_action`.
    """
    next_a, next_log_prob = sample_action(actor, actor_params, batch.next_obs, key)
    next_q = critic.apply(target_critic_params, batch.next_obs, next_a)
    alpha = jnp.exp(log_alpha)
    y = soft_td_target(
        config.reward_scale * batch.reward,
        batch.terminated,
        next_q,
        next_log_prob,
        alpha,
        config.discount,
    )
    y = jax.lax.stop_gradient(y)
    q = critic.apply(critic_params, batch.obs, batch.action)  # [2, B]
    loss = jnp.sum(jnp.mean(0.5 * (q - y) ** 2, axis=-1))
    return loss, {"loss/critic": loss, "q/mean": jnp.mean(q), "q/target": jnp.mean(y)}


def actor_loss(
    actor_params: Any,
    critic_params: Any,
    log_alpha: jax.Array,
    batch: Transition,
    key: jax.Array,
    actor: Network,
    critic: Network,
) -> tuple[jax.Array, Metrics]:
    """Policy loss ``mean [alpha log pi(a|s) - min_i Q_i(s, a)]``, ``a ~ pi(.|s)`` reparameterized
    (paper sec. 4.2 with the twin-Q minimum of sec. 6). Only the actor is differentiated: the critic
    and alpha are held fixed. Shapes: batch leaves ``[B, ...]``."""
    a, log_prob = sample_action(actor, actor_params, batch.obs, key)
    q = critic.apply(jax.lax.stop_gradient(critic_params), batch.obs, a)
    alpha = jax.lax.stop_gradient(jnp.exp(log_alpha))
    loss = jnp.mean(alpha * log_prob - jnp.min(q, axis=0))
    return loss, {"loss/actor": loss, "policy/entropy": -jnp.mean(log_prob)}


def temperature_loss(log_alpha: jax.Array, log_prob: jax.Array, target_entropy: float) -> jax.Array:
    """``J(log alpha) = -mean[log alpha * (log pi(a|s) + H_bar)]``, ``a ~ pi(.|s)``.

    The paper's ``J(alpha) = E[-alpha log pi - alpha H_bar]`` (eq. 18), parameterized by
    ``log alpha`` as in the authors' code: the gradient has the same sign (alpha falls when the
    policy's entropy ``-E log pi`` is above ``H_bar``, rises when below) and alpha stays positive.

    Args:
      log_alpha: scalar.
      log_prob: ``[B]`` log-densities of fresh policy samples (held fixed).
      target_entropy: ``H_bar``.
    """
    return -jnp.mean(log_alpha * jax.lax.stop_gradient(log_prob + target_entropy))


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build SAC's networks and optimizers for ``spec`` (continuous actions in [-1, 1])."""
    if spec.discrete:
        raise ValueError(f"SAC needs continuous actions; env {spec.name!r} is discrete")
    actor = networks.gaussian_policy(config.hidden, spec.action_size)
    critic = networks.q_network(config.hidden, num_critics=2)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)
    alpha_opt = optax.adam(config.alpha_lr)
    target_entropy = (
        -float(spec.action_size) if config.target_entropy is None else config.target_entropy
    )

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        key, actor_key, critic_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, *spec.obs_shape))
        act = jnp.zeros((1, spec.action_size))
        params = Params(
            actor=actor.init(actor_key, obs),
            critic=critic.init(critic_key, obs, act),
            log_alpha=jnp.asarray(math.log(config.init_alpha), jnp.float32),
        )
        return State(
            params=params,
            target_critic=params.critic,
            actor_opt=actor_opt.init(params.actor),
            critic_opt=critic_opt.init(params.critic),
            alpha_opt=alpha_opt.init(params.log_alpha),
            key=key,
            step=jnp.zeros((), jnp.int32),
            normalizer=normalization.init(spec.obs_shape),
        )

    def observe(normalizer: normalization.NormalizerState, obs: jax.Array) -> jax.Array:
        if not config.normalize_observations:
            return obs
        return normalization.normalize(normalizer, obs, clip=config.obs_clip)

    def normalized(
        state: State, batch: Transition
    ) -> tuple[normalization.NormalizerState, Transition]:
        """Merge ``batch.obs`` into the moments (when on) and normalize ``obs`` / ``next_obs``."""
        if not config.normalize_observations:
            return state.normalizer, batch
        return normalization.update_and_normalize_batch(state.normalizer, batch, config.obs_clip)

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        validation.check_obs(obs, spec)
        obs = observe(state.normalizer, obs)
        if deterministic:
            loc, _ = actor.apply(state.params.actor, obs)
            return jnp.tanh(loc), {}
        a, _ = sample_action(actor, state.params.actor, obs, key)
        return a, {}

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        validation.check_batch(batch, spec, "sac.loss")
        _, batch = normalized(state, batch)
        critic_key, actor_key, alpha_key = jax.random.split(key, 3)
        c_loss, c_metrics = critic_loss(
            params.critic,
            state.target_critic,
            params.actor,
            params.log_alpha,
            batch,
            critic_key,
            actor,
            critic,
            config,
        )
        a_loss, a_metrics = actor_loss(
            params.actor, params.critic, params.log_alpha, batch, actor_key, actor, critic
        )
        _, log_prob = sample_action(actor, params.actor, batch.obs, alpha_key)
        t_loss = temperature_loss(params.log_alpha, log_prob, target_entropy)
        metrics = {
            **c_metrics,
            **a_metrics,
            "loss/alpha": t_loss,
            "policy/alpha": jnp.exp(params.log_alpha),
        }
        return c_loss + a_loss + t_loss, metrics

    def update(state: State, batch: Transition):
        validation.check_batch(batch, spec, "sac.update")
        normalizer, batch = normalized(state, batch)
        key, critic_key, actor_key, alpha_key = jax.random.split(state.key, 4)
        params = state.params
        log_alpha = params.log_alpha

        # Algorithm 1's order: critic, then actor (on the new critic), then alpha (on the new actor).
        grads, c_metrics = jax.grad(critic_loss, has_aux=True)(
            params.critic,
            state.target_critic,
            params.actor,
            log_alpha,
            batch,
            critic_key,
            actor,
            critic,
            config,
        )
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt)
        params = params._replace(critic=optax.apply_updates(params.critic, updates))

        grads, a_metrics = jax.grad(actor_loss, has_aux=True)(
            params.actor, params.critic, log_alpha, batch, actor_key, actor, critic
        )
        updates, actor_opt_state = actor_opt.update(grads, state.actor_opt)
        params = params._replace(actor=optax.apply_updates(params.actor, updates))

        _, log_prob = sample_action(actor, params.actor, batch.obs, alpha_key)
        t_loss, grad = jax.value_and_grad(temperature_loss)(log_alpha, log_prob, target_entropy)
        updates, alpha_opt_state = alpha_opt.update(grad, state.alpha_opt)
        if config.learn_alpha:
            params = params._replace(log_alpha=optax.apply_updates(log_alpha, updates))
        else:
            alpha_opt_state = state.alpha_opt

        target_critic = lerp(state.target_critic, params.critic, config.tau)
        metrics = {
            **c_metrics,
            **a_metrics,
            "loss/alpha": t_loss,
            "policy/alpha": jnp.exp(log_alpha),
        }
        new_state = State(
            params=params,
            target_critic=target_critic,
            actor_opt=actor_opt_state,
            critic_opt=critic_opt_state,
            alpha_opt=alpha_opt_state,
            key=key,
            step=state.step + 1,
            normalizer=normalizer,
        )
        return new_state, metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)
