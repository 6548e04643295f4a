import math

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from purerl import datasets
from purerl.agents import td3, td3_cvae
from purerl.core import networks
from purerl.core.types import EnvSpec, Transition

SPEC = EnvSpec(obs_shape=(3,), action_shape=(2,), name="t")
TINY = dict(hidden=(16, 16), cvae_hidden=(16, 16), latent_size=2)
leaves = jax.tree.leaves


def make_batch(key, n=8):
    k = jax.random.split(key, 4)
    obs = jax.random.normal(k[0], (n, 3))
    return Transition(
        obs=obs,
        action=jax.random.uniform(k[1], (n, 2), minval=-1, maxval=1),
        reward=jax.random.normal(k[2], (n,)),
        next_obs=obs + 0.1,
        terminated=(jax.random.uniform(k[3], (n,)) < 0.3).astype(jnp.float32),
        truncated=jnp.zeros(n),
    )


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(leaves(a), leaves(b), strict=True))


def as_td3_state(s: td3_cvae.State, config: td3_cvae.Config) -> td3.State:
    """The td3.State that the TD3 phase of ``s`` corresponds to."""
    return td3.State(
        params=td3.Params(actor=s.params.actor, critic=s.params.critic),
        target=s.target,
        actor_opt=s.actor_opt,
        critic_opt=s.critic_opt,
        key=s.key,
        step=s.step - config.cvae_steps,
        actor_metrics={"loss/actor": s.actor_metrics["loss/actor"]},
    )


def test_alpha_zero_is_bit_identical_to_td3():
    cfg = td3_cvae.Config(**TINY, cvae_steps=3, alpha=0.0)
    algo, base = td3_cvae.make(cfg, SPEC), td3.make(cfg.td3_config, SPEC)
    update, td3_update = jax.jit(algo.update), jax.jit(base.update)
    s = algo.init(jax.random.key(0), SPEC)
    for i in range(3):  # CVAE phase
        s, _ = update(s, make_batch(jax.random.key(i)))
    t = as_td3_state(s, cfg)
    for i in range(3, 8):  # TD3 phase: steps with and without an actor update
        batch = make_batch(jax.random.key(i))
        s, m = update(s, batch)
        t, mt = td3_update(t, batch)
        assert same(as_td3_state(s, cfg)._replace(key=None), t._replace(key=None))
        np.testing.assert_array_equal(jax.random.key_data(s.key), jax.random.key_data(t.key))
        for k in mt:  # loss/critic, q/mean, q/target, loss/actor
            np.testing.assert_array_equal(m[k], mt[k], err_msg=k)


def stub_networks():
    actor = networks.Network(init=None, apply=lambda p, obs: jnp.full((obs.shape[0], 1), 0.9))
    # Q_1 = p[0], Q_2 = p[1] everywhere.
    critic = networks.Network(
        init=None,
        apply=lambda p, obs, act: jnp.stack(
            [jnp.full(obs.shape[0], p[0]), jnp.full(obs.shape[0], p[1])]
        ),
    )
    return actor, critic


def toy_batch():
    return Transition(
        obs=jnp.zeros((2, 2)),
        action=jnp.zeros((2, 1)),
        reward=jnp.array([1.0, 2.0]),
        next_obs=jnp.ones((2, 2)),
        terminated=jnp.array([0.0, 1.0]),
        truncated=jnp.array([1.0, 0.0]),
    )


def test_critic_target_with_stub_bonus_and_done_masking():
    actor, critic = stub_networks()
    cfg = td3_cvae.Config(
        discount=0.5, policy_noise=0.0, alpha=2.0, reward_scale=0.5, reward_offset=1.0
    )
    target = td3.Params(actor=None, critic=(1.0, 3.0))  # min_i Q'_i = 1
    bonus_fn = lambda obs, a: jnp.full(obs.shape[0], 0.25)
    key = jax.random.key(0)
    loss, m = td3_cvae.critic_loss(
        (0.0, 0.0), target, toy_batch(), key, actor, critic, bonus_fn, cfg
    )
    # y_0 = 0.5 (1 - 1) + 0.5 (1 - 0) (1 - 2 * 0.25) = 0.25  (truncated: still bootstraps)
    # y_1 = 0.5 (2 - 1) + 0.5 (1 - 1) (...)          = 0.5   (terminated: no bootstrap, no bonus)
    np.testing.assert_allclose(float(m["q/target"]), (0.25 + 0.5) / 2)
    np.testing.assert_allclose(float(m["bonus/target"]), 0.25)
    # two critics at 0, each mean((y - 0)^2) = (0.0625 + 0.25) / 2
    np.testing.assert_allclose(float(loss), 2 * 0.15625)


