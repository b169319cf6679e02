r"""Fused linear layer + label-smoothed cross-entropy that never builds the ``[N, K]`` logits.

:func:`linear_smoothed_cross_entropy` computes the loss of
``logits = hidden @ weight (+ bias)`` for the ``uniform`` and ``off_target``
recipes (the recipe's own closed form, parameters, defaults and reduction, as
``RECIPES[recipe].loss``)
the way Liger-Kernel's fused linear cross-entropy and Apple's Cut
Cross-Entropy do on GPUs, here in plain JAX:

* forward: the shared :mod:`lsbench.losses.blockwise` reducer (online
  logsumexp) over blocks of ``chunk_size`` classes; each block's logits
  ``hidden @ weight[:, block]`` live only inside one iteration;
* backward (``jax.custom_vjp``): a second loop recomputes each block's logits
  and its ``∂L/∂z = ḡ_lse·softmax + ḡ_target·[j = y] + ḡ_total`` (never
  stored beyond the block), accumulates ``∂/∂hidden += ∂z @ W_blockᵀ`` and
  writes ``∂/∂W_block = hiddenᵀ @ ∂z`` and ``∂/∂b_block = Σ_rows ∂z``.

Memory: besides the inputs and the gradients of the inputs (``∂/∂W`` has the
weight's size), temporaries are O(N·chunk + H·chunk), independent of K; the
unfused composition holds the ``[N, K]`` logits and their gradient. Compute:
four matmuls of ``N·H·K`` instead of three (the backward recomputes the
logits), the usual price of not storing them.

Numerics: the logits are computed in float32 (float64 for float64 inputs) from
the inputs as given -- ``bfloat16`` inputs are multiplied with a float32
result rather than rounded to ``bfloat16`` logits as ``hidden @ weight`` in
``bfloat16`` would be; gradients come back in each input's own dtype.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from lsbench.losses import blockwise, integer_recipes
from lsbench.losses import primitives as P
from lsbench.losses.chunked import slice_columns

DEFAULT_CHUNK_SIZE = 4096
RECIPES_SUPPORTED = ("uniform", "off_target")
REDUCTIONS = ("mean", "sum", "none")


def _block_logits(h, w, b, start, c, dt):
    """``h @ w[:, start:start+c] + b[start:start+c]`` in the compute dtype."""
    wc = slice_columns(w, start, c)  # bit-exact; avoids a float32 copy of a bfloat16 weight
    z = lax.dot_general(h.astype(dt), wc.astype(dt), (((1,), (0,)), ((), ())),
                        precision=lax.Precision.HIGHEST, preferred_element_type=dt)
    if b is not None:
        z = z + lax.dynamic_slice_in_dim(b, start, c, axis=0).astype(dt)[None, :]
    return z, wc


def _dtype(h, w):
    return P.compute_dtype(jnp.result_type(h.dtype, w.dtype))


def _fwd(h, w, b, y, chunk_size):
    dt = _dtype(h, w)
    return blockwise.forward(lambda start, c: _block_logits(h, w, b, start, c, dt)[0], y, w.shape[1],
                             chunk_size, dt)


@functools.partial(jax.custom_vjp, nondiff_argnums=(5,))
def _linear_stats(h, w, b, y, keep, chunk_size):
    """Per-row ``RowStats`` of ``h @ w + b`` (as :func:`lsbench.losses.primitives.row_stats`)."""
    return _fwd(h, w, b, y, chunk_size)


def _linear_stats_fwd(h, w, b, y, keep, chunk_size):
    st = _fwd(h, w, b, y, chunk_size)
    return st, (h, w, b, y, keep, st.shift, st.lse)


def _linear_stats_bwd(chunk_size, res, g):
    h, w, b, y, keep, m, lse = res
    dt = _dtype(h, w)
    k = w.shape[1]
    c, n, ragged = blockwise.blocks(k, chunk_size)
    gl, gt = g.lse.astype(dt), g.target.astype(dt)
    g_row = P.row_constant_cotangent(g, y, k).astype(dt)
    # A masked row's hidden state may hold NaN/inf: keep it out of ∂W (0·NaN is NaN).
    hc = h.astype(dt) if keep is None else jnp.where(keep[:, None], h.astype(dt), jnp.zeros((), dt))

    def body(i, carry):
        dh, dw, db = carry
        first, start = blockwise.block_start(i, c, k)
        z, wc = _block_logits(h, w, b, start, c, dt)
        dz = blockwise.block_gradient(z, start, first, y, m, lse, gl, gt, g_row, keep)
        if ragged:  # columns already handled by the previous block contribute nothing here
            dz = jnp.where(blockwise.fresh(start, first, c), dz, 0)
        dh = dh + lax.dot_general(dz, wc.astype(dt), (((1,), (1,)), ((), ())),
                                  precision=lax.Precision.HIGHEST, preferred_element_type=dt)
        dwc = lax.dot_general(hc, dz, (((0,), (0,)), ((), ())),
                              precision=lax.Precision.HIGHEST, preferred_element_type=dt)
        if ragged:  # the overlap already holds the previous block's values: add, do not overwrite
            dwc = dwc + lax.dynamic_slice_in_dim(dw, start, c, axis=1)
        dw = lax.dynamic_update_slice_in_dim(dw, dwc, start, axis=1)
        if b is not None:
            dbc = jnp.sum(dz, axis=0)
            if ragged:
                dbc = dbc + lax.dynamic_slice_in_dim(db, start, c, axis=0)
            db = lax.dynamic_update_slice_in_dim(db, dbc, start, axis=0)
        return dh, dw, db

    init = (jnp.zeros(h.shape, dt), jnp.zeros(w.shape, dt), None if b is None else jnp.zeros(b.shape, dt))
    dh, dw, db = blockwise.loop(n, body, init)
    db = None if b is None else db.astype(b.dtype)
    return (dh.astype(h.dtype), dw.astype(w.dtype), db, P.int_cotangent(y),
            None if keep is None else P.int_cotangent(keep))


_linear_stats.defvjp(_linear_stats_fwd, _linear_stats_bwd)


def linear_row_stats(hidden, weight, labels, *, bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE,
                     keep=None) -> P.RowStats:
    """:func:`lsbench.losses.primitives.row_stats` of ``hidden @ weight + bias`` without the logits.

    ``hidden``: ``[N, H]``; ``weight``: ``[H, K]``; ``labels``: ``[N]`` class
    indices (masked rows mapped to 0); ``bias``: ``[K]`` or None; ``keep``:
    optional ``[N]`` mask of the rows that get a gradient.
    """
    return _linear_stats(hidden, weight, bias, labels, keep, blockwise.check_chunk_size(chunk_size))


def _check(hidden, weight, labels, bias, recipe, reduction):
    if recipe not in RECIPES_SUPPORTED:
        raise ValueError(f"the fused linear path supports recipe in {RECIPES_SUPPORTED}, got recipe={recipe!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    hidden = P.check_logits(hidden, "hidden")
    weight = P.check_logits(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight must be a [H, K] matrix, got shape {weight.shape}")
    if hidden.shape[-1] != weight.shape[0]:
        raise ValueError(f"hidden [..., H={hidden.shape[-1]}] does not match weight [H={weight.shape[0]}, K]")
    k = weight.shape[1]
    if bias is not None:
        bias = P.check_logits(bias, "bias")
        if bias.shape != (k,):
            raise ValueError(f"bias must have shape ({k},), got {bias.shape}")
    if jnp.shape(labels) != hidden.shape[:-1]:
        raise ValueError(f"labels shape {jnp.shape(labels)} does not match hidden shape {hidden.shape}: "
                         f"expected labels of shape {hidden.shape[:-1]} (hidden without its last axis)")
    return hidden, weight, bias


def linear_smoothed_cross_entropy(
    hidden,
    weight,
    labels,
    *,
    recipe: str = "uniform",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bias=None,
    reduction: str = "mean",
    **params,
):
    """Label-smoothed cross-entropy of ``hidden @ weight (+ bias)`` without the ``[N, K]`` logits.

    Args:
      hidden: ``[..., H]`` floating activations.
      weight: ``[H, K]`` floating projection to the ``K`` classes.
      labels: ``[...]`` integer class indices in ``[0, K)`` (or ``ignore_index``).
      recipe: ``"uniform"`` (ε/K on every class) or ``"off_target"`` (ε/(K−1) on the others).
      chunk_size: classes per block (static); temporaries are O(N·chunk_size).
      bias: optional ``[K]`` bias.
      reduction: ``"mean"``: the recipe's own reduction (mean over kept rows; 0
        when none is kept), ``"sum"``, or ``"none"`` (per-row losses, masked rows 0).
      **params: the recipe's keyword parameters with its defaults (``epsilon``,
        ``ignore_index``, ``where``, uniform's ``z_loss``; not uniform's class
        ``weight``, whose name is taken by the projection).

    Returns:
      The loss in float32 (float64 for float64 inputs); equal to
      ``RECIPES[recipe].loss(hidden @ weight + bias, labels, **params)``.
    """
    p = integer_recipes.resolve(recipe, params, path="the fused linear path", exclude=("weight", "weight_mode"))
    blockwise.check_chunk_size(chunk_size)
    hidden, weight, bias = _check(hidden, weight, labels, bias, recipe, reduction)
    logits = jax.ShapeDtypeStruct(hidden.shape[:-1] + (weight.shape[1],), jnp.result_type(hidden.dtype, weight.dtype))
    prep = integer_recipes.prepare(recipe, p, logits, labels, path="the fused linear path")
    rows = _rows(hidden, weight, bias, prep.safe, prep.mask, prep.closed, recipe=recipe, chunk_size=chunk_size)
    if reduction == "mean":
        return integer_recipes.reduce(recipe, rows, prep.mask)
    if reduction == "sum":
        return jnp.sum(rows)
    return rows


@functools.partial(jax.jit, static_argnames=("recipe", "chunk_size"))
def _rows(hidden, weight, bias, labels, mask, closed, *, recipe, chunk_size):
    h2 = hidden.reshape(-1, hidden.shape[-1])
    keep = None if mask is None else mask.reshape(-1)
    st = linear_row_stats(h2, weight, labels.reshape(-1), bias=bias, chunk_size=chunk_size, keep=keep)
    return integer_recipes.rows(recipe, st, weight.shape[1], closed, None, keep).reshape(hidden.shape[:-1])
