"""PPO: GAE and loss math against hand values / naive loops / rlax, bad input, learning smoke tests."""

import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from purerl import envs
from purerl.agents import ppo
from purerl.core.types import Network, Transition
from purerl.loops import on_policy

# ---------------------------------------------------------------------------------------------
# GAE


def naive_gae(r, v, nv, term, trunc, gamma, lam):
    """Forward sums ``A_t = sum_k (gamma lam)^(k-t) delta_k`` up to the episode end or rollout end."""
    T, E = r.shape
    adv = np.zeros((T, E))
    for e in range(E):
        for t in range(T):
            total, coef = 0.0, 1.0
            for k in range(t, T):
                delta = r[k, e] + gamma * (1.0 - term[k, e]) * nv[k, e] - v[k, e]
                total += coef * delta
                if term[k, e] or trunc[k, e]:
                    break
                coef *= gamma * lam
            adv[t, e] = total
    return adv


def rollout_with_ends(seed=0, T=9, E=3):
    rng = np.random.default_rng(seed)
    r = rng.normal(size=(T, E)).astype(np.float32)
    v = rng.normal(size=(T, E)).astype(np.float32)
    nv = rng.normal(size=(T, E)).astype(np.float32)
    term = np.zeros((T, E), np.float32)
    trunc = np.zeros((T, E), np.float32)
    term[2, 0] = 1.0  # env 0: termination at t=2, truncation at t=6
    trunc[6, 0] = 1.0
    trunc[3, 1] = 1.0  # env 1: truncation at t=3
    term[8, 2] = 1.0  # env 2: termination on the last step
    # As in a real rollout, V(s'_t) = V(s_{t+1}) inside an episode; at episode ends and at the end
    # of the rollout it is the value of the final observation (random here).
    done = np.maximum(term, trunc)
    nv[:-1] = np.where(done[:-1] > 0, nv[:-1], v[1:])
    return r, v, nv, term, trunc


def test_gae_by_hand():
    # gamma = lambda = 0.5; r = [1, 1, 1]; V(s) = 0; V(s') = [0, 0, 2]; term at t=1, trunc at t=2.
    # delta = r + gamma (1 - term) V(s') - V(s) = [1, 1, 1 + 0.5 * 2] = [1, 1, 2]
    # A_2 = 2 (truncated: bootstraps, recursion cut); A_1 = 1 (terminal); A_0 = 1 + 0.25 * 1 = 1.25
    adv = ppo.gae(
        jnp.ones((3,)),
        jnp.zeros((3,)),
        jnp.array([0.0, 0.0, 2.0]),
        jnp.array([0.0, 1.0, 0.0]),
        jnp.array([0.0, 0.0, 1.0]),
        0.5,
        0.5,
    )
    np.testing.assert_allclose(adv, [1.25, 1.0, 2.0], rtol=1e-6)


def test_gae_matches_naive_loop_with_termination_and_truncation():
    r, v, nv, term, trunc = rollout_with_ends()
    adv = ppo.gae(r, v, nv, term, trunc, 0.99, 0.95)
    np.testing.assert_allclose(
        adv, naive_gae(r, v, nv, term, trunc, 0.99, 0.95), rtol=1e-5, atol=1e-5
    )
    # The truncation at t=3 of env 1 bootstraps: its advantage is r + gamma V(s') - V(s) exactly.
    np.testing.assert_allclose(adv[3, 1], r[3, 1] + 0.99 * nv[3, 1] - v[3, 1], rtol=1e-6)


def test_gae_matches_rlax_per_episode_segment():
    # rlax takes one value sequence [V(s_0..s_k)] per trajectory, so split each env's rollout at
    # episode ends: within a segment V(s'_t) = V(s_{t+1}), and the last value is V(final obs).
    r, v, nv, term, trunc = rollout_with_ends(seed=1)
    gamma, lam = 0.97, 0.9
    adv = np.asarray(ppo.gae(r, v, nv, term, trunc, gamma, lam))
    T, E = r.shape
    for e in range(E):
        start = 0
        for t in range(T):
            if term[t, e] or trunc[t, e] or t == T - 1:
                seg = slice(start, t + 1)
                values = np.concatenate([v[seg, e], nv[t : t + 1, e]])
                ref = rlax.truncated_generalized_advantage_estimation(
                    r[seg, e], gamma * (1.0 - term[seg, e]), lam, values
                )
                np.testing.assert_allclose(adv[seg, e], ref, rtol=1e-5, atol=1e-5)
                start = t + 1


