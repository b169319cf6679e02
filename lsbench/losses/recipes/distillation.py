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

Precision and speed: with ``a_j = (t_j − m_t − s_j + m_s)/T`` (shifted logits, so
no offset ever rounds), ``w_j = exp((s_j − m_s)/T)``, ``p = w/z_s`` and
``h(a) = a·e^a − (e^a − 1) ≥ 0``, three row sums -- ``z_s = Σ w``,
``Σ w·(e^a − 1)`` and ``Σ w·h(a)``, each one fused pass over both logits --
give ``α = E_p[e^a − 1]``, ``γ = E_p[h(a)]``, ``c = log1p(α) = log(z_t/z_s)`` and

    KL = E_q[a] − c = (γ − ψ(α))/(1 + α),    ψ(α) = (1 + α)·c − α ≥ 0.

Near ``a = 0`` the terms are formed from ``expm1`` and the series of
``φ(b) = e^{−b} − 1 + b`` (|a| ≤ 1/2), so no sum cancels: at large ``T``
(``a ~ 1/T``) the loss keeps float32's relative accuracy where
``Σ q a − lse_t + lse_s`` cancels to noise. The gradient uses
``p − q = −p·expm1(a − c)`` and ``T²·KL`` is formed as ``T·(T·KL)`` so that
tiny temperatures neither overflow nor underflow to NaN. The backward keeps
only per-row statistics and recomputes ``p`` and ``q`` in its one pass (no
``[..., K]`` residual).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


#: |a| (and |c|) up to which the φ series is used: its bound is ``proofs.distillation.phi_series_bound``
SERIES_RADIUS = 0.5


#: inputs up to this many elements share their exponentials between the sums (no barriers): the
#: [..., K] intermediates fit in cache, and fewer, larger kernels cost less dispatch
SHARED_BELOW = 1 << 16


def _phi(b):
    """``exp(−b) − 1 + b`` without cancellation: a series for small |b| (1/2 in float32, 1/20 in
    float64, where the series' truncation and the direct form's cancellation both stay near the
    dtype's precision)."""
    small = 0.05 if b.dtype == jnp.float64 else SERIES_RADIUS
    return jnp.where(jnp.abs(b) <= small, _phi_series(b), jnp.expm1(-b) + b)


def _shifted(s, t, m_s, m_t, u):
    """``(ds, dt, a, w, e_t)``: the logits less their row maxima, ``a = (dt − ds)/T``,
    ``w = exp(ds/T)`` and ``e_t = exp(dt/T)`` (shifted, so neither overflows)."""
    cdt = u.dtype
    ds, dt = s.astype(cdt) - m_s[..., None], t.astype(cdt) - m_t[..., None]
    return ds, dt, (dt - ds) * u, jnp.exp(ds * u), jnp.exp(dt * u)


def _phi_series(b, half=1 / 2):
    """φ's degree-8 Taylor polynomial (within float32's roundoff of φ for |b| ≤ 1/2); ``half``: its
    leading coefficient 1/2, passed in where XLA must not share the constant (see ``_row_sums``)."""
    x = -b
    return x * x * (half + x * (1 / 6 + x * (1 / 24 + x * (1 / 120 + x * (1 / 720 + x * (1 / 5040 + x / 40320))))))


def _row_sums(s, t, m_s, m_t, u):
    """``(Σ w, Σ (e_t − w), Σ w·h(a))`` per row, each one fused pass over ``s`` and ``t``.

    Near ``a = 0`` each term is formed from expm1 and φ so that no sum cancels:
    ``e_t − w = w·(e^a − 1)`` and ``w·h(a)`` with ``h(a) = a·e^a − (e^a − 1) = a·(e^a − 1) − φ(−a) ≥ 0``;
    for |a| > 1/2 (``far``) ``e_t − w`` and ``w·h(a) = w + (a − 1)·e_t`` do not cancel.

    XLA:CPU fuses a row sum with its elementwise producer only if that producer has no select
    (or clamp), and only if no scalar (``1/T``, a constant) is shared with another such sum: else
    the producer or the scalar's broadcast is written out as a ``[..., K]`` array first (measured
    4-5x slower, and a logits-sized buffer each). So the branches are arithmetic: ``far`` is
    exactly 0 or 1 (``sign`` of a ``max``) and ``a_near = a·min(r/|a|, 1)`` is ``a`` clipped to
    ``[−r, r]``; and each sum gets its own copy of the scalars through an optimisation barrier.
    """
    def sums(f, inputs):
        ss, tt, ms, mt, uu, consts = inputs
        radius, zero, one, half = consts[0], consts[1], consts[2], consts[3]
        ds, dt, a, w, e_t = _shifted(ss, tt, ms, mt, uu)
        far = jnp.sign(jnp.maximum(jnp.abs(a) - radius, zero))
        a_near = a * jnp.minimum(radius / jnp.abs(a), one)
        diff_near = w * jnp.expm1(a_near)
        return jnp.sum(f(a, w, e_t, far, a_near, diff_near, one, half), axis=-1)

    def diff(a, w, e_t, far, a_near, diff_near, one, half):
        return diff_near + far * (e_t - w - diff_near)

    def weighted_h(a, w, e_t, far, a_near, diff_near, one, half):
        h_near = a_near * diff_near - w * (_phi(-a_near) if a.dtype == jnp.float64 else _phi_series(-a_near, half))
        return h_near + far * (w + (a - one) * e_t - h_near)

    consts = jnp.asarray([0.05 if u.dtype == jnp.float64 else SERIES_RADIUS, 0, 1, 1 / 2], u.dtype)
    # Each barrier gives its sum its own read of s and t (so that XLA does not share, and
    # materialise, their exponentials) and its own scalars; chained, so that XLA cannot merge them.
    first = second = (s, t, m_s, m_t, u, consts)
    if s.size > SHARED_BELOW:
        first = jax.lax.optimization_barrier(first)
        second = jax.lax.optimization_barrier(first)
    ss, ms, uu = jax.lax.optimization_barrier((second[0], second[2], second[4])) if s.size > SHARED_BELOW else (s, m_s, u)
    z_s = jnp.sum(jnp.exp((ss.astype(u.dtype) - ms[..., None]) * uu), axis=-1)
    return z_s, sums(diff, first), sums(weighted_h, second)


