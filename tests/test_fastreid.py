"""``fastreid``: fixed and adaptive ε, and its non-zero-count reduction."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as ref
from lsbench.losses import RECIPES

R = RECIPES["fastreid"]


def _data(seed=0, b=10, k=7):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, k)) * 3, rng.integers(0, k, size=b)


@pytest.mark.parametrize("eps", [0.0, 0.1, -1.0])
def test_reduction_divides_by_the_number_of_nonzero_rows(eps):
    z, y = _data()
    keep = np.ones(10, bool)
    keep[[1, 4, 5]] = False  # masked rows have L = 0 and are not counted
    with jax.enable_x64(True):
        got = R.loss(jnp.asarray(z), jnp.asarray(y), epsilon=eps, alpha=0.2, where=keep)
    rows, _ = ref.dense_ce(z, ref.q_fastreid(y, 7, z, eps, 0.2))
    rows = np.where(keep, rows, 0.0)
    np.testing.assert_allclose(got, ref.fastreid_reduce(rows), rtol=1e-12)
    assert not np.isclose(ref.fastreid_reduce(rows), rows.mean())  # differs from a plain batch mean


def test_fixed_epsilon_equals_off_target():
    z, y = _data(1)
    with jax.enable_x64(True):
        np.testing.assert_allclose(
            R.loss(jnp.asarray(z), jnp.asarray(y), epsilon=0.2),
            RECIPES["off_target"].loss(jnp.asarray(z), jnp.asarray(y), epsilon=0.2),
            rtol=1e-12,
        )


def test_adaptive_epsilon_is_alpha_times_p_y_and_a_constant_in_the_gradient():
    z, y = _data(2)
    with jax.enable_x64(True):
        zz = jnp.asarray(z)
        q = R.targets(jnp.asarray(y), 7, epsilon=-1.0, alpha=0.3, logits=zz)
        p = jax.nn.softmax(zz)
        eps_i = 0.3 * p[jnp.arange(10), y]
        np.testing.assert_allclose(q[jnp.arange(10), y], 1 - eps_i, rtol=1e-12)
        g = jax.grad(lambda a: R.per_example(a, jnp.asarray(y), epsilon=-1.0, alpha=0.3).sum())(zz)
        np.testing.assert_allclose(g, p - q, rtol=1e-10, atol=1e-14)
        # The full derivative (ε_i differentiated) differs: fast-reid drops that term.
        full = jax.grad(
            lambda a: -jnp.sum(R.targets(jnp.asarray(y), 7, epsilon=-1.0, alpha=0.3, logits=a) * jax.nn.log_softmax(a))
        )(zz)
        assert np.abs(np.asarray(full - g)).max() > 1e-3


def test_adaptive_needs_logits_for_targets():
    with pytest.raises(ValueError, match="logits"):
        R.targets(jnp.asarray([0, 1]), 3, epsilon=-1.0)


def test_adaptive_switch_equals_the_negative_epsilon_convention():
    """Issue 12 API: adaptive=True is the explicit switch; epsilon < 0 keeps working."""
    import lsbench.losses as L

    rng = np.random.default_rng(70)
    z = jnp.asarray(rng.normal(size=(6, 5)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 5, 6))
    np.testing.assert_allclose(L.fastreid(z, y, adaptive=True, alpha=0.3), L.fastreid(z, y, epsilon=-1.0, alpha=0.3),
                               rtol=1e-7)
    np.testing.assert_allclose(RECIPES["fastreid"].loss(z, y, adaptive=True), RECIPES["fastreid"].loss(z, y, epsilon=-1.0),
                               rtol=1e-7)
    assert not np.allclose(L.fastreid(z, y, adaptive=True), L.fastreid(z, y))
    with pytest.raises(TypeError, match="adaptive"):
        L.fastreid(z, y, adaptive="yes")
