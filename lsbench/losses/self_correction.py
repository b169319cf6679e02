r"""``self_correction``: loss-based sample reweighting.

Given predicted probabilities ``P[..., K]`` (not logits), labels ``y`` and ``α``::

    w_i = 1 − α·(−log(P_{i,y_i} + 1e−10))

As published the weight turns negative when ``P_{i,y_i} < exp(−1/α)`` (for
``α = 0.1``, below about ``4.5e−5``), which pushes the model away from the
label (``proofs/self_correction.py`` proves the threshold). ``clip=True``
returns ``max(w, 0)`` instead. :func:`self_correction_loss` multiplies a
recipe's per-example loss by these weights treated as constants
(``stop_gradient``) and averages over the kept rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P

LOG_FLOOR = 1e-10


def self_correction_weights(probs, labels, alpha=0.1, clip=False):
    """Published per-example weights ``1 − α·(−log(P_y + 1e−10))`` (``max(·, 0)`` if ``clip``).

    Args:
      probs: ``[..., K]`` probabilities (rows of a softmax), floating.
      labels: ``[...]`` integer labels in ``[0, K)`` (under jit, a label outside
        that range, a negative one included, gives a NaN weight).
      alpha: ``α ≥ 0``.
      clip: clip negative weights to 0.
    """
    probs = P.check_logits(probs, "probs")
    labels = P.validate_labels(labels, probs, logits_name="probs")
    if P.is_concrete(probs) and probs.size:
        p = np.asarray(probs, dtype=np.float64)
        if not np.isfinite(p).all() or (p < 0).any() or (p > 1 + 1e-6).any():
            raise ValueError(
                "self_correction_weights takes probabilities in [0, 1] (e.g. softmax(logits)), not logits"
            )
    if P.is_concrete(alpha) and not (np.isfinite(alpha) and alpha >= 0):
        raise ValueError(f"alpha must be a finite number ≥ 0, got {alpha}")
    dt = P.compute_dtype(probs.dtype)
    p_y = jnp.take_along_axis(probs.astype(dt), labels[..., None], axis=-1, mode="fill")[..., 0]
    p_y = P.nan_where_out_of_range(p_y, labels, probs.shape[-1])
    w = 1 - alpha * (-jnp.log(p_y + LOG_FLOOR))
    return jnp.maximum(w, 0) if clip else w


def self_correction_loss(logits, labels, *, alpha=0.1, clip=False, recipe="uniform", where=None, **params):
    """``mean_i( stop_gradient(w_i) · L_i )`` over the kept rows.

    ``L_i`` is ``RECIPES[recipe].per_example`` (default ``uniform``, whose
    ``epsilon`` defaults to 0.1; pass ``epsilon=0`` for plain cross-entropy).
    The rows the recipe masks (``where`` and its ``ignore_index``, with the
    recipe's own default, e.g. −1 for ``speech_transformer``) are left out of
    the mean. The weights use ``softmax(logits)`` and carry no gradient.
    """
    from lsbench.losses import RECIPES

    if recipe not in RECIPES or RECIPES[recipe].labels != "int":
        raise ValueError(f"recipe must be one of the integer-label recipes, got {recipe!r}")
    logits = P.check_logits(logits)
    rows = RECIPES[recipe].per_example(logits, labels, where=where, **params)
    labels = jnp.asarray(labels)
    ignore_index = params.get("ignore_index", RECIPES[recipe].params.get("ignore_index"))
    mask = P.row_mask(labels, ignore_index=ignore_index, where=where)
    safe = labels if mask is None else jnp.where(mask, labels, 0)
    w = jax.lax.stop_gradient(_weights_from_logits(logits, safe, alpha, clip, rows.dtype))
    return P.masked_mean(w * rows, mask)


def _weights_from_logits(logits, labels, alpha, clip, dtype):
    """:func:`self_correction_weights` of ``softmax(logits)`` without building the softmax."""
    z = logits.astype(dtype)
    z_y = jnp.take_along_axis(z, labels[..., None], axis=-1, mode="fill")[..., 0]
    p_y = jnp.exp(P.nan_where_out_of_range(z_y, labels, z.shape[-1]) - jax.nn.logsumexp(z, axis=-1))
    w = 1 - alpha * (-jnp.log(p_y + LOG_FLOOR))
    return jnp.maximum(w, 0) if clip else w