def _row_stats(s, t, temperature):
    """``(m_s, m_t, z_s, z_t, c, kl)`` per row: row maxima, ``z_s = Σ exp(ds/T)``,
    ``z_t = Σ exp(dt/T)``, ``c = log(z_t/z_s)`` and the KL.

    With ``α = E_p[e^a − 1] = z_t/z_s − 1`` and ``γ = E_p[h(a)]``:
    ``KL = E_q[a] − c = (γ − ψ(α))/(1 + α)``, ``ψ(α) = (1 + α)·c − α = α·c − φ(−c) ≥ 0``.
    """
    cdt = P.compute_dtype(s.dtype)
    u = 1 / jnp.asarray(temperature, cdt)
    m_s = P.safe_shift(jax.lax.stop_gradient(jnp.max(s, axis=-1)).astype(cdt))
    m_t = P.safe_shift(jax.lax.stop_gradient(jnp.max(t, axis=-1)).astype(cdt))
    z_s, diff, weighted_h = _row_sums(s, t, m_s, m_t, u)
    alpha, gamma = diff / z_s, weighted_h / z_s
    c = jnp.log1p(alpha)
    kl = jnp.maximum((gamma - (alpha * c - _phi(-c))) / (1 + alpha), 0)
    return m_s, m_t, z_s, z_s + diff, c, kl


@jax.custom_vjp
def _scaled_kl(s, t, temperature, keep):
    """Per-row ``T²·KL(softmax(t/T) ‖ softmax(s/T))``; rows where ``keep`` is False get zero gradient."""
    kl = _row_stats(s, t, temperature)[-1]
    temp = jnp.asarray(temperature, kl.dtype)
    return temp * (temp * kl)


def _scaled_kl_fwd(s, t, temperature, keep):
    stats = _row_stats(s, t, temperature)
    temp = jnp.asarray(temperature, stats[-1].dtype)
    return temp * (temp * stats[-1]), (s, t, temperature, keep, stats)


def _scaled_kl_bwd(res, g):
    s, t, temperature, keep, (m_s, m_t, z_s, z_t, c, kl) = res
    temp = jnp.asarray(temperature, kl.dtype)
    # The barrier keeps XLA from sharing [..., K] intermediates with the forward.
    s, t, m_s, m_t = jax.lax.optimization_barrier((s, t, m_s, m_t))
    ds, dt, a, w, e_t = _shifted(s, t, m_s, m_t, 1 / temp)
    p, q = w / z_s[..., None], e_t / z_t[..., None]
    r = a - c[..., None]  # log q − log p
    # p − q = −p·(e^r − 1): the product form keeps p − q accurate when p ≈ q.
    p_minus_q = jnp.where(r <= 1, -p * jnp.expm1(jnp.where(r <= 1, r, 0)), p - q)
    b = r - kl[..., None]
    gs = (g * temp)[..., None] * p_minus_q  # ∂/∂s = T·(p − q)
    gt = (g * temp)[..., None] * q * b  # ∂/∂t = T·q·(log q − log p − KL) = T·q·b
    # ∂/∂T = 2T·KL − Σ_j [(p − q)_j (s_j − m_s) + q_j b_j (t_j − m_t)] (shift-invariant sums).
    g_temp = g * (2 * temp * kl - jnp.sum(p_minus_q * ds + q * b * dt, axis=-1))
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
