import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.agents import td3
from purerl.envs import toy, wrappers
from purerl.loops import NonFiniteError, common, online, run_seeds
from tests.loops.blowup import blows_up

TINY = td3.Config(hidden=(8, 8))


def small(**kw):
    base = dict(
        total_steps=400,
        warmup_steps=100,
        eval_every=200,
        batch_size=16,
        buffer_size=400,
        eval_episodes=2,
    )
    base.update(kw)
    return online.Config(**base)


def test_metric_rows_and_warmup():
    env = envs.make("probe1_continuous")
    algo = td3.make(TINY, env.spec)
    cfg = small(total_steps=600, warmup_steps=300, num_envs=2, utd=0.5)
    _, m = jax.jit(online.make_train(algo, env, cfg))(jax.random.key(0))
    np.testing.assert_array_equal(m["env_steps"], [200, 400, 600])
    # The first period is pure warm-up: nothing learned, nothing measured -> NaN, not 0.
    assert np.isnan(m["loss/critic"][0]) and np.all(np.isfinite(m["loss/critic"][1:]))
    # probe1: every episode is one step with reward 1.
    np.testing.assert_array_equal(m["train/episodes"], [200, 200, 200])
    np.testing.assert_allclose(m["train/episode_return"], 1.0)
    np.testing.assert_allclose(m["eval/return"], 1.0)
    np.testing.assert_array_equal(m["check/nonfinite_step"], -1)


def test_updates_per_iteration_count():
    env = envs.make("probe1_continuous")
    algo = td3.make(TINY, env.spec)
    cfg = small(total_steps=400, warmup_steps=0, num_envs=4, utd=0.5, eval_every=400)
    carry, _ = jax.jit(online.make_train(algo, env, cfg))(jax.random.key(0))
    # 100 iterations x (0.5 * 4) updates; learning starts at iteration n_step = 1.
    assert int(carry.agent.step) == 99 * 2
    assert int(carry.iteration) == 100 and int(carry.buffer.size) == 100


def nan_env(at: int):
    base = toy.point_mass()

    def step(key, state, action):
        s = base.step(key, state, action)
        return s._replace(reward=jnp.where(s.time == at, jnp.nan, s.reward))

    env = base._replace(step=step)
    return wrappers.episode_stats(wrappers.auto_reset(wrappers.time_limit(env, 100)))


def test_nonfinite_reward_stops_run_naming_seed_and_step():
    env = nan_env(at=7)
    algo = td3.make(TINY, env.spec)
    train = online.make_train(algo, env, small())
    carry, m = run_seeds(train, jax.random.key(0), 2, check=False)
    with pytest.raises(NonFiniteError, match="env step 7 of seed 0"):
        common.check_finite(m, checks=train.checks)  # what run_seeds does after the run
    # The run froze before the bad step: the NaN transition was never written, the six before it
    # were, nothing later was, and no update ever saw the NaN (the counter runs on to the end).
    np.testing.assert_array_equal(carry.buffer.size, [6, 6])
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(carry.buffer.data))
    floats = [x for x in jax.tree.leaves(carry.agent) if jnp.issubdtype(x.dtype, jnp.floating)]
    assert floats and all(np.isfinite(x).all() for x in floats)
    np.testing.assert_array_equal(carry.iteration, [400, 400])
    np.testing.assert_array_equal(m["check/nonfinite_step"][:, -1], [7, 7])
    # 'ignore' carries on to the end.
    carry, _ = run_seeds(
        online.make_train(algo, env, small(on_nonfinite="ignore")),
        jax.random.key(0),
        1,
        check=False,
    )
    np.testing.assert_array_equal(carry.iteration, [400])


def test_diverged_update_freezes_before_it_and_names_what():
    """Issue 20: a NaN/inf loss used to pass unnoticed (only obs/rewards were checked). Updates
    start at env step 101 (100 warm-up steps); the 3rd update (env step 103) reports an inf loss:
    the run freezes before it."""
    env = envs.make("point_mass")
    train = online.make_train(blows_up(env.spec, at=3, where="loss"), env, small())
    carry, m = run_seeds(train, jax.random.key(0), 2, check=False)
    match = "in update metric loss/toy first at env step 103 of seed 0"
    with pytest.raises(common.Diverged, match=match) as e:
        common.check_finite(m, checks=train.checks)  # what run_seeds does after the run
    assert e.value.cause == "agent" and "learning rate" in str(e.value)
    np.testing.assert_array_equal(m["check/nonfinite_step"][:, -1], [103, 103])
    # Frozen before that update: the agent after the 2nd update; the replay buffer keeps the
    # finite transition of the diverged iteration; nothing later is written.
    np.testing.assert_array_equal(carry.agent["updates"], [2, 2])
    np.testing.assert_array_equal(carry.agent["w"], np.full((2, 2), 2.0))
    np.testing.assert_array_equal(carry.buffer.size, [103, 103])


