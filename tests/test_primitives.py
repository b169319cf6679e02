"""``lsbench.losses.primitives``: the row-statistics primitive and its closed-form VJP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

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


def test_row_stats_mean_is_total_over_k_and_the_shift_is_exact():
    z = jnp.asarray([[1e6 + 0.125, 1e6, 1e6 - 0.25, 1e6 + 0.5]], jnp.float32)
    st = _core.row_stats(z, jnp.asarray([1]))
    np.testing.assert_array_equal(np.asarray(st.target), [-0.5])
    np.testing.assert_array_equal(np.asarray(st.total), [-0.375 - 0.5 - 0.75 + 0.0])  # Σ (z − m), m = 1e6 + 0.5
    np.testing.assert_allclose(np.asarray(st.mean), np.asarray(st.total) / 4, rtol=1e-7)
    far = _core.row_stats(jnp.asarray([[3e38, -3e38, 0.0]], jnp.float32), jnp.asarray([0]))
    assert np.isfinite(np.asarray(far.mean)).all()  # Σ(z − m) = −1.2e39 would overflow float32


def test_out_of_range_labels_make_target_and_gradient_rows_nan():
    z = jnp.zeros((3, 4))
    y = jnp.asarray([0, -1, 4])
    st = jax.jit(_core.row_stats)(z, y)
    np.testing.assert_array_equal(np.isnan(np.asarray(st.target)), [False, True, True])
    g = jax.jit(jax.grad(lambda a, b: _core.row_stats(a, b).lse.sum()))(z, y)
    np.testing.assert_array_equal(np.isnan(np.asarray(g)).all(-1), [False, True, True])


def test_keep_gives_exact_zero_gradient_rows_whatever_they_hold():
    z = jnp.asarray([[0.0, 1.0], [jnp.nan, jnp.inf]])
    g = jax.grad(lambda a: _core.row_stats(a, jnp.asarray([0, 1]), keep=jnp.asarray([True, False])).lse[0])(z)
    np.testing.assert_array_equal(np.asarray(g)[1], [0.0, 0.0])


def test_check_labels_raises_eagerly_and_under_checkify():
    from jax.experimental import checkify

    from lsbench.losses import check_labels

    check_labels(jnp.asarray([0, 2, -100]), 3, ignore_index=-100)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\)"):
        check_labels(jnp.asarray([0, -1]), 3)

    def f(y):
        check_labels(y, 3, ignore_index=-100)
        return y.sum()

    checked = jax.jit(checkify.checkify(f))
    assert checked(jnp.asarray([0, 2, -100]))[0].get() is None
    err, _ = checked(jnp.asarray([0, -3]))
    with pytest.raises(checkify.JaxRuntimeError, match="out-of-range"):
        err.throw()


def test_times_is_zero_for_a_zero_coefficient_even_at_infinity():
    np.testing.assert_array_equal(np.asarray(_core.times(0.0, jnp.asarray([-jnp.inf, 2.0]))), [0.0, 0.0])
    np.testing.assert_array_equal(np.asarray(_core.times(0.5, jnp.asarray([-jnp.inf, 2.0]))), [-np.inf, 1.0])


def test_keyword_defaults_and_bind_params():
    def f(a, *, epsilon=0.1, where=None):
        return a

    assert _core.keyword_defaults(f) == {"epsilon": 0.1, "where": None}
    assert _core.bind_params(f, {"epsilon": 0.3}) == {"epsilon": 0.3, "where": None}
    with pytest.raises(TypeError, match="unexpected parameter"):
        _core.bind_params(f, {"alpha": 1.0})


@pytest.mark.parametrize("bad,error", [("a", TypeError), (None, TypeError), (float("inf"), ValueError),
                                       (np.ones(2), ValueError)])
def test_scalar_checks_name_the_parameter(bad, error):
    with pytest.raises(error, match="temperature"):
        _core.check_positive(bad, "temperature")
    with pytest.raises(error, match="epsilon"):
        _core.check_epsilon(bad)


def logits_parameter_copies(hlo: str, shape) -> list[str]:
    """Lines of the entry computation of ``hlo`` that copy a parameter of ``shape``."""
    entry = hlo[hlo.index("\nENTRY"):]
    dims = ",".join(map(str, shape))
    params = {line.split("=")[0].strip() for line in entry.splitlines() if f"[{dims}]" in line and " parameter(" in line}
    assert params, "the logits parameter is not in the entry computation"
    return [line.strip() for line in entry.splitlines()
            if " copy(" in line and any(f"copy({p})" in line for p in params)]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("k", [1000, 40000])
def test_a_donated_gradient_is_written_into_the_logits_without_copying_them(dtype, masked, k):
    """Structural (the compiled HLO, no timing): every read of donated logits comes before the
    gradient's write, so XLA aliases the gradient to them and copies nothing first."""
    from lsbench.losses import RECIPES

    z, y = jax.ShapeDtypeStruct((8, k), dtype), jax.ShapeDtypeStruct((8,), jnp.int32)
    kw = {"ignore_index": -100} if masked else {}
    f = jax.value_and_grad(lambda a, b: RECIPES["uniform"].loss(a, b, epsilon=0.1, **kw))
    compiled = jax.jit(f, donate_argnums=0).lower(z, y).compile()
    assert compiled.memory_analysis().alias_size_in_bytes == z.size * jnp.dtype(dtype).itemsize
    assert logits_parameter_copies(compiled.as_text(), z.shape) == []
    # the same check sees the copy that plain XLA makes when a read of z follows the write
    late = jax.jit(lambda a: (a * 2, jnp.sum(a)), donate_argnums=0).lower(z).compile().as_text()
    assert logits_parameter_copies(late, z.shape) != []


