"""D4PG: Distributed Distributional Deterministic Policy Gradients (Barth-Maron et al., ICLR 2018).

Pseudocode (paper, Algorithm 1, learner) -> functions:

* n-step target distribution ``Y_i = sum_{k<N} gamma^k r_{i+k} + gamma^N Z_{w'}(x_{i+N},
  pi_{theta'}(x_{i+N}))`` (sec. 3, N-step returns) -> :func:`target_distribution`, using
  ``replay.n_step_target`` / ``replay.select_step`` to stop at episode ends
* projection of ``Y_i`` onto the fixed support ``z_1..z_K`` (sec. 3, after Bellemare et al. 2017,
  Algorithm 1) -> :func:`categorical_projection`
* ``delta_w = 1/M sum grad_w d(Phi Y_i, Z_w(x_i, a_i))`` with ``d`` the cross-entropy
  -> :func:`critic_loss`
* ``delta_theta = 1/M sum grad_theta pi(x_i) E[grad_a Z_w(x_i, a)]|_{a = pi(x_i)}`` (sec. 3)
  -> :func:`actor_loss` (``-mean E[Z_w(x, pi(x))]``)
* ``theta <- theta + alpha delta_theta``, ``w <- w + beta delta_w`` (both from the same parameters),
  then every ``t_target`` steps ``(theta', w') <- (theta, w)`` -> :func:`update`
* acting: ``a = clip(pi(x) + N(0, sigma^2), -1, 1)`` -> ``act``.

Batches: with ``Config.n_step == 1`` the leaves are ``[B, ...]``; with ``n_step = N > 1`` they are
windows ``[B, N, ...]`` of consecutive steps (``loops.online.Config(n_step=N)``). Truncation: the
bootstrap weight is zero only on ``terminated``; time-limit truncations bootstrap from the final
observation of the window.

Observation normalization (``normalize_observations``, on by default; not in the paper, the option
Brax's off-policy trainers have): the networks see ``clip((s - mean) / std, -obs_clip, obs_clip)``
with running moments merged from each update's batch (all window steps) before the losses, as
SAC and TD3 do (``normalization.update_and_normalize_batch``; docs/agents/d4pg.md).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
import rlax

from purerl.core import networks, normalization, replay, validation
from purerl.core.tree import select
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "online"  # which loop trains this agent (purerl.loops.online)


@dataclasses.dataclass(frozen=True)
class Config:
    actor_lr: float = 1e-4  # alpha, paper's experiments (Adam); Acme default
    critic_lr: float = 1e-4  # beta, paper's experiments; Acme default
    actor_hidden: tuple[int, ...] = (300, 200)  # Acme's D4PG networks (LayerNorm MLP there)
    critic_hidden: tuple[int, ...] = (400, 300)  # Acme's D4PG networks (LayerNorm MLP there)
    discount: float = 0.99  # Acme default
    n_step: int = 5  # N, paper's experiments (N = 5 vs 1); Acme default
    num_atoms: int = 51  # K, as C51 (Bellemare et al. 2017); Acme default
    v_min: float = -150.0  # support lower bound, Acme default for the control suite
    v_max: float = 150.0  # support upper bound, Acme default for the control suite
    sigma: float = 0.3  # exploration noise std, Acme default
    target_update_period: int = 100  # t_target, hard copy (paper Alg. 1); value from Acme
    normalize_observations: bool = True  # running mean/std of observations (module docstring);
    #                                      not in the paper; on by default since issue 13
    obs_clip: float = 5.0  # clip of normalized observations

    def __post_init__(self):
        validation.positive("d4pg.Config", actor_lr=self.actor_lr, critic_lr=self.critic_lr)
        validation.in_unit_interval("d4pg.Config", discount=self.discount)
        validation.non_negative("d4pg.Config", sigma=self.sigma)
        validation.positive("d4pg.Config", obs_clip=self.obs_clip)
        if not isinstance(self.normalize_observations, bool):
            raise ValueError(
                "d4pg.Config.normalize_observations must be a bool, got "
                f"{self.normalize_observations!r}"
            )
        validation.layer_sizes("d4pg.Config", "actor_hidden", self.actor_hidden)
        validation.layer_sizes("d4pg.Config", "critic_hidden", self.critic_hidden)
        for name, low in (("n_step", 1), ("num_atoms", 2), ("target_update_period", 1)):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= low):
                raise ValueError(f"d4pg.Config.{name} must be an int >= {low}, got {v!r}")
        for name in ("v_min", "v_max"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v)):
                raise ValueError(f"d4pg.Config.{name} must be a finite number, got {v!r}")
        if not self.v_min < self.v_max:
            raise ValueError(
                f"d4pg.Config.v_min ({self.v_min}) must be smaller than v_max ({self.v_max})"
            )


class Params(NamedTuple):
    actor: Any
    critic: Any  # one categorical critic, apply -> [1, B, num_atoms] logits


class State(NamedTuple):
    params: Params
    target: Params
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    key: jax.Array
    step: jax.Array  # updates done, int32
    normalizer: Any = None  # running obs moments (NormalizerState) when normalize_observations


def support(config: Config) -> jax.Array:
    """The fixed atoms ``z_k = v_min + k (v_max - v_min) / (K - 1)``, ``k = 0..K-1``: ``[K]``."""
    return jnp.linspace(config.v_min, config.v_max, config.num_atoms)


def categorical_projection(values: jax.Array, probs: jax.Array, atoms: jax.Array) -> jax.Array:
    """Project the distribution ``sum_j p_j delta(v_j)`` onto the support ``atoms``.

    ``(Phi p)_k = sum_j clip(1 - |clip(v_j, z_1, z_K) - z_k| / dz, 0, 1) p_j`` (Bellemare et al.
    2017, Algorithm 1; used by D4PG, sec. 3): each atom's mass is split between its two nearest
    support points in proportion to closeness; mass beyond the ends goes to the end atoms. This is
    the Cramer (L2) projection, computed by ``rlax.categorical_l2_project`` (one distribution at a
    time, so it is vmapped over the leading axes here). rlax multiplies by ``1 / dz`` where the
    formula divides by ``dz``: results agree with the formula to float rounding (~1e-6), not bit
    for bit (tests/agents/test_d4pg.py keeps the formula as the reference). rlax also accepts an
    uneven support (each side of ``z_k`` uses its own spacing); D4PG's support is even.

    Args:
      values: ``[..., N]`` locations ``v_j`` (e.g. ``G + w z_j``).
      probs: ``[..., N]`` probabilities ``p_j``.
      atoms: ``[K]`` increasing support ``z_k``.

    Returns:
      ``[..., K]`` probabilities on ``atoms``.
    """
    lead, n = values.shape[:-1], values.shape[-1]
    project = jax.vmap(rlax.categorical_l2_project, in_axes=(0, 0, None))
    out = project(jnp.reshape(values, (-1, n)), jnp.reshape(probs, (-1, n)), atoms)
    return jnp.reshape(out, (*lead, atoms.shape[0]))


def as_windows(batch: Transition) -> Transition:
    """``[B, ...]`` transitions as one-step windows ``[B, 1, ...]`` (so one code path serves n = 1)."""
    return jax.tree.map(lambda x: x[:, None], batch)


def target_distribution(
    target: Params,
    batch: Transition,
    actor: Network,
    critic: Network,
    config: Config,
) -> tuple[jax.Array, jax.Array]:
    """n-step target distribution projected on the support (paper sec. 3 and Algorithm 1).

    ``Y = Phi(G + w z, p'(x_m, pi'(x_m)))``, with ``G = sum_{k<=m} gamma^k r_k`` and
    ``w = gamma^{m+1} (1 - terminated_m)`` from ``replay.n_step_target`` (``m`` the first step of
    the window whose episode ended, else ``N - 1``) and ``x_m = next_obs_m``.

    Args:
      target: target-network parameters.
      batch: windows, leaves ``[B, N, ...]``.

    Returns:
      ``(Y [B, K], expected target value sum_k Y_k z_k [B])``.
    """
    atoms = support(config)
    g, weight, m = replay.n_step_target(
        batch.reward, batch.terminated, batch.truncated, config.discount
    )
    next_obs = replay.select_step(batch.next_obs, m)
    next_a = actor.apply(target.actor, next_obs)
    next_probs = jax.nn.softmax(critic.apply(target.critic, next_obs, next_a)[0], axis=-1)
    values = g[:, None] + weight[:, None] * atoms[None, :]
    y = jax.lax.stop_gradient(categorical_projection(values, next_probs, atoms))
    return y, jnp.sum(y * atoms, axis=-1)


def critic_loss(
    critic_params: Any,
    target: Params,
    batch: Transition,
    actor: Network,
    critic: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Categorical cross-entropy ``mean_i -sum_k Y_ik log p_k(x_i, a_i)`` between the projected
    n-step target (:func:`target_distribution`) and the critic (paper Algorithm 1, ``d`` = cross-
    entropy). ``x_i, a_i`` are the window's first step. Shapes: batch leaves ``[B, N, ...]``."""
    y, y_mean = target_distribution(target, batch, actor, critic, config)
    logits = critic.apply(critic_params, batch.obs[:, 0], batch.action[:, 0])[0]  # [B, K]
    log_p = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.sum(y * log_p, axis=-1))
    q = jnp.sum(jnp.exp(log_p) * support(config), axis=-1)
    return loss, {"loss/critic": loss, "q/mean": jnp.mean(q), "q/target": jnp.mean(y_mean)}


