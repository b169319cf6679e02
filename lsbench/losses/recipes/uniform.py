r"""``uniform``: ε/K on every class (Szegedy et al. 2016, §7).

Target, for label ``y`` among ``K`` classes::

    q = (1 − ε)·onehot(y) + ε/K            (the target class gets 1 − ε + ε/K)

Per-example loss, computed without a one-hot (``lse = logsumexp(z)``,
``S = Σ_j z_j``)::

    L = lse − (1 − ε)·z_y − (ε/K)·S

Gradient: ``∂L/∂z = softmax(z) − q`` (q sums to 1). Reduction: mean over the
rows that are not masked. This is TensorFlow/Keras ``label_smoothing``,
``optax.smooth_labels`` + ``softmax_cross_entropy``, PyTorch
``cross_entropy(label_smoothing=ε)`` and timm's ``LabelSmoothingCrossEntropy``.

Extras that PyTorch and Liger users expect:

* ``weight`` (a ``[K]`` vector of per-class weights) with two normalisations:

  - ``weight_mode="example"`` (default): each row is weighted by the weight of
    its own label, ``L'_i = w_{y_i}·L_i``, and the mean divides by
    ``Σ_i w_{y_i}``. The target distribution of every row stays the smoothed
    one-hot; only the rows' importance changes (Keras ``class_weight``).
  - ``weight_mode="torch"``: PyTorch's behaviour, where the weight also enters
    the smoothing term, ``L_i = (1−ε)·w_{y_i}·(lse − z_{y_i}) + (ε/K)·Σ_j w_j·(lse − z_j)``,
    and ``mean`` divides by ``Σ_i w_{y_i}``. The smoothing term is then not
    normalised by the same weights as the NLL term, which is disputed in
    PyTorch issue #104776; it is offered for exact parity with PyTorch.

* ``z_loss``: adds ``z_loss·lse²`` per row (PaLM's auxiliary loss, Liger's
  ``lse_square_scale``); its gradient is ``2·z_loss·lse·softmax(z)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api

WEIGHT_MODES = ("example", "torch")


def rows_from_stats(stats: P.RowStats, num_classes: int, *, epsilon, z_loss=None, label_weight=None,
                    class_weight_sum=None) -> jax.Array:
    """The closed form ``lse − (1−ε)·target − ε·mean`` on row statistics (every path calls this).

    ``label_weight``: the weight of each row's label (``weight_mode="example"``
    and the NLL term of ``"torch"``). ``class_weight_sum``: ``Σ_j w_j`` when the
    statistics were taken with class weights (``weight_mode="torch"``).
    """
    dt = stats.lse.dtype
    eps = jnp.asarray(epsilon, dt)
    if class_weight_sum is not None:
        # (1−ε)·w_y·(lse − target) + (ε/K)·(Σw·lse − Σ_j w_j (z_j − m)), all relative to m.
        rows = (1 - eps) * label_weight * (stats.lse - stats.target) \
            + P.times(eps, class_weight_sum / num_classes * stats.lse - stats.mean)
    else:
        rows = stats.lse - P.times(1 - eps, stats.target) - P.times(eps, stats.mean)
        if label_weight is not None:
            rows = label_weight * rows
    if z_loss is not None:
        rows = rows + jnp.asarray(z_loss, dt) * jnp.square(stats.lse + stats.shift)
    return rows


def check_params(num_classes: int, *, epsilon, weight=None, weight_mode="example", **_):
    """Validate the parameters (every path calls this); returns the checked class weight or None."""
    P.check_epsilon(epsilon)
    if weight_mode not in WEIGHT_MODES:
        raise ValueError(f"weight_mode must be one of {WEIGHT_MODES}, got {weight_mode!r}")
    if weight is None:
        return None
    weight = jnp.asarray(weight)
    if not jnp.issubdtype(weight.dtype, jnp.floating):
        raise TypeError(f"weight must be a floating-point [K] vector, got dtype {weight.dtype}")
    if weight.shape != (num_classes,):
        raise ValueError(f"weight must have shape ({num_classes},) for K={num_classes}, got {weight.shape}")
    return weight


def reduce(rows, mask, norm=None):
    """Mean over the kept rows; with class weights ``Σ L_i / Σ w_{y_i}``."""
    return P.masked_mean(rows, mask) if norm is None else P.weighted_mean(rows, P.apply_mask(norm, mask))


def _rows_and_norm(logits, labels, *, epsilon, ignore_index, where, weight, weight_mode, z_loss):
    """``(rows, mask, norm)``: masked per-row losses, the kept-row mask and the label weights (or None)."""
    logits, safe, mask = P.prepare(logits, labels, ignore_index=ignore_index, where=where)
    weight = check_params(logits.shape[-1], epsilon=epsilon, weight=weight, weight_mode=weight_mode)
    params = {"epsilon": epsilon, "z_loss": z_loss}
    if weight is None:
        return P.rows_on_logits(rows_from_stats, logits, safe, mask, params), mask, None
    w_y = jnp.take(weight.astype(P.compute_dtype(logits.dtype)), safe, mode="fill")
    if weight_mode == "example":
        return P.rows_on_logits(rows_from_stats, logits, safe, mask, params, w_y), mask, w_y
    return _torch_rows(logits, safe, mask, epsilon, z_loss, weight, w_y), mask, w_y


@jax.jit
def _torch_rows(logits, labels, mask, epsilon, z_loss, weight, label_weight):
    st = P.row_stats(logits, labels, weight, keep=mask)
    rows = rows_from_stats(st, logits.shape[-1], epsilon=epsilon, z_loss=z_loss, label_weight=label_weight,
                           class_weight_sum=jnp.sum(weight.astype(st.lse.dtype)))
    return P.apply_mask(rows, mask)


@recipe_api.shared_docs
def uniform(logits: jax.Array, labels: jax.Array, *, epsilon: float = 0.1, ignore_index: int | None = None,
            where: jax.Array | None = None, weight: jax.Array | None = None, weight_mode: str = "example",
            z_loss: float | None = None) -> jax.Array:
    r"""Per-example cross-entropy with the uniformly smoothed target ``(1−ε)·onehot(y) + ε/K``.

    .. math::

      L = \operatorname{logsumexp}(z) - (1-\varepsilon)\, z_y - \frac{\varepsilon}{K} \sum_j z_j

    computed from ``z − max(z)`` without a one-hot, with the closed-form
    gradient ``softmax(z) − q``. With ``weight`` each row is multiplied by
    ``w_y`` (``weight_mode="example"``) or follows PyTorch's class-weighted
    form (``"torch"``); ``z_loss`` adds ``z_loss·logsumexp(z)²``.

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      {SMOOTHED_LABEL_ARGS}
      weight: optional ``[K]`` per-class weights.
      weight_mode: ``"example"`` (default) or ``"torch"``.
      z_loss: optional coefficient of ``logsumexp(z)²``.

    {PER_EXAMPLE_RETURNS}

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import uniform
      >>> z = jnp.zeros((2, 4))  # uniform predictions: the loss is log 4 for every ε
      >>> print(uniform(z, jnp.array([0, 3]), epsilon=0.1))
      [1.3862944 1.3862944]
      >>> print(uniform(jnp.array([[0.0, -jnp.inf]]), jnp.array([0]), epsilon=0.0))
      [0.]

    References:
      Szegedy et al., `Rethinking the Inception Architecture for Computer Vision
      <https://arxiv.org/abs/1512.00567>`_, 2016, §7.
    """
    return _rows_and_norm(logits, labels, epsilon=epsilon, ignore_index=ignore_index, where=where, weight=weight,
                          weight_mode=weight_mode, z_loss=z_loss)[0]



def loss(logits, labels, **params):
    """Mean of :func:`uniform` over the kept rows (weighted: ``Σ L_i / Σ w_{y_i}``); 0 when none is kept.

    Takes the keyword parameters of :func:`uniform`, with its defaults.
    """
    return reduce(*_rows_and_norm(logits, labels, **P.bind_params(uniform, params)))


def targets(labels, num_classes, *, epsilon):
    """Dense ``q = (1−ε)·onehot(y) + ε/K`` (for tests and proofs; not the fast path)."""
    P.check_epsilon(epsilon)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return (1 - epsilon) * onehot + epsilon / num_classes
