r"""``poly``: Poly-1 cross-entropy with label smoothing (Leng et al. 2022; timm ``PolyCrossEntropy``).

Source: huggingface/pytorch-image-models, ``timm/loss/poly_loss.py``
(``PolyCrossEntropy(epsilon, smoothing)``: the index target becomes
``one_hot·(1 − smoothing) + smoothing/K``, ``loss = −Σ t log p``,
``pt = Σ t·p``, ``loss + epsilon·(1 − pt)``, mean over the batch), following the
paper's label-smoothed listing (Leng et al., *PolyLoss: A Polynomial Expansion
Perspective of Classification Loss Functions*, ICLR 2022, arXiv:2204.12511):
the smoothed target enters both the cross-entropy and ``p_t``. Here ε is the
smoothing (timm's ``smoothing``) and ``poly`` the Poly-1 coefficient (timm's
``epsilon``, default 2 as in timm).

With ``q = (1 − ε)·onehot(y) + ε/K`` (the ``uniform`` target), ``Σ_j q_j p_j =
(1 − ε)·p_y + ε/K``, so per example::

    L = lse − (1 − ε)·z_y − (ε/K)·S + poly·(1 − ε/K − (1 − ε)·p_y)

Gradient ``p − q − c·p_y·(onehot(y) − p)`` with ``c = poly·(1 − ε)``: the extra
term is not of the form ``p − q'``, so no ε' of ``uniform`` gives the same
gradient unless ``c = 0`` (``poly = 0``: ε' = ε; ``ε = 1``: ε' = 1), see
:func:`equivalent_uniform_epsilon` and ``proofs.poly``. Stationary point: every
other class gets ``p_j = (ε/K)/(1 + c·p_y)`` and ``p_y`` is the root in (0, 1) of
``(1 − p)(1 + c·p) = (K − 1)ε/K``; the logit gap is
``log(K·p_y·(1 + c·p_y)/ε)``, larger than ``uniform``'s for ``c > 0``.
Reduction: mean over the kept rows.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api
from lsbench.losses.recipes import uniform


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon, poly) -> jax.Array:
    """``uniform``'s closed form plus ``poly·(1 − ε/K − (1 − ε)·p_y)`` on row statistics."""
    dt = stats.lse.dtype
    eps, c = jnp.asarray(epsilon, dt), jnp.asarray(poly, dt)
    p_y = jnp.exp(stats.target - stats.lse)
    return uniform.rows_from_stats(stats, num_classes, epsilon=eps) + c * (1 - eps / num_classes - (1 - eps) * p_y)


def check_params(num_classes: int, *, epsilon, poly, **_):
    P.check_epsilon(epsilon)
    if P.is_concrete(poly):
        try:
            value = float(poly)
        except (TypeError, ValueError):
            raise TypeError(f"poly must be a real number ≥ −1, got {poly!r}") from None
        if not (math.isfinite(value) and value >= -1):
            raise ValueError(f"poly (the Poly-1 coefficient) must be a finite number ≥ −1, got {value}")


def equivalent_uniform_epsilon(epsilon, poly, num_classes=None):
    """The ε' of ``uniform`` with the same gradient, or None: it exists only when ``poly·(1 − ε) = 0``."""
    return epsilon if poly * (1 - epsilon) == 0 else None


@recipe_api.shared_docs
def poly(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, poly: float = 2.0,
         ignore_index: int | None = None, where: jax.Array | None = None) -> jax.Array:
    r"""Per-example Poly-1 loss ``CE(q) + poly·(1 − Σ_j q_j p_j)`` with the smoothed target ``q``.

    .. math::

      L = \operatorname{logsumexp}(z) - (1-\varepsilon) z_y - \frac{\varepsilon}{K}\sum_j z_j
          + \mathrm{poly}\,\Big(1 - \frac{\varepsilon}{K} - (1-\varepsilon)\, p_y\Big)

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      {SMOOTHED_LABEL_ARGS}
      poly: the Poly-1 coefficient (timm's ``epsilon``), ``≥ −1``.

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import poly
      >>> print(poly(jnp.zeros((1, 4)), jnp.array([0]), epsilon=0.0, poly=1.0))  # log 4 + 3/4
      [2.1362944]

    References:
      Leng et al., `PolyLoss: A Polynomial Expansion Perspective of Classification Loss
      Functions <https://arxiv.org/abs/2204.12511>`_, ICLR 2022; huggingface/pytorch-image-models,
      ``timm/loss/poly_loss.py``, ``PolyCrossEntropy``.
    """
    return P.plain_rows(rows_from_stats, check_params, logits, labels, ignore_index=ignore_index, where=where,
                        epsilon=epsilon, poly=poly)[0]


loss = recipe_api.reduced(poly, P.masked_mean, "the mean over the kept rows (0 when none is kept)")


def targets(labels, num_classes, *, epsilon):
    """The smoothed target ``q`` of both terms (``uniform``'s; tests and proofs only)."""
    return uniform.targets(labels, num_classes, epsilon=epsilon)
