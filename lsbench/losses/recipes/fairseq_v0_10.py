r"""``fairseq_v0_10``: fairseq's ``label_smoothed_cross_entropy`` from v0.4.0 through v0.10.2: ``ε/K``.

Published code (facebookresearch/fairseq ``fairseq/criterions/label_smoothed_cross_entropy.py``
at tags v0.4.0 to v0.10.2, 2018-05 to 2021-01; in the criterion's
``compute_loss`` until v0.7.2, in the standalone ``label_smoothed_nll_loss`` from
commit ffe53d6f, 2019-07, v0.8.0 on)::

    eps_i = ε/K
    loss  = (1 − ε)·nll + eps_i·smooth       nll = −log p_y,  smooth = −Σ_j log p_j

so the target is ``uniform``'s, ``q_y = 1 − ε + ε/K``, ``q_j = ε/K`` (the pad
token included), over the full dictionary of ``K`` entries. Rows whose label is
``padding_idx`` (1) are dropped; the criterion returns the **sum** over kept
tokens. Commit 791ab7c2 (2021-02-03, PR #3182, released in v0.12.0) changed it
to ``eps_i = ε/(K−1)`` and ``(1 − ε − eps_i)·nll`` (recipe ``fairseq``): the same
``--label-smoothing 0.1`` now means ``uniform`` with ``ε' = ε·K/(K−1)``.
(v0.3.0, 2018-02, had a hand-written backward with ``ε/(K−1)`` over the non-pad
classes and zero on pad; it is not offered.)
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api
from lsbench.losses.recipes import uniform
from lsbench.losses.recipes.fairseq import PADDING_IDX


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """``uniform``'s closed form: ``(1−ε)·nll + (ε/K)·smooth``."""
    return uniform.rows_from_stats(stats, num_classes, epsilon=epsilon)


check_params = P.check_epsilon_param


@recipe_api.shared_docs
def fairseq_v0_10(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
                  ignore_index: int | None = PADDING_IDX, where: jax.Array | None = None) -> jax.Array:
    r"""Per-token loss of fairseq v0.4.0–v0.10.2: ``(1−ε)·nll + (ε/K)·Σ_j(−log p_j)`` (``uniform``).

    .. math::

      L = (1-\varepsilon)\big(\operatorname{logsumexp}(z) - z_y\big)
          + \frac{\varepsilon}{K}\sum_j\big(\operatorname{logsumexp}(z) - z_j\big)

    Args:
      logits: ``[..., K]`` floating logits (the whole dictionary).
      {SMOOTHED_LABEL_ARGS}
        The default ``ignore_index`` is fairseq's ``padding_idx`` 1.

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import fairseq_v0_10
      >>> print(fairseq_v0_10(jnp.zeros((2, 5)), jnp.array([3, 1])))  # log 5; <pad> row dropped
      [1.609438 0.      ]

    References:
      facebookresearch/fairseq, ``fairseq/criterions/label_smoothed_cross_entropy.py``
      at v0.4.0–v0.10.2 (``eps_i = self.eps / lprobs.size(-1)``).
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]


loss = recipe_api.reduced(fairseq_v0_10, lambda rows, mask: jnp.sum(rows),
                          "the sum over the kept tokens (the criterion's value; the trainer divides by sample_size)")


def targets(labels, num_classes, *, epsilon):
    """Dense ``(1−ε)·onehot(y) + ε/K`` (tests and proofs only)."""
    return uniform.targets(labels, num_classes, epsilon=epsilon)
