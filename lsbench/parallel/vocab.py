r"""Label smoothing with the class (vocabulary) axis sharded across devices.

For models whose output layer is split over a ``model`` mesh axis, each device
holds a contiguous block of ``K / n`` classes of every row of logits. The
``uniform`` and ``off_target`` losses are computed without gathering the
logits, from the same per-row statistics as :func:`lsbench.losses.primitives.row_stats`
(see that module), each reduced across the shards with ``jax.shard_map``:

    m      = pmax_shards(max_j z_j)                       (constant shift)
    lse    = log psum_shards(Σ_j exp(z_j − m))
    target = psum_shards([y in my block]·(z_y − m))       (the owner's value; 0 elsewhere)
    total  = psum_shards(Σ_j (z_j·s − m·s)) / s           (s: primitives.sum_scale(K))

so the forward costs one ``pmax`` and one ``psum`` (of a 4-tuple: the three
sums and the owner count, fused into one all-reduce) per call, and the losses
are the recipes' own closed forms (``rows_from_stats`` of
:mod:`lsbench.losses.recipes`) with the **global** class count ``K``.

``K`` is read from the global logits outside ``shard_map``. Inside, the logits
block has ``K/n`` columns: an implementation that takes "the vocabulary size"
and "the mean log-probability" there (Megatron-LM's
``vocab_parallel_cross_entropy``, issues #737 and #7464) gets a loss and a
gradient that depend on the number of shards and differ from rank to rank.

Backward (``jax.custom_vjp``): each shard writes its own block of

    ∂L/∂z_j = ḡ_lse·exp(−lse)·exp(z_j − m) + ḡ_target·[j = y] + ḡ_total + ḡ_mean/K

from the per-row ``m`` and ``lse`` saved by the forward, which is ``softmax − q``
for the closed forms above. It needs no collective at all.

Masked rows (``ignore_index``/``where``) get label 0 inside the kernel and
exact zeros in the loss and the gradient, whatever their logits hold. A label
that no shard owns (out of range under ``jit``, negative ones included) makes
its row's loss and gradient NaN, as in the unsharded recipes. ``num_classes`` supports a vocabulary padded to a
multiple of the shard count: columns ``≥ num_classes`` are excluded from every
statistic, get zero gradient, and ``K = num_classes`` in ``ε/K``.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.sharding import Mesh, PartitionSpec

from lsbench.losses import integer_recipes
from lsbench.losses import primitives as P
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
        return PartitionSpec(axis), PartitionSpec()
    lead = (batch_axis,) + (None,) * (ndim - 2)
    return PartitionSpec(*lead, axis), PartitionSpec(*lead)


@functools.lru_cache(maxsize=None)
def _make_stats(mesh: Mesh, axis: str, batch_axis, ndim: int, k_total: int, k_valid: int, masked: bool):
    """The sharded ``row_stats`` for one (mesh, layout, K, masked) configuration."""
    n = mesh.shape[axis]
    k_local = k_total // n
    padded = k_valid < k_total
    z_spec, row_spec = _specs(ndim, axis, batch_axis)
    s = P.sum_scale(k_valid)

    def columns():
        # This shard's first class and the global class index of each local
        # column (contiguous blocks, shard i holds [i·K/n, (i+1)·K/n)).
        start = lax.axis_index(axis) * k_local
        return start, start + lax.broadcasted_iota(jnp.int32, (1,) * (ndim - 1) + (k_local,), ndim - 1)

    def fwd_local(z, y):
        dt = P.compute_dtype(z.dtype)
        zc = z.astype(dt)
        start, col = columns()
        z_max = jnp.where(col < k_valid, zc, -jnp.inf) if padded else zc
        m = P.safe_shift(lax.stop_gradient(lax.pmax(jnp.max(z_max, axis=-1), axis)))
        sum_exp = jnp.sum(jnp.exp(z_max - m[..., None]), axis=-1)
        scaled = zc * s - (m * s)[..., None]
        acc = jnp.sum(jnp.where(col < k_valid, scaled, jnp.zeros((), dt)) if padded else scaled, axis=-1)
        y_local = y - start
        own = (y_local >= 0) & (y_local < k_local) & (y < k_valid)
        picked = jnp.take_along_axis(zc, jnp.clip(y_local, 0, k_local - 1)[..., None], axis=-1)[..., 0]
        picked = jnp.where(own, picked - m, jnp.zeros((), dt))
        sum_exp, acc, z_y, owners = lax.psum((sum_exp, acc, picked, own.astype(dt)), axis)
        total, mean = P.finish_sums(acc, k_valid)
        return m, jnp.log(sum_exp), jnp.where(owners == 1, z_y, jnp.full((), jnp.nan, dt)), total, mean

    def bwd_local(z, y, keep, m, lse, g_lse, g_target, g_row):
        dt = P.compute_dtype(z.dtype)
        _, col = columns()
        zero = jnp.zeros((), dt)
        grad = (
            (g_lse * jnp.exp(-lse))[..., None] * jnp.exp(z.astype(dt) - m[..., None])  # exact shift
            + jnp.where(col == y[..., None], g_target[..., None], zero)
            + g_row[..., None]
        )
        if padded:
            grad = jnp.where(col < k_valid, grad, zero)
        if masked:  # a masked row gets exact zeros whatever its logits hold
            grad = jnp.where(keep[..., None], grad, zero)
        return grad.astype(z.dtype)

    fwd_sharded = _shard_map(fwd_local, mesh=mesh, in_specs=(z_spec, row_spec), out_specs=(row_spec,) * 5)
    bwd_sharded = _shard_map(bwd_local, mesh=mesh, in_specs=(z_spec,) + (row_spec,) * 7, out_specs=z_spec)

    @jax.custom_vjp
    def stats(z, y, keep):
        return P.RowStats(*fwd_sharded(z, y))

    def stats_fwd(z, y, keep):
        st = P.RowStats(*fwd_sharded(z, y))
        return st, (z, y, keep, st.shift, st.lse)

    def stats_bwd(res, g):
        z, y, keep, m, lse = res
        # g.shift is dropped: m is a constant shift, as in primitives.row_stats.
        g_row = P.row_constant_cotangent(g, y, k_valid)
        keep_in = keep if masked else jnp.ones(y.shape, bool)
        grad = bwd_sharded(z, y, keep_in, m, lse, g.lse, g.target, g_row)
        return grad, P.int_cotangent(y), None if keep is None else P.int_cotangent(keep)

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
    logits, labels, mesh: Mesh, *, axis: str = "model", batch_axis: str | None = None, num_classes=None,
    keep=None,
) -> P.RowStats:
    """:func:`lsbench.losses.primitives.row_stats` for logits whose class axis is split over ``axis``.

    ``labels`` must be class indices (masked rows mapped to 0); ``keep`` an
    optional mask of the rows that get a gradient. The returned statistics are
    global (identical on every shard) and have the closed-form,
    collective-free backward; any affine-target recipe can be built on them
    with ``K = num_classes or logits.shape[-1]``.
    """
    k_total, k_valid = _check_layout(logits, mesh, axis, batch_axis, num_classes)
    stats = _make_stats(mesh, axis, batch_axis, logits.ndim, k_total, k_valid, keep is not None)
    return stats(logits, labels, keep)


@functools.partial(jax.jit, static_argnames=("recipe", "mesh", "axis", "batch_axis", "k_valid"))
def _rows(logits, labels, mask, label_weight, closed, *, recipe, mesh, axis, batch_axis, k_valid):
    st = vocab_sharded_row_stats(logits, labels, mesh, axis=axis, batch_axis=batch_axis, num_classes=k_valid,
                                 keep=mask)
    # the GLOBAL class count, never the shard's logits.shape[-1] // n
    return integer_recipes.rows(recipe, st, k_valid, closed, label_weight, mask)


def _run(logits, labels, mesh, recipe, axis, batch_axis, num_classes, params):
    if recipe not in RECIPES_SUPPORTED:
        raise ValueError(f"vocab-sharded recipe must be one of {RECIPES_SUPPORTED}, got recipe={recipe!r}")
    p = integer_recipes.resolve(recipe, params, path="vocab_sharded_loss")
    logits = P.check_logits(logits)
    _, k_valid = _check_layout(logits, mesh, axis, batch_axis, num_classes)
    prep = integer_recipes.prepare(recipe, p, logits, labels, path="vocab_sharded_loss", num_classes=k_valid)
    rows = _rows(logits, prep.safe, prep.mask, prep.label_weight, prep.closed, recipe=recipe, mesh=mesh, axis=axis,
                 batch_axis=batch_axis, k_valid=k_valid)
    return rows, prep


def vocab_sharded_loss(
    logits,
    labels,
    mesh: Mesh,
    *,
    recipe: str = "uniform",
    axis: str = "model",
    batch_axis: str | None = None,
    num_classes: int | None = None,
    **params,
):
    """``RECIPES[recipe].loss`` with the class axis of ``logits`` split over the mesh axis ``axis``.

    Equals ``RECIPES[recipe].loss(logits[..., :num_classes], labels, **params)``
    (the recipe's own reduction: mean over kept rows, 0 when none is kept) for
    any number of shards; works under ``jax.jit`` and ``jax.grad`` (gradient
    sharded like ``logits``).

    Args:
      logits: ``[..., K]`` floating logits (a global array; already sharded
        ``P(..., axis)`` avoids a reshard). ``K`` must divide by the size of ``axis``.
      labels: ``[...]`` integer class indices (global, replicated or split like the rows).
      mesh: a mesh with the axis ``axis`` (and ``batch_axis`` if given).
      recipe: ``"uniform"`` (ε/K) or ``"off_target"`` (ε/(K−1)).
      axis: mesh axis the class dimension is split over.
      batch_axis: optional mesh axis the leading dimension is split over
        (data parallelism combined with vocabulary sharding).
      num_classes: real vocabulary size when the class axis is padded.
      **params: the recipe's keyword parameters with its defaults (``epsilon``,
        ``ignore_index``, ``where``; uniform's ``z_loss`` and class ``weight``
        with ``weight_mode="example"``).
    """
    rows, prep = _run(logits, labels, mesh, recipe, axis, batch_axis, num_classes, params)
    return integer_recipes.reduce(recipe, rows, prep.mask, prep.label_weight)


def vocab_sharded_per_example(logits, labels, mesh: Mesh, **options):
    """Per-position losses of :func:`vocab_sharded_loss` (same keyword arguments), masked rows 0.

    Equals ``RECIPES[recipe].per_example(logits[..., :num_classes], labels, **params)``;
    ``[...]`` losses in float32 (float64 for float64 logits).
    """
    layout = {k: options.pop(k, v) for k, v in P.keyword_defaults(vocab_sharded_loss).items()}
    return _run(logits, labels, mesh, layout["recipe"], layout["axis"], layout["batch_axis"],
                layout["num_classes"], options)[0]
