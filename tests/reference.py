"""Independent float64 NumPy references, written straight from the spec.

Each builds the dense target ``q`` and computes ``−Σ q log p`` and the
gradient ``(Σq)·p − q`` (or the spec's stated gradient) -- deliberately the
slow, obvious way, sharing no code with ``lsbench.losses``.
"""

from __future__ import annotations

import numpy as np


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(-1, keepdims=True))


def onehot(y, k):
    return np.eye(k)[np.asarray(y)]


def dense_ce(z, q):
    """Per-row loss −Σ q log p and gradient (Σq)·p − q."""
    lp = log_softmax(z)
    p = np.exp(lp)
    return -(q * lp).sum(-1), q.sum(-1, keepdims=True) * p - q


def q_uniform(y, k, eps):
    return (1 - eps) * onehot(y, k) + eps / k


def q_off_target(y, k, eps):
    e = onehot(y, k)
    return e * (1 - eps) + (1 - e) * eps / (k - 1)


def q_speech_transformer(y, k, eps):
    e = onehot(y, k)
    return e * (1 - eps) + (1 - e) * eps / k


def q_fastreid(y, k, z, eps, alpha):
    e = onehot(y, k)
    if eps >= 0:
        ei = np.full(e.shape[:-1] + (1,), float(eps))
    else:
        ei = alpha * np.exp(log_softmax(z))[e.astype(bool)].reshape(e.shape[:-1] + (1,))
    return e * (1 - ei) + (1 - e) * ei / (k - 1)


def q_tf(Y, eps):
    Y = np.asarray(Y, np.float64)
    return (1 - eps) * Y + eps / Y.shape[-1]


def fastai_literal(z, y, eps):
    """fastai's LabelSmoothingCrossEntropy: ε·mean(−Σ log p / K) + (1−ε)·mean(nll)."""
    lp = log_softmax(z)
    k = lp.shape[-1]
    smooth = (-lp.sum(-1) / k).mean()
    nll = (-np.take_along_axis(lp, np.asarray(y)[..., None], -1)[..., 0]).mean()
    return eps * smooth + (1 - eps) * nll


def fastreid_reduce(rows):
    return rows.sum() / max(int((rows != 0).sum()), 1)


def distillation(s, t, T):
    """T²·KL(softmax(t/T) ‖ softmax(s/T)) per row and ∂/∂s = T·(p − q)."""
    lp = log_softmax(np.asarray(s, np.float64) / T)
    lq = log_softmax(np.asarray(t, np.float64) / T)
    q = np.exp(lq)
    return T**2 * (q * (lq - lp)).sum(-1), T * (np.exp(lp) - q)


def self_correction_weights(P, y, alpha, clip=False):
    p_y = np.take_along_axis(np.asarray(P, np.float64), np.asarray(y)[..., None], -1)[..., 0]
    w = 1 - alpha * (-np.log(p_y + 1e-10))
    return np.maximum(w, 0) if clip else w


# ------------------------------------------------- issue 17: sequence-model forms (softmax)


def xlogy(x, y):
    """``x·log y`` with ``0·log 0 = 0``."""
    x, y = np.broadcast_arrays(np.asarray(x, np.float64), np.asarray(y, np.float64))
    out = np.zeros_like(x)
    nz = x != 0
    out[nz] = x[nz] * np.log(y[nz])
    return out


def dense_kl(z, q):
    """Per-row ``KL(q‖p) = Σ q log q − Σ q log p`` and its gradient ``(Σq)·p − q``."""
    rows, grad = dense_ce(z, q)
    return rows + xlogy(q, q).sum(-1), grad


def q_opennmt(y, k, eps, pad):
    """OpenNMT-py LabelSmoothingLoss: ``ε/(K−2)`` everywhere, 0 on pad, ``1−ε`` on y; pad rows all zero."""
    q = np.full(np.shape(y) + (k,), eps / (k - 2))
    q[..., pad] = 0.0
    e = onehot(y, k).astype(bool)
    q[e] = 1 - eps
    q[np.asarray(y) == pad] = 0.0
    return q


def flax_kl_published(z, y, eps):
    """The Flax WMT ``compute_weighted_cross_entropy`` per token, literally (NaN at ε = 1)."""
    k = np.shape(z)[-1]
    confidence = 1.0 - eps
    low = (1.0 - confidence) / (k - 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        constant = -(confidence * np.log(confidence) + (k - 1) * low * np.log(low + 1e-20))
    soft = onehot(y, k) * confidence + (1 - onehot(y, k)) * low
    return -(soft * log_softmax(z)).sum(-1) - constant


def flax_kl(z, y, eps):
    """:func:`flax_kl_published` with ``0·log 0 = 0`` at ε = 1 (lsbench's one difference), and its gradient."""
    k = np.shape(z)[-1]
    constant = -(xlogy(1 - eps, 1 - eps) + eps * np.log(eps / (k - 1) + 1e-20))
    rows, grad = dense_ce(z, q_off_target(y, k, eps))
    return rows - constant, grad


def hf_label_smoother(z, y, eps, ignore_index=-100):
    """transformers' LabelSmoother, literally: ``(1−ε)·nll_mean + ε·smoothed_sum/(N·W)`` over active tokens."""
    lp = -log_softmax(z)
    y = np.asarray(y)
    active = y != ignore_index
    safe = np.clip(y, 0, None)
    nll = np.where(active, np.take_along_axis(lp, safe[..., None], -1)[..., 0], 0.0)
    smooth = np.where(active, lp.sum(-1), 0.0)
    n = active.sum()
    return (1 - eps) * nll.sum() / n + eps * smooth.sum() / (n * lp.shape[-1])


def fairseq_nll(z, y, eps, padding_idx, *, legacy):
    """fairseq's criterion sum, literally: legacy ``(1−ε)·nll + (ε/K)·smooth``, else ``(1−ε−ε/(K−1))·nll + ε/(K−1)·smooth``."""
    lp = log_softmax(z)
    y = np.asarray(y)
    keep = y != padding_idx
    nll = -np.take_along_axis(lp, np.clip(y, 0, None)[..., None], -1)[..., 0][keep].sum()
    smooth = -lp.sum(-1)[keep].sum()
    k = lp.shape[-1]
    if legacy:
        return (1 - eps) * nll + eps / k * smooth
    eps_i = eps / (k - 1)
    return (1 - eps - eps_i) * nll + eps_i * smooth
