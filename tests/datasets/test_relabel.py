"""datasets.relabel: episodes in order through a stateful rewarder, modes, kept fields, errors."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import datasets, imitation
from purerl.core.types import EnvSpec, Rewarder, fixed_update
from purerl.datasets.schema import DatasetError, validate

LENGTHS = (3, 5, 2)  # episodes: terminal, timeout, cut by the end of the file (a timeout)


def dataset(discrete: bool = False):
    n = sum(LENGTHS)
    rng = np.random.default_rng(0)
    ends = np.cumsum(LENGTHS) - 1
    terminals = np.zeros(n, bool)
    terminals[ends[0]] = True
    timeouts = np.zeros(n, bool)
    timeouts[ends[1]] = True
    obs = rng.normal(size=(n, 3)).astype(np.float32)
    actions = rng.integers(0, 2, n) if discrete else rng.uniform(-1, 1, (n, 2)).astype(np.float32)
    return validate(
        {
            "observations": obs,
            "actions": actions,
            "rewards": rng.normal(size=n).astype(np.float32),
            "next_observations": obs + 1.0,
            "terminals": terminals,
            "timeouts": timeouts,
        },
        {"env": "toy", "ref_min_score": 0.0, "ref_max_score": 1.0, "max_episode_steps": 10},
    )


def step_index() -> Rewarder:
    """Stateful: r_t = the step's index within its episode (state: [1] counter, reset at ends)."""

    def init(key, spec):
        return jnp.zeros((1,), jnp.float32)

    def reward(state, tr):
        done = jnp.maximum(tr.terminated, tr.truncated)
        return (state + 1.0) * (1.0 - done), state, {}

    return Rewarder(init, reward, fixed_update)


def test_relabel_feeds_whole_episodes_in_order():
    ds = dataset()
    out = datasets.relabel(ds, step_index(), jax.random.key(0))
    np.testing.assert_array_equal(out.rewards, [0, 1, 2, 0, 1, 2, 3, 4, 0, 1])
    for name, value in ds.arrays().items():
        if name != "rewards":
            np.testing.assert_array_equal(getattr(out, name), value, err_msg=name)
    assert out.metadata["relabel"] == {"mode": "replace", "weight": 1.0}
    assert out.metadata["ref_max_score"] == 1.0 and "relabel" not in ds.metadata


def test_relabel_add_mode_and_a_given_state():
    ds = dataset()
    start = jnp.full((1,), 10.0)  # the first episode starts counting from 10
    out = datasets.relabel(ds, step_index(), None, mode="add", weight=0.5, state=start)
    index = np.array([10, 11, 12, 0, 1, 2, 3, 4, 0, 1], np.float32)
    np.testing.assert_allclose(out.rewards, ds.rewards + 0.5 * index, rtol=1e-6)


def test_relabel_with_a_registered_rewarder():
    ds = dataset()
    spec = EnvSpec(obs_shape=(3,), action_shape=(2,))
    make = imitation.get("alive_bonus")
    out = datasets.relabel(ds, make(imitation.config_class("alive_bonus")(bonus=2.0), spec), None)
    # 2 per step, 0 on the one terminal transition (index 2).
    np.testing.assert_array_equal(out.rewards, [2, 2, 0, 2, 2, 2, 2, 2, 2, 2])


def test_relabel_errors():
    with pytest.raises(ValueError, match="discrete-action dataset needs spec="):
        datasets.relabel(dataset(discrete=True), step_index(), jax.random.key(0))

    def nan_reward(state, tr):
        return state, jnp.where(tr.obs[:, 0] > 0, jnp.nan, 0.0), {}

    bad = Rewarder(lambda k, s: (), nan_reward, fixed_update)
    with pytest.raises(DatasetError, match="rewards"):
        datasets.relabel(dataset(), bad, jax.random.key(0))
    with pytest.raises(ValueError, match="reward weight must be finite"):
        datasets.relabel(dataset(), bad, jax.random.key(0), weight=float("nan"))


def test_relabel_does_not_import_loops():
    code = (
        "import sys, jax, purerl.datasets as d\n"
        "from purerl.core.types import EnvSpec\n"
        "from purerl.imitation import rewarders as r\n"
        "ds = d.validate({'observations': [[0.0]], 'actions': [[0.0]], 'rewards': [1.0],"
        " 'next_observations': [[0.0]], 'terminals': [1], 'timeouts': [0]})\n"
        "spec = EnvSpec((1,), (1,))\n"
        "d.relabel(ds, r.make_alive_bonus(r.AliveBonusConfig(), spec), jax.random.key(0))\n"
        "assert not [m for m in sys.modules if m.startswith('purerl.loops')], 'loops imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
