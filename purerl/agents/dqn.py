"""DQN (Mnih et al., Nature 2015) with double Q-learning, n-step returns and Munchausen options.

Pseudocode (Mnih et al. 2015, Algorithm 1; options from the later papers) -> functions:

* epsilon-greedy behaviour, epsilon annealed linearly (Methods, "Training details")
  -> :func:`epsilon_schedule`, ``act``
* ``y = r + gamma (1 - term) max_a' Q'(s', a')`` (Algorithm 1) -> :func:`greedy_value`,
  :func:`q_target`
* double Q-learning ``y = r + gamma (1 - term) Q'(s', argmax_a' Q(s', a'))`` (van Hasselt, Guez &
  Silver, AAAI 2016, sec. "Double DQN") -> :func:`greedy_value` with ``q_next_online``
* n-step returns ``G = sum_{k<=m} gamma^k r_k`` bootstrapped from ``s_{m+1}`` (Sutton & Barto 2018,
  eq. 7.1; Hessel et al. 2018, "Multi-step learning") -> :func:`bootstrap`
  (``replay.n_step_target``)
* Munchausen DQN (Vieillard, Pietquin & Geist, NeurIPS 2020, the M-DQN target):
  ``y = r + alpha [tau ln pi'(a|s)]_{l0}^0 + gamma sum_a' pi'(a'|s') (Q'(s', a') - tau ln pi'(a'|s'))``
  with ``pi' = softmax(Q' / tau)`` -> :func:`munchausen_bonus`, :func:`soft_value`, :func:`q_target`
* gradient step on ``mean_B huber(y - Q(s, a))`` (Mnih 2015's error clipping) -> :func:`td_loss`,
  :func:`q_loss`
* every ``C`` updates ``Q' <- Q`` (Algorithm 1) -> ``update``.

Truncation: the bootstrap weight uses ``terminated`` only; time-limit truncations bootstrap from
``next_obs`` (the final observation kept by the env wrappers), also inside n-step windows.

The counter ``State.step`` counts gradient updates (calls of ``update``); it drives both the epsilon
schedule and the target-network period. Under ``loops.online`` there are ``utd * num_envs`` updates
per iteration and none during warm-up (which acts uniformly at random, i.e. epsilon = 1), so epsilon
reaches ``epsilon_end`` after ``epsilon_decay_updates / utd`` env steps past warm-up.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import optax
import rlax

from purerl.core import networks, replay, validation
from purerl.core.tree import select
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "online"  # which loop trains this agent (purerl.loops.online)


@dataclasses.dataclass(frozen=True)
class Config:
    lr: float = 2.5e-4  # Mnih et al. 2015, Extended Data Table 1 (RMSProp there; Adam here, as in
    #                     Rainbow and M-DQN)
    hidden: tuple[int, ...] = (256, 256)  # our choice for low-dimensional observations (the papers
    #                                       use the Atari conv net); same as purerl's other agents
    discount: float = 0.99  # Mnih et al. 2015, Extended Data Table 1
    target_update_period: int = 500  # C, in updates; our choice for small tasks (Mnih 2015: 10,000;
    #                                  Acme's DQN and AQuaDQN: 100)
    epsilon_start: float = 1.0  # Mnih et al. 2015, Extended Data Table 1
    epsilon_end: float = 0.01  # Dopamine's DQN setting used by M-DQN and AQuaDQN (Mnih 2015: 0.1)
    epsilon_decay_updates: int = 10_000  # our choice for small tasks (Mnih 2015: 1M frames)
    td_loss: str = "huber"  # "huber" = Mnih 2015's error clipping to [-1, 1]; "l2" = 0.5 td^2
    huber_delta: float = 1.0  # Mnih et al. 2015, Methods: error term clipped to [-1, 1]
    double: bool | None = None  # double Q-learning target (van Hasselt et al. 2016); None: on,
    #                             except with munchausen (its soft target has no max to de-bias).
    #                             On by default since issue 13 (docs/agents/dqn.md, deviation 12)
    n_step: int = 3  # n-step returns; 3 as Rainbow (Hessel et al. 2018) and AQuaDQN; 1 in Mnih 2015
    #                  and M-DQN. 3 since issue 13: the cart-pole sanity task (deviation 12)
    munchausen: bool = False  # Munchausen target (Vieillard et al. 2020)
    entropy_tau: float = 0.03  # tau, M-DQN paper (Atari experiments)
    munchausen_alpha: float = 0.9  # alpha, M-DQN paper (Atari experiments)
    log_policy_clip: float = -1.0  # l0, M-DQN paper (Atari experiments); Acme's default: -1e3

    def __post_init__(self):
        validation.positive(
            "dqn.Config", lr=self.lr, huber_delta=self.huber_delta, entropy_tau=self.entropy_tau
        )
        validation.in_unit_interval(
            "dqn.Config",
            discount=self.discount,
            epsilon_start=self.epsilon_start,
            epsilon_end=self.epsilon_end,
            munchausen_alpha=self.munchausen_alpha,
        )
        validation.layer_sizes("dqn.Config", "hidden", self.hidden)
        for name in ("target_update_period", "epsilon_decay_updates", "n_step"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and v >= 1):
                raise ValueError(f"dqn.Config.{name} must be an int >= 1, got {v!r}")
        if self.td_loss not in ("huber", "l2"):
            raise ValueError(f"dqn.Config.td_loss must be 'huber' or 'l2', got {self.td_loss!r}")
        lo = self.log_policy_clip
        if not (isinstance(lo, (int, float)) and math.isfinite(lo) and lo < 0):
            raise ValueError(f"dqn.Config.log_policy_clip must be a finite number < 0, got {lo!r}")
        if self.double is not None and not isinstance(self.double, bool):
            raise ValueError(f"dqn.Config.double must be a bool or None, got {self.double!r}")
        if self.munchausen and self.double:
            raise ValueError(
                "dqn.Config.double=True and munchausen=True are exclusive: the Munchausen target "
                "bootstraps the soft value of the target network's softmax policy, not a max"
            )

    @property
    def double_q(self) -> bool:
        """Whether the target is double Q-learning's: ``double``, or when ``None`` not
        ``munchausen``."""
        return (not self.munchausen) if self.double is None else self.double


class State(NamedTuple):
    params: Any
    target: Any  # target network parameters, copied from params every target_update_period
    opt: optax.OptState
    key: jax.Array
    step: jax.Array  # gradient updates done (calls of update), int32; drives epsilon and target


def epsilon_schedule(step: jax.Array, start: float, end: float, decay_updates: int) -> jax.Array:
    """Linear annealing ``eps(k) = end + (start - end) max(0, 1 - k / decay_updates)``.

    Mnih et al. 2015, Methods: epsilon "annealed linearly from 1.0 to 0.1 over the first million
    frames, and fixed at 0.1 thereafter". Here ``k`` counts gradient updates (``State.step``).

    Acting (``act``) draws "explore?" and a uniform action with two keys; ``rlax.epsilon_greedy``
    (marked for deprecation in favour of ``distrax.EpsilonGreedy``) samples the mixed distribution in
    one categorical draw: the same law, but a different random stream, so every run would change.
    """
    frac = jnp.clip(1.0 - jnp.asarray(step, jnp.float32) / decay_updates, 0.0, 1.0)
    return end + (start - end) * frac


def greedy_value(q_next_target: jax.Array, q_next_online: jax.Array | None = None) -> jax.Array:
    """Bootstrap value of ``s'``: ``max_a' Q'(s', a')`` (Mnih et al. 2015, Algorithm 1), or with
    ``q_next_online`` the double-Q value ``Q'(s', argmax_a' Q(s', a'))`` (van Hasselt et al. 2016,
    eq. 4).

    Args:
      q_next_target: ``Q'(s', .)`` from the target network, ``[B, A]``.
      q_next_online: ``Q(s', .)`` from the online network, ``[B, A]``, or ``None``.

    Returns:
      ``[B]``.

    ``rlax.q_learning`` / ``rlax.double_q_learning`` give the same TD errors (tested equal in
    tests/agents/test_dqn.py) but take one sample and return only ``y - Q(s, a)``; the agent keeps
    the value and the target ``y`` apart because the Munchausen bonus and the n-step return enter
    the same target and ``y`` is reported (``q/target``).
    """
    if q_next_online is None:
        return jnp.max(q_next_target, axis=-1)
    a_star = jnp.argmax(q_next_online, axis=-1)
    return jnp.take_along_axis(q_next_target, a_star[..., None], axis=-1)[..., 0]


def soft_value(q: jax.Array, tau: float) -> jax.Array:
    """Entropy-regularised value ``sum_a pi(a|s) (q(s, a) - tau ln pi(a|s))``, ``pi = softmax(q / tau)``
    (the bootstrap term of the M-DQN target, Vieillard et al. 2020).

    ``ln pi`` comes from a stable log-softmax, so tiny ``tau`` or large ``q`` never give
    ``0 * log 0``. The sum equals ``tau logsumexp(q / tau)``. rlax 0.1.9 has no Munchausen
    function (nor this soft value), so this and :func:`munchausen_bonus` are written here.

    Args:
      q: ``[B, A]``.
      tau: entropy temperature.

    Returns:
      ``[B]``.
    """
    log_pi = jax.nn.log_softmax(q / tau, axis=-1)
    return jnp.sum(jnp.exp(log_pi) * (q - tau * log_pi), axis=-1)


def munchausen_bonus(
    q: jax.Array, action: jax.Array, tau: float, alpha: float, log_policy_clip: float
) -> jax.Array:
    """Munchausen term ``alpha [tau ln pi(a|s)]_{l0}^0`` with ``pi = softmax(q / tau)`` (the M-DQN
    target, Vieillard et al. 2020; clipping to ``[l0, 0]`` keeps ``ln pi -> -inf`` out of the
    target).

    Args:
      q: target-network values ``Q'(s, .)``, ``[B, A]``.
      action: ``a`` taken in ``s``, int ``[B]``.
      tau, alpha, log_policy_clip: ``tau``, ``alpha``, ``l0`` of the paper.

    Returns:
      ``[B]``.
    """
    log_pi = jax.nn.log_softmax(q / tau, axis=-1)
    log_pi_a = jnp.take_along_axis(log_pi, action[..., None], axis=-1)[..., 0]
    return alpha * jnp.clip(tau * log_pi_a, log_policy_clip, 0.0)


def td_loss(td: jax.Array, kind: str = "huber", delta: float = 1.0) -> jax.Array:
    """Elementwise regression loss of the TD error ``td = y - Q(s, a)``.

    ``huber``: ``0.5 td^2`` for ``|td| <= delta``, ``delta (|td| - delta / 2)`` beyond (Huber 1964);
    its gradient is ``clip(td, -delta, delta)``, Mnih et al. 2015's error clipping. ``l2``:
    ``0.5 td^2`` (the Huber loss's quadratic branch, so both agree for small errors).

    Both are rlax's functions (``rlax.huber_loss``, ``rlax.l2_loss``): the same operations as the
    formulas above, so values and gradients are bit-identical to the hand-written versions they
    replaced (tests/agents/test_dqn.py keeps those as references).
    """
    if kind == "l2":
        return rlax.l2_loss(td)
    return rlax.huber_loss(td, delta)


def bootstrap(
    batch: Transition, discount: float, n_step: int
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Split a batch into the regressed pair, the return and the state to bootstrap from.

    1-step (leaves ``[B, ...]``): ``G = r``, weight ``gamma (1 - term)``, bootstrap from ``s'``.
    n-step (leaves ``[B, n, ...]``): ``G = sum_{k<=m} gamma^k r_k`` and weight
    ``gamma^{m+1} (1 - term_m)`` up to the first episode end ``m`` in the window (terminated or
    truncated), bootstrap from ``next_obs_m`` (``replay.n_step_target``; Sutton & Barto 2018,
    eq. 7.1).

    Returns:
      ``(obs [B, *obs], action [B], G [B], weight [B], next_obs [B, *obs])``.
    """
    if n_step == 1:
        weight = discount * (1.0 - batch.terminated)
        return batch.obs, batch.action, batch.reward, weight, batch.next_obs
    g, weight, m = replay.n_step_target(batch.reward, batch.terminated, batch.truncated, discount)
    next_obs = replay.select_step(batch.next_obs, m)
    return batch.obs[:, 0], batch.action[:, 0], g, weight, next_obs


def q_target(
    g: jax.Array,
    weight: jax.Array,
    q_next_target: jax.Array,
    q_next_online: jax.Array | None,
    q_target_tm1: jax.Array | None,
    action: jax.Array,
    config: Config,
) -> tuple[jax.Array, jax.Array]:
    """Regression target ``y = G + bonus + weight * V'(s_boot)``.

    ``V'`` is :func:`greedy_value` (DQN / double DQN) or :func:`soft_value` (Munchausen), and
    ``bonus`` is :func:`munchausen_bonus` of the first step's ``(s, a)`` under the target network
    (Munchausen) or 0. With ``n_step == 1`` this is exactly the paper's M-DQN target.

    Args:
      g: (n-step) return ``[B]``; weight: bootstrap weight ``[B]``.
      q_next_target: ``Q'(s_boot, .)`` ``[B, A]``; q_next_online: ``Q(s_boot, .)`` (double only).
      q_target_tm1: ``Q'(s, .)`` ``[B, A]`` (Munchausen only); action: ``a`` ``[B]``.

    Returns:
      ``(y [B], bonus [B])``.
    """
    if config.munchausen:
        v_next = soft_value(q_next_target, config.entropy_tau)
        bonus = munchausen_bonus(
            q_target_tm1,
            action,
            config.entropy_tau,
            config.munchausen_alpha,
            config.log_policy_clip,
        )
    else:
        v_next = greedy_value(q_next_target, q_next_online if config.double_q else None)
        bonus = jnp.zeros_like(g)
    return g + bonus + weight * v_next, bonus


def q_loss(
    params: Any, target_params: Any, batch: Transition, network: Network, config: Config
) -> tuple[jax.Array, Metrics]:
    """``mean_B loss(y - Q(s, a))`` with ``y`` from :func:`q_target` held fixed (Mnih et al. 2015,
    Methods, the loss ``L_i``).

    Args:
      params, target_params: online and target Q-network parameters.
      batch: leaves ``[B, ...]`` (``n_step == 1``) or ``[B, n, ...]``; actions int ``[B(, n)]``.
      network: ``apply(params, obs[B, *obs]) -> Q [B, A]``.
      config: agent settings.
    """
    obs, action, g, weight, next_obs = bootstrap(batch, config.discount, config.n_step)
    action = action.astype(jnp.int32)
    q_tm1 = network.apply(params, obs)
    q_next_target = network.apply(target_params, next_obs)
    q_next_online = network.apply(params, next_obs) if config.double_q else None
    q_target_tm1 = network.apply(target_params, obs) if config.munchausen else None
    y, bonus = q_target(g, weight, q_next_target, q_next_online, q_target_tm1, action, config)
    y = jax.lax.stop_gradient(y)
    q_a = jnp.take_along_axis(q_tm1, action[:, None], axis=-1)[:, 0]
    loss = jnp.mean(td_loss(y - q_a, config.td_loss, config.huber_delta))
    metrics = {"loss/q": loss, "q/mean": jnp.mean(q_a), "q/target": jnp.mean(y)}
    if config.munchausen:
        metrics["munchausen/bonus"] = jnp.mean(bonus)
    return loss, metrics


def _check_actions(batch: Transition, owner: str) -> None:
    validation.chex_check(
        chex.assert_type,
        batch.action,
        int,
        message=f"{owner}: batch.action has dtype {jnp.result_type(batch.action)}; DQN needs "
        "integer action indices",
    )


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build DQN's Q-network and optimizer for ``spec`` (discrete actions)."""
    if not spec.discrete:
        raise ValueError(
            f"DQN needs discrete actions; env {spec.name!r} is continuous "
            f"(action_shape {spec.action_shape})"
        )
    mlp = networks.mlp(config.hidden, spec.num_actions)
    k = len(spec.obs_shape)

    def flat(obs):
        return jnp.reshape(obs, obs.shape[: obs.ndim - k] + (spec.obs_size,))

    q_net = Network(
        init=lambda key, obs: mlp.init(key, flat(obs)),
        apply=lambda params, obs: mlp.apply(params, flat(obs)),
    )
    optimizer = optax.adam(config.lr)
    window = None if config.n_step == 1 else config.n_step

    def epsilon(step):
        return epsilon_schedule(
            step, config.epsilon_start, config.epsilon_end, config.epsilon_decay_updates
        )

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        key, net_key = jax.random.split(key)
        params = q_net.init(net_key, jnp.zeros((1, *spec.obs_shape)))
        return State(
            params=params,
            target=params,
            opt=optimizer.init(params),
            key=key,
            step=jnp.zeros((), jnp.int32),
        )

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        """Greedy (``deterministic``) or epsilon-greedy action with ``epsilon(state.step)``; extras
        ``{"q": Q(obs, .)}`` ``[..., A]``."""
        validation.check_obs(obs, spec)
        q = q_net.apply(state.params, obs)
        greedy = jnp.argmax(q, axis=-1).astype(jnp.int32)
        if deterministic:
            return greedy, {"q": q}
        explore_key, action_key = jax.random.split(key)
        explore = jax.random.bernoulli(explore_key, epsilon(state.step), greedy.shape)
        random = jax.random.randint(action_key, greedy.shape, 0, spec.num_actions, jnp.int32)
        return jnp.where(explore, random, greedy), {"q": q}

    def loss(params: Any, state: State, batch: Transition, key: jax.Array):
        del key  # DQN's loss is deterministic
        validation.check_batch(batch, spec, "dqn.loss", window=window)
        _check_actions(batch, "dqn.loss")
        value, metrics = q_loss(params, state.target, batch, q_net, config)
        return value, {**metrics, "explore/epsilon": epsilon(state.step)}

    def update(state: State, batch: Transition):
        validation.check_batch(batch, spec, "dqn.update", window=window)
        _check_actions(batch, "dqn.update")
        grads, metrics = jax.grad(q_loss, has_aux=True)(
            state.params, state.target, batch, q_net, config
        )
        updates, opt_state = optimizer.update(grads, state.opt, state.params)
        params = optax.apply_updates(state.params, updates)
        step = state.step + 1
        # Hard copy every C updates (Mnih et al. 2015, Algorithm 1).
        target = select(step % config.target_update_period == 0, params, state.target)
        metrics = {**metrics, "explore/epsilon": epsilon(step)}
        return State(params, target, opt_state, state.key, step), metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)
