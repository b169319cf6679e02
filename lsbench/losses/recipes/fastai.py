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

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """fastai's two terms, ``smooth = lse − mean`` and ``nll = lse − target``, mixed by ε.

    Every path calls this. With one mask for both terms, the mean of the mixed
    rows is the mix of the two means fastai takes.
    """
    eps = jnp.asarray(epsilon, stats.lse.dtype)
    smooth = stats.lse - stats.mean
    nll = stats.lse - stats.target
    return P.times(eps, smooth) + P.times(1 - eps, nll)


check_params = P.check_epsilon_param


@recipe_api.shared_docs
def fastai(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, ignore_index: int | None = None,
           where: jax.Array | None = None) -> jax.Array:
    r"""Per-example ``ε·mean_j(−log p_j) + (1−ε)·(−log p_y)``, fastai's ``LabelSmoothingCrossEntropy``.

    .. math::

      L = \varepsilon \Big(\operatorname{logsumexp}(z) - \frac{1}{K}\sum_j z_j\Big)
          + (1-\varepsilon)\big(\operatorname{logsumexp}(z) - z_y\big)

    Equal to :func:`lsbench.losses.uniform` (``proofs/fastai.py`` proves it).

    Args:
      logits: ``[..., K]`` floating logits.
      {SMOOTHED_LABEL_ARGS}

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import fastai
      >>> print(fastai(jnp.zeros((1, 4)), jnp.array([1]), epsilon=0.1))  # log 4
      [1.3862944]

    References:
      fastai ``LabelSmoothingCrossEntropy`` (``fastai/losses.py``); Szegedy et al. 2016, §7.
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]



loss = recipe_api.reduced(fastai, P.masked_mean, "ε·mean(smooth) + (1−ε)·mean(nll), each mean over the kept rows (one mask: the mean of the mixed rows)")


def targets(labels, num_classes, *, epsilon):
    """The implied target ``ε/K + (1−ε)·onehot(y)`` (tests and proofs only)."""
    P.check_epsilon(epsilon)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return epsilon / num_classes + (1 - epsilon) * onehot
