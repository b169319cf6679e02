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

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """``(1−ε/K)·lse − (1−ε)·target − (ε/K)·(total − target)`` (every path calls this)."""
    k = num_classes
    eps = jnp.asarray(epsilon, stats.lse.dtype)
    others = P.times(eps, stats.mean) - P.times(eps / k, stats.target)
    return (1 - eps / k) * stats.lse - P.times(1 - eps, stats.target) - others


check_params = P.check_epsilon_param


@recipe_api.shared_docs
def speech_transformer(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
                       ignore_index: int | None = -1, where: jax.Array | None = None) -> jax.Array:
    r"""Per-example ``cal_loss`` of kaituoxu/Speech-Transformer: ``q_y = 1−ε``, ``q_j = ε/K`` (mass 1 − ε/K).

    .. math::

      L = \Big(1-\frac{\varepsilon}{K}\Big)\operatorname{logsumexp}(z) - (1-\varepsilon)\, z_y
          - \frac{\varepsilon}{K}\Big(\sum_j z_j - z_y\Big)

    Args:
      logits: ``[..., K]`` floating logits.
      {SMOOTHED_LABEL_ARGS}

    Returns:
      ``[...]`` losses in float32 (float64 for float64 logits); ignored rows are 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import speech_transformer
      >>> print(speech_transformer(jnp.zeros((2, 4)), jnp.array([0, -1]), epsilon=0.0))  # log 4; row 2 ignored
      [1.3862944 0.       ]

    References:
      kaituoxu/Speech-Transformer, ``src/utils/utils.py`` ``cal_loss``.
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]



loss = recipe_api.reduced(speech_transformer, P.masked_mean, "the sum over the kept rows divided by their count (0, with zero gradient, when none is kept)")


def targets(labels, num_classes, *, epsilon, ignore_index=P.keyword_defaults(speech_transformer)["ignore_index"]):
    """Dense published-code targets ``q_y = 1−ε``, ``q_j = ε/K`` (ignored rows: all zero)."""
    P.check_epsilon(epsilon)
    labels = jnp.asarray(labels)
    keep = labels != ignore_index
    onehot = jax.nn.one_hot(jnp.where(keep, labels, 0), num_classes, dtype=jnp.result_type(float))
    q = onehot * (1 - epsilon) + (1 - onehot) * (epsilon / num_classes)
    return jnp.where(keep[..., None], q, 0.0)
