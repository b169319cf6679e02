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

Near ``a = 0`` the terms are formed from the series of ``φ(b) = e^{−b} − 1 + b``
and ``e^a − 1 = a + φ(−a)`` (|a| ≤ 1/2), so no sum cancels: at large ``T``
(``a ~ 1/T``) the loss keeps float32's relative accuracy where
``Σ q a − lse_t + lse_s`` cancels to noise. The gradient uses
``p − q = −p·expm1(a − c)`` and ``T²·KL`` is formed as ``T·(T·KL)`` so that
tiny temperatures neither overflow nor underflow to NaN. The backward keeps
only per-row statistics and recomputes ``p`` and ``q`` in its one pass (no
``[..., K]`` residual). Large float32 inputs share the exponentials of the three sums
within blocks of rows (at most 7/8 of the logits' size of extra memory; inputs up to
``SHARED_BELOW`` elements keep their seven intermediates whole, at most 14 MiB); rows past 32768
classes are reduced in two stages.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from lsbench.losses import primitives as P
from lsbench.losses import recipe_api


#: |a| (and |c|) up to which the φ series is used: its bound is ``proofs.distillation.phi_series_bound``
SERIES_RADIUS = 0.5


#: inputs up to this many elements share their exponentials between the sums (no barriers, no
#: blocks): the [..., K] intermediates (seven, at most 14 MiB) fit in cache and both cores share
#: the work, where the blocked loop runs on one (256x1000 float32 fwd+bwd measured 1.5x faster so,
#: bfloat16 1.6x; 1024x1000 bfloat16 2.5x slower, so the bound stays below that)
SHARED_BELOW = 1 << 19


#: elements per block of rows for the blocked sums (``_rows_per_block``): its seven float32
#: intermediates (at most 7 MiB, and with MIN_BLOCKS at most 7/8 of the logits) stay in cache
BLOCK_ELEMENTS = 1 << 18

#: the fewest blocks the blocked sums cut an input into
MIN_BLOCKS = 8

#: inputs up to this many elements (an even row count) are computed in two blocks of rows (``_in_blocks``)
TINY_BELOW = 1 << 12


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


#: the coefficients of φ's series (``_phi_series``): 1/2, 1/6, ..., 1/40320
PHI_SERIES_COEFFICIENTS = tuple(1 / np.prod(np.arange(1, n + 1)) for n in range(2, 9))


def _phi_series(b, coefficients=PHI_SERIES_COEFFICIENTS):
    """φ's degree-8 Taylor polynomial (within float32's roundoff of φ for |b| ≤ 1/2); ``coefficients``:
    1/2!, ..., 1/8!, passed in as values where XLA must not share the constants (see ``_row_sums``)."""
    x = -b
    poly = coefficients[-1]
    for coefficient in coefficients[-2::-1]:
        poly = coefficient + x * poly
    return x * x * poly


