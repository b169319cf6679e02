"""``lsbench.losses.chunked``: the blockwise row statistics equal the fused ones."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsbench.losses import RECIPES, chunked
from lsbench.losses import primitives as _core


def _data(rng, shape, k, scale=4.0, dtype=np.float64):
    z = (rng.normal(size=shape + (k,)) * scale).astype(dtype)
    y = rng.integers(0, k, size=shape).astype(np.int32)
    return z, y


@pytest.mark.parametrize("shape,k,chunk", [((5,), 37, 8), ((2, 3), 40, 8), ((4,), 10, 64), ((3,), 17, 17),
                                           ((3,), 16, 1), ((6,), 33, 32)])
def test_row_stats_and_vjp_equal_the_fused_primitive(shape, k, chunk):
    rng = np.random.default_rng(k * 31 + chunk)
    z, y = _data(rng, shape, k)
    with jax.enable_x64(True):
        zz, yy = jnp.asarray(z), jnp.asarray(y)
        want, got = _core.row_stats(zz, yy), chunked.row_stats(zz, yy, chunk)
        for a, b, name in zip(want, got, want._fields):
            np.testing.assert_allclose(b, a, rtol=1e-13, atol=1e-13, err_msg=name)
        c = [jnp.asarray(rng.normal(size=shape)) for _ in range(3)]

        def f(rs):
            def g(a):
                s = rs(a)
                return jnp.sum(c[0] * s.lse + c[1] * s.target + c[2] * s.total)
            return g

        gw = jax.grad(f(lambda a: _core.row_stats(a, yy)))(zz)
        gg = jax.grad(f(lambda a: chunked.row_stats(a, yy, chunk)))(zz)
        np.testing.assert_allclose(gg, gw, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("name,dtype,rtol", [(n, np.float64, 1e-12) for n in chunked.SUPPORTED]
                         + [(n, np.float32, 1e-5) for n in ("uniform", "off_target")])
def test_loss_and_gradient_equal_the_recipe_with_masked_rows(name, dtype, rtol):
    rng = np.random.default_rng(7)
    z, y = _data(rng, (4, 3), 45, dtype=dtype)
    keep = rng.random((4, 3)) > 0.3
    kw = {"epsilon": 0.2, "where": jnp.asarray(keep)}
    with jax.enable_x64(dtype == np.float64):
        zz, yy = jnp.asarray(z), jnp.asarray(y)
        want = RECIPES[name].loss(zz, yy, **kw)
        got = chunked.loss(zz, yy, recipe=name, chunk_size=16, **kw)
        np.testing.assert_allclose(got, want, rtol=rtol)
        gw = jax.grad(lambda a: RECIPES[name].loss(a, yy, **kw))(zz)
        gg = jax.grad(lambda a: chunked.loss(a, yy, recipe=name, chunk_size=16, **kw))(zz)
        np.testing.assert_allclose(gg, gw, rtol=rtol * 10, atol=rtol * 1e-3)
        assert np.all(np.asarray(gg)[~keep] == 0)


def test_uniform_extras_ignore_index_z_loss_weight_and_fastreid_adaptive():
    rng = np.random.default_rng(3)
    z, y = _data(rng, (9,), 30)
    y[[2, 5]] = -100
    with jax.enable_x64(True):
        zz, yy = jnp.asarray(z), jnp.asarray(y)
        w = jnp.asarray(rng.random(30) + 0.5)
        for kw in ({"ignore_index": -100, "z_loss": 1e-3}, {"ignore_index": -100, "weight": w}):
            want = RECIPES["uniform"].loss(zz, yy, **kw)
            np.testing.assert_allclose(chunked.loss(zz, yy, recipe="uniform", chunk_size=7, **kw), want, rtol=1e-12)
            gw = jax.grad(lambda a: RECIPES["uniform"].loss(a, yy, **kw))(zz)
            gg = jax.grad(lambda a: chunked.loss(a, yy, recipe="uniform", chunk_size=7, **kw))(zz)
            np.testing.assert_allclose(gg, gw, rtol=1e-11, atol=1e-15)
        yv = jnp.asarray(np.abs(y) % 30)
        np.testing.assert_allclose(chunked.loss(zz, yv, recipe="fastreid", chunk_size=7, epsilon=-1.0),
                                   RECIPES["fastreid"].loss(zz, yv, epsilon=-1.0), rtol=1e-12)


def test_bfloat16_logits_compute_in_float32_and_keep_their_dtype_in_the_gradient():
    rng = np.random.default_rng(1)
    z, y = _data(rng, (8,), 50, dtype=np.float32)
    zb = jnp.asarray(z, jnp.bfloat16)
    yy = jnp.asarray(y)
    got = chunked.loss(zb, yy, recipe="uniform", chunk_size=16)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, RECIPES["uniform"].loss(zb, yy), rtol=1e-6)
    g = jax.grad(lambda a: chunked.loss(a, yy, recipe="uniform", chunk_size=16))(zb)
    gw = jax.grad(lambda a: RECIPES["uniform"].loss(a, yy))(zb)
    assert g.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(g, np.float32), np.asarray(gw, np.float32), rtol=1e-2, atol=1e-5)


def test_extreme_rows_match_the_fused_path():
    z = jnp.asarray([[-jnp.inf] * 5, [1e4, -1e4, 0.0, 3.0, 1e4], [0.0, 1.0, 2.0, 3.0, -jnp.inf]])
    y = jnp.asarray([0, 4, 2])
    want, got = _core.row_stats(z, y), chunked.row_stats(z, y, 2)
    for a, b in zip(want, got):
        np.testing.assert_allclose(np.asarray(b), np.asarray(a), rtol=1e-6)
    assert np.isfinite(np.asarray(got.shift)).all()


def test_jit_vmap_and_errors():
    rng = np.random.default_rng(0)
    z, y = _data(rng, (3, 4), 20, dtype=np.float32)
    zz, yy = jnp.asarray(z), jnp.asarray(y)
    direct = chunked.per_example(zz, yy, recipe="off_target", chunk_size=6)
    np.testing.assert_allclose(direct, RECIPES["off_target"].per_example(zz, yy), rtol=1e-6)
    mapped = jax.vmap(lambda a, b: chunked.per_example(a, b, recipe="off_target", chunk_size=6))(zz, yy)
    np.testing.assert_allclose(mapped, direct, rtol=1e-6)
    jitted = jax.jit(lambda a, b: chunked.loss(a, b, recipe="uniform", chunk_size=6))(zz, yy)
    np.testing.assert_allclose(jitted, RECIPES["uniform"].loss(zz, yy), rtol=1e-6)
    with pytest.raises(ValueError, match="integer-label recipes"):
        chunked.loss(zz, yy, recipe="tf_onehot")
    with pytest.raises(ValueError, match="chunk_size"):
        chunked.loss(zz, yy, recipe="uniform", chunk_size=0)
    with pytest.raises(ValueError, match="weight_mode"):
        chunked.loss(zz, yy, recipe="uniform", weight=jnp.ones(20), weight_mode="torch")
    with pytest.raises(TypeError, match="unexpected"):
        chunked.loss(zz, yy, recipe="off_target", alpha=0.3)
    with pytest.raises(ValueError, match="labels must lie"):
        chunked.loss(zz, jnp.full((3, 4), 20), recipe="uniform")
    with pytest.raises(ValueError, match="epsilon"):
        chunked.loss(zz, yy, recipe="uniform", epsilon=1.5)


def _compiled_memory(k, chunk, donate):
    x = jax.ShapeDtypeStruct((64, k), jnp.float32)
    y = jax.ShapeDtypeStruct((64,), jnp.int32)
    f = jax.value_and_grad(lambda a, b: chunked.loss(a, b, recipe="uniform", chunk_size=chunk))
    return jax.jit(f, donate_argnums=(0,) if donate else ()).lower(x, y).compile().memory_analysis()


def test_scratch_memory_is_per_block_and_a_donated_gradient_is_written_in_place():
    """Compiled memory analysis (no timing): scratch O(N·chunk) for any K, ragged or not."""
    chunk = 256
    block = 64 * chunk * 4
    for k in (4096, 16000):
        ma = _compiled_memory(k, chunk, donate=True)
        assert ma.alias_size_in_bytes == 64 * k * 4  # the gradient overwrote the logits
        assert ma.temp_size_in_bytes <= 4 * block, (k, ma.temp_size_in_bytes)
        plain = _compiled_memory(k, chunk, donate=False)
        assert plain.temp_size_in_bytes <= 4 * block


@pytest.mark.parametrize("k", [32769 + 2, 40000])
def test_long_rows_in_both_paths_agree_with_logsumexp(k):
    """Rows above 32768 classes take ``_core``'s two-stage exp-sum; the values do not change."""
    rng = np.random.default_rng(k)
    z, y = _data(rng, (2,), k)
    with jax.enable_x64(True):
        zz, yy = jnp.asarray(z), jnp.asarray(y)
        want = jax.nn.logsumexp(zz, -1)
        for st in (_core.row_stats(zz, yy), chunked.row_stats(zz, yy, 8192)):
            np.testing.assert_allclose(st.lse + st.shift, want, rtol=1e-13)
    zb = jnp.asarray(z, jnp.bfloat16)
    st = _core.row_stats(zb, jnp.asarray(y))
    np.testing.assert_allclose(st.lse + st.shift, jax.nn.logsumexp(zb.astype(jnp.float32), -1), rtol=1e-6)


