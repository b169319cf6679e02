r"""``tf_onehot``: smoothing applied to a dense label matrix (TensorFlow/Keras style).

Labels are a one-hot or probability matrix ``Y[..., K]``::

    Y' = (1 − ε)·Y + ε/K,         L = −Σ_j Y'_j log p_j

Closed form (``lse = logsumexp(z)``, ``S = Σ_j z_j``, ``ΣY = Σ_j Y_j``)::

    L = ((1 − ε)·ΣY + ε)·lse − (1 − ε)·Σ_j Y_j z_j − (ε/K)·S
      = (1 − ε)·Σ_j Y_j·(lse − z_j) + ε·(lse − S/K)

The code reduces the second form (non-negative terms ``−log p_j``, no
cancellation), each sum read straight from ``z`` and ``Y``.

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


def _fwd_values(z, y):
    """``(m, lse, ce, mean)`` and ``ΣY`` per row: ``ce = Σ_j Y_j·(lse − (z_j − m)) = −Σ_j Y_j log p_j``.

    Each reduction reads ``z`` (and ``Y``) itself, converting 16-bit inputs inside
    its own loop; the optimisation barriers (as in
    :func:`lsbench.losses.primitives.row_stats`) keep XLA from sharing, and so
    materialising, one ``z − m`` between the passes; they change no value.
    ``ΣY`` is only the backward's residual (the loss needs no ``ΣY``). Measured on
    XLA:CPU (JAX 0.10): XLA still writes the ``ce`` terms once, as a float32
    ``[..., K]`` array, because it merges the row sum into the batch mean's
    reduction, and for 16-bit ``Y`` the product for ``ΣY`` reads a float32 copy of ``Y``.
    """
    dt = P.compute_dtype(z.dtype)
    k = z.shape[-1]
    m = P.safe_shift(jax.lax.stop_gradient(jnp.max(z, axis=-1)).astype(dt))
    lse = jnp.log(jnp.sum(jnp.exp(z.astype(dt) - m[..., None]), axis=-1))
    zc, yc, mc = jax.lax.optimization_barrier((z, y, m))
    # ce from non-negative terms −log p_j: no cancellation. P.times: a class with
    # Y_j = 0 and a −inf logit contributes 0, not 0·inf = NaN.
    ce = jnp.sum(P.times(yc.astype(dt), lse[..., None] - (zc.astype(dt) - mc[..., None])), axis=-1)
    # ΣY as a matrix-vector product: as a row sum, XLA fuses it into the gradient pass
    # and materialises z − m (and for 16-bit Y a float32 copy of Y) there (measured).
    ysum = jax.lax.dot_general(y, jnp.ones((k,), y.dtype), (((y.ndim - 1,), (0,)), ((), ())),
                               preferred_element_type=dt)
    # The class mean from the exactly scaled z·s − m·s: z − m overflows for logits near ±3e38.
    s = P.sum_scale(k)
    scaled = jax.lax.optimization_barrier(z).astype(dt) * s - (m * s)[..., None]
    _, mean = P.finish_sums(jnp.sum(scaled, axis=-1), k)
    return (m, lse, ce, mean), ysum


@jax.custom_vjp
def _dense_stats(z, y, keep):
    """``(m, lse, −Σ Y_j log p_j, mean_j (z_j − m))`` per row, m constant."""
    return _fwd_values(z, y)[0]


def _dense_stats_fwd(z, y, keep):
    out, ysum = _fwd_values(z, y)
    return out, (z, y, keep, out[0], out[1], ysum)


def _dense_stats_bwd(res, g):
    z, y, keep, m, lse, ysum = res
    _, g_lse, g_ce, g_mean = g
    dt = P.compute_dtype(z.dtype)
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
        lab = np.asarray(labels, dtype=np.float64)
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
