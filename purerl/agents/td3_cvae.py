"""TD3-CVAE: offline RL as anti-exploration (Rezaeifar, Dadashi, Vieillard, Hussenot, Bachem,
Pietquin & Geist, AAAI 2022, arXiv 2106.06431).

The idea: subtract a prediction-error bonus from the reward,
``r~(s, a) = r(s, a) - alpha b(s, a)``, instead of adding it as exploration methods do, so the
policy is pushed back to the data's support. ``b`` is the reconstruction error of a conditional VAE
of the dataset's actions. The equations follow the first author's code
(``shidilrzf/Anti-exploration-RL``: ``rlkit/torch/td3/td3_bonus_ae_add.py``,
``examples/td3_bonus_ae.py``, ``examples/train_ae.py``, ``rlkit/torch/networks.py`` ``VAE``):

* CVAE ``q(z | s, a) = N(mu, std^2)``, ``a^ = Dec(s, z)``, loss ``mean (a^ - a)^2 + 0.5 KL`` with
  ``KL = -1/2 mean(1 + log std^2 - mu^2 - std^2)`` -> :func:`cvae_network`, :func:`cvae_loss`,
  :func:`kl_divergence`, :func:`latent_std`
* bonus ``b(s, a) = mean_i (a^_i - a_i)^2 / |A|``, ``z ~ q(z | s, a)`` (``exp(b)`` with
  ``use_log``) -> :func:`bonus`
* target ``y = c_r (r - offset) + gamma (1 - d) [min_i Q'_i(s', a~') - alpha b(s', a~')]`` with
  TD3's smoothed target action ``a~'`` -> :func:`critic_loss`
  (:func:`purerl.agents.td3.target_action`)
* actor (every ``policy_delay`` critic steps) ``-mean [Q_1(s, pi(s)) - alpha b(s, pi(s))]``, the
  gradient flowing through ``b`` into the action but not into the (frozen) CVAE
  -> :func:`actor_loss`
* ``c_r = 1 / (max r - min r)`` over the dataset -> :func:`prepare`.

The authors train the CVAE in a separate script and freeze it; here both phases live in one
``update``: the first ``cvae_steps`` calls train the CVAE only, later calls run TD3 with the bonus
of the frozen CVAE (``lax.cond`` on the unbatched step counter). With ``alpha = 0`` the TD3 phase is
bit-identical to :mod:`purerl.agents.td3` (same key use, same float operations): the bonus draws
its random numbers from ``fold_in(State.bonus_key, step)``, never from TD3's key.

Observation normalisation with the dataset's statistics lives in the offline loop
(``purerl.loops.offline``), not here. Truncation: ``d`` is ``terminated`` only.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from purerl.agents import td3
from purerl.core import networks, validation
from purerl.core.tree import lerp
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "offline"  # which loop trains this agent (purerl.loops.offline)
NEEDS_NEXT_ACTION = False  # the TD3 target uses the target policy at s', not the dataset's a'

LOG_VAR_RANGE = (-4.0, 15.0)  # clip of the encoder's log-variance head (networks.py VAE.forward)
CVAE_STD = ("exp", "half_exp")
BONUS_LATENT = ("sample", "mean")

_CVAE_METRICS = ("loss/cvae", "cvae/recon", "cvae/kl", "bonus/data")
_ACTOR_METRICS = ("loss/actor", "bonus/policy")
_CRITIC_METRICS = ("loss/critic", "q/mean", "q/target", "bonus/target")


@dataclasses.dataclass(frozen=True)
class Config:
    # TD3 (authors' code, examples/td3_bonus_ae.py and td3_bonus_ae_add.py defaults).
    actor_lr: float = 1e-4  # --policy_lr
    critic_lr: float = 1e-4  # --qf_lr
    hidden: tuple[int, ...] = (400, 300)  # policy_kwargs / qf_kwargs hidden_sizes
    discount: float = 0.99  # trainer_kwargs discount
    tau: float = 0.005  # TD3_AE_ADD_Trainer default
    policy_noise: float = 0.2  # target_policy_noise
    noise_clip: float = 0.5  # target_policy_noise_clip
    policy_delay: int = 2  # policy_and_target_update_period
    exploration_noise: float = 0.1  # TD3 paper; only for act(..., deterministic=False)
    # Anti-exploration bonus.
    alpha: float = 1.0  # --beta (bonus weight); the paper's per-domain values were not retrieved
    use_log: bool = False  # --use_log: b <- exp(b) (the code computes exp despite the name)
    bonus_latent: str = "sample"  # z ~ q(z|s, a) as VAE.forward does; "mean" uses z = mu
    # CVAE (examples/train_ae.py with --network VAE; networks.py VAE).
    cvae_hidden: tuple[int, ...] = (750, 750)  # VAE(M=750), encoder and decoder
    latent_size: int = 12  # --latent_size
    cvae_lr: float = 1e-4  # --lr (Adam)
    kl_weight: float = 0.5  # train_ae.py: loss = recon + 0.5 * KL
    cvae_std: str = "exp"  # std = exp(log_var) as VAE.forward does; "half_exp": exp(log_var / 2)
    cvae_steps: int = 50_000  # updates of the CVAE phase; deviation 1 in docs/agents/td3_cvae.md
    # Rewards (examples/td3_bonus_ae.py).
    reward_scale: float = 1.0  # c_r; prepare() sets 1 / (max r - min r) when auto_reward_scale
    auto_reward_scale: bool = True  # the authors always scale by 1 / (max r - min r)
    reward_offset: float = 0.0  # subtracted from r before scaling (rewards_shift_param)
    reward_shift: float | None = None  # --reward_shift: prepare() sets offset = min r - shift

    def __post_init__(self):
        owner = "td3_cvae.Config"
        validation.positive(
            owner,
            actor_lr=self.actor_lr,
            critic_lr=self.critic_lr,
            cvae_lr=self.cvae_lr,
            reward_scale=self.reward_scale,
        )
        validation.in_unit_interval(owner, discount=self.discount, tau=self.tau)
        validation.non_negative(
            owner,
            policy_noise=self.policy_noise,
            noise_clip=self.noise_clip,
            exploration_noise=self.exploration_noise,
            alpha=self.alpha,
            kl_weight=self.kl_weight,
        )
        validation.layer_sizes(owner, "hidden", self.hidden)
        validation.layer_sizes(owner, "cvae_hidden", self.cvae_hidden)
        for name, low in (("policy_delay", 1), ("latent_size", 1), ("cvae_steps", 0)):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
                raise ValueError(f"{owner}.{name} must be an int >= {low}, got {v!r}")
        for name, allowed in (("cvae_std", CVAE_STD), ("bonus_latent", BONUS_LATENT)):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{owner}.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        for name in ("use_log", "auto_reward_scale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{owner}.{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("reward_offset", "reward_shift"):
            v = getattr(self, name)
            if (name == "reward_shift" and v is None) or isinstance(v, jax.core.Tracer):
                continue  # traced values (a config built inside vmap) cannot be checked
            if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
                raise ValueError(f"{owner}.{name} must be a finite number, got {v!r}")
            if not math.isfinite(float(v)):
                raise ValueError(f"{owner}.{name} must be a finite number, got {v!r}")

    @property
    def td3_config(self) -> td3.Config:
        """The TD3 part of this config: ``td3.make(config.td3_config, spec)`` is the ``alpha = 0``
        agent that the TD3 phase reduces to."""
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


def prepare(config: Config, dataset: Any) -> Config:
    """Fill the dataset-dependent reward settings (called by the offline loop before ``make``).

    * ``auto_reward_scale``: ``reward_scale = 1 / (max r - min r)`` (authors' code,
      ``examples/td3_bonus_ae.py``);
    * ``reward_shift`` set: ``reward_offset = min r - reward_shift``, so the shifted rewards
      ``r - reward_offset`` start at ``reward_shift`` (the code's ``rewards_shift_param``).

    Args:
      config: the agent's config.
      dataset: a ``purerl.datasets.Dataset`` (``rewards`` is a host ``[N]`` array).
    """
    rewards = np.asarray(dataset.rewards, np.float64)
    if rewards.size == 0:
        raise ValueError("td3_cvae.prepare: the dataset has no rewards")
    low, high = float(rewards.min()), float(rewards.max())
    changes: dict[str, float] = {}
    if config.auto_reward_scale:
        if not high > low:
            raise ValueError(
                f"td3_cvae.prepare: every reward in the dataset equals {low}, so the scale "
                "1 / (max r - min r) is undefined; set auto_reward_scale=False (and reward_scale)"
            )
        changes["reward_scale"] = 1.0 / (high - low)
    if config.reward_shift is not None:
        changes["reward_offset"] = low - float(config.reward_shift)
    return dataclasses.replace(config, **changes)


class CVAEParams(NamedTuple):
    encoder: Any
    decoder: Any


class Params(NamedTuple):
    actor: Any
    critic: Any
    cvae: CVAEParams


class State(NamedTuple):
    params: Params
    target: td3.Params  # target actor and critics (the CVAE has no target)
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    cvae_opt: optax.OptState
    key: jax.Array  # TD3's key, split exactly as td3.update splits it (untouched in the CVAE phase)
    bonus_key: jax.Array  # fixed; fold_in(bonus_key, step) gives each update's CVAE / bonus noise
    step: jax.Array  # updates done in both phases, int32; the TD3 phase starts at cvae_steps
    actor_metrics: Metrics  # last actor update's metrics (the actor moves every policy_delay steps)
    cvae_metrics: Metrics  # last CVAE-phase metrics, repeated once the CVAE is frozen


def latent_std(log_var: jax.Array, cvae_std: str = "exp") -> jax.Array:
    """The posterior's standard deviation from the encoder's ``log_var`` head.

    ``"exp"``: ``std = exp(log_var)``, as the authors' ``VAE.forward`` (and BCQ's VAE) does, so the
    head is really ``log std``; ``"half_exp"``: the textbook ``std = exp(log_var / 2)``.
    """
    if cvae_std == "exp":
        return jnp.exp(log_var)
    if cvae_std == "half_exp":
        return jnp.exp(0.5 * log_var)
    raise ValueError(f"cvae_std must be one of {CVAE_STD}, got {cvae_std!r}")


def kl_divergence(mean: jax.Array, log_var: jax.Array, cvae_std: str = "exp") -> jax.Array:
    """``KL(N(mu, std^2) || N(0, 1)) = -1/2 mean(1 + log std^2 - mu^2 - std^2)`` with ``std`` from
    :func:`latent_std` (``train_ae.py``); the mean runs over the batch *and* the latent dimensions,
    as ``torch.mean`` does there. Shapes: ``[..., latent]`` -> scalar."""
    std = latent_std(log_var, cvae_std)
    log_std2 = 2.0 * log_var if cvae_std == "exp" else log_var  # log std^2, without log(exp(.))
    return -0.5 * jnp.mean(1.0 + log_std2 - mean**2 - std**2)


def cvae_network(config: Config, spec: EnvSpec) -> Network:
    """The BCQ-style conditional VAE of actions (authors' ``networks.py`` ``VAE``).

    Encoder ``[s, a] -> cvae_hidden -> (mu, log_var)`` (``log_var`` clipped to
    :data:`LOG_VAR_RANGE`), ``z = mu + std * noise`` (:func:`latent_std`), decoder
    ``[s, z] -> cvae_hidden -> tanh -> a^``. ReLU hidden layers.

    ``init(key, obs[B, o], action[B, a], noise[B, latent]) -> CVAEParams``;
    ``apply(params, obs, action, noise) -> (action_hat[B, a], mu[B, latent], log_var[B, latent])``.
    The noise is an input so ``apply`` stays deterministic (zeros give ``z = mu``).
    """
    latent = config.latent_size
    encoder = networks.mlp(config.cvae_hidden, 2 * latent)
    decoder = networks.mlp(config.cvae_hidden, spec.action_size)

    def init(key: jax.Array, obs: jax.Array, action: jax.Array, noise: jax.Array) -> CVAEParams:
        enc_key, dec_key = jax.random.split(key)
        return CVAEParams(
            encoder=encoder.init(enc_key, jnp.concatenate([obs, action], axis=-1)),
            decoder=decoder.init(dec_key, jnp.concatenate([obs, noise], axis=-1)),
        )

    def apply(params: CVAEParams, obs: jax.Array, action: jax.Array, noise: jax.Array):
        h = encoder.apply(params.encoder, jnp.concatenate([obs, action], axis=-1))
        mean, log_var = h[..., :latent], jnp.clip(h[..., latent:], *LOG_VAR_RANGE)
        z = mean + latent_std(log_var, config.cvae_std) * noise
        action_hat = jnp.tanh(decoder.apply(params.decoder, jnp.concatenate([obs, z], axis=-1)))
        return action_hat, mean, log_var

    return Network(init=init, apply=apply)


def cvae_loss(
    cvae_params: CVAEParams, batch: Transition, key: jax.Array, cvae: Network, config: Config
) -> tuple[jax.Array, Metrics]:
    """CVAE loss ``mean (a^ - a)^2 + kl_weight KL`` on the batch's dataset actions,
    ``z ~ q(z|s, a)`` reparameterised (``train_ae.py``; ``F.mse_loss`` averages over batch and
    action dimensions).
    Shapes: batch leaves ``[B, ...]``."""
    noise = jax.random.normal(key, (*batch.action.shape[:-1], config.latent_size))
    action_hat, mean, log_var = cvae.apply(cvae_params, batch.obs, batch.action, noise)
    recon = jnp.mean((action_hat - batch.action) ** 2)
    kl = kl_divergence(mean, log_var, config.cvae_std)
    loss = recon + config.kl_weight * kl
    return loss, {"loss/cvae": loss, "cvae/recon": recon, "cvae/kl": kl}


def bonus(
    cvae_params: CVAEParams,
    obs: jax.Array,
    action: jax.Array,
    key: jax.Array,
    cvae: Network,
    config: Config,
) -> jax.Array:
    """Anti-exploration bonus ``b(s, a) = mean_i (a^_i - a_i)^2 / |A|``, ``a^ = Dec(s, z)``.

    ``z ~ q(z | s, a)`` (``bonus_latent="sample"``, the code's ``VAE.forward``) or ``z = mu``
    (``"mean"``). The squared error is averaged over the action dimensions and divided by ``|A|``
    once more, as ``TD3_AE_ADD_Trainer._get_bonus`` does; ``use_log`` returns ``exp(b)``.
    Differentiable in ``action`` (and in ``cvae_params``; wrap them in ``stop_gradient`` to freeze).

    Args:
      cvae_params: the CVAE's parameters (``State.params.cvae``).
      obs: ``[..., *obs_shape]`` observations.
      action: ``[..., |A|]`` actions in ``[-1, 1]``.
      key: draws the latent noise (unused with ``bonus_latent="mean"``).
      cvae: :func:`cvae_network` for the same config and spec.
      config: reads ``latent_size``, ``bonus_latent`` and ``use_log``.

    Returns:
      ``[...]`` bonuses.
    """
    shape = (*action.shape[:-1], config.latent_size)
    if config.bonus_latent == "sample":
        noise = jax.random.normal(key, shape)
    else:
        noise = jnp.zeros(shape)
    action_hat, _, _ = cvae.apply(cvae_params, obs, action, noise)
    b = jnp.mean((action_hat - action) ** 2, axis=-1) / action.shape[-1]
    return jnp.exp(b) if config.use_log else b


def critic_loss(
    critic_params: Any,
    target: td3.Params,
    batch: Transition,
    key: jax.Array,
    actor: Network,
    critic: Network,
    bonus_fn: Any,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Clipped double-Q TD loss with the bonus subtracted at the target action,
    ``sum_i mean (y - Q_i(s, a))^2`` with
    ``y = c_r (r - offset) + gamma (1 - term) [min_i Q'_i(s', a~') - alpha b(s', a~')]``
    (``TD3_AE_ADD_Trainer.train_from_torch``).

    Args:
      bonus_fn: ``bonus_fn(obs[B, o], action[B, a]) -> [B]``, e.g. :func:`bonus` with frozen CVAE
        parameters and a key bound (a constant for tests).
      key: TD3's target-smoothing key (:func:`purerl.agents.td3.target_action`).
      Other arguments as :func:`purerl.agents.td3.critic_loss`; batch leaves ``[B, ...]``.
    """
    # td3.target_action reads only policy_noise and noise_clip, which this Config shares.
    next_a = td3.target_action(actor, target.actor, batch.next_obs, key, config)
    next_q = jnp.min(critic.apply(target.critic, batch.next_obs, next_a), axis=0)
    next_b = bonus_fn(batch.next_obs, next_a)
    reward = config.reward_scale * (batch.reward - config.reward_offset)
    y = reward + config.discount * (1.0 - batch.terminated) * (next_q - config.alpha * next_b)
    q = critic.apply(critic_params, batch.obs, batch.action)  # [2, B]
    loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(y)) ** 2, axis=-1))
    return loss, {
        "loss/critic": loss,
        "q/mean": jnp.mean(q),
        "q/target": jnp.mean(y),
        "bonus/target": jnp.mean(next_b),
    }


