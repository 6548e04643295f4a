import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs, imitation
from purerl.core.types import EnvSpec, Rewarder, fixed_update
from purerl.envs import toy, wrappers
from purerl.envs.protocol import Env, initial_state, next_state


def counter_env(terminate_at: int | None = None) -> Env:
    """obs = [t]; reward = t after the step; terminates when t reaches ``terminate_at``."""
    spec = EnvSpec(obs_shape=(1,), action_shape=(1,), episode_length=3, name="counter")

    def reset(key):
        return initial_state(inner=jnp.zeros(()), obs=jnp.zeros((1,)))

    def step(key, state, action):
        t = state.inner + 1.0
        term = jnp.asarray(terminate_at is not None and True) & (t == (terminate_at or -1))
        return next_state(state, t, t[None], t, term)

    return Env(spec, reset, step)


def run(env, n, action=None):
    state = env.reset(jax.random.key(0))
    out = []
    for i in range(n):
        a = jnp.zeros(env.spec.action_shape) if action is None else action
        state = env.step(jax.random.key(i + 1), state, a)
        out.append(state)
    return out


def standard(env):
    env = wrappers.time_limit(env, env.spec.episode_length)
    return wrappers.episode_stats(wrappers.auto_reset(env))


def test_truncation_keeps_final_obs_and_resets():
    states = run(standard(counter_env()), 4)
    # steps: t=1, 2, 3 (time limit 3 -> truncated), then a new episode at t=1.
    np.testing.assert_array_equal([float(s.truncated) for s in states], [0, 0, 1, 0])
    np.testing.assert_array_equal([float(s.terminated) for s in states], [0, 0, 0, 0])
    assert float(states[2].final_obs[0]) == 3.0  # bootstrap from the last real observation
    assert float(states[2].obs[0]) == 0.0  # ... while the agent acts on the reset observation
    assert float(states[3].obs[0]) == 1.0 and float(states[3].final_obs[0]) == 1.0
    # episode stats: return 1 + 2 + 3 = 6, length 3, reported on the step the episode ended.
    assert float(states[2].info["episode_done"]) == 1.0
    assert float(states[2].info["last_return"]) == 6.0
    assert float(states[2].info["last_length"]) == 3.0
    assert float(states[3].info["episode_return"]) == 1.0


def test_termination_wins_over_truncation_on_the_same_step():
    states = run(standard(counter_env(terminate_at=3)), 3)
    assert float(states[2].terminated) == 1.0 and float(states[2].truncated) == 0.0


def test_termination_before_time_limit():
    states = run(standard(counter_env(terminate_at=2)), 3)
    np.testing.assert_array_equal([float(s.terminated) for s in states], [0, 1, 0])
    assert float(states[1].final_obs[0]) == 2.0 and float(states[1].obs[0]) == 0.0
    assert float(states[1].info["last_return"]) == 3.0


def test_rescale_actions_maps_unit_box_to_bounds():
    seen = []

    def step(key, state, action):
        seen.append(action)
        return state

    env = Env(EnvSpec((1,), (2,)), lambda k: initial_state(0, jnp.zeros(1)), step)
    env = wrappers.rescale_actions(env, jnp.array([0.0, -2.0]), jnp.array([1.0, 2.0]))
    env.step(None, env.reset(None), jnp.array([-1.0, 0.5]))
    env.step(None, env.reset(None), jnp.array([3.0, -9.0]))  # clipped first
    np.testing.assert_allclose(seen[0], [0.0, 1.0])
    np.testing.assert_allclose(seen[1], [1.0, -2.0])


def test_action_and_observation_noise_statistics():
    env = envs.make("point_mass", action_noise=0.3, obs_noise=0.2)
    keys = jax.random.split(jax.random.key(0), 4000)
    state = jax.vmap(env.reset)(keys)
    nxt = jax.vmap(env.step)(keys, state, jnp.zeros((4000, 2)))
    clean = envs.make("point_mass")
    clean_state = jax.vmap(clean.reset)(keys)
    # Observation noise: goal coordinates are constant (0.5) in the clean env.
    assert abs(float(jnp.std(nxt.obs[:, 2])) - 0.2) < 0.02
    assert float(jnp.std(clean_state.obs[:, 2])) == 0.0
    with pytest.raises(ValueError, match="std"):
        envs.make("point_mass", obs_noise=-1.0)
    with pytest.raises(ValueError, match="continuous"):
        envs.make("cartpole", action_noise=0.1)


def test_make_unknown_env_lists_known_ones():
    with pytest.raises(ValueError, match="unknown env 'nope'.*cartpole"):
        envs.make("nope")
    with pytest.raises(ValueError, match="no backend"):
        envs.make("point_mass", backend="spring")
    assert "halfcheetah" in envs.list_envs() and "probe1" in envs.list_envs()


