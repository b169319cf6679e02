r"""``tf_onehot``: smoothing applied to a dense label matrix (TensorFlow/Keras style).

Labels are a one-hot or probability matrix ``Y[..., K]``::

    Y' = (1 − ε)·Y + ε/K,         L = −Σ_j Y'_j log p_j

Closed form (``lse = logsumexp(z)``, ``S = Σ_j z_j``, ``ΣY = Σ_j Y_j``)::

    L = ((1 − ε)·ΣY + ε)·lse − (1 − ε)·Σ_j Y_j z_j − (ε/K)·S
      = (1 − ε)·Σ_j Y_j·(lse − z_j) + ε·(lse − S/K)

The code reduces ``Σ_j Y_j·(lse − z_j) = ΣY·(lse − m) + Σ_j Y_j·(m − z_j)``
(``m = max z``: two non-negative parts, no cancellation) and the class mean
relative to ``m``, each sum read straight from ``z`` and ``Y``.

Gradient ``(ΣY')·softmax(z) − Y'``; for rows of ``Y`` that sum to 1 this is
``softmax(z) − Y'``. For one-hot ``Y`` the recipe equals ``uniform``. Rows of
``Y`` must be non-negative; they need not sum to 1 (Keras does not check either),
and the gradient then carries the factor ``ΣY'``. The labels are differentiable
(``∂L/∂Y_j = −(1−ε)·log p_j``). Reduction: mean over kept rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def _label_mass(y, dt):
    """``ΣY`` per row: a matrix-vector product for float32/float64 ``Y``, a row sum for 16-bit ``Y``.

    Measured on XLA:CPU at 4096×1000: the product takes 0.19 ms in float32 (the row
    sum 0.27 ms) but 1.3 ms in bfloat16, where XLA converts ``Y`` to a float32 copy
    first (the row sum, converting inside its loop: 0.11 ms).
    """
    if y.dtype == dt:
        ones = jnp.ones((y.shape[-1],), y.dtype)
        return jax.lax.dot_general(y, ones, (((y.ndim - 1,), (0,)), ((), ())), preferred_element_type=dt)
    return P.row_sum(lambda a, r, _: a[0].astype(dt), (y,))


def _fwd_values(z, y):
    """``(m, lse, ce, mean)`` and ``ΣY`` per row: ``ce = Σ_j Y_j·(lse − (z_j − m)) = −Σ_j Y_j log p_j``.

    ``ce = lse·ΣY + Σ_j Y_j·(m − z_j)``: two non-negative parts (``Y_j ≥ 0``,
    ``z_j ≤ m``), so no cancellation, and the product pass -- the one read of ``Y``
    besides ``ΣY`` -- needs no ``lse``. It reduces ``Y_j·min(m/2 − z_j/2, MAX)`` and
    doubles the sum (halving is exact and keeps ``m − z`` from overflowing for
    logits near ±3e38). The clamp is active only at a −inf logit: a class with
    ``Y_j = 0`` there contributes ``0·MAX = 0``, not ``0·inf = NaN``; one with
    ``Y_j > 1/2`` (a one-hot label) still gives +inf, one with ``0 < Y_j ≤ 1/2`` a
    finite loss of at least ``2·Y_j·MAX·(1 − ε)`` instead of +inf. A ``min`` rather than a select keeps
    the row sum fused with its producer: with a select XLA:CPU wrote the
    ``[..., K]`` terms as a float32 array first (measured).

    Each reduction reads ``z`` (and ``Y``) itself, converting 16-bit inputs inside its
    own loop (no float32 copy of a 16-bit ``Y``); the optimisation barriers (as in
    :func:`lsbench.losses.primitives.row_stats`) give every pass its own operands,
    since XLA materialises a ``z − m``, a broadcast ``m`` or a converted ``Y`` that two
    passes share. They change no value. Measured (XLA:CPU, JAX 0.10): no
    ``[..., K]`` temporary in the forward or backward, float32 or bfloat16.
    """
    dt = P.compute_dtype(z.dtype)
    k = z.shape[-1]
    big = jnp.finfo(dt).max
    m = P.row_shift(z, dt)
    lse = jnp.log(P.exp_sum(z, m, dt))
    # Each pass gets its own operands (see above): m/2 here, m for the mean, a barrier on Y for ΣY.
    zc, yc, mc = jax.lax.optimization_barrier((z, y, m * 0.5))
    ysum = _label_mass(jax.lax.optimization_barrier(y), dt)
    below = P.row_sum(lambda a, r, _: a[1].astype(dt) * jnp.minimum(r[0] - a[0].astype(dt) * 0.5, big),
                      (zc, yc), (mc,))
    ce = lse * ysum + below * 2.0
    # The class mean from the exactly scaled z·s − m·s: z − m overflows for logits near ±3e38.
    zs, ms, _ = jax.lax.optimization_barrier((z, m, lse))
    _, mean = P.finish_sums(P.scaled_shifted_sum(zs, ms, dt), k)
    return (m, lse, ce, mean), ysum


@jax.custom_vjp
def _dense_stats(z, y, keep):
    """``(m, lse, −Σ Y_j log p_j, mean_j (z_j − m))`` per row, m constant."""
    return _fwd_values(z, y)[0]


def _dense_stats_fwd(z, y, keep):
    out, ysum = _fwd_values(z, y)
    return out, (z, y, keep, out[0], out[1], ysum, out[2], out[3])


def _dense_stats_bwd(res, g):
    z, y, keep, m, lse, ysum, ce, mean = res
    _, g_lse, g_ce, g_mean = g
    dt = P.compute_dtype(z.dtype)
    # m after the forward's sums: every read of z comes before the gradient is written, so a
    # donated z is overwritten in place instead of copied (see primitives.after).
    m = P.after(m, ce, mean)
    # See _fwd_values: no z − m shared with the forward (lse makes this barrier differ from
    # the forward's, which CSE would otherwise merge it with).
    z, y, m, _ = jax.lax.optimization_barrier((z, y, m, lse))
    d = z.astype(dt) - m[..., None]
    # ∂ce/∂z = ΣY·softmax − Y, ∂lse/∂z = softmax: one pass writes (ḡ_lse + ḡ_ce·ΣY)·p − ḡ_ce·Y + ḡ_mean/K.
    scale = (g_lse + g_ce * ysum) * jnp.exp(-lse)
    gz = scale[..., None] * jnp.exp(d) - g_ce[..., None] * y.astype(dt) + (g_mean / z.shape[-1])[..., None]
    gy = g_ce[..., None] * (lse[..., None] - d)  # ∂ce/∂Y_j = −log p_j
    if keep is not None:  # masked rows get exact zeros whatever they hold
        gz = jnp.where(keep[..., None], gz, jnp.zeros((), dt))
        gy = jnp.where(keep[..., None], gy, jnp.zeros((), dt))
    return gz.astype(z.dtype), gy.astype(y.dtype), None if keep is None else P.int_cotangent(keep)


_dense_stats.defvjp(_dense_stats_fwd, _dense_stats_bwd)


@jax.jit
def _rows(logits, labels, mask, epsilon):
    dt = P.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    _, lse, ce, mean = _dense_stats(logits, labels, mask)
    rows = P.times(1 - eps, ce) + P.times(eps, lse - mean)
    return P.apply_mask(rows, mask)


def _prepare(logits, labels, epsilon, where):
    P.check_epsilon(epsilon)
    logits = P.check_logits(logits)
    labels = jnp.asarray(labels) if not isinstance(labels, jax.Array) else labels
    if not jnp.issubdtype(labels.dtype, jnp.floating):
        raise TypeError(
            f"tf_onehot takes a dense floating label matrix [..., K] (one-hot or probabilities), "
            f"got dtype {labels.dtype}; use jax.nn.one_hot(labels, K) or an integer-label recipe"
        )
    if labels.shape != logits.shape:
        raise ValueError(
            f"tf_onehot labels must have the logits' shape {logits.shape}, got {labels.shape}"
        )
    if P.is_concrete(labels) and labels.size:
        lab = np.asarray(labels)  # in its own dtype: no float64 copy of the whole matrix
        if not np.isfinite(lab).all() or (lab < 0).any():
            raise ValueError("tf_onehot labels must be finite and non-negative (a one-hot or probability matrix)")
    mask = P.checked_where(where, logits.shape[:-1])
    return logits, labels, mask


def tf_onehot(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
              where: jax.Array | None = None) -> jax.Array:
    r"""Per-example ``−Σ_j ((1−ε)·Y_j + ε/K)·log p_j`` for a dense label matrix ``Y`` (Keras ``label_smoothing``).

    .. math::

      L = \big((1-\varepsilon)\textstyle\sum_j Y_j + \varepsilon\big)\operatorname{logsumexp}(z)
          - (1-\varepsilon)\sum_j Y_j z_j - \frac{\varepsilon}{K}\sum_j z_j

    Args:
      logits: ``[..., K]`` floating logits.
      labels: ``[..., K]`` non-negative one-hot or probability rows (differentiable).
      epsilon: smoothing ε in ``[0, 1]``.
      where: boolean ``[...]`` mask of rows to keep (broadcastable).

    Returns:
      ``[...]`` losses in float32 (float64 for float64 logits); masked rows are 0.

    Examples:
      >>> import jax, jax.numpy as jnp
      >>> from lsbench.losses import tf_onehot
      >>> print(tf_onehot(jnp.zeros((1, 4)), jax.nn.one_hot(jnp.array([2]), 4), epsilon=0.1))  # log 4
      [1.3862944]

    References:
      TensorFlow/Keras ``CategoricalCrossentropy(label_smoothing=ε)``; Szegedy et al. 2016, §7.
    """
    logits, labels, mask = _prepare(logits, labels, epsilon, where)
    return _rows(logits, labels, mask, epsilon)



loss = recipe_api.reduced(tf_onehot, P.masked_mean, "the mean over the kept rows (0 when none is kept)")


def targets(labels, num_classes=None, *, epsilon):
    """Dense ``(1−ε)·Y + ε/K``; ``num_classes`` must match ``Y.shape[-1]`` when given."""
    P.check_epsilon(epsilon)
    labels = jnp.asarray(labels)
    k = labels.shape[-1]
    if num_classes is not None and num_classes != k:
        raise ValueError(f"num_classes={num_classes} does not match the label matrix's K={k}")
    return (1 - epsilon) * labels + epsilon / k
