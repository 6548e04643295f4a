import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.agents import td3
from purerl.core import networks
from purerl.core.types import EnvSpec, Transition
from purerl.loops import online, run_seeds

SPEC = EnvSpec(obs_shape=(2,), action_shape=(1,), name="t")


def test_target_policy_smoothing_clips_noise_and_action():
    actor = networks.Network(init=None, apply=lambda p, obs: jnp.full((obs.shape[0], 1), 0.9))
    cfg = td3.Config(policy_noise=10.0, noise_clip=0.5)
    a = td3.target_action(actor, None, jnp.zeros((4000, 2)), jax.random.key(0), cfg)
    # noise clipped to [-0.5, 0.5], action to [-1, 1]: values in [0.4, 1.0] with mass at both ends
    assert float(a.min()) == pytest.approx(0.4) and float(a.max()) == pytest.approx(1.0)


def test_critic_target_is_clipped_double_q_with_termination():
    actor = networks.Network(init=None, apply=lambda p, obs: jnp.zeros((obs.shape[0], 1)))
    # Q_1 = 1, Q_2 = 3 on next states -> min is 1; online Q is 0 everywhere.
    critic = networks.Network(
        init=None,
        apply=lambda p, obs, act: jnp.stack(
            [jnp.full(obs.shape[0], p[0]), jnp.full(obs.shape[0], p[1])]
        ),
    )
    batch = Transition(
        obs=jnp.zeros((2, 2)),
        action=jnp.zeros((2, 1)),
        reward=jnp.array([1.0, 2.0]),
        next_obs=jnp.zeros((2, 2)),
        terminated=jnp.array([0.0, 1.0]),
        truncated=jnp.array([1.0, 0.0]),
    )
    cfg = td3.Config(discount=0.5, policy_noise=0.0)
    target = td3.Params(actor=None, critic=(1.0, 3.0))
    loss, m = td3.critic_loss((0.0, 0.0), target, batch, jax.random.key(0), actor, critic, cfg)
    # y = [1 + .5 * 1 (truncated still bootstraps), 2 (terminated)] = [1.5, 2]
    np.testing.assert_allclose(float(m["q/target"]), 1.75)
    # two critics, each mean((y - 0)^2) = (2.25 + 4) / 2
    np.testing.assert_allclose(float(loss), 2 * 3.125)


def test_policy_delay_and_polyak():
    cfg = td3.Config(hidden=(8,), policy_delay=2, tau=0.5, normalize_observations=False)
    algo = td3.make(cfg, SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    batch = Transition(
        obs=jnp.ones((4, 2)),
        action=jnp.zeros((4, 1)),
        reward=jnp.ones(4),
        next_obs=jnp.ones((4, 2)),
        terminated=jnp.zeros(4),
        truncated=jnp.zeros(4),
    )
    s1, _ = algo.update(state, batch)  # step 1: critic only
    leaves = lambda t: jax.tree.leaves(t)
    for a, b in zip(leaves(s1.params.actor), leaves(state.params.actor), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(leaves(s1.target), leaves(state.target), strict=True):
        np.testing.assert_array_equal(a, b)
    s2, _ = algo.update(s1, batch)  # step 2: actor + targets
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(leaves(s2.params.actor), leaves(s1.params.actor), strict=True)
    )
    for t, o, old in zip(leaves(s2.target), leaves(s2.params), leaves(s1.target), strict=True):
        np.testing.assert_allclose(t, 0.5 * old + 0.5 * o, rtol=1e-6, atol=1e-7)


def test_observation_normalization():
    """With ``normalize_observations`` the batch's obs are merged into the running moments before
    the losses, the update equals plain TD3's on the normalized batch, and ``act`` normalizes with
    the state's moments (the default). Off, the state carries no normalizer."""
    from purerl.core import normalization

    off = td3.Config(hidden=(8,), normalize_observations=False)
    assert td3.make(off, SPEC).init(jax.random.key(0)).normalizer is None
    cfg = td3.Config(hidden=(8,), policy_delay=1, normalize_observations=True, obs_clip=3.0)
    algo = td3.make(cfg, SPEC)
    state = jax.jit(algo.init)(jax.random.key(0))
    keys = jax.random.split(jax.random.key(1), 3)
    batch = Transition(
        obs=10.0 * jax.random.normal(keys[0], (6, 2)) + 4.0,
        action=jax.random.uniform(keys[1], (6, 1), minval=-1, maxval=1),
        reward=jnp.arange(6.0),
        next_obs=10.0 * jax.random.normal(keys[2], (6, 2)) - 3.0,
        terminated=jnp.zeros(6),
        truncated=jnp.zeros(6),
    )
    new, metrics = jax.jit(algo.update)(state, batch)
    moments = normalization.update(normalization.init((2,)), batch.obs)
    np.testing.assert_allclose(new.normalizer.mean, moments.mean, rtol=1e-6)
    np.testing.assert_allclose(new.normalizer.var, moments.var, rtol=1e-6)
    plain = td3.make(td3.Config(hidden=(8,), policy_delay=1, normalize_observations=False), SPEC)
    norm = lambda x: normalization.normalize(moments, x, clip=3.0)  # noqa: E731
    by_hand = batch._replace(obs=norm(batch.obs), next_obs=norm(batch.next_obs))
    ref, ref_metrics = jax.jit(plain.update)(state._replace(normalizer=None), by_hand)
    for k in ("loss/critic", "loss/actor", "q/target"):
        assert float(metrics[k]) == pytest.approx(float(ref_metrics[k]), rel=1e-5)
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), new.params, ref.params
    )
    obs = batch.obs[:2]
    a, _ = algo.act(new, obs, None, deterministic=True)
    b, _ = plain.act(new, norm(obs), None, deterministic=True)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="actor_lr"):
        td3.Config(actor_lr=-1.0)
    with pytest.raises(ValueError, match="discount"):
        td3.Config(discount=1.5)
    with pytest.raises(ValueError, match="policy_delay"):
        td3.Config(policy_delay=0)
    with pytest.raises(ValueError, match="normalize_observations"):
        td3.Config(normalize_observations=1)
    with pytest.raises(ValueError, match="obs_clip"):
        td3.Config(obs_clip=0.0)
    with pytest.raises(ValueError, match="discrete"):
        td3.make(td3.Config(), envs.make("cartpole").spec)


def test_td3_learns_continuous_probe():
    env = envs.make("probe4_continuous")  # best action 0.5, reward 1 - (a - 0.5)^2
    algo = td3.make(td3.Config(hidden=(32, 32), actor_lr=1e-3, critic_lr=1e-3), env.spec)
    cfg = online.Config(
        total_steps=2000,
        warmup_steps=200,
        eval_every=500,
        batch_size=32,
        buffer_size=2000,
        eval_episodes=4,
    )
    carry, metrics = run_seeds(online.make_train(algo, env, cfg), jax.random.key(0), 2)
    a, _ = jax.vmap(lambda s: algo.act(s, jnp.zeros((1,)), None, deterministic=True))(carry.agent)
    np.testing.assert_allclose(np.asarray(a).ravel(), 0.5, atol=0.1)
    assert np.all(metrics["eval/return"][:, -1] > 0.98)