def test_probe_env_rewards_and_lengths():
    gamma_env = standard(toy.probe_env(3))
    states = run(gamma_env, 2)
    assert [float(s.reward) for s in states] == [0.0, 1.0]
    assert float(states[1].terminated) == 1.0
    s5 = toy.probe_env(5)
    st = s5.reset(jax.random.key(3))
    good = 0 if float(st.obs[0]) > 0 else 1
    assert float(s5.step(jax.random.key(0), st, jnp.asarray(good)).reward) == 1.0
    assert float(s5.step(jax.random.key(0), st, jnp.asarray(1 - good)).reward) == -1.0
    c4 = toy.probe_env(4, discrete=False)
    st = c4.reset(jax.random.key(0))
    assert float(c4.step(None, st, jnp.array([0.5])).reward) == 1.0
    np.testing.assert_allclose(float(c4.step(None, st, jnp.array([-0.5])).reward), 0.0)


def test_cartpole_step_matches_hand_euler_step():
    env = toy.cartpole()
    st = initial_state(jnp.zeros(4), jnp.zeros(4))
    nxt = env.step(None, st, jnp.asarray(1))
    # From rest with theta=0: temp = 10/1.1, theta_acc = -temp / (0.5 * (4/3 - 0.1/1.1)),
    # x_acc = temp - 0.05 * theta_acc / 1.1; Euler: x_dot' = 0.02 * x_acc, theta_dot' = 0.02 * theta_acc.
    temp = 10 / 1.1
    theta_acc = -temp / (0.5 * (4 / 3 - 0.1 / 1.1))
    x_acc = temp - 0.05 * theta_acc / 1.1
    np.testing.assert_allclose(nxt.obs, [0.0, 0.02 * x_acc, 0.0, 0.02 * theta_acc], rtol=1e-5)
    assert float(nxt.reward) == 1.0 and float(nxt.terminated) == 0.0


def test_point_mass_sparse_reward_and_clipping():
    env = toy.point_mass(sparse=True, goal=(0.5, 0.5), max_speed=0.5)
    st = initial_state(jnp.array([0.5, 0.0]), jnp.zeros(4))
    nxt = env.step(None, st, jnp.array([0.0, 1.0]))  # moves to (0.5, 0.5): inside the goal
    assert float(nxt.reward) == 1.0
    far = env.step(None, initial_state(jnp.array([0.9, 0.9]), jnp.zeros(4)), jnp.array([1.0, 1.0]))
    np.testing.assert_allclose(far.obs[:2], [1.0, 1.0])  # clipped to the box
    assert float(far.reward) == 0.0


def obs_sum_rewarder(spec) -> Rewarder:
    """Stateful: r_t = sum of the episode's next observations so far (counter_env: 1, 1+2, 1+2+3),
    reset where the transition ends an episode; ``update`` is the identity."""

    def init(key, spec_=spec):
        return jnp.zeros((1,), jnp.float32)

    def reward(state, tr):
        total = state + tr.next_obs[:, 0]
        done = jnp.maximum(tr.terminated, tr.truncated)
        return total * (1.0 - done), total, {"reward/obs_sum": jnp.mean(total)}

    return Rewarder(init, reward, fixed_update)


@pytest.mark.parametrize("mode, weight", [("replace", 1.0), ("add", 0.5)])
def test_with_rewarder_sees_whole_episodes_and_keeps_the_env_reward(mode, weight):
    env = wrappers.with_rewarder(
        standard(counter_env()), obs_sum_rewarder(None), mode=mode, weight=weight
    )
    states = run(env, 5)
    env_reward = [1.0, 2.0, 3.0, 1.0, 2.0]  # counter_env: reward t; truncated after 3 steps
    ours = [1.0, 3.0, 6.0, 1.0, 3.0]  # the rewarder's running sum, restarted with the episode
    want = [
        weight * r + (e if mode == "add" else 0.0) for r, e in zip(ours, env_reward, strict=True)
    ]
    np.testing.assert_allclose([float(s.reward) for s in states], want)
    np.testing.assert_array_equal([float(s.info["env_reward"]) for s in states], env_reward)
    np.testing.assert_array_equal([float(s.info["rewarder_reward"]) for s in states], ours)
    np.testing.assert_array_equal(
        [float(s.info["rewarder_metrics"]["reward/obs_sum"]) for s in states], ours
    )
    # episode_stats below the wrapper still counts the env's return: 1 + 2 + 3.
    assert float(states[2].info["last_return"]) == 6.0


def test_with_rewarder_vmaps_over_envs_and_jits_once():
    base = envs.make("point_mass", episode_length=5)
    rewarder = imitation.get("goal_distance")(imitation.config_class("goal_distance")(), base.spec)
    env = wrappers.with_rewarder(base, rewarder)
    keys = jax.random.split(jax.random.key(0), 3)
    state = jax.vmap(env.reset)(keys)
    assert state.info["rewarder"] == ()  # goal_distance keeps no state
    step = jax.jit(jax.vmap(env.step))
    action = jnp.full((3, 2), 0.3)
    for i in range(7):
        state = step(jax.random.split(jax.random.key(i), 3), state, action)
        # goal_distance with point_mass's goal is point_mass's own reward, -||x' - g||.
        np.testing.assert_allclose(state.reward, state.info["env_reward"], rtol=1e-6, atol=1e-7)
    assert step._cache_size() == 1


def test_with_rewarder_rejects_bad_mode():
    with pytest.raises(ValueError, match="with_rewarder: reward mode must be 'replace' or 'add'"):
        wrappers.with_rewarder(counter_env(), obs_sum_rewarder(None), mode="sum")
