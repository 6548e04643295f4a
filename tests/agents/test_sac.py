"""SAC: math against hand-computed values, update order, bad input, learning on probe envs."""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.agents import sac
from purerl.core import networks
from purerl.core.types import EnvSpec, Network, Transition
from purerl.loops import online

SPEC = EnvSpec(obs_shape=(3,), action_shape=(2,), name="test")
# The by-hand tests check the paper's equations on raw observations; the default observation
# normalization has its own test (test_observation_normalization_and_reward_scale).
TINY = sac.Config(hidden=(16, 16), normalize_observations=False)


def random_batch(seed, batch_size=8, spec=SPEC, lead=()):
    """Random transitions ``[batch_size, *lead, ...]`` (numpy RNG: no per-shape jit of jax.random)."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, *lead)
    f32 = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
    return Transition(
        obs=f32(rng.normal(size=(*shape, *spec.obs_shape))),
        action=f32(rng.uniform(-1, 1, size=(*shape, *spec.action_shape))),
        reward=f32(rng.normal(size=shape)),
        next_obs=f32(rng.normal(size=(*shape, *spec.obs_shape))),
        terminated=f32(np.zeros(shape, np.float32)),
        truncated=f32(np.zeros(shape)),
    )


# --- tanh-Gaussian log-density -------------------------------------------------------------------


def test_tanh_gaussian_log_prob_by_hand():
    # loc 0, std 1, a = tanh(1): log N(1; 0, 1) = -1/2 - log(2 pi)/2 = -1.418939;
    # log |da/du| = log(1 - tanh(1)^2) = -2 log cosh(1) = -0.867562  ->  -1.418939 + 0.867562.
    dist = networks.tanh_gaussian(jnp.zeros(1), jnp.zeros(1))
    assert float(dist.log_prob(jnp.tanh(jnp.ones(1)))) == pytest.approx(-0.551377, abs=1e-5)
    # a = 0 at loc 0: the Jacobian is 1, so the density is the Gaussian's, -log(2 pi)/2.
    assert float(dist.log_prob(jnp.zeros(1))) == pytest.approx(-0.918939, abs=1e-5)


def test_sample_action_log_prob_matches_change_of_variables():
    actor = networks.gaussian_policy((8,), 2)
    params = jax.jit(actor.init)(jax.random.key(0), jnp.zeros((1, 3)))
    obs = jnp.asarray(np.random.default_rng(1).normal(size=(64, 3)), jnp.float32)
    a, log_prob = jax.jit(lambda p, o, k: sac.sample_action(actor, p, o, k))(
        params, obs, jax.random.key(2)
    )
    assert a.shape == (64, 2) and log_prob.shape == (64,)
    assert np.all(np.abs(np.asarray(a)) < 1.0)
    loc, log_std = (np.asarray(x, np.float64) for x in actor.apply(params, obs))
    a64 = np.asarray(a, np.float64)
    u = np.arctanh(a64)
    std = np.exp(log_std)
    gauss = -0.5 * ((u - loc) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)
    manual = np.sum(gauss, -1) - np.sum(np.log(1.0 - a64**2), -1)
    np.testing.assert_allclose(np.asarray(log_prob), manual, atol=2e-3)


# --- soft TD target and critic loss ---------------------------------------------------------------


def test_soft_td_target_by_hand():
    # row 0: min(2, 1.5) - 0.5 * (-1) = 2.0 -> 1 + 0.9 * 2.0 = 2.8; row 1 terminated: y = r = 0.5.
    y = sac.soft_td_target(
        reward=jnp.array([1.0, 0.5]),
        terminated=jnp.array([0.0, 1.0]),
        next_q=jnp.array([[2.0, 3.0], [1.5, 4.0]]),
        next_log_prob=jnp.array([-1.0, 2.0]),
        alpha=jnp.asarray(0.5),
        discount=0.9,
    )
    np.testing.assert_allclose(y, [2.8, 0.5], rtol=1e-6)


# Hand-made linear networks so every number in the critic loss can be written down.
HAND_ACTOR = Network(
    init=None, apply=lambda p, obs: (p["m"] * obs, jnp.full_like(obs, p["log_std"]))
)
HAND_CRITIC = Network(
    init=None,
    apply=lambda p, obs, a: jnp.stack(
        [p["w"][i] * obs[:, 0] + p["v"][i] * a[:, 0] + p["b"][i] for i in range(2)]
    ),
)


@pytest.mark.parametrize("terminated", [[0.0, 0.0], [0.0, 1.0]])
def test_critic_loss_on_two_transitions_by_hand(terminated):
    config = sac.Config(discount=0.9)
    actor_params = {"m": jnp.asarray(0.5), "log_std": jnp.asarray(-1.0)}
    online_c = {"w": jnp.array([1.0, 2.0]), "v": jnp.array([0.5, -0.5]), "b": jnp.array([0.0, 0.1])}
    target_c = {"w": jnp.array([1.5, 1.0]), "v": jnp.array([1.0, 0.0]), "b": jnp.array([0.2, 0.0])}
    log_alpha = jnp.log(0.2)
    # The second transition is truncated: it still bootstraps unless it is also terminated.
    batch = Transition(
        obs=jnp.array([[1.0], [-1.0]]),
        action=jnp.array([[0.5], [-0.2]]),
        reward=jnp.array([1.0, -1.0]),
        next_obs=jnp.array([[0.5], [2.0]]),
        terminated=jnp.array(terminated),
        truncated=jnp.array([0.0, 1.0]),
    )
    key = jax.random.key(3)

    @jax.jit
    def run(online_c, target_c, actor_params, log_alpha, batch):
        out = sac.critic_loss(
            online_c, target_c, actor_params, log_alpha, batch, key, HAND_ACTOR, HAND_CRITIC, config
        )
        return out, sac.sample_action(HAND_ACTOR, actor_params, batch.next_obs, key)

    (loss, metrics), (next_a, next_logp) = run(online_c, target_c, actor_params, log_alpha, batch)
    # By hand, with the sampled next actions a' and their log-densities:
    next_a, next_logp = np.asarray(next_a), np.asarray(next_logp)
    s2 = np.array([0.5, 2.0])
    q1_next = 1.5 * s2 + 1.0 * next_a[:, 0] + 0.2
    q2_next = 1.0 * s2 + 0.0 * next_a[:, 0] + 0.0
    soft_v = np.minimum(q1_next, q2_next) - 0.2 * next_logp
    y = np.array([1.0, -1.0]) + 0.9 * (1.0 - np.array(terminated)) * soft_v
    s, a = np.array([1.0, -1.0]), np.array([0.5, -0.2])
    q1 = 1.0 * s + 0.5 * a + 0.0  # [1.25, -1.1]
    q2 = 2.0 * s - 0.5 * a + 0.1  # [1.85, -1.8]
    expected = np.mean(0.5 * (q1 - y) ** 2) + np.mean(0.5 * (q2 - y) ** 2)
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["q/target"]) == pytest.approx(np.mean(y), rel=1e-5)
    assert float(metrics["q/mean"]) == pytest.approx(np.mean([q1, q2]), rel=1e-5)


def test_actor_loss_by_hand():
    # J_pi = mean[alpha log pi(a|s) - min(Q1, Q2)(s, a)] with the hand-made linear networks.
    actor_params = {"m": jnp.asarray(0.5), "log_std": jnp.asarray(-1.0)}
    critic_p = {"w": jnp.array([1.0, 2.0]), "v": jnp.array([0.5, -0.5]), "b": jnp.array([0.0, 0.1])}
    batch = random_batch(0, 4, EnvSpec((1,), (1,)))
    key = jax.random.key(5)

    @jax.jit
    def run(actor_params, critic_p, batch):
        out = sac.actor_loss(
            actor_params, critic_p, jnp.log(0.3), batch, key, HAND_ACTOR, HAND_CRITIC
        )
        return out, sac.sample_action(HAND_ACTOR, actor_params, batch.obs, key)

    (loss, metrics), (a, logp) = run(actor_params, critic_p, batch)
    a, logp = np.asarray(a), np.asarray(logp)
    s = np.asarray(batch.obs)[:, 0]
    q = np.minimum(1.0 * s + 0.5 * a[:, 0], 2.0 * s - 0.5 * a[:, 0] + 0.1)
    assert float(loss) == pytest.approx(np.mean(0.3 * logp - q), rel=1e-5)
    assert float(metrics["policy/entropy"]) == pytest.approx(-np.mean(logp), rel=1e-5)


# --- temperature ---------------------------------------------------------------------------------


def test_temperature_loss_value_and_sign():
    # log pi + H_bar = [-1 - 1, 0.5 - 1] = [-2, -0.5], mean -1.25 -> loss = -log 2 * -1.25.
    log_alpha = jnp.log(2.0)
    log_prob = jnp.array([-1.0, 0.5])
    loss, grad = jax.value_and_grad(sac.temperature_loss)(log_alpha, log_prob, -1.0)
    assert float(loss) == pytest.approx(1.25 * math.log(2.0), rel=1e-6)
    # Policy entropy (-mean log pi = 0.25) above the target (-1): gradient descent lowers alpha.
    assert float(grad) == pytest.approx(1.25, rel=1e-6)
    # Entropy -2.5 below the target: log pi + H_bar = [1, 2] -> gradient -1.5, alpha rises.
    grad = jax.grad(sac.temperature_loss)(log_alpha, jnp.array([2.0, 3.0]), -1.0)
    assert float(grad) == pytest.approx(-1.5, rel=1e-6)


@pytest.fixture(scope="module")
def one_update():
    """One jitted update of a tiny SAC (compiled once, shared by the tests below)."""
    config = dataclasses.replace(TINY, alpha_lr=1e-2)
    algo = sac.make(config, SPEC)
    state = jax.jit(algo.init)(jax.random.key(0))
    batch = random_batch(1)
    new, metrics = jax.jit(algo.update)(state, batch)
    return config, algo, state, batch, new, metrics


def test_update_order_alpha_step_and_target(one_update):
    config, _, state, batch, new, metrics = one_update
    assert set(metrics) == {
        "loss/critic",
        "loss/actor",
        "loss/alpha",
        "policy/alpha",
        "policy/entropy",
        "q/mean",
        "q/target",
    }
    assert all(np.isfinite(float(v)) for v in metrics.values())
    # Reproduce the update's key split to check which parameters each loss saw.
    _, critic_key, actor_key, alpha_key = jax.random.split(state.key, 4)
    actor = networks.gaussian_policy(config.hidden, 2)
    critic = networks.q_network(config.hidden, num_critics=2)

    @jax.jit
    def reference(old, p, target_critic):
        c_loss, _ = sac.critic_loss(
            old.critic,
            target_critic,
            old.actor,
            old.log_alpha,
            batch,
            critic_key,
            actor,
            critic,
            config,
        )
        a_new, _ = sac.actor_loss(
            old.actor, p.critic, old.log_alpha, batch, actor_key, actor, critic
        )
        a_old, _ = sac.actor_loss(
            old.actor, old.critic, old.log_alpha, batch, actor_key, actor, critic
        )
        _, logp = sac.sample_action(actor, p.actor, batch.obs, alpha_key)
        return c_loss, a_new, a_old, sac.temperature_loss(old.log_alpha, logp, -2.0)

    old, p = state.params, new.params
    c_loss, a_new, a_old, t_loss = reference(old, p, state.target_critic)
    assert float(metrics["loss/critic"]) == pytest.approx(float(c_loss), rel=1e-5)
    # The actor loss is evaluated with the critic that was just updated (Algorithm 1 order) ...
    assert float(metrics["loss/actor"]) == pytest.approx(float(a_new), rel=1e-5)
    assert abs(float(a_new) - float(a_old)) > 1e-6
    # ... and the temperature loss with the actor that was just updated.
    assert float(metrics["loss/alpha"]) == pytest.approx(float(t_loss), rel=1e-5)
    # alpha starts at 1 (log 0); the initial policy's entropy is far above -|A| = -2, so the first
    # Adam step moves log alpha by -lr (Adam's first step is lr * sign(grad)).
    assert float(metrics["policy/alpha"]) == pytest.approx(1.0)
    assert float(p.log_alpha) == pytest.approx(-1e-2, rel=1e-3)
    # Polyak target: (1 - tau) * old target + tau * new critic.
    expected = jax.tree.map(lambda t, o: 0.995 * t + 0.005 * o, state.target_critic, p.critic)
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, atol=1e-7), new.target_critic, expected
    )
    assert int(new.step) == 1
    # State structure, shapes and dtypes are unchanged by an update (a lax.scan body).
    assert jax.tree.structure(new) == jax.tree.structure(state)
    jax.tree.map(lambda a, b: (a.shape, a.dtype) == (b.shape, b.dtype) or pytest.fail(), new, state)


def test_loss_is_sum_of_network_losses(one_update):
    _, algo, state, batch, _, _ = one_update
    total, metrics = jax.jit(algo.loss)(state.params, state, batch, jax.random.key(2))
    parts = metrics["loss/critic"] + metrics["loss/actor"] + metrics["loss/alpha"]
    assert float(total) == pytest.approx(float(parts), rel=1e-6)
    assert float(metrics["policy/alpha"]) == pytest.approx(1.0)


def test_act_shapes_and_deterministic(one_update):
    config, algo, state, _, _, _ = one_update
    obs = jnp.asarray(np.random.default_rng(1).normal(size=(5, 3)), jnp.float32)
    act = jax.jit(algo.act, static_argnames="deterministic")
    a, _ = act(state, obs, jax.random.key(2))
    assert a.shape == (5, 2) and np.all(np.abs(np.asarray(a)) <= 1.0)
    d1, _ = act(state, obs, jax.random.key(3), deterministic=True)
    d2, _ = act(state, obs, jax.random.key(4), deterministic=True)
    np.testing.assert_array_equal(d1, d2)
    loc, _ = jax.jit(networks.gaussian_policy(config.hidden, 2).apply)(state.params.actor, obs)
    np.testing.assert_allclose(d1, jnp.tanh(loc), rtol=1e-6)
    single, _ = act(state, obs[0], jax.random.key(2))
    assert single.shape == (2,)


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("actor_lr", 0.0),
        ("critic_lr", -1e-3),
        ("alpha_lr", float("nan")),
        ("discount", 1.5),
        ("tau", -0.1),
        ("init_alpha", 0.0),
        ("hidden", (0, 16)),
        ("target_entropy", float("inf")),
        ("learn_alpha", "yes"),
        ("normalize_observations", 1),
        ("obs_clip", 0.0),
        ("reward_scale", -1.0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"sac.Config.{field}"):
        sac.Config(**{field: value})


def test_observation_normalization_and_reward_scale():
    """With ``normalize_observations`` the batch's obs are merged into the running moments first,
    the losses see ``clip((s - mean) / std)`` for ``obs`` and ``next_obs``, and ``act`` normalizes
    with the state's moments; ``reward_scale`` multiplies the reward in the soft target."""
    from purerl.core import normalization

    config = dataclasses.replace(TINY, normalize_observations=True, obs_clip=3.0, reward_scale=2.0)
    algo = sac.make(config, SPEC)
    state = jax.jit(algo.init)(jax.random.key(0))
    batch = random_batch(3)
    batch = batch._replace(obs=batch.obs * 10.0 + 4.0, next_obs=batch.next_obs * 10.0 + 4.0)
    new, metrics = jax.jit(algo.update)(state, batch)
    moments = normalization.update(normalization.init((3,)), batch.obs)
    np.testing.assert_allclose(new.normalizer.mean, moments.mean, rtol=1e-6)
    np.testing.assert_allclose(new.normalizer.var, moments.var, rtol=1e-6)
    assert float(new.normalizer.count) == 8.0
    # The same update as plain SAC (reward doubled by hand) on the normalized batch.
    plain = sac.make(dataclasses.replace(TINY), SPEC)
    norm = lambda x: normalization.normalize(moments, x, clip=3.0)  # noqa: E731
    by_hand = batch._replace(obs=norm(batch.obs), next_obs=norm(batch.next_obs))
    by_hand = by_hand._replace(reward=2.0 * batch.reward)
    ref, ref_metrics = jax.jit(plain.update)(state, by_hand)
    for k in ("loss/critic", "loss/actor", "q/target"):
        assert float(metrics[k]) == pytest.approx(float(ref_metrics[k]), rel=1e-5)
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6),
        new.params,
        ref.params,
    )
    # act: normalized with the state's moments.
    obs = batch.obs[:2]
    a, _ = algo.act(new, obs, jax.random.key(1), deterministic=True)
    b, _ = plain.act(new, norm(obs), jax.random.key(1), deterministic=True)
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bad_input(one_update):
    with pytest.raises(ValueError, match="continuous"):
        sac.make(TINY, envs.make("probe4").spec)
    _, algo, state, _, _, _ = one_update
    with pytest.raises(ValueError, match="observation has shape"):
        algo.act(state, jnp.zeros((5, 4)), jax.random.key(1))
    # n-step windows are not for SAC: a clear error, not a silent broadcast.
    with pytest.raises(ValueError, match="batch.reward"):
        algo.update(state, random_batch(1, lead=(3,)))
    bad = random_batch(1)._replace(next_obs=jnp.zeros((8, 2)))
    with pytest.raises(ValueError, match="batch.next_obs"):
        algo.update(state, bad)
    bad = random_batch(1)._replace(action=jnp.zeros((8, 1)))
    with pytest.raises(ValueError, match="batch.action"):
        algo.loss(state.params, state, bad, jax.random.key(0))


