r"""Paired statistics of a recipe against a baseline over seeds *and* test images, with a fixed verdict.

The data of one comparison are per-example outputs of ``S`` seeds on ``N`` report images
(``label``, ``pred``, ``conf``, ``p_true``, ``sum_sq``, ``conf_ts``, ``p_true_ts``; see
:data:`lsbench.experiments.pets.protocol.OUTPUT_FIELDS`) for the recipe and for the baseline,
paired: row ``s`` of both is the same seed (same initialisation, batch order and report set),
column ``i`` the same image. For each metric of :data:`METRICS` the statistic is

    Δ = mean over seeds of [metric(recipe, seed s) − metric(baseline, seed s)],

each metric computed on the seed's report images (error, NLL, Brier, ECE, ECE after temperature
scaling). Its 95 % interval comes from a two-way bootstrap: seeds and image positions are
resampled independently with replacement (``scipy.stats.bootstrap`` with the seed indices and the
image indices as two independent samples, percentile method), so the interval holds both the
training noise (seeds) and the test-set sampling noise (images); resampling the same positions in
the recipe and the baseline keeps the pairing. ``p_better`` is the fraction of bootstrap
replicates with Δ < 0 (ties count one half): lower is better for every metric here.

**Verdict** (:func:`verdict`, fixed before the runs): with the interval ``[lo, hi]`` and the
metric's equivalence margin ``m`` (:data:`MARGINS`)

* ``equivalent`` if ``−m < lo`` and ``hi < m`` (any effect is smaller than the margin);
* else ``better`` if ``hi < 0``, ``worse`` if ``lo > 0``;
* else ``inconclusive``.

Margins: 0.5 percentage points of error (the effect the issue asks to resolve), 0.01 nats of NLL,
0.005 of Brier score, 0.5 percentage points of ECE and of ECE after temperature scaling.

>>> verdict(-0.004, 0.003, 0.005), verdict(-0.02, -0.01, 0.005), verdict(-0.02, 0.01, 0.005)
('equivalent', 'better', 'inconclusive')
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

__all__ = ["METRICS", "MARGINS", "CONFIDENCE", "N_RESAMPLES", "metric_matrix", "verdict", "paired_bootstrap",
           "compare_outputs"]

#: Metrics compared (all lower-is-better) and their equivalence margins (absolute units).
METRICS = ("error", "nll", "brier", "ece", "ece_ts")
MARGINS: Mapping[str, float] = {"error": 0.005, "nll": 0.01, "brier": 0.005, "ece": 0.005, "ece_ts": 0.005}
CONFIDENCE = 0.95
N_RESAMPLES = 2000
ECE_BINS = 15
#: p_true is stored as float16; its smallest positive value bounds the NLL of one image.
P_FLOOR = float(np.finfo(np.float16).smallest_subnormal)


def verdict(lo: float, hi: float, margin: float) -> str:
    """The verdict of an interval ``[lo, hi]`` of Δ (recipe − baseline, lower is better); see the module."""
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi:
        raise ValueError(f"verdict needs a finite interval lo <= hi, got [{lo}, {hi}]")
    if margin <= 0:
        raise ValueError(f"margin must be > 0, got {margin}")
    if -margin < lo and hi < margin:
        return "equivalent"
    if hi < 0:
        return "better"
    if lo > 0:
        return "worse"
    return "inconclusive"


def metric_matrix(outputs: Mapping[str, np.ndarray], metric: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-image terms ``[S, N]`` of ``metric`` and, for ECE, the confidences that bin them.

    Error, NLL and Brier are means of per-image terms (``pred != label``, ``−log p_true``,
    ``1 − 2·p_true + Σ_k p_k²``), returned as ``(terms, None)``. ECE is not a mean of per-image
    terms: ``(correct, confidence)`` is returned and :func:`paired_bootstrap` bins the resampled
    images itself (:data:`ECE_BINS` equal-width bins, as :func:`lsbench.metrics.ece`).
    """
    label = np.asarray(outputs["label"], np.int64)
    if metric == "error":
        return (np.asarray(outputs["pred"], np.int64) != label).astype(np.float64), None
    if metric == "nll":
        return -np.log(np.maximum(np.asarray(outputs["p_true"], np.float64), P_FLOOR)), None
    if metric == "brier":
        p = np.asarray(outputs["p_true"], np.float64)
        return 1.0 - 2.0 * p + np.asarray(outputs["sum_sq"], np.float64), None
    if metric in ("ece", "ece_ts"):
        correct = (np.asarray(outputs["pred"], np.int64) == label).astype(np.float64)
        conf = np.asarray(outputs["conf" if metric == "ece" else "conf_ts"], np.float64)
        return correct, conf
    raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")


def _bin_gaps(correct: np.ndarray, conf: np.ndarray, n_bins: int = ECE_BINS) -> np.ndarray:
    """``[S, N, M]``: ``conf − correct`` of each image placed in its confidence bin (equal-width bins
    ``(m/M, (m+1)/M]``, bin 0 also holding 0, as :func:`lsbench.metrics.reliability_bins`), so that
    ``ECE = Σ_m |Σ_i gaps[i, m]| / N``."""
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    return (conf - correct)[..., None] * (bins[..., None] == np.arange(n_bins))


