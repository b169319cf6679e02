"""``tf_onehot``: dense and soft labels, Keras-style."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as ref
from lsbench.losses import RECIPES

R = RECIPES["tf_onehot"]


def test_soft_labels_match_the_dense_reference_and_labels_are_differentiable():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(5, 8)) * 2
    Y = rng.dirichlet(np.ones(8), size=5)
    with jax.enable_x64(True):
        got = R.per_example(jnp.asarray(z), jnp.asarray(Y), epsilon=0.2)
        gy = jax.grad(lambda b: R.per_example(jnp.asarray(z), b, epsilon=0.2).sum())(jnp.asarray(Y))
    rows, _ = ref.dense_ce(z, ref.q_tf(Y, 0.2))
    np.testing.assert_allclose(got, rows, rtol=1e-12)
    np.testing.assert_allclose(gy, -(1 - 0.2) * ref.log_softmax(z), rtol=1e-10)


def test_unnormalised_rows_carry_their_mass_into_the_gradient():
    z = np.array([[1.0, 2.0, 0.5]])
    Y = np.array([[2.0, 0.0, 0.0]])  # mass 2
    with jax.enable_x64(True):
        g = jax.grad(lambda a: R.loss(a, jnp.asarray(Y), epsilon=0.1))(jnp.asarray(z))
    _, want = ref.dense_ce(z, ref.q_tf(Y, 0.1))
    np.testing.assert_allclose(g, want, rtol=1e-12)


def test_integer_or_negative_labels_raise():
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="dense floating label matrix"):
        R.loss(z, np.array([0, 1]))
    with pytest.raises(ValueError, match="non-negative"):
        R.loss(z, np.array([[1.0, -0.5, 0.5], [0, 1, 0]], np.float32))


def test_soft_labels_with_zero_mass_on_a_minus_infinity_logit_match_float64():
    """A class masked by a −inf logit with Y_j = 0 contributes 0 (not 0·inf = NaN), soft labels included."""
    z = np.array([[2.0, -np.inf, 0.5, 1.0], [3e38, -3e38, 0.0, 1.0]], np.float32)
    Y = np.array([[0.5, 0.0, 0.25, 0.25], [0.7, 0.0, 0.2, 0.1]], np.float32)
    got = np.asarray(R.per_example(z, Y, epsilon=0.0))
    g = np.asarray(jax.grad(lambda a: R.loss(a, jnp.asarray(Y), epsilon=0.0))(jnp.asarray(z)))
    with jax.enable_x64(True):
        want = np.asarray(R.per_example(jnp.asarray(z, jnp.float64), jnp.asarray(Y, jnp.float64), epsilon=0.0))
    finite = [0, 2, 3]  # the masked class carries no probability and no label mass
    rows, _ = ref.dense_ce(z[:1, finite].astype(np.float64), Y[:1, finite].astype(np.float64))
    assert np.isfinite(got).all() and np.isfinite(g).all()
    np.testing.assert_allclose(want[:1], rows, rtol=1e-12)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.asarray(R.per_example(z[:1], np.eye(4, dtype=np.float32)[[1]], epsilon=0.0))[0] == np.inf


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_forward_and_backward_keep_no_class_sized_temporary(dtype):
    """The ce terms, z − m and a float32 copy of 16-bit Y stay inside their passes (XLA's temp buffers)."""
    z = jnp.zeros((512, 1000), dtype)
    f = jax.value_and_grad(lambda a, b: R.loss(a, b, epsilon=0.1), argnums=(0, 1))
    stats = jax.jit(f).lower(z, z).compile().memory_analysis()
    assert stats.temp_size_in_bytes < 0.25 * z.nbytes, stats.temp_size_in_bytes
