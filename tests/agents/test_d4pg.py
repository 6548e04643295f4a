"""D4PG: categorical projection (by hand and against the pre-rlax formula), n-step targets, update, bad input,
learning on probe envs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl import envs
from purerl.agents import d4pg
from purerl.core import networks, replay
from purerl.core.types import EnvSpec, Network, Transition
from purerl.loops import online

SPEC = EnvSpec(obs_shape=(3,), action_shape=(2,), name="test")
# The by-hand tests check the paper's equations on raw observations; the default observation
# normalization has its own test (test_observation_normalization).
TINY = d4pg.Config(
    actor_hidden=(16,),
    critic_hidden=(16,),
    num_atoms=11,
    v_min=-5.0,
    v_max=5.0,
    n_step=3,
    normalize_observations=False,
)


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
        terminated=f32((rng.random(shape) < 0.2).astype(np.float32)),
        truncated=f32(np.zeros(shape)),
    )


# --- categorical projection ----------------------------------------------------------------------


def test_projection_three_atoms_by_hand():
    # Support {-1, 0, 1}; target r + z with r = 0.5: atoms at {-0.5, 0.5, 1.5}, probs {.2, .3, .5}.
    # -0.5 splits 0.1 / 0.1 onto {-1, 0}; 0.5 splits 0.15 / 0.15 onto {0, 1}; 1.5 clips onto 1.
    # -> [0.1, 0.1 + 0.15, 0.15 + 0.5] = [0.1, 0.25, 0.65].
    atoms = jnp.array([-1.0, 0.0, 1.0])
    out = d4pg.categorical_projection(atoms + 0.5, jnp.array([0.2, 0.3, 0.5]), atoms)
    np.testing.assert_allclose(out, [0.1, 0.25, 0.65], atol=1e-6)
    # A point mass exactly on an atom stays there; one at 0.25 splits 3:1 between 0 and 1.
    np.testing.assert_allclose(
        d4pg.categorical_projection(jnp.array([0.25]), jnp.array([1.0]), atoms),
        [0.0, 0.75, 0.25],
        atol=1e-6,
    )


def reference_projection(values, probs, atoms):
    """The hand-written projection ``categorical_projection`` had before it called rlax:
    ``(Phi p)_k = sum_j clip(1 - |clip(v_j, z_1, z_K) - z_k| / dz, 0, 1) p_j`` (even support)."""
    delta = atoms[1] - atoms[0]
    v = jnp.clip(values, atoms[0], atoms[-1])
    weight = jnp.clip(1.0 - jnp.abs(v[..., None, :] - atoms[:, None]) / delta, 0.0, 1.0)
    return jnp.sum(weight * probs[..., None, :], axis=-1)


@pytest.mark.parametrize("num_atoms, v_max", [(13, 3.0), (51, 150.0)])
def test_projection_matches_the_hand_written_formula_with_episode_ends(num_atoms, v_max):
    # categorical_projection is rlax.categorical_l2_project now. Targets G + w z from n-step
    # windows with terminations (w = 0: a point mass at G) and truncations, some past both ends.
    atoms = jnp.linspace(-v_max, v_max, num_atoms)
    rng = np.random.default_rng(num_atoms)
    b, n = 64, 3
    reward = jnp.asarray(rng.normal(scale=v_max / 3, size=(b, n)), jnp.float32)
    term = jnp.asarray(rng.random((b, n)) < 0.2, jnp.float32)
    trunc = jnp.asarray(rng.random((b, n)) < 0.2, jnp.float32)
    g, weight, _ = replay.n_step_target(reward, term, trunc, 0.9)
    assert float(jnp.sum(weight == 0.0)) > 0 and float(jnp.sum(trunc)) > 0
    values = g[:, None] + weight[:, None] * atoms[None, :]
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(b, num_atoms)), jnp.float32), axis=-1)
    ours = jax.jit(d4pg.categorical_projection)(values, probs, atoms)
    ref = jax.jit(reference_projection)(values, probs, atoms)
    # rlax multiplies by 1 / dz where the formula divides: float rounding only.
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    np.testing.assert_allclose(jnp.sum(ours, -1), 1.0, atol=1e-5)
    # Leading axes are kept: [2, B/2, N] in, [2, B/2, K] out, the same numbers.
    folded = d4pg.categorical_projection(
        values.reshape(2, b // 2, -1), probs.reshape(2, b // 2, -1), atoms
    )
    np.testing.assert_allclose(folded.reshape(b, -1), ours, atol=1e-7)


# --- n-step target distribution ------------------------------------------------------------------

ATOMS5 = d4pg.Config(  # dz = 1
    num_atoms=5, v_min=-2.0, v_max=2.0, discount=0.5, n_step=3, normalize_observations=False
)
# Target actor outputs 0; target critic puts (almost) all mass on the atom nearest obs[0].
HAND_ACTOR = Network(init=None, apply=lambda p, obs: jnp.zeros((obs.shape[0], 1)))
HAND_CRITIC = Network(
    init=None,
    apply=lambda p, obs, a: (-50.0 * (jnp.linspace(-2.0, 2.0, 5)[None] - obs[:, :1]) ** 2)[None],
)


def test_n_step_target_distribution_by_hand():
    # Row 0 terminates at step 0: G = 0.25, weight 0 -> projection of delta(0.25) = 0.75 | 0.25 on
    #   atoms 0 and 1, whatever comes after.
    # Row 1 is truncated at step 1 (bootstraps from next_obs[1] = 2, where Z' = delta(2)):
    #   G = 0.5 + 0.5 * 0.5 = 0.75, weight gamma^2 = 0.25 -> 0.75 + 0.25 * 2 = 1.25
    #   -> 0.75 on atom 1, 0.25 on atom 2. (Bootstrapping from next_obs[2] = -2 would give 0.25.)
    batch = Transition(
        obs=jnp.zeros((2, 3, 1)),
        action=jnp.zeros((2, 3, 1)),
        reward=jnp.array([[0.25, 9.0, 9.0], [0.5, 0.5, 7.0]]),
        next_obs=jnp.array([[[2.0], [2.0], [2.0]], [[-2.0], [2.0], [-2.0]]]),
        terminated=jnp.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]),
        truncated=jnp.array([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]]),
    )
    target = d4pg.Params(actor={}, critic={})
    y, y_mean = d4pg.target_distribution(target, batch, HAND_ACTOR, HAND_CRITIC, ATOMS5)
    np.testing.assert_allclose(y[0], [0, 0, 0.75, 0.25, 0], atol=1e-6)
    np.testing.assert_allclose(y[1], [0, 0, 0, 0.75, 0.25], atol=1e-6)
    np.testing.assert_allclose(y_mean, [0.25, 1.25], atol=1e-6)
    # Without any episode end the window runs to its last step: G = 0.5 + 0.25 + 0.25 * 7 = 2.5,
    # weight 0.125, Z' = delta(-2) -> 2.5 - 0.25 = 2.25, clipped onto the top atom 2.
    open_batch = batch._replace(truncated=jnp.zeros((2, 3)))
    y, _ = d4pg.target_distribution(target, open_batch, HAND_ACTOR, HAND_CRITIC, ATOMS5)
    np.testing.assert_allclose(y[1], [0, 0, 0, 0, 1.0], atol=1e-6)


def test_one_step_batches_and_critic_loss():
    # n_step = 1 takes plain [B] batches. With every transition terminated the target is the
    # projected reward, independent of the networks: r = 0.25 -> [0, 0, .75, .25, 0] on {-2..2}.
    config = dataclasses.replace(ATOMS5, n_step=1, actor_hidden=(8,), critic_hidden=(8,))
    spec = EnvSpec(obs_shape=(1,), action_shape=(1,))
    algo = d4pg.make(config, spec)
    state = jax.jit(algo.init)(jax.random.key(0))
    batch = random_batch(1, 4, spec)._replace(reward=jnp.full((4,), 0.25), terminated=jnp.ones(4))
    total, metrics = jax.jit(algo.loss)(state.params, state, batch, jax.random.key(0))
    critic = networks.q_network(config.critic_hidden, out=5, num_critics=1)
    log_p = jax.nn.log_softmax(critic.apply(state.params.critic, batch.obs, batch.action)[0])
    expected = -np.mean(np.sum(np.array([0, 0, 0.75, 0.25, 0]) * np.asarray(log_p), -1))
    assert float(metrics["loss/critic"]) == pytest.approx(expected, rel=1e-5)
    assert float(metrics["q/target"]) == pytest.approx(0.25, abs=1e-6)
    assert float(total) == pytest.approx(
        float(metrics["loss/critic"] + metrics["loss/actor"]), rel=1e-6
    )


def test_actor_loss_is_minus_expected_q():
    config = dataclasses.replace(ATOMS5, n_step=1)
    # Constant categorical p = [.1, .2, .3, .2, .2] on {-2..2}: E Z = -.2 - .2 + 0 + .2 + .4 = 0.2.
    const = Network(
        init=None,
        apply=lambda p, obs, a: jnp.broadcast_to(
            jnp.log(jnp.array([0.1, 0.2, 0.3, 0.2, 0.2])), (1, obs.shape[0], 5)
        ),
    )
    actor = Network(init=None, apply=lambda p, obs: jnp.tanh(p["b"]) * jnp.ones((obs.shape[0], 1)))
    obs = jnp.zeros((4, 1))
    loss, metrics = d4pg.actor_loss({"b": jnp.array(0.3)}, {}, obs, actor, const, config)
    assert float(loss) == pytest.approx(-0.2, abs=1e-6)
    assert float(metrics["loss/actor"]) == pytest.approx(-0.2, abs=1e-6)
    # Logits a * z_k make E Z increase with a: descending the loss pushes the action up.
    tilt = Network(init=None, apply=lambda p, obs, a: (a * jnp.linspace(-2.0, 2.0, 5))[None])
    grad = jax.grad(lambda p: d4pg.actor_loss(p, {}, obs, actor, tilt, config)[0])({"b": 0.3})
    assert float(grad["b"]) < 0.0


# --- update --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def updates():
    """Three jitted n-step updates (N = 3) of a tiny D4PG with target_update_period 3."""
    config = dataclasses.replace(TINY, target_update_period=3)
    algo = d4pg.make(config, SPEC)
    state = jax.jit(algo.init)(jax.random.key(0))
    batches = random_batch(1, 4 * 3, lead=(3,))
    batches = jax.tree.map(lambda x: x.reshape(3, 4, *x.shape[1:]), batches)
    update = jax.jit(algo.update)
    states, metrics = [state], []
    for i in range(3):
        new, m = update(states[-1], jax.tree.map(lambda x, i=i: x[i], batches))
        states.append(new)
        metrics.append(m)
    return config, algo, states, metrics, batches


def test_update_simultaneous_and_hard_target_copy(updates):
    config, _, states, metrics, batches = updates
    assert set(metrics[0]) == {"loss/critic", "loss/actor", "q/mean", "q/target"}
    assert all(np.isfinite(float(v)) for m in metrics for v in m.values())
    # Both losses are taken at the parameters before the update (paper, Algorithm 1).
    actor = networks.deterministic_policy(config.actor_hidden, 2)
    critic = networks.q_network(config.critic_hidden, out=config.num_atoms, num_critics=1)
    s0, b0 = states[0], jax.tree.map(lambda x: x[0], batches)

    @jax.jit
    def reference(s0, b0):
        c_loss, _ = d4pg.critic_loss(s0.params.critic, s0.target, b0, actor, critic, config)
        a_loss, _ = d4pg.actor_loss(
            s0.params.actor, s0.params.critic, b0.obs[:, 0], actor, critic, config
        )
        return c_loss, a_loss

    c_loss, a_loss = reference(s0, b0)
    assert float(metrics[0]["loss/critic"]) == pytest.approx(float(c_loss), rel=1e-5)
    assert float(metrics[0]["loss/actor"]) == pytest.approx(float(a_loss), rel=1e-5)
    # Targets stay at the initial parameters for two updates, then are copied at update 3.
    same = lambda a, b: all(  # noqa: E731
        np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )
    assert same(states[1].target, states[0].params) and same(states[2].target, states[0].params)
    assert not same(states[2].params, states[0].params)
    assert same(states[3].target, states[3].params)
    assert int(states[3].step) == 3
    assert jax.tree.structure(states[3]) == jax.tree.structure(states[0])


def test_act(updates):
    config, algo, states, _, _ = updates
    act = jax.jit(algo.act, static_argnames="deterministic")
    obs = jnp.asarray(np.random.default_rng(2).normal(size=(6, 3)), jnp.float32)
    greedy, _ = act(states[0], obs, jax.random.key(3), deterministic=True)
    pi = networks.deterministic_policy(config.actor_hidden, 2).apply(states[0].params.actor, obs)
    np.testing.assert_allclose(greedy, pi, rtol=1e-6)
    noisy, _ = act(states[0], obs, jax.random.key(3))
    assert noisy.shape == (6, 2) and np.all(np.abs(np.asarray(noisy)) <= 1.0)
    # Exploration noise N(0, 0.3^2) around pi(s) (before clipping at the bounds).
    inside = np.abs(np.asarray(noisy)) < 1.0
    assert 0.0 < np.std(np.asarray(noisy - greedy)[inside]) < 0.6


# --- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value",
    [
        ("actor_lr", 0.0),
        ("critic_lr", -1.0),
        ("discount", 1.5),
        ("sigma", -0.1),
        ("n_step", 0),
        ("num_atoms", 1),
        ("target_update_period", 0),
        ("v_min", float("nan")),
        ("v_min", 200.0),  # above v_max
        ("actor_hidden", (0,)),
        ("critic_hidden", "big"),
        ("normalize_observations", 1),
        ("obs_clip", 0.0),
    ],
)
def test_bad_config_names_the_field(field, value):
    with pytest.raises(ValueError, match=f"d4pg.Config.{field}"):
        d4pg.Config(**{field: value})


def test_observation_normalization():
    """With ``normalize_observations`` every window step's obs is merged into the running moments
    before the losses, the update equals plain D4PG's on the normalized windows, and ``act``
    normalizes with the state's moments. Off, the state carries no normalizer."""
    from purerl.core import normalization

    assert d4pg.make(TINY, SPEC).init(jax.random.key(0)).normalizer is None
    config = dataclasses.replace(TINY, normalize_observations=True, obs_clip=3.0)
    algo = d4pg.make(config, SPEC)
    state = jax.jit(algo.init)(jax.random.key(0))
    batch = random_batch(2, lead=(3,))
    batch = batch._replace(obs=batch.obs * 10.0 + 4.0, next_obs=batch.next_obs * 10.0 - 2.0)
    new, metrics = jax.jit(algo.update)(state, batch)
    moments = normalization.update(normalization.init((3,)), batch.obs)
    np.testing.assert_allclose(new.normalizer.mean, moments.mean, rtol=1e-6)
    np.testing.assert_allclose(new.normalizer.var, moments.var, rtol=1e-6)
    assert float(new.normalizer.count) == 24.0  # 8 windows x 3 steps
    plain = d4pg.make(TINY, SPEC)
    norm = lambda x: normalization.normalize(moments, x, clip=3.0)  # noqa: E731
    by_hand = batch._replace(obs=norm(batch.obs), next_obs=norm(batch.next_obs))
    ref, ref_metrics = jax.jit(plain.update)(state._replace(normalizer=None), by_hand)
    for k in ("loss/critic", "loss/actor"):
        assert float(metrics[k]) == pytest.approx(float(ref_metrics[k]), rel=1e-5)
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), new.params, ref.params
    )
    obs = batch.obs[:2, 0]
    a, _ = algo.act(new, obs, None, deterministic=True)
    b, _ = plain.act(new, norm(obs), None, deterministic=True)
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bad_input(updates):
    with pytest.raises(ValueError, match="continuous"):
        d4pg.make(TINY, envs.make("probe4").spec)
    _, algo, states, _, _ = updates
    state = states[0]
    with pytest.raises(ValueError, match="observation has shape"):
        algo.act(state, jnp.zeros((5, 2)), jax.random.key(1))
    # n_step = 3 expects [B, 3] windows: plain [B] batches and [B, 2] windows are errors.
    with pytest.raises(ValueError, match=r"\[B, 3\].*n_step"):
        algo.update(state, random_batch(1))
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        algo.update(state, random_batch(1, lead=(2,)))
    with pytest.raises(ValueError, match=r"\[B, 3\]"):
        algo.loss(state.params, state, random_batch(1), jax.random.key(0))
    bad = random_batch(1, lead=(3,))._replace(action=jnp.zeros((8, 3, 1)))
    with pytest.raises(ValueError, match="batch.action"):
        algo.update(state, bad)
    # ... and n_step = 1 refuses windows.
    one = d4pg.make(dataclasses.replace(TINY, n_step=1), SPEC)
    with pytest.raises(ValueError, match="batch.reward"):
        one.update(state, random_batch(1, lead=(3,)))


