"""The pets protocol: held-out split, augmentation, aggregation over seeds and the terminal table.

Train on the official ``trainval`` split minus a stratified held-out part (:func:`heldout_split`,
drawn from the run's seed, the same for every recipe of a seed, used only to fit the temperature),
report every metric on the official ``test`` split; the fastai profile augments each training
batch on the host (:func:`augment_batch`). :func:`aggregate` summarises the runs of each recipe
over seeds and pairs them with the baseline on the same seeds; :func:`format_table` prints them
beside the published anchors.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments.pets.config import AugmentConfig, ProtocolConfig
from lsbench.experiments.records import fmt_pm, paired, summary, text_table
from lsbench.published import PETS_ANCHORS

__all__ = ["METRICS", "PAIRED_METRICS", "heldout_split", "augment_batch", "aggregate", "format_table"]

#: Metrics aggregated over seeds, and those also given as paired differences from ``ce``.
METRICS = ("error", "nll", "brier", "ece", "nll_ts", "brier_ts", "ece_ts", "temperature")
PAIRED_METRICS = ("error", "nll", "brier", "ece", "nll_ts", "brier_ts", "ece_ts")


def heldout_split(labels: np.ndarray, seed: int, fraction: float = ProtocolConfig.heldout_fraction
                  ) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx, heldout_idx)`` (sorted) of a stratified, seeded held-out split.

    ``n_held = max(1, round(fraction·N))`` (at most ``N − 1``). Every class's
    indices are shuffled (``numpy`` PCG64 seeded by ``[seed, 2]``); examples
    are taken round-robin by within-class rank (rank 0 of every class, in a
    random class order, then rank 1, ...), so each class contributes
    ``⌊fraction·N_c⌋`` or one more.
    """
    labels = np.asarray(labels)
    n = len(labels)
    if n < 2:
        raise ValueError("need at least 2 examples to hold some out")
    n_held = min(max(1, int(round(fraction * n))), n - 1)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 2])))
    rank = np.empty(n, np.int64)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        rank[rng.permutation(idx)] = np.arange(len(idx))
    tie = rng.random(n)
    order = np.lexsort((tie, rank))
    held = np.sort(order[:n_held])
    train = np.setdiff1d(np.arange(n), held)
    return train, held


