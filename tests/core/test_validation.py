"""Shape checks of purerl.core.validation: chex assertions underneath, the library's messages on top."""

import re

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from purerl.core import validation
from purerl.core.types import EnvSpec, Transition

SPEC = EnvSpec(obs_shape=(3,), action_shape=(2,), name="box")


def batch(lead=(4,), obs=(3,), act=(2,)):
    z = lambda *shape: jnp.zeros(shape)  # noqa: E731
    return Transition(
        obs=z(*lead, *obs),
        action=z(*lead, *act),
        reward=z(*lead),
        next_obs=z(*lead, *obs),
        terminated=z(*lead),
        truncated=z(*lead),
    )


def test_chex_check_raises_value_error_with_the_given_message():
    validation.chex_check(chex.assert_shape, jnp.zeros((2, 3)), (2, None), message="unused")
    with pytest.raises(ValueError, match=r"^x has shape \(2, 3\), expected \[2, 4\]$"):
        validation.chex_check(
            chex.assert_shape,
            jnp.zeros((2, 3)),
            (2, 4),
            message="x has shape (2, 3), expected [2, 4]",
        )
    with pytest.raises(ValueError, match="integer"):
        validation.chex_check(chex.assert_type, jnp.zeros(3), int, message="needs integer indices")
    # Python lists and scalars are read as arrays (chex would take a list as several inputs).
    validation.chex_check(chex.assert_shape, [1.0, 2.0], (2,), message="unused")
    validation.chex_check(chex.assert_rank, 1.0, 0, message="unused")


def test_check_obs_messages():
    validation.check_obs(jnp.zeros((3,)), SPEC)
    validation.check_obs(jnp.zeros((5, 7, 3)), SPEC)
    with pytest.raises(ValueError, match=r"observation has shape \(5, 4\), expected \[\.\.\., 3\]"):
        validation.check_obs(jnp.zeros((5, 4)), SPEC)
    with pytest.raises(ValueError, match=r"obs has shape \(\), expected .* env box"):
        validation.check_obs(jnp.zeros(()), SPEC, what="obs")


def test_check_batch_messages_name_the_field_and_the_expected_shape():
    validation.check_batch(batch(), SPEC, "agent.update")
    validation.check_batch(batch(lead=(4, 3)), SPEC, "agent.update", window=3)
    validation.check_batch(batch(lead=(5, 2)), SPEC, "agent.update", rollout=True)
    with pytest.raises(
        ValueError,
        match=r"agent.update: batch.reward has shape \(4, 3\), expected \[B\]; set the loop's n_step",
    ):
        validation.check_batch(batch(lead=(4, 3)), SPEC, "agent.update")
    with pytest.raises(
        ValueError, match=r"batch.reward has shape \(4, 2\), expected \[B, 3\] \(n-step windows\)"
    ):
        validation.check_batch(batch(lead=(4, 2)), SPEC, "agent.update", window=3)
    with pytest.raises(
        ValueError, match=r"batch.reward has shape \(4,\), expected a rollout \[T, E\]"
    ):
        validation.check_batch(batch(), SPEC, "agent.update", rollout=True)
    bad = batch()._replace(action=jnp.zeros((4, 3)))
    with pytest.raises(
        ValueError,
        match=r"agent.update: batch.action has shape \(4, 3\), expected \(4, 2\) \(leading \(4,\) from batch.reward, env box\)",
    ):
        validation.check_batch(bad, SPEC, "agent.update")
    bad = batch()._replace(truncated=jnp.zeros((4, 1)))
    with pytest.raises(ValueError, match=r"batch.truncated has shape \(4, 1\), expected \(4,\)"):
        validation.check_batch(bad, SPEC, "agent.update")
    with pytest.raises(TypeError, match="Transition"):
        validation.check_batch(tuple(batch()), SPEC, "agent.update")


def test_checks_run_at_trace_time_under_jit():
    # Shapes are static: the check raises while tracing, inside jit as outside.
    def f(b):
        validation.check_batch(b, SPEC, "f")
        return jnp.sum(b.reward)

    assert float(jax.jit(f)(batch())) == 0.0
    with pytest.raises(ValueError, match="batch.next_obs has shape"):
        jax.jit(f)(batch()._replace(next_obs=jnp.zeros((4, 2))))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (
            dict(obs_shape=(3.5,), action_shape=(1,)),
            "EnvSpec.obs_shape must be a tuple of positive",
        ),
        (dict(obs_shape=(0,), action_shape=(1,)), "EnvSpec.obs_shape must be a tuple of positive"),
        (dict(obs_shape=(3,), action_shape=(-1,)), "EnvSpec.action_shape must be a tuple of"),
        (dict(obs_shape=[3], action_shape=(1,)), "EnvSpec.obs_shape must be a tuple"),
        (dict(obs_shape=(3,), action_shape=(), num_actions=2.5), "EnvSpec.num_actions must be"),
        (dict(obs_shape=(3,), action_shape=(), num_actions=1), "EnvSpec.num_actions must be >= 2"),
    ],
)
def test_envspec_rejects_bad_shapes(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        EnvSpec(**kwargs)
    assert EnvSpec(obs_shape=(np.int64(3),), action_shape=(1,)).obs_size == 3  # numpy ints are ints


def test_empty_hidden_layers_are_an_error():
    with pytest.raises(ValueError, match=r"sac.Config.hidden is empty: that would be a linear"):
        validation.layer_sizes("sac.Config", "hidden", ())
    with pytest.raises(ValueError, match="positive ints"):
        validation.layer_sizes("sac.Config", "hidden", (True, 4))