# --- learning on probe envs ----------------------------------------------------------------------

LOOP = online.Config(
    total_steps=2000, warmup_steps=256, batch_size=64, buffer_size=10_000, eval_every=1000
)
FAST = sac.Config(hidden=(32, 32), actor_lr=1e-3, critic_lr=1e-3, alpha_lr=1e-3)


def train(env_name, config=FAST, seed=0):
    env = envs.make(env_name)
    algo = sac.make(config, env.spec)
    state, metrics = jax.jit(online.make_train(algo, env, LOOP))(jax.random.key(seed))
    return algo, state.agent, metrics


def test_learns_probe4_continuous():
    # reward 1 - (a - 0.5)^2: the deterministic policy must find a = 0.5.
    algo, agent, metrics = train("probe4_continuous")
    a, _ = algo.act(agent, jnp.zeros((1,)), jax.random.key(0), deterministic=True)
    assert abs(float(a[0]) - 0.5) < 0.15
    assert float(metrics["eval/return"][-1]) > 0.95
    assert np.all(np.isfinite(metrics["loss/critic"]))
    # One-step episodes: Q(s, a) -> r, so the soft target equals the reward (no entropy bonus).
    assert float(metrics["q/target"][-1]) == pytest.approx(float(metrics["q/mean"][-1]), abs=0.05)


def test_learns_probe2_values():
    # reward = obs = +-1, one step: Q(s, a) = s for every action, both critics. This run also
    # checks the fixed-temperature option: alpha must stay exactly at init_alpha.
    config = dataclasses.replace(FAST, learn_alpha=False, init_alpha=0.1)
    algo, agent, metrics = train("probe2_continuous", config)
    np.testing.assert_allclose(metrics["policy/alpha"], 0.1, rtol=1e-6)
    obs = jnp.array([[1.0], [-1.0]])
    a, _ = algo.act(agent, obs, jax.random.key(0), deterministic=True)
    q = networks.q_network(FAST.hidden, num_critics=2).apply(agent.params.critic, obs, a)
    np.testing.assert_allclose(q, [[1.0, -1.0], [1.0, -1.0]], atol=0.1)
