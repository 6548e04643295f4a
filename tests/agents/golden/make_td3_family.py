"""Record (or rebuild) short runs of the TD3 family for the bit-identity test.

Run against the code before the TD3 refactor of issue 12 to write the fixture::

    cd /tmp/orig && PYTHONPATH=/tmp/orig python tests/agents/golden/make_td3_family.py \
        --out tests/agents/golden/td3_family.npz

``tests/agents/test_td3_identity.py`` imports :func:`runs` and :func:`record` and asserts that the
current code reproduces every array bit for bit. Every config field a run depends on is pinned
here (never a default), so later default changes (latent size, SARSA pre-training) leave the
fixture valid.

Runs (obs ``[3]``, actions ``[2]``, hidden ``(8, 8)``, batch 16, 12 updates under one jitted
``lax.scan``, policy delay 2): td3; td3_bc; td3_cvae with 5 CVAE updates then 7 TD3 updates, at
``alpha = 1`` and ``alpha = 0``; qsarsa ``"ac"`` and ``"ac2"`` with 0 and 4 SARSA pre-training
updates.
"""

from __future__ import annotations

import argparse
import os

# The same XLA flags as tests/conftest.py, so the fixture and the test compile alike.
os.environ.setdefault(  # tests/conftest.py's flags
    "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false --xla_backend_optimization_level=0"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

SPEC_OBS, SPEC_ACT, BATCH, UPDATES = 3, 2, 16, 12

TD3 = dict(
    actor_lr=3e-3,
    critic_lr=3e-3,
    hidden=(8, 8),
    discount=0.99,
    tau=0.1,
    policy_noise=0.2,
    noise_clip=0.5,
    policy_delay=2,
    exploration_noise=0.1,
    normalize_observations=False,  # the recorded code had no normalization (added in issue 13)
)
CVAE = dict(
    TD3,
    alpha=1.0,
    use_log=False,
    bonus_latent="sample",
    cvae_hidden=(8, 8),
    latent_size=4,
    cvae_lr=1e-3,
    kl_weight=0.5,
    cvae_std="exp",
    cvae_steps=5,
    reward_scale=0.5,
    auto_reward_scale=False,
    reward_offset=0.1,
    reward_shift=None,
)
QSARSA = dict(
    TD3,
    alpha=2.5,
    sarsa_lr=1e-3,
    sarsa_tau=0.05,
    critic_reg=1.0,
    actor_reg=0.5,
)


def runs() -> dict[str, tuple[str, dict]]:
    """Run name -> (agent module name, every Config field the run depends on)."""
    return {
        "td3": ("td3", TD3),
        "td3_bc": ("td3_bc", dict(TD3, alpha=2.5)),
        "td3_cvae": ("td3_cvae", CVAE),
        "td3_cvae_alpha0": ("td3_cvae", dict(CVAE, alpha=0.0)),
        "qsarsa_ac": ("qsarsa", dict(QSARSA, variant="ac", sarsa_steps=0, actor_reg_form="linear")),
        "qsarsa_ac_pre": (
            "qsarsa",
            dict(QSARSA, variant="ac", sarsa_steps=4, actor_reg_form="linear"),
        ),
        "qsarsa_ac2": (
            "qsarsa",
            dict(QSARSA, variant="ac2", sarsa_steps=0, actor_reg_form="squared"),
        ),
        "qsarsa_ac2_pre": (
            "qsarsa",
            dict(QSARSA, variant="ac2", sarsa_steps=4, actor_reg_form="linear"),
        ),
    }


def batches():
    """``UPDATES`` stacked batches ``[UPDATES, BATCH, ...]`` from a fixed numpy seed, with
    terminals, truncations and next actions."""
    from purerl.core.types import Transition

    rng = np.random.default_rng(0)
    n = (UPDATES, BATCH)
    obs = rng.normal(size=(*n, SPEC_OBS)).astype(np.float32)
    term = (rng.uniform(size=n) < 0.2).astype(np.float32)
    trunc = ((rng.uniform(size=n) < 0.2) & (term == 0)).astype(np.float32)
    return Transition(
        obs=jnp.asarray(obs),
        action=jnp.asarray(rng.uniform(-1, 1, (*n, SPEC_ACT)).astype(np.float32)),
        reward=jnp.asarray(rng.normal(size=n).astype(np.float32)),
        next_obs=jnp.asarray(obs + rng.normal(scale=0.1, size=obs.shape).astype(np.float32)),
        terminated=jnp.asarray(term),
        truncated=jnp.asarray(trunc),
        next_action=jnp.asarray(rng.uniform(-1, 1, (*n, SPEC_ACT)).astype(np.float32)),
    )


def state_parts(state) -> dict:
    """Named sub-trees of a final state, whatever the State layout of the code under test.

    Optimizer states are left out to keep the fixture small: the final parameters after 12 Adam
    steps already depend on every earlier moment estimate."""
    parts = {"actor": state.params.actor, "critic": state.params.critic}
    parts["target_actor"], parts["target_critic"] = state.target.actor, state.target.critic
    parts["key"] = jax.random.key_data(state.key)
    extra = getattr(state, "extra", None)
    if extra is not None and hasattr(extra, "key"):  # td3_cvae after the refactor
        parts["cvae"] = extra.params
        parts["bonus_key"] = jax.random.key_data(extra.key)
    elif extra is not None:  # qsarsa after the refactor
        parts["sarsa"], parts["target_sarsa"] = extra.params, extra.target
    elif hasattr(state, "cvae_opt"):  # td3_cvae before
        parts["cvae"] = state.params.cvae
        parts["bonus_key"] = jax.random.key_data(state.bonus_key)
    elif hasattr(state, "sarsa_opt"):  # qsarsa before
        parts["sarsa"], parts["target_sarsa"] = state.params.sarsa, state.target.sarsa
    return parts


def record(name: str) -> dict[str, np.ndarray]:
    """Run ``name`` on the installed purerl; ``{"metric/<key>": [UPDATES], "state/<part>/<i>":
    leaf}``."""
    from purerl import agents
    from purerl.core.types import EnvSpec

    module_name, fields = runs()[name]
    module = agents.get(module_name)
    spec = EnvSpec(obs_shape=(SPEC_OBS,), action_shape=(SPEC_ACT,), name="golden")
    algo = module.make(module.Config(**fields), spec)
    state = algo.init(jax.random.key(42), spec)
    state, metrics = jax.jit(lambda s, b: jax.lax.scan(algo.update, s, b))(state, batches())
    out = {f"metric/{k}": np.asarray(v) for k, v in metrics.items()}
    for part, tree in state_parts(state).items():
        for i, leaf in enumerate(jax.tree.leaves(tree)):
            out[f"state/{part}/{i}"] = np.asarray(leaf)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    arrays = {}
    for name in runs():
        for k, v in record(name).items():
            arrays[f"{name}:{k}"] = v
    np.savez_compressed(args.out, **arrays)
    print(f"{args.out}: {len(arrays)} arrays, jax {jax.__version__}")


if __name__ == "__main__":
    main()
