import jax.numpy as jnp
import numpy as np

from purerl.core import normalization


def test_running_moments_match_numpy_over_chunks():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(100, 3)).astype(np.float32)
    state = normalization.init((3,))
    for chunk in np.split(data, [7, 40, 41, 100]):
        if len(chunk):
            state = normalization.update(state, jnp.asarray(chunk))
    np.testing.assert_allclose(state.mean, data.mean(0), rtol=1e-5)
    np.testing.assert_allclose(state.var, data.var(0), rtol=1e-4)
    assert float(state.count) == 100.0


def test_normalize_hand_values_and_clip():
    state = normalization.update(normalization.init((1,)), jnp.array([[1.0], [3.0]]))
    # mean 2, var 1 -> (5 - 2) / 1 = 3; clip at 2.
    np.testing.assert_allclose(normalization.normalize(state, jnp.array([5.0])), [3.0], rtol=1e-6)
    np.testing.assert_allclose(normalization.normalize(state, jnp.array([5.0]), clip=2.0), [2.0])
