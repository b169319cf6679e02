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
