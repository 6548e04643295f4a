import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.agents import td3, td3_bc
from purerl.core import networks
from purerl.core.types import EnvSpec, Transition

SPEC = EnvSpec(obs_shape=(2,), action_shape=(1,), name="t")
HIDDEN = (16, 16)
leaves = jax.tree.leaves

# Stubs: the actor outputs its parameters, Q_1(s, a) = 2 a, Q_2 = 0.
ACTOR = networks.Network(init=None, apply=lambda p, obs: p)
CRITIC = networks.Network(
    init=None, apply=lambda p, obs, act: jnp.stack([2.0 * act[:, 0], jnp.zeros(obs.shape[0])])
)


def hand_batch(action):
    n = action.shape[0]
    return Transition(
        obs=jnp.zeros((n, 2)),
        action=action,
        reward=jnp.zeros(n),
        next_obs=jnp.zeros((n, 2)),
        terminated=jnp.zeros(n),
        truncated=jnp.zeros(n),
    )


def random_batch(key, n=8):
    k = jax.random.split(key, 4)
    return Transition(
        obs=jax.random.normal(k[0], (n, 2)),
        action=jax.random.uniform(k[1], (n, 1), minval=-1, maxval=1),
        reward=jax.random.normal(k[2], (n,)),
        next_obs=jax.random.normal(k[3], (n, 2)),
        terminated=jnp.zeros(n).at[0].set(1.0),
        truncated=jnp.zeros(n).at[1].set(1.0),
    )


def test_bc_lambda_hand_value_and_guard():
    # alpha / mean |Q| = 2.5 / ((1 + 3) / 2) = 1.25
    np.testing.assert_allclose(float(td3_bc.bc_lambda(jnp.array([1.0, -3.0]), 2.5)), 1.25)
    # a critic that outputs exactly 0 would give inf; the guard keeps lambda finite
    assert np.isfinite(float(td3_bc.bc_lambda(jnp.zeros(4), 2.5)))


def test_actor_loss_on_hand_values():
    pi = jnp.array([[0.5], [-0.25]])
    batch = hand_batch(jnp.array([[0.0], [0.5]]))
    loss, m = td3_bc.actor_loss(pi, None, batch, ACTOR, CRITIC, alpha=2.5)
    # Q_1(s, pi) = [1, -0.5]: mean |Q| = 0.75, lambda = 2.5 / 0.75 = 10/3, mean Q = 0.25
    # BC = mean([0.5^2, 0.75^2]) = (0.25 + 0.5625) / 2 = 0.40625
    np.testing.assert_allclose(float(m["bc/lambda"]), 10 / 3, rtol=1e-6)
    np.testing.assert_allclose(float(m["loss/bc"]), 0.40625, rtol=1e-6)
    np.testing.assert_allclose(float(loss), -10 / 3 * 0.25 + 0.40625, rtol=1e-6)


def test_actor_gradient_bc_term_and_lambda_is_a_constant():
    pi = jnp.array([[0.5], [-0.25]])
    batch = hand_batch(jnp.array([[0.0], [0.5]]))
    g = jax.grad(lambda p: td3_bc.actor_loss(p, None, batch, ACTOR, CRITIC, 2.5)[0])(pi)
    # d/dpi_i [-lambda mean 2 pi + mean (pi - a)^2] with lambda held fixed (10/3):
    # -lambda * 2 / B + 2 (pi_i - a_i) / B = -10/3 + [0.5, -0.75]
    np.testing.assert_allclose(np.asarray(g).ravel(), [-10 / 3 + 0.5, -10 / 3 - 0.75], rtol=1e-6)

    # alpha = 0 leaves pure BC: the mean runs over batch and action dims, grad 2 (pi - a) / (B A)
    pi2 = jnp.array([[0.5, -0.5], [0.0, 1.0]])
    a2 = jnp.array([[0.0, 0.0], [1.0, 1.0]])
    g2 = jax.grad(lambda p: td3_bc.actor_loss(p, None, hand_batch(a2), ACTOR, CRITIC, 0.0)[0])(pi2)
    np.testing.assert_allclose(np.asarray(g2), 2.0 * (pi2 - a2) / 4.0, rtol=1e-6)