def _row_sums(s, t, m_s, m_t, u):
    """``(Σ w, Σ (e_t − w), Σ w·h(a))`` per row, each one fused pass over ``s`` and ``t``.

    Near ``a = 0`` each term is formed from ``e^a − 1 = a + φ(−a)`` and φ so that no sum cancels:
    ``e_t − w = w·(e^a − 1)`` and ``w·h(a)`` with ``h(a) = a·e^a − (e^a − 1) = a·(e^a − 1) − φ(−a) ≥ 0``;
    for |a| > 1/2 (``far``) ``e_t − w`` and ``w·h(a) = w + (a − 1)·e_t`` do not cancel. In float32
    φ(−a) is its series (``phi_series_bound``) and ``a + φ(−a)`` stands for ``expm1(a)``: for
    ``|a| ≤ 1/2``, ``φ(−a) ≤ 0.28·|e^a − 1|``, so the series' relative error ρ < 2⁻²³ on φ is at most
    ``0.28·ρ`` on ``e^a − 1``, and each pass evaluates two exponentials and one polynomial (not an
    ``expm1`` as well). Long rows are reduced in two stages (:func:`primitives.row_sum`).

    XLA:CPU fuses a row sum with its elementwise producer only if that producer has no select
    (or clamp), and only if no scalar (``1/T``, a constant) is shared with another such sum: else
    the producer or the scalar's broadcast is written out as a ``[..., K]`` array first (measured
    4-5x slower, and a logits-sized buffer each). So the branches are arithmetic: ``far`` is
    exactly 0 or 1 (``sign`` of a ``max``) and ``a_near = a·min(r/|a|, 1)`` is ``a`` clipped to
    ``[−r, r]``; and each sum gets its own copy of the scalars through an optimisation barrier.

    Inputs of more than :data:`SHARED_BELOW` elements whose rows split evenly are reduced in
    blocks of rows (``lax.map``, :func:`_rows_per_block`): within a block XLA evaluates ``w``,
    ``e_t`` and the branch terms once, writes them out (block-sized, so they stay in cache) and
    reads them for all three sums -- two exponentials per element where the barrier-separated
    passes take five (measured 1.3-1.6x faster at 4096x1000 and 1024x32000 float32). 16-bit inputs
    and rows that do not split take those passes.
    """
    wide = u.dtype == jnp.float64

    def parts(arrays, rows, scalars):
        (ss, tt), (ms, mt), (uu, consts) = arrays, rows, scalars
        radius, zero, one, series = consts[0], consts[1], consts[2], tuple(consts[3:])
        ds, dt, a, w, e_t = _shifted(ss, tt, ms[..., 0], mt[..., 0], uu)
        far = jnp.sign(jnp.maximum(jnp.abs(a) - radius, zero))
        a_near = a * jnp.minimum(radius / jnp.abs(a), one)
        phi_near = _phi(-a_near) if wide else _phi_series(-a_near, series)  # φ(−a_near) = e^a_near − 1 − a_near
        diff_near = w * (jnp.expm1(a_near) if wide else a_near + phi_near)
        return a, w, e_t, far, a_near, phi_near, diff_near, one

    def diff(arrays, rows, scalars):
        a, w, e_t, far, a_near, phi_near, diff_near, one = parts(arrays, rows, scalars)
        return diff_near + far * (e_t - w - diff_near)

    def weighted_h(arrays, rows, scalars):
        a, w, e_t, far, a_near, phi_near, diff_near, one = parts(arrays, rows, scalars)
        h_near = a_near * diff_near - w * phi_near
        return h_near + far * (w + (a - one) * e_t - h_near)

    def student_mass(arrays, rows, scalars):
        return jnp.exp((arrays[0].astype(scalars[0].dtype) - rows[0]) * scalars[0])

    consts = jnp.asarray([0.05 if wide else SERIES_RADIUS, 0, 1, *PHI_SERIES_COEFFICIENTS], u.dtype)
    # 16-bit inputs measured slower blocked (1.2x optax's time at 4096x1000 bfloat16, against 0.55x),
    # tiny ones faster (256x10 forward: 1.5x against 4.4x)
    rows_per_block = _rows_per_block(s.shape) if s.dtype == u.dtype or s.size <= TINY_BELOW else None
    if rows_per_block is not None:
        k = s.shape[-1]
        blocks = tuple(x.reshape((-1, rows_per_block) + x.shape[1:])
                       for x in (s.reshape(-1, k), t.reshape(-1, k), m_s.reshape(-1), m_t.reshape(-1)))

        def block_sums(block):  # shared exponentials: XLA writes them out once per block, in cache
            inputs = (block[:2], block[2:], (u, consts))
            return tuple(P.row_sum(f, *inputs) for f in (student_mass, diff, weighted_h))

        return tuple(x.reshape(s.shape[:-1]) for x in jax.lax.map(block_sums, blocks))
    # Each barrier gives its sum its own read of s and t (so that XLA does not share, and
    # materialise, their exponentials) and its own scalars; chained, so that XLA cannot merge them.
    first = second = (s, t, m_s, m_t, u, consts)
    if s.size > SHARED_BELOW:
        first = jax.lax.optimization_barrier(first)
        second = jax.lax.optimization_barrier(first)
    ss, ms, uu = jax.lax.optimization_barrier((second[0], second[2], second[4])) if s.size > SHARED_BELOW else (s, m_s, u)
    z_s = P.row_sum(student_mass, (ss,), (ms,), (uu,))
    sums = [P.row_sum(f, x[:2], x[2:4], x[4:]) for f, x in ((diff, first), (weighted_h, second))]
    return z_s, *sums


