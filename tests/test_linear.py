"""``lsbench.losses.linear``: the fused linear + label smoothing equals the unfused composition."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsbench.losses import RECIPES, chunked
from lsbench.losses.linear import linear_row_stats, linear_smoothed_cross_entropy as lsce


def _data(rng, n, h, k, dtype):
    hid = rng.normal(size=(n, h)).astype(dtype)
    w = (rng.normal(size=(h, k)) / np.sqrt(h)).astype(dtype) * 3
    b = rng.normal(size=(k,)).astype(dtype)
    y = rng.integers(0, k, size=n).astype(np.int32)
    return hid, w, b, y


def _unfused(recipe, y, eps, ignore_index=None):
    def f(h, w, b):
        return RECIPES[recipe].loss(h @ w + b, y, epsilon=eps, ignore_index=ignore_index)
    return f


@pytest.mark.parametrize("recipe", ["uniform", "off_target"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-12), (np.float32, 1e-5)])
def test_loss_and_gradients_equal_the_unfused_composition(recipe, dtype, rtol):
    """K = 37 is not a multiple of the 8-class blocks; two rows are ignored."""
    rng = np.random.default_rng(0)
    hid, w, b, y = _data(rng, 7, 5, 37, dtype)
    y[[1, 4]] = -100
    with jax.enable_x64(dtype == np.float64):
        args = tuple(jnp.asarray(a) for a in (hid, w, b))
        yy = jnp.asarray(y)

        def fused(h, w, b):
            return lsce(h, w, yy, bias=b, recipe=recipe, chunk_size=8, ignore_index=-100, epsilon=0.2)

        unfused = _unfused(recipe, yy, 0.2, -100)
        np.testing.assert_allclose(fused(*args), unfused(*args), rtol=rtol)
        gf = jax.grad(fused, (0, 1, 2))(*args)
        gu = jax.grad(unfused, (0, 1, 2))(*args)
        for a, e, name in zip(gf, gu, ("hidden", "weight", "bias")):
            assert a.dtype == e.dtype
            np.testing.assert_allclose(a, e, rtol=rtol * 10, atol=rtol * 1e-2, err_msg=name)
        assert np.all(np.asarray(gf[0])[[1, 4]] == 0)  # ignored rows: zero gradient


def test_reductions_leading_dims_no_bias_and_row_stats():
    rng = np.random.default_rng(1)
    hid, w, _, y = _data(rng, 12, 4, 20, np.float64)
    with jax.enable_x64(True):
        h3 = jnp.asarray(hid).reshape(3, 4, 4)
        y3 = jnp.asarray(y).reshape(3, 4)
        ww = jnp.asarray(w)
        z = h3 @ ww
        rows = lsce(h3, ww, y3, chunk_size=6, reduction="none")
        assert rows.shape == (3, 4)
        np.testing.assert_allclose(rows, RECIPES["uniform"].per_example(z, y3), rtol=1e-12)
        np.testing.assert_allclose(lsce(h3, ww, y3, chunk_size=6, reduction="sum"), rows.sum(), rtol=1e-12)
        np.testing.assert_allclose(lsce(h3, ww, y3, chunk_size=64), RECIPES["uniform"].loss(z, y3), rtol=1e-12)
        st = linear_row_stats(jnp.asarray(hid), ww, jnp.asarray(y), chunk_size=6)
        zz = jnp.asarray(hid) @ ww
        np.testing.assert_allclose(st.lse + st.shift, jax.nn.logsumexp(zz, -1), rtol=1e-12)
        np.testing.assert_allclose(st.total + 20 * st.shift, zz.sum(-1), rtol=1e-10)


def test_bfloat16_inputs_compute_in_float32_and_return_bfloat16_gradients():
    rng = np.random.default_rng(2)
    hid, w, b, y = _data(rng, 16, 8, 50, np.float32)
    hb, wb, bb = (jnp.asarray(a, jnp.bfloat16) for a in (hid, w, b))
    yy = jnp.asarray(y)

    def fused(h, w, b):
        return lsce(h, w, yy, bias=b, chunk_size=16)

    def reference(h, w, b):  # the same bf16 values, multiplied in float32
        f32 = lambda a: a.astype(jnp.float32)  # noqa: E731
        return RECIPES["uniform"].loss(f32(h) @ f32(w) + f32(b), yy)

    got = fused(hb, wb, bb)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, reference(hb, wb, bb), rtol=1e-5)
    gf = jax.grad(fused, (0, 1, 2))(hb, wb, bb)
    gr = jax.grad(reference, (0, 1, 2))(hb, wb, bb)
    for a, e in zip(gf, gr):
        assert a.dtype == jnp.bfloat16
        np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(e, np.float32), rtol=2e-2, atol=2e-4)
    # and close to the plain bf16 composition a user would write
    plain = RECIPES["uniform"].loss(hb @ wb + bb, yy)
    np.testing.assert_allclose(got, plain, rtol=2e-2)


def test_all_rows_ignored_gives_zero_and_zero_gradients():
    rng = np.random.default_rng(3)
    hid, w, _, _ = _data(rng, 4, 3, 10, np.float32)
    y = jnp.full((4,), -1)
    f = lambda h, w: lsce(h, w, y, ignore_index=-1, chunk_size=4)  # noqa: E731
    assert float(f(jnp.asarray(hid), jnp.asarray(w))) == 0.0
    gh, gw = jax.grad(f, (0, 1))(jnp.asarray(hid), jnp.asarray(w))
    assert not np.any(np.asarray(gh)) and not np.any(np.asarray(gw))


def test_bad_input_raises():
    h, w, y = jnp.ones((2, 3)), jnp.ones((3, 5)), jnp.asarray([0, 1])
    with pytest.raises(ValueError, match="recipe"):
        lsce(h, w, y, recipe="fastai")
    with pytest.raises(ValueError, match="reduction"):
        lsce(h, w, y, reduction="max")
    with pytest.raises(ValueError, match="does not match"):
        lsce(h, jnp.ones((4, 5)), y)
    with pytest.raises(ValueError, match="labels must lie"):
        lsce(h, w, jnp.asarray([0, 5]))
    with pytest.raises(ValueError, match="bias"):
        lsce(h, w, y, bias=jnp.ones(4))
    with pytest.raises(ValueError, match="chunk_size"):
        lsce(h, w, y, chunk_size=0)
    with pytest.raises(ValueError, match="epsilon"):
        lsce(h, w, y, epsilon=-0.1)


def test_scratch_memory_does_not_grow_with_the_number_of_classes():
    """Compiled memory analysis (no timing): temporaries depend on the block, not on K."""
    n, h, chunk = 64, 32, 256

    def temp(k):
        args = (jax.ShapeDtypeStruct((n, h), jnp.float32), jax.ShapeDtypeStruct((h, k), jnp.float32),
                jax.ShapeDtypeStruct((n,), jnp.int32))
        f = jax.value_and_grad(lambda a, w, y: lsce(a, w, y, chunk_size=chunk), argnums=(0, 1))
        return jax.jit(f).lower(*args).compile().memory_analysis().temp_size_in_bytes

    small, big = temp(4096), temp(32000)
    logits_big = n * 32000 * 4
    assert big <= 1.1 * small + 4096, (small, big)
    assert big < 0.25 * logits_big


def test_a_traced_ignore_index_works_and_label_errors_name_hidden():
    """Issue 12 defect 6: a traced ignore_index gave "Non-hashable static arguments"."""
    rng = np.random.default_rng(50)
    h = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    y = jnp.asarray([0, -1, 2, 3])
    got = jax.jit(lambda ii: lsce(h, w, y, ignore_index=ii))(-1)
    np.testing.assert_allclose(got, RECIPES["uniform"].loss(h @ w, y, ignore_index=-1), rtol=1e-6)
    with pytest.raises(ValueError, match=r"labels shape \(3,\) does not match hidden shape \(4, 3\)"):
        lsce(h, w, y[:3])
    with pytest.raises(TypeError, match="unexpected"):
        lsce(h, w, y, alpha=0.2)


def test_bad_labels_give_the_same_nan_rows_as_chunked_and_the_plain_recipe():
    """Issue 12 defect 7: chunked wrapped label −1 on purpose, linear gave NaN; all paths agree now."""
    rng = np.random.default_rng(51)
    h = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(3, 5)), jnp.float32)
    y = jnp.asarray([0, -1, 5, 3])
    lin = jax.jit(lambda b: lsce(h, w, b, reduction="none", chunk_size=2))(y)
    ch = jax.jit(lambda b: chunked.per_example(h @ w, b, chunk_size=2))(y)
    plain = jax.jit(lambda b: RECIPES["uniform"].per_example(h @ w, b))(y)
    for rows in (lin, ch, plain):
        np.testing.assert_array_equal(np.isnan(np.asarray(rows)), [False, True, True, False])
    np.testing.assert_allclose(lin[jnp.asarray([0, 3])], plain[jnp.asarray([0, 3])], rtol=1e-6)
