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
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import _core

DEFAULT_TEMPERATURE = 2.0


def _lse(x):
    m = jax.lax.stop_gradient(jnp.max(x, axis=-1))
    m = jnp.where(jnp.isfinite(m), m, jnp.zeros_like(m))
    return m + jnp.log(jnp.sum(jnp.exp(x - m[..., None]), axis=-1))


def _kl_fwd_values(s, t, inv_t):
    dt = _core.compute_dtype(s.dtype)
    sc, tc = s.astype(dt) * inv_t, t.astype(dt) * inv_t
    lse_s, lse_t = _lse(sc), _lse(tc)
    q = jnp.exp(tc - lse_t[..., None])
    kl = jnp.sum(q * (tc - sc), axis=-1) - lse_t + lse_s
    return kl, lse_s, lse_t


@jax.custom_vjp
def _kl_rows(s, t, inv_t):
    """Per-row ``KL(softmax(t·u) ‖ softmax(s·u))`` with ``u = 1/T``."""
    return _kl_fwd_values(s, t, inv_t)[0]


def _kl_rows_fwd(s, t, inv_t):
    kl, lse_s, lse_t = _kl_fwd_values(s, t, inv_t)
    return kl, (s, t, inv_t, kl, lse_s, lse_t)


def _kl_rows_bwd(res, g):
    s, t, inv_t, kl, lse_s, lse_t = res
    dt = _core.compute_dtype(s.dtype)
    sc, tc = s.astype(dt), t.astype(dt)
    log_p = sc * inv_t - lse_s[..., None]
    log_q = tc * inv_t - lse_t[..., None]
    q = jnp.exp(log_q)
    # Derivatives with respect to the scaled logits s·u and t·u.
    d_su = g[..., None] * (jnp.exp(log_p) - q)
    d_tu = g[..., None] * q * (log_q - log_p - kl[..., None])
    d_inv_t = jnp.sum(d_su * sc + d_tu * tc)
    return (d_su * inv_t).astype(s.dtype), (d_tu * inv_t).astype(t.dtype), d_inv_t.astype(jnp.result_type(inv_t))


_kl_rows.defvjp(_kl_rows_fwd, _kl_rows_bwd)


@jax.jit
def _rows(student, teacher, mask, temperature):
    dt = _core.compute_dtype(student.dtype)
    temp = jnp.asarray(temperature, dt)
    rows = temp**2 * _kl_rows(student, teacher, 1 / temp)
    return _core.apply_mask(rows, mask)


def _prepare(student, teacher, temperature, where):
    _core.check_positive(temperature, "temperature")
    student = _core.check_logits(student, "student logits")
    teacher = _core.check_logits(teacher, "teacher logits")
    if student.shape != teacher.shape:
        raise ValueError(f"student logits {student.shape} and teacher logits {teacher.shape} must have the same shape")
    if student.dtype != teacher.dtype:
        teacher = teacher.astype(student.dtype)
    _core.check_where(where, student.shape[:-1])
    mask = None if where is None else jnp.broadcast_to(jnp.asarray(where, bool), student.shape[:-1])
    return student, teacher, mask


def per_example(student_logits, teacher_logits, *, temperature=DEFAULT_TEMPERATURE, where=None):
    """Per-position ``T²·KL(softmax(t/T) ‖ softmax(s/T))``; masked rows are 0."""
    student, teacher, mask = _prepare(student_logits, teacher_logits, temperature, where)
    return _rows(student, teacher, mask, temperature)


def loss(student_logits, teacher_logits, *, temperature=DEFAULT_TEMPERATURE, where=None):
    """Sum of :func:`per_example` divided by the number of kept rows (``batchmean``)."""
    student, teacher, mask = _prepare(student_logits, teacher_logits, temperature, where)
    return _core.masked_mean(_rows(student, teacher, mask, temperature), mask)


def targets(teacher_logits, num_classes=None, *, temperature=DEFAULT_TEMPERATURE):
    """The soft target ``softmax(t/T)`` (tests and proofs only)."""
    _core.check_positive(temperature, "temperature")
    teacher_logits = jnp.asarray(teacher_logits)
    if num_classes is not None and num_classes != teacher_logits.shape[-1]:
        raise ValueError(f"num_classes={num_classes} does not match the teacher's K={teacher_logits.shape[-1]}")
    return jax.nn.softmax(teacher_logits / temperature, axis=-1)


def tutorial_loss(student_logits, teacher_logits, *, temperature=DEFAULT_TEMPERATURE):
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
