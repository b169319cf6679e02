r"""``label_relaxation``: label relaxation (Lienen & Hüllermeier, AAAI 2021).

Source: julilien/LabelRelaxation, ``src/label_relaxation/loss.py``
(``label_relaxation_loss``) and the original TensorFlow ``lr/losses/lr_loss.py``
(``LabelRelaxationLoss``: ``y_true_credal = where(y_true > 0.1, 1 − α,
α·p/Σ_{j≠y} p_j)``, ``KL(y_true_credal ‖ p)``, and 0 where ``p_y ≥ 1 − α``).
Here ε is the paper's imprecision α.

Instead of a smoothed target, the label defines the credal set
``Q = {q : q_y ≥ 1 − ε}``; the loss is 0 on it and otherwise the KL divergence
from the prediction's projection ``r`` onto it, ``r_y = 1 − ε``,
``r_j = ε·p_j/(1 − p_y)``::

    L = 0                                                   if p_y ≥ 1 − ε
    L = (1 − ε)·log((1 − ε)/p_y) + ε·log(ε/(1 − p_y))        otherwise

(``1 − p_y`` from the row statistics and the sum of the other classes' exponentials:
no one-hot matrix, and no cancellation where ``p_y`` is close to 1).
Gradient ``p − r`` outside the set (the same whether ``r`` is held fixed or not:
``proofs.label_relaxation``), 0 inside it. No unique optimum: every logit vector
with ``p_y ≥ 1 − ε`` is a minimiser (loss 0); the smallest such logit gap, with
the other classes equal, is ``log((1 − ε)(K − 1)/ε)`` (``off_target``'s optimal
gap). The target mass is ``Σ r = 1`` with ``r`` depending on ``p``, so no ε' of
``uniform`` gives the same gradient (inside the set the gradient is 0, where
``uniform``'s is not). The published code requires ``0 < α < 1`` (and the
TensorFlow original clips ``p`` to ``[1e-7, 1 − 1e-7]``); ε = 0 here is the
cross-entropy limit and ε = 1 the zero loss. Reduction: mean over the kept rows.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon, rest) -> jax.Array:
    """The closed form on row statistics and ``rest = Σ_{j≠y} exp(z_j − m)``: 0 inside the credal set,
    else the projected KL."""
    dt = stats.lse.dtype
    eps = jnp.asarray(epsilon, dt)
    bound = jnp.log1p(-eps)  # log(1 − ε)
    log_p_y = stats.target - stats.lse
    inside = log_p_y >= bound
    # The discarded branch must stay finite (its gradient is multiplied by 0, not dropped).
    lp = jnp.where(inside, jnp.full_like(log_p_y, -1.0), log_p_y)
    log_rest = jnp.log(jnp.where(inside, jnp.ones_like(rest), rest)) - stats.lse  # log(1 − p_y)
    kl = P.times(1 - eps, bound - lp) + P.times(eps, jnp.log(eps) - log_rest)
    return jnp.where(inside, jnp.zeros_like(kl), kl)


@jax.jit
def _rows(logits, labels, mask, epsilon):
    """``1 − p_y`` as the sum of the other classes' ``exp(z_j − m)`` (one more pass, no one-hot
    matrix): exact where ``p_y`` is close to 1, unlike ``1 − exp(log p_y)``."""
    st = P.row_stats(logits, labels, keep=mask)
    dt = st.lse.dtype
    x = logits.astype(dt)
    if mask is not None:  # masked rows: their NaN/inf never reach the sum (nor its gradient)
        x = jnp.where(mask[..., None], x, jnp.zeros((), dt))
    k = logits.shape[-1]
    iota = jax.lax.broadcasted_iota(jnp.int32, (1,) * (x.ndim - 1) + (k,), x.ndim - 1)
    rest = jnp.sum(jnp.where(iota == labels[..., None], jnp.zeros((), dt), jnp.exp(x - st.shift[..., None])), axis=-1)
    return P.apply_mask(rows_from_stats(st, k, epsilon=epsilon, rest=rest), mask)


def check_params(num_classes: int, *, epsilon, **_):
    P.check_epsilon(epsilon)


@recipe_api.shared_docs
def label_relaxation(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, ignore_index: int | None = None,
                     where: jax.Array | None = None) -> jax.Array:
    r"""Per-example label-relaxation loss with imprecision ε (the paper's α).

    .. math::

      L = \begin{cases} 0 & p_y \ge 1-\varepsilon \\
          (1-\varepsilon)\log\frac{1-\varepsilon}{p_y} + \varepsilon\log\frac{\varepsilon}{1-p_y} & \text{otherwise}
          \end{cases}

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      {SMOOTHED_LABEL_ARGS}

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import label_relaxation
      >>> z = jnp.array([[4.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # p_y ≈ 0.96 (inside), 1/3 (outside)
      >>> print(label_relaxation(z, jnp.array([0, 0]), epsilon=0.1))
      [0.         0.70421463]

    References:
      Lienen & Hüllermeier, `From Label Smoothing to Label Relaxation
      <https://ojs.aaai.org/index.php/AAAI/article/view/17041>`_, AAAI 2021;
      julilien/LabelRelaxation, ``src/label_relaxation/loss.py``.
    """
    logits, safe, mask = P.prepare(logits, labels, ignore_index=ignore_index, where=where)
    check_params(logits.shape[-1], epsilon=epsilon)
    return _rows(logits, safe, mask, epsilon)


loss = recipe_api.reduced(label_relaxation, P.masked_mean, "the mean over the kept rows (0 when none is kept)")


def equivalent_uniform_epsilon(epsilon, num_classes=None):
    """None: the target ``r`` depends on the prediction and the gradient vanishes on the credal set."""
    return None


def targets(labels, num_classes, *, epsilon, logits):
    """The prediction-dependent target ``r`` (the projection; ``p`` itself inside the set), so that
    the gradient of :func:`label_relaxation` is ``p − r`` (tests and proofs only)."""
    P.check_epsilon(epsilon)
    p = jax.nn.softmax(jnp.asarray(logits), axis=-1)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=p.dtype)
    p_y = jnp.sum(onehot * p, axis=-1, keepdims=True)
    r = onehot * (1 - epsilon) + (1 - onehot) * epsilon * p / (1 - p_y)
    return jnp.where(p_y >= 1 - epsilon, p, r)
