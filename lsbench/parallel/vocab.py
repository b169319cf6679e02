r"""Label smoothing with the class (vocabulary) axis sharded across devices.

For models whose output layer is split over a ``model`` mesh axis, each device
holds a contiguous block of ``K / n`` classes of every row of logits. The
``uniform`` and ``off_target`` losses are computed without gathering the
logits, from the same four per-row statistics as :func:`lsbench.losses._core.row_stats`
(see that module), each reduced across the shards with ``jax.shard_map``:

    m      = pmax_shards(max_j z_j)                       (constant shift)
    lse    = log psum_shards(Σ_j exp(z_j − m))
    target = psum_shards([y in my block]·z_y) − m         (the owner's value; 0 elsewhere)
    total  = psum_shards(Σ_j z_j) − K·m

so the forward costs one ``pmax`` and one ``psum`` (of a 4-tuple: the three
sums and the owner count, fused into one all-reduce) per call, and the losses
are the unsharded closed forms with the **global** class count ``K``::

    uniform:     L = lse − (1−ε)·target − (ε/K)·total
    off_target:  L = lse − (1−ε)·target − ε/(K−1)·(total − target)

``K`` is read from the global logits outside ``shard_map``. Inside, the logits
block has ``K/n`` columns: an implementation that takes "the vocabulary size"
and "the mean log-probability" there (Megatron-LM's
``vocab_parallel_cross_entropy``, issues #737 and #7464) gets a loss and a
gradient that depend on the number of shards and differ from rank to rank.

Backward (``jax.custom_vjp``): each shard writes its own block of

    ∂L/∂z_j = ḡ_lse·exp(z_j − m − lse) + ḡ_target·[j = y] + ḡ_total

from the per-row ``m + lse`` saved by the forward, which is ``softmax − q``
for the closed forms above. It needs no collective at all.

Masked rows (``ignore_index``/``where``) get label 0 inside the kernel and
are zeroed afterwards (zero loss, zero cotangent, so zero gradient). A label
that no shard owns (out of range under ``jit``) makes its row's loss NaN, as
in the unsharded recipes. ``num_classes`` supports a vocabulary padded to a
multiple of the shard count: columns ``≥ num_classes`` are excluded from every
statistic, get zero gradient, and ``K = num_classes`` in ``ε/K``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, PartitionSpec as P

from lsbench.losses import _core
from lsbench.losses._core import RowStats
from lsbench.parallel.mesh import axis_size

RECIPES_SUPPORTED = ("uniform", "off_target")


def _shard_map(f, *, mesh, in_specs, out_specs):
    sm = getattr(jax, "shard_map", None)
    if sm is not None:
        return sm(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs)
    from jax.experimental.shard_map import shard_map as old  # JAX < 0.7

    return old(f, mesh=mesh, in_specs=in_specs, out_specs=out_specs, check_rep=False)


def _specs(ndim: int, axis: str, batch_axis):
    if ndim == 1:
        if batch_axis is not None:
            raise ValueError("batch_axis needs logits with a batch dimension, got a single row of shape (K,)")
        return P(axis), P()
    lead = (batch_axis,) + (None,) * (ndim - 2)
    return P(*lead, axis), P(*lead)


@functools.lru_cache(maxsize=None)
def _make_stats(mesh: Mesh, axis: str, batch_axis, ndim: int, k_total: int, k_valid: int):
    """The sharded ``row_stats`` for one (mesh, layout, K) configuration."""
    n = mesh.shape[axis]
    k_local = k_total // n
    padded = k_valid < k_total
    z_spec, row_spec = _specs(ndim, axis, batch_axis)

    def columns():
        # This shard's first class and the global class index of each local
        # column (contiguous blocks, shard i holds [i·K/n, (i+1)·K/n)).
        start = lax.axis_index(axis) * k_local
        return start, start + lax.broadcasted_iota(jnp.int32, (1,) * (ndim - 1) + (k_local,), ndim - 1)

    def fwd_local(z, y):
        dt = _core.compute_dtype(z.dtype)
        zc = z.astype(dt)
        start, col = columns()
        if padded:
            valid = col < k_valid
            z_max = jnp.where(valid, zc, -jnp.inf)
            z_sum = jnp.where(valid, zc, 0)
        else:
            z_max = z_sum = zc
        m = lax.pmax(jnp.max(z_max, axis=-1), axis)
        m = lax.stop_gradient(jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m)))
        sum_exp = jnp.sum(jnp.exp(z_max - m[..., None]), axis=-1)
        sum_z = jnp.sum(z_sum, axis=-1)
        y_local = y - start
        own = (y_local >= 0) & (y_local < k_local) & (y < k_valid)
        picked = jnp.take_along_axis(zc, jnp.clip(y_local, 0, k_local - 1)[..., None], axis=-1)[..., 0]
        picked = jnp.where(own, picked, jnp.zeros((), dt))
        sum_exp, sum_z, z_y, owners = lax.psum((sum_exp, sum_z, picked, own.astype(dt)), axis)
        z_y = jnp.where(owners == 1, z_y, jnp.full((), jnp.nan, dt))
        return m, jnp.log(sum_exp), z_y - m, sum_z - k_valid * m

    def bwd_local(z, y, m, lse, g_lse, g_target, g_total):
        dt = _core.compute_dtype(z.dtype)
        _, col = columns()
        grad = (
            g_lse[..., None] * jnp.exp(z.astype(dt) - (m + lse)[..., None])
            + jnp.where(col == y[..., None], g_target[..., None], jnp.zeros((), dt))
            + g_total[..., None]
        )
        if padded:
            grad = jnp.where(col < k_valid, grad, jnp.zeros((), dt))
        return grad.astype(z.dtype)

    fwd_sharded = _shard_map(fwd_local, mesh=mesh, in_specs=(z_spec, row_spec), out_specs=(row_spec,) * 4)
    bwd_sharded = _shard_map(bwd_local, mesh=mesh, in_specs=(z_spec,) + (row_spec,) * 6, out_specs=z_spec)

    @jax.custom_vjp
    def stats(z, y):
        return RowStats(*fwd_sharded(z, y))

    def stats_fwd(z, y):
        m, lse, target, total = fwd_sharded(z, y)
        return RowStats(m, lse, target, total), (z, y, m, lse)

    def stats_bwd(res, g):
        z, y, m, lse = res
        # g.shift is dropped: m is a constant shift, as in _core.row_stats.
        return bwd_sharded(z, y, m, lse, g.lse, g.target, g.total), _core._int_cotangent(y)

    stats.defvjp(stats_fwd, stats_bwd)
    return stats


def _check_layout(logits, mesh: Mesh, axis: str, batch_axis, num_classes):
    if not isinstance(mesh, Mesh):
        raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
    n = axis_size(mesh, axis)
    k_total = logits.shape[-1]
    if k_total % n:
        raise ValueError(
            f"the class axis ({k_total} classes) must split evenly over the {n} devices of mesh axis "
            f"{axis!r}; pad the vocabulary to a multiple of {n} and pass num_classes={k_total}"
        )
    if batch_axis is not None:
        if batch_axis == axis:
            raise ValueError(f"batch_axis and axis must be different mesh axes, both are {axis!r}")
        nb = axis_size(mesh, batch_axis)
        if logits.ndim < 2 or logits.shape[0] % nb:
            raise ValueError(
                f"the leading dimension of logits {logits.shape} must split evenly over the {nb} "
                f"devices of mesh axis {batch_axis!r}"
            )
    k_valid = k_total if num_classes is None else int(num_classes)
    if not 1 <= k_valid <= k_total:
        raise ValueError(f"num_classes={num_classes} must lie in [1, {k_total}] (the padded class axis)")
    return k_total, k_valid


def vocab_sharded_row_stats(
    logits, labels, mesh: Mesh, *, axis: str = "model", batch_axis: str | None = None, num_classes=None
) -> RowStats:
    """:func:`lsbench.losses._core.row_stats` for logits whose class axis is split over ``axis``.

    ``labels`` must be valid indices (masked rows mapped to 0). The returned
    statistics are global (identical on every shard) and have the closed-form,
    collective-free backward; any affine-target recipe can be built on them
    with ``K = num_classes or logits.shape[-1]``.
    """
    k_total, k_valid = _check_layout(logits, mesh, axis, batch_axis, num_classes)
    return _make_stats(mesh, axis, batch_axis, logits.ndim, k_total, k_valid)(logits, labels)


@functools.partial(jax.jit, static_argnames=("recipe", "mesh", "axis", "batch_axis", "k_valid"))
def _rows(logits, labels, mask, epsilon, *, recipe, mesh, axis, batch_axis, k_valid):
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    st = vocab_sharded_row_stats(logits, labels, mesh, axis=axis, batch_axis=batch_axis, num_classes=k_valid)
    k = k_valid  # the GLOBAL class count, never the shard's logits.shape[-1] // n
    if recipe == "uniform":
        rows = st.lse - (1 - eps) * st.target - (eps / k) * st.total
    else:
        rows = st.lse - (1 - eps) * st.target - eps / (k - 1) * (st.total - st.target)
    return _core.apply_mask(rows, mask)


def _prepare(logits, labels, mesh, recipe, epsilon, axis, batch_axis, ignore_index, where, num_classes):
    if recipe not in RECIPES_SUPPORTED:
        raise ValueError(f"vocab-sharded recipe must be one of {RECIPES_SUPPORTED}, got {recipe!r}")
    _core.check_epsilon(epsilon)
    logits, safe, mask = _core.prepare(logits, labels, ignore_index=ignore_index, where=where)
    _, k_valid = _check_layout(logits, mesh, axis, batch_axis, num_classes)
    if k_valid < logits.shape[-1]:
        # Padding columns are not classes: check the labels against the real K.
        _core.check_labels(safe, jax.ShapeDtypeStruct(logits.shape[:-1] + (k_valid,), logits.dtype))
    if recipe == "off_target":
        _core.check_num_classes(k_valid, 2, "off_target")
    return logits, safe, mask, k_valid


def vocab_sharded_per_example(
    logits,
    labels,
    mesh: Mesh,
    *,
    recipe: str = "uniform",
    epsilon=0.1,
    axis: str = "model",
    batch_axis: str | None = None,
    ignore_index=None,
    where=None,
    num_classes: int | None = None,
):
    """Per-position loss of ``recipe`` with the class axis of ``logits`` split over ``axis``.

    Equals ``RECIPES[recipe].per_example(logits[..., :num_classes], labels, ...)``
    for any number of shards.

    Args:
      logits: ``[..., K]`` floating logits (a global array; already sharded
        ``P(..., axis)`` avoids a reshard). ``K`` must divide by the size of ``axis``.
      labels: ``[...]`` integer class indices (global, replicated or split like the rows).
      mesh: a mesh with the axis ``axis`` (and ``batch_axis`` if given).
      recipe: ``"uniform"`` (ε/K) or ``"off_target"`` (ε/(K−1)).
      epsilon: smoothing ε in ``[0, 1]``.
      axis: mesh axis the class dimension is split over.
      batch_axis: optional mesh axis the leading dimension is split over
        (data parallelism combined with vocabulary sharding).
      ignore_index / where: masked rows, as in the unsharded recipes.
      num_classes: real vocabulary size when the class axis is padded.

    Returns:
      ``[...]`` losses in float32 (float64 for float64 logits), masked rows 0.
    """
    logits, safe, mask, k_valid = _prepare(
        logits, labels, mesh, recipe, epsilon, axis, batch_axis, ignore_index, where, num_classes
    )
    return _rows(logits, safe, mask, epsilon, recipe=recipe, mesh=mesh, axis=axis, batch_axis=batch_axis,
                 k_valid=k_valid)


def vocab_sharded_loss(
    logits,
    labels,
    mesh: Mesh,
    *,
    recipe: str = "uniform",
    epsilon=0.1,
    axis: str = "model",
    batch_axis: str | None = None,
    ignore_index=None,
    where=None,
    num_classes: int | None = None,
):
    """Mean of :func:`vocab_sharded_per_example` over the kept rows (0 when none is kept).

    The same reduction as ``RECIPES[recipe].loss``; works under ``jax.jit``
    and ``jax.grad`` (gradient sharded like ``logits``).
    """
    logits, safe, mask, k_valid = _prepare(
        logits, labels, mesh, recipe, epsilon, axis, batch_axis, ignore_index, where, num_classes
    )
    rows = _rows(logits, safe, mask, epsilon, recipe=recipe, mesh=mesh, axis=axis, batch_axis=batch_axis,
                 k_valid=k_valid)
    return _core.masked_mean(rows, mask)
