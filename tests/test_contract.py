"""The one contract every registered thing satisfies (docs/design.md, "Tests" 3), and ``__all__``.

Every registry of the library is listed in :data:`REGISTRIES` with a provider of its cases; the
tests are parametrized over all of them, and :func:`test_every_registry_is_under_contract` fails
when a package grows a ``REGISTRY`` that is not listed, or a provider misses a registered name.

A :class:`Case` is one registered thing reduced to what the contract needs: ``init(key) -> state``
and the scan bodies ``(state, batch) -> (state, metrics)`` it must provide (an agent: ``update``;
a rewarder: ``reward`` and ``update``), with ``batch(key)`` giving a batch of the shape its loop
hands it. Checks per case and body: jit with one trace for many calls (``chex.assert_max_traces``),
state structure / shapes / dtypes kept, finite metrics, usable as a ``lax.scan`` body, and ``vmap``
over seeds (init + a few calls) equal to a Python loop over the seeds. To bring a new registry in,
write a provider ``def <name>_cases() -> list[Case]`` and add a :class:`Registry` line.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable
from typing import Any, NamedTuple

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import purerl
from purerl import agents, envs, imitation
from purerl.core.types import Transition
from tests.alignment.contract_cases import contract_cases

TINY = {
    "hidden": (8, 8),
    "actor_hidden": (8, 8),
    "critic_hidden": (8, 8),
    "cvae_hidden": (8, 8),
    "num_minibatches": 2,
    "num_epochs": 2,
    "batch_size": 8,
}
CALLS = 3  # calls of each body under one trace, and the scan length of the vmap check


class Case(NamedTuple):
    """One registered thing under the contract.

    Attributes:
      name: its name in its registry.
      init: ``init(key) -> state`` (the spec and any pretrained inputs closed over).
      bodies: ``((label, body), ...)``, each ``body(state, batch) -> (state, metrics)`` a scan body.
      batch: ``batch(key)``, one batch of the shape the bodies are handed in their loop.
    """

    name: str
    init: Callable[[jax.Array], Any]
    bodies: tuple[tuple[str, Callable[[Any, Any], tuple[Any, dict]]], ...]
    batch: Callable[[jax.Array], Any]


def tiny_config(config_class: type) -> Any:
    """``config_class`` with the :data:`TINY` fields it has (small nets, small batches)."""
    fields = {f.name for f in dataclasses.fields(config_class)}
    return config_class(**{k: v for k, v in TINY.items() if k in fields})


def transitions(spec, lead: tuple[int, ...], key: jax.Array, next_action: bool = False):
    """Random transitions of ``spec`` with leading shape ``lead`` (10% terminal)."""
    k = jax.random.split(key, 4)
    obs = jax.random.normal(k[0], (*lead, *spec.obs_shape))
    if spec.discrete:
        action = jax.random.randint(k[1], lead, 0, spec.num_actions)
    else:
        action = jax.random.uniform(k[1], (*lead, *spec.action_shape), minval=-1, maxval=1)
    return Transition(
        obs=obs,
        action=action,
        reward=jax.random.normal(k[2], lead),
        next_obs=obs + 0.1,
        terminated=(jax.random.uniform(k[3], lead) < 0.1).astype(jnp.float32),
        truncated=jnp.zeros(lead),
        next_action=action[::-1] if next_action else None,
    )


# ---------------------------------------------------------------------------------------------
# Providers: one per registry.


def agent_setup(name: str):
    """``(module, config, env, algo)`` for agent ``name``: point_mass, or cartpole when the agent
    takes discrete actions only."""
    module = agents.get(name)
    config = tiny_config(module.Config)
    try:
        env = envs.make("point_mass")
        algo = module.make(config, env.spec)
    except ValueError:  # discrete-only agent
        env = envs.make("cartpole")
        algo = module.make(config, env.spec)
    return module, config, env, algo


def agent_batch(module, config, spec, key):
    """A random batch of the shape the agent's loop hands to ``update``: online ``[B]`` or n-step
    windows ``[B, n]``, on-policy rollouts ``[T, E]``, offline ``[B]`` with ``next_action``."""
    if module.LOOP == "on_policy":
        lead = (8, 4)
    else:
        n = getattr(config, "n_step", 1)
        lead = (8,) if n == 1 else (8, n)
    return transitions(spec, lead, key, next_action=module.LOOP == "offline")


def agent_cases() -> list[Case]:
    cases = []
    for name in sorted(agents.REGISTRY):
        module, config, env, algo = agent_setup(name)
        spec = env.spec
        cases.append(
            Case(
                name=name,
                init=lambda key, algo=algo, spec=spec: algo.init(key, spec),
                bodies=(("update", algo.update),),
                batch=lambda key, m=module, c=config, s=spec: agent_batch(m, c, s, key),
            )
        )
    return cases


def rewarder_cases() -> list[Case]:
    spec = envs.make("point_mass").spec
    cases = []
    for name in sorted(imitation.REGISTRY):
        rewarder = imitation.get(name)(tiny_config(imitation.config_class(name)), spec)

        def reward(state, batch, rewarder=rewarder):
            state, r, metrics = rewarder.reward(state, batch)
            assert r.shape == batch.reward.shape and r.dtype == jnp.float32
            return state, {**metrics, "rewarder/reward": r}

        cases.append(
            Case(
                name=name,
                init=lambda key, rewarder=rewarder: rewarder.init(key, spec),
                bodies=(("reward", reward), ("update", rewarder.update)),
                batch=lambda key: transitions(spec, (8,), key),
            )
        )
    return cases


class Registry(NamedTuple):
    """A registry of the library and the provider of its contract cases."""

    package: str  # the package whose ``REGISTRY`` dict names what is registered
    cases: Callable[[], list[Case]]


REGISTRIES = [
    Registry("purerl.agents", agent_cases),
    Registry("purerl.imitation", rewarder_cases),
    Registry("purerl.alignment", contract_cases),
]


def all_cases() -> list[tuple[str, Case]]:
    return [(registry.package, case) for registry in REGISTRIES for case in registry.cases()]


CASES = all_cases()


def case_id(item: tuple[str, Case]) -> str:
    return f"{item[0].rpartition('.')[2]}/{item[1].name}"


# ---------------------------------------------------------------------------------------------
# The contract


def _plain(x):
    return jax.random.key_data(x) if jnp.issubdtype(x.dtype, jax.dtypes.prng_key) else x


@pytest.mark.parametrize("item", CASES, ids=case_id)
def test_contract(item):
    _, case = item
    init = jax.jit(case.init)
    state = init(jax.random.key(0))
    batch = case.batch(jax.random.key(1))
    jitted = {}
    for label, body in case.bodies:
        # jit: many calls, one trace; structure, shapes and dtypes kept; metrics finite, "group/name".
        chex.clear_trace_counter()  # counters are keyed by source, shared by cases of one registry
        jitted[label] = jax.jit(chex.assert_max_traces(body, n=1))
        s = state
        for _ in range(CALLS):
            s, metrics = jitted[label](s, batch)
        assert jax.tree.structure(s) == jax.tree.structure(state), label
        for a, b in zip(jax.tree.leaves(s), jax.tree.leaves(state), strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype, label
        for k, v in metrics.items():
            assert "/" in k, f"{label}: metric {k!r} is not 'group/name'"
            assert np.all(np.isfinite(np.asarray(v))), f"{label}: {k}"

    # vmap over seeds of (init, then CALLS calls of each body as a lax.scan) equals a Python loop
    # over the seeds of the same calls, jitted one at a time.
    batches = jax.tree.map(lambda x: jnp.stack([x] * CALLS), batch)

    def run(key):
        s = case.init(key)
        for _, body in case.bodies:
            s, _ = jax.lax.scan(body, s, batches)
        return s

    keys = jax.random.split(jax.random.key(9), 2)
    vmapped = jax.jit(jax.vmap(run))(keys)
    for i in range(len(keys)):
        s = init(keys[i])
        for label, _ in case.bodies:
            for _ in range(CALLS):
                s, _ = jitted[label](s, batch)
        for a, b in zip(jax.tree.leaves(vmapped), jax.tree.leaves(s), strict=True):
            np.testing.assert_allclose(
                np.asarray(_plain(a)[i]), np.asarray(_plain(b)), rtol=2e-4, atol=2e-5
            )


def test_every_registry_is_under_contract():
    """Every name in every registered package's ``REGISTRY`` has a case, nothing else does, and
    every purerl subpackage with a ``REGISTRY`` is in :data:`REGISTRIES`."""
    listed = {registry.package for registry in REGISTRIES}
    for info in pkgutil.iter_modules(purerl.__path__, "purerl."):
        if info.ispkg:
            module = importlib.import_module(info.name)
            if hasattr(module, "REGISTRY"):
                assert info.name in listed, f"{info.name}.REGISTRY has no contract provider"
    for registry in REGISTRIES:
        registered = set(importlib.import_module(registry.package).REGISTRY)
        covered = [case.name for package, case in CASES if package == registry.package]
        assert sorted(covered) == sorted(registered), registry.package


# ---------------------------------------------------------------------------------------------
# What only agents have: act and loss.


@pytest.mark.parametrize("name", sorted(agents.REGISTRY))
def test_agent_act_and_loss(name):
    module, config, env, algo = agent_setup(name)
    spec = env.spec
    state = algo.init(jax.random.key(0), spec)
    batch = agent_batch(module, config, spec, jax.random.key(1))

    # loss is a scalar with metrics.
    params = state.params if hasattr(state, "params") else state
    value, loss_metrics = jax.jit(algo.loss)(params, state, batch, jax.random.key(2))
    assert value.shape == () and np.isfinite(float(value)) and loss_metrics

    # act: one obs or a batch, deterministic is deterministic, continuous actions in [-1, 1].
    a1, _ = algo.act(state, jnp.zeros(spec.obs_shape), jax.random.key(3))
    ab, _ = algo.act(state, jnp.zeros((5, *spec.obs_shape)), jax.random.key(3))
    act_shape = () if spec.discrete else spec.action_shape
    assert a1.shape == act_shape and ab.shape == (5, *act_shape)
    obs = batch.obs.reshape(-1, *spec.obs_shape)
    d1, _ = algo.act(state, obs, jax.random.key(4), True)
    d2, _ = algo.act(state, obs, jax.random.key(5), True)
    np.testing.assert_array_equal(d1, d2)
    if not spec.discrete:
        assert np.all(np.abs(np.asarray(ab)) <= 1.0)


@pytest.mark.parametrize("name", sorted(agents.REGISTRY))
def test_agent_rejects_bad_observation_shape(name):
    module, config, env, algo = agent_setup(name)
    state = algo.init(jax.random.key(0), env.spec)
    with pytest.raises(ValueError, match="shape"):
        algo.act(state, jnp.zeros((3, env.spec.obs_shape[0] + 1)), jax.random.key(0))
    batch = agent_batch(module, config, env.spec, jax.random.key(1))
    bad = batch._replace(obs=jnp.zeros((*batch.obs.shape[:-1], batch.obs.shape[-1] + 2)))
    with pytest.raises(ValueError, match="obs"):
        algo.update(state, bad)


# ---------------------------------------------------------------------------------------------
# __all__ of every package


def packages() -> list[str]:
    names = ["purerl"]
    for info in pkgutil.walk_packages(purerl.__path__, "purerl."):
        if info.ispkg:
            names.append(info.name)
    return names


@pytest.mark.parametrize("package", packages())
def test_package_all_names_exist_and_cover_public_submodules(package):
    module = importlib.import_module(package)
    assert hasattr(module, "__all__"), f"{package} has no __all__"
    exported = list(module.__all__)
    assert len(exported) == len(set(exported)), f"{package}.__all__ repeats a name"
    for name in exported:
        if not hasattr(module, name):  # a submodule imported on demand (agents)
            importlib.import_module(f"{package}.{name}")
        assert hasattr(module, name), f"{package}.__all__ names {name!r}, which does not exist"
    public = {
        info.name for info in pkgutil.iter_modules(module.__path__) if not info.name.startswith("_")
    }
    missing = sorted(public - set(exported))
    assert not missing, f"{package}.__all__ lacks its public submodules {missing}"
