r"""Chunked row statistics for large vocabularies: temporaries O(rows·chunk), not O(rows·K).

:func:`row_stats` has the contract of :func:`lsbench.losses.primitives.row_stats`
(per-row ``(shift, lse, target, total, mean)`` relative to the row maximum, a
``jax.custom_vjp`` whose backward is ``ḡ_lse·softmax + ḡ_target·[j = y] + ḡ_row``)
but walks the class axis in blocks of ``chunk_size`` columns with the shared
:mod:`lsbench.losses.blockwise` reducer:

* forward: a ``lax.fori_loop`` over the blocks (``lax.dynamic_slice``) carrying
  the online logsumexp. The label's logit is picked out of the block that
  holds it, so every read of the logits happens inside the loop;
* backward: a second loop recomputes each block's softmax and writes the
  gradient block into the output with ``lax.dynamic_update_slice``. The loop
  carries the logits themselves as the output buffer and overwrites each block
  after reading it, so when the caller donates the logits
  (``jax.jit(..., donate_argnums=...)``) XLA writes the gradient in place and
  the extra memory of forward+backward is O(rows·chunk) (without donation XLA
  copies the logits once, which is the gradient's own buffer).

Numerically the statistics equal the fused path's up to float rounding
(the online rescaling reorders the sums).

:func:`loss` and :func:`per_example` run the integer-label recipes on top of
it, with the recipe's own closed form, parameters, defaults and reduction::

    from lsbench.losses import chunked
    chunked.loss(logits, labels, recipe="uniform", chunk_size=8192, epsilon=0.1)

Supported: ``uniform`` (every parameter but ``weight_mode="torch"``, which
needs the class-weighted row sum), ``off_target``, ``fastai``,
``speech_transformer`` and ``fastreid``. ``tf_onehot`` (dense labels) and
``distillation`` (teacher logits) raise ``ValueError``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from lsbench.losses import blockwise, integer_recipes
from lsbench.losses import primitives as P

DEFAULT_CHUNK_SIZE = 8192
SUPPORTED = integer_recipes.SUPPORTED


def _bits(dtype):
    """The unsigned integer dtype of a 16-bit float dtype, else None."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.uint16) if jnp.issubdtype(dtype, jnp.floating) and dtype.itemsize == 2 else None


def slice_columns(a, start, width):
    """``a[:, start:start+width]`` (dynamic start), bit-exact.

    XLA:CPU has no 16-bit float dynamic slice: it converts the *whole* operand
    to float32 (hoisted out of the loop: a 2x-sized copy of a bfloat16 array)
    and slices that. Slicing the bit pattern as ``uint16`` avoids the copy.
    """
    bits = _bits(a.dtype)
    if bits is None:
        return lax.dynamic_slice_in_dim(a, start, width, axis=1)
    view = lax.bitcast_convert_type(a, bits)
    return lax.bitcast_convert_type(lax.dynamic_slice_in_dim(view, start, width, axis=1), a.dtype)


def _fwd_values(z, y, chunk_size):
    dt = P.compute_dtype(z.dtype)
    k = z.shape[-1]
    z2 = z.reshape(-1, k)
    st = blockwise.forward(lambda start, c: slice_columns(z2, start, c).astype(dt), y.reshape(-1), k,
                           chunk_size, dt)
    return P.RowStats(*(x.reshape(z.shape[:-1]) for x in st))


