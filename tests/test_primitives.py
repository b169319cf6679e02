"""``lsbench.losses.primitives``: the row-statistics primitive and its closed-form VJP."""

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as _core


def test_row_stats_values_and_vjp_against_autodiff():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, 4, 11)) * 5
    y = rng.integers(0, 11, size=(3, 4))
    with jax.enable_x64(True):
        zz, yy = jnp.asarray(z), jnp.asarray(y)
        st = _core.row_stats(zz, yy)
        m = z.max(-1)
        np.testing.assert_allclose(st.shift, m)
        np.testing.assert_allclose(st.lse + st.shift, jax.nn.logsumexp(zz, -1), rtol=1e-14)
        np.testing.assert_allclose(st.target + st.shift, np.take_along_axis(z, y[..., None], -1)[..., 0], rtol=1e-14)
        np.testing.assert_allclose(st.total + 11 * st.shift, z.sum(-1), rtol=1e-12)
        c = [jnp.asarray(rng.normal(size=(3, 4))) for _ in range(3)]

        def fast(a):
            s = _core.row_stats(a, yy)
            return jnp.sum(c[0] * (s.lse + s.shift) + c[1] * (s.target + s.shift) + c[2] * (s.total + 11 * s.shift))

        def naive(a):
            return jnp.sum(
                c[0] * jax.nn.logsumexp(a, -1)
                + c[1] * jnp.take_along_axis(a, yy[..., None], -1)[..., 0]
                + c[2] * a.sum(-1)
            )

        np.testing.assert_allclose(jax.grad(fast)(zz), jax.grad(naive)(zz), rtol=1e-12, atol=1e-14)


def test_gradient_keeps_the_logits_dtype_and_the_stats_are_float32():
    z = jnp.ones((2, 5), jnp.bfloat16)
    y = jnp.asarray([0, 4])
    st = _core.row_stats(z, y)
    assert st.lse.dtype == jnp.float32
    g = jax.grad(lambda a: _core.row_stats(a, y).lse.sum())(z)
    assert g.dtype == jnp.bfloat16


def test_rows_of_minus_infinity_do_not_poison_the_shift():
    z = jnp.asarray([[-jnp.inf, -jnp.inf], [0.0, 1.0]])
    st = _core.row_stats(z, jnp.asarray([0, 1]))
    assert np.isfinite(np.asarray(st.shift)).all()
