"""BC: behaviour cloning, the BC baseline of TD3+BC (Fujimoto & Gu, NeurIPS 2021).

*A Minimalist Approach to Offline Reinforcement Learning* (arXiv 2106.06860) compares TD3+BC with
plain behaviour cloning: the TD3+BC actor (deterministic ``tanh`` MLP) regressed onto the dataset's
actions, with no critic.

* ``pi = argmin_pi E_{(s, a) ~ D} mean_i (pi(s)_i - a_i)^2`` -> :func:`actor_loss`
* one Adam step per minibatch -> ``update``; acting is ``a = pi(s)`` -> ``act``.

Observation normalisation with the dataset's mean and standard deviation (as TD3+BC does) lives in
the offline loop (``purerl.loops.offline``), not here: the agent sees whatever observations the loop
hands it, and evaluation must apply the same normalisation.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from purerl.core import networks, validation
from purerl.core.types import Algorithm, EnvSpec, Metrics, Network, Transition

LOOP = "offline"  # which loop trains this agent (purerl.loops.offline)
NEEDS_NEXT_ACTION = False  # BC regresses a_t on s_t only


@dataclasses.dataclass(frozen=True)
class Config:
    # The TD3+BC actor and optimizer (authors' code, sfujim/TD3_BC, TD3_BC.py).
    lr: float = 3e-4  # Adam, TD3_BC.py actor optimizer
    hidden: tuple[int, ...] = (256, 256)  # TD3_BC.py actor (ReLU, tanh output)

    def __post_init__(self):
        validation.positive("bc.Config", lr=self.lr)
        validation.layer_sizes("bc.Config", "hidden", self.hidden)


class Params(NamedTuple):
    actor: Any


class State(NamedTuple):
    params: Params
    opt: optax.OptState
    step: jax.Array  # updates done, int32 (BC draws no random numbers, so there is no key)


def actor_loss(actor_params: Any, batch: Transition, actor: Network) -> tuple[jax.Array, Metrics]:
    """Behaviour-cloning loss ``mean_{b, i} (pi(s_b)_i - a_{b, i})^2``.

    Averaged over the batch and the action dimensions (``F.mse_loss`` in TD3+BC's code). Shapes:
    batch leaves ``[B, ...]``.
    """
    pi = actor.apply(actor_params, batch.obs)
    err = pi - batch.action
    loss = jnp.mean(err**2)
    return loss, {"loss/actor": loss, "action/abs_error": jnp.mean(jnp.abs(err))}


def make(config: Config, spec: EnvSpec) -> Algorithm:
    """Build the BC policy and optimizer for ``spec`` (continuous actions in [-1, 1])."""
    if spec.discrete:
        raise ValueError(
            f"BC (deterministic tanh policy) needs continuous actions; env "
            f"{spec.name!r} is discrete"
        )
    actor = networks.deterministic_policy(config.hidden, spec.action_size)
    opt = optax.adam(config.lr)

    def init(key: jax.Array, spec_: EnvSpec = spec) -> State:
        del spec_
        params = Params(actor=actor.init(key, jnp.zeros((1, *spec.obs_shape))))
        return State(params=params, opt=opt.init(params), step=jnp.zeros((), jnp.int32))

    def act(state: State, obs: jax.Array, key: jax.Array, deterministic: bool = False):
        # BC's policy is deterministic: the same action with or without `deterministic`.
        del key, deterministic
        validation.check_obs(obs, spec)
        return actor.apply(state.params.actor, obs), {}

    def loss(params: Params, state: State, batch: Transition, key: jax.Array):
        del state, key
        validation.check_batch(batch, spec, "bc.loss")
        return actor_loss(params.actor, batch, actor)

    def update(state: State, batch: Transition):
        validation.check_batch(batch, spec, "bc.update")
        grads, metrics = jax.grad(actor_loss, has_aux=True)(state.params.actor, batch, actor)
        updates, opt_state = opt.update(Params(actor=grads), state.opt)
        params = optax.apply_updates(state.params, updates)
        return State(params=params, opt=opt_state, step=state.step + 1), metrics

    return Algorithm(init=init, act=act, loss=loss, update=update)
