"""On-policy loop: config checks, rollout contents (final obs, time limits), metric rows, resume,
NaN freezing, and an end-to-end PPO run over seeds."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.agents import ppo
from purerl.core.types import Algorithm
from purerl.envs import toy, wrappers
from purerl.loops import common, on_policy
from tests.loops.blowup import blows_up

# ---------------------------------------------------------------------------------------------
# Config


def test_config_defaults_are_consistent():
    c = on_policy.Config()
    assert c.steps_per_iteration == 2048 and c.iterations_per_eval == 8 and c.num_evals == 64


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (
            {"total_steps": 1000, "eval_every": 300},
            r"total_steps \(1000\) must be a multiple of eval_every \(300\)",
        ),
        (
            {"total_steps": 960, "eval_every": 96, "num_envs": 4, "unroll_length": 16},
            r"eval_every \(96\) must be a multiple of num_envs \* unroll_length \(4 \* 16 = 64\)",
        ),
        ({"num_envs": 0}, r"num_envs must be a positive int, got 0"),
        ({"unroll_length": 2.5}, r"unroll_length must be a positive int, got 2.5"),
        ({"eval_episodes": -1}, r"eval_episodes must be a positive int"),
        ({"on_nonfinite": "warn"}, r"on_nonfinite must be 'raise' or 'ignore', got 'warn'"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        on_policy.Config(**kwargs)


# ---------------------------------------------------------------------------------------------
# A spy agent: zero actions, and an update that reports what the loop handed it.


def spy(spec) -> Algorithm:
    def init(key, spec_=spec):
        return {"updates": jnp.zeros((), jnp.int32)}

    def act(state, obs, key, deterministic=False):
        lead = obs.shape[:1]
        if spec.discrete:
            return jnp.zeros(lead, jnp.int32), {}
        return jnp.zeros((*lead, *spec.action_shape), jnp.float32), {}

    def update(state, batch):
        done = jnp.maximum(batch.terminated, batch.truncated)[:-1]
        # inside an episode s'_t is s_{t+1}; after an episode end s'_t is the final obs and s_{t+1}
        # the first obs of the next episode.
        same = jnp.all(batch.next_obs[:-1] == batch.obs[1:], axis=-1)
        metrics = {
            "spy/unroll": jnp.asarray(batch.reward.shape[0], jnp.float32),
            "spy/envs": jnp.asarray(batch.reward.shape[1], jnp.float32),
            "spy/terminated": jnp.sum(batch.terminated),
            "spy/truncated": jnp.sum(batch.truncated),
            "spy/continuous": jnp.all(jnp.where(done > 0, True, same)).astype(jnp.float32),
            "spy/reset_after_end": jnp.all(jnp.where(done > 0, ~same, True)).astype(jnp.float32),
            "spy/final_obs": jnp.sum(
                batch.next_obs[..., 0] * jnp.maximum(batch.terminated, batch.truncated)
            )
            / jnp.maximum(jnp.sum(jnp.maximum(batch.terminated, batch.truncated)), 1.0),
            "spy/updates": state["updates"].astype(jnp.float32),
        }
        return {"updates": state["updates"] + 1}, metrics

    return Algorithm(init=init, act=act, loss=None, update=update)


def test_rollout_keeps_final_obs_on_termination():
    # probe3: obs 0 then 1, terminates after 2 steps; the terminal step's next_obs is 1, the
    # observation after the auto-reset is 0.
    env = envs.make("probe3")
    config = on_policy.Config(
        total_steps=48, num_envs=2, unroll_length=4, eval_every=16, eval_episodes=2
    )
    carry, m = jax.jit(on_policy.make_train(spy(env.spec), env, config))(jax.random.key(0))
    np.testing.assert_array_equal(m["env_steps"], [16, 32, 48])
    np.testing.assert_array_equal(m["spy/unroll"], [4, 4, 4])
    np.testing.assert_array_equal(m["spy/envs"], [2, 2, 2])
    np.testing.assert_array_equal(m["spy/terminated"], [4, 4, 4])  # 2 episodes x 2 envs / rollout
    np.testing.assert_array_equal(m["spy/truncated"], [0, 0, 0])
    np.testing.assert_array_equal(m["spy/final_obs"], [1, 1, 1])
    np.testing.assert_array_equal(m["spy/continuous"], [1, 1, 1])
    np.testing.assert_array_equal(m["spy/reset_after_end"], [1, 1, 1])
    # update metrics are period means: iterations (0, 1), (2, 3), (4, 5) saw counters 0..5.
    np.testing.assert_allclose(m["spy/updates"], [0.5, 2.5, 4.5])
    assert int(carry.agent["updates"]) == 6 and int(carry.iteration) == 6
    # probe3 pays 1 per episode of 2 steps; 16 steps per period = 8 episodes.
    np.testing.assert_array_equal(m["train/episodes"], [8, 8, 8])
    np.testing.assert_array_equal(m["train/episode_return"], [1, 1, 1])
    np.testing.assert_array_equal(m["eval/return"], [1, 1, 1])
    np.testing.assert_array_equal(m["eval/length"], [2, 2, 2])
    np.testing.assert_array_equal(m["eval/return_std"], [0, 0, 0])
    np.testing.assert_array_equal(m["check/nonfinite_step"], [-1, -1, -1])


def test_rollout_keeps_final_obs_on_truncation_and_resumes():
    # point mass with zero actions stands still; a time limit of 3 truncates at t = 2, 5 of each
    # 6-step rollout, where next_obs is the final position and obs restarts somewhere random.
    env = envs.make("point_mass", episode_length=3)
    config = on_policy.Config(
        total_steps=48, num_envs=2, unroll_length=6, eval_every=24, eval_episodes=2
    )
    rows = []
    loop = on_policy.make_loop(
        spy(env.spec), env, config, callback=lambda steps, row: rows.append(int(steps))
    )
    run = jax.jit(loop.run, static_argnums=1)
    carry, m = run(loop.init(jax.random.key(1)), 2)
    np.testing.assert_array_equal(m["spy/truncated"], [4, 4])
    np.testing.assert_array_equal(m["spy/terminated"], [0, 0])
    np.testing.assert_array_equal(m["spy/continuous"], [1, 1])
    np.testing.assert_array_equal(m["spy/reset_after_end"], [1, 1])
    np.testing.assert_array_equal(m["train/episodes"], [8, 8])
    np.testing.assert_array_equal(m["eval/length"], [3, 3])
    assert rows == [24, 48]
    # Resume: one period, then another from the saved carry, equals two periods at once.
    carry1, m1 = run(loop.init(jax.random.key(1)), 1)
    carry2, m2 = run(carry1, 1)
    for k in m:
        np.testing.assert_array_equal(np.concatenate([m1[k], m2[k]]), m[k], err_msg=k)
    for a, b in zip(jax.tree.leaves(carry2), jax.tree.leaves(carry), strict=True):
        if jnp.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------------------------
# Non-finite observations / rewards


def nan_after_five_steps() -> envs.Env:
    """point_mass whose reward turns NaN at the 5th step of an episode."""
    base = toy.point_mass()

    def step(key, state, action):
        state = base.step(key, state, action)
        return state._replace(reward=jnp.where(state.time >= 5, jnp.nan, state.reward))

    env = base._replace(step=step)
    env = wrappers.time_limit(env, env.spec.episode_length)
    return wrappers.episode_stats(wrappers.auto_reset(env))


@pytest.mark.parametrize("mode", ["raise", "ignore"])
def test_nonfinite_freezes_the_run(mode):
    env = nan_after_five_steps()
    config = on_policy.Config(
        total_steps=32,
        num_envs=2,
        unroll_length=4,
        eval_every=8,
        eval_episodes=1,
        on_nonfinite=mode,
    )
    train = on_policy.make_train(spy(env.spec), env, config)
    # Iteration 0 covers episode steps 1-4; the first step of iteration 1 (env step 8 + 2 = 10)
    # is the 5th of the episode.
    if mode == "raise":
        with pytest.raises(common.NonFiniteError, match="env step 10 of seed 0"):
            common.run_seeds(train, jax.random.key(0), 2)
    carry, m = jax.jit(train)(jax.random.key(0))
    if mode == "raise":
        np.testing.assert_array_equal(m["check/nonfinite_step"], [-1, 10, 10, 10])
        # The rollout holding the NaN is never learned from; nothing runs after it.
        assert int(carry.agent["updates"]) == 1 and int(carry.iteration) == 2
        np.testing.assert_array_equal(m["env_steps"], [8, 16, 16, 16])
        assert float(m["spy/updates"][0]) == 0.0 and np.all(np.isnan(m["spy/updates"][1:]))
    else:
        # 'ignore' runs neither track nor report non-finite values (run_seeds cannot raise).
        assert "check/nonfinite_step" not in m
        assert int(carry.agent["updates"]) == 4
        np.testing.assert_array_equal(m["env_steps"], [8, 16, 24, 32])


@pytest.mark.parametrize(
    "where, quantity",
    [
        ("param", "agent state w \\(checked at the end of each period\\)"),
        ("loss", "update metric loss/toy"),
    ],
)
def test_diverged_update_is_undone_and_named(where, quantity):
    """Issue 20: a NaN/inf loss or parameter used to pass unnoticed. The 2nd update (after the
    rollout ending at env step 16; one rollout per period) blows up: it is undone (a loss right
    away, a parameter by the period-end state check) and the run freezes there."""
    env = envs.make("point_mass")
    config = on_policy.Config(
        total_steps=32, num_envs=2, unroll_length=4, eval_every=8, eval_episodes=1
    )
    train = on_policy.make_train(blows_up(env.spec, at=2, where=where), env, config)
    carry, m = common.run_seeds(train, jax.random.key(0), 1, check=False)
    with pytest.raises(common.Diverged, match=f"in {quantity} first at env step 16 of seed 0"):
        common.check_finite(m, checks=train.checks)
    np.testing.assert_array_equal(m["check/nonfinite_step"], [[-1, 16, 16, 16]])
    np.testing.assert_array_equal(carry.agent["updates"], [1])
    np.testing.assert_array_equal(carry.agent["w"], [[1.0, 1.0]])
    if where == "loss":  # the undone update's metrics are not averaged into its row
        assert np.isfinite(m["loss/toy"][0, 0]) and np.isnan(m["loss/toy"][0, 1])


# ---------------------------------------------------------------------------------------------
# PPO end to end, vmapped over seeds


def test_ppo_rows_over_seeds():
    env = envs.make("probe1")  # one step, reward 1: V = 1
    algo = ppo.make(
        ppo.Config(hidden=(8,), num_epochs=2, num_minibatches=2, learning_rate=1e-2), env.spec
    )
    config = on_policy.Config(
        total_steps=192, num_envs=4, unroll_length=8, eval_every=64, eval_episodes=3
    )
    train = on_policy.make_train(algo, env, config)
    states, m = common.run_seeds(train, jax.random.key(0), 2)
    expected = {
        "env_steps",
        "eval/return",
        "eval/return_std",
        "eval/length",
        "train/episode_return",
        "train/episodes",
        "check/nonfinite_step",
        "check/nonfinite_what",
        "loss/total",
        "loss/policy",
        "loss/value",
        "loss/entropy",
        "policy/approx_kl",
        "policy/clip_fraction",
        "value/explained_variance",
        "grad/norm",
    }
    assert set(m) == expected
    for k in expected:
        assert m[k].shape == (2, 3), k
        assert np.all(np.isfinite(m[k])), k
    np.testing.assert_array_equal(m["env_steps"], [[64, 128, 192]] * 2)
    np.testing.assert_array_equal(m["train/episodes"], [[64, 64, 64]] * 2)
    np.testing.assert_array_equal(m["eval/return"], [[1, 1, 1]] * 2)
    np.testing.assert_array_equal(m["eval/length"], [[1, 1, 1]] * 2)
    np.testing.assert_array_equal(states.agent.step, [6, 6])
    # seeds are different runs
    assert not np.allclose(m["loss/value"][0], m["loss/value"][1])
    # the value error falls as V(0) -> 1
    assert np.all(m["loss/value"][:, -1] < m["loss/value"][:, 0])
