"""DQN: target math (by hand and against rlax), epsilon schedule, bad input, learning smoke tests.

Most math tests use a *tabular* Q-network: observations are one-hot state indices and
``apply(params, obs) = obs @ params``, so ``params`` is the Q-table ``[S, A]`` and every target can
be computed by hand from the table.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from purerl import envs
from purerl.agents import dqn
from purerl.core.types import EnvSpec, Network, Transition
from purerl.loops import online

TABLE = Network(init=None, apply=lambda params, obs: obs @ params)
SPEC = EnvSpec(obs_shape=(3,), action_shape=(), num_actions=2, name="test")
# Mnih et al. 2015's DQN: one-step max target (purerl's defaults are double Q and 3-step returns).
NATURE = dict(double=False, n_step=1)


def one_hot(states, n=3):
    return jax.nn.one_hot(jnp.asarray(states), n)


def transitions(s, a, r, s2, term, trunc, n_states=3):
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return Transition(
        obs=one_hot(s, n_states),
        action=jnp.asarray(a, jnp.int32),
        reward=f32(r),
        next_obs=one_hot(s2, n_states),
        terminated=f32(term),
        truncated=f32(trunc),
    )


# Three transitions: a plain step, a termination, a truncation (which must still bootstrap).
ONLINE = jnp.array([[1.0, 2.0], [-1.0, 0.5], [3.0, 0.0]])
TARGET = jnp.array([[1.5, 0.5], [2.0, 1.0], [-1.0, 4.0]])
BATCH = transitions(
    s=[0, 1, 2], a=[1, 0, 0], r=[1.0, -0.5, 0.0], s2=[1, 2, 0], term=[0, 1, 0], trunc=[0, 0, 1]
)


# ----------------------------------------------------------------------------------------------
# Target math by hand


def test_dqn_target_and_huber_loss_by_hand():
    config = dqn.Config(discount=0.9, **NATURE)
    loss, metrics = dqn.q_loss(ONLINE, TARGET, BATCH, TABLE, config)
    # y1 = 1 + 0.9 * max(2, 1) = 2.8; y2 = -0.5 (terminated); y3 = 0 + 0.9 * max(1.5, .5) = 1.35
    #   (truncated: bootstraps from next_obs).  Q(s, a) = [2, -1, 3] -> td = [0.8, 0.5, -1.65]
    # huber = [0.5 * 0.64, 0.5 * 0.25, 1.65 - 0.5] = [0.32, 0.125, 1.15] -> mean 1.595 / 3
    np.testing.assert_allclose(loss, 1.595 / 3, rtol=1e-6)
    np.testing.assert_allclose(metrics["q/target"], (2.8 - 0.5 + 1.35) / 3, rtol=1e-6)
    np.testing.assert_allclose(metrics["q/mean"], (2.0 - 1.0 + 3.0) / 3, rtol=1e-6)
    assert metrics["loss/q"] == loss
    assert "munchausen/bonus" not in metrics


def test_l2_loss_by_hand():
    config = dqn.Config(discount=0.9, td_loss="l2", **NATURE)
    loss, _ = dqn.q_loss(ONLINE, TARGET, BATCH, TABLE, config)
    # 0.5 * (0.8^2 + 0.5^2 + 1.65^2) / 3 = 0.5 * (0.64 + 0.25 + 2.7225) / 3
    np.testing.assert_allclose(loss, 0.5 * 3.6125 / 3, rtol=1e-6)


def test_double_dqn_target_by_hand():
    config = dqn.Config(discount=0.9, double=True, n_step=1)
    loss, metrics = dqn.q_loss(ONLINE, TARGET, BATCH, TABLE, config)
    # s'=1: online argmax of [-1, 0.5] is 1 -> Q'(1, 1) = 1.0 -> y1 = 1 + 0.9 = 1.9
    # s'=0: online argmax of [1, 2] is 1 -> Q'(0, 1) = 0.5 -> y3 = 0.45;  y2 = -0.5
    # td = [1.9 - 2, -0.5 + 1, 0.45 - 3] = [-0.1, 0.5, -2.55]
    # huber = [0.005, 0.125, 2.55 - 0.5] -> mean 2.18 / 3
    np.testing.assert_allclose(metrics["q/target"], (1.9 - 0.5 + 0.45) / 3, rtol=1e-6)
    np.testing.assert_allclose(loss, 2.18 / 3, rtol=1e-6)


def test_munchausen_target_by_hand_tau_one():
    config = dqn.Config(
        discount=0.9,
        munchausen=True,
        entropy_tau=1.0,
        munchausen_alpha=0.9,
        log_policy_clip=-1.0,
        n_step=1,
    )
    _, metrics = dqn.q_loss(ONLINE, TARGET, BATCH, TABLE, config)
    c = math.log(1 + math.exp(-1))  # 0.3132617: lse(x, x - 1) = x + c
    # t1: ln pi'(1|s0) = 0.5 - lse(1.5, 0.5) = -1 - c -> clipped to -1 -> bonus -0.9
    #     soft V'(s1) = tau lse([2, 1] / tau) = 2 + c;  y1 = 1 - 0.9 + 0.9 (2 + c)
    # t2: ln pi'(0|s1) = 2 - (2 + c) = -c (inside [-1, 0]) -> bonus -0.9 c
    #     terminal: y2 = -0.5 - 0.9 c
    # t3: ln pi'(0|s2) = -1 - lse(-1, 4) ~ -5.0067 -> clipped -> bonus -0.9
    #     soft V'(s0) = 1.5 + c;  y3 = 0 - 0.9 + 0.9 (1.5 + c)
    y = [0.1 + 0.9 * (2 + c), -0.5 - 0.9 * c, -0.9 + 0.9 * (1.5 + c)]
    np.testing.assert_allclose(metrics["q/target"], np.mean(y), rtol=1e-6)
    np.testing.assert_allclose(metrics["munchausen/bonus"], (-0.9 - 0.9 * c - 0.9) / 3, rtol=1e-6)


def test_munchausen_bonus_paper_temperature():
    # tau = 0.03, alpha = 0.9, l0 = -1 (the paper's values). Q' = [0, -0.015]:
    # ln pi(1) = -0.5 - ln(1 + e^-0.5) = -0.974077 -> tau ln pi = -0.0292223 -> bonus -0.0263001
    # ln pi(0) = -ln(1 + e^-0.5) = -0.474077      -> tau ln pi = -0.0142223 -> bonus -0.0128001
    # Q' = [2, 1]: ln pi(1) = -1/0.03 - ln(1 + e^(-1/0.03)) ~ -33.33 -> tau ln pi ~ -1.0 -> clipped
    q = jnp.array([[0.0, -0.015], [0.0, -0.015], [2.0, 1.0], [2.0, 1.0]])
    a = jnp.array([1, 0, 1, 0])
    bonus = dqn.munchausen_bonus(q, a, tau=0.03, alpha=0.9, log_policy_clip=-1.0)
    l1 = -0.5 - math.log1p(math.exp(-0.5))
    l0 = -math.log1p(math.exp(-0.5))
    expected = [0.9 * 0.03 * l1, 0.9 * 0.03 * l0, -0.9, 0.0]
    np.testing.assert_allclose(bonus, expected, rtol=1e-5, atol=1e-7)
    # With l0 = -0.5 the clipping binds at -0.5 instead.
    bonus = dqn.munchausen_bonus(q[2:3], a[2:3], tau=0.03, alpha=0.9, log_policy_clip=-0.5)
    np.testing.assert_allclose(bonus, [-0.45], rtol=1e-6)


def test_soft_value_equals_tau_logsumexp_and_is_stable():
    q = jax.random.normal(jax.random.key(0), (16, 5)) * 3.0
    for tau in (0.03, 0.5, 2.0):
        np.testing.assert_allclose(
            dqn.soft_value(q, tau), tau * jax.nn.logsumexp(q / tau, axis=-1), rtol=1e-5, atol=1e-5
        )
    # pi(1) = 0 in float32: a naive pi * log(pi) would give 0 * -inf = NaN here.
    v = dqn.soft_value(jnp.array([[1000.0, 0.0]]), 0.03)
    np.testing.assert_allclose(v, [1000.0], rtol=1e-6)
    # Small tau -> max; large tau -> mean + tau ln A.
    q1 = jnp.array([[1.0, 2.0, 4.0]])
    np.testing.assert_allclose(dqn.soft_value(q1, 1e-3), [4.0], rtol=1e-5)
    np.testing.assert_allclose(dqn.soft_value(q1, 1e4), [7 / 3 + 1e4 * math.log(3)], rtol=1e-6)


def test_n_step_windows_by_hand():
    """Windows of 3 steps, gamma = 0.9, online Q = 0 so the Huber loss sees td = y."""
    n_states = 5
    target = jnp.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [-2.0, 5.0], [4.0, 4.5]])
    online = jnp.zeros((n_states, 2))
    s = [[0, 1, 2], [0, 1, 4], [0, 1, 2], [0, 1, 2]]
    s2 = [[1, 2, 3], [1, 2, 3], [1, 4, 3], [1, 2, 3]]
    r = [[1.0, 2.0, 3.0], [1.0, 2.0, 100.0], [1.0, 2.0, 100.0], [1.0, 2.0, 3.0]]
    term = [[0, 0, 0], [0, 1, 0], [0, 0, 0], [1, 0, 0]]
    trunc = [[0, 0, 0], [0, 0, 0], [0, 1, 0], [0, 0, 0]]
    batch = transitions(s, [[0, 1, 0]] * 4, r, s2, term, trunc, n_states)
    config = dqn.Config(discount=0.9, n_step=3, double=False)
    loss, metrics = dqn.q_loss(online, target, batch, TABLE, config)
    # A: no end:        1 + 0.9 * 2 + 0.81 * 3 = 5.23, + 0.729 * max Q'(s3) = 0.729 * 5 -> 8.875
    # B: terminated at step 1: 1 + 1.8 = 2.8, no bootstrap (the 100 of the next episode is ignored)
    # C: truncated at step 1: 2.8 + 0.81 * max Q'(next_obs_1 = s4) = 2.8 + 0.81 * 4.5 = 6.445
    #    (the window's last next_obs s3 would give 6.85; the reset obs s2 would give 5.23)
    # D: terminated at step 0: 1
    y = np.array([8.875, 2.8, 6.445, 1.0])
    np.testing.assert_allclose(metrics["q/target"], y.mean(), rtol=1e-6)
    np.testing.assert_allclose(loss, np.mean(y - 0.5), rtol=1e-6)  # |td| > 1: huber = |td| - 0.5
    obs, action, g, weight, next_obs = dqn.bootstrap(batch, 0.9, 3)
    np.testing.assert_allclose(g, [5.23, 2.8, 2.8, 1.0], rtol=1e-6)
    np.testing.assert_allclose(weight, [0.729, 0.0, 0.81, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(jnp.argmax(next_obs, -1), [3, 2, 4, 1])
    np.testing.assert_array_equal(action, [0, 0, 0, 0])
    np.testing.assert_array_equal(jnp.argmax(obs, -1), [0, 0, 0, 0])


def test_n_step_munchausen_bonus_is_first_step_only():
    n_states = 5
    target = jnp.array([[0.0, 0.0], [1.0, 2.0], [3.0, 1.0], [-2.0, 5.0], [4.0, 4.5]])
    batch = transitions(
        [[0, 1, 2]], [[0, 1, 0]], [[1.0, 2.0, 3.0]], [[1, 2, 3]], [[0, 0, 0]], [[0, 0, 0]], 5
    )
    config = dqn.Config(discount=0.9, n_step=3, munchausen=True, entropy_tau=1.0)
    _, metrics = dqn.q_loss(jnp.zeros((n_states, 2)), target, batch, TABLE, config)
    # bonus: ln pi'(0|s0) = ln 0.5 = -0.6931 -> 0.9 * -0.6931;  soft V'(s3) = 5 + ln(1 + e^-7)
    bonus = 0.9 * math.log(0.5)
    y = 5.23 + bonus + 0.729 * (5 + math.log1p(math.exp(-7)))
    np.testing.assert_allclose(metrics["munchausen/bonus"], bonus, rtol=1e-6)
    np.testing.assert_allclose(metrics["q/target"], y, rtol=1e-6)


# ----------------------------------------------------------------------------------------------
# Against rlax


def _random_q(key, b=64, a=4):
    k = jax.random.split(key, 5)
    return (
        jax.random.normal(k[0], (b, a)),
        jax.random.randint(k[1], (b,), 0, a),
        jax.random.normal(k[2], (b,)),
        jax.random.bernoulli(k[3], 0.3, (b,)).astype(jnp.float32),
        jax.random.normal(k[4], (b, a)),
        jax.random.normal(jax.random.fold_in(key, 9), (b, a)),
    )


def test_q_learning_matches_rlax():
    q_tm1, a, r, term, q_t, _ = _random_q(jax.random.key(1))
    config = dqn.Config(discount=0.97)
    weight = config.discount * (1.0 - term)
    y, _ = dqn.q_target(r, weight, q_t, None, None, a, config)
    td = y - jnp.take_along_axis(q_tm1, a[:, None], -1)[:, 0]
    expected = jax.vmap(rlax.q_learning)(q_tm1, a, r, weight, q_t)
    np.testing.assert_allclose(td, expected, rtol=1e-6, atol=1e-6)


def test_double_q_learning_matches_rlax():
    q_tm1, a, r, term, q_t_target, q_t_online = _random_q(jax.random.key(2))
    config = dqn.Config(discount=0.97, double=True)
    weight = config.discount * (1.0 - term)
    y, _ = dqn.q_target(r, weight, q_t_target, q_t_online, None, a, config)
    td = y - jnp.take_along_axis(q_tm1, a[:, None], -1)[:, 0]
    expected = jax.vmap(rlax.double_q_learning)(q_tm1, a, r, weight, q_t_target, q_t_online)
    np.testing.assert_allclose(td, expected, rtol=1e-6, atol=1e-6)


def test_n_step_with_terminations_matches_rlax():
    n, b, s = 4, 32, 6
    keys = jax.random.split(jax.random.key(3), 5)
    target = jax.random.normal(keys[0], (s, 3))
    batch = Transition(
        obs=one_hot(jax.random.randint(keys[1], (b, n), 0, s), s),
        action=jax.random.randint(keys[2], (b, n), 0, 3),
        reward=jax.random.normal(keys[3], (b, n)),
        next_obs=one_hot(jax.random.randint(keys[4], (b, n), 0, s), s),
        terminated=jax.random.bernoulli(jax.random.key(4), 0.25, (b, n)).astype(jnp.float32),
        truncated=jnp.zeros((b, n)),
    )
    config = dqn.Config(discount=0.95, n_step=n)
    _, _, g, weight, next_obs = dqn.bootstrap(batch, config.discount, n)
    y, _ = dqn.q_target(g, weight, next_obs @ target, None, None, batch.action[:, 0], config)
    v = jnp.max(batch.next_obs @ target, axis=-1)  # [B, n]: max_a Q'(next_obs_k, a)
    discount = config.discount * (1.0 - batch.terminated)
    expected = jax.vmap(lambda r, d, v: rlax.n_step_bootstrapped_returns(r, d, v, n)[0])(
        batch.reward, discount, v
    )
    assert float(jnp.sum(batch.terminated)) > 0
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def reference_td_loss(td, kind, delta):
    """The hand-written loss ``td_loss`` had before it called rlax (kept as the reference)."""
    if kind == "l2":
        return 0.5 * td**2
    abs_td = jnp.abs(td)
    quadratic = jnp.minimum(abs_td, delta)
    return 0.5 * quadratic**2 + delta * (abs_td - quadratic)


@pytest.mark.parametrize("kind, delta", [("huber", 1.0), ("huber", 2.5), ("l2", 1.0)])
def test_td_loss_is_bit_identical_to_the_hand_written_formula(kind, delta):
    # td_loss is rlax.huber_loss / rlax.l2_loss now; values and gradients must not move at all.
    td = jnp.concatenate(
        [3.0 * jax.random.normal(jax.random.key(7), (256,)), jnp.array([0.0, delta, -delta])]
    )

    def new(x):
        return dqn.td_loss(x, kind, delta)

    def ref(x):
        return reference_td_loss(x, kind, delta)

    np.testing.assert_array_equal(jax.jit(new)(td), jax.jit(ref)(td))
    grad = jax.jit(jax.grad(lambda x: jnp.sum(new(x))))(td)
    np.testing.assert_array_equal(grad, jax.jit(jax.grad(lambda x: jnp.sum(ref(x))))(td))
    if kind == "huber":  # the gradient is Mnih 2015's clipped error
        np.testing.assert_allclose(grad, jnp.clip(td, -delta, delta), atol=1e-6)


# ----------------------------------------------------------------------------------------------
# Epsilon schedule, act, update mechanics


def test_epsilon_schedule_values():
    steps = jnp.array([0, 25, 50, 100, 1000])
    eps = dqn.epsilon_schedule(steps, start=1.0, end=0.1, decay_updates=100)
    # 1 - 0.9 * k / 100 until k = 100, then 0.1
    np.testing.assert_allclose(eps, [1.0, 0.775, 0.55, 0.1, 0.1], rtol=1e-6)


def test_act_epsilon_greedy_uses_update_counter():
    config = dqn.Config(hidden=(8,), epsilon_start=1.0, epsilon_end=0.0, epsilon_decay_updates=100)
    algo = dqn.make(config, SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    obs = jax.random.normal(jax.random.key(1), (4000, 3))
    greedy, _ = algo.act(state, obs, jax.random.key(2), deterministic=True)
    assert greedy.dtype == jnp.int32 and greedy.shape == (4000,)
    # step 50 -> epsilon 0.5 -> a random action differs from the greedy one half the time: 25%
    half = state._replace(step=jnp.asarray(50, jnp.int32))
    a, _ = algo.act(half, obs, jax.random.key(3))
    assert a.dtype == jnp.int32
    np.testing.assert_allclose(jnp.mean(a != greedy), 0.25, atol=0.03)
    # step 0 -> epsilon 1 -> uniform: 50% disagreement; step >= 100 -> epsilon 0 -> greedy
    a, _ = algo.act(state, obs, jax.random.key(4))
    np.testing.assert_allclose(jnp.mean(a != greedy), 0.5, atol=0.03)
    done = state._replace(step=jnp.asarray(100, jnp.int32))
    a, _ = algo.act(done, obs, jax.random.key(5))
    np.testing.assert_array_equal(a, greedy)
    # one unbatched observation -> a scalar action
    a, _ = algo.act(state, obs[0], jax.random.key(6), deterministic=True)
    assert a.shape == () and a == greedy[0]


def _random_batch(key, spec, b=16, window=None):
    lead = (b,) if window is None else (b, window)
    k = jax.random.split(key, 4)
    return Transition(
        obs=jax.random.normal(k[0], (*lead, *spec.obs_shape)),
        action=jax.random.randint(k[1], lead, 0, spec.num_actions),
        reward=jax.random.normal(k[2], lead),
        next_obs=jax.random.normal(k[3], (*lead, *spec.obs_shape)),
        terminated=jnp.zeros(lead),
        truncated=jnp.zeros(lead),
    )


@pytest.mark.parametrize(
    "options",
    [{}, {"double": True}, {"munchausen": True}, {"n_step": 3}, {"n_step": 2, "munchausen": True}],
)
def test_update_scan_target_period_and_metrics(options):
    config = dqn.Config(hidden=(8,), target_update_period=3, **options)
    algo = dqn.make(config, SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    window = None if config.n_step == 1 else config.n_step
    batches = jax.vmap(lambda k: _random_batch(k, SPEC, window=window))(
        jax.random.split(jax.random.key(1), 4)
    )
    loss, loss_metrics = algo.loss(
        state.params, state, jax.tree.map(lambda x: x[0], batches), jax.random.key(2)
    )

    def body(s, batch):
        s, metrics = algo.update(s, batch)
        return s, (s, metrics)

    final, (states, metrics) = jax.jit(lambda s, b: jax.lax.scan(body, s, b))(state, batches)
    expected_keys = {"loss/q", "q/mean", "q/target", "explore/epsilon"}
    if config.munchausen:
        expected_keys.add("munchausen/bonus")
    assert set(metrics) == expected_keys == set(loss_metrics)
    assert all(bool(jnp.all(jnp.isfinite(v))) for v in metrics.values())
    # loss() is what update() differentiates, evaluated before the first step
    np.testing.assert_allclose(metrics["loss/q"][0], loss, rtol=1e-5)
    np.testing.assert_array_equal(states.step, [1, 2, 3, 4])
    # epsilon after k updates: 1 - (1 - 0.01) * k / 10_000
    np.testing.assert_allclose(metrics["explore/epsilon"], 1 - 0.99 * np.arange(1, 5) / 1e4)
    # state structure, shapes and dtypes unchanged by update
    assert jax.tree.structure(final) == jax.tree.structure(state)
    for a, b in zip(jax.tree.leaves(final), jax.tree.leaves(state), strict=True):
        assert a.shape == b.shape and a.dtype == b.dtype
    # hard target copy every 3 updates: init params after updates 1-2, params of update 3 after 3-4
    leaf = lambda tree, k: jax.tree.leaves(tree)[0][k]
    init = jax.tree.leaves(state.params)[0]
    for k in range(4):
        assert not np.allclose(leaf(states.params, k), init)  # params move every update
    np.testing.assert_array_equal(leaf(states.target, 0), init)
    np.testing.assert_array_equal(leaf(states.target, 1), init)
    np.testing.assert_array_equal(leaf(states.target, 2), leaf(states.params, 2))
    np.testing.assert_array_equal(leaf(states.target, 3), leaf(states.params, 2))


# ----------------------------------------------------------------------------------------------
# Bad input


def test_continuous_spec_rejected():
    spec = EnvSpec(obs_shape=(3,), action_shape=(1,), name="cont")
    with pytest.raises(ValueError, match="discrete"):
        dqn.make(dqn.Config(), spec)


@pytest.mark.parametrize(
    "field, value",
    [
        ("lr", 0.0),
        ("lr", -1e-3),
        ("discount", 1.5),
        ("hidden", (0, 4)),
        ("target_update_period", 0),
        ("epsilon_start", 1.2),
        ("epsilon_end", -0.1),
        ("epsilon_decay_updates", 0),
        ("td_loss", "mse"),
        ("huber_delta", 0.0),
        ("n_step", 0),
        ("n_step", 2.0),
        ("entropy_tau", 0.0),
        ("munchausen_alpha", 1.5),
        ("log_policy_clip", 0.0),
        ("log_policy_clip", float("-inf")),
    ],
)
def test_bad_config_names_field(field, value):
    with pytest.raises(ValueError, match=field):
        dqn.Config(**{field: value})


def test_double_with_munchausen_rejected():
    with pytest.raises(ValueError, match="double.*munchausen"):
        dqn.Config(double=True, munchausen=True)


def test_double_default_follows_the_target():
    """``double=None`` (the default): double Q for the max target, off for Munchausen's soft one."""
    assert dqn.Config().double_q and dqn.Config().n_step == 3
    assert not dqn.Config(munchausen=True).double_q
    assert not dqn.Config(double=False).double_q
    with pytest.raises(ValueError, match="double"):
        dqn.Config(double="yes")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        dqn.Config().lr = 1.0  # type: ignore[misc]