def augment_batch(images: np.ndarray, rng: np.random.Generator, size: int | None = None,
                  config: AugmentConfig = AugmentConfig()) -> np.ndarray:
    """fastai-style training augmentation of a uint8 batch ``[B, H, W, 3]`` -> ``[B, S, S, 3]``.

    Per image: a random resized crop (area fraction ∈ [min_scale, 1], aspect
    ratio log-uniform in ``ratio``, torchvision/fastai ``RandomResizedCrop``;
    up to 10 tries, else the central crop), bilinear resize to ``S``
    (default ``H``), horizontal flip with ``p_flip``, and with
    ``p_lighting`` a brightness shift and contrast scale of up to
    ``±max_lighting`` (fastai ``Brightness``/``Contrast`` magnitudes); the
    parameters are the fields of ``config`` (:class:`AugmentConfig`).
    """
    from PIL import Image

    min_scale, ratio, p_flip = config.min_scale, config.ratio, config.p_flip
    max_lighting, p_lighting = config.max_lighting, config.p_lighting
    images = np.asarray(images)
    b, h, w, _ = images.shape
    s = int(size or h)
    out = np.empty((b, s, s, 3), np.uint8)
    area = h * w
    for i in range(b):
        box = None
        for _ in range(10):
            target = area * rng.uniform(min_scale, 1.0)
            ar = math.exp(rng.uniform(math.log(ratio[0]), math.log(ratio[1])))
            cw, ch = int(round(math.sqrt(target * ar))), int(round(math.sqrt(target / ar)))
            if 0 < cw <= w and 0 < ch <= h:
                x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
                box = (x0, y0, x0 + cw, y0 + ch)
                break
        if box is None:
            c = min(h, w)
            box = ((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)
        img = Image.fromarray(images[i]).resize((s, s), Image.BILINEAR, box=box)
        arr = np.asarray(img, np.float32)
        if rng.random() < p_flip:
            arr = arr[:, ::-1]
        if rng.random() < p_lighting:
            brightness = rng.uniform(-max_lighting, max_lighting) * 255.0
            contrast = math.exp(rng.uniform(math.log(1 - max_lighting), -math.log(1 - max_lighting)))
            mean = arr.mean()
            arr = (arr - mean) * contrast + mean + brightness
        out[i] = np.clip(np.rint(arr), 0, 255).astype(np.uint8)
    return out


def aggregate(runs: Sequence[Mapping], baseline: str = ProtocolConfig.baseline) -> tuple[dict, list[dict]]:
    """Per-name summaries over seeds and paired differences from ``baseline``.

    Returns ``(aggregates, ignored)``; a name whose runs disagree on the
    loss parameters is not aggregated and listed in ``ignored``.
    """
    by_name: dict[str, list[Mapping]] = {}
    for r in runs:
        by_name.setdefault(r["name"], []).append(r)
    ignored = []
    per_metric: dict[str, dict[str, dict[int, float]]] = {}
    out: dict[str, dict] = {}
    for name, rs in by_name.items():
        losses = {prov.digest(r["loss"]) for r in rs}
        if len(losses) > 1:
            ignored.append({"name": name, "reason": "runs of this name use different loss parameters"})
            continue
        rs = sorted(rs, key=lambda r: r["seed"])
        values = {m: {r["seed"]: float(r["test"][m]) for r in rs if m in r["test"]} for m in METRICS}
        per_metric[name] = values
        out[name] = {
            "recipe": rs[0]["loss"]["recipe"],
            "params": rs[0]["loss"]["params"],
            "seeds": [r["seed"] for r in rs],
            "metrics": {m: summary(v) for m, v in values.items() if v},
        }
    base = per_metric.get(baseline)
    for name, agg in out.items():
        if base is None:
            agg["paired_vs_ce"] = None
            continue
        agg["paired_vs_ce"] = {m: paired(per_metric[name][m], base[m])
                               for m in PAIRED_METRICS if per_metric[name].get(m) and base.get(m)}
    return out, ignored


def format_table(aggregates: Mapping[str, Mapping], order: Iterable[str] | None = None,
                 anchors: Mapping = PETS_ANCHORS, baseline: str = ProtocolConfig.baseline) -> str:
    """The terminal table (mean ± 95 % CI half-width over seeds) with the anchors below it."""
    names = [n for n in (order or aggregates) if n in aggregates]
    names += [n for n in aggregates if n not in names]
    head = ("recipe", "seeds", "error %", "NLL", "ECE %", "ECE after TS %", "T", "Δ error vs ce (pp)")
    rows = []
    for n in names:
        a = aggregates[n]
        m = a["metrics"]
        diff = (a.get("paired_vs_ce") or {}).get("error")
        delta = "(baseline)" if n == baseline else fmt_pm(diff, 100, sign=True)
        rows.append((n, str(len(a["seeds"])), fmt_pm(m.get("error"), 100), fmt_pm(m.get("nll"), 1, 3),
                     fmt_pm(m.get("ece"), 100), fmt_pm(m.get("ece_ts"), 100),
                     fmt_pm(m.get("temperature"), 1, 2), delta))
    lines = text_table(head, rows).split("\n")
    ls, ce = anchors["label_smoothing"], anchors["cross_entropy"]
    lines += [
        "",
        "mean ± 95% CI half-width over seeds (Student t); Δ = paired difference from ce on the same seeds.",
        "Anchors (" + anchors["setup"] + "):",
        f"  {ls['loss']}: {ls['error'] * 100:.1f} % error ({ls['note']})",
        f"  plain cross-entropy: {ce['error_min'] * 100:.1f}–{ce['error_max'] * 100:.1f} % error "
        f"({ce['note']})",
    ]
    return "\n".join(lines)
