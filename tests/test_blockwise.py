"""``lsbench.losses.blockwise``: the running-logsumexp reducer shared by chunked and linear."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsbench.losses import blockwise
from lsbench.losses import primitives as P


@pytest.mark.parametrize("chunk", [1, 3, 4, 7, 50])
def test_forward_equals_the_full_row_statistics_for_any_block_width(chunk):
    rng = np.random.default_rng(60)
    z = rng.normal(size=(6, 7)) * 4 + 1e3
    y = rng.integers(0, 7, size=6)
    with jax.enable_x64(True):
        zz, yy = jnp.asarray(z), jnp.asarray(y)
        want = P.row_stats(zz, yy)
        got = blockwise.forward(lambda start, c: jax.lax.dynamic_slice_in_dim(zz, start, c, axis=1), yy, 7, chunk,
                                jnp.float64)
        for a, b in zip(got, want):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)


def test_blocks_cover_every_column_once():
    for k, chunk in ((10, 4), (8, 4), (5, 9)):
        c, n, ragged = blockwise.blocks(k, chunk)
        seen = np.zeros(k, int)
        for i in range(n):
            first, start = (int(v) for v in blockwise.block_start(i, c, k))
            cols = np.arange(start, start + c)[np.asarray(blockwise.fresh(start, first, c))[0]]
            seen[cols] += 1
        assert (seen == 1).all() and ragged == (k % c != 0)


def test_block_gradient_is_softmax_plus_row_term_plus_label_term():
    z = jnp.asarray([[0.0, 1.0, 2.0]])
    m, lse = jnp.asarray([2.0]), jnp.log(jnp.sum(jnp.exp(z - 2.0), -1))
    dz = blockwise.block_gradient(z, 0, 0, jnp.asarray([1]), m, lse, jnp.ones(1), -jnp.ones(1), jnp.zeros(1))
    np.testing.assert_allclose(dz, jax.nn.softmax(z) - jnp.asarray([[0.0, 1.0, 0.0]]), rtol=1e-6)
    with pytest.raises(ValueError, match="chunk_size"):
        blockwise.check_chunk_size(0)
