r"""The running-logsumexp reducer shared by :mod:`~lsbench.losses.chunked` and :mod:`~lsbench.losses.linear`.

Both walk the class axis in blocks of ``c`` columns and never hold more than
one ``[rows, c]`` block of logits; they differ only in how a block is read
(a slice of the logits, or ``hidden @ weight[:, block]``) and in what the
backward does with a block of ``∂L/∂z``.

* :func:`forward` is a ``lax.fori_loop`` carrying a running
  ``(max, Σ exp(z − max), Σ (z − max)·s, z_y)`` per row -- the online
  logsumexp: when a block raises the running max ``m → m'`` the running sums
  are rescaled (``exp(m − m')``) or shifted (``n_seen·(m − m')·s``), so every
  sum stays relative to the current max and a logit offset never rounds
  (``s`` is :func:`lsbench.losses.primitives.sum_scale`).
* :func:`block_gradient` is one block of ``ḡ_lse·exp(−lse)·exp(z − m) + ḡ_row +
  ḡ_target·[j = y]`` (the label entry added by a batched scatter).

Block ``i`` covers columns ``[start_i, start_i + c)`` with
``start_i = min(i·c, K − c)``: when ``c`` does not divide ``K`` the last
block is shifted left to end at ``K`` and overlaps its predecessor; its
columns below ``i·c`` were already counted and are masked out (:func:`fresh`).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax import lax

from lsbench.losses import primitives as P


def check_chunk_size(chunk_size) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive int, got {chunk_size!r}")
    return chunk_size


def blocks(k: int, chunk_size: int) -> tuple[int, int, bool]:
    """``(c, n, ragged)``: block width, block count, and whether ``c`` does not divide ``K``."""
    c = min(chunk_size, k)
    return c, -(-k // c), k % c != 0


def block_start(i, c: int, k: int):
    """``(first, start)``: the first column block ``i`` adds and the column it is read from."""
    first = i * c
    return first, jnp.minimum(first, k - c)


def fresh(start, first, c: int):
    """``[1, c]`` mask of the block's columns not counted by an earlier block."""
    return lax.broadcasted_iota(jnp.int32, (1, c), 1) + start >= first


def loop(n: int, body, init):
    """``lax.fori_loop(0, n, body, init)``, inlined for a single block."""
    if n == 1:
        return body(0, init)
    return lax.fori_loop(0, n, body, init)


def forward(read_block: Callable, labels, k: int, chunk_size: int, dtype, operand=None) -> P.RowStats:
    """:class:`~lsbench.losses.primitives.RowStats` of ``[rows, K]`` logits read ``c`` columns at a time.

    ``read_block(start, c)`` returns columns ``[start, start + c)`` as a
    ``[rows, c]`` array in ``dtype``; ``labels`` is ``[rows]``. With an
    ``operand``, ``read_block(start, c, operand)`` reads from it and the loop
    carries it behind an optimisation barrier: then the loop body is not
    invariant in it, and XLA cannot hoist a whole-array op on it (such as the
    ``uint16`` view of 16-bit logits, a full copy) out of the loop.
    """
    rows = labels.shape[0]
    c, n, ragged = blocks(k, chunk_size)
    s = P.sum_scale(k)

    def body(i, carry):
        m_run, sum_exp, acc, picked, *rest = carry
        first, start = block_start(i, c, k)
        z = read_block(start, c, *rest)
        if ragged:
            new = fresh(start, first, c)
            z_max, z_in = jnp.where(new, z, -jnp.inf), new
        else:
            z_max, z_in = z, None
        m_new = jnp.maximum(m_run, jnp.max(z_max, axis=-1))
        old, base = P.safe_shift(m_run), P.safe_shift(m_new)
        # sum_exp == 0 while nothing finite has been seen: skip the rescaling then,
        # so that a very negative new max cannot give 0·exp(+large) = NaN.
        scale = jnp.where(sum_exp > 0, jnp.exp(old - base), jnp.zeros_like(sum_exp))
        sum_exp = sum_exp * scale + jnp.sum(jnp.exp(z_max - base[:, None]), axis=-1)
        d = z * s - (base * s)[:, None]
        if z_in is not None:
            d = jnp.where(z_in, d, jnp.zeros((), dtype))
        acc = acc + first * (old * s - base * s) + jnp.sum(d, axis=-1)
        local = labels - start
        hit = jnp.take_along_axis(z, jnp.clip(local, 0, c - 1)[:, None], axis=-1)[:, 0]
        picked = jnp.where((labels >= first) & (local < c), hit, picked)
        return (m_new, sum_exp, acc, picked, *lax.optimization_barrier(tuple(rest)))

    # A label outside [0, K) is never picked and keeps the NaN start value.
    init = (jnp.full((rows,), -jnp.inf, dtype), jnp.zeros((rows,), dtype), jnp.zeros((rows,), dtype),
            jnp.full((rows,), jnp.nan, dtype))
    m_run, sum_exp, acc, picked, *_ = loop(n, body, init + (() if operand is None else (operand,)))
    m = P.safe_shift(m_run)
    total, mean = P.finish_sums(acc, k)
    return P.RowStats(m, jnp.log(sum_exp), P.nan_where_out_of_range(picked - m, labels, k), total, mean)


def block_gradient(z, start, first, labels, m, lse, g_lse, g_target, g_row, keep=None):
    """One ``[rows, c]`` block of ``∂L/∂z`` (``z`` the block's logits in the compute dtype).

    ``g_row`` is :func:`lsbench.losses.primitives.row_constant_cotangent`;
    rows where ``keep`` is False get exact zeros whatever ``z`` holds.
    """
    c = z.shape[-1]
    # softmax = exp(z − m)·exp(−lse): the shift stays exact (m + lse is never rounded).
    dz = (g_lse * jnp.exp(-lse))[:, None] * jnp.exp(z - m[:, None]) + g_row[:, None]
    local = labels - start
    idx = jnp.where((labels >= first) & (local < c), local, c)  # out-of-block entries are dropped
    dz = jax.vmap(lambda row, j, v: row.at[j].add(v, mode="drop"))(dz, idx, g_target)
    if keep is not None:
        dz = jnp.where(keep[:, None], dz, jnp.zeros((), dz.dtype))
    return dz
