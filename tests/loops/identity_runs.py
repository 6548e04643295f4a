"""Three short loop runs (online TD3, on-policy PPO, offline TD3) whose metrics and final agent are
recorded in ``data/loops_before_rewarder.npz`` from the code *before* the loops took
``rewarder=`` (commit 1e4e79b), so ``test_rewarder.py`` can check that ``rewarder=None`` is
bit-identical to it.

Only APIs that exist both before and after the change are used here. Re-record (only when a change
of the numbers is intended and explained) with::

    PYTHONPATH=<checkout> python tests/loops/identity_runs.py tests/loops/data/loops_before_rewarder.npz
"""

from __future__ import annotations

import sys

import jax
import numpy as np

from purerl import envs
from purerl.agents import ppo, td3
from purerl.datasets.schema import validate
from purerl.loops import offline, on_policy, online

ONLINE = online.Config(
    total_steps=200, num_envs=2, warmup_steps=60, eval_every=100, batch_size=16,
    buffer_size=200, eval_episodes=2,
)  # fmt: skip
ON_POLICY = on_policy.Config(
    total_steps=128, num_envs=2, unroll_length=16, eval_every=64, eval_episodes=2
)
OFFLINE = offline.Config(total_steps=40, eval_every=20, batch_size=16, eval_episodes=2)


def random_dataset(spec, n: int = 300, episode: int = 50):
    """A fixed point_mass-shaped dataset from numpy's seeded generator (no env, no expert)."""
    rng = np.random.default_rng(0)
    obs = rng.uniform(-1, 1, (n, *spec.obs_shape)).astype(np.float32)
    t = np.arange(n)
    return validate(
        {
            "observations": obs,
            "actions": rng.uniform(-1, 1, (n, *spec.action_shape)).astype(np.float32),
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_observations": obs + 0.01,
            "terminals": np.zeros(n, bool),
            "timeouts": (t % episode) == episode - 1,
        },
        {"max_episode_steps": episode},
    )


def run_online(**rewarder_kwargs) -> tuple:
    """``(final agent state, metrics)``; ``rewarder_kwargs`` go to ``make_train``."""
    env = envs.make("point_mass")
    algo = td3.make(
        td3.Config(hidden=(8, 8), normalize_observations=False), env.spec
    )  # as recorded
    train = online.make_train(algo, env, ONLINE, **rewarder_kwargs)
    carry, m = jax.jit(train)(jax.random.key(0))
    return carry.agent, m


def run_on_policy(**rewarder_kwargs) -> tuple:
    env = envs.make("point_mass")
    algo = ppo.make(ppo.Config(hidden=(8, 8), num_minibatches=2, num_epochs=2), env.spec)
    train = on_policy.make_train(algo, env, ON_POLICY, **rewarder_kwargs)
    carry, m = jax.jit(train)(jax.random.key(1))
    return carry.agent, m


def run_offline(**rewarder_kwargs) -> tuple:
    env = envs.make("point_mass")
    algo = td3.make(
        td3.Config(hidden=(8, 8), normalize_observations=False), env.spec
    )  # as recorded
    data = offline.prepare_data(random_dataset(env.spec), OFFLINE)
    train = offline.make_train(algo, env, OFFLINE, **rewarder_kwargs)
    carry, m = jax.jit(train)(jax.random.key(2), data)
    return carry.agent, m


RUNS = {"online": run_online, "on_policy": run_on_policy, "offline": run_offline}


def flatten(results: dict[str, tuple]) -> dict[str, np.ndarray]:
    """``{"online/metric/<key>": ..., "online/agent/<i>": ...}`` (PRNG keys as their key data)."""
    flat = {}
    for name, (agent, metrics) in results.items():
        for k, v in metrics.items():
            flat[f"{name}/metric/{k}"] = np.asarray(v)
        for i, leaf in enumerate(jax.tree.leaves(agent)):
            if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
                leaf = jax.random.key_data(leaf)
            flat[f"{name}/agent/{i}"] = np.asarray(leaf)
    return flat


if __name__ == "__main__":
    np.savez(sys.argv[1], **flatten({name: run() for name, run in RUNS.items()}))