def test_the_backward_uses_the_forward_target_and_equals_the_recomputed_label_entry():
    """The label entries come from the forward's ``target`` (no read of z after the gradient's
    write); they equal ``ḡ_lse·softmax_y + ḡ_target + ḡ_row`` recomputed from z, bit for bit."""
    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(6, 37)) * 3, jnp.float32)
    y = jnp.asarray(rng.integers(0, 37, 6))
    c = jnp.asarray(rng.normal(size=(3, 6)), jnp.float32)

    def f(a):
        s = _core.row_stats(a, y)
        return jnp.sum(c[0] * s.lse + c[1] * s.target + c[2] * s.total)

    g = np.asarray(jax.jit(jax.grad(f))(z))
    st = _core.row_stats(z, y)
    z_y = np.take_along_axis(np.asarray(z), np.asarray(y)[:, None], -1)[:, 0]
    np.testing.assert_array_equal(np.asarray(st.target), z_y - np.asarray(st.shift))
    softmax_y = np.exp(np.asarray(st.target) - np.asarray(st.lse))
    want = np.asarray(c[0]) * softmax_y + np.asarray(c[1]) + np.asarray(c[2])
    np.testing.assert_allclose(g[np.arange(6), np.asarray(y)], want, rtol=2e-6)
    assert _core.after(jnp.asarray([1.5, -0.0]), jnp.asarray([jnp.nan, -jnp.inf])).tolist() == [1.5, -0.0]


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_every_recipe_writes_a_donated_gradient_into_the_logits(dtype):
    """Structural (the compiled HLO, no timing): for every catalogue recipe, with the logits donated,
    the compiled fwd+bwd copies no ``[B, K]`` array: every read of the logits precedes the
    gradient's write (``primitives.after``), so XLA overwrites them in place."""
    from lsbench.losses import RECIPES

    shape = (8, 1000)
    z = jax.ShapeDtypeStruct(shape, dtype)
    dims = ",".join(map(str, shape))
    copying = {}
    for name, recipe in RECIPES.items():
        second = {"dense": jax.ShapeDtypeStruct(shape, dtype), "logits": jax.ShapeDtypeStruct(shape, dtype)}.get(
            recipe.labels, jax.ShapeDtypeStruct(shape[:1], jnp.int32))
        params = {"temperature": 2.0} if name == "distillation" else {"epsilon": 0.1}
        f = jax.value_and_grad(lambda a, b, loss=recipe.loss: loss(a, b, **params))
        hlo = jax.jit(f, donate_argnums=0).lower(z, second).compile().as_text()
        entry = hlo[hlo.index("\nENTRY"):]
        lines = [line.strip() for line in entry.splitlines() if f"[{dims}]" in line and " copy(" in line]
        if lines:
            copying[name] = lines
    assert copying == {}