def test_even_chunk_size_divides_k_when_a_wide_enough_divisor_exists():
    assert chunked.even_chunk_size(3, 2) == 2  # 1 is not wider than half: the ragged path stays reachable
    assert chunked.even_chunk_size(32000, 8192) == 8000
    assert chunked.even_chunk_size(128000, 8192) == 8000
    assert chunked.even_chunk_size(37, 8) == 8  # prime: the last block overlaps
    assert chunked.even_chunk_size(10, 64) == 10
    for k, c in [(32000, 8192), (50257, 8192), (1000, 300), (4096, 256)]:
        w = chunked.even_chunk_size(k, c)
        assert w <= c and (k % w == 0 and 2 * w > c or w == c)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
@pytest.mark.parametrize("k", [4096, 300])  # 300: one block, the fused statistics
def test_16_bit_logits_are_never_copied_whole_and_donated_ones_get_the_gradient(dtype, k):
    """Compiled memory (no timing): the forward's scratch is one float32 block (the uint16 view
    that XLA:CPU needs for a 16-bit dynamic slice stays fused into each block's slice), and a
    donated gradient is written into the logits with no copy of them."""
    from test_primitives import logits_parameter_copies

    rows, chunk = 64, 512
    x, y = jax.ShapeDtypeStruct((rows, k), dtype), jax.ShapeDtypeStruct((rows,), jnp.int32)
    f = lambda a, b: chunked.loss(a, b, recipe="uniform", chunk_size=chunk)  # noqa: E731
    block = rows * chunk * 4
    fwd = jax.jit(f).lower(x, y).compile()
    assert fwd.memory_analysis().temp_size_in_bytes <= block + 64 * rows * 4
    donated = jax.jit(jax.value_and_grad(f), donate_argnums=0).lower(x, y).compile()
    assert donated.memory_analysis().alias_size_in_bytes == x.size * jnp.dtype(dtype).itemsize
    assert donated.memory_analysis().temp_size_in_bytes <= block + 64 * rows * 4
    assert logits_parameter_copies(donated.as_text(), x.shape) == []