def test_bonus_sees_the_smoothed_clipped_target_action():
    actor, critic = stub_networks()
    cfg = td3_cvae.Config(policy_noise=10.0, noise_clip=0.5)
    seen = []
    batch = toy_batch()._replace(next_obs=jnp.ones((4000, 2)), obs=jnp.zeros((4000, 2)))
    batch = batch._replace(
        action=jnp.zeros((4000, 1)),
        reward=jnp.zeros(4000),
        terminated=jnp.zeros(4000),
        truncated=jnp.zeros(4000),
    )
    target = td3.Params(actor=None, critic=(0.0, 0.0))

    def bonus_fn(obs, a):
        seen.append(a)
        return jnp.zeros(obs.shape[0])

    td3_cvae.critic_loss((0.0, 0.0), target, batch, jax.random.key(0), actor, critic, bonus_fn, cfg)
    # pi'(s') = 0.9, noise clipped to [-0.5, 0.5], action to [-1, 1]
    a = seen[0]
    assert float(a.min()) == pytest.approx(0.4) and float(a.max()) == pytest.approx(1.0)


def test_actor_gradient_includes_minus_alpha_grad_bonus():
    obs = jnp.array([[1.0, -0.5, 0.2], [0.3, 0.8, -1.0], [-0.4, 0.1, 0.6], [0.0, 1.0, 1.0]])
    batch = Transition(obs, jnp.zeros((4, 2)), jnp.zeros(4), obs, jnp.zeros(4), jnp.zeros(4))
    actor = networks.Network(init=None, apply=lambda w, s: s @ w)  # linear policy a = s W
    c = jnp.array([0.7, -0.3])
    critic = networks.Network(
        init=None, apply=lambda p, s, a: jnp.stack([a @ c, a @ c])
    )  # Q_1 = c . a
    m = jnp.array([0.2, -0.1])
    bonus_fn = lambda s, a: jnp.sum((a - m) ** 2, axis=-1)  # quadratic bonus
    w = jax.random.normal(jax.random.key(0), (3, 2)) * 0.5

    def loss(w, alpha):
        cfg = td3_cvae.Config(alpha=alpha)
        return td3_cvae.actor_loss(w, None, batch, actor, critic, bonus_fn, cfg)[0]

    alpha = 1.5
    g = jax.grad(loss)(w, alpha)
    # L = -mean_b [c . a_b - alpha |a_b - m|^2], a_b = s_b W:
    # dL/dW = -mean_b s_b (c - 2 alpha (a_b - m))^T
    a = obs @ w
    expected = -jnp.mean(obs[:, :, None] * (c - 2 * alpha * (a - m))[:, None, :], axis=0)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)
    # the bonus part alone is -alpha grad_W mean(-b) = +alpha * 2 mean s (a - m)^T
    bonus_part = g - jax.grad(loss)(w, 0.0)
    np.testing.assert_allclose(
        bonus_part, 2 * alpha * jnp.mean(obs[:, :, None] * (a - m)[:, None, :], axis=0), atol=1e-6
    )
    # central finite differences (exact for a quadratic up to float32 rounding)
    eps = 1e-2
    fd = np.zeros((3, 2))
    for i in range(3):
        for j in range(2):
            d = jnp.zeros((3, 2)).at[i, j].set(eps)
            fd[i, j] = (loss(w + d, alpha) - loss(w - d, alpha)) / (2 * eps)
    np.testing.assert_allclose(g, fd, rtol=1e-3, atol=1e-4)


def stub_cvae(a_hat, k):
    """Decoder output ``a_hat + k * sum(noise)``; mu = log_var = 0."""

    def apply(params, obs, action, noise):
        out = jnp.broadcast_to(a_hat, action.shape) + k * jnp.sum(noise, -1, keepdims=True)
        zeros = jnp.zeros_like(noise)
        return out, zeros, zeros

    return networks.Network(init=None, apply=apply)