def test_wrong_obs_shape_rejected():
    algo = dqn.make(dqn.Config(hidden=(8,), n_step=1), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    with pytest.raises(ValueError, match="obs_shape"):
        algo.act(state, jnp.zeros((5, 4)), jax.random.key(1))
    bad = _random_batch(jax.random.key(2), SPEC)._replace(obs=jnp.zeros((16, 4)))
    with pytest.raises(ValueError, match="batch.obs"):
        algo.update(state, bad)


@pytest.mark.parametrize("agent_n, batch_window", [(3, None), (1, 3), (3, 2)])
def test_window_mismatch_rejected(agent_n, batch_window):
    algo = dqn.make(dqn.Config(hidden=(8,), n_step=agent_n), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    batch = _random_batch(jax.random.key(1), SPEC, window=batch_window)
    with pytest.raises(ValueError, match="n_step"):
        algo.update(state, batch)
    with pytest.raises(ValueError, match="n_step"):
        algo.loss(state.params, state, batch, jax.random.key(2))


def test_float_actions_rejected():
    algo = dqn.make(dqn.Config(hidden=(8,), n_step=1), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    batch = _random_batch(jax.random.key(1), SPEC)
    batch = batch._replace(action=batch.action.astype(jnp.float32))
    with pytest.raises(ValueError, match="integer"):
        algo.update(state, batch)


# ----------------------------------------------------------------------------------------------
# Learning smoke tests


def _train_probe(name, config, total_steps=1500):
    """Train on a probe env; return the agent state, the loop metrics and ``q(obs_values)``."""
    env = envs.make(name)
    algo = dqn.make(config, env.spec)
    loop = online.Config(
        total_steps=total_steps,
        warmup_steps=200,
        batch_size=32,
        buffer_size=2000,
        eval_every=total_steps,
        eval_episodes=4,
        n_step=config.n_step,
    )
    carry, metrics = jax.jit(online.make_train(algo, env, loop))(jax.random.key(0))

    def q(obs_values):
        obs = jnp.asarray(obs_values, jnp.float32)[:, None]
        return algo.act(carry.agent, obs, jax.random.key(0), deterministic=True)[1]["q"]

    return carry.agent, metrics, q


PROBE_CONFIG = dict(
    hidden=(32,), lr=3e-3, target_update_period=50, epsilon_decay_updates=500, epsilon_end=0.1
)


def test_learns_probe2_values():
    config = dqn.Config(**PROBE_CONFIG)
    _, _, q = _train_probe("probe2", config)
    q = q([-1.0, 1.0])
    # one step, reward = obs, terminated: Q(s, a) = s for both actions
    np.testing.assert_allclose(q, [[-1.0, -1.0], [1.0, 1.0]], atol=0.05)


@pytest.mark.parametrize("options", [{}, {"double": True}])
def test_learns_probe5_policy(options):
    config = dqn.Config(**PROBE_CONFIG, **options)
    _, metrics, q = _train_probe("probe5", config)
    q = q([-1.0, 1.0])
    # reward +1 iff the action matches the obs (obs +1 -> action 0, obs -1 -> action 1), else -1
    np.testing.assert_allclose(q, [[-1.0, 1.0], [1.0, -1.0]], atol=0.05)
    np.testing.assert_allclose(metrics["eval/return"][-1], 1.0)


def test_munchausen_learns_probe5_with_action_gap():
    config = dqn.Config(**PROBE_CONFIG, munchausen=True)
    _, metrics, q = _train_probe("probe5", config)
    q = q([-1.0, 1.0])
    # Fixed point: Q(s, right) = 1 + 0.9 * clip(0.03 ln pi(right)) ~ 1 (pi(right) ~ 1), and
    # Q(s, wrong) = -1 + 0.9 * clip(0.03 ln pi(wrong), -1, 0) = -1 - 0.9 (ln pi(wrong) ~ -2.9 / 0.03
    # is far below the clip): the Munchausen term widens the action gap from 2 to 2.9.
    np.testing.assert_allclose(q, [[-1.9, 1.0], [1.0, -1.9]], atol=0.05)
    np.testing.assert_allclose(metrics["eval/return"][-1], 1.0)


def test_n_step_double_learns_probe3_discounting():
    config = dqn.Config(**PROBE_CONFIG, n_step=2, double=True)
    _, _, q = _train_probe("probe3", config)
    q = q([0.0, 1.0])
    # obs 0 -> reward 0, then obs 1 -> reward 1 and terminate: Q(0, .) = gamma, Q(1, .) = 1
    np.testing.assert_allclose(q, [[0.99, 0.99], [1.0, 1.0]], atol=0.05)


def test_cartpole_improves_over_random():
    env = envs.make("cartpole")
    config = dqn.Config(
        hidden=(64, 64), lr=5e-4, target_update_period=250, epsilon_decay_updates=2000, **NATURE
    )
    algo = dqn.make(config, env.spec)
    loop = online.Config(
        total_steps=10_000,
        warmup_steps=1000,
        batch_size=64,
        buffer_size=10_000,
        eval_every=2000,
        eval_episodes=10,
    )
    _, metrics = jax.jit(online.make_train(algo, env, loop))(jax.random.key(0))
    returns = np.asarray(metrics["eval/return"])
    # A uniformly random policy lasts ~20 steps (the first eval, after 1k updates, is still near
    # it); greedy DQN balances for well over 100 steps in every later evaluation (seed 0 measured:
    # [30, 165, 163, 180, 174]; 4 other seeds give 100-250 after the first period, one dip to 69).
    assert returns.max() > 150, returns
    assert np.mean(returns[1:]) > 100, returns
