"""TD3: Twin Delayed Deep Deterministic policy gradient (Fujimoto, van Hoof & Meger, ICML 2018),
and the TD3 template that the offline variants (TD3+BC, TD3-CVAE, Qsarsa) plug into.

Pseudocode (paper, Algorithm 1) -> functions:

* target action ``a' = clip(pi'(s') + clip(eps, -c, c), -1, 1)``, ``eps ~ N(0, sigma~)``
  -> :func:`target_action` (target policy smoothing, sec. 5.3)
* ``y = r + gamma (1 - d) min_i Q'_i(s', a')`` -> :func:`critic_loss` (clipped double Q, sec. 4.2)
* ``L(theta_i) = mean (y - Q_i(s, a))^2`` -> :func:`critic_loss`
* every ``d`` critic updates: ``grad_phi mean Q_1(s, pi(s))`` -> :func:`actor_loss`, then Polyak
  averaging of both targets with rate ``tau`` (sec. 5.2) -> :func:`make_template`
* exploration ``a = clip(pi(s) + N(0, sigma), -1, 1)`` -> ``act``.

Truncation: ``d`` is ``terminated`` only; time-limit truncations bootstrap from ``next_obs`` (the
final observation, kept by the env wrappers).

Observation normalization (``normalize_observations``, on by default for TD3, off for the offline
variants; not in the paper; the option Brax's off-policy trainers have, and what TD3 needs on brax's
inverted_pendulum, ``docs/agents/td3.md`` deviation 7): the networks see
``clip((s - mean) / std, -obs_clip, obs_clip)`` with running moments merged from each update's batch
``obs`` before the losses, as SAC does (``normalization.update_and_normalize_batch``). Off, the
state's ``normalizer`` is ``None``.

The template. :func:`make_template` is TD3's ``init`` / ``act`` / ``loss`` / ``update`` with three
pluggable pieces, a :class:`Variant`: the critic loss (where a variant changes the target ``y`` or
adds a term), the actor loss, and optional extra state with its own update (a CVAE, a SARSA
critic), which may run alone for the first ``pretrain_steps`` updates. Everything else (key use,
Adam steps, the policy delay, Polyak averaging, metrics) is written once, here. :func:`make` is the
template with TD3's own losses; ``td3_bc``, ``td3_cvae`` and ``qsarsa`` hold only their equations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
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
    """TD3's hyperparameters; the variants' configs subclass it (their defaults may differ)."""

    actor_lr: float = 3e-4  # authors' repo (sfujim/TD3, 2019 update); 1e-3 in the paper's Table 3
    critic_lr: float = 3e-4  # authors' repo; 1e-3 in the paper
    hidden: tuple[int, ...] = (256, 256)  # authors' repo; (400, 300) in the paper
    discount: float = 0.99  # paper, Table 3
    tau: float = 0.005  # paper, Table 3
    policy_noise: float = 0.2  # sigma~, paper sec. 6.1
    noise_clip: float = 0.5  # c, paper sec. 6.1
    policy_delay: int = 2  # d, paper sec. 5.2
    exploration_noise: float = 0.1  # sigma, paper sec. 6.1
    normalize_observations: bool = True  # running mean/std of observations (module docstring);
    #                                      not in the paper; on since issue 13 (docs deviation 7).
    #                                      The offline variants set it False (their data is fixed)
    obs_clip: float = 5.0  # clip of normalized observations (brax running_statistics: 5)

    def __post_init__(self):
        owner = f"{type(self).__module__.rsplit('.', 1)[-1]}.Config"
        validation.positive(owner, actor_lr=self.actor_lr, critic_lr=self.critic_lr)
        validation.in_unit_interval(owner, discount=self.discount, tau=self.tau)
        validation.non_negative(
            owner,
            policy_noise=self.policy_noise,
            noise_clip=self.noise_clip,
            exploration_noise=self.exploration_noise,
        )
        validation.layer_sizes(owner, "hidden", self.hidden)
        validation.int_at_least(f"{owner}.policy_delay", self.policy_delay, 1)
        if not isinstance(self.normalize_observations, bool):
            raise ValueError(
                f"{owner}.normalize_observations must be a bool, got {self.normalize_observations!r}"
            )
        validation.positive(owner, obs_clip=self.obs_clip)

    @property
    def td3_config(self) -> Config:
        """The TD3 part of this config (a plain :class:`Config`)."""
        return Config(**{f.name: getattr(self, f.name) for f in dataclasses.fields(Config)})


class Params(NamedTuple):
    actor: Any
    critic: Any


class State(NamedTuple):
    params: Params
    target: Params
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array  # TD3's key: split once per TD3 update for the target-smoothing noise
    step: jax.Array  # calls to update (pre-training ones included), int32
    actor_metrics: Metrics  # last actor update's metrics (the actor moves every policy_delay steps)
    extra: Any = None  # a variant's own state (td3_cvae: the CVAE; qsarsa: Q_sarsa)
    extra_metrics: Any = None  # last metrics of a frozen extra (repeated after pre-training)
    normalizer: Any = None  # running obs moments (NormalizerState) when normalize_observations


CriticLossFn = Callable[[Any, State, Transition, jax.Array], tuple[jax.Array, Metrics]]
ActorLossFn = Callable[[Any, Any, State, Transition], tuple[jax.Array, Metrics]]


class Variant(NamedTuple):
    """The pluggable pieces of the TD3 template (:func:`make_template`).

    Attributes:
      critic_loss: ``(critic_params, state, batch [B], key) -> (loss, metrics)``, ``key`` TD3's
        target-smoothing key; ``state.params.actor`` is the actor before this update.
      actor_loss: ``(actor_params, critic_params, state, batch [B]) -> (loss, metrics)`` with
        the freshly updated critic; its metric keys are ``actor_metrics``.
      actor_metrics: names of the actor loss's metrics (zeros until the first actor update).
      init_extra: ``key -> (td3_key, extra)``: the variant's own state and the key TD3's networks
        are initialised from (``None``: no extra state).
      extra_update: ``(extra, batch, step) -> (extra, metrics)``, one update of the extra state.
      extra_loss: ``(state, batch, key) -> (loss, metrics)``, the extra's loss for ``loss``.
      pretrain_steps: the first ``pretrain_steps`` updates run ``extra_update`` only.
      frozen_extra: ``extra_update`` runs in pre-training only (the CVAE is frozen afterwards and
        its last metrics are repeated); ``False``: it runs at every update, before TD3's step.
      phase_metric: metric set to 1 during pre-training, 0 after (with an ``extra_update``).
      check: ``(batch, owner) -> None``, extra batch checks (e.g. next actions present).
    """

    critic_loss: CriticLossFn
    actor_loss: ActorLossFn
    actor_metrics: tuple[str, ...] = ("loss/actor",)
    init_extra: Callable[[jax.Array], tuple[jax.Array, Any]] | None = None
    extra_update: Callable[[Any, Transition, jax.Array], tuple[Any, Metrics]] | None = None
    extra_loss: Callable[[State, Transition, jax.Array], tuple[jax.Array, Metrics]] | None = None
    pretrain_steps: int = 0
    frozen_extra: bool = False
    phase_metric: str = "phase/pretrain"
    check: Callable[[Transition, str], None] | None = None


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
    target_term: Callable[[jax.Array, jax.Array], tuple[jax.Array, Metrics]] | None = None,
    reward: jax.Array | None = None,
) -> tuple[jax.Array, Metrics]:
    """Clipped double-Q TD loss ``sum_i mean (y - Q_i(s, a))^2``, ``y = r + gamma (1 - term) min_i
    Q'_i`` (eq. 10). Shapes: batch leaves ``[B, ...]``.

    Variants: ``reward`` replaces ``batch.reward`` (e.g. rescaled); ``target_term(next_obs,
    next_a) -> (t [B], metrics)`` is added inside the bootstrap, ``y = r + gamma (1 - term)
    (min_i Q'_i(s', a') + t)`` (TD3-CVAE's ``-alpha b(s', a')``).
    """
    next_a = target_action(actor, target.actor, batch.next_obs, key, config)
    next_q = jnp.min(critic.apply(target.critic, batch.next_obs, next_a), axis=0)
    extra: Metrics = {}
    if target_term is not None:
        term, extra = target_term(batch.next_obs, next_a)
        next_q = next_q + term
    r = batch.reward if reward is None else reward
    y = r + config.discount * (1.0 - batch.terminated) * next_q
    q = critic.apply(critic_params, batch.obs, batch.action)  # [2, B]
    loss = jnp.sum(jnp.mean((q - jax.lax.stop_gradient(y)) ** 2, axis=-1))
    return loss, {"loss/critic": loss, "q/mean": jnp.mean(q), "q/target": jnp.mean(y), **extra}


def actor_loss(
    actor_params: Any, critic_params: Any, batch: Transition, actor: Network, critic: Network
) -> tuple[jax.Array, Metrics]:
    """Deterministic policy gradient objective ``-mean Q_1(s, pi(s))`` (eq. 6, sec. 5.2)."""
    q1 = critic.apply(critic_params, batch.obs, actor.apply(actor_params, batch.obs))[0]
    loss = -jnp.mean(q1)
    return loss, {"loss/actor": loss}


def networks_for(config: Config, spec: EnvSpec, name: str = "TD3") -> tuple[Network, Network]:
    """TD3's actor (deterministic, tanh) and twin critics for ``spec`` (continuous actions)."""
    if spec.discrete:
        raise ValueError(f"{name} needs continuous actions; env {spec.name!r} is discrete")
    actor = networks.deterministic_policy(config.hidden, spec.action_size)
    return actor, networks.q_network(config.hidden, num_critics=2)


