r"""Classification and calibration metrics, and their aggregation over seeds.

Small pure NumPy functions (float64 throughout), each with its maths below;
``logits``/``probs`` are ``[N, K]``, ``labels`` are integers in ``[0, K)``.

Per model (one trained head evaluated on one split):

* :func:`error_rate` -- ``(1/N) Σ_i [argmax_k p_ik ≠ y_i]`` (ties go to the
  lowest index, as ``argmax`` does).
* :func:`nll` -- ``−(1/N) Σ_i log p_{i,y_i}`` (from logits via a stable
  ``log_softmax``; natural log, nats).
* :func:`brier` -- multi-class Brier score (Brier 1950)
  ``(1/N) Σ_i Σ_k (p_ik − [k = y_i])²``, in ``[0, 2]``.
* :func:`reliability_bins` / :func:`ece` -- expected calibration error with
  ``M`` equal-width confidence bins (Guo et al. 2017, "On Calibration of
  Modern Neural Networks", eq. 3). Confidence ``c_i = max_k p_ik``, correct
  ``a_i = [argmax_k p_ik = y_i]``; bin ``m ∈ {1..M}`` holds the ``i`` with
  ``c_i ∈ ((m−1)/M, m/M]``::

      ECE = Σ_m (|B_m| / N) · | acc(B_m) − conf(B_m) |,
      acc(B_m) = mean_{i∈B_m} a_i,   conf(B_m) = mean_{i∈B_m} c_i.

  Empty bins contribute 0.
* :func:`fit_temperature` -- temperature scaling (Guo et al. 2017, §4.2):
  ``T* = argmin_T −(1/N) Σ_i log softmax(z_i / T)_{y_i}`` on a held-out set
  the model did not train on, by a deterministic bounded 1-D search over
  ``log T``; :func:`evaluate` then reports the metrics of
  ``softmax(z / T*)``. Dividing by ``T > 0`` never changes the argmax, so the
  error is unchanged; NLL, Brier and ECE move.

Over seeds (one value per seed and recipe):

* :func:`summarize` -- mean, sample standard deviation (``ddof = 1``) and the
  95 % Student-t confidence interval of the mean,
  ``mean ± t_{0.975, n−1} · s / √n`` (half-width ``None`` when ``n < 2``).
* :func:`paired_difference` -- the same summary of the per-seed differences
  ``d_s = x_s − b_s`` against a baseline trained on the same seeds (same
  split, same initialisation stream, same batch order), which removes the
  between-seed variance the two runs share.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np

__all__ = [
    "log_softmax",
    "softmax",
    "error_rate",
    "nll",
    "brier",
    "reliability_bins",
    "ece",
    "fit_temperature",
    "evaluate",
    "summarize",
    "paired_difference",
    "DEFAULT_BINS",
]

DEFAULT_BINS = 15
#: Search interval for log T in :func:`fit_temperature` (T in [1/100, 100]).
LOG_T_BOUNDS = (math.log(1e-2), math.log(1e2))


# --------------------------------------------------------------------------- checks


def _logits(logits) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2 or z.shape[1] < 2:
        raise ValueError(f"logits must be [N, K] with K >= 2, got shape {z.shape}")
    if not np.isfinite(z).all():
        raise ValueError("logits contain NaN or inf")
    return z


def _probs(probs) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] < 2:
        raise ValueError(f"probs must be [N, K] with K >= 2, got shape {p.shape}")
    if not np.isfinite(p).all() or (p < 0).any():
        raise ValueError("probs must be finite and non-negative")
    if p.size and not np.allclose(p.sum(axis=1), 1.0, atol=1e-6):
        raise ValueError("each row of probs must sum to 1 (pass softmax(logits))")
    return p


def _labels(labels, n: int, k: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.shape != (n,):
        raise ValueError(f"labels must have shape ({n},), got {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise TypeError(f"labels must be integers, got {y.dtype}")
    if n and (y.min() < 0 or y.max() >= k):
        raise ValueError(f"labels must lie in [0, {k}), got range [{y.min()}, {y.max()}]")
    return y.astype(np.int64)


def _nonempty(n: int, what: str) -> None:
    if n == 0:
        raise ValueError(f"{what} of an empty set is undefined")


# --------------------------------------------------------------------------- per model


def log_softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``log softmax(z / T)`` row-wise: ``z/T − max − log Σ exp(z/T − max)`` (float64)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = _logits(logits) / temperature
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax(logits, temperature: float = 1.0) -> np.ndarray:
    """``softmax(z / T)`` row-wise (float64)."""
    return np.exp(log_softmax(logits, temperature))


def error_rate(probs, labels) -> float:
    """``(1/N) Σ_i [argmax_k p_ik ≠ y_i]``; accepts probabilities or logits (same argmax)."""
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probs must be [N, K], got shape {p.shape}")
    y = _labels(labels, p.shape[0], p.shape[1])
    _nonempty(len(y), "error_rate")
    return float(np.mean(p.argmax(axis=1) != y))


def nll(logits, labels, temperature: float = 1.0) -> float:
    """``−(1/N) Σ_i log softmax(z_i / T)_{y_i}`` in nats, from logits (stable)."""
    lp = log_softmax(logits, temperature)
    y = _labels(labels, lp.shape[0], lp.shape[1])
    _nonempty(len(y), "nll")
    return float(-np.mean(lp[np.arange(len(y)), y]))


def brier(probs, labels) -> float:
    """``(1/N) Σ_i Σ_k (p_ik − [k = y_i])²`` -- multi-class Brier score in ``[0, 2]``."""
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1])
    _nonempty(len(y), "brier")
    d = p.copy()
    d[np.arange(len(y)), y] -= 1.0
    return float(np.mean(np.sum(d * d, axis=1)))


def reliability_bins(probs, labels, n_bins: int = DEFAULT_BINS) -> dict:
    """The reliability diagram: ``n_bins`` equal-width bins of confidence ``c = max_k p_k``.

    Bin ``m`` (0-based) holds ``c ∈ (m/M, (m+1)/M]`` (bin 0 also holds
    ``c = 0``, which a softmax never produces). Returns lists of length ``M``:
    ``edges`` (``M + 1`` boundaries), ``count``, ``confidence`` (mean ``c``
    in the bin) and ``accuracy`` (fraction correct); the last two are
    ``None`` for an empty bin.
    """
    if int(n_bins) != n_bins or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins}")
    n_bins = int(n_bins)
    p = _probs(probs)
    y = _labels(labels, p.shape[0], p.shape[1])
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    # c in ((m)/M, (m+1)/M]  <=>  m = ceil(c*M) - 1; clip handles c = 0 and rounding.
    idx = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count = np.bincount(idx, minlength=n_bins)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = conf_sum / count
        acc = acc_sum / count
    return {
        "edges": [m / n_bins for m in range(n_bins + 1)],
        "count": [int(c) for c in count],
        "confidence": [float(v) if c else None for v, c in zip(mean_conf, count)],
        "accuracy": [float(v) if c else None for v, c in zip(acc, count)],
    }


def ece(probs, labels, n_bins: int = DEFAULT_BINS) -> float:
    """``Σ_m (|B_m|/N)·|acc(B_m) − conf(B_m)|`` over ``n_bins`` equal-width bins (Guo et al. 2017)."""
    bins = reliability_bins(probs, labels, n_bins)
    n = sum(bins["count"])
    _nonempty(n, "ece")
    return float(sum(c / n * abs(a - f) for c, a, f in
                     zip(bins["count"], bins["accuracy"], bins["confidence"]) if c))


def fit_temperature(logits, labels, bounds: tuple[float, float] = LOG_T_BOUNDS) -> float:
    """``T* = argmin_{T>0} nll(z / T, y)``, searched as ``log T`` in ``bounds`` (default T ∈ [0.01, 100]).

    ``scipy.optimize.minimize_scalar(method="bounded")`` (Brent's method on an
    interval; deterministic for given inputs, tolerance 1e-6 in ``log T``).
    NLL of ``z/T`` is not always convex in ``log T`` but is unimodal in
    practice for trained classifiers; callers fit on held-out data only.
    """
    from scipy.optimize import minimize_scalar

    z = _logits(logits)
    y = _labels(labels, z.shape[0], z.shape[1])
    _nonempty(len(y), "fit_temperature")
    rows = np.arange(len(y))

    def objective(log_t: float) -> float:
        s = z / math.exp(log_t)
        s = s - s.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(s).sum(axis=1)) - s[rows, y]))

    res = minimize_scalar(objective, bounds=bounds, method="bounded", options={"xatol": 1e-6})
    return float(math.exp(res.x))


def evaluate(logits, labels, *, temperature: float | None = None, n_bins: int = DEFAULT_BINS,
             with_bins: bool = True) -> dict:
    """All per-model metrics of ``logits`` on ``labels``.

    Returns ``error``, ``nll``, ``brier``, ``ece`` (and ``reliability``, the
    :func:`reliability_bins`, when ``with_bins``). With ``temperature=T`` it
    also returns the temperature-scaled ``nll_ts``, ``brier_ts``, ``ece_ts``
    (and ``reliability_ts``), plus ``temperature``.
    """
    z = _logits(logits)
    y = _labels(labels, z.shape[0], z.shape[1])
    _nonempty(len(y), "evaluate")
    p = softmax(z)
    out = {
        "n": int(len(y)),
        "error": error_rate(z, y),
        "nll": nll(z, y),
        "brier": brier(p, y),
        "ece": ece(p, y, n_bins),
    }
    if with_bins:
        out["reliability"] = reliability_bins(p, y, n_bins)
    if temperature is not None:
        pt = softmax(z, temperature)
        out["temperature"] = float(temperature)
        out["nll_ts"] = nll(z, y, temperature)
        out["brier_ts"] = brier(pt, y)
        out["ece_ts"] = ece(pt, y, n_bins)
        if with_bins:
            out["reliability_ts"] = reliability_bins(pt, y, n_bins)
    return out


# --------------------------------------------------------------------------- over seeds


def summarize(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample std (ddof 1) and Student-t CI of the mean over seeds.

    ``ci`` is the half-width ``t_{(1+confidence)/2, n−1} · s / √n``; ``lo``/``hi``
    are ``mean ∓ ci``. With one value, ``std``/``ci``/``lo``/``hi`` are ``None``.
    """
    from scipy.stats import t as student_t

    x = np.asarray(list(values), dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError("summarize needs a non-empty 1-D sequence of numbers")
    if not np.isfinite(x).all():
        raise ValueError("summarize got NaN or inf")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n = int(x.size)
    mean = float(x.mean())
    if n < 2:
        return {"n": n, "mean": mean, "std": None, "ci": None, "lo": None, "hi": None,
                "confidence": confidence}
    std = float(x.std(ddof=1))
    half = float(student_t.ppf((1 + confidence) / 2, n - 1) * std / math.sqrt(n))
    return {"n": n, "mean": mean, "std": std, "ci": half, "lo": mean - half, "hi": mean + half,
            "confidence": confidence}


def paired_difference(values: Mapping[int, float], baseline: Mapping[int, float],
                      confidence: float = 0.95) -> dict | None:
    """:func:`summarize` of ``x_s − b_s`` over the seeds ``s`` both mappings have.

    Returns ``None`` when they share no seed; adds ``seeds`` (the shared
    seeds, sorted).
    """
    seeds = sorted(set(values) & set(baseline))
    if not seeds:
        return None
    out = summarize([values[s] - baseline[s] for s in seeds], confidence)
    out["seeds"] = seeds
    return out
