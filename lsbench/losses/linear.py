r"""Fused linear layer + label-smoothed cross-entropy that never builds the ``[N, K]`` logits.

:func:`linear_smoothed_cross_entropy` computes the loss of
``logits = hidden @ weight (+ bias)`` for the ``uniform`` and ``off_target``
recipes (same maths, masking and ``mean`` reduction as ``RECIPES[recipe].loss``)
the way Liger-Kernel's fused linear cross-entropy and Apple's Cut
Cross-Entropy do on GPUs, here in plain JAX:

* forward: a ``lax.fori_loop`` over blocks of ``chunk_size`` classes; each
  block's logits ``hidden @ weight[:, block]`` live only inside one iteration,
  folded into a running ``(max, Σ exp(z − max), Σ z, z_y)`` per row (online
  logsumexp). When ``chunk_size`` does not divide ``K`` the last block is
  shifted to end at ``K`` and its already-counted columns are masked;
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

from lsbench.losses import _core
from lsbench.losses.chunked import slice_columns

DEFAULT_CHUNK_SIZE = 4096
RECIPES_SUPPORTED = ("uniform", "off_target")
REDUCTIONS = ("mean", "sum", "none")


def _safe(m):
    return jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))


def _blocks(k, chunk_size):
    c = min(chunk_size, k)
    return c, -(-k // c), k % c != 0


def _loop(n, body, init):
    if n == 1:
        return body(0, init)
    return lax.fori_loop(0, n, body, init)


def _block_logits(h, w, b, start, c, dt):
    """``h @ w[:, start:start+c] + b[start:start+c]`` in the compute dtype."""
    wc = slice_columns(w, start, c)  # bit-exact; avoids a float32 copy of a bfloat16 weight
    z = lax.dot_general(h.astype(dt), wc.astype(dt), (((1,), (0,)), ((), ())),
                        precision=lax.Precision.HIGHEST, preferred_element_type=dt)
    if b is not None:
        z = z + lax.dynamic_slice_in_dim(b, start, c, axis=0).astype(dt)[None, :]
    return z, wc


def _fwd(h, w, b, y, chunk_size):
    dt = _core.compute_dtype(jnp.result_type(h.dtype, w.dtype))
    n_rows = h.shape[0]
    k = w.shape[1]
    c, n, ragged = _blocks(k, chunk_size)
    iota = lax.broadcasted_iota(jnp.int32, (1, c), 1)

    def body(i, carry):
        m_run, s, tot, tgt = carry
        first = i * c
        start = jnp.minimum(first, k - c)
        z, _ = _block_logits(h, w, b, start, c, dt)
        if ragged:
            valid = iota + start >= first
            zmax, zsum = jnp.where(valid, z, -jnp.inf), jnp.where(valid, z, 0)
        else:
            zmax = zsum = z
        m_new = jnp.maximum(m_run, jnp.max(zmax, axis=-1))
        base = _safe(m_new)
        scale = jnp.where(s > 0, jnp.exp(_safe(m_run) - base), jnp.zeros_like(s))
        s = s * scale + jnp.sum(jnp.exp(zmax - base[:, None]), axis=-1)
        tot = tot + jnp.sum(zsum, axis=-1)
        local = y - start
        picked = jnp.take_along_axis(z, jnp.clip(local, 0, c - 1)[:, None], axis=-1)[:, 0]
        tgt = jnp.where((y >= first) & (local < c), picked, tgt)
        return m_new, s, tot, tgt

    init = (jnp.full((n_rows,), -jnp.inf, dt), jnp.zeros((n_rows,), dt), jnp.zeros((n_rows,), dt),
            jnp.full((n_rows,), jnp.nan, dt))
    m_run, s, tot, tgt = _loop(n, body, init)
    m = _safe(m_run)
    return m, jnp.log(s), tgt - m, tot - k * m


@functools.partial(jax.custom_vjp, nondiff_argnums=(4,))
def _linear_stats(h, w, b, y, chunk_size):
    """Per-row ``(shift, lse, target, total)`` of ``h @ w + b`` (as ``_core.row_stats``)."""
    return _core.RowStats(*_fwd(h, w, b, y, chunk_size))


def _linear_stats_fwd(h, w, b, y, chunk_size):
    m, lse, target, total = _fwd(h, w, b, y, chunk_size)
    return _core.RowStats(m, lse, target, total), (h, w, b, y, m, lse)


def _linear_stats_bwd(chunk_size, res, g):
    h, w, b, y, m, lse = res
    dt = _core.compute_dtype(jnp.result_type(h.dtype, w.dtype))
    k = w.shape[1]
    c, n, ragged = _blocks(k, chunk_size)
    iota = lax.broadcasted_iota(jnp.int32, (1, c), 1)
    cst = (m + lse)[:, None]
    gl = g.lse.astype(dt)[:, None]
    gt = g.target.astype(dt)
    gs = g.total.astype(dt)[:, None]
    hc = h.astype(dt)

    def body(i, carry):
        dh, dw, db = carry
        first = i * c
        start = jnp.minimum(first, k - c)
        z, wc = _block_logits(h, w, b, start, c, dt)
        dz = gl * jnp.exp(z - cst) + gs
        local = y - start
        idx = jnp.where((y >= first) & (local < c), local, c)
        dz = jax.vmap(lambda row, j, v: row.at[j].add(v, mode="drop"))(dz, idx, gt)
        if ragged:  # columns already handled by the previous block contribute nothing here
            dz = jnp.where(iota + start >= first, dz, 0)
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
    dh, dw, db = _loop(n, body, init)
    db = None if b is None else db.astype(b.dtype)
    return dh.astype(h.dtype), dw.astype(w.dtype), db, _core._int_cotangent(y)


_linear_stats.defvjp(_linear_stats_fwd, _linear_stats_bwd)


def linear_row_stats(hidden, weight, labels, *, bias=None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> _core.RowStats:
    """:func:`lsbench.losses._core.row_stats` of ``hidden @ weight + bias`` without the logits.

    ``hidden``: ``[N, H]``; ``weight``: ``[H, K]``; ``labels``: ``[N]`` valid
    class indices; ``bias``: ``[K]`` or None.
    """
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return _linear_stats(hidden, weight, bias, labels, chunk_size)


def _check(hidden, weight, labels, bias, epsilon, recipe, reduction, ignore_index):
    if recipe not in RECIPES_SUPPORTED:
        raise ValueError(f"recipe must be one of {RECIPES_SUPPORTED}, got {recipe!r}")
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    _core.check_epsilon(epsilon)
    hidden = _core.check_logits(hidden, "hidden")
    weight = _core.check_logits(weight, "weight")
    if weight.ndim != 2:
        raise ValueError(f"weight must be a [H, K] matrix, got shape {weight.shape}")
    if hidden.shape[-1] != weight.shape[0]:
        raise ValueError(f"hidden [..., H={hidden.shape[-1]}] does not match weight [H={weight.shape[0]}, K]")
    k = weight.shape[1]
    if bias is not None:
        bias = _core.check_logits(bias, "bias")
        if bias.shape != (k,):
            raise ValueError(f"bias must have shape ({k},), got {bias.shape}")
    if recipe == "off_target":
        _core.check_num_classes(k, 2, recipe)
    # check_labels wants logits-shaped input; a zero-size stand-in carries the shape.
    stand_in = jax.ShapeDtypeStruct(hidden.shape[:-1] + (k,), jnp.float32)
    labels = _core.check_labels(labels, stand_in, ignore_index=ignore_index)
    return hidden, weight, labels, bias


def linear_smoothed_cross_entropy(
    hidden,
    weight,
    labels,
    *,
    epsilon=0.1,
    recipe: str = "uniform",
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    bias=None,
    ignore_index=None,
    reduction: str = "mean",
):
    """Label-smoothed cross-entropy of ``hidden @ weight (+ bias)`` without the ``[N, K]`` logits.

    Args:
      hidden: ``[..., H]`` floating activations.
      weight: ``[H, K]`` floating projection to the ``K`` classes.
      labels: ``[...]`` integer class indices in ``[0, K)`` (or ``ignore_index``).
      epsilon: smoothing ε in ``[0, 1]``.
      recipe: ``"uniform"`` (ε/K on every class) or ``"off_target"`` (ε/(K−1) on the others).
      chunk_size: classes per block (static); temporaries are O(N·chunk_size).
      bias: optional ``[K]`` bias.
      ignore_index: label value whose rows are excluded (zero loss, zero gradient).
      reduction: ``"mean"`` over kept rows (0 when none is kept), ``"sum"``, or
        ``"none"`` (per-row losses, ignored rows 0).

    Returns:
      The loss in float32 (float64 for float64 inputs); equal to
      ``RECIPES[recipe].loss(hidden @ weight + bias, labels, epsilon=ε, ignore_index=…)``.
    """
    hidden, weight, labels, bias = _check(hidden, weight, labels, bias, epsilon, recipe, reduction, ignore_index)
    return _loss(hidden, weight, labels, bias, epsilon, ignore_index, recipe=recipe, chunk_size=chunk_size,
                 reduction=reduction)


@functools.partial(jax.jit, static_argnames=("ignore_index", "recipe", "chunk_size", "reduction"))
def _loss(hidden, weight, labels, bias, epsilon, ignore_index, *, recipe, chunk_size, reduction):
    batch = hidden.shape[:-1]
    k = weight.shape[1]
    h2 = hidden.reshape(-1, hidden.shape[-1])
    y2 = labels.reshape(-1)
    mask = None if ignore_index is None else y2 != ignore_index
    safe = y2 if mask is None else jnp.where(mask, y2, 0)
    st = linear_row_stats(h2, weight, safe, bias=bias, chunk_size=chunk_size)
    eps = jnp.asarray(epsilon, st.lse.dtype)
    if recipe == "uniform":
        rows = st.lse - (1 - eps) * st.target - (eps / k) * st.total
    else:
        rows = st.lse - (1 - eps) * st.target - eps / (k - 1) * (st.total - st.target)
    if reduction == "mean":
        return _core.masked_mean(rows, mask)
    rows = _core.apply_mask(rows, mask)
    if reduction == "sum":
        return jnp.sum(rows)
    return rows.reshape(batch)
