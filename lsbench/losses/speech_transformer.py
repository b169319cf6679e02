r"""``speech_transformer``: ``cal_loss`` as published in kaituoxu/Speech-Transformer.

The prose of the sources that copy it says ``q = (1−ε)·y + ε/K`` (``uniform``).
The code does something else::

    q_y = 1 − ε,    q_j = ε/K  for j ≠ y       ⇒  Σ_j q_j = 1 − ε/K

so the target is not a distribution. Per row (``lse = logsumexp(z)``, ``S = Σ z``)::

    L = (1 − ε/K)·lse − (1 − ε)·z_y − (ε/K)·(S − z_y)
      = uniform_ε(z, y) + (ε/K)·log p_y

and ``∂L/∂z = (1 − ε/K)·softmax(z) − q``: not ``softmax(z) − q``, which would
sum to ``ε/K`` per row (the true gradient sums to 0, as shift invariance demands).
Rows whose label equals ``ignore_index`` (default −1, the published
``IGNORE_ID``) are excluded; reduction: sum over the kept rows divided by their
count. With ε = 0 it is plain cross-entropy with ``ignore_index``. When every
row is ignored the published code divides 0 by 0; lsbench returns 0 with a zero
gradient instead.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import _core

DEFAULT_EPSILON = 0.1
DEFAULT_IGNORE_INDEX = -1


@jax.jit
def _rows(logits, labels, mask, epsilon):
    k = logits.shape[-1]
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    st = _core.row_stats(logits, labels)
    rows = (1 - eps / k) * st.lse - (1 - eps) * st.target - (eps / k) * (st.total - st.target)
    return _core.apply_mask(rows, mask)


def _prepare(logits, labels, epsilon, ignore_index, where):
    _core.check_epsilon(epsilon)
    return _core.prepare(logits, labels, ignore_index=ignore_index, where=where)


def per_example(logits, labels, *, epsilon=DEFAULT_EPSILON, ignore_index=DEFAULT_IGNORE_INDEX, where=None):
    """Per-position ``(1−ε/K)·lse − (1−ε)·z_y − (ε/K)·(S − z_y)``; ignored rows are 0."""
    logits, safe, mask = _prepare(logits, labels, epsilon, ignore_index, where)
    return _rows(logits, safe, mask, epsilon)


def loss(logits, labels, *, epsilon=DEFAULT_EPSILON, ignore_index=DEFAULT_IGNORE_INDEX, where=None):
    """Sum over kept rows / their count (0, with zero gradient, when none is kept)."""
    logits, safe, mask = _prepare(logits, labels, epsilon, ignore_index, where)
    return _core.masked_mean(_rows(logits, safe, mask, epsilon), mask)


def targets(labels, num_classes, *, epsilon=DEFAULT_EPSILON, ignore_index=DEFAULT_IGNORE_INDEX):
    """Dense published-code targets ``q_y = 1−ε``, ``q_j = ε/K`` (ignored rows: all zero)."""
    _core.check_epsilon(epsilon)
    labels = jnp.asarray(labels)
    keep = labels != ignore_index
    onehot = jax.nn.one_hot(jnp.where(keep, labels, 0), num_classes, dtype=jnp.result_type(float))
    q = onehot * (1 - epsilon) + (1 - onehot) * (epsilon / num_classes)
    return jnp.where(keep[..., None], q, 0.0)