# ---------------------------------------------------------------------------------------------
# Losses


def test_clipped_surrogate_by_hand():
    # eps = 0.2. Sample 1: r = 1.5, A = +1: min(1.5, clip(1.5) = 1.2) = 1.2.
    # Sample 2: r = 0.5, A = -2: min(0.5 * -2 = -1, clip(0.5) * -2 = 0.8 * -2 = -1.6) = -1.6.
    # mean = (1.2 - 1.6) / 2 = -0.2
    old = jnp.log(jnp.array([0.2, 0.4]))
    new = jnp.log(jnp.array([0.3, 0.2]))
    value = ppo.clipped_surrogate(new, old, jnp.array([1.0, -2.0]), 0.2)
    np.testing.assert_allclose(value, -0.2, rtol=1e-5)


def reference_clipped_surrogate(log_prob, old_log_prob, advantage, epsilon):
    """The hand-written objective ``clipped_surrogate`` had before it called rlax."""
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - epsilon, 1.0 + epsilon)
    return jnp.mean(jnp.minimum(ratio * advantage, clipped * advantage))


def test_clipped_surrogate_is_bit_identical_to_the_hand_written_formula():
    # clipped_surrogate is -rlax.clipped_surrogate_pg_loss now: value and gradient (w.r.t. the new
    # log-probabilities and the advantages) must not move, also where r_t = 1 exactly (the first
    # minibatch step, where both branches of the min tie) and at the clip edges.
    rng = np.random.default_rng(3)
    old = jnp.asarray(rng.normal(size=512), jnp.float32)
    new = old + jnp.asarray(0.3 * rng.normal(size=512), jnp.float32)
    new = new.at[:64].set(old[:64])
    adv = jnp.asarray(rng.normal(size=512), jnp.float32)
    for eps in (0.2, 0.1):
        ours = jax.jit(jax.value_and_grad(ppo.clipped_surrogate, argnums=(0, 2)), static_argnums=3)
        ref = jax.jit(
            jax.value_and_grad(reference_clipped_surrogate, argnums=(0, 2)), static_argnums=3
        )
        (v1, (g1, a1)), (v2, (g2, a2)) = ours(new, old, adv, eps), ref(new, old, adv, eps)
        np.testing.assert_array_equal(v1, v2)
        np.testing.assert_array_equal(g1, g2)
        np.testing.assert_array_equal(a1, a2)


def test_value_loss_by_hand():
    # V = [1, 2], V_old = [1.5, 2], target = [0, 2], eps = 0.1.
    # plain: mean((1 - 0)^2, 0) = 0.5
    # clipped: V_clip = [1.5 + clip(-0.5, -0.1, 0.1), 2] = [1.4, 2]; max(1, 1.96) = 1.96 -> 0.98
    v, old, target = jnp.array([1.0, 2.0]), jnp.array([1.5, 2.0]), jnp.array([0.0, 2.0])
    np.testing.assert_allclose(ppo.value_loss(v, old, target), 0.5, rtol=1e-6)
    np.testing.assert_allclose(ppo.value_loss(v, old, target, 0.1), 0.98, rtol=1e-6)


