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


# ---------------------------------------------------------------- sigmoid (multi-label) recipes and Poly-1

def bce_rows(x, t):
    """Per-row mean over classes of −t·log σ(x) − (1−t)·log(1−σ(x)), and its gradient (σ(x) − t)/K."""
    x = np.asarray(x, np.float64)
    log_sig = -np.logaddexp(0.0, -x)  # log σ(x)
    log_one_minus = -np.logaddexp(0.0, x)  # log(1 − σ(x))
    k = x.shape[-1]
    rows = (-(t * log_sig) - (1 - t) * log_one_minus).mean(-1)
    return rows, (1 / (1 + np.exp(-x)) - t) / k


def t_keras_binary(Y, eps):
    """Keras: y_true·(1 − label_smoothing) + 0.5·label_smoothing."""
    return np.asarray(Y, np.float64) * (1 - eps) + 0.5 * eps


def t_timm_binary(y, k, eps):
    """timm: a [B, K] matrix full of off = ε/K with on = 1 − ε + off scattered at the label."""
    off = eps / k
    t = np.full(np.shape(y) + (k,), off)
    np.put_along_axis(t, np.asarray(y)[..., None], 1 - eps + off, axis=-1)
    return t


def t_mmpretrain_multilabel(y, k, eps):
    """mmpretrain: full_like(one_hot, ε), then masked_fill(one_hot > 0, 1 − ε)."""
    t = np.full(np.shape(y) + (k,), float(eps))
    t[onehot(y, k) > 0] = 1 - eps
    return t


def poly1(z, y, eps, coefficient):
    """timm PolyCrossEntropy: −Σ q log p + c·(1 − Σ q p) and its gradient, q the smoothed one-hot."""
    q = q_uniform(y, np.shape(z)[-1], eps)
    lp = log_softmax(z)
    p = np.exp(lp)
    pt = (q * p).sum(-1, keepdims=True)
    rows = -(q * lp).sum(-1) + coefficient * (1 - pt[..., 0])
    # ∂(Σ_k q_k p_k)/∂z_j = p_j (q_j − Σ_k q_k p_k)
    return rows, q.sum(-1, keepdims=True) * p - q - coefficient * p * (q - pt)


def label_relaxation(z, y, alpha):
    """Lienen & Hüllermeier's TF loss, without its clipping guards: KL(credal ‖ p), 0 inside the set;
    the gradient p − r outside the set (the paper), 0 inside."""
    p = np.exp(log_softmax(z))
    e = onehot(y, p.shape[-1])
    rest = ((1 - e) * p).sum(-1, keepdims=True)
    credal = np.where(e > 0.1, 1 - alpha, alpha * p / rest)
    with np.errstate(divide="ignore", invalid="ignore"):  # 0·log 0 = 0 (the KL convention; ε = 0)
        kl = np.where(credal > 0, credal * np.log(credal / p), 0.0).sum(-1)
    inside = (p * e).sum(-1) >= 1 - alpha
    return np.where(inside, 0.0, kl), np.where(inside[..., None], 0.0, p - credal)
