r"""``distillation``: temperature distillation (Hinton, Vinyals, Dean 2015).

Student logits ``s``, teacher logits ``t``, temperature ``T > 0``,
``p = softmax(s/T)``, ``q = softmax(t/T)``::

    L = T² · KL(q ‖ p) = T² · Σ_j q_j (log q_j − log p_j)

summed over classes and divided by the number of kept rows (for ``[B, K]``
inputs this is PyTorch's ``reduction="batchmean"``; for ``[B, T, K]`` inputs
lsbench divides by ``B·T`` where PyTorch's ``batchmean`` divides by ``B``).

Closed form per row, with ``lse_s = logsumexp(s/T)`` and ``lse_t = logsumexp(t/T)``::

    KL = Σ_j q_j (t_j − s_j)/T − lse_t + lse_s

Gradients: ``∂L/∂s = T·(p − q)`` per row (before the batch division) and, for
a trainable teacher, ``∂L/∂t = T·q ⊙ (log q − log p − KL)``; the temperature
is differentiable too. Tutorials compute ``log(softmax(s/T))``, which
underflows to ``−inf`` for confident students; lsbench works in log-space and
agrees with the tutorial form wherever that is finite.

Precision: with ``a_j = (t_j − m_t − s_j + m_s)/T`` (shifted logits, so no offset
ever rounds), ``ā = Σ q a`` and ``b = a − ā``,

    KL = log Σ_j q_j exp(−b_j) = log1p(Σ_j q_j φ(b_j)),    φ(b) = e^{−b} − 1 + b ≥ 0

(using ``Σ q b = 0``). ``φ`` is a short series for ``|b| ≤ 1/2``, so the sum has
no cancellation: at large ``T`` (``b ~ 1/T``) the loss keeps float32's relative
accuracy where ``Σ q a − lse_t + lse_s`` cancels to noise. Rows where
``exp(−b)`` could overflow use ``logsumexp(log q − b)``. The gradient uses
``p − q = q·expm1(−b − KL)`` and ``T²·KL`` is formed as ``T·(T·KL)`` so that
tiny temperatures neither overflow nor underflow to NaN.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


def _phi(b):
    """``exp(−b) − 1 + b`` without cancellation: a series for small |b| (1/2 in float32, 1/20 in
    float64, where the series' truncation and the direct form's cancellation both stay near the
    dtype's precision)."""
    x = -b
    series = x * x * (1 / 2 + x * (1 / 6 + x * (1 / 24 + x * (1 / 120 + x * (1 / 720 + x * (1 / 5040 + x / 40320))))))
    small = 0.05 if b.dtype == jnp.float64 else 0.5
    return jnp.where(jnp.abs(b) <= small, series, jnp.expm1(x) + b)


def _kl_parts(s, t, temperature):
    """``(log q, q, b, kl, wide, ds, dt)`` per row: teacher log-probabilities and probabilities,
    centred log-ratio, KL, the rows that need the log-sum-exp form, shifted logits."""
    cdt = P.compute_dtype(s.dtype)
    u = 1 / jnp.asarray(temperature, cdt)
    sc, tc = s.astype(cdt), t.astype(cdt)
    ds = sc - P.safe_shift(jax.lax.stop_gradient(jnp.max(sc, axis=-1)))[..., None]
    dtt = tc - P.safe_shift(jax.lax.stop_gradient(jnp.max(tc, axis=-1)))[..., None]
    log_q = dtt * u - jnp.log(jnp.sum(jnp.exp(dtt * u), axis=-1, keepdims=True))
    q = jnp.exp(log_q)
    a = (dtt - ds) * u
    b = a - jnp.sum(q * a, axis=-1, keepdims=True)
    # exp(−b) overflows float32 beyond b < −88: such rows take the log-sum-exp form.
    wide = jnp.min(b, axis=-1) < -60
    small = jnp.log1p(jnp.sum(q * _phi(jnp.where(wide[..., None], 0, b)), axis=-1))
    lse_form = jax.nn.logsumexp(log_q - b, axis=-1)
    kl = jnp.maximum(jnp.where(wide, lse_form, small), 0)
    return log_q, q, b, kl, wide, ds, dtt


@jax.custom_vjp
def _scaled_kl(s, t, temperature, keep):
    """Per-row ``T²·KL(softmax(t/T) ‖ softmax(s/T))``; rows where ``keep`` is False get zero gradient."""
    kl = _kl_parts(s, t, temperature)[3]
    temp = jnp.asarray(temperature, kl.dtype)
    return temp * (temp * kl)


def _scaled_kl_fwd(s, t, temperature, keep):
    return _scaled_kl(s, t, temperature, keep), (s, t, temperature, keep)


def _scaled_kl_bwd(res, g):
    s, t, temperature, keep = res
    log_q, q, b, kl, wide, ds, dtt = _kl_parts(s, t, temperature)
    temp = jnp.asarray(temperature, kl.dtype)
    # p = q·exp(−b − KL): the product form keeps p − q accurate when p ≈ q; wide rows
    # (where exp(−b) may overflow while q underflows) take p from log-space.
    log_ratio = -b - kl[..., None]
    p_minus_q = jnp.where(wide[..., None], jnp.exp(log_q + log_ratio) - q,
                          q * jnp.expm1(jnp.where(wide[..., None], 0, log_ratio)))
    gs = (g * temp)[..., None] * p_minus_q  # ∂/∂s = T·(p − q)
    gt = (g * temp)[..., None] * q * b  # ∂/∂t = T·q·(log q − log p − KL) = T·q·b
    # ∂/∂T = 2T·KL − Σ_j [(p − q)_j (s_j − m_s) + q_j b_j (t_j − m_t)] (shift-invariant sums).
    g_temp = g * (2 * temp * kl - jnp.sum(p_minus_q * ds + q * b * dtt, axis=-1))
    if keep is not None:
        zero = jnp.zeros((), gs.dtype)
        gs, gt = jnp.where(keep[..., None], gs, zero), jnp.where(keep[..., None], gt, zero)
        g_temp = jnp.where(keep, g_temp, zero)
    g_temp = jnp.sum(g_temp).astype(jnp.result_type(temperature))
    return gs.astype(s.dtype), gt.astype(t.dtype), g_temp, None if keep is None else P.int_cotangent(keep)


_scaled_kl.defvjp(_scaled_kl_fwd, _scaled_kl_bwd)


@jax.jit
def _rows(student, teacher, mask, temperature):
    dt = P.compute_dtype(student.dtype)
    return P.apply_mask(_scaled_kl(student, teacher, jnp.asarray(temperature, dt), mask), mask)


def _prepare(student, teacher, temperature, where):
    P.check_positive(temperature, "temperature")
    student = P.check_logits(student, "student logits")
    teacher = P.check_logits(teacher, "teacher logits")
    if student.shape != teacher.shape:
        raise ValueError(f"student logits {student.shape} and teacher logits {teacher.shape} must have the same shape")
    if student.dtype != teacher.dtype:
        teacher = teacher.astype(student.dtype)
    mask = P.checked_where(where, student.shape[:-1])
    return student, teacher, mask


def distillation(student_logits: jax.Array, teacher_logits: jax.Array, *, temperature: float = 2.0,
                 where: jax.Array | None = None) -> jax.Array:
    r"""Per-example ``T²·KL(softmax(t/T) ‖ softmax(s/T))`` (Hinton et al.'s distillation loss).

    .. math::

      L = T^2 \sum_j q_j \big(\log q_j - \log p_j\big),\qquad
      p = \operatorname{softmax}(s/T),\ q = \operatorname{softmax}(t/T)

    Args:
      student_logits: ``[..., K]`` floating logits ``s``.
      teacher_logits: ``[..., K]`` floating logits ``t`` (differentiable).
      temperature: ``T > 0`` (differentiable).
      where: boolean ``[...]`` mask of rows to keep (broadcastable).

    Returns:
      ``[...]`` losses in float32 (float64 for float64 logits); masked rows are 0.

    Examples:
      >>> import jax.numpy as jnp
      >>> from lsbench.losses import distillation
      >>> z = jnp.array([[1.0, 2.0, 3.0]])
      >>> print(distillation(z, z, temperature=2.0))  # the same distribution: KL = 0
      [0.]

    References:
      Hinton, Vinyals, Dean, `Distilling the Knowledge in a Neural Network
      <https://arxiv.org/abs/1503.02531>`_, 2015.
    """
    student, teacher, mask = _prepare(student_logits, teacher_logits, temperature, where)
    return _rows(student, teacher, mask, temperature)



loss = recipe_api.reduced(distillation, P.masked_mean, "the sum divided by the number of kept rows (``batchmean``)")


def targets(teacher_logits, num_classes=None, *, temperature):
    """The soft target ``softmax(t/T)`` (tests and proofs only)."""
    P.check_positive(temperature, "temperature")
    teacher_logits = jnp.asarray(teacher_logits)
    if num_classes is not None and num_classes != teacher_logits.shape[-1]:
        raise ValueError(f"num_classes={num_classes} does not match the teacher's K={teacher_logits.shape[-1]}")
    return jax.nn.softmax(teacher_logits / temperature, axis=-1)


def tutorial_loss(student_logits, teacher_logits, *, temperature=P.keyword_defaults(distillation)["temperature"]):
    """The form tutorials copy: ``T²·Σ q·(log q − log(softmax(s/T)))/B``.

    Kept only to show (in tests and the paper) where it underflows; never use it.
    """
    s = np.asarray(student_logits, np.float64) / temperature
    t = np.asarray(teacher_logits, np.float64) / temperature
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    q = np.exp(t - t.max(-1, keepdims=True))
    q /= q.sum(-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl = np.sum(np.where(q > 0, q * (np.log(q) - np.log(p)), 0.0), axis=-1)
    return temperature**2 * kl.sum() / int(np.prod(s.shape[:-1]))
