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

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def spread_rows(stats: P.RowStats, num_classes: int, eps) -> jax.Array:
    """``lse − (1−ε)·target − ε/(K−1)·(total − target)`` for a per-row or scalar ε.

    Written with ``mean`` (``total = K·mean`` could overflow) and ``P.times``
    (ε = 0 with a −inf logit must give 0, not NaN); ``fastreid`` shares it.
    """
    k = num_classes
    off = P.times(eps * (k / (k - 1)), stats.mean) - P.times(eps / (k - 1), stats.target)
    return stats.lse - P.times(1 - eps, stats.target) - off


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """The closed form on row statistics (every path calls this)."""
    return spread_rows(stats, num_classes, jnp.asarray(epsilon, stats.lse.dtype))


def check_params(num_classes: int, *, epsilon, **_):
    P.check_epsilon(epsilon)
    P.check_num_classes(num_classes, 2, "off_target")


@recipe_api.shared_docs
def off_target(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
               ignore_index: int | None = None, where: jax.Array | None = None) -> jax.Array:
    r"""Per-example cross-entropy with ``1−ε`` on the label and ``ε/(K−1)`` on every other class.

    .. math::

      L = \operatorname{logsumexp}(z) - (1-\varepsilon)\, z_y
          - \frac{\varepsilon}{K-1} \Big(\sum_j z_j - z_y\Big)

    Args:
      logits: ``[..., K]`` floating logits, ``K ≥ 2``.
      {SMOOTHED_LABEL_ARGS}

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import off_target
      >>> print(off_target(jnp.zeros((1, 5)), jnp.array([2]), epsilon=0.3))  # log 5
      [1.609438]

    References:
      Megatron-LM ``vocab_parallel_cross_entropy(label_smoothing=ε)``; JDAI-CV/fast-reid
      ``cross_entropy_loss`` (``eps ≥ 0``); the Flax WMT example's ``compute_weighted_cross_entropy``.
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]



loss = recipe_api.reduced(off_target, P.masked_mean, "the mean over the kept rows (0 when none is kept)")


def targets(labels, num_classes, *, epsilon):
    """Dense ``q_y = 1−ε``, ``q_j = ε/(K−1)`` (tests and proofs only)."""
    P.check_epsilon(epsilon)
    P.check_num_classes(num_classes, 2, "off_target")
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return onehot * (1 - epsilon) + (1 - onehot) * (epsilon / (num_classes - 1))