# --- learning on probe envs ----------------------------------------------------------------------

FAST = d4pg.Config(
    actor_hidden=(32, 32),
    critic_hidden=(32, 32),
    actor_lr=1e-3,
    critic_lr=1e-3,
    v_min=-2.0,
    v_max=2.0,
    target_update_period=20,
)


def train(env_name, n_step):
    env = envs.make(env_name)
    algo = d4pg.make(dataclasses.replace(FAST, n_step=n_step), env.spec)
    loop = online.Config(
        total_steps=2000,
        warmup_steps=256,
        batch_size=64,
        buffer_size=10_000,
        eval_every=1000,
        n_step=n_step,
    )
    state, metrics = jax.jit(online.make_train(algo, env, loop))(jax.random.key(0))
    return algo, state.agent, metrics


def expected_q(agent, obs, action):
    critic = networks.q_network(FAST.critic_hidden, out=FAST.num_atoms, num_critics=1)
    probs = jax.nn.softmax(critic.apply(agent.params.critic, obs, action)[0], axis=-1)
    return jnp.sum(probs * d4pg.support(FAST), axis=-1)


def test_learns_probe4_continuous_with_n_step_windows():
    # reward 1 - (a - 0.5)^2, one step; trained through the loop's [B, 3] windows.
    algo, agent, metrics = train("probe4_continuous", n_step=3)
    a, _ = algo.act(agent, jnp.zeros((1,)), jax.random.key(0), deterministic=True)
    assert abs(float(a[0]) - 0.5) < 0.15
    assert float(metrics["eval/return"][-1]) > 0.95
    q = expected_q(agent, jnp.zeros((1, 1)), a[None])
    assert float(q[0]) == pytest.approx(1.0, abs=0.1)


def test_learns_probe2_values():
    # reward = obs = +-1, one step: E Z(s, a) = s for every action.
    algo, agent, _ = train("probe2_continuous", n_step=1)
    obs = jnp.array([[1.0], [-1.0]])
    a, _ = algo.act(agent, obs, jax.random.key(0), deterministic=True)
    np.testing.assert_allclose(expected_q(agent, obs, a), [1.0, -1.0], atol=0.1)
