r"""``fairseq``: fairseq's ``label_smoothed_cross_entropy`` since v0.12.0: ``ε/(K−1)``, mass on the pad token.

Published code (facebookresearch/fairseq ``fairseq/criterions/label_smoothed_cross_entropy.py``,
``label_smoothed_nll_loss``, changed by commit 791ab7c2 "More accurate label
smoothing loss computation (#3182)", 2021-02-03, first released in v0.12.0)::

    eps_i = ε/(K−1)
    loss  = (1 − ε − eps_i)·nll + eps_i·smooth       nll = −log p_y,  smooth = −Σ_j log p_j

with ``K = lprobs.size(-1)``, the full dictionary including ``<pad>``, ``<s>``,
``</s>``, ``<unk>``. The target is ``q_y = 1 − ε``, ``q_j = ε/(K−1)`` for every
``j ≠ y`` **including the padding token** (Σq = 1): ``off_target`` on the rows
whose label is not ``padding_idx`` (``ignore_index=self.padding_idx``; fairseq's
``Dictionary`` puts ``<pad>`` at index 1). Gradient ``softmax(z) − q``.
Reduction: the criterion returns the **sum** over kept tokens (the trainer then
divides the gradient by ``sample_size``, the number of target tokens, or of
sentences with ``--sentence-avg``; logged values are also divided by ``log 2``).
For v0.4.0 through v0.10.2 (``eps_i = ε/K``) see ``fairseq_v0_10``. At ε = 1 the
label gets 0 and the loss is finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api
from lsbench.losses.recipes import off_target

PADDING_IDX = 1  #: fairseq ``Dictionary``: ``<s>`` 0, ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """``off_target``'s closed form: ``(1−ε−eps_i)·nll + eps_i·smooth`` with ``eps_i = ε/(K−1)``."""
    return off_target.rows_from_stats(stats, num_classes, epsilon=epsilon)


check_params = off_target.check_params


@recipe_api.shared_docs
def fairseq(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, ignore_index: int | None = PADDING_IDX,
            where: jax.Array | None = None) -> jax.Array:
    r"""Per-token loss of fairseq ≥ v0.12: ``q_y = 1−ε``, ``ε/(K−1)`` on every other token (pad included).

    .. math::

      L = \Big(1-\varepsilon-\frac{\varepsilon}{K-1}\Big)\big(\operatorname{logsumexp}(z) - z_y\big)
          + \frac{\varepsilon}{K-1}\sum_j\big(\operatorname{logsumexp}(z) - z_j\big)

    Args:
      logits: ``[..., K]`` floating logits, ``K ≥ 2`` (the whole dictionary).
      {SMOOTHED_LABEL_ARGS}
        The default ``ignore_index`` is fairseq's ``padding_idx`` 1.

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import fairseq
      >>> print(fairseq(jnp.zeros((2, 5)), jnp.array([3, 1])))  # log 5; the row labelled <pad> (1) is dropped
      [1.609438 0.      ]

    References:
      facebookresearch/fairseq, ``fairseq/criterions/label_smoothed_cross_entropy.py``
      ``label_smoothed_nll_loss`` (v0.12.0 and later; commit 791ab7c2, PR #3182).
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]


loss = recipe_api.reduced(fairseq, lambda rows, mask: jnp.sum(rows),
                          "the sum over the kept tokens (the criterion's value; the trainer divides by sample_size)")


def targets(labels, num_classes, *, epsilon):
    """Dense ``q_y = 1−ε``, ``q_j = ε/(K−1)`` (tests and proofs only)."""
    return off_target.targets(labels, num_classes, epsilon=epsilon)