def test_bonus_formula_use_log_and_latent_choice():
    obs = jnp.zeros((4, 3))
    action = jnp.tile(jnp.array([0.0, 0.5]), (4, 1))
    key = jax.random.key(0)
    fixed = stub_cvae(jnp.array([0.5, -0.5]), 0.0)
    cfg = td3_cvae.Config(latent_size=2)
    b = td3_cvae.bonus(None, obs, action, key, fixed, cfg)
    # squared errors (0.5^2, 1.0^2) = (0.25, 1.0); mean 0.625; divided by |A| = 2 -> 0.3125
    assert b.shape == (4,)
    np.testing.assert_allclose(b, 0.3125)
    b_log = td3_cvae.bonus(
        None, obs, action, key, fixed, td3_cvae.Config(latent_size=2, use_log=True)
    )
    np.testing.assert_allclose(b_log, math.exp(0.3125), rtol=1e-6)
    # one unbatched pair works too
    np.testing.assert_allclose(td3_cvae.bonus(None, obs[0], action[0], key, fixed, cfg), 0.3125)
    # "mean" decodes z = mu (zero noise); "sample" draws z ~ q(z|s, a)
    noisy = stub_cvae(jnp.array([0.5, -0.5]), 1.0)
    cfg_mean = td3_cvae.Config(latent_size=2, bonus_latent="mean")
    np.testing.assert_allclose(td3_cvae.bonus(None, obs, action, key, noisy, cfg_mean), 0.3125)
    sampled = td3_cvae.bonus(None, obs, action, key, noisy, cfg)
    assert not np.allclose(sampled, 0.3125)
    # the real network with bonus_latent="mean" is the formula on Dec(s, mu)
    spec = EnvSpec(obs_shape=(3,), action_shape=(2,))
    cvae = td3_cvae.cvae_network(td3_cvae.Config(**TINY), spec)
    params = cvae.init(key, obs, action, jnp.zeros((4, 2)))
    a_hat, _, _ = cvae.apply(params, obs, action, jnp.zeros((4, 2)))
    cfg_tiny = td3_cvae.Config(**TINY, bonus_latent="mean")
    np.testing.assert_allclose(
        td3_cvae.bonus(params, obs, action, key, cvae, cfg_tiny),
        jnp.mean((a_hat - action) ** 2, -1) / 2,
        rtol=1e-6,
    )


def test_kl_closed_form_and_std_conventions():
    # mu = 0, log_var = ln 2:
    #   "exp":      std = 2,       KL = 1/2 (4 - 1 - ln 4) = 0.806853
    #   "half_exp": std = sqrt 2,  KL = 1/2 (2 - 1 - ln 2) = 0.153426
    # mu = 1, log_var = 0: std = 1 under both, KL = 1/2 * 1 = 0.5
    mean = jnp.array([[0.0, 1.0]])
    log_var = jnp.array([[math.log(2.0), 0.0]])
    np.testing.assert_allclose(
        td3_cvae.kl_divergence(mean, log_var, "exp"), (0.806853 + 0.5) / 2, rtol=1e-5
    )
    np.testing.assert_allclose(
        td3_cvae.kl_divergence(mean, log_var, "half_exp"), (0.153426 + 0.5) / 2, rtol=1e-5
    )
    np.testing.assert_allclose(td3_cvae.latent_std(log_var, "exp"), [[2.0, 1.0]], rtol=1e-6)
    np.testing.assert_allclose(
        td3_cvae.latent_std(log_var, "half_exp"), [[math.sqrt(2.0), 1.0]], rtol=1e-6
    )
    # against distrax's analytic KL on random values (mean over batch and latent dimensions)
    k1, k2 = jax.random.split(jax.random.key(0))
    mu, lv = jax.random.normal(k1, (5, 3)), jax.random.uniform(k2, (5, 3), minval=-2, maxval=2)
    prior = distrax.Normal(0.0, 1.0)
    for conv in td3_cvae.CVAE_STD:
        ref = distrax.Normal(mu, td3_cvae.latent_std(lv, conv)).kl_divergence(prior)
        np.testing.assert_allclose(td3_cvae.kl_divergence(mu, lv, conv), jnp.mean(ref), rtol=1e-5)


