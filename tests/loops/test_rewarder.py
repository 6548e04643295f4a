"""Rewarders in the loops (``rewarder=``): identity without one, where the reward goes, episode
state across steps and rollouts, update counts, logging, checkpoint/resume, errors."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs, imitation
from purerl.core.types import Algorithm, Rewarder
from purerl.loops import NonFiniteError, checkpoint, offline, on_policy, online, run_seeds
from tests.cpu_family import assert_recorded, pick
from tests.loops import identity_runs

DATA = pathlib.Path(__file__).parent / "data"
# By machine (tests/cpu_family.py): both recorded from 1e4e79b, the first on an AMD EPYC whose model
# was not recorded, the second on AMD EPYC Zen 3 (2026-12-08).
FIXTURE, EXACT = pick(
    {
        "AuthenticAMD": DATA / "loops_before_rewarder.npz",
        "AuthenticAMD/25/1/avx2": DATA / "loops_before_rewarder.AuthenticAMD-25-1-avx2.npz",
    }
)
EPISODE = 10  # point_mass episodes cut at 10 steps (no termination): rewards t = 0..9 per episode


def step_counter(num_envs: int) -> Rewarder:
    """A stateful, "learned" rewarder: ``r_t`` = the step's index within its episode, per env (so
    an episode of length L earns 0 + 1 + ... + (L - 1)); ``update`` counts its calls and sums the
    batch rewards it was handed."""

    def init(key, spec):
        del key, spec
        return {
            "t": jnp.zeros((num_envs,), jnp.float32),
            "updates": jnp.zeros((), jnp.int32),
            "seen_reward": jnp.zeros((), jnp.float32),
        }

    def reward(state, transition):
        r = state["t"]
        done = jnp.maximum(transition.terminated, transition.truncated)
        state = {**state, "t": (state["t"] + 1.0) * (1.0 - done)}
        return state, r, {"reward/counter": jnp.mean(r)}

    def update(state, batch):
        state = {
            **state,
            "updates": state["updates"] + 1,
            "seen_reward": state["seen_reward"] + jnp.sum(batch.reward),
        }
        return state, {"rewarder/updates": state["updates"].astype(jnp.float32)}

    return Rewarder(init, reward, update)


def fixed(name: str, spec, **config) -> Rewarder:
    return imitation.get(name)(imitation.config_class(name)(**config), spec)


def small_online(**kw):
    base = dict(
        total_steps=200, num_envs=2, warmup_steps=40, eval_every=100, batch_size=16,
        buffer_size=200, eval_episodes=2,
    )  # fmt: skip
    base.update(kw)
    return online.Config(**base)


# ---------------------------------------------------------------------------------------------
# A spy agent (zero actions; update counts calls and sums the rewards it learns from) keeps the
# compiled programs of the mechanics tests small.


def spy(spec) -> Algorithm:
    def init(key, spec_=spec):
        return {"updates": jnp.zeros((), jnp.int32), "reward_sum": jnp.zeros((), jnp.float32)}

    def act(state, obs, key, deterministic=False):
        return jnp.zeros((*obs.shape[:-1], *spec.action_shape), jnp.float32), {}

    def update(state, batch):
        state = {
            "updates": state["updates"] + 1,
            "reward_sum": state["reward_sum"] + jnp.sum(batch.reward),
        }
        return state, {"batch/reward_mean": jnp.mean(batch.reward)}

    return Algorithm(init, act, lambda p, s, b, k: (0.0, {}), update)


# ---------------------------------------------------------------------------------------------
# rewarder=None is the loop as it was.


def test_rewarder_none_is_bit_identical_to_the_loops_before_rewarders():
    """Metrics and final agent of three short runs (online TD3, on-policy PPO, offline TD3) equal,
    bit for bit, those recorded from the code before ``rewarder=`` existed (commit 1e4e79b, see
    identity_runs.py); to float32 round-off on a CPU model that rounds differently
    (tests/cpu_family.py)."""
    want = np.load(FIXTURE)
    runs = {name: run() for name, run in identity_runs.RUNS.items()}
    got = identity_runs.flatten(runs)
    # check/nonfinite_what came later (issue 20: the divergence guard names what went NaN/inf).
    new = {f"{name}/metric/check/nonfinite_what" for name in ("online", "on_policy", "offline")}
    assert set(got) - new == set(want.files)
    for k in want.files:
        assert_recorded(got[k], want[k], EXACT, err_msg=k)


def test_pass_through_rewarder_learns_exactly_what_no_rewarder_learns():
    """``env_reward`` in mode "replace" changes nothing the agent sees (its key is folded out of
    the run key, its reward is r^env): every recorded metric and the final agent are identical; the
    new rows log the env's return twice, once as return/env and once as the rewarder's."""
    want = np.load(FIXTURE)
    env = envs.make("point_mass")
    agent, metrics = identity_runs.run_online(rewarder=fixed("env_reward", env.spec))
    got = identity_runs.flatten({"online": (agent, metrics)})
    for k in want.files:
        if k.startswith("online/"):
            assert_recorded(got[k], want[k], EXACT, err_msg=k)
    np.testing.assert_array_equal(metrics["return/env"], metrics["train/episode_return"])
    np.testing.assert_allclose(metrics["return/rewarder"], metrics["return/env"], rtol=1e-5)
    assert "reward/env_mean" in metrics


# ---------------------------------------------------------------------------------------------
# Online loop


def test_online_stateful_rewarder_sees_episodes_in_order_and_updates_once_per_agent_update():
    env = envs.make("point_mass", episode_length=EPISODE)
    cfg = small_online()
    carry, m = jax.jit(online.make_train(spy(env.spec), env, cfg, rewarder=step_counter(2)))(
        jax.random.key(0)
    )
    # Replay slot t (both envs, written at iteration t) holds the rewarder's reward t mod 10.
    rewards = np.asarray(carry.buffer.data.reward)
    assert rewards.shape == (100, 2)
    np.testing.assert_array_equal(rewards, np.tile((np.arange(100) % EPISODE)[:, None], (1, 2)))
    # Episode returns: rewarder 0 + ... + 9 = 45; the env's own return is logged as return/env.
    np.testing.assert_array_equal(m["return/rewarder"], [45.0, 45.0])
    np.testing.assert_array_equal(m["return/env"], m["train/episode_return"])
    assert np.all(m["return/env"] < 0)  # point_mass: -distance to the goal
    # One rewarder update per agent update, on the same batches.
    assert int(carry.rewarder.state["updates"]) == int(carry.agent["updates"]) == 80 * 2
    np.testing.assert_allclose(
        float(carry.rewarder.state["seen_reward"]), float(carry.agent["reward_sum"]), rtol=1e-6
    )
    np.testing.assert_allclose(m["reward/counter"], 4.5)  # mean of 0..9 over each period
    assert np.all(np.isfinite(m["rewarder/updates"][1:]))


def test_online_add_mode_stores_env_reward_plus_weighted_bonus():
    env = envs.make("point_mass", episode_length=EPISODE)
    algo = spy(env.spec)
    cfg = small_online(total_steps=100, eval_every=100, warmup_steps=100)
    bonus = fixed("alive_bonus", env.spec, bonus=2.0)
    plain, _ = jax.jit(online.make_train(algo, env, cfg))(jax.random.key(3))
    added, m = jax.jit(
        online.make_train(algo, env, cfg, rewarder=bonus, reward_mode="add", reward_weight=0.25)
    )(jax.random.key(3))
    # Warm-up only (random actions from the same keys): same env rewards, plus 0.25 * 2.
    stored = np.asarray(added.buffer.data.reward)[:50]
    np.testing.assert_allclose(stored, np.asarray(plain.buffer.data.reward)[:50] + 0.5, rtol=1e-6)
    np.testing.assert_array_equal(m["return/rewarder"], [2.0 * EPISODE])


def test_online_checkpoint_resume_keeps_the_rewarder_state(tmp_path):
    env = envs.make("point_mass", episode_length=7)  # episodes straddle period boundaries
    algo = spy(env.spec)
    loop = online.make_loop(algo, env, small_online(), rewarder=step_counter(2))
    run = jax.jit(loop.run, static_argnums=1)
    c0 = jax.jit(loop.init)(jax.random.key(0))
    c1, _ = run(c0, 1)
    assert np.any(np.asarray(c1.rewarder.state["t"]) > 0)  # mid-episode
    restored = checkpoint.restore(checkpoint.save(tmp_path / "ckpt", c1), like=c0)
    resumed, m_resumed = run(restored, 1)
    straight, m_straight = run(c0, 2)
    for a, b in zip(
        jax.tree.leaves(resumed.rewarder), jax.tree.leaves(straight.rewarder), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    for k in m_resumed:
        np.testing.assert_array_equal(m_resumed[k][0], m_straight[k][1], err_msg=k)


def test_online_nonfinite_rewarder_reward_stops_the_run():
    env = envs.make("point_mass")
    algo = spy(env.spec)

    def reward(state, tr):
        return state, jnp.where(state > 4, jnp.nan, 0.0) * jnp.ones_like(tr.reward), {}

    bad = Rewarder(
        lambda key, spec: jnp.zeros((), jnp.int32),
        lambda s, tr: (s + 1, *reward(s, tr)[1:]),
        lambda s, b: (s, {}),
    )
    train = online.make_train(algo, env, small_online(), rewarder=bad)
    with pytest.raises(NonFiniteError, match="env step 12 of seed 0"):
        run_seeds(train, jax.random.key(0), 1)


def test_rewarder_errors_are_clear():
    env = envs.make("point_mass")
    algo = spy(env.spec)
    r = fixed("env_reward", env.spec)
    with pytest.raises(ValueError, match="reward mode must be 'replace' or 'add', got 'mix'"):
        online.make_train(algo, env, small_online(), rewarder=r, reward_mode="mix")
    with pytest.raises(ValueError, match="reward weight must be finite"):
        on_policy.make_train(
            algo, env, on_policy.Config(), rewarder=r, reward_mode="add", reward_weight=np.inf
        )
    # A rewarder with per-env state made for 3 envs in a loop of 2.
    with pytest.raises(ValueError, match="must be made for 2 envs"):
        jax.jit(online.make_train(algo, env, small_online(), rewarder=step_counter(3)))(
            jax.random.key(0)
        )
    # Rewarder metric names must not shadow the agent's.
    clash = Rewarder(
        lambda key, spec: (),
        lambda s, tr: (s, tr.reward, {}),
        lambda s, b: (s, {"batch/reward_mean": 0.0}),
    )
    with pytest.raises(
        ValueError, match=r"\['batch/reward_mean'\] have the same names as the agent's"
    ):
        jax.jit(online.make_train(algo, env, small_online(), rewarder=clash))(jax.random.key(0))


def test_on_policy_rollouts_carry_the_rewarders_reward_across_rollouts():
    env = envs.make("point_mass", episode_length=EPISODE)
    # unroll 4 < episode 10: episodes span several rollouts; the counter must not restart.
    cfg = on_policy.Config(
        total_steps=80, num_envs=2, unroll_length=4, eval_every=40, eval_episodes=1
    )
    carry, m = jax.jit(on_policy.make_train(spy(env.spec), env, cfg, rewarder=step_counter(2)))(
        jax.random.key(0)
    )
    # 40 steps per env = 4 whole episodes each: rewards 4 * 2 * 45 in all, mean 4.5 per step.
    np.testing.assert_allclose(float(carry.agent["reward_sum"]), 4 * 2 * 45.0)
    np.testing.assert_allclose(m["return/rewarder"], 45.0)
    np.testing.assert_array_equal(m["train/episodes"], [4, 4])
    # One rewarder update per agent update, on the same rollout.
    assert int(carry.rewarder.state["updates"]) == int(carry.agent["updates"]) == 10
    np.testing.assert_allclose(float(carry.rewarder.state["seen_reward"]), 4 * 2 * 45.0)


# ---------------------------------------------------------------------------------------------
# Offline loop


@pytest.fixture(scope="module")
def data():
    env = envs.make("point_mass")
    dataset = identity_runs.random_dataset(env.spec)
    return offline.prepare_data(dataset, offline.Config(batch_size=16, normalize_obs=False))


def offline_spy(spec) -> Algorithm:
    algo = spy(spec)

    def update(state, batch):
        state, metrics = algo.update(state, batch)
        return state, {**metrics, "batch/env_gap": jnp.mean(batch.reward - batch.obs[:, 0])}

    return algo._replace(update=update)


@pytest.mark.parametrize("mode, weight", [("replace", 2.0), ("add", 0.5)])
def test_offline_batches_are_relabelled_before_the_agent_sees_them(data, mode, weight):
    env = envs.make("point_mass")
    cfg = offline.Config(
        total_steps=20, eval_every=10, batch_size=16, eval_episodes=1, normalize_obs=False
    )
    bonus = fixed("alive_bonus", env.spec, bonus=1.0)  # no terminals in the data: r^rew = 1
    train = offline.make_train(
        offline_spy(env.spec), env, cfg, rewarder=bonus, reward_mode=mode, reward_weight=weight
    )
    carry, m = jax.jit(train)(jax.random.key(0), data)
    np.testing.assert_array_equal(m["reward/rewarder"], 1.0)
    base = 0.0 if mode == "replace" else m["reward/env"]
    np.testing.assert_allclose(m["batch/reward_mean"], base + weight, rtol=1e-5)
    assert np.all(m["reward/alive_fraction"] == 1.0)
    assert carry.rewarder == ()


def test_offline_learned_rewarder_updates_once_per_agent_update(data):
    env = envs.make("point_mass")
    cfg = offline.Config(
        total_steps=20, eval_every=10, batch_size=16, eval_episodes=1, normalize_obs=False
    )

    def counter(key, spec):
        return step_counter(16).init(key, spec)

    rewarder = step_counter(16)._replace(init=counter)
    carry, m = jax.jit(offline.make_train(offline_spy(env.spec), env, cfg, rewarder=rewarder))(
        jax.random.key(0), data
    )
    assert int(carry.rewarder["updates"]) == int(carry.agent["updates"]) == 20
    np.testing.assert_array_equal(m["rewarder/updates"], [5.5, 15.5])  # means of 1..10, 11..20