def test_nonfinite_parameters_are_found_at_the_period_end_and_undone():
    """A parameter going NaN with finite losses (the 103rd update, in the second period) is found
    by the once-per-period state check: the agent goes back to the period's start (100 updates),
    the last state known finite, and the error names the leaf."""
    env = envs.make("point_mass")
    train = online.make_train(blows_up(env.spec, at=103, where="param"), env, small())
    carry, m = run_seeds(train, jax.random.key(0), 1, check=False)
    with pytest.raises(common.Diverged, match=r"in agent state w \(checked at the end of each pe"):
        common.check_finite(m, checks=train.checks)
    np.testing.assert_array_equal(m["check/nonfinite_step"], [[-1, 400]])
    np.testing.assert_array_equal(carry.agent["updates"], [100])
    np.testing.assert_array_equal(carry.agent["w"], [[100.0, 100.0]])


def test_n_step_mismatch_with_agent_is_a_clear_error():
    env = envs.make("point_mass")
    algo = td3.make(TINY, env.spec)
    with pytest.raises(ValueError, match="n_step"):
        jax.eval_shape(online.make_train(algo, env, small(n_step=3)), jax.random.key(0))


@pytest.mark.parametrize(
    "kw, field",
    [
        (dict(total_steps=450), "eval_every"),
        (dict(num_envs=3), "num_envs"),
        (dict(batch_size=1000), "batch_size"),
        (dict(utd=0.3), "utd"),
        (dict(on_nonfinite="warn"), "on_nonfinite"),
        (dict(warmup_steps=-1), "warmup_steps"),
    ],
)
def test_bad_loop_config(kw, field):
    with pytest.raises(ValueError, match=field):
        small(**kw)


def test_sharded_seeds_on_fake_devices_equal_unsharded():
    script = textwrap.dedent(
        """
        import jax, numpy as np
        from purerl import envs
        from purerl.agents import td3
        from purerl.loops import online, run_seeds
        assert len(jax.devices()) == 8, jax.devices()
        env = envs.make("probe2_continuous")
        algo = td3.make(td3.Config(hidden=(8, 8)), env.spec)
        cfg = online.Config(total_steps=200, warmup_steps=50, eval_every=100, batch_size=8,
                            buffer_size=200, eval_episodes=2)
        train = online.make_train(algo, env, cfg)
        c1, m1 = run_seeds(train, jax.random.key(0), 8, shard=True)
        assert len(c1.agent.step.sharding.device_set) == 8, c1.agent.step.sharding
        c2, m2 = run_seeds(train, jax.random.key(0), 8, shard=False)
        assert len(c2.agent.step.sharding.device_set) == 1
        for k in m1:
            np.testing.assert_allclose(m1[k], m2[k], rtol=1e-5, atol=1e-6, err_msg=k)
        print("OK")
        """
    )
    flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count=8"
    env = dict(os.environ, XLA_FLAGS=flags.strip())  # the suite's flags (conftest.py) + 8 devices
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0 and "OK" in out.stdout, out.stderr[-3000:]


def test_vmap_over_hyperparameters_and_seeds_equals_separate_runs():
    env = envs.make("probe4_continuous")
    cfg = small(total_steps=300, warmup_steps=100, eval_every=300)

    def train(key, lr):
        # Build the config inside the vmapped function: the learning rate is a traced leaf.
        algo = td3.make(td3.Config(hidden=(8, 8), actor_lr=lr, critic_lr=lr), env.spec)
        return online.make_train(algo, env, cfg)(key)[1]["q/mean"]

    keys = jax.random.split(jax.random.key(0), 2)
    lrs = jnp.array([1e-4, 3e-3])
    grid = jax.jit(jax.vmap(jax.vmap(train, in_axes=(0, None)), in_axes=(None, 0)))(keys, lrs)
    assert grid.shape == (2, 2, 1)
    for i, lr in enumerate([1e-4, 3e-3]):
        for j in range(2):
            single = jax.jit(train)(keys[j], lr)
            np.testing.assert_allclose(grid[i, j], single, rtol=1e-4, atol=1e-5)
    assert abs(float(grid[0, 0, 0]) - float(grid[1, 0, 0])) > 1e-3  # the rates really differ