def make_template(config: Config, spec: EnvSpec, variant: Variant, name: str) -> Algorithm:
    """TD3 with ``variant``'s losses and extra state (module docstring); ``name`` prefixes errors.

    ``update``: (extra update, every call or during pre-training only), then, once pre-training
    is over, one TD3 step: split TD3's key, Adam step on the critic loss, and every
    ``policy_delay``-th TD3 step an Adam step on the actor loss and Polyak averaging of the target
    actor and critics (``lax.cond``: a real branch when the step is not batched, e.g. the whole
    loop vmapped over seeds). The step counter counts all calls; the delay counts TD3 steps.
    """
    actor, critic = networks_for(config, spec, name)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)
    pre = variant.pretrain_steps

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        extra = None
        if variant.init_extra is not None:
            key, extra = variant.init_extra(key)
        key, actor_key, critic_key = jax.random.split(key, 3)
        obs = jnp.zeros((1, *spec.obs_shape))
        act = jnp.zeros((1, spec.action_size))
        params = Params(actor=actor.init(actor_key, obs), critic=critic.init(critic_key, obs, act))
        zero = jnp.zeros((), jnp.float32)
        state = State(
            params=params,
            target=params,
            actor_opt=actor_opt.init(params.actor),
            critic_opt=critic_opt.init(params.critic),
            key=key,
            step=jnp.zeros((), jnp.int32),
            actor_metrics={k: zero for k in variant.actor_metrics},
            extra=extra,
            normalizer=normalization.init(spec.obs_shape)
            if config.normalize_observations
            else None,
        )
        if variant.frozen_extra:  # the extra's metrics, zeros until its first update
            shape = jax.eval_shape(variant.extra_update, extra, _example_batch(spec), state.step)
            state = state._replace(extra_metrics=_zeros(shape[1]))
        return state

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        validation.check_obs(obs, spec)
        if config.normalize_observations:
            obs = normalization.normalize(state.normalizer, obs, clip=config.obs_clip)
        a = actor.apply(state.params.actor, obs)
        if not deterministic:
            a = jnp.clip(a + config.exploration_noise * jax.random.normal(key, a.shape), -1.0, 1.0)
        return a, {}

    def check(batch: Transition, owner: str) -> None:
        validation.check_batch(batch, spec, owner)
        if variant.check is not None:
            variant.check(batch, owner)

    def normalized(state: State, batch: Transition) -> tuple[State, Transition]:
        """Merge ``batch.obs`` into the moments and normalize the batch (when on)."""
        if not config.normalize_observations:
            return state, batch
        normalizer, batch = normalization.update_and_normalize_batch(
            state.normalizer, batch, config.obs_clip
        )
        return state._replace(normalizer=normalizer), batch

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        check(batch, f"{name}.loss")
        state, batch = normalized(state, batch)
        state = state._replace(params=params)
        total, metrics = 0.0, {}
        if variant.extra_loss is not None:
            total, metrics = variant.extra_loss(state, batch, key)
        c_loss, c_metrics = variant.critic_loss(params.critic, state, batch, key)
        a_loss, a_metrics = variant.actor_loss(params.actor, params.critic, state, batch)
        return total + c_loss + a_loss, {**metrics, **c_metrics, **a_metrics}

    def td3_step(state: State, batch: Transition) -> tuple[State, Metrics]:
        key, noise_key = jax.random.split(state.key)
        grads, metrics = jax.grad(variant.critic_loss, has_aux=True)(
            state.params.critic, state, batch, noise_key
        )
        updates, critic_opt_state = critic_opt.update(grads, state.critic_opt)
        params = state.params._replace(critic=optax.apply_updates(state.params.critic, updates))
        td3_steps = state.step - pre + 1  # TD3 steps done after this one

        def delayed(operand):
            params, target, opt_state, _ = operand
            grads, a_metrics = jax.grad(variant.actor_loss, has_aux=True)(
                params.actor, params.critic, state, batch
            )
            updates, opt_state = actor_opt.update(grads, opt_state)
            params = params._replace(actor=optax.apply_updates(params.actor, updates))
            return params, lerp(target, params, config.tau), opt_state, a_metrics

        params, target, actor_opt_state, a_metrics = jax.lax.cond(
            td3_steps % config.policy_delay == 0,
            delayed,
            lambda operand: operand,
            (params, state.target, state.actor_opt, state.actor_metrics),
        )
        new_state = state._replace(
            params=params,
            target=target,
            actor_opt=actor_opt_state,
            critic_opt=critic_opt_state,
            key=key,
            step=state.step + 1,
            actor_metrics=a_metrics,
        )
        return new_state, {**metrics, **a_metrics}

    def update(state: State, batch: Transition):
        check(batch, f"{name}.update")
        state, batch = normalized(state, batch)
        if variant.extra_update is None:
            return td3_step(state, batch)
        e_metrics = state.extra_metrics
        if not variant.frozen_extra:  # the extra learns at every update, before TD3's step
            extra, e_metrics = variant.extra_update(state.extra, batch, state.step)
            state = state._replace(extra=extra)

        def pretrain(state: State):
            metrics = e_metrics
            if variant.frozen_extra:
                extra, metrics = variant.extra_update(state.extra, batch, state.step)
                state = state._replace(extra=extra, extra_metrics=metrics)
            td3_zeros = _zeros(jax.eval_shape(td3_step, state, batch)[1])
            one = jnp.ones((), jnp.float32)
            return state._replace(step=state.step + 1), {
                **td3_zeros,
                **metrics,
                variant.phase_metric: one,
            }

        def train(state: State):
            state, metrics = td3_step(state, batch)
            zero = jnp.zeros((), jnp.float32)
            return state, {**metrics, **e_metrics, variant.phase_metric: zero}

        if pre == 0:
            return train(state)
        return jax.lax.cond(state.step < pre, pretrain, train, state)

    return Algorithm(init=init, act=act, loss=loss, update=update)


def _zeros(shapes: Any) -> Any:
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)


def _example_batch(spec: EnvSpec) -> Transition:
    """A ``[1]`` batch (for shape evaluation only), with a next action."""
    obs, act, one = jnp.zeros((1, *spec.obs_shape)), jnp.zeros((1, spec.action_size)), jnp.zeros(1)
    return Transition(obs, act, one, obs, one, one, act)


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build TD3 for ``spec`` (continuous actions in [-1, 1]): the template with TD3's losses."""
    actor, critic = networks_for(config, spec)

    def c_loss(critic_params, state: State, batch: Transition, key: jax.Array):
        return critic_loss(critic_params, state.target, batch, key, actor, critic, config)

    def a_loss(actor_params, critic_params, state: State, batch: Transition):
        return actor_loss(actor_params, critic_params, batch, actor, critic)

    return make_template(config, spec, Variant(critic_loss=c_loss, actor_loss=a_loss), "td3")