def actor_loss(
    actor_params: Any,
    critic_params: Any,
    obs: jax.Array,
    actor: Network,
    critic: Network,
    config: Config,
) -> tuple[jax.Array, Metrics]:
    """Deterministic policy gradient through the distributional critic:
    ``-mean_i E[Z_w(x_i, pi(x_i))] = -mean_i sum_k p_k(x_i, pi(x_i)) z_k`` (paper sec. 3). Only the
    actor is differentiated. ``obs``: ``[B, *obs_shape]``."""
    logits = critic.apply(jax.lax.stop_gradient(critic_params), obs, actor.apply(actor_params, obs))
    q = jnp.sum(jax.nn.softmax(logits[0], axis=-1) * support(config), axis=-1)
    loss = -jnp.mean(q)
    return loss, {"loss/actor": loss}


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build D4PG's networks and optimizers for ``spec`` (continuous actions in [-1, 1])."""
    if spec.discrete:
        raise ValueError(f"D4PG needs continuous actions; env {spec.name!r} is discrete")
    actor = networks.deterministic_policy(config.actor_hidden, spec.action_size)
    critic = networks.q_network(config.critic_hidden, out=config.num_atoms, num_critics=1)
    actor_opt = optax.adam(config.actor_lr)
    critic_opt = optax.adam(config.critic_lr)
    window = None if config.n_step == 1 else config.n_step

    def windows(batch: Transition, owner: str) -> Transition:
        validation.check_batch(batch, spec, owner, window=window)
        return as_windows(batch) if window is None else batch

    def normalized(normalizer: Any, batch: Transition) -> tuple[Any, Transition]:
        """Merge ``batch.obs`` into the moments and normalize the batch (when on)."""
        if not config.normalize_observations:
            return normalizer, batch
        return normalization.update_and_normalize_batch(normalizer, batch, config.obs_clip)

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
            normalizer=normalization.init(spec.obs_shape)
            if config.normalize_observations
            else None,
        )

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        validation.check_obs(obs, spec)
        if config.normalize_observations:
            obs = normalization.normalize(state.normalizer, obs, clip=config.obs_clip)
        a = actor.apply(state.params.actor, obs)
        if not deterministic:
            a = jnp.clip(a + config.sigma * jax.random.normal(key, a.shape), -1.0, 1.0)
        return a, {}

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        del key  # D4PG's losses are deterministic given the batch
        batch = windows(batch, "d4pg.loss")
        _, batch = normalized(state.normalizer, batch)
        c_loss, c_metrics = critic_loss(params.critic, state.target, batch, actor, critic, config)
        a_loss, a_metrics = actor_loss(
            params.actor, params.critic, batch.obs[:, 0], actor, critic, config
        )
        return c_loss + a_loss, {**c_metrics, **a_metrics}

    def update(state: State, batch: Transition):
        batch = windows(batch, "d4pg.update")
        normalizer, batch = normalized(state.normalizer, batch)
        params = state.params
        # Algorithm 1 computes both updates from the same parameters, then applies them.
        c_grads, c_metrics = jax.grad(critic_loss, has_aux=True)(
            params.critic, state.target, batch, actor, critic, config
        )
        a_grads, a_metrics = jax.grad(actor_loss, has_aux=True)(
            params.actor, params.critic, batch.obs[:, 0], actor, critic, config
        )
        c_updates, critic_opt_state = critic_opt.update(c_grads, state.critic_opt)
        a_updates, actor_opt_state = actor_opt.update(a_grads, state.actor_opt)
        params = Params(
            actor=optax.apply_updates(params.actor, a_updates),
            critic=optax.apply_updates(params.critic, c_updates),
        )
        step = state.step + 1
        target = select(step % config.target_update_period == 0, params, state.target)
        new_state = State(
            params=params,
            target=target,
            actor_opt=actor_opt_state,
            critic_opt=critic_opt_state,
            key=state.key,
            step=step,
            normalizer=normalizer,
        )
        return new_state, {**c_metrics, **a_metrics}

    return Algorithm(init=init, act=act, loss=loss, update=update)
