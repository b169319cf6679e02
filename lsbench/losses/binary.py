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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P


def softplus(x: jax.Array) -> jax.Array:
    """``log(1 + exp(x))`` elementwise, overflow-free, with gradient ``σ(x)``."""
    # The maximum of (x, 0) as a reduction over a pair: a shift that cancels exactly.
    pair = jnp.concatenate([x[..., None], jnp.zeros_like(x)[..., None]], axis=-1)
    m = jax.lax.stop_gradient(jnp.max(pair, axis=-1))
    return m + jnp.log1p(jnp.expm1(-m) + jnp.exp(x - m))


def masked_logits(logits: jax.Array, mask: jax.Array | None) -> jax.Array:
    """Logits in the compute dtype, with masked rows replaced by 0 (their NaN/inf never reach a sum)."""
    x = logits.astype(P.compute_dtype(logits.dtype))
    return x if mask is None else jnp.where(mask[..., None], x, jnp.zeros((), x.dtype))


@jax.jit
def integer_rows(logits, labels, mask, on, off):
    """Masked ``(1/K)·(Σ softplus(x) − off·Σ x − (on − off)·x_y)`` per row (labels already safe).

    A label outside ``[0, K)`` adds NaN to its row's logits, so both its loss and its
    gradient row are NaN (never a silent wrong number).
    """
    k = logits.shape[-1]
    x = masked_logits(logits, mask)
    x = x + P.nan_where_out_of_range(jnp.zeros(x.shape[:-1], x.dtype), labels, k)[..., None]
    on, off = jnp.asarray(on, x.dtype), jnp.asarray(off, x.dtype)
    x_y = jnp.take_along_axis(x, jnp.clip(labels, 0, k - 1)[..., None], axis=-1)[..., 0]
    total = jnp.sum(softplus(x), axis=-1) - P.times(off, jnp.sum(x, axis=-1)) - P.times(on - off, x_y)
    return P.apply_mask(total / k, mask)


@jax.jit
def dense_rows(logits, targets, mask):
    """Masked ``(1/K)·Σ_j (softplus(x_j) − t_j·x_j)`` per row for a dense target ``t``."""
    x = masked_logits(logits, mask)
    t = targets.astype(x.dtype)
    if mask is not None:
        t = jnp.where(mask[..., None], t, jnp.zeros((), x.dtype))
    return P.apply_mask(jnp.mean(softplus(x) - P.times(t, x), axis=-1), mask)


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