def test_ppo_loss_by_hand_on_two_samples():
    # A fixed categorical policy p = (0.6, 0.4) and V(s) = w * s with w = 1.
    policy = Network(init=None, apply=lambda p, obs: distrax.Categorical(logits=p + 0 * obs))
    value = Network(init=None, apply=lambda w, obs: w * obs[..., 0])
    params = ppo.Params(policy=jnp.log(jnp.array([0.6, 0.4])), value=jnp.asarray(1.0))
    batch = ppo.Minibatch(
        obs=jnp.array([[1.0], [2.0]]),
        action=jnp.array([0, 1]),
        log_prob=jnp.log(jnp.array([0.5, 0.5])),
        value=jnp.array([1.0, 2.0]),
        advantage=jnp.array([1.0, -1.0]),
        target=jnp.array([2.0, 2.0]),
    )
    config = ppo.Config(
        clip_epsilon=0.1, value_coef=0.5, entropy_coef=0.01, normalize_advantages=False
    )
    loss, m = ppo.ppo_loss(params, batch, policy, value, config)
    # ratios r = [0.6 / 0.5, 0.4 / 0.5] = [1.2, 0.8]; eps = 0.1
    # L^CLIP = mean(min(1.2, 1.1) * 1, min(0.8 * -1, 0.9 * -1)) = mean(1.1, -0.9) = 0.1
    # L^VF = mean((1 - 2)^2, (2 - 2)^2) = 0.5
    # S = -(0.6 ln 0.6 + 0.4 ln 0.4) = 0.673012
    # loss = -0.1 + 0.5 * 0.5 - 0.01 * 0.673012 = 0.14326988
    entropy = -(0.6 * math.log(0.6) + 0.4 * math.log(0.4))
    np.testing.assert_allclose(m["loss/policy"], -0.1, rtol=1e-5)
    np.testing.assert_allclose(m["loss/value"], 0.5, rtol=1e-6)
    np.testing.assert_allclose(m["loss/entropy"], entropy, rtol=1e-5)
    np.testing.assert_allclose(loss, -0.1 + 0.25 - 0.01 * entropy, rtol=1e-5)
    # both ratios leave [0.9, 1.1]; k3 KL = mean((r - 1) - ln r) = mean(0.2 - ln 1.2, -0.2 - ln 0.8)
    np.testing.assert_allclose(m["policy/clip_fraction"], 1.0)
    kl = ((0.2 - math.log(1.2)) + (-0.2 - math.log(0.8))) / 2
    np.testing.assert_allclose(m["policy/approx_kl"], kl, rtol=1e-4)
    # With per-minibatch normalization, A = [1, -1] stays [1, -1] (mean 0, std 1): same objective.
    config_n = ppo.Config(clip_epsilon=0.1, value_coef=0.5, entropy_coef=0.01)
    loss_n, _ = ppo.ppo_loss(params, batch, policy, value, config_n)
    np.testing.assert_allclose(loss_n, loss, rtol=1e-5)


def test_clipped_gaussian_log_prob():
    loc, scale = jnp.array([0.3, 0.3, 0.3]), jnp.array([0.5, 0.5, 0.5])
    log_prob = jax.jit(ppo.clipped_gaussian_log_prob)
    got = log_prob(loc[:, None], scale[:, None], jnp.array([[-1.0], [0.2], [1.0]]))
    # inside: the Gaussian log-density; at the bounds: log of the tail masses.
    inside = -0.5 * ((0.2 - 0.3) / 0.5) ** 2 - math.log(0.5) - 0.5 * math.log(2 * math.pi)
    low = math.log(0.5 * math.erfc((1.0 + 0.3) / 0.5 / math.sqrt(2)))  # Phi(-2.6)
    high = math.log(0.5 * math.erfc((1.0 - 0.3) / 0.5 / math.sqrt(2)))  # 1 - Phi(1.4)
    np.testing.assert_allclose(got, [low, inside, high], rtol=1e-5)
    # Dimensions add.
    both = log_prob(loc[:2], scale[:2], jnp.array([-1.0, 0.2]))
    np.testing.assert_allclose(both, low + inside, rtol=1e-5)
    # A proper law: the density over (-1, 1) plus the two point masses integrate to 1.
    xs = np.linspace(-1.0, 1.0, 20001)[1:-1]
    density = np.exp(np.asarray(log_prob(loc[:1], scale[:1], jnp.asarray(xs)[:, None])))
    np.testing.assert_allclose(
        np.trapezoid(density, xs) + math.exp(low) + math.exp(high), 1.0, atol=1e-3
    )
    # Finite gradients at the bounds (where the likelihood is a tail mass).
    grads = jax.grad(lambda m: jnp.sum(log_prob(m, scale[:2], jnp.array([-1.0, 1.0]))))(loc[:2])
    assert np.all(np.isfinite(grads)) and float(grads[0]) < 0 < float(grads[1])