def test_cvae_log_var_clip_and_reparameterisation():
    key = jax.random.key(0)
    obs, action = jax.random.normal(key, (2, 3)), jnp.array([[0.5, -0.5], [0.1, 0.9]])
    nets = {
        c: td3_cvae.cvae_network(td3_cvae.Config(**TINY, cvae_std=c), SPEC)
        for c in td3_cvae.CVAE_STD
    }
    params = nets["exp"].init(key, obs, action, jnp.zeros((2, 2)))
    for v, clipped in ((100.0, 15.0), (-100.0, -4.0)):
        # zero encoder weights: every encoder output equals its last bias, v
        enc = jax.tree.map(
            lambda x, v=v: jnp.zeros_like(x) if x.ndim == 2 else jnp.full_like(x, v),
            params.encoder,
        )
        _, mu, lv = nets["exp"].apply(params._replace(encoder=enc), obs, action, jnp.zeros((2, 2)))
        np.testing.assert_allclose(mu, v)
        np.testing.assert_allclose(lv, clipped)
    # zero noise decodes mu under both conventions; nonzero noise scales by different stds
    outs = {c: nets[c].apply(params, obs, action, jnp.zeros((2, 2)))[0] for c in nets}
    np.testing.assert_array_equal(outs["exp"], outs["half_exp"])
    noise = jnp.ones((2, 2))
    outs = {c: nets[c].apply(params, obs, action, noise)[0] for c in nets}
    assert not np.allclose(outs["exp"], outs["half_exp"])


def test_prepare_reward_scale_and_shift():
    n = 4
    data = datasets.validate(
        {
            "observations": np.zeros((n, 3), np.float32),
            "actions": np.zeros((n, 2), np.float32),
            "rewards": np.array([1.0, 3.0, -1.0, 2.0], np.float32),
            "next_observations": np.zeros((n, 3), np.float32),
            "terminals": np.array([0, 0, 0, 1]),
            "timeouts": np.zeros(n),
        }
    )
    cfg = td3_cvae.prepare(td3_cvae.Config(), data)
    assert cfg.reward_scale == pytest.approx(1 / 4)  # 1 / (3 - (-1))
    assert cfg.reward_offset == 0.0  # no shift unless asked
    cfg = td3_cvae.prepare(td3_cvae.Config(reward_shift=0.0), data)
    assert cfg.reward_offset == pytest.approx(-1.0)  # r - (-1) starts at 0
    cfg = td3_cvae.prepare(td3_cvae.Config(auto_reward_scale=False, reward_scale=2.0), data)
    assert cfg.reward_scale == 2.0
    # the prepared scale and offset reach the target: terminated step -> y = (r + 1) / 4
    actor, critic = stub_networks()
    cfg = td3_cvae.prepare(td3_cvae.Config(reward_shift=0.0, policy_noise=0.0), data)
    batch = toy_batch()._replace(terminated=jnp.ones(2))
    target = td3.Params(actor=None, critic=(0.0, 0.0))
    zero_bonus = lambda obs, a: jnp.zeros(obs.shape[0])
    _, m = td3_cvae.critic_loss(
        (0.0, 0.0), target, batch, jax.random.key(0), actor, critic, zero_bonus, cfg
    )
    np.testing.assert_allclose(float(m["q/target"]), ((1 + 1) / 4 + (2 + 1) / 4) / 2)
    constant = data.__class__(**{**data.arrays(), "rewards": np.ones(n, np.float32)})
    with pytest.raises(ValueError, match="auto_reward_scale"):
        td3_cvae.prepare(td3_cvae.Config(), constant)


@pytest.fixture(scope="module")
def two_phase_run():
    cfg = td3_cvae.Config(**TINY, cvae_steps=2, tau=0.5, actor_lr=1e-2, critic_lr=1e-2)
    algo = td3_cvae.make(cfg, SPEC)
    update = jax.jit(algo.update)
    states, metrics = [algo.init(jax.random.key(0), SPEC)], []
    for i in range(4):
        s, m = update(states[-1], make_batch(jax.random.key(10 + i)))
        states.append(s)
        metrics.append(m)
    return cfg, algo, states, metrics


