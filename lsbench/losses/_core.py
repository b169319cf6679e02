"""Shared machinery of the recipes: input checks, dtype rules, the row-statistics
primitive with its closed-form backward, and reductions.

Every integer-label recipe is a function of four per-row statistics of the
logits ``z`` (``K`` classes, label ``y``), all taken relative to the row maximum
``m`` for numerical stability:

    lse    = log Σ_j exp(z_j − m)        (so logsumexp(z) = m + lse)
    target = z_y − m
    total  = Σ_j (z_j − m)               (so Σ_j z_j = total + K·m)

A recipe whose target is ``q = a·onehot(y) + b`` has the per-row loss

    L = −Σ_j q_j log p_j = (a + b·K)·lse − a·target − b·total,

in which ``m`` cancels exactly. :func:`row_stats` computes the statistics in
one fused pass and has a ``jax.custom_vjp`` whose backward writes

    ∂/∂z = ḡ_lse · softmax(z) + ḡ_target · [j = y] + ḡ_total

without building a one-hot matrix. With the
cotangents of the closed form (``ḡ_lse = Σq``, ``ḡ_target = −a``,
``ḡ_total = −b``) this is exactly ``(Σq)·softmax − q``. (For float32 logits the
backward is one elementwise pass writing ``ḡ_lse·softmax + ḡ_total`` plus a
scatter of the B label entries, which measured faster on XLA:CPU than a compare
and select per element; for 16-bit logits, where XLA:CPU has no 16-bit scatter,
the select stays inside the single pass. See :func:`_stats_bwd_values`.)
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import core as jax_core

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


def check_labels(labels, logits: Array, *, ignore_index=None, where=None) -> Array:
    """Integer labels with shape ``logits.shape[:-1]`` and values in ``[0, K)``.

    Values equal to ``ignore_index`` and rows where ``where`` is False are exempt.
    The range check runs when the labels are concrete; under ``jax.jit`` an
    out-of-range label cannot raise, and its row's loss is NaN instead (the
    gather uses ``mode="fill"``), so a bad label never passes silently.
    """
    labels = jnp.asarray(labels) if not isinstance(labels, jax.Array) else labels
    if not jnp.issubdtype(labels.dtype, jnp.integer):
        raise TypeError(
            f"labels must be an integer array of class indices, got dtype {labels.dtype}"
            " (tf_onehot is the recipe that takes dense label matrices)"
        )
    if labels.shape != logits.shape[:-1]:
        raise ValueError(
            f"labels shape {labels.shape} does not match logits shape {logits.shape}: "
            f"expected labels of shape {logits.shape[:-1]} (logits without the class axis)"
        )
    k = logits.shape[-1]
    if is_concrete(labels) and labels.size:
        lab = np.asarray(labels)
        bad = (lab < 0) | (lab >= k)
        if ignore_index is not None:
            bad &= lab != ignore_index
        if where is not None and is_concrete(where):
            bad &= np.broadcast_to(np.asarray(where, dtype=bool), lab.shape)
        if bad.any():
            values = np.unique(lab[bad])[:5].tolist()
            extra = f" other than ignore_index={ignore_index}" if ignore_index is not None else ""
            raise ValueError(
                f"labels must lie in [0, {k}) for K={k} classes{extra}; found {values}"
                f" at {int(bad.sum())} position(s)"
            )
    return labels


def check_epsilon(epsilon, *, allow_negative: bool = False, name: str = "epsilon") -> None:
    """ε must lie in [0, 1] (checked when concrete; traced ε is not checked)."""
    if not is_concrete(epsilon):
        return
    eps = np.asarray(epsilon)
    if eps.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {eps.shape}")
    if not np.isfinite(eps):
        raise ValueError(f"{name} must be finite, got {float(eps)}")
    if allow_negative and eps < 0:
        return
    if not 0.0 <= float(eps) <= 1.0:
        hint = " (a negative value selects fast-reid's adaptive ε)" if allow_negative else ""
        raise ValueError(f"{name} must lie in [0, 1], got {float(eps)}{hint}")


def check_positive(value, name: str) -> None:
    if not is_concrete(value):
        return
    v = np.asarray(value)
    if v.ndim != 0:
        raise ValueError(f"{name} must be a scalar, got shape {v.shape}")
    if not (np.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {float(v)}")


def row_mask(labels: Array, *, ignore_index=None, where=None) -> Array | None:
    """Boolean mask of the rows that count, or None when every row counts."""
    mask = None
    if ignore_index is not None:
        mask = labels != ignore_index
    if where is not None:
        where = jnp.broadcast_to(jnp.asarray(where, dtype=bool), labels.shape)
        mask = where if mask is None else (mask & where)
    return mask


def check_where(where, shape) -> None:
    if where is None:
        return
    w = jnp.shape(where)
    try:
        np.broadcast_shapes(w, shape)
    except ValueError:
        raise ValueError(f"where of shape {w} does not broadcast to the batch shape {shape}") from None
    if np.broadcast_shapes(w, shape) != tuple(shape):
        raise ValueError(f"where of shape {w} does not broadcast to the batch shape {shape}")


# --------------------------------------------------------------------------
# the row-statistics primitive
# --------------------------------------------------------------------------

class RowStats(NamedTuple):
    """Per-row statistics relative to the (constant) row maximum ``shift``."""

    shift: Array  # m = max_j z_j, treated as a constant
    lse: Array  # log Σ exp(z − m)
    target: Array  # z_y − m
    total: Array  # Σ (z − m), or Σ w_j (z_j − m) for row_stats_weighted


def _stats_fwd_values(z, y, weight):
    """``(m, lse, target, total)``: three reductions and a gather, each read straight from ``z``.

    Performance notes (XLA:CPU, measured with ``python -m lsbench bench``):

    * Σz is reduced from ``z`` (a sibling of the max reduction) and shifted
      afterwards; reducing ``z − m`` instead makes XLA materialise ``z − m``. The
      rounding of ``Σz − K·m`` enters the loss multiplied by ε/K, so it costs at
      most about ε·max|z|·2⁻²³ in float32.
    * XLA:CPU does not fuse sibling reductions into one pass (a variadic
      ``lax.reduce`` or an online max/Σexp reducer is not vectorised and runs
      10-50x slower), so the three reductions stay separate passes.
    * XLA:CPU's vectorised row reduction of ``exp(z − m)`` is about 4x slower
      once a row exceeds 32768 classes; longer rows are reduced in two stages
      over ``[.., K/c, c]`` blocks (``sum_exp`` below), same values up to the
      order of the additions.
    * For bfloat16/float16 logits the max is taken in the input dtype (exact)
      and the float32 conversion is left to each consumer; the optimisation
      barriers stop XLA from materialising one shared float32 copy of the
      logits (2x their size, in a freshly faulted buffer), which made bfloat16
      about 3x slower than float32. They change no value.
    """
    dt = compute_dtype(z.dtype)
    low = z.dtype != dt
    k = z.shape[-1]

    def sum_exp(m):
        """Σ_j exp(z_j − m) in ``dt``; rows above 32768 classes in two stages.

        XLA:CPU's vectorised row reduction of exp(z − m) falls off its fast path
        past 32768 classes (measured: 29 ms at K = 32768 vs 137 ms at K = 34816
        for the same 32.8 M float32 elements on 2 cores). Longer rows are cut
        into blocks of c classes (the largest divisor of K in [256, 32768]) and
        reduced as a 2-D [rows·K/c, c] array (a free reshape); the barrier
        keeps XLA from folding the reshape back into a 3-D reduction, which is
        slow again for 16-bit inputs. K without such a divisor stays flat.
        """
        c = None
        if k > 32768:
            c = next((k // n for n in range(-(-k // 32768), k // 256 + 1) if k % n == 0), None)
        if c is None:
            return jnp.sum(jnp.exp(z.astype(dt) - m[..., None]), axis=-1)
        n = k // c
        zz, mm = jax.lax.optimization_barrier((z.reshape(-1, c), jnp.repeat(m.reshape(-1), n)))
        s = jnp.sum(jnp.exp(zz.astype(dt) - mm[:, None]), axis=-1)
        return jnp.sum(s.reshape(z.shape[:-1] + (n,)), axis=-1)

    m = jax.lax.stop_gradient(jnp.max(z, axis=-1)).astype(dt)
    # Keep the max finite so that rows of -inf do not produce NaN shifts.
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    lse = jnp.log(sum_exp(m))
    zt = jax.lax.optimization_barrier(z) if low else z
    target = jnp.take_along_axis(zt, y[..., None], axis=-1, mode="fill")[..., 0].astype(dt) - m
    zs = jax.lax.optimization_barrier(zt) if low else z
    if weight is None:
        total = jnp.sum(zs.astype(dt), axis=-1) - k * m
    else:
        wc = weight.astype(dt)
        total = jnp.sum(zs.astype(dt) * wc, axis=-1) - jnp.sum(wc) * m
    return m, lse, target, total


def _stats_bwd_values(z, y, weight, m, lse, g_lse, g_target, g_total):
    """``ḡ_lse·softmax(z) + ḡ_target·[j = y] + ḡ_total·w`` in the logits' dtype, in one pass.

    float32/float64: one elementwise pass writes ``ḡ_lse·softmax + ḡ_total·w``
    for every class; the label entries (one per row) are then overwritten in
    place by a batched scatter with the same expression plus ``ḡ_target``.
    Comparing an iota with the label inside the elementwise pass instead costs a
    compare and a select per element (measured slower on XLA:CPU, see
    ``python -m lsbench bench``). The scatter is vmapped over rows so that it
    carries explicit batch dimensions, which the SPMD partitioner keeps
    row-parallel.

    bfloat16/float16: XLA:CPU has no 16-bit float scatter (it would scatter into
    a float32 copy and convert back, two extra passes), so the label term is the
    iota select inside the single elementwise pass that also rounds to the
    logits' dtype.

    Labels must be valid indices; an out-of-range label's entry is left out
    (its row's loss is already NaN, see :func:`check_labels`).
    """
    dt = compute_dtype(z.dtype)
    k = z.shape[-1]
    low = z.dtype != dt
    if low:  # see _stats_fwd_values: keeps XLA from materialising float32 copies of z
        z = jax.lax.optimization_barrier(z)
    c = m + lse  # logsumexp(z)
    if weight is None:
        w = w_y = None
    else:
        w = weight.astype(dt)
        w_y = jnp.take(w, y, mode="fill")
    base = g_lse[..., None] * jnp.exp(z.astype(dt) - c[..., None])
    base = base + (g_total[..., None] if w is None else g_total[..., None] * w)
    if low:
        iota = jax.lax.broadcasted_iota(jnp.int32, (1,) * (z.ndim - 1) + (k,), z.ndim - 1)
        base = base + jnp.where(iota == y[..., None], g_target[..., None], jnp.zeros((), dt))
        return base.astype(z.dtype)
    z_y = jnp.take_along_axis(z, y[..., None], axis=-1, mode="fill")[..., 0].astype(dt)
    value = g_lse * jnp.exp(z_y - c) + g_target + (g_total if w_y is None else g_total * w_y)
    grad = jax.vmap(lambda row, i, v: row.at[i].set(v, mode="drop"))(
        base.astype(z.dtype).reshape(-1, k), y.reshape(-1), value.astype(z.dtype).reshape(-1)
    )
    return grad.reshape(z.shape)


def _int_cotangent(y):
    return np.zeros(np.shape(y), dtype=jax.dtypes.float0)


@jax.custom_vjp
def _row_stats(z, y):
    return RowStats(*_stats_fwd_values(z, y, None))


def _row_stats_fwd(z, y):
    m, lse, target, total = _stats_fwd_values(z, y, None)
    return RowStats(m, lse, target, total), (z, y, m, lse)


def _row_stats_bwd(res, g):
    z, y, m, lse = res
    # g.shift is dropped on purpose: m is a constant shift (see module docstring).
    return _stats_bwd_values(z, y, None, m, lse, g.lse, g.target, g.total), _int_cotangent(y)


_row_stats.defvjp(_row_stats_fwd, _row_stats_bwd)


@jax.custom_vjp
def _row_stats_weighted(z, y, weight):
    return RowStats(*_stats_fwd_values(z, y, weight))


def _row_stats_weighted_fwd(z, y, weight):
    m, lse, target, total = _stats_fwd_values(z, y, weight)
    return RowStats(m, lse, target, total), (z, y, weight, m, lse)


def _row_stats_weighted_bwd(res, g):
    z, y, weight, m, lse = res
    dt = compute_dtype(z.dtype)
    gz = _stats_bwd_values(z, y, weight, m, lse, g.lse, g.target, g.total)
    # ∂ total / ∂ w_j = z_j − m, summed over the batch rows.
    d = z.astype(dt) - m[..., None]
    gw = jnp.sum((g.total[..., None] * d).reshape(-1, z.shape[-1]), axis=0)
    return gz, _int_cotangent(y), gw.astype(weight.dtype)


_row_stats_weighted.defvjp(_row_stats_weighted_fwd, _row_stats_weighted_bwd)


def row_stats(logits: Array, labels: Array, weight: Array | None = None) -> RowStats:
    """Per-row ``(shift, lse, target, total)`` with the closed-form backward.

    ``labels`` must already be valid indices (masked rows mapped to 0).
    ``shift`` carries no gradient; every formula built from these statistics
    must use it only through ``lse + shift``, ``target + shift`` and
    ``total + K·shift`` (or not at all), which the recipes do.
    """
    if weight is None:
        return _row_stats(logits, labels)
    return _row_stats_weighted(logits, labels, weight)


# --------------------------------------------------------------------------
# affine targets q = a·onehot(y) + b  and reductions
# --------------------------------------------------------------------------

def affine_target_loss(stats: RowStats, a, b, num_classes: int, *, mass=None) -> Array:
    """Per-row ``−Σ q log p`` for ``q = a·onehot(y) + b`` (``mass`` = Σq = a + bK)."""
    if mass is None:
        mass = a + b * num_classes
    return mass * stats.lse - a * stats.target - b * stats.total


def prepare(logits, labels, *, ignore_index=None, where=None):
    """Validate and return ``(logits, safe_labels, mask)`` for integer-label recipes."""
    logits = check_logits(logits)
    labels = check_labels(labels, logits, ignore_index=ignore_index, where=where)
    check_where(where, labels.shape)
    mask = row_mask(labels, ignore_index=ignore_index, where=where)
    safe = labels if mask is None else jnp.where(mask, labels, 0)
    return logits, safe, mask


def apply_mask(per_row: Array, mask: Array | None) -> Array:
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
