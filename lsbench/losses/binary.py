r"""The shared pieces of the sigmoid (multi-label) recipes: elementwise binary
cross-entropy on logits ``x[..., K]`` with a target ``t[..., K]`` in ``[0, 1]``.

Per element::

    ℓ(x, t) = −t·log σ(x) − (1 − t)·log(1 − σ(x)) = softplus(x) − t·x

with gradient ``∂ℓ/∂x = σ(x) − t``; each recipe reports the mean over the
class axis, ``L = (1/K)·Σ_j ℓ(x_j, t_j)`` (Keras' ``binary_crossentropy``
reduces the class axis by a mean; timm and mmpretrain take the mean over all
``B·K`` elements, which is the mean over rows of this ``L``).

For integer labels with an on value ``t_y = on`` and an off value ``t_j = off``
the class sum never needs the target matrix::

    K·L = Σ_j softplus(x_j) − off·Σ_j x_j − (on − off)·x_y

:func:`softplus` is written as a shifted log-sum-exp of ``(0, x)`` whose shift
``m = max(x, 0)`` (a stop-gradient maximum, as in the softmax recipes) cancels
exactly, so the code theorems of :mod:`proofs.code` can check it over the reals;
``log1p(expm1(−m) + exp(x − m))`` keeps full precision for very negative ``x``.

Fast path (:func:`integer_rows`, :func:`dense_rows`): a ``jax.custom_vjp`` whose
forward is one row sum read straight from the logits (and ``Y``), through
:func:`lsbench.losses.primitives.row_sum`, plus the label gather; its backward is
one elementwise pass writing ``(ḡ/K)·(σ(x) − t)`` (for integer labels ``t`` is
``off`` with the label entry written in place, as in ``row_stats``' backward).
XLA's optimised HLO holds no ``[..., K]`` buffer besides the gradient(s).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + exp(x))`` elementwise, overflow-free and exact for very negative ``x``.

    The shift ``m = max(x, 0)`` is written ``x/2 + max(x, −x)/2`` (exact in floating point):
    a maximum of two logits, which the code theorems treat as an arbitrary shift that must
    cancel (it does: ``m + log(e^{−m} + e^{x−m}) = log(1 + e^x)`` for every ``m``).
    """
    m = jax.lax.stop_gradient(0.5 * x + 0.5 * jnp.maximum(x, -x))
    return m + jnp.log1p(jnp.expm1(-m) + jnp.exp(x - m))


def _row_scale(g, labels, keep, num_classes: int):
    """``ḡ/K`` per row: NaN for an out-of-range label, 0 for a masked row."""
    scale = P.nan_where_out_of_range(g / num_classes, labels, num_classes)
    return scale if keep is None else jnp.where(keep, scale, jnp.zeros((), scale.dtype))


def _integer_grad(logits, labels, keep, on, off, scale):
    """``scale·(σ(x) − off − (on − off)·[j = y])`` in the logits' dtype, in one elementwise pass.

    float32/float64: the pass writes ``scale·(σ(x) − off)`` and a vmapped scatter overwrites the
    label entry of each row in place (:func:`lsbench.losses.primitives.set_label_entries`, as ``row_stats``' backward);
    16-bit logits: an iota select inside the pass (XLA:CPU has no 16-bit scatter). Masked rows
    are exact zeros whatever their logits hold (a select, not a product with 0).
    """
    dt = P.compute_dtype(logits.dtype)
    k = logits.shape[-1]
    zero = jnp.zeros((), dt)
    if logits.dtype != dt:
        base = scale[..., None] * (jax.nn.sigmoid(logits.astype(dt)) - off)
        iota = jax.lax.broadcasted_iota(jnp.int32, (1,) * (logits.ndim - 1) + (k,), logits.ndim - 1)
        base = base - jnp.where(iota == labels[..., None], scale[..., None] * (on - off), zero)
        if keep is not None:
            base = jnp.where(keep[..., None], base, zero)
        return base.astype(logits.dtype)
    x_y = jnp.take_along_axis(logits, labels[..., None], axis=-1, mode="fill")[..., 0].astype(dt)
    value = scale * (jax.nn.sigmoid(x_y) - on)
    if keep is not None:
        value = jnp.where(keep, value, zero)
    # The pass after the label entries' gather: every read of the logits comes before the
    # gradient is written, so donated logits are overwritten in place, not copied.
    base = P.after(scale, value)[..., None] * (jax.nn.sigmoid(logits.astype(dt)) - off)
    if keep is not None:
        base = jnp.where(keep[..., None], base, zero)
    return P.set_label_entries(base.astype(logits.dtype), labels, value)