def _counts(idx: np.ndarray, n: int) -> np.ndarray:
    """``[..., n]`` multiplicities of the resampled indices ``[..., n]``."""
    idx = np.asarray(idx, np.int64).reshape(-1, n)
    rows = np.arange(idx.shape[0])[:, None] * n
    return np.bincount((rows + idx).ravel(), minlength=idx.size).reshape(idx.shape).astype(np.float64)


def paired_bootstrap(recipe: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray], metric: str, *,
                     n_resamples: int = N_RESAMPLES, confidence: float = CONFIDENCE, seed: int = 0,
                     batch: int = 200) -> dict:
    """Δ of ``metric`` (recipe − baseline), its two-way bootstrap interval, ``p_better`` and the verdict.

    ``recipe`` and ``baseline`` map the output fields to ``[S, N]`` arrays, row ``s`` the same seed
    in both and column ``i`` the same image within a seed (their labels must agree).

    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 3, (4, 500))
    >>> base = {"label": y, "pred": np.where(rng.random(y.shape) < 0.2, (y + 1) % 3, y)}
    >>> same = paired_bootstrap(base, base, "error")
    >>> same["delta"], same["ci"], same["verdict"]
    (0.0, [0.0, 0.0], 'equivalent')
    """
    from scipy import stats as scipy_stats

    if np.shape(recipe["label"]) != np.shape(baseline["label"]) or np.ndim(recipe["label"]) != 2:
        raise ValueError("recipe and baseline outputs must be [seeds, images] arrays of the same shape, got "
                         f"{np.shape(recipe['label'])} and {np.shape(baseline['label'])}")
    if not np.array_equal(recipe["label"], baseline["label"]):
        raise ValueError("recipe and baseline outputs are not paired: their labels differ")
    a, conf_a = metric_matrix(recipe, metric)
    b, conf_b = metric_matrix(baseline, metric)
    n_seeds, n_images = a.shape
    if conf_a is None:  # a mean of per-image terms: Δ of a replicate is w·(A − B)·v / (S·N)
        diff = a - b
    else:  # ECE: per seed and bin, the resampled sum of gaps
        # [N, S·M] so that a replicate's sums are one matrix product
        gaps_a, gaps_b = (_bin_gaps(m, c).transpose(1, 0, 2).reshape(n_images, -1)
                          for m, c in ((a, conf_a), (b, conf_b)))

    def delta(seed_idx, image_idx, axis=-1):
        # seed_idx [B, S] and image_idx [B, N] are resampled independently; replicate = counts
        w, v = _counts(seed_idx, n_seeds), _counts(image_idx, n_images)
        if conf_a is None:
            return ((w @ diff) * v).sum(-1) / (n_seeds * n_images)
        ece_a = np.abs((v @ gaps_a).reshape(len(v), n_seeds, -1)).sum(-1) / n_images
        ece_b = np.abs((v @ gaps_b).reshape(len(v), n_seeds, -1)).sum(-1) / n_images
        return (w * (ece_a - ece_b)).sum(-1) / n_seeds

    observed = float(delta(np.arange(n_seeds)[None], np.arange(n_images)[None])[0])
    if n_seeds < 2 and n_images < 2:
        raise ValueError("the bootstrap needs at least 2 seeds or 2 images")
    # a single seed (or image) is not resampled: scipy needs two or more observations per sample
    samples = tuple(np.arange(n) for n in (n_seeds, n_images) if n > 1)

    def statistic(*idx, axis=-1):
        idx = list(idx)
        batch_shape = idx[0].shape[:-1]
        seed_idx = idx.pop(0) if n_seeds > 1 else np.zeros(batch_shape + (1,), np.int64)
        image_idx = idx.pop(0) if n_images > 1 else np.zeros(batch_shape + (1,), np.int64)
        return delta(seed_idx.reshape(-1, n_seeds), image_idx.reshape(-1, n_images)).reshape(batch_shape)

    res = scipy_stats.bootstrap(samples, statistic, n_resamples=n_resamples, batch=batch, vectorized=True,
                                paired=False, confidence_level=confidence, method="percentile",
                                rng=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution, np.float64)
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if np.ptp(dist) == 0:  # a degenerate distribution (identical runs): scipy returns NaN
        lo = hi = float(dist[0])
    p_better = float(np.mean(dist < 0) + 0.5 * np.mean(dist == 0))
    return {"delta": observed, "ci": [lo, hi], "p_better": p_better, "margin": MARGINS[metric],
            "verdict": verdict(lo, hi, MARGINS[metric]), "n_seeds": int(n_seeds), "n_images": int(n_images),
            "n_resamples": int(n_resamples)}


def compare_outputs(recipe: Mapping[str, np.ndarray], baseline: Mapping[str, np.ndarray],
                    metrics: tuple[str, ...] = METRICS, seed: int = 0) -> dict[str, dict]:
    """:func:`paired_bootstrap` of every metric (the same resampling seed for each)."""
    return {m: paired_bootstrap(recipe, baseline, m, seed=seed) for m in metrics}
