r"""``flax_kl``: the Flax WMT example / T5X loss, ``off_target``'s target with its entropy subtracted.

Published code (``google/flax`` ``examples/wmt/train.py`` and ``examples/lm1b``
``compute_weighted_cross_entropy``; ``google-research/t5x`` ``t5x/losses.py``
``compute_weighted_cross_entropy``) builds, for vocabulary size ``K``::

    confidence c = 1 − ε,   low = ε/(K−1)          (the off_target target q)
    normalizing_constant = −(c·log c + (K−1)·low·log(low + 1e-20))
    loss_row = −Σ_j q_j log p_j − normalizing_constant

so each row is ``KL(q‖p) = CE(q, p) − H(q)`` up to the ``1e-20`` guard: the
constant is ``H̃(q) = −c log c − ε·log(ε/(K−1) + 1e-20)``, which differs from
``H(q)`` by ``ε·log(1 + 1e-20·(K−1)/ε) ≥ 0`` (3·10⁻¹⁶ at ε = 0.1, K = 32000).
The gradient is ``off_target``'s, ``softmax(z) − q``: subtracting a constant
changes the reported value only. At ε = 0.1, K = 32000 the constant is
``H(q) ≈ 1.362`` nats, which is why the example's loss reads 1.36 nats below the
cross-entropy that PyTorch or optax would report for the same model.

At the ends of ``[0, 1]``:

* ε = 0: ``low = 0`` and the guard makes ``0·log(1e-20) = 0``, so the constant is 0
  and the loss is the plain cross-entropy (the guard exists for this case);
* ε = 1: ``c = 0`` and the published ``c·log c`` is ``0·log 0 = NaN`` (no guard on
  that term), so the published loss is NaN for every row. lsbench takes
  ``0·log 0 = 0`` (``xlogy``), the limit, and returns ``KL(q‖p)`` with
  ``H(q) = log(K−1)`` there; this is the one deliberate difference from the code.

Normalisation (``normalization``, used by :func:`loss`; the per-example values
do not depend on it), after the published code returns ``(Σ loss·weights, Σ weights)``:

* ``"real_tokens"`` (default): ``Σ_rows / #kept rows``, the Flax WMT train step's
  ``loss / weight_sum`` with ``weights = targets > 0`` (T5X ``NUM_REAL_TARGET_TOKENS``);
* ``"total_tokens"``: ``Σ_rows / #rows`` including masked ones (T5X
  ``NUM_TOTAL_TARGET_TOKENS``; Flax's ``np.prod(targets.shape)`` without weights);
* ``"sum"``: no normalisation (T5X ``loss_normalizing_factor=None``);
* a positive number ``F``: ``Σ_rows / F`` (T5X's constant ``loss_normalizing_factor``).

T5X's ``AVERAGE_PER_SEQUENCE`` (a per-sequence mean, then the mean over sequences) is not offered.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api
from lsbench.losses.recipes import off_target

GUARD = 1e-20  #: the published code's guard inside ``log(low + 1e-20)``
NORMALIZATIONS = ("real_tokens", "total_tokens", "sum")


def normalizing_constant(num_classes: int, eps, dtype=None) -> jax.Array:
    """``−(c·log c + ε·log(ε/(K−1) + 1e-20))``, ``c = 1 − ε``, with ``0·log 0 = 0`` at ε = 1."""
    eps = jnp.asarray(eps, dtype)
    c = 1 - eps
    return -(jax.scipy.special.xlogy(c, c) + eps * jnp.log(eps / (num_classes - 1) + GUARD))


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon) -> jax.Array:
    """``off_target``'s cross-entropy minus the published constant (every path calls this)."""
    eps = jnp.asarray(epsilon, stats.lse.dtype)
    return off_target.spread_rows(stats, num_classes, eps) - normalizing_constant(num_classes, eps, stats.lse.dtype)


def check_normalization(normalization) -> None:
    if isinstance(normalization, str):
        if normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS} or a positive number, "
                             f"got {normalization!r}")
        return
    P.check_positive(normalization, "normalization")


def check_params(num_classes: int, *, epsilon, normalization="real_tokens", **_):
    P.check_epsilon(epsilon)
    P.check_num_classes(num_classes, 2, "flax_kl")
    check_normalization(normalization)


@recipe_api.shared_docs
def flax_kl(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, normalization: str | float = "real_tokens",
            ignore_index: int | None = None, where: jax.Array | None = None) -> jax.Array:
    r"""Per-example ``KL(q‖p)`` of the Flax WMT example / T5X: ``q_y = 1−ε``, ``q_j = ε/(K−1)``.

    .. math::

      L = \operatorname{logsumexp}(z) - (1-\varepsilon) z_y - \frac{\varepsilon}{K-1}\Big(\sum_j z_j - z_y\Big)
          + (1-\varepsilon)\log(1-\varepsilon) + \varepsilon \log\Big(\frac{\varepsilon}{K-1} + 10^{-20}\Big)

    Args:
      logits: ``[..., K]`` floating logits, ``K ≥ 2``.
      {SMOOTHED_LABEL_ARGS}
      normalization: what :func:`loss` divides the row sum by: ``"real_tokens"``,
        ``"total_tokens"``, ``"sum"`` or a positive number (see the module docstring).

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import flax_kl
      >>> z = jnp.log(jnp.array([[0.7, 0.1, 0.1, 0.1]]))  # p = q: the KL is 0 (up to the 1e-20 guard)
      >>> print(abs(float(flax_kl(z, jnp.array([0]), epsilon=0.3)[0])) < 1e-6)
      True
      >>> print(flax_kl(jnp.zeros((1, 4)), jnp.array([0]), epsilon=0.0))  # ε = 0: cross-entropy, log 4
      [1.3862944]

    References:
      google/flax ``examples/wmt/train.py`` (and ``examples/lm1b/train.py``)
      ``compute_weighted_cross_entropy``; google-research/t5x ``t5x/losses.py``
      ``compute_weighted_cross_entropy`` and ``SpecialLossNormalizingFactor``.
    """
    check_normalization(normalization)
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon)[0]


def normalized_sum(rows, mask, normalization):
    """The row sum divided as ``normalization`` says (0 when nothing is kept, for the token counts)."""
    total = jnp.sum(rows)
    if normalization == "sum":
        return total
    if normalization == "real_tokens":
        return P.masked_mean(rows, mask)
    if normalization == "total_tokens":
        return total / max(rows.size, 1)
    return total / jnp.asarray(normalization, rows.dtype)


def loss(logits, labels, **params):
    """Sum of :func:`flax_kl` over the rows, divided as ``normalization`` says (default: mean over kept rows).

    Takes the keyword parameters of :func:`flax_kl`, with its defaults.
    """
    p = P.bind_params(flax_kl, params)
    logits, safe, mask = P.prepare(logits, labels, ignore_index=p["ignore_index"], where=p["where"])
    check_params(logits.shape[-1], epsilon=p["epsilon"], normalization=p["normalization"])
    rows = P.rows_on_logits(rows_from_stats, logits, safe, mask, {"epsilon": p["epsilon"]})
    return normalized_sum(rows, mask, p["normalization"])


def targets(labels, num_classes, *, epsilon):
    """Dense ``q_y = 1−ε``, ``q_j = ε/(K−1)``: ``off_target``'s (tests and proofs only)."""
    return off_target.targets(labels, num_classes, epsilon=epsilon)