def test_phase_switch(two_phase_run):
    cfg, _, states, metrics = two_phase_run
    td3_part = lambda s: (s.params.actor, s.params.critic, s.target, s.actor_opt, s.critic_opt)
    assert [float(m["phase/cvae"]) for m in metrics] == [1.0, 1.0, 0.0, 0.0]
    for i in (1, 2):  # CVAE phase: only the CVAE (and its optimizer) moves; TD3's key is unused
        assert not same(states[i].extra.params, states[i - 1].extra.params)
        assert same(td3_part(states[i]), td3_part(states[i - 1]))
        assert same(jax.random.key_data(states[i].key), jax.random.key_data(states[0].key))
        assert float(metrics[i - 1]["loss/critic"]) == 0.0
    for i in (3, 4):  # TD3 phase: the CVAE is frozen, the critic moves
        assert same(
            (states[i].extra.params, states[i].extra.opt),
            (states[2].extra.params, states[2].extra.opt),
        )
        assert not same(states[i].params.critic, states[i - 1].params.critic)
        # the frozen CVAE's last training metrics are repeated
        for k in ("loss/cvae", "cvae/recon", "cvae/kl", "bonus/data"):
            assert float(metrics[i - 1][k]) == float(metrics[1][k])
    assert [int(s.step) for s in states] == [0, 1, 2, 3, 4]


def test_policy_delay_and_polyak_after_the_cvae_phase(two_phase_run):
    cfg, _, states, metrics = two_phase_run
    assert (cfg.policy_delay, cfg.policy_noise, cfg.noise_clip) == (2, 0.2, 0.5)
    assert td3_cvae.Config().tau == 0.005
    s2, s3, s4 = states[2:]
    # first TD3 update: critic only
    assert same(s3.params.actor, s2.params.actor) and same(s3.target, s2.target)
    # second: actor + Polyak targets with tau = 0.5
    assert not same(s4.params.actor, s3.params.actor)
    online = td3.Params(actor=s4.params.actor, critic=s4.params.critic)
    for t, o, old in zip(leaves(s4.target), leaves(online), leaves(s3.target), strict=True):
        np.testing.assert_allclose(t, 0.5 * old + 0.5 * o, rtol=1e-6, atol=1e-7)
    assert float(metrics[3]["bonus/policy"]) > 0.0


