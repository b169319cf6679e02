r"""``opennmt``: OpenNMT-py's ``LabelSmoothingLoss`` and the Annotated Transformer's ``LabelSmoothing``.

Published code (OpenNMT/OpenNMT-py ``onmt/utils/loss.py`` ``LabelSmoothingLoss``;
harvardnlp/annotated-transformer ``LabelSmoothing``), for vocabulary size ``K``
and padding index ``pad``::

    q_y = 1 − ε,   q_pad = 0,   q_j = ε/(K−2) for every other j       (Σ q = 1)

rows whose label is ``pad`` get an all-zero target, and the loss is
``F.kl_div(log p, q, reduction='sum')`` (``KLDivLoss(reduction='sum')``): the
**sum** over tokens of ``KL(q‖p) = CE(q, p) − H(q)`` with ``0·log 0 = 0``. Per kept row
(``lse = logsumexp(z)``, ``S' = Σ_{j≠pad} z_j``)::

    L = lse − (1−ε)·z_y − ε/(K−2)·(S' − z_y) + (1−ε)·log(1−ε) + ε·log(ε/(K−2))

Gradient ``softmax(z) − q`` (the padding column gets ``p_pad``: the model is still
pushed away from predicting padding). The fast path takes the row statistics
with the class weight ``1 − onehot(pad)``, so no one-hot or target matrix is built.
It is ``off_target``'s ``ε/(K−1)`` spreading with the pad class removed: the same
as ``uniform`` only in the limit of large K (see ``proofs.opennmt``). Needs
``K ≥ 3``; the published code asserts ``0 < ε ≤ 1``, lsbench also takes ε = 0
(the summed cross-entropy). A ``−inf`` logit in the padding column gives NaN
(the weighted row sum multiplies it by 0); the published code gives a finite value there.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def entropy(num_classes: int, eps, dtype=None) -> jax.Array:
    """``H(q) = −(1−ε)·log(1−ε) − ε·log(ε/(K−2))`` with ``0·log 0 = 0``."""
    eps = jnp.asarray(eps, dtype)
    xlogy = jax.scipy.special.xlogy
    return -(xlogy(1 - eps, 1 - eps) + xlogy(eps, eps / (num_classes - 2)))


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """``KL(q‖p)`` per row from statistics taken with class weight ``1 − onehot(pad)`` (``total = S' − K·m``)."""
    k = num_classes
    eps = jnp.asarray(epsilon, stats.lse.dtype)
    others = P.times(eps * (k / (k - 2)), stats.mean) - P.times(eps / (k - 2), stats.target)
    return stats.lse - P.times(1 - eps, stats.target) - others - entropy(k, eps, stats.lse.dtype)


def check_params(num_classes: int, *, epsilon, padding_idx=1, **_):
    P.check_epsilon(epsilon)
    P.check_num_classes(num_classes, 3, "opennmt")
    if isinstance(padding_idx, bool) or not isinstance(padding_idx, int) or not 0 <= padding_idx < num_classes:
        raise ValueError(f"padding_idx must be an int in [0, {num_classes}) for K={num_classes}, got {padding_idx!r}")


@functools.partial(jax.jit, static_argnames=("padding_idx",))
def _rows(logits, labels, mask, epsilon, padding_idx):
    k = logits.shape[-1]
    keep_class = jnp.ones((k,), P.compute_dtype(logits.dtype)).at[padding_idx].set(0)
    st = P.row_stats(logits, labels, keep_class, keep=mask)
    return P.apply_mask(rows_from_stats(st, k, epsilon=epsilon), mask)


@recipe_api.shared_docs
def opennmt(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, padding_idx: int = 1,
            where: jax.Array | None = None) -> jax.Array:
    r"""Per-token ``KL(q‖p)`` of OpenNMT-py: ``q_y = 1−ε``, ``q_pad = 0``, others ``ε/(K−2)``; pad rows dropped.

    .. math::

      L = \operatorname{logsumexp}(z) - (1-\varepsilon) z_y - \frac{\varepsilon}{K-2}\Big(\sum_{j\ne\mathrm{pad}} z_j - z_y\Big)
          + (1-\varepsilon)\log(1-\varepsilon) + \varepsilon\log\frac{\varepsilon}{K-2}

    Args:
      logits: ``[..., K]`` floating logits, ``K ≥ 3``.
      labels: ``[...]`` integer class indices in ``[0, K)``; rows labelled
        ``padding_idx`` are dropped; under ``jax.jit`` a label outside that range
        gives a NaN loss and a NaN gradient in its row.
      epsilon: smoothing ε in ``[0, 1]``.
      padding_idx: the padding class (OpenNMT-py's ``<blank>``, index 1 in its vocabularies):
        zero target mass, and its rows are dropped.
      where: boolean ``[...]`` mask of rows to keep (broadcastable).

    Returns:
      ``[...]`` losses in float32 (float64 for float64 logits); dropped rows are 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import opennmt
      >>> print(opennmt(jnp.zeros((2, 4)), jnp.array([0, 1]), epsilon=0.0))  # log 4; the pad row (1) is dropped
      [1.3862944 0.       ]

    References:
      OpenNMT/OpenNMT-py, ``onmt/utils/loss.py`` ``LabelSmoothingLoss``; harvardnlp,
      The Annotated Transformer, ``LabelSmoothing`` (Rush 2018).
    """
    logits, safe, mask = P.prepare(logits, labels, ignore_index=padding_idx, where=where)
    check_params(logits.shape[-1], epsilon=epsilon, padding_idx=padding_idx)
    return _rows(logits, safe, mask, epsilon, padding_idx)


def loss(logits, labels, **params):
    """Sum of :func:`opennmt` over the kept tokens (``KLDivLoss(reduction='sum')``); 0 when none is kept.

    Takes the keyword parameters of :func:`opennmt`, with its defaults.
    """
    return jnp.sum(opennmt(logits, labels, **P.bind_params(opennmt, params)))


def targets(labels, num_classes, *, epsilon, padding_idx=P.keyword_defaults(opennmt)["padding_idx"]):
    """Dense published targets: ``1−ε`` on y, 0 on pad, ``ε/(K−2)`` elsewhere; pad rows all zero."""
    P.check_epsilon(epsilon)
    labels = jnp.asarray(labels)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    pad = jax.nn.one_hot(padding_idx, num_classes, dtype=onehot.dtype)
    q = onehot * (1 - epsilon) + (1 - onehot - pad) * (epsilon / (num_classes - 2))
    return jnp.where((labels != padding_idx)[..., None], q, 0.0)
