r"""Chunked row statistics for large vocabularies: temporaries O(rows·chunk), not O(rows·K).

:func:`row_stats` has the contract of :func:`lsbench.losses._core.row_stats`
(per-row ``(shift, lse, target, total)`` relative to the row maximum, a
``jax.custom_vjp`` whose backward is ``ḡ_lse·softmax + ḡ_target·[j = y] + ḡ_total``)
but walks the class axis in blocks of ``chunk_size`` columns:

* forward: a ``lax.fori_loop`` over the full blocks (``lax.dynamic_slice``)
  carrying a running ``(max, Σ exp(z − max), Σ z, z_y)`` -- the online
  logsumexp: when a block raises the running max ``m → m'`` the running sum is
  rescaled by ``exp(m − m')``. The ``K mod chunk_size`` remaining columns are a
  static tail block, so no column is read twice and nothing is padded. The
  label's logit is picked out of the block that holds it, so every read of the
  logits happens inside the loops;
* backward: a second loop recomputes each block's ``exp(z − lse)`` and writes the
  gradient block into the output with ``lax.dynamic_update_slice``. The loop
  carries the logits themselves as the output buffer and overwrites each block
  after reading it, so when the caller donates the logits
  (``jax.jit(..., donate_argnums=...)``) XLA writes the gradient in place and
  the extra memory of forward+backward is O(rows·chunk) (without donation XLA
  copies the logits once, which is the gradient's own buffer).

Numerically the statistics equal the fused path's up to float rounding
(the online rescaling reorders the sums).

:func:`loss` and :func:`per_example` run the integer-label recipes on top of
it::

    from lsbench.losses import chunked
    chunked.loss("uniform", logits, labels, chunk_size=8192, epsilon=0.1)

Supported recipes and parameters (the same maths and reductions as
``RECIPES[name]``): ``uniform`` (``epsilon``, ``ignore_index``, ``where``,
``z_loss``, ``weight`` with ``weight_mode="example"``), ``off_target``,
``fastai``, ``speech_transformer`` (``epsilon``, ``ignore_index``, ``where``) and
``fastreid`` (``epsilon``, ``alpha``, ``ignore_index``, ``where``).
``tf_onehot`` (dense labels), ``distillation`` (teacher logits) and
``uniform`` with ``weight_mode="torch"`` (a class-weighted row sum) are not
chunked and raise ``ValueError``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from lsbench.losses import _core
from lsbench.losses._core import RowStats

DEFAULT_CHUNK_SIZE = 8192
SUPPORTED = ("uniform", "off_target", "fastai", "speech_transformer", "fastreid")


def _check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def _safe(m):
    """The shift used for exponentials: ``m`` where finite, else 0 (as in ``_core``)."""
    return jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))


def _blocks(k, chunk_size):
    """``(c, n, ragged)``: block width, block count, and whether ``c`` does not divide ``K``.

    Block ``i`` covers columns ``[start_i, start_i + c)`` with
    ``start_i = min(i·c, K − c)``: when ``c`` does not divide ``K`` the last
    block is shifted left to end at ``K`` and overlaps its predecessor; its
    columns below ``i·c`` were already counted and are masked out.
    """
    c = min(chunk_size, k)
    return c, -(-k // c), k % c != 0


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


def _loop(n, body, init):
    if n == 1:
        return body(0, init)
    return lax.fori_loop(0, n, body, init)


def _fwd_values(z, y, chunk_size):
    dt = _core.compute_dtype(z.dtype)
    k = z.shape[-1]
    z2 = z.reshape(-1, k)
    y2 = y.reshape(-1)
    y2 = jnp.where(y2 < 0, y2 + k, y2)  # wrap negative labels like take_along_axis
    n_rows = z2.shape[0]
    c, n, ragged = _blocks(k, chunk_size)
    iota = lax.broadcasted_iota(jnp.int32, (1, c), 1)

    def body(i, carry):
        m_run, s, tot, tgt = carry
        first = i * c  # first column not yet counted
        start = jnp.minimum(first, k - c)
        zc = slice_columns(z2, start, c).astype(dt)
        if ragged:
            valid = iota + start >= first
            zmax, zsum = jnp.where(valid, zc, -jnp.inf), jnp.where(valid, zc, 0)
        else:
            zmax = zsum = zc
        m_new = jnp.maximum(m_run, jnp.max(zmax, axis=-1))
        base = _safe(m_new)
        # s == 0 while nothing finite has been seen: skip the rescaling then, so
        # that a very negative new max cannot give 0·exp(+large) = NaN.
        scale = jnp.where(s > 0, jnp.exp(_safe(m_run) - base), jnp.zeros_like(s))
        s = s * scale + jnp.sum(jnp.exp(zmax - base[:, None]), axis=-1)
        tot = tot + jnp.sum(zsum, axis=-1)
        local = y2 - start
        picked = jnp.take_along_axis(zc, jnp.clip(local, 0, c - 1)[:, None], axis=-1)[:, 0]
        tgt = jnp.where((y2 >= first) & (local < c), picked, tgt)
        return m_new, s, tot, tgt

    # An out-of-range label keeps the NaN start value (as the fused path's fill gather).
    init = (jnp.full((n_rows,), -jnp.inf, dt), jnp.zeros((n_rows,), dt), jnp.zeros((n_rows,), dt),
            jnp.full((n_rows,), jnp.nan, dt))
    m_run, s, tot, tgt = _loop(n, body, init)
    m = _safe(m_run)
    shape = z.shape[:-1]
    return (m.reshape(shape), jnp.log(s).reshape(shape), (tgt - m).reshape(shape),
            (tot - k * m).reshape(shape))


def _bwd_values(z, y, m, lse, g_lse, g_target, g_total, chunk_size):
    dt = _core.compute_dtype(z.dtype)
    k = z.shape[-1]
    z2 = z.reshape(-1, k)
    y2 = y.reshape(-1)
    y2 = jnp.where(y2 < 0, y2 + k, y2)
    cst = (m + lse).reshape(-1, 1)
    gl = g_lse.reshape(-1, 1).astype(dt)
    gt = g_target.reshape(-1).astype(dt)
    gs = g_total.reshape(-1, 1).astype(dt)
    c, n, ragged = _blocks(k, chunk_size)
    iota = lax.broadcasted_iota(jnp.int32, (1, c), 1)

    bits = _bits(z.dtype)

    def body(i, out):
        first = i * c
        start = jnp.minimum(first, k - c)
        # Columns >= first still hold the logits: they are overwritten only below.
        zc = lax.dynamic_slice_in_dim(out, start, c, axis=1)
        if bits is not None:  # 16-bit floats travel as their bit patterns (see slice_columns)
            zc = lax.bitcast_convert_type(zc, z.dtype)
        g = gl * jnp.exp(zc.astype(dt) - cst) + gs
        local = y2 - start
        # ḡ_target on the label's column: N values added, out-of-block ones dropped.
        idx = jnp.where((y2 >= first) & (local < c), local, c)
        g = jax.vmap(lambda row, j, v: row.at[j].add(v, mode="drop"))(g, idx, gt).astype(z.dtype)
        if ragged:  # keep the overlap's gradient, written by the previous block
            g = jnp.where(iota + start >= first, g, zc)
        if bits is not None:
            g = lax.bitcast_convert_type(g, bits)
        return lax.dynamic_update_slice_in_dim(out, g, start, axis=1)

    # The loop carries the logits as its output buffer: with donated logits XLA
    # writes the gradient in place.
    out = _loop(n, body, z2 if bits is None else lax.bitcast_convert_type(z2, bits))
    if bits is not None:
        out = lax.bitcast_convert_type(out, z.dtype)
    return out.reshape(z.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _row_stats(z, y, chunk_size):
    return RowStats(*_fwd_values(z, y, chunk_size))


def _row_stats_fwd(z, y, chunk_size):
    m, lse, target, total = _fwd_values(z, y, chunk_size)
    return RowStats(m, lse, target, total), (z, y, m, lse)


def _row_stats_bwd(chunk_size, res, g):
    z, y, m, lse = res
    return _bwd_values(z, y, m, lse, g.lse, g.target, g.total, chunk_size), _core._int_cotangent(y)


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


def row_stats(logits, labels, chunk_size: int = DEFAULT_CHUNK_SIZE) -> RowStats:
    """Per-row ``(shift, lse, target, total)`` computed ``chunk_size`` classes at a time.

    Same contract as :func:`lsbench.losses._core.row_stats` (without the class
    ``weight``): ``labels`` must already be valid indices (masked rows mapped to
    0); ``shift`` is the row maximum and carries no gradient. ``chunk_size`` is
    static (one compile per value); values ``≥ K`` give a single block.
    """
    return _row_stats(logits, labels, _check_chunk_size(chunk_size))


# --------------------------------------------------------------------------
# recipes on the chunked statistics
# --------------------------------------------------------------------------

def _rows_uniform(st, k, eps, z_loss=None, w_y=None):
    rows = st.lse - (1 - eps) * st.target - (eps / k) * st.total
    if w_y is not None:
        rows = w_y * rows
    if z_loss is not None:
        rows = rows + z_loss * jnp.square(st.lse + st.shift)
    return rows


def _rows_off_target(st, k, eps):
    return st.lse - (1 - eps) * st.target - eps / (k - 1) * (st.total - st.target)


def _rows_fastai(st, k, eps):
    return eps * (st.lse - st.total / k) + (1 - eps) * (st.lse - st.target)


def _rows_speech_transformer(st, k, eps):
    return (1 - eps / k) * st.lse - (1 - eps) * st.target - (eps / k) * (st.total - st.target)


def _rows_fastreid(st, k, eps, alpha):
    p_y = lax.stop_gradient(jnp.exp(st.target - st.lse))
    eps_i = jnp.where(eps >= 0, eps, alpha * p_y)
    return st.lse - (1 - eps_i) * st.target - eps_i / (k - 1) * (st.total - st.target)


_DEFAULTS = {
    "uniform": {"epsilon": 0.1, "ignore_index": None, "where": None, "z_loss": None, "weight": None,
                "weight_mode": "example"},
    "off_target": {"epsilon": 0.1, "ignore_index": None, "where": None},
    "fastai": {"epsilon": 0.1, "ignore_index": None, "where": None},
    "speech_transformer": {"epsilon": 0.1, "ignore_index": -1, "where": None},
    "fastreid": {"epsilon": 0.1, "alpha": 0.2, "ignore_index": None, "where": None},
}


def _params(recipe, params):
    if recipe not in _DEFAULTS:
        raise ValueError(
            f"chunked supports the integer-label recipes {SUPPORTED}, got {recipe!r}"
            " (tf_onehot takes dense labels and distillation teacher logits: use RECIPES[...] for them)"
        )
    unknown = set(params) - set(_DEFAULTS[recipe])
    if unknown:
        raise TypeError(f"chunked {recipe} got unexpected parameter(s) {sorted(unknown)}; "
                        f"accepted: {sorted(_DEFAULTS[recipe])}")
    return {**_DEFAULTS[recipe], **params}


@functools.partial(jax.jit, static_argnames=("recipe", "chunk_size", "has_z_loss", "has_weight"))
def _rows(logits, labels, mask, epsilon, alpha, z_loss, weight, *, recipe, chunk_size, has_z_loss, has_weight):
    k = logits.shape[-1]
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    st = row_stats(logits, labels, chunk_size)
    w_y = weight.astype(dt)[labels] if has_weight else None
    if recipe == "uniform":
        rows = _rows_uniform(st, k, eps, jnp.asarray(z_loss, dt) if has_z_loss else None, w_y)
    elif recipe == "off_target":
        rows = _rows_off_target(st, k, eps)
    elif recipe == "fastai":
        rows = _rows_fastai(st, k, eps)
    elif recipe == "speech_transformer":
        rows = _rows_speech_transformer(st, k, eps)
    else:
        rows = _rows_fastreid(st, k, eps, jnp.asarray(alpha, dt))
    norm = jnp.ones_like(rows) if w_y is None else w_y
    return _core.apply_mask(rows, mask), _core.apply_mask(norm, mask)


def _prepare(recipe, logits, labels, chunk_size, params):
    p = _params(recipe, params)
    _check_chunk_size(chunk_size)
    _core.check_epsilon(p["epsilon"], allow_negative=recipe == "fastreid")
    if recipe == "fastreid":
        _core.check_epsilon(p["alpha"], name="alpha")
    logits, safe, mask = _core.prepare(logits, labels, ignore_index=p["ignore_index"], where=p["where"])
    k = logits.shape[-1]
    if recipe in ("off_target", "fastreid"):
        _core.check_num_classes(k, 2, recipe)
    weight = None
    if recipe == "uniform":
        if p["weight_mode"] != "example":
            raise ValueError("chunked uniform supports weight_mode='example' only (weight_mode='torch' needs "
                             "the class-weighted row sum: use RECIPES['uniform'])")
        if p["weight"] is not None:
            weight = jnp.asarray(p["weight"])
            if not jnp.issubdtype(weight.dtype, jnp.floating) or weight.shape != (k,):
                raise ValueError(f"weight must be a floating ({k},) vector, got {weight.dtype} {weight.shape}")
    return logits, safe, mask, p, weight


def _run(recipe, logits, labels, chunk_size, params):
    logits, safe, mask, p, weight = _prepare(recipe, logits, labels, chunk_size, params)
    rows, norm = _rows(
        logits, safe, mask, p["epsilon"], p.get("alpha", 0.0), p.get("z_loss") if p.get("z_loss") is not None else 0.0,
        weight if weight is not None else jnp.zeros((), jnp.float32),
        recipe=recipe, chunk_size=chunk_size,
        has_z_loss=p.get("z_loss") is not None, has_weight=weight is not None,
    )
    return rows, norm, mask, weight


def per_example(recipe: str, logits, labels, *, chunk_size: int = DEFAULT_CHUNK_SIZE, **params):
    """``RECIPES[recipe].per_example`` on chunked statistics (masked rows are 0)."""
    return _run(recipe, logits, labels, chunk_size, params)[0]


def loss(recipe: str, logits, labels, *, chunk_size: int = DEFAULT_CHUNK_SIZE, **params):
    """``RECIPES[recipe].loss`` on chunked statistics, with the recipe's own reduction."""
    rows, norm, mask, weight = _run(recipe, logits, labels, chunk_size, params)
    if recipe == "fastreid":
        count = lax.stop_gradient(jnp.sum(rows != 0)).astype(rows.dtype)
        return jnp.sum(rows) / jnp.maximum(count, 1)
    if recipe == "fastai":
        # fastai mixes the means of its two terms; with one mask both means share
        # the denominator, so the mix of means is the mean of the mixed rows.
        return _core.masked_mean(rows, mask)
    if weight is None:
        return _core.masked_mean(rows, mask)
    total = jnp.sum(norm)
    return jnp.sum(rows) / jnp.where(total == 0, jnp.ones_like(total), total)
