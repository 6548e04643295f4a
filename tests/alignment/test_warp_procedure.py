"""The iterated WARP procedure (pipeline.run_warp, WARP Algorithm 1) on a tiny LM."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.alignment import lm, pipeline, tasks, warp
from purerl.alignment import policy_gradient as pg
from purerl.core.tree import lerp

TASK = tasks.TaskConfig()
LM = lm.LMConfig(vocab_size=16, max_len=12, d_model=16, num_heads=2, num_layers=1)
# LLVM -O0 halves the compile time of these programs on the loaded 2-core machine; same semantics.
FAST = {"xla_backend_optimization_level": 0}
RL = pg.RLConfig(batch_size=4, num_samples=2, learning_rate=1e-2, ema_rate=0.1, log_kl_sft=False)
CFG = pipeline.WarpConfig(
    steps=(4, 4),  # I = 2 iterations, the same T: one compile for both
    num_runs=2,  # M = 2
    rl=RL,
    eval_every=2,
    front_etas=(0.0, 0.5, 1.0),
    num_eval_prompts=16,
)


def gold(tokens, mask):
    return tasks.sequence_gold_reward(tokens, mask, TASK)


def _close(a, b, atol=1e-6):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-5)


@pytest.fixture(scope="module")
def sft():
    return lm.make_lm(LM).init(jax.random.key(0), jnp.zeros((1, 12), jnp.int32))


@pytest.fixture(scope="module")
def result(sft):
    return pipeline.run_warp(jax.random.key(1), sft, CFG, LM, TASK, gold, compiler_options=FAST)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"steps": ()}, "steps"),
        ({"steps": (10, 5), "eval_every": 10}, "multiple of eval_every"),
        ({"num_runs": 0}, "num_runs"),
        ({"front_etas": (0.0, float("nan"))}, "finite"),
        ({"rl": "reinforce"}, "RLConfig"),
    ],
)
def test_warp_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        pipeline.WarpConfig(**kwargs)


def test_defaults_follow_the_paper():
    cfg = pipeline.WarpConfig()
    assert cfg.num_iterations == 5 and cfg.steps == (9000, 7000, 7000, 5000, 5000)
    assert (cfg.num_runs, cfg.liti_eta) == (2, 0.3)
    assert (cfg.rl.anchor, cfg.rl.beta, cfg.rl.ema_rate) == ("ema", 0.1, 0.01)


def test_run_warp_shapes_and_finite_metrics(result):
    i, m, e, rows = 2, 2, 3, 4 // 2 + 1
    assert len(result.inits) == i + 1
    assert len(result.merged) == len(result.run_params) == len(result.run_metrics) == i
    assert len(result.iteration_fronts) == i
    assert result.eval_prompts.shape == (16, TASK.prompt_len)
    for metrics in result.run_metrics:
        for k, v in metrics.items():
            assert v.shape == (m, rows), k
            tail = v if k.startswith(("eval/", "loop/")) else v[:, 1:]  # row 0: no update yet
            assert np.all(np.isfinite(tail)), k
    for front in [*result.iteration_fronts, result.front]:
        for k, v in front.items():
            assert v.shape == (e,) and np.all(np.isfinite(v)), k
    np.testing.assert_allclose(result.front["eta"], CFG.front_etas)
    for k in ("eval/reward", "eval/gold", "eval/kl_sft"):
        assert k in result.front


@functools.partial(jax.jit, compiler_options=FAST)
def merge_and_liti(init, runs, merged):
    return warp.slerp_uniform(init, runs), lerp(init, merged, CFG.liti_eta)


def test_run_warp_follows_algorithm_1(sft, result):
    _close(result.inits[0], sft, atol=0)
    for i in range(CFG.num_iterations):
        init, runs = result.inits[i], result.run_params[i]
        # The M runs start at theta_init and end apart: their task vectors differ.
        gap = jax.tree.map(lambda x: float(jnp.max(jnp.abs(x[0] - x[1]))), runs)
        moved = jax.tree.map(lambda x, a: float(jnp.max(jnp.abs(x[0] - a))), runs, init)
        assert max(jax.tree.leaves(gap)) > 0 and max(jax.tree.leaves(moved)) > 0
        # SLERP merge of the M runs (eq. 26, lambda = 1/M) and LITI with eta = 0.3 to the next init.
        merged, next_init = merge_and_liti(init, runs, result.merged[i])
        _close(result.merged[i], merged)
        _close(result.inits[i + 1], next_init)
    # Row 0 of every run evaluates theta_init: theta_sft in iteration 1, the LITI point after.
    np.testing.assert_array_equal(result.run_metrics[0]["eval/kl_sft"][:, 0], 0.0)
    assert np.all(result.run_metrics[1]["eval/kl_sft"][:, 0] > 0)


def test_front_endpoints(result):
    """eta = 0 is theta_sft (KL exactly 0; the same evaluation as iteration 1's LITI curve at its
    eta = 0, which is theta_init^1 = theta_sft); eta = 1 is theta_slerp^I (the same evaluation as
    the last iteration's curve at eta = 1)."""
    front, first, last = result.front, result.iteration_fronts[0], result.iteration_fronts[-1]
    assert front["eval/kl_sft"][0] == 0.0
    for k in ("eval/reward", "eval/gold", "eval/kl_sft", "eval/length"):
        np.testing.assert_allclose(front[k][0], first[k][0], rtol=1e-6)
        np.testing.assert_allclose(front[k][-1], last[k][-1], rtol=1e-6)
    assert front["eval/kl_sft"][-1] > 0