def _bwd_values(z, y, keep, m, lse, g, chunk_size):
    dt = P.compute_dtype(z.dtype)
    k = z.shape[-1]
    z2 = z.reshape(-1, k)
    y2 = y.reshape(-1)
    flat = lambda a: a.reshape(-1).astype(dt)  # noqa: E731
    m2, lse2, gl, gt = flat(m), flat(lse), flat(g.lse), flat(g.target)
    g_row = flat(P.row_constant_cotangent(g, y, k))
    keep2 = None if keep is None else keep.reshape(-1)
    c, n, ragged = blockwise.blocks(k, chunk_size)
    bits = _bits(z.dtype)

    def body(i, out):
        first, start = blockwise.block_start(i, c, k)
        # Columns >= first still hold the logits: they are overwritten only below.
        zc = lax.dynamic_slice_in_dim(out, start, c, axis=1)
        if bits is not None:  # 16-bit floats travel as their bit patterns (see slice_columns)
            zc = lax.bitcast_convert_type(zc, z.dtype)
        gz = blockwise.block_gradient(zc.astype(dt), start, first, y2, m2, lse2, gl, gt, g_row, keep2)
        gz = gz.astype(z.dtype)
        if ragged:  # keep the overlap's gradient, written by the previous block
            gz = jnp.where(blockwise.fresh(start, first, c), gz, zc)
        if bits is not None:
            gz = lax.bitcast_convert_type(gz, bits)
        return lax.dynamic_update_slice_in_dim(out, gz, start, axis=1)

    # The loop carries the logits as its output buffer: with donated logits XLA
    # writes the gradient in place.
    out = blockwise.loop(n, body, z2 if bits is None else lax.bitcast_convert_type(z2, bits))
    if bits is not None:
        out = lax.bitcast_convert_type(out, z.dtype)
    return out.reshape(z.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _row_stats(z, y, keep, chunk_size):
    return _fwd_values(z, y, chunk_size)


def _row_stats_fwd(z, y, keep, chunk_size):
    st = _fwd_values(z, y, chunk_size)
    return st, (z, y, keep, st.shift, st.lse)


def _row_stats_bwd(chunk_size, res, g):
    z, y, keep, m, lse = res
    return (_bwd_values(z, y, keep, m, lse, g, chunk_size), P.int_cotangent(y),
            None if keep is None else P.int_cotangent(keep))


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


def row_stats(logits, labels, chunk_size: int = DEFAULT_CHUNK_SIZE, *, keep=None) -> P.RowStats:
    """Per-row ``(shift, lse, target, total, mean)`` computed ``chunk_size`` classes at a time.

    Same contract as :func:`lsbench.losses.primitives.row_stats` (without the
    class ``weight``). ``chunk_size`` is static (one compile per value);
    values ``≥ K`` give a single block.
    """
    return _row_stats(logits, labels, keep, blockwise.check_chunk_size(chunk_size))


@functools.partial(jax.jit, static_argnames=("recipe", "chunk_size"))
def _rows(logits, safe, mask, label_weight, closed, *, recipe, chunk_size):
    st = row_stats(logits, safe, chunk_size, keep=mask)
    return integer_recipes.rows(recipe, st, logits.shape[-1], closed, label_weight, mask)


def _run(logits, labels, recipe, chunk_size, params):
    p = integer_recipes.resolve(recipe, params, path="chunked")
    blockwise.check_chunk_size(chunk_size)
    logits = P.check_logits(logits)
    prep = integer_recipes.prepare(recipe, p, logits, labels, path="chunked")
    rows = _rows(logits, prep.safe, prep.mask, prep.label_weight, prep.closed, recipe=recipe, chunk_size=chunk_size)
    return rows, prep


def per_example(logits, labels, *, recipe: str = "uniform", chunk_size: int = DEFAULT_CHUNK_SIZE, **params):
    """``RECIPES[recipe].per_example(logits, labels, **params)`` on chunked statistics (masked rows are 0)."""
    return _run(logits, labels, recipe, chunk_size, params)[0]


def loss(logits, labels, *, recipe: str = "uniform", chunk_size: int = DEFAULT_CHUNK_SIZE, **params):
    """``RECIPES[recipe].loss(logits, labels, **params)`` on chunked statistics, with the recipe's own reduction."""
    rows, prep = _run(logits, labels, recipe, chunk_size, params)
    return integer_recipes.reduce(recipe, rows, prep.mask, prep.label_weight)
