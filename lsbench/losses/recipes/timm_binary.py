r"""``timm_binary``: timm ``BinaryCrossEntropy(smoothing=ε)`` on integer labels.

Source: huggingface/pytorch-image-models, ``timm/loss/binary_cross_entropy.py``
(``off_value = smoothing / num_classes``, ``on_value = 1 − smoothing + off_value``
scattered into a ``[B, K]`` target, then ``F.binary_cross_entropy_with_logits``
with ``reduction='mean'``: the mean over all ``B·K`` elements). The source carries
``# FIXME should off/on be different for smoothing w/ BCE? Other impl out there
differ``: they do (``keras_binary``, ``mmpretrain_multilabel``).

Targets, for label ``y`` among ``K`` classes (the softmax ``uniform`` target, fed
to K independent sigmoids)::

    t_y = 1 − ε + ε/K,   t_j = ε/K  (j ≠ y)           (Σ_j t_j = 1)

Per example, without a one-hot::

    L = (1/K)·(Σ_j softplus(x_j) − (ε/K)·Σ_j x_j − (1 − ε)·x_y)

Gradient ``(σ(x_j) − t_j)/K``. Optimal logits ``x*_y = log((1 − ε + ε/K)/(ε − ε/K))``
and ``x*_j = −log(K/ε − 1)``: the negatives' target ``ε/K`` shrinks with K (at
K = 1000, ε = 0.1 it is 1e-4, 500 times below Keras' ε/2). Because
``t_y + t_j = 1 − ε + 2ε/K ≠ 1`` for ``K > 2``, no ε' of ``keras_binary`` gives
the same gradient unless ``K = 2`` (then ``ε' = ε``) or ε = 0
(:func:`equivalent_keras_binary_epsilon`, proven in ``proofs.timm_binary``).
Reduction: mean over the kept rows of ``L`` (= timm's mean over ``B·K``).
"""

from __future__ import annotations

import jax

from lsbench.losses import binary
from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def on_off(epsilon, num_classes):
    """``(on, off) = (1 − ε + ε/K, ε/K)``."""
    off = epsilon / num_classes
    return 1 - epsilon + off, off


def equivalent_keras_binary_epsilon(epsilon, num_classes):
    """The ε' of ``keras_binary`` with the same targets on one-hot labels, or None when there is none.

    Exists only for ``K = 2`` (ε' = ε) or ``ε = 0`` (ε' = 0): elsewhere ``on + off ≠ 1``.
    """
    if num_classes == 2 or epsilon == 0:
        return epsilon
    return None


@recipe_api.shared_docs
def timm_binary(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, ignore_index: int | None = None,
                where: jax.Array | None = None) -> jax.Array:
    r"""Per-example mean over classes of the sigmoid cross-entropy with timm's on/off targets.

    .. math::

      L = \frac{1}{K}\Big(\sum_j \log\big(1 + e^{x_j}\big)
          - \frac{\varepsilon}{K}\sum_j x_j - (1-\varepsilon)\, x_y\Big)

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      {SMOOTHED_LABEL_ARGS}

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import timm_binary
      >>> print(timm_binary(jnp.zeros((2, 4)), jnp.array([0, 3]), epsilon=0.1))  # log 2
      [0.6931472 0.6931472]

    References:
      huggingface/pytorch-image-models, ``timm/loss/binary_cross_entropy.py``, ``BinaryCrossEntropy``.
    """
    logits, safe, mask = binary.prepare_integer(logits, labels, epsilon=epsilon, ignore_index=ignore_index,
                                                where=where)
    on, off = on_off(epsilon, logits.shape[-1])
    return binary.integer_rows(logits, safe, mask, on, off)


loss = recipe_api.reduced(timm_binary, P.masked_mean,
                          "the mean over the kept rows, i.e. over their B·K elements (0 when none is kept)")


def targets(labels, num_classes, *, epsilon):
    """Dense ``t_y = 1 − ε + ε/K``, ``t_j = ε/K`` (tests and proofs only)."""
    P.check_epsilon(epsilon)
    return binary.onehot_targets(labels, num_classes, *on_off(epsilon, num_classes))
