r"""``tf_onehot``: smoothing applied to a dense label matrix (TensorFlow/Keras style).

Labels are a one-hot or probability matrix ``Y[..., K]``::

    Y' = (1 − ε)·Y + ε/K,         L = −Σ_j Y'_j log p_j

Closed form (``lse = logsumexp(z)``, ``S = Σ_j z_j``, ``ΣY = Σ_j Y_j``)::

    L = ((1 − ε)·ΣY + ε)·lse − (1 − ε)·Σ_j Y_j z_j − (ε/K)·S

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

from lsbench.losses import _core

DEFAULT_EPSILON = 0.1


def _fwd_values(z, y):
    dt = _core.compute_dtype(z.dtype)
    zc = z.astype(dt)
    m = jax.lax.stop_gradient(jnp.max(zc, axis=-1))
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    d = zc - m[..., None]
    yc = y.astype(dt)
    lse = jnp.log(jnp.sum(jnp.exp(d), axis=-1))
    return m, lse, jnp.sum(yc * d, axis=-1), jnp.sum(yc, axis=-1), jnp.sum(d, axis=-1)


@jax.custom_vjp
def _dense_stats(z, y):
    """``(m, lse, Σ Y_j (z_j − m), ΣY, Σ (z_j − m))`` per row, m constant."""
    return _fwd_values(z, y)


def _dense_stats_fwd(z, y):
    out = _fwd_values(z, y)
    m, lse = out[0], out[1]
    return out, (z, y, m, lse)


def _dense_stats_bwd(res, g):
    z, y, m, lse = res
    _, g_lse, g_yz, g_ysum, g_total = g
    dt = _core.compute_dtype(z.dtype)
    d = z.astype(dt) - m[..., None]
    gz = g_lse[..., None] * jnp.exp(d - lse[..., None]) + g_yz[..., None] * y.astype(dt) + g_total[..., None]
    gy = g_yz[..., None] * d + g_ysum[..., None]
    return gz.astype(z.dtype), gy.astype(y.dtype)


_dense_stats.defvjp(_dense_stats_fwd, _dense_stats_bwd)


@jax.jit
def _rows(logits, labels, mask, epsilon):
    k = logits.shape[-1]
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    _, lse, yz, ysum, total = _dense_stats(logits, labels)
    rows = ((1 - eps) * ysum + eps) * lse - (1 - eps) * yz - (eps / k) * total
    return _core.apply_mask(rows, mask)


def _prepare(logits, labels, epsilon, where):
    _core.check_epsilon(epsilon)
    logits = _core.check_logits(logits)
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
    if _core.is_concrete(labels) and labels.size:
        lab = np.asarray(labels, dtype=np.float64)
        if not np.isfinite(lab).all() or (lab < 0).any():
            raise ValueError("tf_onehot labels must be finite and non-negative (a one-hot or probability matrix)")
    _core.check_where(where, logits.shape[:-1])
    mask = None if where is None else jnp.broadcast_to(jnp.asarray(where, bool), logits.shape[:-1])
    return logits, labels, mask


def per_example(logits, labels, *, epsilon=DEFAULT_EPSILON, where=None):
    """Per-position ``−Σ_j ((1−ε)Y_j + ε/K)·log p_j``; masked rows are 0."""
    logits, labels, mask = _prepare(logits, labels, epsilon, where)
    return _rows(logits, labels, mask, epsilon)


def loss(logits, labels, *, epsilon=DEFAULT_EPSILON, where=None):
    """Mean of :func:`per_example` over the kept rows (0 when none is kept)."""
    logits, labels, mask = _prepare(logits, labels, epsilon, where)
    return _core.masked_mean(_rows(logits, labels, mask, epsilon), mask)


def targets(labels, num_classes=None, *, epsilon=DEFAULT_EPSILON):
    """Dense ``(1−ε)·Y + ε/K``; ``num_classes`` must match ``Y.shape[-1]`` when given."""
    _core.check_epsilon(epsilon)
    labels = jnp.asarray(labels)
    k = labels.shape[-1]
    if num_classes is not None and num_classes != k:
        raise ValueError(f"num_classes={num_classes} does not match the label matrix's K={k}")
    return (1 - epsilon) * labels + epsilon / k