def _integer_values(logits, labels, keep, on, off):
    """Masked ``(1/K)·(Σ_j (softplus(x_j) − off·x_j) − (on − off)·x_y)``: one pass over the logits."""
    dt = P.compute_dtype(logits.dtype)
    k = logits.shape[-1]
    on, off = jnp.asarray(on, dt), jnp.asarray(off, dt)

    def term(a, _, s):
        x = a[0].astype(dt)
        return softplus(x) - P.times(s[0], x)

    # times: ε = 0 gives off = 0, and 0·(−inf) must be 0 (a −inf logit masks a class out).
    total = P.row_sum(term, (logits,), scalars=(off,))
    # 16-bit logits: the barrier keeps XLA from sharing one float32 copy of the logits between
    # the sum and the gather (a materialised [..., K] array); it changes no value.
    gathered = jax.lax.optimization_barrier(logits) if logits.dtype != dt else logits
    x_y = jnp.take_along_axis(gathered, labels[..., None], axis=-1, mode="fill")[..., 0].astype(dt)
    total = P.nan_where_out_of_range(total - P.times(on - off, x_y), labels, k)
    return P.apply_mask(total / k, keep)


def closed_vjp(values, backward):
    """``values`` as a ``jax.custom_vjp`` whose residuals are its inputs and its per-row output,
    and whose backward is ``backward(inputs, ḡ)`` (a closed form of the inputs).

    ``ḡ`` reaches ``backward`` through :func:`lsbench.losses.primitives.after` the forward's
    output, so every forward read of the logits comes before the gradient is written: with the
    logits donated, XLA then writes the gradient into their buffer instead of copying them.
    """
    fn = jax.custom_vjp(values)

    def forward(*inputs):
        out = values(*inputs)
        return out, (inputs, out)

    def backward_after_forward(res, g):
        inputs, out = res
        return backward(inputs, P.after(g, out))

    fn.defvjp(forward, backward_after_forward)
    return fn


def _integer_rows_bwd(res, g):
    logits, labels, keep, on, off = res
    # Without the barrier XLA shares −x (σ's exp(−x) and the forward's max(x, −x)) between the
    # passes and materialises it as a [..., K] array; it changes no value.
    logits, on, off = jax.lax.optimization_barrier((logits, on, off))
    dt = P.compute_dtype(logits.dtype)
    scale = _row_scale(g.astype(dt), labels, keep, logits.shape[-1])
    grad = _integer_grad(logits, labels, keep, jnp.asarray(on, dt), jnp.asarray(off, dt), scale)
    # on and off are constants of the recipe (functions of ε only): no gradient flows to them.
    return grad, P.int_cotangent(labels), None if keep is None else P.int_cotangent(keep), \
        jnp.zeros_like(on), jnp.zeros_like(off)


_integer_rows = closed_vjp(_integer_values, _integer_rows_bwd)


@jax.jit
def integer_rows(logits, labels, mask, on, off):
    """Masked ``(1/K)·(Σ softplus(x) − off·Σ x − (on − off)·x_y)`` per row (labels already safe).

    Forward: one row sum read straight from the logits (:func:`lsbench.losses.primitives.row_sum`)
    and the label gather; backward: one elementwise pass ``(ḡ/K)·(σ(x) − t)``. A label outside
    ``[0, K)`` gives its row a NaN loss and a NaN gradient row (never a silent wrong number).
    """
    dt = P.compute_dtype(logits.dtype)
    return _integer_rows(logits, labels, mask, jnp.asarray(on, dt), jnp.asarray(off, dt))


