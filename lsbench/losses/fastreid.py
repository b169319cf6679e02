r"""``fastreid``: fixed or adaptive ε with ε/(K−1) spreading (JDAI-CV/fast-reid).

fast-reid's ``cross_entropy_loss(pred, gt, eps, alpha=0.2)``:

* ``epsilon ≥ 0``: ``ε_i = epsilon`` for every row;
* ``epsilon < 0`` (adaptive): ``ε_i = α·p_{i,y_i}``, the model's own softmax
  probability of the true class, treated as a constant (fast-reid builds the
  targets under ``torch.no_grad``).

Targets ``q_y = 1 − ε_i``, ``q_j = ε_i/(K−1)`` (constants), so per row::

    L_i = lse − (1 − ε_i)·z_y − ε_i/(K−1)·(S − z_y)

Gradient (what fast-reid computes): ``softmax(z) − q``. The full derivative of
the adaptive loss has an extra term from ``∂ε_i/∂z`` that the stop-gradient
drops (``proofs/fastreid.py`` derives it). Reduction:
``Σ_i L_i / max(#{i : L_i ≠ 0}, 1)`` -- the sum divided by the number of rows
whose loss is non-zero, not by the batch size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import _core

DEFAULT_EPSILON = 0.1
DEFAULT_ALPHA = 0.2


@jax.jit
def _rows(logits, labels, mask, epsilon, alpha):
    k = logits.shape[-1]
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    st = _core.row_stats(logits, labels)
    p_y = jax.lax.stop_gradient(jnp.exp(st.target - st.lse))
    eps_i = jnp.where(eps >= 0, eps, jnp.asarray(alpha, dt) * p_y)
    rows = st.lse - (1 - eps_i) * st.target - eps_i / (k - 1) * (st.total - st.target)
    return _core.apply_mask(rows, mask)


def _prepare(logits, labels, epsilon, alpha, ignore_index, where):
    _core.check_epsilon(epsilon, allow_negative=True)
    _core.check_epsilon(alpha, name="alpha")
    logits, safe, mask = _core.prepare(logits, labels, ignore_index=ignore_index, where=where)
    _core.check_num_classes(logits.shape[-1], 2, "fastreid")
    return logits, safe, mask


def per_example(logits, labels, *, epsilon=DEFAULT_EPSILON, alpha=DEFAULT_ALPHA, ignore_index=None, where=None):
    """Per-position ``L_i`` with fixed (ε ≥ 0) or adaptive (ε < 0: ε_i = α·p_y) smoothing."""
    logits, safe, mask = _prepare(logits, labels, epsilon, alpha, ignore_index, where)
    return _rows(logits, safe, mask, epsilon, alpha)


def loss(logits, labels, *, epsilon=DEFAULT_EPSILON, alpha=DEFAULT_ALPHA, ignore_index=None, where=None):
    """``Σ_i L_i / max(#{i : L_i ≠ 0}, 1)`` (fast-reid's reduction)."""
    rows = per_example(logits, labels, epsilon=epsilon, alpha=alpha, ignore_index=ignore_index, where=where)
    count = jax.lax.stop_gradient(jnp.sum(rows != 0)).astype(rows.dtype)
    return jnp.sum(rows) / jnp.maximum(count, 1)


def targets(labels, num_classes, *, epsilon=DEFAULT_EPSILON, alpha=DEFAULT_ALPHA, logits=None):
    """Dense fast-reid targets; adaptive ε (``epsilon < 0``) needs ``logits``."""
    _core.check_epsilon(epsilon, allow_negative=True)
    _core.check_num_classes(num_classes, 2, "fastreid")
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    if epsilon >= 0:
        eps = jnp.asarray(epsilon, onehot.dtype)[..., None]
    else:
        if logits is None:
            raise ValueError("adaptive fastreid targets (epsilon < 0) depend on the logits: pass logits=")
        p = jax.nn.softmax(jnp.asarray(logits, onehot.dtype), axis=-1)
        eps = alpha * jnp.sum(p * onehot, axis=-1, keepdims=True)
    return onehot * (1 - eps) + (1 - onehot) * eps / (num_classes - 1)
