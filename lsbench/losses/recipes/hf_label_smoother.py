r"""``hf_label_smoother``: Hugging Face transformers' ``LabelSmoother`` (``Trainer(label_smoothing_factor=ε)``).

Published code (huggingface/transformers ``src/transformers/trainer_pt_utils.py``,
class ``LabelSmoother``, ``epsilon = 0.1``, ``ignore_index = −100``), on
``log_probs = −log_softmax(logits)`` of width ``W = logits.shape[-1]``::

    nll      = Σ_active log_probs[y] / N          N = number of labels ≠ −100
    smoothed = Σ_active Σ_j log_probs[j] / (N·W)
    loss     = (1 − ε)·nll + ε·smoothed

so each active token has the ``uniform`` target ``(1−ε)·onehot(y) + ε/W`` over the
**full width of the logits**: when a model's output layer is padded beyond the
tokenizer's vocabulary (``resize_token_embeddings(pad_to_multiple_of=64)``), the
padding columns get ``ε/W`` of target mass too, and ``ε/W`` is not ``ε/V`` of
the real vocabulary ``V``. Gradient ``softmax(z) − q``. Reduction: mean over the
active tokens (the published code divides 0 by 0, NaN, when none is active;
lsbench returns 0 with a zero gradient).

Differences kept out on purpose: the published code clamps labels to ``≥ 0``
before its gather, so a negative label other than ``ignore_index`` silently
scores class 0; lsbench raises (or gives NaN under ``jit``) as every recipe does.
``shift_labels=True`` is the caller's ``logits[..., :-1, :]``, ``labels[..., 1:]``.
"""

from __future__ import annotations

import jax

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api
from lsbench.losses.recipes import uniform


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """``uniform``'s closed form at the full width ``K`` of the logits (every path calls this)."""
    return uniform.rows_from_stats(stats, num_classes, epsilon=epsilon)


check_params = P.check_epsilon_param


@recipe_api.shared_docs
def hf_label_smoother(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
                      ignore_index: int | None = -100, where: jax.Array | None = None) -> jax.Array:
    r"""Per-token loss of transformers' ``LabelSmoother``: ``uniform`` over the full logit width, −100 ignored.

    .. math::

      L = (1-\varepsilon)\big(\operatorname{logsumexp}(z) - z_y\big)
          + \frac{\varepsilon}{W}\sum_{j=1}^{W}\big(\operatorname{logsumexp}(z) - z_j\big)

    Args:
      logits: ``[..., W]`` floating logits (``W`` may include padding columns).
      {SMOOTHED_LABEL_ARGS}

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import hf_label_smoother
      >>> print(hf_label_smoother(jnp.zeros((2, 4)), jnp.array([1, -100])))  # log 4; −100 ignored
      [1.3862944 0.       ]

    References:
      huggingface/transformers, ``src/transformers/trainer_pt_utils.py`` ``LabelSmoother``.
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]


loss = recipe_api.reduced(hf_label_smoother, P.masked_mean,
                          "the mean over the active tokens (0, with zero gradient, when none is active)")


def targets(labels, num_classes, *, epsilon):
    """Dense ``(1−ε)·onehot(y) + ε/W`` (tests and proofs only)."""
    return uniform.targets(labels, num_classes, epsilon=epsilon)
