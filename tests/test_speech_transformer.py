"""``speech_transformer``: the published code's target mass 1 − ε/K and its ignore_index."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as ref
from lsbench.losses import RECIPES

R = RECIPES["speech_transformer"]


def _data(seed=0, b=12, k=9):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, k)) * 2, rng.integers(0, k, size=b)


def test_target_mass_is_one_minus_eps_over_k():
    q = np.asarray(R.targets(jnp.asarray([0, 3, 8]), 9, epsilon=0.3))
    np.testing.assert_allclose(q.sum(-1), 1 - 0.3 / 9, rtol=1e-6)


def test_equals_uniform_plus_eps_over_k_log_p_y():
    z, y = _data()
    with jax.enable_x64(True):
        got = R.per_example(jnp.asarray(z), jnp.asarray(y), epsilon=0.25)
        uni = np.asarray(RECIPES["uniform"].per_example(jnp.asarray(z), jnp.asarray(y), epsilon=0.25))
    log_p_y = np.take_along_axis(ref.log_softmax(z), y[:, None], -1)[:, 0]
    np.testing.assert_allclose(got, uni + 0.25 / 9 * log_p_y, rtol=1e-12)


def test_default_ignore_index_is_minus_one_and_mean_is_over_kept_rows():
    z, y = _data(1)
    y[[0, 5]] = -1
    with jax.enable_x64(True):
        got = R.loss(jnp.asarray(z), jnp.asarray(y), epsilon=0.1)
    keep = y != -1
    rows, _ = ref.dense_ce(z[keep], ref.q_speech_transformer(y[keep], 9, 0.1))
    np.testing.assert_allclose(got, rows.sum() / keep.sum(), rtol=1e-12)


def test_epsilon_zero_is_pytorch_cross_entropy_with_ignore_index():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional peer")
    z, y = _data(2)
    y[[1, 2]] = -1
    want = torch.nn.functional.cross_entropy(torch.tensor(z), torch.tensor(y), ignore_index=-1).item()
    with jax.enable_x64(True):
        np.testing.assert_allclose(R.loss(jnp.asarray(z), jnp.asarray(y), epsilon=0.0), want, rtol=1e-12)


def test_all_rows_ignored_returns_zero_where_the_published_code_divides_by_zero():
    z, _ = _data(3, b=4)
    y = np.full(4, -1)
    assert float(R.loss(z.astype(np.float32), y)) == 0.0
    g = jax.grad(lambda a: R.loss(a, y))(jnp.asarray(z, jnp.float32))
    assert (np.asarray(g) == 0).all()