def actor_loss(
    actor_params: Any,
    critic_params: Any,
    batch: Transition,
    actor: Network,
    critic: Network,
    bonus_fn: Any,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Penalised deterministic policy gradient objective
    ``-mean [Q_1(s, pi(s)) - alpha b(s, pi(s))]`` (``TD3_AE_ADD_Trainer``); the gradient reaches
    the actor through both ``Q_1`` and ``b``.

    Args:
      bonus_fn: ``bonus_fn(obs[B, o], action[B, a]) -> [B]``, differentiable in ``action``.
    """
    pi = actor.apply(actor_params, batch.obs)
    q1 = critic.apply(critic_params, batch.obs, pi)[0]
    b = bonus_fn(batch.obs, pi)
    loss = -jnp.mean(q1 - config.alpha * b)
    return loss, {"loss/actor": loss, "bonus/policy": jnp.mean(b)}


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build TD3-CVAE's networks and optimizers for ``spec`` (continuous actions in [-1, 1])."""
    if spec.discrete:
        raise ValueError(f"TD3-CVAE needs continuous actions; env {spec.name!r} is discrete")
    base = td3.make(config.td3_config, spec)  # init of actor/critics and `act` are TD3's
    actor = networks.deterministic_policy(config.hidden, spec.action_size)
    critic = networks.q_network(config.hidden, num_critics=2)
    cvae = cvae_network(config, spec)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)
    cvae_opt = optax.adam(config.cvae_lr)
    zero = jnp.zeros((), jnp.float32)

    def bound_bonus(cvae_params: CVAEParams, key: jax.Array):
        frozen = jax.lax.stop_gradient(cvae_params)
        return lambda obs, action: bonus(frozen, obs, action, key, cvae, config)

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        td3_key, cvae_key, bonus_key = jax.random.split(key, 3)
        s = base.init(td3_key)
        cvae_params = cvae.init(
            cvae_key,
            jnp.zeros((1, *spec.obs_shape)),
            jnp.zeros((1, spec.action_size)),
            jnp.zeros((1, config.latent_size)),
        )
        return State(
            params=Params(actor=s.params.actor, critic=s.params.critic, cvae=cvae_params),
            target=s.target,
            actor_opt=s.actor_opt,
            critic_opt=s.critic_opt,
            cvae_opt=cvae_opt.init(cvae_params),
            key=s.key,
            bonus_key=bonus_key,
            step=jnp.zeros((), jnp.int32),
            actor_metrics={k: zero for k in _ACTOR_METRICS},
            cvae_metrics={k: zero for k in _CVAE_METRICS},
        )

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        validation.check_batch(batch, spec, "td3_cvae.loss")
        cvae_key, noise_key, target_key, actor_key = jax.random.split(key, 4)
        v_loss, v_metrics = cvae_loss(params.cvae, batch, cvae_key, cvae, config)
        c_loss, c_metrics = critic_loss(
            params.critic,
            state.target,
            batch,
            noise_key,
            actor,
            critic,
            bound_bonus(params.cvae, target_key),
            config,
        )
        a_loss, a_metrics = actor_loss(
            params.actor,
            params.critic,
            batch,
            actor,
            critic,
            bound_bonus(params.cvae, actor_key),
            config,
        )
        phase = (state.step < config.cvae_steps).astype(jnp.float32)
        metrics = {**v_metrics, **c_metrics, **a_metrics, "phase/cvae": phase}
        return v_loss + c_loss + a_loss, metrics

    def cvae_phase(state: State, batch: Transition, key: jax.Array):
        grads, metrics = jax.grad(cvae_loss, has_aux=True)(
            state.params.cvae, batch, key, cvae, config
        )
        # Same key and parameters as the loss: with bonus_latent="sample" XLA shares the forward.
        data_bonus = bonus(state.params.cvae, batch.obs, batch.action, key, cvae, config)
        cvae_metrics = {**metrics, "bonus/data": jnp.mean(data_bonus)}
        updates, cvae_opt_state = cvae_opt.update(grads, state.cvae_opt)
        params = state.params._replace(cvae=optax.apply_updates(state.params.cvae, updates))
        new_state = state._replace(
            params=params, cvae_opt=cvae_opt_state, step=state.step + 1, cvae_metrics=cvae_metrics
        )
        metrics = {
            **{k: zero for k in _CRITIC_METRICS},
            **state.actor_metrics,
            **cvae_metrics,
            "phase/cvae": jnp.ones((), jnp.float32),
        }
        return new_state, metrics

    def td3_phase(state: State, batch: Transition, bonus_key: jax.Array):
        target_bonus_key, actor_bonus_key = jax.random.split(bonus_key)
        # From here to the Polyak step this is td3.update line for line (bit-identical at alpha=0).
        key, noise_key = jax.random.split(state.key)
        grads, metrics = jax.grad(critic_loss, has_aux=True)(
            state.params.critic,
            state.target,
            batch,
            noise_key,
            actor,
            critic,
            bound_bonus(state.params.cvae, target_bonus_key),
            config,
        )
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt)
        params = state.params._replace(critic=optax.apply_updates(state.params.critic, updates))
        td3_step = state.step - config.cvae_steps + 1  # td3.State.step after this update

        def delayed(operand):
            params, target, opt_state = operand
            grads, a_metrics = jax.grad(actor_loss, has_aux=True)(
                params.actor,
                params.critic,
                batch,
                actor,
                critic,
                bound_bonus(params.cvae, actor_bonus_key),
                config,
            )
            updates, opt_state = actor_opt.update(grads, opt_state)
            params = params._replace(actor=optax.apply_updates(params.actor, updates))
            online = td3.Params(actor=params.actor, critic=params.critic)
            return params, lerp(target, online, config.tau), opt_state, a_metrics

        def skip(operand):
            params, target, opt_state = operand
            return params, target, opt_state, state.actor_metrics

        # A real branch when step is not batched (e.g. the whole loop vmapped over seeds).
        params, target, actor_opt_state, actor_metrics = jax.lax.cond(
            td3_step % config.policy_delay == 0,
            delayed,
            skip,
            (params, state.target, state.actor_opt),
        )
        new_state = state._replace(
            params=params,
            target=target,
            actor_opt=actor_opt_state,
            critic_opt=critic_opt_state,
            key=key,
            step=state.step + 1,
            actor_metrics=actor_metrics,
        )
        metrics = {
            **metrics,
            **actor_metrics,
            **state.cvae_metrics,
            "phase/cvae": jnp.zeros((), jnp.float32),
        }
        return new_state, metrics

    def update(state: State, batch: Transition):
        validation.check_batch(batch, spec, "td3_cvae.update")
        bonus_key = jax.random.fold_in(state.bonus_key, state.step)
        if config.cvae_steps == 0:
            return td3_phase(state, batch, bonus_key)
        # A real branch when step is not batched; the CVAE phase leaves TD3's state (key included)
        # untouched, the TD3 phase leaves the CVAE's.
        return jax.lax.cond(
            state.step < config.cvae_steps, cvae_phase, td3_phase, state, batch, bonus_key
        )

    return Algorithm(init=init, act=base.act, loss=loss, update=update)
