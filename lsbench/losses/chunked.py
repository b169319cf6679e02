r"""Chunked row statistics for large vocabularies: temporaries O(rows·chunk), not O(rows·K).

:func:`row_stats` has the contract of :func:`lsbench.losses.primitives.row_stats`
(per-row ``(shift, lse, target, total, mean)`` relative to the row maximum, a
``jax.custom_vjp`` whose backward is ``ḡ_lse·softmax + ḡ_target·[j = y] + ḡ_row``)
but walks the class axis in blocks of ``chunk_size`` columns with the shared
:mod:`lsbench.losses.blockwise` reducer:

* forward: a ``lax.fori_loop`` over the blocks (``lax.dynamic_slice``) carrying
  the online logsumexp. The label's logit is picked out of the block that
  holds it, so every read of the logits happens inside the loop;
* backward: no blocks are needed: one elementwise pass (the fused
  primitive's closed form, :func:`lsbench.losses.primitives.gradient_from_stats`)
  writes the gradient and nothing else ``[..., K]``; the label entries come
  from the forward's ``target``. When the caller donates the logits
  (``jax.jit(..., donate_argnums=...)``) XLA writes the gradient into their
  buffer, and the extra memory of forward+backward is one block.

Numerically the statistics equal the fused path's up to float rounding
(the online rescaling reorders the sums); with ``chunk_size ≥ K`` (one block)
they are the fused path's.

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


def even_chunk_size(k: int, chunk_size: int) -> int:
    """The widest block of at most ``chunk_size`` columns that divides ``K`` and is wider than
    half of ``chunk_size``, else ``chunk_size`` (the last block then overlaps its predecessor).

    Equal blocks need no masking of the overlap: the masked (ragged) blocks were materialised as
    float32 arrays in the loop, and the forward at 1024x32000 ran 2.2x the fused path's time
    with 8192-column blocks against 1.5x with 8000-column blocks (bfloat16, interleaved).

      >>> even_chunk_size(32000, 8192), even_chunk_size(37, 8), even_chunk_size(10, 64)
      (8000, 8, 10)
    """
    if chunk_size >= k:
        return k
    # n blocks of k/n columns, chunk_size/2 < k/n <= chunk_size
    return next((k // n for n in range(-(-k // chunk_size), 2 * k // chunk_size + 1)
                 if k % n == 0 and 2 * (k // n) > chunk_size), chunk_size)


def _fwd_values(z, y, chunk_size):
    dt = P.compute_dtype(z.dtype)
    k = z.shape[-1]
    c = even_chunk_size(k, chunk_size)
    if c >= k:  # one block is the whole row: the fused statistics (XLA materialised the block)
        return P.row_stats(z, y)
    z2 = z.reshape(-1, k)
    read = lambda start, c, a: slice_columns(a, start, c).astype(dt)  # noqa: E731
    st = blockwise.forward(read, y.reshape(-1), k, c, dt, operand=z2)
    return P.RowStats(*(x.reshape(z.shape[:-1]) for x in st))


def _bwd_values(z, y, keep, m, lse, target, total, g):
    # One elementwise pass (the fused primitive's closed form): it needs no blocks, and
    # writes nothing [..., K] but the gradient itself; `after` orders every forward read
    # of z before it (see primitives.gradient_from_stats: donated logits are not copied).
    g_row = P.row_constant_cotangent(g, y, z.shape[-1])
    return P.gradient_from_stats(z, y, None, keep, P.after(m, target, total), lse, target, g.lse, g.target, g_row)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _row_stats(z, y, keep, chunk_size):
    return _fwd_values(z, y, chunk_size)


def _row_stats_fwd(z, y, keep, chunk_size):
    st = _fwd_values(z, y, chunk_size)
    return st, (z, y, keep, st.shift, st.lse, st.target, st.total)


def _row_stats_bwd(chunk_size, res, g):
    z, y, keep, m, lse, target, total = res
    return (_bwd_values(z, y, keep, m, lse, target, total, g), P.int_cotangent(y),
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
