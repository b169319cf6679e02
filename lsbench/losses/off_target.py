r"""``off_target``: ε/(K−1) on the other classes only.

Target, for label ``y`` among ``K ≥ 2`` classes::

    q_y = 1 − ε,    q_j = ε/(K−1)  for j ≠ y

Per-example loss without a one-hot (``lse = logsumexp(z)``, ``S = Σ_j z_j``)::

    L = lse − (1 − ε)·z_y − ε/(K−1)·(S − z_y)

It is ``uniform`` with ``ε' = ε·K/(K−1)``. Gradient ``softmax(z) − q``.
Reduction: mean over kept rows. Used by fast-reid (``eps ≥ 0``), Megatron-LM,
the Flax WMT/LM1B examples (which subtract the constant entropy of ``q`` and so
report a KL divergence; lsbench reports the cross-entropy) and the NumPy
``label_smoothing(labels, epsilon, num_classes)`` tutorial helper.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import _core

DEFAULT_EPSILON = 0.1


@jax.jit
def _rows(logits, labels, mask, epsilon):
    k = logits.shape[-1]
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    st = _core.row_stats(logits, labels)
    rows = st.lse - (1 - eps) * st.target - eps / (k - 1) * (st.total - st.target)
    return _core.apply_mask(rows, mask)


def _prepare(logits, labels, epsilon, ignore_index, where):
    _core.check_epsilon(epsilon)
    logits, safe, mask = _core.prepare(logits, labels, ignore_index=ignore_index, where=where)
    _core.check_num_classes(logits.shape[-1], 2, "off_target")
    return logits, safe, mask


def per_example(logits, labels, *, epsilon=DEFAULT_EPSILON, ignore_index=None, where=None):
    """Per-position ``L = lse − (1−ε)·z_y − ε/(K−1)·(S − z_y)``; masked rows are 0."""
    logits, safe, mask = _prepare(logits, labels, epsilon, ignore_index, where)
    return _rows(logits, safe, mask, epsilon)


def loss(logits, labels, *, epsilon=DEFAULT_EPSILON, ignore_index=None, where=None):
    """Mean of :func:`per_example` over the kept rows (0 when none is kept)."""
    logits, safe, mask = _prepare(logits, labels, epsilon, ignore_index, where)
    return _core.masked_mean(_rows(logits, safe, mask, epsilon), mask)


def targets(labels, num_classes, *, epsilon=DEFAULT_EPSILON):
    """Dense ``q_y = 1−ε``, ``q_j = ε/(K−1)`` (tests and proofs only)."""
    _core.check_epsilon(epsilon)
    _core.check_num_classes(num_classes, 2, "off_target")
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return onehot * (1 - epsilon) + (1 - onehot) * (epsilon / (num_classes - 1))
