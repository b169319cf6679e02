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

import functools

import jax
import jax.numpy as jnp

from lsbench.losses import _core

DEFAULT_EPSILON = 0.1
WEIGHT_MODES = ("example", "torch")


def _check_weight(weight, num_classes: int, weight_mode: str):
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


@functools.partial(jax.jit, static_argnames=("weight_mode",))
def _rows(logits, labels, mask, epsilon, weight, z_loss, weight_mode):
    """Per-row loss and per-row normaliser (the weight of the row's label, or 1)."""
    k = logits.shape[-1]
    dt = _core.compute_dtype(logits.dtype)
    eps = jnp.asarray(epsilon, dt)
    if weight is not None and weight_mode == "torch":
        st = _core.row_stats(logits, labels, weight)
        w = weight.astype(dt)
        w_y = w[labels]
        # (1−ε)·w_y·(lse − z_y) + (ε/K)·(Σw·lse − Σ_j w_j z_j), all relative to m.
        rows = (1 - eps) * w_y * (st.lse - st.target) + (eps / k) * (jnp.sum(w) * st.lse - st.total)
    else:
        st = _core.row_stats(logits, labels)
        rows = st.lse - (1 - eps) * st.target - (eps / k) * st.total
        w_y = None if weight is None else weight.astype(dt)[labels]
        if w_y is not None:
            rows = w_y * rows
    if z_loss is not None:
        rows = rows + jnp.asarray(z_loss, dt) * jnp.square(st.lse + st.shift)
    norm = jnp.ones_like(rows) if w_y is None else w_y
    return _core.apply_mask(rows, mask), norm


def _prepare(logits, labels, epsilon, ignore_index, where, weight, weight_mode):
    _core.check_epsilon(epsilon)
    logits, safe, mask = _core.prepare(logits, labels, ignore_index=ignore_index, where=where)
    weight = _check_weight(weight, logits.shape[-1], weight_mode)
    return logits, safe, mask, weight


def per_example(
    logits,
    labels,
    *,
    epsilon=DEFAULT_EPSILON,
    ignore_index=None,
    where=None,
    weight=None,
    weight_mode="example",
    z_loss=None,
):
    """Per-position ``L = lse − (1−ε)·z_y − (ε/K)·S`` (weighted as documented); masked rows are 0.

    Args:
      logits: ``[..., K]`` floating logits (bf16/f16 computed in float32).
      labels: ``[...]`` integer class indices in ``[0, K)``.
      epsilon: smoothing ε in ``[0, 1]``.
      ignore_index: label value whose rows are excluded (None: none).
      where: boolean ``[...]`` mask of rows to keep (broadcastable).
      weight: optional ``[K]`` per-class weights (see module docstring).
      weight_mode: ``"example"`` (default) or ``"torch"``.
      z_loss: optional coefficient of ``lse²``.

    Returns:
      ``[...]`` losses in float32 (float64 for float64 logits).
    """
    logits, safe, mask, weight = _prepare(logits, labels, epsilon, ignore_index, where, weight, weight_mode)
    return _rows(logits, safe, mask, epsilon, weight, z_loss, weight_mode)[0]


def loss(
    logits,
    labels,
    *,
    epsilon=DEFAULT_EPSILON,
    ignore_index=None,
    where=None,
    weight=None,
    weight_mode="example",
    z_loss=None,
):
    """Mean of :func:`per_example` over the kept rows (weighted: ``Σ L_i / Σ w_{y_i}``).

    Returns 0 when no row is kept.
    """
    logits, safe, mask, weight = _prepare(logits, labels, epsilon, ignore_index, where, weight, weight_mode)
    rows, norm = _rows(logits, safe, mask, epsilon, weight, z_loss, weight_mode)
    if weight is None:
        return _core.masked_mean(rows, mask)
    norm = _core.apply_mask(norm, mask)
    total = jnp.sum(norm)
    return jnp.sum(rows) / jnp.where(total == 0, jnp.ones_like(total), total)


def targets(labels, num_classes, *, epsilon=DEFAULT_EPSILON):
    """Dense ``q = (1−ε)·onehot(y) + ε/K`` (for tests and proofs; not the fast path)."""
    _core.check_epsilon(epsilon)
    onehot = jax.nn.one_hot(labels, num_classes, dtype=jnp.result_type(float))
    return (1 - epsilon) * onehot + epsilon / num_classes