# ---------------------------------------------------------------------------------------------
# update / loss wiring


def random_rollout(spec, key, T=8, E=4):
    k = jax.random.split(key, 4)
    obs = jax.random.normal(k[0], (T, E, *spec.obs_shape))
    if spec.discrete:
        action = jax.random.randint(k[1], (T, E), 0, spec.num_actions)
    else:
        action = jax.random.uniform(k[1], (T, E, *spec.action_shape), minval=-1, maxval=1)
    term = (jax.random.uniform(k[3], (T, E)) < 0.1).astype(jnp.float32)
    return Transition(
        obs=obs,
        action=action,
        reward=jax.random.normal(k[2], (T, E)),
        next_obs=obs + 0.1,
        terminated=term,
        truncated=jnp.zeros((T, E)).at[3].set(1.0) * (1.0 - term),
    )


def test_update_recomputes_behaviour_policy_and_moves():
    spec = envs.make("point_mass").spec
    # One epoch of one minibatch: the step's metrics are measured at the pre-update parameters.
    config = ppo.Config(hidden=(16,), num_epochs=1, num_minibatches=1)
    algo = ppo.make(config, spec)
    state = algo.init(jax.random.key(0), spec)
    batch = random_rollout(spec, jax.random.key(1))
    new_state, metrics = jax.jit(algo.update)(state, batch)
    # pi_old is recomputed from state.params, so the ratio is exactly 1 there.
    np.testing.assert_allclose(metrics["policy/approx_kl"], 0.0, atol=1e-7)
    assert float(metrics["policy/clip_fraction"]) == 0.0
    assert int(new_state.step) == 1
    moved = jax.tree.map(
        lambda a, b: float(jnp.max(jnp.abs(a - b))), new_state.params, state.params
    )
    assert max(jax.tree.leaves(moved)) > 1e-4
    # The normalizer saw the rollout: T * E = 32 observations.
    assert float(new_state.normalizer.count) == 32.0
    np.testing.assert_allclose(
        new_state.normalizer.mean, jnp.mean(batch.obs.reshape(32, -1), axis=0), atol=1e-5
    )
    for key in (
        "loss/policy",
        "loss/value",
        "loss/entropy",
        "policy/approx_kl",
        "policy/clip_fraction",
        "value/explained_variance",
    ):
        assert np.isfinite(float(metrics[key])), key
    # Continuous entropy of N(mu, I) per dim: 0.5 ln(2 pi e) = 1.4189; 2 dims at init (log-std 0).
    np.testing.assert_allclose(metrics["loss/entropy"], 2 * 1.4189385, rtol=1e-5)


