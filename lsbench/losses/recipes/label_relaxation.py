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

(``1 − p_y = rest/S`` with ``S = Σ_j exp(z_j − m)`` and ``rest = S − exp(z_y − m)``: no
one-hot matrix; ``rest`` is used only outside the set, where ``1 − p_y > ε`` bounds its
rounding error by about ``ulp/ε``). A ``jax.custom_vjp`` with two reads of the logits
forward (max, exp-sum) and one elementwise pass backward.
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


def rows_from_sums(target, log_sum, rest, *, epsilon) -> jax.Array:
    """The closed form from ``target = z_y − m``, ``log_sum = log Σ_j exp(z_j − m)`` and
    ``rest = Σ_{j≠y} exp(z_j − m)``: 0 inside the credal set, else the projected KL."""
    dt = log_sum.dtype
    eps = jnp.asarray(epsilon, dt)
    bound = jnp.log1p(-eps)  # log(1 − ε)
    log_p_y = target - log_sum
    inside = log_p_y >= bound
    # The discarded branch must stay finite (a select, so its NaN would not leak, but keep it clean).
    lp = jnp.where(inside, jnp.full_like(log_p_y, -1.0), log_p_y)
    log_rest = jnp.log(jnp.where(inside, jnp.ones_like(rest), rest)) - log_sum  # log(1 − p_y)
    kl = P.times(1 - eps, bound - lp) + P.times(eps, jnp.log(eps) - log_rest)
    return jnp.where(inside, jnp.zeros_like(kl), kl)


def _sums(logits, labels):
    """``(m, target, rest, log_sum)``: the row maximum, ``z_y − m`` (NaN for a bad label),
    ``rest = Σ_{j≠y} exp(z_j − m)`` and ``log Σ_j exp(z_j − m)``, from two reads of the logits
    (the max, then the exp-sum through :func:`lsbench.losses.primitives.exp_sum`) and the gather.

    ``rest = S − exp(z_y − m)``. It is used only outside the credal set, where ``rest/S = 1 − p_y
    > ε``, so its relative rounding error stays below about ``ulp/ε`` (10 ulp at ε = 0.1). Excluding
    the label inside the sum instead (a select on the column index) is exact but XLA:CPU's fast
    row reduction cannot fuse a select, so it materialised the ``[..., K]`` terms (measured: label
    relaxation 1.9x ``uniform``'s fwd+bwd time at 1024×32000 float32).
    """
    dt = P.compute_dtype(logits.dtype)
    k = logits.shape[-1]
    # 16-bit logits: the max in their dtype (exact); barriers keep XLA from sharing one float32
    # copy of the logits between the passes (as lsbench.losses.primitives.row_stats does).
    m = P.row_shift(logits, dt)
    total = P.exp_sum(logits, m, dt)
    zt = jax.lax.optimization_barrier(logits) if logits.dtype != dt else logits
    target = jnp.take_along_axis(zt, labels[..., None], axis=-1, mode="fill")[..., 0].astype(dt) - m
    target = P.nan_where_out_of_range(target, labels, k)
    return m, target, total - jnp.exp(target), jnp.log(total)


def _values(logits, labels, keep, epsilon):
    m, target, rest, log_sum = _sums(logits, labels)
    return P.apply_mask(rows_from_sums(target, log_sum, rest, epsilon=epsilon), keep), (m, target, rest, log_sum)


@jax.custom_vjp
def _relaxation_rows(logits, labels, keep, epsilon):
    return _values(logits, labels, keep, epsilon)[0]


def _relaxation_fwd(logits, labels, keep, epsilon):
    rows, (m, target, rest, log_sum) = _values(logits, labels, keep, epsilon)
    return rows, (logits, labels, keep, epsilon, m, target, rest, log_sum)


def _relaxation_bwd(res, g):
    """``ḡ·(p − r)`` outside the set, 0 inside: ``ḡ·(1/S − ε/rest)·e_j`` off the label
    (``e_j = exp(z_j − m)``, ``S = Σ e``) and ``ḡ·(p_y − (1 − ε))`` on it, in one elementwise pass."""
    logits, labels, keep, epsilon, m, target, rest, log_sum = res
    dt = P.compute_dtype(logits.dtype)
    k = logits.shape[-1]
    zero = jnp.zeros((), dt)
    eps = jnp.asarray(epsilon, dt)
    inside = target - log_sum >= jnp.log1p(-eps)
    out = jnp.logical_not(inside) if keep is None else keep & jnp.logical_not(inside)
    g = P.nan_where_out_of_range(g.astype(dt), labels, k)
    inv_sum = jnp.exp(-log_sum)
    off_coef = g * (inv_sum - P.times(eps, 1 / jnp.where(out, rest, jnp.ones_like(rest))))
    on_value = g * (jnp.exp(target - log_sum) - (1 - eps))
    off_coef, on_value = jnp.where(out, off_coef, zero), jnp.where(out, on_value, zero)
    # See _sums: the barrier keeps XLA from sharing exp(z − m) with the forward (a [..., K] array).
    z, m = jax.lax.optimization_barrier((logits, m))
    base = off_coef[..., None] * jnp.exp(z.astype(dt) - m[..., None])
    if keep is not None:  # a masked row may hold NaN or ±inf: a select, not a product with 0
        base = jnp.where(keep[..., None], base, zero)
    if logits.dtype != dt:  # no 16-bit scatter on XLA:CPU: an iota select inside the one pass
        iota = jax.lax.broadcasted_iota(jnp.int32, (1,) * (z.ndim - 1) + (k,), z.ndim - 1)
        grad = jnp.where(iota == labels[..., None], on_value[..., None], base).astype(z.dtype)
    else:
        grad = P.set_label_entries(base.astype(z.dtype), labels, on_value)
    return grad, P.int_cotangent(labels), None if keep is None else P.int_cotangent(keep), \
        jnp.zeros_like(epsilon)


_relaxation_rows.defvjp(_relaxation_fwd, _relaxation_bwd)


@jax.jit
def _rows(logits, labels, mask, epsilon):
    """Masked per-row losses: two reads of the logits forward (max; the rest sum), one write back."""
    return _relaxation_rows(logits, labels, mask, jnp.asarray(epsilon, P.compute_dtype(logits.dtype)))


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