def test_critic_is_td3s_bit_for_bit():
    # Non-default smoothing values travel through td3_config into td3.critic_loss.
    kw = dict(hidden=HIDDEN, policy_noise=0.3, noise_clip=0.1, tau=0.5)
    algo = td3_bc.make(td3_bc.Config(**kw), SPEC)
    ref = td3.make(td3.Config(**kw, normalize_observations=False), SPEC)
    s, r = algo.init(jax.random.key(0), SPEC), ref.init(jax.random.key(0), SPEC)
    for a, b in zip(jax.tree.leaves(s.params), jax.tree.leaves(r.params), strict=True):
        np.testing.assert_array_equal(a, b)
    for i in range(2):  # steps 1 and 2: same key use, same critic update
        batch = random_batch(jax.random.key(i))
        s, m = algo.update(s, batch)
        r, mr = ref.update(r, batch)
        for k in ("loss/critic", "q/mean", "q/target"):
            np.testing.assert_array_equal(m[k], mr[k])
        for a, b in zip(leaves(s.params.critic), leaves(r.params.critic), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(jax.random.key_data(s.key), jax.random.key_data(r.key))


def test_policy_delay_and_polyak():
    algo = td3_bc.make(td3_bc.Config(hidden=HIDDEN, policy_delay=2, tau=0.5), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    batch = random_batch(jax.random.key(1))
    s1, m1 = algo.update(state, batch)  # step 1: critic only
    for a, b in zip(leaves(s1.params.actor), leaves(state.params.actor), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(leaves(s1.target), leaves(state.target), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(m1["loss/actor"]) == 0.0  # no actor update yet: the initial value is repeated
    s2, m2 = algo.update(s1, batch)  # step 2: actor + targets
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(leaves(s2.params.actor), leaves(s1.params.actor), strict=True)
    )
    for t, o, old in zip(leaves(s2.target), leaves(s2.params), leaves(s1.target), strict=True):
        np.testing.assert_allclose(t, 0.5 * old + 0.5 * o, rtol=1e-6, atol=1e-7)
    assert float(m2["bc/lambda"]) > 0 and float(m2["loss/bc"]) > 0
    for k, v in s2.actor_metrics.items():
        np.testing.assert_array_equal(v, m2[k])


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="alpha"):
        td3_bc.Config(alpha=-1.0)
    with pytest.raises(ValueError, match="policy_delay"):
        td3_bc.Config(policy_delay=0)
    with pytest.raises(ValueError, match="tau"):
        td3_bc.Config(tau=2.0)
    with pytest.raises(ValueError, match="discrete"):
        td3_bc.make(td3_bc.Config(), envs.make("cartpole").spec)
    assert td3_bc.LOOP == "offline"
    algo = td3_bc.make(td3_bc.Config(hidden=HIDDEN), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    bad = random_batch(jax.random.key(0))._replace(action=jnp.zeros((8, 3)))
    with pytest.raises(ValueError, match="action"):
        algo.update(state, bad)


def test_td3_bc_recovers_the_good_dataset_action():
    # One-step episodes: r = 1 - (a - 0.5)^2; the data's actions are 0.5 + N(0, 0.3), clipped.
    n = 2048
    k_obs, k_act, k_run = jax.random.split(jax.random.key(0), 3)
    obs = 0.1 * jax.random.normal(k_obs, (n, 2))
    act = jnp.clip(0.5 + 0.3 * jax.random.normal(k_act, (n, 1)), -1, 1)
    data = Transition(
        obs=obs,
        action=act,
        reward=1.0 - (act[:, 0] - 0.5) ** 2,
        next_obs=obs,
        terminated=jnp.ones(n),
        truncated=jnp.zeros(n),
    )
    cfg = td3_bc.Config(hidden=(32, 32), actor_lr=1e-3, critic_lr=1e-3)
    algo = td3_bc.make(cfg, SPEC)

    @jax.jit
    def train(key):
        init_key, idx_key = jax.random.split(key)
        idx = jax.random.randint(idx_key, (1000, 64), 0, n)
        batches = jax.tree.map(lambda x: x[idx], data)
        state, metrics = jax.lax.scan(algo.update, algo.init(init_key, SPEC), batches)
        return state, metrics

    state, metrics = train(k_run)
    a, _ = algo.act(state, obs[:64], None, deterministic=True)
    # seeds 0-2 give mean |a - 0.5| <= 0.022 and max <= 0.11 after these 1000 updates
    assert abs(float(jnp.mean(a)) - 0.5) < 0.05 and float(jnp.max(jnp.abs(a - 0.5))) < 0.2
    assert np.all(np.isfinite(np.asarray(metrics["loss/critic"])))