def test_loss_is_the_sum_of_the_network_losses(two_phase_run):
    cfg, algo, states, _ = two_phase_run
    s, batch, key = states[3], make_batch(jax.random.key(3)), jax.random.key(4)
    (value, m), g = jax.jit(
        jax.value_and_grad(lambda p: algo.loss(p, s, batch, key), has_aux=True)
    )(s.params)
    np.testing.assert_allclose(
        value, m["loss/cvae"] + m["loss/critic"] + m["loss/actor"], rtol=1e-6
    )

    # the CVAE is frozen inside the critic and actor losses: grad wrt it is the CVAE loss's alone
    # (the CVAE lives in State.extra, the rewarder's state, so differentiate through the state)
    def loss_of_cvae(p):
        return algo.loss(s.params, s._replace(extra=s.extra._replace(params=p)), batch, key)[0]

    g_cvae = jax.jit(jax.grad(loss_of_cvae))(s.extra.params)
    cvae = td3_cvae.cvae_network(cfg, SPEC)
    cvae_key = jax.random.fold_in(key, 1)
    g_ref = jax.grad(lambda p: td3_cvae.cvae_loss(p, batch, cvae_key, cvae, cfg)[0])(s.extra.params)
    assert set(g._fields) == {"actor", "critic"}
    for a, b in zip(leaves(g_cvae), leaves(g_ref), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_bonus_is_low_on_both_modes_and_high_between():
    """Anti-exploration sanity (control.md 3.7.8): a CVAE fit to a bimodal 1-D action dataset
    (actions near -0.8 and +0.8) gives a small bonus at the modes and a large one between them."""
    spec = EnvSpec(obs_shape=(1,), action_shape=(1,))
    cfg = td3_cvae.Config(cvae_hidden=(32, 32), latent_size=2, cvae_lr=3e-3)
    cvae = td3_cvae.cvae_network(cfg, spec)
    n, steps, bsz = 512, 500, 64
    k = jax.random.split(jax.random.key(0), 5)
    obs = jax.random.normal(k[0], (n, 1))
    sign = jnp.where(jax.random.uniform(k[1], (n, 1)) < 0.5, -1.0, 1.0)
    action = jnp.clip(0.8 * sign + 0.05 * jax.random.normal(k[2], (n, 1)), -1.0, 1.0)
    data = Transition(obs, action, jnp.zeros(n), obs, jnp.zeros(n), jnp.zeros(n))
    opt = optax.adam(cfg.cvae_lr)
    params = cvae.init(k[3], obs[:1], action[:1], jnp.zeros((1, 2)))

    def step(carry, inputs):
        params, opt_state = carry
        idx, key = inputs
        batch = jax.tree.map(lambda x: x[idx], data)
        grads, m = jax.grad(td3_cvae.cvae_loss, has_aux=True)(params, batch, key, cvae, cfg)
        updates, opt_state = opt.update(grads, opt_state)
        return (optax.apply_updates(params, updates), opt_state), m["loss/cvae"]

    idx = jax.random.randint(k[4], (steps, bsz), 0, n)
    keys = jax.random.split(jax.random.key(1), steps)
    (params, _), losses = jax.jit(lambda c: jax.lax.scan(step, c, (idx, keys)))(
        (params, opt.init(params))
    )
    assert float(losses[-50:].mean()) < float(losses[:50].mean())

    test_obs = jax.random.normal(jax.random.key(5), (256, 1))

    def mean_bonus(a):
        b = td3_cvae.bonus(params, test_obs, jnp.full((256, 1), a), jax.random.key(7), cvae, cfg)
        return float(jnp.mean(b))

    low, high, mid = mean_bonus(-0.8), mean_bonus(0.8), mean_bonus(0.0)
    assert mid > 3 * max(low, high), (low, mid, high)


def test_bad_input_raises():
    algo = td3_cvae.make(td3_cvae.Config(**TINY), SPEC)
    state = algo.init(jax.random.key(0), SPEC)
    batch = make_batch(jax.random.key(1))
    with pytest.raises(ValueError, match="reward"):
        algo.update(state, batch._replace(reward=batch.reward[:, None]))
    with pytest.raises(ValueError, match="action"):
        algo.update(state, batch._replace(action=jnp.zeros((8, 3))))
    with pytest.raises(ValueError, match="next_obs"):
        algo.loss(
            state.params, state, batch._replace(next_obs=jnp.zeros((8, 2))), jax.random.key(0)
        )
    with pytest.raises(ValueError, match="discrete"):
        td3_cvae.make(td3_cvae.Config(), EnvSpec(obs_shape=(3,), action_shape=(), num_actions=2))
    for field, value in (
        ("cvae_std", "sqrt"),
        ("bonus_latent", "mode"),
        ("latent_size", 0),
        ("cvae_steps", -1),
        ("cvae_steps", 1.5),
        ("alpha", -1.0),
        ("cvae_lr", 0.0),
        ("reward_scale", 0.0),
        ("reward_shift", float("nan")),
        ("use_log", 1),
        ("cvae_hidden", (0,)),
    ):
        with pytest.raises(ValueError, match=field):
            td3_cvae.Config(**{field: value})


def test_latent_size_defaults_to_twice_the_action_size():
    """The authors' train_ae.py sets the VAE's latent size to 2 |A| (issue 12)."""
    assert td3_cvae.Config().latent_size is None
    spec = EnvSpec(obs_shape=(3,), action_shape=(3,))

    def decoder_inputs(**kw):
        cfg = td3_cvae.Config(hidden=(8, 8), cvae_hidden=(8, 8), **kw)
        params = td3_cvae.make_rewarder(cfg, spec).init(jax.random.key(0), spec).params
        dec = {x.shape for x in leaves(params.decoder) if x.ndim == 2}
        return {shape[0] for shape in dec} - {8}  # first layer: [obs + latent, 8]

    assert decoder_inputs() == {3 + 2 * 3}
    assert decoder_inputs(latent_size=7) == {3 + 7}
    # the agent's bonus and loss sample latents of that size too
    cfg = td3_cvae.Config(**{**TINY, "latent_size": None}, cvae_steps=1)
    algo = td3_cvae.make(cfg, SPEC)
    state, m = jax.jit(algo.update)(
        algo.init(jax.random.key(0), SPEC), make_batch(jax.random.key(1))
    )
    assert np.isfinite(float(m["loss/cvae"]))
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="latent_size"):
            td3_cvae.Config(latent_size=bad)