def _rows_per_block(shape):
    """Rows per block for the blocked sums (see ``_row_sums``), or None to take the separate passes:
    the most rows that divide the row count, keep a block within :data:`BLOCK_ELEMENTS` and leave
    at least :data:`MIN_BLOCKS` blocks (fewer would not stay in cache at the smallest shapes); None
    where no divisor is at least half that many rows. Tiny inputs (at most :data:`TINY_BELOW`
    elements, an even row count) take two blocks, for the reason given in ``_in_blocks``."""
    rows, k = int(np.prod(shape[:-1])), shape[-1]
    if rows * k <= TINY_BELOW and rows % 2 == 0 and rows >= 2:
        return rows // 2  # two blocks (see _in_blocks)
    if rows * k <= SHARED_BELOW or rows < MIN_BLOCKS:
        return None
    most = max(1, min(BLOCK_ELEMENTS // k, rows // MIN_BLOCKS))
    fit = next(r for r in range(most, 0, -1) if rows % r == 0)
    return fit if 2 * fit > most else None  # not many more, smaller blocks than wanted


def _row_stats(s, t, temperature):
    """``(m_s, m_t, z_s, z_t, c, kl)`` per row: row maxima, ``z_s = Σ exp(ds/T)``,
    ``z_t = Σ exp(dt/T)``, ``c = log(z_t/z_s)`` and the KL.

    With ``α = E_p[e^a − 1] = z_t/z_s − 1`` and ``γ = E_p[h(a)]``:
    ``KL = E_q[a] − c = (γ − ψ(α))/(1 + α)``, ``ψ(α) = (1 + α)·c − α = α·c − φ(−c) ≥ 0``.
    """
    cdt = P.compute_dtype(s.dtype)
    u = 1 / jnp.asarray(temperature, cdt)
    m_s, m_t = P.row_shift(s, cdt), P.row_shift(t, cdt)
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


def _gradient_rows(s, t, m_s, m_t, z_s, z_t, c, kl, g, temp):
    """``(∂L/∂s, ∂L/∂t, ∂L/∂T)`` per row, from the forward's row statistics (``_scaled_kl_bwd``)."""
    ds, dt, a, w, e_t = _shifted(s, t, m_s, m_t, 1 / temp)
    p, q = w / z_s[..., None], e_t / z_t[..., None]
    r = a - c[..., None]  # log q − log p
    # p − q = −p·(e^r − 1): the product form keeps p − q accurate when p ≈ q.
    p_minus_q = jnp.where(r <= 1, -p * jnp.expm1(jnp.where(r <= 1, r, 0)), p - q)
    b = r - kl[..., None]
    gs = (g * temp)[..., None] * p_minus_q  # ∂/∂s = T·(p − q)
    gt = (g * temp)[..., None] * q * b  # ∂/∂t = T·q·(log q − log p − KL) = T·q·b
    # ∂/∂T = 2T·KL − Σ_j [(p − q)_j (s_j − m_s) + q_j b_j (t_j − m_t)] (shift-invariant sums).
    return gs, gt, g * (2 * temp * kl - jnp.sum(p_minus_q * ds + q * b * dt, axis=-1))


def _in_blocks(fn, rows, scalars):
    """``fn(*rows, *scalars)``, per-row (``[..., K]`` or ``[...]``) arguments first; for tiny inputs (at
    most :data:`TINY_BELOW` elements, an even row count) as a ``lax.map`` over two blocks of rows, the
    same values: on XLA:CPU under load, 256x10's forward measured 3.5x faster so (4.3x -> 1.2x optax's
    time), its backward 1.4x; the loop's small kernels do not wait on the thread pool, it seems."""
    full = rows[0]
    n = int(np.prod(full.shape[:-1]))
    if full.size > TINY_BELOW or n % 2 or n < 2:
        return fn(*rows, *scalars)
    batch = full.shape[:-1]
    halves = tuple(x.reshape((2, n // 2) + x.shape[len(batch):]) for x in rows)
    out = jax.lax.map(lambda block: fn(*block, *scalars), halves)
    return tuple(x.reshape(batch + x.shape[2:]) for x in out)


def _scaled_kl_bwd(res, g):
    s, t, temperature, keep, (m_s, m_t, z_s, z_t, c, kl) = res
    temp = jnp.asarray(temperature, kl.dtype)
    # m_s after the KL: every forward read of s comes before the gradient is written, so donated
    # student logits are overwritten in place, not copied (see primitives.after).
    m_s = P.after(m_s, kl)
    # The barrier keeps XLA from sharing [..., K] intermediates with the forward.
    s, t, m_s, m_t = jax.lax.optimization_barrier((s, t, m_s, m_t))
    gs, gt, g_temp = _in_blocks(_gradient_rows, (s, t, m_s, m_t, z_s, z_t, c, kl, g), (temp,))
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