def test_act_outputs():
    spec = envs.make("point_mass").spec
    algo = ppo.make(ppo.Config(hidden=(8,), init_log_std=1.0), spec)
    state = algo.init(jax.random.key(0), spec)
    a, extras = jax.jit(algo.act)(state, jnp.zeros((500, 4)), jax.random.key(1))
    assert a.shape == (500, 2) and extras["log_prob"].shape == (500,)
    assert extras["value"].shape == (500,)
    # std e = 2.7 around a ~0 mean: many samples hit the bounds and are clipped there.
    assert float(jnp.max(jnp.abs(a))) == 1.0 and float(jnp.mean(jnp.abs(a) == 1.0)) > 0.3


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"clip_epsilon": 0.0}, "clip_epsilon"),
        ({"learning_rate": -1e-3}, "learning_rate"),
        ({"discount": 1.5}, "discount"),
        ({"gae_lambda": -0.1}, "gae_lambda"),
        ({"num_epochs": 0}, "num_epochs"),
        ({"num_minibatches": 2.5}, "num_minibatches"),
        ({"hidden": (64, 0)}, "hidden"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"entropy_coef": -0.01}, "entropy_coef"),
    ],
)
def test_bad_config(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ppo.Config(**kwargs)


def test_bad_inputs():
    spec = envs.make("cartpole").spec
    algo = ppo.make(ppo.Config(hidden=(8,), num_minibatches=5), spec)
    state = algo.init(jax.random.key(0), spec)
    with pytest.raises(ValueError, match=r"observation has shape \(3, 5\)"):
        algo.act(state, jnp.zeros((3, 5)), jax.random.key(0))
    batch = random_rollout(spec, jax.random.key(1))
    with pytest.raises(ValueError, match=r"T \* E = 8 \* 4 = 32 .*num_minibatches \(5\)"):
        algo.update(state, batch)
    flat = jax.tree.map(lambda x: x.reshape(32, *x.shape[2:]), batch)
    with pytest.raises(ValueError, match=r"expected a rollout \[T, E\]"):
        algo.update(state, flat)
    with pytest.raises(ValueError, match="batch.next_obs has shape"):
        algo.update(state, batch._replace(next_obs=batch.next_obs[..., :3]))
    with pytest.raises(TypeError, match="Transition"):
        algo.update(state, tuple(batch))


# ---------------------------------------------------------------------------------------------
# Learning smoke tests (probe envs: Andy Jones 2021; cartpole)

TINY = dict(hidden=(16, 16), num_epochs=4, num_minibatches=2, learning_rate=3e-3)


def train(env_name, config, total_steps, num_envs=16, unroll_length=8, periods=1, seed=0):
    env = envs.make(env_name)
    algo = ppo.make(config, env.spec)
    loop_config = on_policy.Config(
        total_steps=total_steps,
        num_envs=num_envs,
        unroll_length=unroll_length,
        eval_every=total_steps // periods,
        eval_episodes=8,
    )
    # The runs take ~0.1 s; compiling dominates, and LLVM -O0 makes it ~35% faster.
    fast_compile = {"xla_backend_optimization_level": 0}
    run = jax.jit(on_policy.make_train(algo, env, loop_config), compiler_options=fast_compile)
    carry, metrics = run(jax.random.key(seed))
    return algo, carry.agent, metrics


def test_probe2_value_learns_observation():
    algo, state, metrics = train("probe2", ppo.Config(**TINY), total_steps=128 * 30, periods=3)
    _, extras = algo.act(state, jnp.array([[-1.0], [1.0]]), jax.random.key(0))
    np.testing.assert_allclose(extras["value"], [-1.0, 1.0], atol=0.1)
    assert float(metrics["value/explained_variance"][-1]) > 0.99


def test_probe4_discrete_picks_action_zero():
    algo, state, metrics = train("probe4", ppo.Config(**TINY), total_steps=128 * 20)
    obs = jnp.zeros((256, 1))
    greedy, _ = algo.act(state, obs, jax.random.key(0), deterministic=True)
    sampled, _ = algo.act(state, obs, jax.random.key(1))
    assert np.all(np.asarray(greedy) == 0)
    assert float(jnp.mean(sampled == 0)) > 0.9
    assert float(metrics["eval/return"][-1]) == 1.0


def test_probe4_continuous_mean_action_near_target():
    config = ppo.Config(**TINY, init_log_std=-0.5)
    algo, state, metrics = train("probe4_continuous", config, total_steps=128 * 40)
    mean_action, _ = algo.act(state, jnp.zeros((1, 1)), jax.random.key(0), deterministic=True)
    np.testing.assert_allclose(mean_action, [[0.5]], atol=0.1)
    assert float(metrics["eval/return"][-1]) > 0.99  # 1 - (a - 0.5)^2


def test_cartpole_beats_random():
    # A uniformly random policy balances ~22 steps on average.
    config = ppo.Config(hidden=(32, 32), num_epochs=4, num_minibatches=4, learning_rate=1e-3)
    _, _, metrics = train(
        "cartpole", config, total_steps=16_384, num_envs=8, unroll_length=128, periods=2
    )
    assert float(metrics["eval/return"][-1]) > 100.0
    assert float(metrics["train/episode_return"][-1]) > 60.0