def _dense_values(logits, labels, keep, on, off):
    """Masked ``(1/K)·(Σ_j softplus(x_j) − Σ_j t_j·x_j)`` with ``t = off + (on − off)·Y``.

    Two row sums (the first reads ``x``, the second ``x`` and ``Y``), not one sum of the
    differences: XLA:CPU runs a row reduction that reads two arrays *and* evaluates the
    transcendentals about 3x slower at 256×10 (measured 90 µs vs 26 µs forward) and no faster
    at 4096×1000 or 1024×32000 (8.4 vs 8.3 ms, 77 vs 65 ms), on 2 loaded cores.
    """
    dt = P.compute_dtype(logits.dtype)
    scalars = (jnp.asarray(on - off, dt), jnp.asarray(off, dt))
    total = P.row_sum(lambda a, _, s: softplus(a[0].astype(dt)), (logits,))
    # The barrier keeps the two sums from being fused back into one reduction.
    x, y = jax.lax.optimization_barrier((logits, labels))
    total = total - P.row_sum(lambda a, _, s: (s[1] + s[0] * a[1].astype(dt)) * a[0].astype(dt), (x, y), scalars=scalars)
    return P.apply_mask(total / logits.shape[-1], keep)


def _dense_rows_bwd(res, g):
    logits, labels, keep, on, off = res
    # See _integer_rows_bwd: keeps XLA from materialising −x and the target t shared with the forward.
    logits, labels, on, off = jax.lax.optimization_barrier((logits, labels, on, off))
    dt = P.compute_dtype(logits.dtype)
    k = logits.shape[-1]
    scale = g.astype(dt) / k
    if keep is not None:
        scale = jnp.where(keep, scale, jnp.zeros((), dt))
    zero = jnp.zeros((), dt)
    x, y = logits.astype(dt), labels.astype(dt)
    grad_x = scale[..., None] * (jax.nn.sigmoid(x) - (off + (on - off) * y))
    grad_y = -(scale * (on - off))[..., None] * x
    if keep is not None:  # masked rows: exact zeros whatever their logits and labels hold
        grad_x = jnp.where(keep[..., None], grad_x, zero)
        grad_y = jnp.where(keep[..., None], grad_y, zero)
    return grad_x.astype(logits.dtype), grad_y.astype(labels.dtype), \
        None if keep is None else P.int_cotangent(keep), jnp.zeros_like(on), jnp.zeros_like(off)


_dense_rows = closed_vjp(_dense_values, _dense_rows_bwd)


@jax.jit
def dense_rows(logits, labels, mask, on, off):
    """Masked ``(1/K)·Σ_j (softplus(x_j) − t_j·x_j)`` per row for ``t = off + (on − off)·Y``.

    ``labels`` is the dense ``[..., K]`` matrix ``Y`` (differentiable: ``∂L/∂Y_j =
    −(on − off)·x_j/K``). Forward: one row sum reading ``x`` and ``Y`` once; backward: one
    elementwise pass writing both gradients, no target matrix in between.
    """
    dt = P.compute_dtype(logits.dtype)
    return _dense_rows(logits, labels, mask, jnp.asarray(on, dt), jnp.asarray(off, dt))


def prepare_integer(logits, labels, *, epsilon, ignore_index, where):
    """Checks for the integer-label sigmoid recipes: ``(logits, safe_labels, mask)``."""
    P.check_epsilon(epsilon)
    return P.prepare(logits, labels, ignore_index=ignore_index, where=where)


def prepare_dense(logits, labels, *, epsilon, where, recipe: str):
    """Checks for a dense ``[..., K]`` label matrix with entries in ``[0, 1]``: ``(logits, labels, mask)``."""
    P.check_epsilon(epsilon)
    logits = P.check_logits(logits)
    labels = jnp.asarray(labels) if not isinstance(labels, jax.Array) else labels
    if not jnp.issubdtype(labels.dtype, jnp.floating):
        raise TypeError(f"{recipe} labels must be a floating [..., K] matrix of 0/1 or probabilities, "
                        f"got dtype {labels.dtype}; use jax.nn.one_hot(labels, K) for class indices")
    if labels.shape != logits.shape:
        raise ValueError(f"{recipe} labels must have the logits' shape {logits.shape}, got {labels.shape}")
    if P.is_concrete(labels) and labels.size:
        lab = np.asarray(labels, dtype=np.float64)
        if not np.isfinite(lab).all() or (lab < 0).any() or (lab > 1).any():
            raise ValueError(f"{recipe} labels must lie in [0, 1] (0/1 or probabilities per class)")
    return logits, labels, P.checked_where(where, logits.shape[:-1])


def onehot_targets(labels, num_classes: int, on, off):
    """Dense ``t = off + (on − off)·onehot(y)`` (tests and proofs only; not the fast path)."""
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return off + (on - off) * onehot
