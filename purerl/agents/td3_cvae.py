"""TD3-CVAE: offline RL as anti-exploration (Rezaeifar, Dadashi, Vieillard, Hussenot, Bachem,
Pietquin & Geist, AAAI 2022, arXiv 2106.06431).

Subtract a prediction-error bonus from the reward, ``r~(s, a) = r(s, a) - alpha b(s, a)``, so the
policy is pushed back to the data's support; ``b`` is the reconstruction error of a conditional
VAE of the dataset's actions. Equations from the first author's code (``shidilrzf/
Anti-exploration-RL``: ``rlkit/torch/td3/td3_bonus_ae_add.py``, ``examples/td3_bonus_ae.py``,
``examples/train_ae.py``, ``rlkit/torch/networks.py`` ``VAE``):

* CVAE ``q(z | s, a) = N(mu, std^2)``, ``a^ = Dec(s, z)``, loss ``mean (a^ - a)^2 + 0.5 KL`` with
  ``KL = -1/2 mean(1 + log std^2 - mu^2 - std^2)`` -> :func:`cvae_network`, :func:`cvae_loss`,
  :func:`kl_divergence`, :func:`latent_std`; one Adam step -> :func:`cvae_update`
* bonus ``b(s, a) = mean_i (a^_i - a_i)^2 / |A|``, ``z ~ q(z | s, a)`` -> :func:`bonus`; the
  penalty ``-alpha b(s, a)`` as a :class:`purerl.core.types.Rewarder` -> :func:`make_rewarder`
* target ``y = c_r (r - offset) + gamma (1 - d) [min_i Q'_i(s', a~') - alpha b(s', a~')]``, ``a~'``
  TD3's smoothed target action -> :func:`critic_loss`; ``c_r = 1 / (max r - min r)`` ->
  :func:`prepare`
* actor (every ``policy_delay`` critic steps) ``-mean [Q_1(s, pi(s)) - alpha b(s, pi(s))]``, the
  gradient flowing through ``b`` into the action, not into the frozen CVAE -> :func:`actor_loss`.

The authors train the CVAE in a separate script and freeze it; here the agent is the TD3 template
(:func:`purerl.agents.td3.make_template`) with the rewarder's state as extra state: the first
``cvae_steps`` updates are the rewarder's ``update`` alone, later ones TD3 with the frozen CVAE's
penalty. With ``alpha = 0`` the TD3 phase is bit-identical to :mod:`purerl.agents.td3`: the bonus
draws its noise from ``fold_in(CVAEState.key, step)``, never from TD3's key. Observations are
normalised by the offline loop; ``d`` is ``terminated`` only.
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
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Rewarder, Transition

LOOP = "offline"  # which loop trains this agent (purerl.loops.offline)
NEEDS_NEXT_ACTION = False  # the TD3 target uses the target policy at s', not the dataset's a'

LOG_VAR_RANGE = (-4.0, 15.0)  # clip of the encoder's log-variance head (networks.py VAE.forward)
CVAE_STD = ("exp", "half_exp")
BONUS_LATENT = ("sample", "mean")
ACTOR_METRICS = ("loss/actor", "bonus/policy")

Params = td3.Params  # actor and critics; the CVAE is in State.extra (a CVAEState)
State = td3.State


@dataclasses.dataclass(frozen=True)
class Config(td3.Config):
    # TD3 (authors' code, examples/td3_bonus_ae.py and td3_bonus_ae_add.py defaults); the other
    # TD3 fields keep td3.Config's values, which match the authors' (discount 0.99, tau 0.005,
    # target_policy_noise 0.2 clipped at 0.5, policy_and_target_update_period 2).
    actor_lr: float = 1e-4  # --policy_lr
    critic_lr: float = 1e-4  # --qf_lr
    hidden: tuple[int, ...] = (400, 300)  # policy_kwargs / qf_kwargs hidden_sizes
    normalize_observations: bool = False  # offline: the paper's raw (or dataset-normalized) obs
    # Anti-exploration bonus.
    alpha: float = 1.0  # --beta (bonus weight); the paper's per-domain values were not retrieved
    use_log: bool = False  # --use_log: b <- exp(b) (the code computes exp despite the name)
    bonus_latent: str = "sample"  # z ~ q(z|s, a) as VAE.forward does; "mean" uses z = mu
    # CVAE (examples/train_ae.py with --network VAE; networks.py VAE).
    cvae_hidden: tuple[int, ...] = (750, 750)  # VAE(M=750), encoder and decoder
    latent_size: int | None = None  # None: 2 |A|, as train_ae.py sets it (latent_dim)
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
        super().__post_init__()
        owner = "td3_cvae.Config"
        validation.positive(owner, cvae_lr=self.cvae_lr, reward_scale=self.reward_scale)
        validation.non_negative(owner, alpha=self.alpha, kl_weight=self.kl_weight)
        validation.layer_sizes(owner, "cvae_hidden", self.cvae_hidden)
        if self.latent_size is not None:
            validation.int_at_least(f"{owner}.latent_size", self.latent_size, 1)
        validation.int_at_least(f"{owner}.cvae_steps", self.cvae_steps, 0)
        validation.one_of(f"{owner}.cvae_std", self.cvae_std, CVAE_STD)
        validation.one_of(f"{owner}.bonus_latent", self.bonus_latent, BONUS_LATENT)
        for name in ("use_log", "auto_reward_scale"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{owner}.{name} must be a bool, got {getattr(self, name)!r}")
        for name in ("reward_offset", "reward_shift"):
            v = getattr(self, name)
            if (name == "reward_shift" and v is None) or isinstance(v, jax.core.Tracer):
                continue  # traced values (a config built inside vmap) cannot be checked
            number = isinstance(v, (int, float, np.number)) and not isinstance(v, bool)
            if not (number and math.isfinite(float(v))):
                raise ValueError(f"{owner}.{name} must be a finite number, got {v!r}")


class CVAEParams(NamedTuple):
    encoder: Any
    decoder: Any


class CVAEState(NamedTuple):
    """The rewarder's state (and the agent's ``State.extra``)."""

    params: CVAEParams
    opt: optax.OptState
    key: jax.Array  # fixed; fold_in(key, step) gives each update's CVAE / bonus noise
    step: jax.Array  # CVAE updates done, int32


def prepare(config: Config, dataset: Any) -> Config:
    """Fill the dataset-dependent reward settings (called by the offline loop before ``make``).

    * ``auto_reward_scale``: ``reward_scale = 1 / (max r - min r)`` (authors' code,
      ``examples/td3_bonus_ae.py``);
    * ``reward_shift`` set: ``reward_offset = min r - reward_shift``, so the shifted rewards
      ``r - reward_offset`` start at ``reward_shift`` (the code's ``rewards_shift_param``).

    ``dataset``: a ``purerl.datasets.Dataset`` (``rewards`` is a host ``[N]`` array).
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


def latent_dim(config: Config, action_size: int) -> int:
    """``config.latent_size``, or ``2 |A|`` if ``None`` (``train_ae.py``: ``2 * action_dim``)."""
    return 2 * action_size if config.latent_size is None else config.latent_size


def latent_std(log_var: jax.Array, cvae_std: str = "exp") -> jax.Array:
    """The posterior's std from the ``log_var`` head: ``"exp"``: ``exp(log_var)`` as the authors'
    ``VAE.forward`` (and BCQ's) does; ``"half_exp"``: the textbook ``exp(log_var / 2)``."""
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
    latent = latent_dim(config, spec.action_size)
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
    latent = latent_dim(config, batch.action.shape[-1])
    noise = jax.random.normal(key, (*batch.action.shape[:-1], latent))
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
    ``cvae_params``: a :class:`CVAEState`'s ``params``; ``obs [..., o]``, ``action [..., |A|]`` in
    ``[-1, 1]`` -> ``[...]``; ``key`` draws the latent noise (unused with ``"mean"``); ``cvae`` is
    :func:`cvae_network` of the same config and spec.
    """
    shape = (*action.shape[:-1], latent_dim(config, action.shape[-1]))
    sample = config.bonus_latent == "sample"
    noise = jax.random.normal(key, shape) if sample else jnp.zeros(shape)
    action_hat, _, _ = cvae.apply(cvae_params, obs, action, noise)
    b = jnp.mean((action_hat - action) ** 2, axis=-1) / action.shape[-1]
    return jnp.exp(b) if config.use_log else b


def init_cvae_state(
    config: Config, spec: EnvSpec, params_key: jax.Array, noise_key: jax.Array
) -> CVAEState:
    """A fresh :class:`CVAEState`: CVAE from ``params_key``, noise ``noise_key``, step 0."""
    obs, act = jnp.zeros((1, *spec.obs_shape)), jnp.zeros((1, spec.action_size))
    z = jnp.zeros((1, latent_dim(config, spec.action_size)))
    params = cvae_network(config, spec).init(params_key, obs, act, z)
    return CVAEState(params, optax.adam(config.cvae_lr).init(params), noise_key, jnp.int32(0))


def cvae_update(
    state: CVAEState, batch: Transition, config: Config, spec: EnvSpec
) -> tuple[CVAEState, Metrics]:
    """One Adam step on :func:`cvae_loss` over ``batch [B]`` (``train_ae.py``), noise key
    ``fold_in(state.key, state.step)``. Metrics: ``loss/cvae``, ``cvae/recon``, ``cvae/kl`` and
    ``bonus/data``, the mean bonus of the batch's own actions (same key and parameters as the
    loss: with ``bonus_latent="sample"`` XLA shares the forward pass)."""
    cvae = cvae_network(config, spec)
    key = jax.random.fold_in(state.key, state.step)
    grads, metrics = jax.grad(cvae_loss, has_aux=True)(state.params, batch, key, cvae, config)
    data_bonus = bonus(state.params, batch.obs, batch.action, key, cvae, config)
    updates, opt = optax.adam(config.cvae_lr).update(grads, state.opt)
    params = optax.apply_updates(state.params, updates)
    new_state = CVAEState(params, opt, state.key, state.step + 1)
    return new_state, {**metrics, "bonus/data": jnp.mean(data_bonus)}


def make_rewarder(config: Config, spec: EnvSpec) -> Rewarder:
    """The anti-exploration penalty ``-alpha b(s, a)`` as a :class:`Rewarder`.

    * ``init(key, spec) -> CVAEState`` (:func:`init_cvae_state` with ``split(key)``);
    * ``update(state, batch [B]) -> (state, metrics)``: one CVAE step (:func:`cvae_update`);
    * ``reward(state, transition [B]) -> (state, -alpha b(s, a) [B], metrics)``, noise key
      ``fold_in(state.key, state.step)``; metric ``bonus/mean``. The state is unchanged.

    The agent uses the same functions (CVAE phase: :func:`cvae_update` on ``State.extra``; target
    and actor terms: ``-alpha`` :func:`bonus` of the frozen CVAE). Needs ``config`` and ``spec``.
    """
    cvae = cvae_network(config, spec)

    def init(key: jax.Array, spec_: EnvSpec = spec) -> CVAEState:
        del spec_
        return init_cvae_state(config, spec, *jax.random.split(key))

    def reward(state: CVAEState, transition: Transition):
        key = jax.random.fold_in(state.key, state.step)
        b = bonus(state.params, transition.obs, transition.action, key, cvae, config)
        return state, -config.alpha * b, {"bonus/mean": jnp.mean(b)}

    def update(state: CVAEState, batch: Transition):
        return cvae_update(state, batch, config, spec)

    return Rewarder(init=init, reward=reward, update=update)


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
    """TD3's loss ``sum_i mean (y - Q_i(s, a))^2`` with the penalty at the target action,
    ``y = c_r (r - offset) + gamma (1 - term) [min_i Q'_i(s', a~') - alpha b(s', a~')]``
    (``TD3_AE_ADD_Trainer.train_from_torch``). ``bonus_fn(obs [B, o], action [B, a]) -> [B]``,
    e.g. :func:`bonus` of a frozen CVAE with a key bound; ``key``: TD3's smoothing key; the rest
    as :func:`purerl.agents.td3.critic_loss`."""

    def penalty(next_obs: jax.Array, next_a: jax.Array):
        next_b = bonus_fn(next_obs, next_a)
        return -config.alpha * next_b, {"bonus/target": jnp.mean(next_b)}

    reward = config.reward_scale * (batch.reward - config.reward_offset)
    return td3.critic_loss(
        critic_params, target, batch, key, actor, critic, config, penalty, reward
    )


def actor_loss(
    actor_params: Any,
    critic_params: Any,
    batch: Transition,
    actor: Network,
    critic: Network,
    bonus_fn: Any,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Penalised policy objective ``-mean [Q_1(s, pi(s)) - alpha b(s, pi(s))]``
    (``TD3_AE_ADD_Trainer``): the gradient reaches the actor through ``Q_1`` and ``b``
    (``bonus_fn(obs [B, o], action [B, a]) -> [B]``, differentiable in ``action``)."""
    pi = actor.apply(actor_params, batch.obs)
    q1 = critic.apply(critic_params, batch.obs, pi)[0]
    b = bonus_fn(batch.obs, pi)
    loss = -jnp.mean(q1 - config.alpha * b)
    return loss, {"loss/actor": loss, "bonus/policy": jnp.mean(b)}


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build TD3-CVAE for ``spec`` (continuous actions in [-1, 1]): the TD3 template with the
    :func:`make_rewarder` state as extra state, trained alone for ``cvae_steps`` updates."""
    actor, critic = td3.networks_for(config, spec, "TD3-CVAE")
    cvae = cvae_network(config, spec)

    def bonus_fns(state: td3.State):
        """This update's frozen bonus at the target and at the policy's action."""
        frozen = jax.lax.stop_gradient(state.extra.params)
        keys = jax.random.split(jax.random.fold_in(state.extra.key, state.step))
        return [lambda o, a, k=k: bonus(frozen, o, a, k, cvae, config) for k in keys]

    def c_loss(critic_params, state: td3.State, batch: Transition, key: jax.Array):
        return critic_loss(
            critic_params, state.target, batch, key, actor, critic, bonus_fns(state)[0], config
        )

    def a_loss(actor_params, critic_params, state: td3.State, batch: Transition):
        bonus_fn = bonus_fns(state)[1]
        return actor_loss(actor_params, critic_params, batch, actor, critic, bonus_fn, config)

    def init_extra(key: jax.Array):
        td3_key, cvae_key, noise_key = jax.random.split(key, 3)
        return td3_key, init_cvae_state(config, spec, cvae_key, noise_key)

    variant = td3.Variant(
        critic_loss=c_loss,
        actor_loss=a_loss,
        actor_metrics=ACTOR_METRICS,
        init_extra=init_extra,
        extra_update=lambda extra, batch, step: cvae_update(extra, batch, config, spec),
        extra_loss=lambda s, b, k: cvae_loss(
            s.extra.params, b, jax.random.fold_in(k, 1), cvae, config
        ),
        pretrain_steps=config.cvae_steps,
        frozen_extra=True,
        phase_metric="phase/cvae",
    )
    return td3.make_template(config, spec, variant, "td3_cvae")
