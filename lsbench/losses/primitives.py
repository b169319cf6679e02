r"""The public building blocks of every recipe: input checks, dtype rules, the
row-statistics primitive with its closed-form backward, masks and reductions.

Every integer-label recipe is a function of five per-row statistics of the
logits ``z`` (``K`` classes, label ``y``), all taken relative to the row maximum
``m`` so that a constant offset of the logits never enters a rounding:

    lse    = log Σ_j exp(z_j − m)        (so logsumexp(z) = m + lse)
    target = z_y − m
    total  = Σ_j (z_j − m)
    mean   = total / K                   (reduced so that it cannot overflow)

A recipe whose target is ``q = a·onehot(y) + b`` has the per-row loss

    L = (a + b·K)·lse − a·target − b·K·mean,

in which ``m`` cancels exactly. :func:`row_stats` computes the statistics and
has a ``jax.custom_vjp`` whose backward writes

    ∂/∂z = ḡ_lse · exp(−lse) · exp(z − m) + ḡ_target · [j = y] + ḡ_total + ḡ_mean/K

without building a one-hot matrix. With the cotangents of the closed form
this is exactly ``(Σq)·softmax − q``.

Precision: ``z − m`` is formed before anything else is added to it, in the
forward and in the backward. Rounding ``m + lse`` or ``Σz − K·m`` at the
logits' magnitude would make the loss and gradient depend on a constant offset
(at an offset of 1e6 in float32, the ulp is 0.06). ``total`` and ``mean`` are
reduced from ``(z·s − m·s)`` with ``s`` a power of two at most ``1/(2K)``: the
scaling is exact, the shift stays exact, and the sum cannot overflow even for
logits near ±3e38.

Labels: a label outside ``[0, K)`` (a negative one included: nothing wraps)
gives its row a NaN ``target`` and a NaN gradient row, so neither the loss nor
a training step that ignores the loss can use it. Use :func:`check_labels`
(eager or under ``jax.experimental.checkify``) to get an error instead.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import core as jax_core
from jax.experimental import checkify

Array = jax.Array


# --------------------------------------------------------------------------
# dtype rules and input checks
# --------------------------------------------------------------------------

def compute_dtype(dtype) -> jnp.dtype:
    """float64 for float64 inputs, float32 for every other floating dtype."""
    dtype = jnp.dtype(dtype)
    return jnp.dtype(jnp.float64) if dtype == jnp.float64 else jnp.dtype(jnp.float32)


def is_concrete(x) -> bool:
    """True when ``x`` holds a value now (not a tracer under jit/grad/vmap)."""
    return not isinstance(x, jax_core.Tracer)


def check_logits(logits, name: str = "logits") -> Array:
    """``logits`` as a floating array with a non-empty class axis."""
    logits = jnp.asarray(logits) if not isinstance(logits, jax.Array) else logits
    if not jnp.issubdtype(logits.dtype, jnp.floating):
        raise TypeError(
            f"{name} must be a floating-point array (float16/bfloat16/float32/float64), "
            f"got dtype {logits.dtype}; cast integer scores with .astype(jnp.float32)"
        )
    if logits.ndim < 1:
        raise ValueError(f"{name} must have a class axis: got a scalar of shape {logits.shape}")
    if logits.shape[-1] < 1:
        raise ValueError(f"{name} has an empty class axis (shape {logits.shape})")
    return logits


def check_num_classes(num_classes: int, minimum: int, recipe: str) -> None:
    if num_classes < minimum:
        raise ValueError(
            f"{recipe} needs at least {minimum} classes (it divides by K−1), got K={num_classes}"
        )


def _bad_labels(labels, num_classes: int, ignore_index, where):
    """Boolean mask of labels outside ``[0, K)`` that are neither ignored nor masked out."""
    # NumPy for concrete labels: jnp ops would be staged out (tracers) when called under a trace.
    xp = np if isinstance(labels, np.ndarray) else jnp
    bad = (labels < 0) | (labels >= num_classes)
    if ignore_index is not None:
        bad = bad & (labels != ignore_index)
    if where is not None:
        bad = bad & xp.broadcast_to(xp.asarray(where, dtype=bool), xp.shape(labels))
    return bad


def validate_labels(labels, logits, *, ignore_index=None, where=None, name: str = "labels",
                    logits_name: str = "logits") -> Array:
    """Integer labels with shape ``logits.shape[:-1]`` and values in ``[0, K)``.

    Values equal to ``ignore_index`` and rows where ``where`` is False are exempt.
    The range check runs when the labels are concrete; under ``jax.jit`` it
    cannot raise, and an out-of-range label gives a NaN loss and a NaN gradient
    row instead (see the module docstring and :func:`check_labels`).
    ``logits`` may be any object with ``shape`` (e.g. ``jax.ShapeDtypeStruct``).
    """
    labels = jnp.asarray(labels) if not isinstance(labels, jax.Array) else labels
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"{name} must be an integer array of class indices, got dtype {labels.dtype}"
            " (tf_onehot is the recipe that takes dense label matrices)"
        )
    if labels.shape != tuple(logits.shape[:-1]):
        raise ValueError(
            f"{name} shape {labels.shape} does not match {logits_name} shape {tuple(logits.shape)}: "
            f"expected {name} of shape {tuple(logits.shape[:-1])} ({logits_name} without the last axis)"
        )
    k = logits.shape[-1]
    if is_concrete(labels) and labels.size and (where is None or is_concrete(where)) \
            and (ignore_index is None or is_concrete(ignore_index)):
        lab = np.asarray(labels)
        bad = np.asarray(_bad_labels(lab, k, ignore_index, None if where is None else np.asarray(where)))
        if bad.any():
            values = np.unique(lab[bad])[:5].tolist()
            extra = f" other than ignore_index={ignore_index}" if ignore_index is not None else ""
            raise ValueError(
                f"{name} must lie in [0, {k}) for K={k} classes{extra}; found {values}"
                f" at {int(bad.sum())} position(s)"
            )
    return labels


def check_labels(labels, num_classes: int, *, ignore_index=None, where=None) -> None:
    """Raise when a label lies outside ``[0, num_classes)`` -- also under ``jax.jit``.

    The losses never raise on traced labels (a bad label gives a NaN loss and a
    NaN gradient row). For an error, call this helper: eagerly it raises
    ``ValueError``; inside a function transformed by
    ``jax.experimental.checkify.checkify`` it adds a check whose error
    ``err.throw()`` raises. (Under a plain ``jax.jit`` without ``checkify``, JAX
    refuses to trace it: checkify is what turns it into a runtime check.)

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from jax.experimental import checkify
      >>> from lsbench.losses import check_labels, uniform
      >>> def f(z, y):
      ...     check_labels(y, z.shape[-1])
      ...     return uniform(z, y, epsilon=0.1).mean()
      >>> err, value = jax.jit(checkify.checkify(f))(jnp.zeros((2, 3)), jnp.array([0, -1]))
      >>> err.get() is not None
      True
    """
    if is_concrete(labels) and (where is None or is_concrete(where)) \
            and (ignore_index is None or is_concrete(ignore_index)):
        validate_labels(labels, jax.ShapeDtypeStruct(np.shape(labels) + (num_classes,), jnp.float32),
                        ignore_index=ignore_index, where=where)
        return
    labels = jnp.asarray(labels)
    bad = _bad_labels(labels, num_classes, ignore_index, where)
    checkify.check(~jnp.any(bad), f"labels must lie in [0, {num_classes}) (or equal ignore_index); "
                   "found {n} out-of-range label(s)", n=jnp.sum(bad))


def _is_real_scalar(value) -> bool:
    if isinstance(value, (bool, np.bool_)) or value is None or isinstance(value, (str, bytes)):
        return False
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 -- anything NumPy cannot hold is not a number
        return False
    return arr.dtype.kind in "iuf"


def _scalar(value, name: str, expects: str):
    """``value`` as a NumPy scalar, or None when traced; a non-number or non-scalar raises."""
    if not is_concrete(value):
        return None
    if not _is_real_scalar(value):
        raise TypeError(f"{name} must be {expects}, got {value!r} ({type(value).__name__})")
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {v.shape}")
    if not np.isfinite(v):
        raise ValueError(f"{name} must be finite, got {float(v)}")
    return v


def check_epsilon(epsilon, *, allow_negative: bool = False, name: str = "epsilon") -> None:
    """ε must be a real number in [0, 1] (checked when concrete; traced ε is not checked)."""
    eps = _scalar(epsilon, name, "a real number in [0, 1]")
    if eps is None or (allow_negative and eps < 0):
        return
    if not 0.0 <= float(eps) <= 1.0:
        hint = " (a negative value selects fast-reid's adaptive ε)" if allow_negative else ""
        raise ValueError(f"{name} must lie in [0, 1], got {float(eps)}{hint}")


def check_positive(value, name: str) -> None:
    """``value`` must be a finite real number > 0 (checked when concrete)."""
    v = _scalar(value, name, "a real number > 0")
    if v is not None and not v > 0:
        raise ValueError(f"{name} must be a finite number > 0, got {float(v)}")


def check_where(where, shape) -> None:
    """``where`` must be a boolean mask that broadcasts to the batch shape ``shape``."""
    if where is None:
        return
    w = jnp.shape(where)
    try:
        full = np.broadcast_shapes(w, tuple(shape))
    except ValueError:
        full = None
    if full != tuple(shape):
        raise ValueError(
            f"where must be a boolean mask of the batch shape {tuple(shape)} (or broadcastable to it), "
            f"got shape {w}"
        )


def checked_where(where, shape) -> Array | None:
    """:func:`check_where`, then ``where`` broadcast to ``shape`` as booleans (None stays None)."""
    check_where(where, shape)
    return None if where is None else jnp.broadcast_to(jnp.asarray(where, dtype=bool), tuple(shape))


def check_epsilon_param(num_classes: int, *, epsilon, **_) -> None:
    """The ``check_params`` of recipes whose only parameter is ε in [0, 1]."""
    check_epsilon(epsilon)


def row_mask(labels: Array, *, ignore_index=None, where=None) -> Array | None:
    """Boolean mask of the rows that count, or None when every row counts."""
    mask = None
    if ignore_index is not None:
        mask = labels != ignore_index
    if where is not None:
        where = jnp.broadcast_to(jnp.asarray(where, dtype=bool), labels.shape)
        mask = where if mask is None else (mask & where)
    return mask


def prepare_labels(labels, logits, *, ignore_index=None, where=None, logits_name: str = "logits"):
    """Validate the labels against ``logits`` (anything with ``shape``); ``(labels, safe_labels, mask)``.

    Masked rows get label 0 (any valid index); out-of-range labels of kept rows
    pass through unchanged, so that :func:`row_stats` makes their rows NaN.
    """
    check_where(where, jnp.shape(labels))
    labels = validate_labels(labels, logits, ignore_index=ignore_index, where=where, logits_name=logits_name)
    mask = row_mask(labels, ignore_index=ignore_index, where=where)
    safe = labels if mask is None else jnp.where(mask, labels, 0)
    return labels, safe, mask


def prepare(logits, labels, *, ignore_index=None, where=None):
    """Validate and return ``(logits, safe_labels, mask)`` for integer-label recipes."""
    logits = check_logits(logits)
    _, safe, mask = prepare_labels(labels, logits, ignore_index=ignore_index, where=where)
    return logits, safe, mask


# --------------------------------------------------------------------------
# shared pieces of every row-statistics implementation
# --------------------------------------------------------------------------

class RowStats(NamedTuple):
    """Per-row statistics relative to the (constant) row maximum ``shift``."""

    shift: Array  # m = max_j z_j (0 where not finite), treated as a constant
    lse: Array  # log Σ exp(z − m)
    target: Array  # z_y − m (NaN for a label outside [0, K))
    total: Array  # Σ (z − m), or Σ w_j (z_j − m) with class weights
    mean: Array  # total / K, reduced so that it cannot overflow


def safe_shift(m: Array) -> Array:
    """``m`` where finite, else 0: rows of ±inf must not produce NaN shifts."""
    return jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))


def sum_scale(num_classes: int) -> float:
    """The power of two ``s ≤ 1/(2K)`` that scales the shifted row sum (exact, overflow-free)."""
    return 2.0 ** -(math.ceil(math.log2(max(num_classes, 1))) + 1)


def finish_sums(acc: Array, num_classes: int) -> tuple[Array, Array]:
    """``(total, mean)`` from ``acc = Σ_j (z_j·s − m·s)`` with ``s = sum_scale(K)``."""
    s = sum_scale(num_classes)
    return acc * (1.0 / s), acc * (1.0 / (s * num_classes))


def label_out_of_range(labels: Array, num_classes: int) -> Array:
    return (labels < 0) | (labels >= num_classes)


def nan_where_out_of_range(x: Array, labels: Array, num_classes: int) -> Array:
    """``x`` with NaN in the rows whose label lies outside ``[0, K)`` (a per-row select)."""
    return jnp.where(label_out_of_range(labels, num_classes), jnp.full((), jnp.nan, x.dtype), x)


def row_constant_cotangent(g: RowStats, labels: Array, num_classes: int) -> Array:
    """The per-row cotangent added to every class: ``ḡ_total + ḡ_mean/K``, NaN for bad labels.

    The NaN gives a row with an out-of-range label a NaN gradient row (and
    costs one per-row select), so a loop that ignores the loss cannot train on it.
    """
    return nan_where_out_of_range(g.total + g.mean / num_classes, labels, num_classes)


def int_cotangent(x) -> np.ndarray:
    """The (float0) cotangent of an integer or boolean input of a ``custom_vjp``."""
    return np.zeros(np.shape(x), dtype=jax.dtypes.float0)


def times(coefficient, x: Array) -> Array:
    """``coefficient·x``, exactly 0 when the coefficient is 0 (even for x = ±inf).

    A −inf logit (the usual way to mask a class out) makes ``Σz`` −inf; the
    closed forms multiply it by ε/K, which is 0 for ε = 0: 0·(−inf) must be 0.
    """
    return jnp.where(coefficient == 0, jnp.zeros_like(x), coefficient * x)


# --------------------------------------------------------------------------
# the row-statistics primitive (all classes of a row at once)
# --------------------------------------------------------------------------

#: rows up to this many classes are reduced flat; XLA:CPU's vectorised row reduction falls off its
#: fast path past it (measured: 29 ms at K = 32768 vs 137 ms at K = 34816 for the same 32.8 M
#: float32 elements of exp(z − m) on 2 cores)
FLAT_ROW_LIMIT = 32768


def row_block_size(k: int) -> int | None:
    """Classes per block for rows longer than :data:`FLAT_ROW_LIMIT` (the largest divisor of K in
    ``[256, FLAT_ROW_LIMIT]``), else None (reduce the row flat)."""
    if k <= FLAT_ROW_LIMIT:
        return None
    return next((k // n for n in range(-(-k // FLAT_ROW_LIMIT), k // 256 + 1) if k % n == 0), None)


def row_sum(term, arrays, rows=(), scalars=()):
    """``Σ_j term(arrays, rows, scalars)_j`` over the class axis, in two stages for long rows.

    ``arrays`` are ``[..., K]`` operands, ``rows`` per-row ``[...]`` values (given to ``term``
    with a trailing axis of 1) and ``scalars`` passed through; ``term`` is elementwise and
    returns the ``[..., K]`` terms (it is called on blocks of classes, so it must not look
    across the class axis). Rows of at most :data:`FLAT_ROW_LIMIT` classes are one flat row sum
    (exactly ``jnp.sum(term(...), -1)``). Longer rows are cut into blocks of
    :func:`row_block_size` classes, reduced as a 2-D ``[rows·K/c, c]`` array (a free reshape)
    and the ``K/c`` partial sums added: the same value up to the order of the additions. An
    optimisation barrier keeps XLA from folding the reshape back into a 3-D reduction, which is
    slow again for 16-bit inputs; K without such a divisor stays flat.
    """
    arrays, rows, scalars = tuple(arrays), tuple(rows), tuple(scalars)
    k = arrays[0].shape[-1]
    c = row_block_size(k)
    if c is None:
        return jnp.sum(term(arrays, tuple(r[..., None] for r in rows), scalars), axis=-1)
    n = k // c
    batch = arrays[0].shape[:-1]
    blocks, reps, scalars = jax.lax.optimization_barrier(
        (tuple(a.reshape(-1, c) for a in arrays), tuple(jnp.repeat(r.reshape(-1), n) for r in rows), scalars))
    partial = jnp.sum(term(blocks, tuple(r[:, None] for r in reps), scalars), axis=-1)
    return jnp.sum(partial.reshape(batch + (n,)), axis=-1)


def row_shift(x: Array, dt) -> Array:
    """The row maximum of ``x`` in ``dt``, the shift of every exp-sum: taken in ``x``'s own dtype
    (exact for 16-bit inputs, so no converted copy of ``x`` is read), constant for the gradient,
    and 0 for rows of ±inf (:func:`safe_shift`)."""
    return safe_shift(jax.lax.stop_gradient(jnp.max(x, axis=-1)).astype(dt))


def exp_sum(x: Array, m: Array, dt) -> Array:
    """``Σ_j exp(x_j − m)`` per row, each element converted to ``dt`` inside the reduction."""
    return row_sum(lambda a, r, _: jnp.exp(a[0].astype(dt) - r[0]), (x,), (m,))


def scaled_shifted_sum(x: Array, m: Array, dt) -> Array:
    """``Σ_j (x_j·s − m·s)`` per row with ``s = sum_scale(K)``: the shifted sum scaled exactly, so
    that it cannot overflow where ``x − m`` would (logits near ±3e38); :func:`finish_sums` undoes
    the scale."""
    s = sum_scale(x.shape[-1])
    return row_sum(lambda a, r, _: a[0].astype(dt) * s - r[0] * s, (x,), (m,))


def _stats_fwd_values(z, y, weight):
    """``RowStats`` values: a max, an exp-sum, a shifted sum and a gather, each read straight from ``z``.

    Performance notes (XLA:CPU, measured with ``python -m lsbench bench``):

    * XLA:CPU does not fuse sibling reductions into one pass (a variadic
      ``lax.reduce`` or an online max/Σexp reducer is not vectorised and runs
      10-50x slower), so the reductions stay separate passes. The shifted sum
      reads ``z`` through an optimisation barrier, so that XLA
      does not share (and materialise) one ``z − m`` array with the exp-sum.
      It reduces ``z·s − m·s`` (exact shift, no overflow): measured about 20%
      slower than the old, inexact ``Σz − K·m`` for this reduction at
      4096×1000 float32 (``Σ(z − m)``, which can overflow near ±3e38, was 10%
      slower; a ``lax.cond`` fallback to the scaled sum only on overflow was
      3x slower, as the conditional copies the logits).
    * XLA:CPU's vectorised row reduction is 4-9x slower once a row exceeds
      32768 classes; longer rows are reduced in two stages (:func:`row_sum`),
      same values up to the order of the additions.
    * For bfloat16/float16 logits the max is taken in the input dtype (exact)
      and the float32 conversion is left to each consumer; the optimisation
      barriers stop XLA from materialising one shared float32 copy of the
      logits (2x their size, in a freshly faulted buffer), which made bfloat16
      about 3x slower than float32. They change no value.
    """
    dt = compute_dtype(z.dtype)
    low = z.dtype != dt
    k = z.shape[-1]

    m = row_shift(z, dt)
    lse = jnp.log(exp_sum(z, m, dt))
    zt = jax.lax.optimization_barrier(z) if low else z
    target = jnp.take_along_axis(zt, y[..., None], axis=-1, mode="fill")[..., 0].astype(dt) - m
    target = nan_where_out_of_range(target, y, k)
    # The barrier keeps XLA from sharing (and so materialising) one z − m between
    # the exp-sum and the shifted sum; it changes no value.
    zs = jax.lax.optimization_barrier(zt)
    if weight is None:
        acc = scaled_shifted_sum(zs, m, dt)
    else:
        s = sum_scale(k)
        acc = jnp.sum((zs.astype(dt) * s - (m * s)[..., None]) * weight.astype(dt), axis=-1)
    total, mean = finish_sums(acc, k)
    return RowStats(m, lse, target, total, mean)


def after(x: Array, *stats: Array) -> Array:
    """``x`` exactly, made data-dependent on ``stats`` (arrays of ``x``'s shape).

    ``t < −t`` for ``t = |s₁| + …`` is never true (not for ±inf or NaN either),
    but XLA cannot fold it (it does fold ``|s| < 0``), so whatever consumes the
    result runs after everything that computed ``stats``: one select per row.
    """
    total = functools.reduce(jnp.add, [jnp.abs(s) for s in stats])
    never = total < -total
    return jnp.where(never, stats[0].astype(x.dtype), x)


def set_label_entries(grad, labels, values):
    """``grad`` with ``grad[..., y] = values`` per row, in place (a scatter vmapped over rows, so it
    carries explicit batch dimensions, which the SPMD partitioner keeps row-parallel); an
    out-of-range label writes nothing."""
    k = grad.shape[-1]
    out = jax.vmap(lambda row, i, v: row.at[i].set(v, mode="drop"))(
        grad.reshape(-1, k), labels.reshape(-1), values.astype(grad.dtype).reshape(-1))
    return out.reshape(grad.shape)


def gradient_from_stats(z, y, weight, keep, m, lse, target, g_lse, g_target, g_row):
    """``ḡ_lse·softmax(z) + ḡ_target·[j = y] + ḡ_row·w`` in the logits' dtype, in one pass.

    ``softmax`` is ``exp(z − m)·exp(−lse)``: ``z − m`` first, so a logit offset
    never rounds. float32/float64: one elementwise pass writes
    ``ḡ_lse·softmax + ḡ_row·w`` for every class; the label entries (one per
    row) are then overwritten in place by a batched scatter with the same
    expression plus ``ḡ_target``. Comparing an iota with the label inside the
    elementwise pass instead costs a compare and a select per element (measured
    slower on XLA:CPU). The scatter is vmapped over rows so that it carries
    explicit batch dimensions, which the SPMD partitioner keeps row-parallel.

    bfloat16/float16: XLA:CPU has no 16-bit float scatter (it would scatter into
    a float32 copy and convert back, two extra passes), so the label term is the
    iota select inside the single elementwise pass that also rounds to the
    logits' dtype.

    ``keep`` (rows that count, or None) zeroes the other rows with a select, so
    that a masked row holding NaN or ±inf still gets an exact zero gradient.

    Donation: nothing may read ``z`` after the elementwise pass has written the
    gradient, or XLA copies donated logits first instead of writing into their
    buffer (measured: 59.6 vs 52.6 ms plain at 1024×32000 float32). The label
    entries use the forward's ``target = z_y − m`` (the value the backward
    would recompute from ``z``), and ``m`` reaches the pass through
    :func:`after` the forward's ``target`` and ``total``, so that every forward
    read of ``z`` is an ancestor of the write: XLA orders buffer reuse by data
    dependencies only (an optimisation barrier is gone before it decides).
    """
    dt = compute_dtype(z.dtype)
    k = z.shape[-1]
    low = z.dtype != dt
    # See _stats_fwd_values: without the barrier XLA shares z − m, or the
    # broadcast of m (and for 16-bit logits a float32 copy of z) with the
    # forward and materialises it as a [..., K] array.
    z, m = jax.lax.optimization_barrier((z, m))
    zero = jnp.zeros((), dt)
    if weight is None:
        w = w_y = None
    else:
        w = weight.astype(dt)
        w_y = jnp.take(w, y, mode="fill")
    # softmax = exp(z − m)·exp(−lse): exact shift, and no more work per element
    # than the inexact exp(z − (m + lse)).
    scale = g_lse * jnp.exp(-lse)
    base = scale[..., None] * jnp.exp(z.astype(dt) - m[..., None])
    base = base + (g_row[..., None] if w is None else g_row[..., None] * w)
    if low:
        iota = jax.lax.broadcasted_iota(jnp.int32, (1,) * (z.ndim - 1) + (k,), z.ndim - 1)
        base = base + jnp.where(iota == y[..., None], g_target[..., None], zero)
        if keep is not None:
            base = jnp.where(keep[..., None], base, zero)
        return base.astype(z.dtype)
    if keep is not None:
        base = jnp.where(keep[..., None], base, zero)
    value = scale * jnp.exp(target) + g_target + (g_row if w_y is None else g_row * w_y)
    if keep is not None:
        value = jnp.where(keep, value, zero)
    return set_label_entries(base.astype(z.dtype), y, value)


@jax.custom_vjp
def _row_stats(z, y, weight, keep):
    return _stats_fwd_values(z, y, weight)


def _row_stats_fwd(z, y, weight, keep):
    st = _stats_fwd_values(z, y, weight)
    return st, (z, y, weight, keep, st.shift, st.lse, st.target, st.total)


def _row_stats_bwd(res, g):
    z, y, weight, keep, m, lse, target, total = res
    k = z.shape[-1]
    # g.shift is dropped on purpose: m is a constant shift (see module docstring).
    g_row = row_constant_cotangent(g, y, k)
    # every forward read of z (max, exp-sum, label gather, shifted sum) before the gradient's write
    gz = gradient_from_stats(z, y, weight, keep, after(m, target, total), lse, target, g.lse, g.target, g_row)
    gw = None
    if weight is not None:
        # ∂ total / ∂ w_j = z_j − m, summed over the kept batch rows.
        dt = compute_dtype(z.dtype)
        d = (z.astype(dt) - m[..., None]) * g_row[..., None]
        if keep is not None:
            d = jnp.where(keep[..., None], d, jnp.zeros((), dt))
        gw = jnp.sum(d.reshape(-1, k), axis=0).astype(weight.dtype)
    return gz, int_cotangent(y), gw, None if keep is None else int_cotangent(keep)


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


def row_stats(logits: Array, labels: Array, weight: Array | None = None, *, keep: Array | None = None) -> RowStats:
    """Per-row ``(shift, lse, target, total, mean)`` with the closed-form backward.

    Args:
      logits: ``[..., K]`` floating logits.
      labels: ``[...]`` integer labels; masked rows mapped to any valid index
        (0). A label outside ``[0, K)`` gives a NaN ``target`` and a NaN
        gradient row.
      weight: optional ``[K]`` class weights: ``total = Σ_j w_j (z_j − m)``
        (differentiable in ``weight``).
      keep: optional boolean ``[...]`` mask; rows where it is False get an
        exact zero gradient whatever their logits hold.

    ``shift`` carries no gradient; every formula built from these statistics
    uses it only through ``lse + shift`` (or not at all), which the recipes do.
    """
    return _row_stats(logits, labels, weight, keep)


# --------------------------------------------------------------------------
# masks and reductions
# --------------------------------------------------------------------------

def apply_mask(per_row: Array, mask: Array | None) -> Array:
    """``per_row`` with exact zeros where ``mask`` is False (None: unchanged)."""
    if mask is None:
        return per_row
    return jnp.where(mask, per_row, jnp.zeros((), per_row.dtype))


def masked_mean(per_row: Array, mask: Array | None) -> Array:
    """Σ over kept rows / number of kept rows; 0 (not NaN) when none is kept."""
    if mask is None:
        if per_row.size == 0:
            return jnp.zeros((), per_row.dtype)
        return jnp.mean(per_row)
    count = jnp.sum(mask).astype(per_row.dtype)
    return jnp.sum(apply_mask(per_row, mask)) / jnp.maximum(count, 1)


def weighted_mean(per_row: Array, norm: Array) -> Array:
    """``Σ per_row / Σ norm`` (masked rows already 0 in both); 0 when ``Σ norm`` is 0."""
    total = jnp.sum(norm)
    return jnp.sum(per_row) / jnp.where(total == 0, jnp.ones_like(total), total)


@functools.partial(jax.jit, static_argnums=(0,))
def rows_on_logits(closed_form, logits, labels, mask, params, label_weight=None):
    """Masked per-row losses ``closed_form(row_stats(logits, labels), K, **params)`` (jit-compiled).

    ``closed_form`` is a recipe's ``rows_from_stats``; ``params`` its numeric
    parameters (a dict of arrays/scalars or None), ``label_weight`` the per-row
    weight of the row's label or None.
    """
    st = row_stats(logits, labels, keep=mask)
    extra = {} if label_weight is None else {"label_weight": label_weight}
    return apply_mask(closed_form(st, logits.shape[-1], **params, **extra), mask)


def keyword_defaults(fn) -> dict:
    """``{name: default}`` of the keyword-only parameters of ``fn`` (a recipe's public function).

    A recipe's defaults live only in its public function's signature; ``RECIPES``,
    ``loss`` and the large-vocabulary paths read them from there.
    """
    return {p.name: p.default for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY}


def bind_params(fn, params: dict, *, accepted=None) -> dict:
    """``params`` completed with ``fn``'s defaults; unknown names raise ``TypeError``."""
    defaults = keyword_defaults(fn)
    allowed = defaults if accepted is None else {k: v for k, v in defaults.items() if k in accepted}
    unknown = set(params) - set(allowed)
    if unknown:
        raise TypeError(f"{fn.__name__} got unexpected parameter(s) {sorted(unknown)}; accepted: {sorted(allowed)}")
    return {**allowed, **params}


def plain_rows(closed_form, check_params, logits, labels, *, ignore_index=None, where=None, **params):
    """``(rows, mask)`` of an integer-label recipe on the full logits (its plain path).

    ``check_params(K, **params)`` validates the recipe's parameters and
    ``closed_form`` (its ``rows_from_stats``) maps the row statistics to losses.
    """
    logits, safe, mask = prepare(logits, labels, ignore_index=ignore_index, where=where)
    check_params(logits.shape[-1], **params)
    return rows_on_logits(closed_form, logits, safe, mask, params), mask

