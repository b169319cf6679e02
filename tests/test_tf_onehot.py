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
