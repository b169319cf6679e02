r"""``fastai``: the linear-combination form of fastai's ``LabelSmoothingCrossEntropy``.

fastai computes two terms and mixes them after reducing each over the batch::

    smooth = mean_i( (1/K)·Σ_j −log p_ij )      (= mean_i(lse_i − S_i/K))
    nll    = mean_i( −log p_{i,y_i} )            (= mean_i(lse_i − z_{i,y_i}))
    L      = ε·smooth + (1 − ε)·nll

Mathematically ``L`` equals ``uniform`` (``proofs/fastai.py`` proves it); the
recipe keeps fastai's literal two-term structure so that the equality is
tested on the code, not assumed. Gradient ``softmax(z) − q`` with the uniform
``q``. Reduction: each term is a mean over the kept rows before mixing.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import _core

DEFAULT_EPSILON = 0.1


@jax.jit
def _terms(logits, labels, mask):
    """Per-row ``(−mean_j log p_j, −log p_y)``."""
    k = logits.shape[-1]
    st = _core.row_stats(logits, labels)
    smooth = st.lse - st.total / k
    nll = st.lse - st.target
    return _core.apply_mask(smooth, mask), _core.apply_mask(nll, mask)


def _prepare(logits, labels, epsilon, ignore_index, where):
    _core.check_epsilon(epsilon)
    return _core.prepare(logits, labels, ignore_index=ignore_index, where=where)


def per_example(logits, labels, *, epsilon=DEFAULT_EPSILON, ignore_index=None, where=None):
    """Per-position ``ε·(1/K)·Σ_j(−log p_j) + (1−ε)·(−log p_y)``; masked rows are 0."""
    logits, safe, mask = _prepare(logits, labels, epsilon, ignore_index, where)
    smooth, nll = _terms(logits, safe, mask)
    eps = jnp.asarray(epsilon, smooth.dtype)
    return eps * smooth + (1 - eps) * nll


def loss(logits, labels, *, epsilon=DEFAULT_EPSILON, ignore_index=None, where=None):
    """``ε·mean(smooth) + (1−ε)·mean(nll)``, each mean over the kept rows."""
    logits, safe, mask = _prepare(logits, labels, epsilon, ignore_index, where)
    smooth, nll = _terms(logits, safe, mask)
    eps = jnp.asarray(epsilon, smooth.dtype)
    return eps * _core.masked_mean(smooth, mask) + (1 - eps) * _core.masked_mean(nll, mask)


def targets(labels, num_classes, *, epsilon=DEFAULT_EPSILON):
    """The implied target ``ε/K + (1−ε)·onehot(y)`` (tests and proofs only)."""
    _core.check_epsilon(epsilon)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return epsilon / num_classes + (1 - epsilon) * onehot
