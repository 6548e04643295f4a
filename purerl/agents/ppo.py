"""PPO: Proximal Policy Optimization with GAE (Schulman et al. 2017; GAE: Schulman et al. 2016).

Pseudocode (PPO paper, Algorithm 1) -> functions:

* run the policy for ``T`` steps in ``E`` envs -> :mod:`purerl.loops.on_policy` (``act``)
* ``delta_t = r_t + gamma (1 - term_t) V(s_{t+1}) - V(s_t)``,
  ``A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}`` (GAE paper eq. 16, PPO eq. 11-12)
  -> :func:`gae`
* ``r_t(theta) = pi_theta(a_t|s_t) / pi_old(a_t|s_t)``,
  ``L^CLIP = E_t[min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)]`` (PPO eq. 7)
  -> :func:`clipped_surrogate`
* ``L^VF = E_t[(V_theta(s_t) - V_t^targ)^2]`` (PPO eq. 9), optionally clipped around the old value
  -> :func:`value_loss`
* maximize ``L^CLIP - c1 L^VF + c2 S[pi_theta]`` (PPO eq. 9) -> :func:`ppo_loss`
* ``K`` epochs of minibatch Adam on that objective -> ``update`` (a ``lax.scan`` over epochs, each
  a ``lax.scan`` over a fresh permutation's minibatches).

Behaviour policy: ``update(state, batch)`` takes one rollout and treats ``state.params`` (the
parameters at update time, i.e. the ones the on-policy loop acted with) as ``pi_old``: it recomputes
``log pi_old(a_t|s_t)`` and ``V_old(s_t)`` itself instead of trusting values stored at acting time.
Feeding a rollout that some *other* policy collected therefore gives no importance correction
towards that policy.

Time limits: ``terminated`` stops bootstrapping, ``truncated`` bootstraps from ``V(next_obs)`` (the
final observation, which the Transition carries), and the advantage recursion is cut at every
episode end either way.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, NamedTuple

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import rlax

from purerl.core import networks, normalization, validation
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "on_policy"  # which loop trains this agent (purerl.loops.on_policy)


@dataclasses.dataclass(frozen=True)
class Config:
    learning_rate: float = 3e-4  # Adam stepsize, PPO paper Table 3 (MuJoCo)
    adam_eps: float = 1e-5  # openai/baselines ppo1 (the paper's code) and ppo2; the paper is silent
    hidden: tuple[int, ...] = (64, 64)  # PPO paper sec. 6.1: two hidden layers of 64 units
    discount: float = 0.99  # gamma, PPO paper Table 3
    gae_lambda: float = 0.95  # lambda, PPO paper Table 3
    clip_epsilon: float = 0.2  # epsilon, PPO paper sec. 6.1 / Table 3
    num_epochs: int = 10  # K, PPO paper Table 3
    num_minibatches: int = 32  # PPO paper Table 3: horizon 2048 / minibatch size 64 = 32
    value_coef: float = 0.5  # c1; openai/baselines ppo2 (paper: no shared params on MuJoCo)
    entropy_coef: float = 0.0  # c2; PPO paper sec. 6.1 uses no entropy bonus on MuJoCo (Atari: .01)
    max_grad_norm: float | None = 0.5  # global-norm clip; openai/baselines ppo2 (not in the paper)
    clip_value: bool = False  # value clipping as in baselines ppo2; off: the paper's eq. 9, and
    #                           Engstrom et al. (2020) / Andrychowicz et al. (2021) find it no help
    normalize_advantages: bool = True  # per minibatch as baselines ppo2 (ppo1: per rollout);
    #                                    not in the paper
    normalize_observations: bool = True  # running mean/std, as the paper's baselines ppo1 MlpPolicy
    obs_clip: float = 5.0  # clip of normalized observations, baselines ppo1 MlpPolicy
    init_log_std: float = 0.0  # state-independent log-std at init (std 1), baselines ppo1

    def __post_init__(self):
        validation.positive(
            "ppo.Config",
            learning_rate=self.learning_rate,
            adam_eps=self.adam_eps,
            clip_epsilon=self.clip_epsilon,
            obs_clip=self.obs_clip,
        )
        validation.in_unit_interval(
            "ppo.Config", discount=self.discount, gae_lambda=self.gae_lambda
        )
        validation.non_negative(
            "ppo.Config", value_coef=self.value_coef, entropy_coef=self.entropy_coef
        )
        validation.layer_sizes("ppo.Config", "hidden", self.hidden)
        for name in ("num_epochs", "num_minibatches"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"ppo.Config.{name} must be an int >= 1, got {v!r}")
        if self.max_grad_norm is not None:
            validation.positive("ppo.Config", max_grad_norm=self.max_grad_norm)
        if not (isinstance(self.init_log_std, (int, float)) and np.isfinite(self.init_log_std)):
            raise ValueError(f"ppo.Config.init_log_std must be finite, got {self.init_log_std!r}")


class Params(NamedTuple):
    policy: Any  # discrete: MLP params -> logits; continuous: {"mlp": -> mean, "log_std": [A]}
    value: Any  # MLP params -> V(s)


class State(NamedTuple):
    params: Params
    opt_state: optax.OptState
    normalizer: normalization.NormalizerState  # running obs moments (unused when disabled)
    key: jax.Array
    step: jax.Array  # updates (rollouts) done, int32


class Minibatch(NamedTuple):
    """What the PPO objective needs per sample (leaves ``[B, ...]``), prepared from a rollout with
    the pre-update parameters."""

    obs: jax.Array  # normalized observations s_t
    action: jax.Array  # a_t
    log_prob: jax.Array  # log pi_old(a_t | s_t)
    value: jax.Array  # V_old(s_t)
    advantage: jax.Array  # GAE A_t
    target: jax.Array  # V_t^targ = A_t + V_old(s_t)


def gae(
    reward: jax.Array,
    value: jax.Array,
    next_value: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    discount: float,
    gae_lambda: float,
) -> jax.Array:
    """Generalized advantage estimation with time limits (GAE paper eq. 16; PPO paper eq. 11-12).

    ``delta_t = r_t + gamma (1 - term_t) V(s'_t) - V(s_t)`` and
    ``A_t = delta_t + gamma lambda (1 - max(term_t, trunc_t)) A_{t+1}``, ``A_T = 0``, where ``s'_t``
    is ``next_obs`` (the final observation at episode ends). A truncated step still bootstraps from
    ``V(s'_t)``; every episode end cuts the recursion, so no advantage mixes two episodes.

    Why not ``rlax.truncated_generalized_advantage_estimation``: it takes one value sequence
    ``V(s_0..s_T)`` and bootstraps step ``t`` from ``values[t + 1]``, the next step's baseline. In a
    rollout that crosses an auto-reset, the step after a truncation starts a new episode, so
    ``values[t + 1]`` is the value of the reset observation, not of the final one (``next_value``
    here). Routing our inputs through rlax would take a rewritten reward (``r_t + gamma V(s'_t)``
    with discount 0 at truncations) and the assumption ``V(s'_t) = V(s_{t+1})`` inside episodes,
    which this function does not make (it takes ``next_value`` on its own). rlax's function equals
    this one on each episode segment (tests/agents/test_ppo.py checks exactly that).

    Args:
      reward: ``r_t``, ``[T, ...]``.
      value: ``V(s_t)``, ``[T, ...]``.
      next_value: ``V(s'_t)``, ``[T, ...]``.
      terminated, truncated: episode-end flags of each step (1.0/0.0), ``[T, ...]``.
      discount: ``gamma``.
      gae_lambda: ``lambda``.

    Returns:
      advantages ``A_t``, ``[T, ...]``.
    """
    delta = reward + discount * (1.0 - terminated) * next_value - value
    cont = discount * gae_lambda * (1.0 - jnp.maximum(terminated, truncated))

    def body(acc, xs):
        delta_t, cont_t = xs
        acc = delta_t + cont_t * acc
        return acc, acc

    _, advantage = jax.lax.scan(body, jnp.zeros_like(delta[0]), (delta, cont), reverse=True)
    return advantage


def clipped_surrogate(
    log_prob: jax.Array, old_log_prob: jax.Array, advantage: jax.Array, epsilon: float
) -> jax.Array:
    """Clipped surrogate objective (to maximize), PPO paper eq. 7:

    ``L^CLIP = mean_t min(r_t A_t, clip(r_t, 1 - eps, 1 + eps) A_t)``,
    ``r_t = exp(log pi(a_t|s_t) - log pi_old(a_t|s_t))``. Shapes ``[B]`` -> scalar.

    The mean is ``-rlax.clipped_surrogate_pg_loss`` (a loss, hence the sign) with the stop-gradient
    on ``advantage`` off, so gradients flow exactly as through the formula; value and gradient are
    bit-identical to the hand-written formula it replaced (tests/agents/test_ppo.py keeps it). The
    one difference: rlax takes the minimum with ``fmin``, so a NaN product (``r_t = inf`` times
    ``A_t = 0``) yields the clipped term where ``minimum`` propagated the NaN. rlax takes rank-1
    inputs; other shapes are flattened (the mean is over all samples either way).
    """
    ratio = jnp.ravel(jnp.exp(log_prob - old_log_prob))
    return -rlax.clipped_surrogate_pg_loss(
        ratio, jnp.ravel(advantage), epsilon, use_stop_gradient=False
    )


def value_loss(
    value: jax.Array, old_value: jax.Array, target: jax.Array, clip_epsilon: float | None = None
) -> jax.Array:
    """``L^VF = mean (V(s_t) - V_t^targ)^2`` (PPO paper eq. 9). With ``clip_epsilon`` (baselines
    ppo2): ``mean max((V - V^targ)^2, (V_old + clip(V - V_old, -eps, eps) - V^targ)^2)``.
    Shapes ``[B]`` -> scalar."""
    loss = (value - target) ** 2
    if clip_epsilon is not None:
        clipped = old_value + jnp.clip(value - old_value, -clip_epsilon, clip_epsilon)
        loss = jnp.maximum(loss, (clipped - target) ** 2)
    return jnp.mean(loss)


def explained_variance(prediction: jax.Array, target: jax.Array) -> jax.Array:
    """``1 - Var[target - prediction] / Var[target]`` (1: perfect, 0: no better than a constant;
    NaN-free: 0 where the target is constant)."""
    var_t = jnp.var(target)
    return jnp.where(var_t > 0, 1.0 - jnp.var(target - prediction) / jnp.maximum(var_t, 1e-12), 0.0)


def clipped_gaussian_log_prob(loc: jax.Array, scale: jax.Array, action: jax.Array) -> jax.Array:
    """Log-likelihood of an action clipped to ``[-1, 1]`` after ``u ~ N(loc, diag(scale^2))``.

    The clipped action has a censored Gaussian law (Fujita & Maeda 2018, "Clipped Action Policy
    Gradient", sec. 3): per dimension the density ``N(a; loc, scale)`` inside ``(-1, 1)`` and the
    point masses ``Phi((-1 - loc) / scale)`` at ``a = -1`` and ``1 - Phi((1 - loc) / scale)`` at
    ``a = 1``; dimensions are independent, so their logs add. Ratios of these likelihoods are exact
    importance ratios for the actions the env executes.

    Args:
      loc, scale: ``[..., A]``.
      action: ``[..., A]`` in ``[-1, 1]``.

    Returns:
      ``[...]`` log-likelihoods.
    """
    z = (action - loc) / scale
    inner = -0.5 * z**2 - jnp.log(scale) - 0.5 * jnp.log(2.0 * jnp.pi)
    low = jax.scipy.special.log_ndtr((-1.0 - loc) / scale)
    high = jax.scipy.special.log_ndtr((loc - 1.0) / scale)
    per_dim = jnp.where(action <= -1.0, low, jnp.where(action >= 1.0, high, inner))
    return jnp.sum(per_dim, axis=-1)


def log_prob(dist: distrax.Distribution, action: jax.Array, discrete: bool) -> jax.Array:
    """``log pi(a|s)`` of an action the env executed: categorical log-probability, or the clipped
    Gaussian likelihood of :func:`clipped_gaussian_log_prob` for continuous actions."""
    if discrete:
        return dist.log_prob(action)
    return clipped_gaussian_log_prob(dist.loc, dist.scale_diag, action)


def policy_network(hidden: Sequence[int], spec: EnvSpec, init_log_std: float = 0.0) -> Network:
    """The PPO policy as a ``Network``: ``apply(params, obs[B, o])`` returns a distrax distribution.

    Discrete: categorical over ``MLP(s)`` logits. Continuous: ``N(MLP(s), diag(exp(log_std)^2))``
    with a state-independent, learned ``log_std`` (PPO paper sec. 6.1, after TRPO); samples are not
    squashed but clipped to ``[-1, 1]`` (see :func:`clipped_gaussian_log_prob`). Hidden layers are
    tanh (sec. 6.1); the last layer starts 100x smaller so the initial policy is near uniform /
    zero-mean (Andrychowicz et al. 2021, "What matters in on-policy RL", sec. 3.2).
    """
    out = spec.num_actions if spec.discrete else spec.action_size
    mlp = networks.mlp(hidden, out, activation=jnp.tanh, final_scale=0.01)

    if spec.discrete:
        return Network(
            init=mlp.init, apply=lambda params, obs: networks.categorical(mlp.apply(params, obs))
        )

    def init(key: jax.Array, obs: jax.Array):
        log_std = jnp.full((spec.action_size,), init_log_std, jnp.float32)
        return {"mlp": mlp.init(key, obs), "log_std": log_std}

    def apply(params, obs: jax.Array) -> distrax.Distribution:
        loc = mlp.apply(params["mlp"], obs)
        scale = jnp.broadcast_to(jnp.exp(params["log_std"]), loc.shape)
        return distrax.MultivariateNormalDiag(loc, scale)

    return Network(init=init, apply=apply)


def value_network(hidden: Sequence[int]) -> Network:
    """``V(s)``: a separate tanh MLP (no parameter sharing, PPO paper sec. 6.1); ``[B, o] -> [B]``."""
    mlp = networks.mlp(hidden, 1, activation=jnp.tanh, final_scale=1.0)
    return Network(init=mlp.init, apply=lambda params, obs: mlp.apply(params, obs)[..., 0])


def ppo_loss(
    params: Params,
    batch: Minibatch,
    policy: Network,
    value: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """The PPO objective as a loss to minimize: ``-(L^CLIP - c1 L^VF + c2 S)`` (PPO paper eq. 9).

    Advantages are standardized over ``batch`` when ``config.normalize_advantages``.

    Args:
      params: parameters being optimized.
      batch: a :class:`Minibatch` with leaves ``[B, ...]`` (observations already normalized).
      policy, value: the networks of :func:`policy_network` and :func:`value_network`.
      config: PPO settings (``clip_epsilon``, ``value_coef``, ``entropy_coef``, ...).
    """
    dist = policy.apply(params.policy, batch.obs)
    new_log_prob = log_prob(dist, batch.action, isinstance(dist, distrax.Categorical))
    advantage = batch.advantage
    if config.normalize_advantages:
        advantage = (advantage - jnp.mean(advantage)) / (jnp.std(advantage) + 1e-8)
    surrogate = clipped_surrogate(new_log_prob, batch.log_prob, advantage, config.clip_epsilon)
    v = value.apply(params.value, batch.obs)
    v_loss = value_loss(
        v, batch.value, batch.target, config.clip_epsilon if config.clip_value else None
    )
    entropy = jnp.mean(dist.entropy())
    loss = -surrogate + config.value_coef * v_loss - config.entropy_coef * entropy
    log_ratio = new_log_prob - batch.log_prob
    ratio = jnp.exp(log_ratio)
    metrics = {
        "loss/total": loss,
        "loss/policy": -surrogate,
        "loss/value": v_loss,
        "loss/entropy": entropy,
        # k3 estimator of KL(pi_old || pi): unbiased, non-negative (Schulman 2020, "Approximating KL")
        "policy/approx_kl": jnp.mean((ratio - 1.0) - log_ratio),
        "policy/clip_fraction": jnp.mean(
            (jnp.abs(ratio - 1.0) > config.clip_epsilon).astype(jnp.float32)
        ),
    }
    return loss, metrics


def check_rollout(batch: Transition, spec: EnvSpec, owner: str) -> None:
    """A rollout has leaves ``[T, E, ...]`` (see :func:`purerl.core.validation.check_batch`)."""
    validation.check_batch(batch, spec, owner, rollout=True)


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build PPO's policy (categorical or Gaussian, from ``spec``), value network and optimizer."""
    policy = policy_network(config.hidden, spec, config.init_log_std)
    value = value_network(config.hidden)
    optimizer = optax.adam(config.learning_rate, eps=config.adam_eps)
    if config.max_grad_norm is not None:
        optimizer = optax.chain(optax.clip_by_global_norm(config.max_grad_norm), optimizer)

    def observe(normalizer: normalization.NormalizerState, obs: jax.Array) -> jax.Array:
        if not config.normalize_observations:
            return obs.astype(jnp.float32)
        return normalization.normalize(normalizer, obs, clip=config.obs_clip)

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        key, policy_key, value_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, *spec.obs_shape), jnp.float32)
        params = Params(policy=policy.init(policy_key, obs), value=value.init(value_key, obs))
        return State(
            params=params,
            opt_state=optimizer.init(params),
            normalizer=normalization.init(spec.obs_shape),
            key=key,
            step=jnp.zeros((), jnp.int32),
        )

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        validation.check_obs(obs, spec)
        x = observe(state.normalizer, obs)
        dist = policy.apply(state.params.policy, x)
        if deterministic:
            # The mode; clipping continuous means is harmless (the env clips) and keeps them in range.
            a = dist.mode()
            a = a.astype(jnp.int32) if spec.discrete else jnp.clip(a, -1.0, 1.0)
        else:
            a = dist.sample(seed=key)
            # Clipped here rather than only by the env so Transitions hold executed actions.
            a = a.astype(jnp.int32) if spec.discrete else jnp.clip(a, -1.0, 1.0)
        extras = {
            "log_prob": log_prob(dist, a, spec.discrete),
            "value": value.apply(state.params.value, x),
        }
        return a, extras

    def prepare(state: State, batch: Transition):
        """Update the normalizer with the rollout, then evaluate pi_old and V_old on it.

        Normalizer first, then pi_old with the *new* statistics (as baselines ppo1 does), so the
        ratio is exactly 1 at the first minibatch step.
        """
        normalizer = state.normalizer
        if config.normalize_observations:
            normalizer = normalization.update(normalizer, batch.obs)
        obs = observe(normalizer, batch.obs)
        next_obs = observe(normalizer, batch.next_obs)
        old = state.params
        old_log_prob = log_prob(policy.apply(old.policy, obs), batch.action, spec.discrete)
        v = value.apply(old.value, obs)
        next_v = value.apply(old.value, next_obs)
        advantage = gae(
            batch.reward.astype(jnp.float32),
            v,
            next_v,
            batch.terminated.astype(jnp.float32),
            batch.truncated.astype(jnp.float32),
            config.discount,
            config.gae_lambda,
        )
        data = Minibatch(
            obs=obs,
            action=batch.action,
            log_prob=old_log_prob,
            value=v,
            advantage=advantage,
            target=advantage + v,
        )
        data = jax.lax.stop_gradient(data)
        return normalizer, data, {"value/explained_variance": explained_variance(v, data.target)}

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        """The objective of ``update``'s first step with one minibatch holding the whole rollout."""
        del key
        check_rollout(batch, spec, "ppo.loss")
        _, data, extra = prepare(state, batch)
        flat = jax.tree.map(lambda x: jnp.reshape(x, (-1, *x.shape[2:])), data)
        total, metrics = ppo_loss(params, flat, policy, value, config)
        return total, {**metrics, **extra}

    def update(state: State, batch: Transition):
        check_rollout(batch, spec, "ppo.update")
        num_steps, num_envs = np.shape(batch.reward)
        n = num_steps * num_envs
        k = config.num_minibatches
        if n % k:
            raise ValueError(
                f"ppo.update: the rollout holds T * E = {num_steps} * {num_envs} = {n} transitions, "
                f"not divisible by ppo.Config.num_minibatches ({k})"
            )
        normalizer, data, extra = prepare(state, batch)
        flat = jax.tree.map(lambda x: jnp.reshape(x, (n, *x.shape[2:])), data)
        key, epochs_key = jax.random.split(state.key)

        def minibatch_step(carry, mb: Minibatch):
            params, opt_state = carry
            grads, metrics = jax.grad(ppo_loss, has_aux=True)(params, mb, policy, value, config)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            metrics = {**metrics, "grad/norm": optax.tree.norm(grads)}
            return (params, opt_state), metrics

        def epoch(carry, epoch_key):
            perm = jax.random.permutation(epoch_key, n)
            shuffled = jax.tree.map(lambda x: jnp.reshape(x[perm], (k, n // k, *x.shape[1:])), flat)
            return jax.lax.scan(minibatch_step, carry, shuffled)

        (params, opt_state), metrics = jax.lax.scan(
            epoch,
            (state.params, state.opt_state),
            jax.random.split(epochs_key, config.num_epochs),
        )
        metrics = {name: jnp.mean(v) for name, v in metrics.items()}
        metrics.update(extra)
        new_state = State(
            params=params,
            opt_state=opt_state,
            normalizer=normalizer,
            key=key,
            step=state.step + 1,
        )
        return new_state, metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)
