r"""``mmpretrain_multilabel``: mmpretrain ``LabelSmoothLoss(mode='multi_label')`` on integer labels.

Source: open-mmlab/mmpretrain, ``mmpretrain/models/losses/label_smooth_loss.py``
(``multilabel_smooth_label``: ``torch.full_like(label, eps)`` then
``masked_fill_(label > 0, 1 − eps)``; in this mode ``self.ce =
CrossEntropyLoss(use_sigmoid=True)``), whose ``binary_cross_entropy`` in
``mmpretrain/models/losses/cross_entropy_loss.py`` takes
``F.binary_cross_entropy_with_logits(..., reduction='none')`` and the ``'mean'``
of ``weight_reduce_loss``: the mean over all ``B·K`` elements. Integer labels
become a one-hot first (``convert_to_one_hot``); only ``mode='classy_vision'``
rescales ε, not this mode.

Targets::

    t_y = 1 − ε,   t_j = ε  (j ≠ y)                    (Σ_j t_j = 1 + (K − 2)·ε)

Per example, without a one-hot::

    L = (1/K)·(Σ_j softplus(x_j) − ε·Σ_j x_j − (1 − 2ε)·x_y)

Gradient ``(σ(x_j) − t_j)/K``; optimal logits ``x*_y = log((1 − ε)/ε) = −x*_j``
(gap ``2·log((1 − ε)/ε)``, independent of K). Every negative class keeps the full
ε (0.1 at ε = 0.1: 1000 times timm's ε/K at K = 1000). Since ``on + off = 1`` it
is ``keras_binary`` with ``ε' = 2ε`` on one-hot labels, for ``ε ≤ 1/2``
(:func:`equivalent_keras_binary_epsilon`, proven in ``proofs.mmpretrain_multilabel``).
Reduction: mean over the kept rows of ``L`` (= the mean over ``B·K``).
"""

from __future__ import annotations

import jax

from lsbench.losses import binary
from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def on_off(epsilon):
    """``(on, off) = (1 − ε, ε)``."""
    return 1 - epsilon, epsilon


def equivalent_keras_binary_epsilon(epsilon, num_classes=None):
    """``2ε`` (same targets, loss and gradient on one-hot labels); None for ε > 1/2 (Keras needs ε' ≤ 1)."""
    return 2 * epsilon if 2 * epsilon <= 1 else None


@recipe_api.shared_docs
def mmpretrain_multilabel(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
                          ignore_index: int | None = None, where: jax.Array | None = None) -> jax.Array:
    r"""Per-example mean over classes of the sigmoid cross-entropy with targets ``1−ε`` / ``ε``.

    .. math::

      L = \frac{1}{K}\Big(\sum_j \log\big(1 + e^{x_j}\big) - \varepsilon\sum_j x_j - (1-2\varepsilon)\, x_y\Big)

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      {SMOOTHED_LABEL_ARGS}

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import mmpretrain_multilabel
      >>> print(mmpretrain_multilabel(jnp.zeros((1, 4)), jnp.array([1]), epsilon=0.2))  # log 2
      [0.6931472]

    References:
      open-mmlab/mmpretrain, ``mmpretrain/models/losses/label_smooth_loss.py``,
      ``LabelSmoothLoss(mode='multi_label')``.
    """
    logits, safe, mask = binary.prepare_integer(logits, labels, epsilon=epsilon, ignore_index=ignore_index,
                                                where=where)
    on, off = on_off(epsilon)
    return binary.integer_rows(logits, safe, mask, on, off)


loss = recipe_api.reduced(mmpretrain_multilabel, P.masked_mean,
                          "the mean over the kept rows, i.e. over their B·K elements (0 when none is kept)")


def targets(labels, num_classes, *, epsilon):
    """Dense ``t_y = 1 − ε``, ``t_j = ε`` (tests and proofs only)."""
    P.check_epsilon(epsilon)
    return binary.onehot_targets(labels, num_classes, *on_off(epsilon))
