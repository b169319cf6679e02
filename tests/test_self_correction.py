"""Self-correction weights: the published formula, its negative region, and the reweighted loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as ref
from lsbench.losses import RECIPES, self_correction_loss, self_correction_weights


def test_weights_match_the_published_formula():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(5), size=20)
    y = rng.integers(0, 5, size=20)
    with jax.enable_x64(True):
        np.testing.assert_allclose(self_correction_weights(jnp.asarray(p), jnp.asarray(y), alpha=0.3), ref.self_correction_weights(p, y, 0.3), rtol=1e-12)


def test_weights_turn_negative_exactly_below_exp_minus_one_over_alpha():
    alpha = 0.1
    threshold = np.exp(-1 / alpha)  # ≈ 4.54e-5
    p_y = np.array([threshold * 0.5, threshold * 2])
    probs = np.stack([p_y, 1 - p_y], axis=-1)
    with jax.enable_x64(True):
        w = np.asarray(self_correction_weights(jnp.asarray(probs), jnp.asarray([0, 0]), alpha=alpha))
        wc = np.asarray(self_correction_weights(jnp.asarray(probs), jnp.asarray([0, 0]), alpha=alpha, clip=True))
    assert w[0] < 0 < w[1]
    assert wc[0] == 0 and wc[1] == w[1]


def test_reweighted_loss_treats_weights_as_constants():
    rng = np.random.default_rng(1)
    z = jnp.asarray(rng.normal(size=(6, 4)) * 3)
    y = jnp.asarray(rng.integers(0, 4, size=6))
    with jax.enable_x64(True):
        z = z.astype(jnp.float64)
        w = self_correction_weights(jax.nn.softmax(z), y, alpha=0.2)
        rows = lambda a: RECIPES["uniform"].per_example(a, y, epsilon=0.0)  # noqa: E731
        want = jnp.mean(w * rows(z))
        got = self_correction_loss(z, y, alpha=0.2, epsilon=0.0)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        g = jax.grad(lambda a: self_correction_loss(a, y, alpha=0.2, epsilon=0.0))(z)
        np.testing.assert_allclose(g, jax.grad(lambda a: jnp.mean(w * rows(a)))(z), rtol=1e-10, atol=1e-14)


def test_logits_instead_of_probabilities_raise():
    with pytest.raises(ValueError, match="probabilities"):
        self_correction_weights(np.array([[3.0, -1.0]]), np.array([0]))
    with pytest.raises(ValueError, match="recipe"):
        self_correction_loss(np.zeros((2, 3), np.float32), np.array([0, 1]), recipe="distillation")


def test_ignore_index_rows_are_left_out_and_the_recipes_default_is_used():
    """Issue 12 defect 2: ignore_index gave NaN; speech_transformer (default −1) counted ignored rows."""
    rng = np.random.default_rng(30)
    z = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    kept = jnp.asarray([0, 1, 3])
    y = jnp.asarray([0, 1, -100, 2])
    np.testing.assert_allclose(self_correction_loss(z, y, ignore_index=-100),
                               self_correction_loss(z[kept], y[kept]), rtol=1e-6)
    y1 = jnp.asarray([0, 1, -1, 2])
    np.testing.assert_allclose(self_correction_loss(z, y1, recipe="speech_transformer"),
                               self_correction_loss(z[kept], y1[kept], recipe="speech_transformer"), rtol=1e-6)
    g = jax.grad(lambda a: self_correction_loss(a, y, ignore_index=-100))(z)
    assert np.isfinite(np.asarray(g)).all() and (np.asarray(g)[2] == 0).all()


def test_out_of_range_labels_under_jit_give_nan_weights_and_loss_rows():
    """Issue 12 defect 1: a negative label must not wrap to class K+label."""
    rng = np.random.default_rng(31)
    z = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    y = jnp.asarray([0, 1, -3, 2])
    w = jax.jit(lambda p, b: self_correction_weights(p, b))(jax.nn.softmax(z), y)
    np.testing.assert_array_equal(np.isnan(np.asarray(w)), [False, False, True, False])
    assert np.isnan(float(jax.jit(lambda a, b: self_correction_loss(a, b))(z, y)))
