r"""``keras_binary``: Keras ``BinaryCrossentropy(from_logits=True, label_smoothing=ε)``.

Source: keras-team/keras, ``keras/src/losses/losses.py`` (``binary_crossentropy``:
``y_true = y_true·(1 − label_smoothing) + 0.5·label_smoothing``, then the mean of
the elementwise ``ops.binary_crossentropy(..., from_logits=True)`` over the class
axis; the ``BinaryCrossentropy`` wrapper's default reduction
``"sum_over_batch_size"`` is the mean over the batch).

Labels are a dense ``[..., K]`` matrix ``Y`` of 0/1 (multi-hot) or probabilities;
each class is an independent binary problem with the target pulled towards 1/2::

    t_j = (1 − ε)·Y_j + ε/2
    L   = (1/K)·Σ_j (softplus(x_j) − t_j·x_j)          (per example)

Target mass per class: ``1 − ε/2`` on a positive (``Y_j = 1``), ``ε/2`` on a
negative, whatever ``K`` is; a one-hot row carries ``1 − ε + K·ε/2`` in all.
Gradient ``∂L/∂x_j = (σ(x_j) − t_j)/K``, ``∂L/∂Y_j = −(1 − ε)·x_j/K``. The loss
is minimal where ``σ(x_j) = t_j``: ``x*_j = log(t_j/(1 − t_j))``, i.e.
``±log(2/ε − 1)`` for positives and negatives (a gap of ``2·log(2/ε − 1)``,
the same for every K). Reduction: mean over the kept rows.

Every sigmoid recipe with on/off values ``(on, off)`` and ``on + off = 1``
equals this one with ``ε' = 2·off`` (``proofs.keras_binary``); this module's own
map is the identity, :func:`equivalent_keras_binary_epsilon`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import binary
from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def on_off(epsilon):
    """``(on, off)``: the targets of a positive and of a negative class, ``(1 − ε/2, ε/2)``."""
    return 1 - epsilon / 2, epsilon / 2


def equivalent_keras_binary_epsilon(epsilon, num_classes=None):
    """The ε' of ``keras_binary`` with the same targets (hence loss and gradient): ε itself."""
    return epsilon


@recipe_api.shared_docs
def keras_binary(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1,
                 where: jax.Array | None = None) -> jax.Array:
    r"""Per-example mean over classes of ``softplus(x_j) − t_j·x_j`` with ``t = (1−ε)·Y + ε/2``.

    .. math::

      L = \frac{1}{K}\sum_j \Big(\log\big(1 + e^{x_j}\big)
          - \big((1-\varepsilon) Y_j + \tfrac{\varepsilon}{2}\big) x_j\Big)

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      labels: ``[..., K]`` floating 0/1 or probability matrix (differentiable).
      epsilon: smoothing ε in ``[0, 1]``.
      where: boolean ``[...]`` mask of rows to keep (broadcastable).

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import keras_binary
      >>> z = jnp.zeros((1, 3))  # σ(0) = 1/2: the loss is log 2 whatever the target
      >>> print(keras_binary(z, jnp.array([[0.0, 1.0, 0.0]]), epsilon=0.1))
      [0.6931472]

    References:
      keras-team/keras, ``keras/src/losses/losses.py``, ``BinaryCrossentropy`` and
      ``binary_crossentropy`` (``label_smoothing`` squeezes the labels towards 0.5).
    """
    logits, labels, mask = binary.prepare_dense(logits, labels, epsilon=epsilon, where=where, recipe="keras_binary")
    return binary.dense_rows(logits, labels, mask, *on_off(epsilon))


loss = recipe_api.reduced(keras_binary, P.masked_mean, "the mean over the kept rows (0 when none is kept)")


def targets(labels, num_classes=None, *, epsilon):
    """Dense ``t = (1−ε)·Y + ε/2`` (tests and proofs only; the fast path forms ``t_j`` per element)."""
    P.check_epsilon(epsilon)
    labels = jnp.asarray(labels)
    if num_classes is not None and num_classes != labels.shape[-1]:
        raise ValueError(f"num_classes={num_classes} does not match the label matrix's K={labels.shape[-1]}")
    on, off = on_off(epsilon)
    return labels * (on - off) + off
