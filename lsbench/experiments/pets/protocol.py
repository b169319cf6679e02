"""The pets protocol: the splits, the temperature, per-example outputs, augmentation, aggregation.

Two evaluation protocols (``--split``): ``official`` trains on all of ``trainval`` and reports on
``test``; ``fastai`` (:func:`random_split`) reports on a random 20 % of all images, redrawn per
seed, and trains on the rest, as fastai's ``split_by_rand_pct(0.2)``. The temperature of
temperature scaling is cross-fitted on the report set (:func:`cross_fit_temperature`), so no
training image is held out. :func:`evaluate_run` gives a run's metrics and its compact per-example
outputs (:func:`example_outputs`, for the paired statistics of :mod:`lsbench.stats`); the fastai
profile augments each training batch on the host (:func:`augment_batch`). :func:`aggregate`
summarises the runs of each recipe over seeds and pairs them with the baseline on the same seeds;
:func:`format_table` prints them beside the published anchors. :func:`heldout_split` (a stratified
held-out part) is kept for the Müller experiments.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments.pets.config import AugmentConfig, ProtocolConfig
from lsbench.experiments import records
from lsbench.experiments.records import fmt_pm, paired, summary, text_table
from lsbench.published import PETS_ANCHORS

__all__ = ["METRICS", "PAIRED_METRICS", "OUTPUT_FIELDS", "heldout_split", "random_split", "cross_fit_temperature",
           "example_outputs", "evaluate_run", "load_outputs", "paired_statistics", "STATISTICS_METHOD", "augment_batch", "mirror_batch", "aggregate", "identical_runs", "format_table"]

#: Per-example outputs stored for every run (``<run>.npz``): name -> dtype.
OUTPUT_FIELDS = {"label": np.uint8, "pred": np.uint8, "conf": np.float16, "p_true": np.float16,
                 "sum_sq": np.float16, "conf_ts": np.float16, "p_true_ts": np.float16}
HELDOUT_FRACTION = 0.1

#: Metrics aggregated over seeds, and those also given as paired differences from ``ce``.
METRICS = ("error", "nll", "brier", "ece", "nll_ts", "brier_ts", "ece_ts", "temperature")
PAIRED_METRICS = ("error", "nll", "brier", "ece", "nll_ts", "brier_ts", "ece_ts")


def heldout_split(labels: np.ndarray, seed: int, fraction: float = HELDOUT_FRACTION
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


def random_split(n: int, seed: int, fraction: float = ProtocolConfig.valid_fraction
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``(train_idx sorted, valid_idx in drawn order)``: fastai's ``split_by_rand_pct`` of ``n`` items.

    ``n_valid = max(1, round(fraction·n))`` (at most ``n − 1``), the first ``n_valid`` of a
    permutation from ``numpy`` PCG64 seeded by ``[seed, 3]``. The report set keeps its random
    order, so position ``i`` of two seeds' report sets are unrelated images (the bootstrap of
    :mod:`lsbench.stats` resamples positions).

    >>> train, valid = random_split(10, seed=0)
    >>> len(train), len(valid), sorted(set(train) | set(valid)) == list(range(10))
    (8, 2, True)
    """
    if n < 2:
        raise ValueError(f"random_split needs at least 2 items, got {n}")
    n_valid = min(max(1, int(round(fraction * n))), n - 1)
    order = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 3]))).permutation(n)
    return np.sort(order[n_valid:]), order[:n_valid]


def cross_fit_temperature(logits: np.ndarray, labels: np.ndarray, seed: int) -> tuple[np.ndarray, list[float]]:
    """Two-fold cross-fitted temperature: ``(T of every example [N], [T_a, T_b])``.

    The examples are split in two halves at random (PCG64 ``[seed, 4]``); each half is scaled by
    the temperature fitted (:func:`lsbench.metrics.fit_temperature`) on the other half, so no
    example's own label sets its temperature and no training image is spent on it.
    """
    from lsbench import metrics

    n = len(labels)
    if n < 2:
        return np.ones(n), [1.0, 1.0]
    perm = np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), 4]))).permutation(n)
    a, b = np.sort(perm[: n // 2]), np.sort(perm[n // 2:])
    t_a, t_b = metrics.fit_temperature(logits[a], labels[a]), metrics.fit_temperature(logits[b], labels[b])
    t = np.empty(n)
    t[a], t[b] = t_b, t_a
    return t, [float(t_a), float(t_b)]


def example_outputs(logits: np.ndarray, labels: np.ndarray, temperature: np.ndarray) -> dict[str, np.ndarray]:
    """Compact per-example outputs (:data:`OUTPUT_FIELDS`): label, predicted class, confidence,
    probability of the true class, ``Σ_k p_k²`` (with ``p_true``, the Brier score), and confidence and
    ``p_true`` after temperature scaling by ``temperature`` (per example)."""
    from lsbench import metrics

    y = np.asarray(labels)
    p = metrics.softmax(logits)
    pt = metrics.softmax(np.asarray(logits, np.float64) / np.asarray(temperature)[:, None])
    rows = np.arange(len(y))
    out = {"label": y, "pred": p.argmax(1), "conf": p.max(1), "p_true": p[rows, y], "sum_sq": (p * p).sum(1),
           "conf_ts": pt.max(1), "p_true_ts": pt[rows, y]}
    return {k: np.asarray(v).astype(OUTPUT_FIELDS[k]) for k, v in out.items()}


def evaluate_run(logits: np.ndarray, labels: np.ndarray, seed: int, n_bins: int) -> tuple[dict, list[float], dict]:
    """``(test metrics, [T_a, T_b], per-example outputs)`` of one run on its report set.

    The metrics are :func:`lsbench.metrics.evaluate` of the raw logits, plus ``nll_ts``,
    ``brier_ts``, ``ece_ts``, ``reliability_ts`` of the cross-fitted temperature-scaled logits and
    ``temperature`` (the geometric mean of the two fitted temperatures).
    """
    from lsbench import metrics

    z = np.asarray(logits, np.float64)
    t, temps = cross_fit_temperature(z, labels, seed)
    test = metrics.evaluate(z, labels, n_bins=n_bins)
    scaled = metrics.evaluate(z / t[:, None], labels, n_bins=n_bins)
    test.update({f"{k}_ts": scaled[k] for k in ("nll", "brier", "ece")}, reliability_ts=scaled["reliability"],
                temperature=float(math.sqrt(temps[0] * temps[1])))
    return test, temps, example_outputs(z, labels, t)


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


def mirror_batch(rows: np.ndarray, rng: np.random.Generator, features: np.ndarray, mirrored: np.ndarray | None,
                 p_flip: float) -> np.ndarray:
    """The frozen profile's flip augmentation: ``features[rows]``, each row replaced with
    probability ``p_flip`` by ``mirrored[rows]`` (the cached features of its mirror image;
    fastai's ``flip_lr`` ``p = 0.5``), drawn from ``rng`` (the seed's augmentation generator).

    The number of rows, and so of optimiser steps, is unchanged: each example is seen once per
    epoch, flipped or not.

    >>> f, m = np.zeros((4, 2), np.float32), np.ones((4, 2), np.float32)
    >>> mirror_batch(np.array([3, 1]), np.random.default_rng(0), f, m, 1.0).tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    >>> mirror_batch(np.array([3, 1]), np.random.default_rng(0), f, None, 0.0).tolist()
    [[0.0, 0.0], [0.0, 0.0]]
    """
    if not 0 <= p_flip <= 1:
        raise ValueError(f"p_flip must be in [0, 1], got {p_flip}")
    if p_flip == 0:
        return features[rows]
    if mirrored is None or mirrored.shape != features.shape:
        raise ValueError(f"mirrored must have the shape of features {features.shape} when p_flip > 0")
    flip = rng.random(len(rows)) < p_flip
    return np.where(flip[:, None], mirrored[rows], features[rows])


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


def identical_runs(runs: Sequence[Mapping], pairs: Mapping[str, str]) -> dict[str, dict]:
    """For each proved-identical ``name -> twin``: how many of ``name``'s runs have per-example outputs
    bit-identical to the twin's run of the same split and seed, and the largest difference of any test
    metric (the float32 metrics may differ in the last bits: the two losses are written differently,
    so XLA rounds their gradients differently).

    Returns ``{name: {"twin", "identical", "compared", "max_metric_difference", "row"}}`` with
    ``row`` the one-line summary the tables print.
    """
    by_key = {(r.get("split_name"), r["name"], r["seed"]): r for r in runs}
    out = {}
    for name, twin in pairs.items():
        same = compared = 0
        worst = 0.0
        for (split, n, seed), r in by_key.items():
            other = by_key.get((split, twin, seed))
            if n != name or other is None:
                continue
            compared += 1
            same += r.get("outputs_sha256") == other.get("outputs_sha256")
            a, b = records.strip_bins(r["test"]), records.strip_bins(other["test"])
            worst = max([worst] + [abs(float(a[k]) - float(b[k])) for k in a if k in b])
        if compared:
            out[name] = {"twin": twin, "identical": same, "compared": compared, "max_metric_difference": worst,
                         "row": f"≡ {twin}, proved; identical outputs in {same}/{compared} runs "
                                f"(metrics within {worst:.0e})"}
    return out


STATISTICS_METHOD = ("lsbench.stats.paired_bootstrap: Δ = recipe − baseline averaged over seeds, 95 % percentile "
                     "interval of a bootstrap resampling seeds and report images together (scipy.stats.bootstrap, "
                     "2000 replicates), p_better = P(Δ < 0); verdict: equivalent if the interval is inside ±margin, "
                     "else better/worse if it excludes 0, else inconclusive")


def load_outputs(runs: Sequence[Mapping], runs_dir) -> dict[str, np.ndarray]:
    """The per-example outputs of ``runs`` (in order) stacked to ``[S, N]`` arrays."""
    from pathlib import Path

    arrays = []
    for r in runs:
        with np.load(Path(runs_dir) / r["outputs"], allow_pickle=False) as z:
            arrays.append({k: z[k] for k in OUTPUT_FIELDS})
    return {k: np.stack([a[k] for a in arrays]) for k in OUTPUT_FIELDS}


def paired_statistics(runs: Sequence[Mapping], runs_dir, baseline: str = ProtocolConfig.baseline) -> dict:
    """:func:`lsbench.stats.compare_outputs` of every name against ``baseline`` on their common seeds
    (runs of one split): ``{name: {metric: {delta, ci, p_better, margin, verdict, ...}}}``."""
    from lsbench import stats

    by_name: dict[str, dict[int, Mapping]] = {}
    for r in runs:
        by_name.setdefault(r["name"], {})[r["seed"]] = r
    base = by_name.get(baseline)
    out = {}
    if base is None:
        return out
    for name, rs in by_name.items():
        seeds = sorted(set(rs) & set(base))
        if name == baseline or not seeds:
            continue
        out[name] = stats.compare_outputs(load_outputs([rs[s] for s in seeds], runs_dir),
                                          load_outputs([base[s] for s in seeds], runs_dir))
        for v in out[name].values():
            v["seeds"] = seeds
    return out


def format_table(aggregates: Mapping[str, Mapping], order: Iterable[str] | None = None,
                 anchors: Mapping = PETS_ANCHORS, baseline: str = ProtocolConfig.baseline,
                 identities: Mapping[str, Mapping] | None = None, statistics: Mapping[str, Mapping] | None = None
                 ) -> str:
    """The terminal table (mean ± 95 % CI half-width over seeds; with ``statistics``, the paired Δ error
    with its seeds × images bootstrap interval and verdict) with the anchors below it; a proved-identical
    recipe (``identities``) shows its identity row instead of a Δ."""
    names = [n for n in (order or aggregates) if n in aggregates]
    names += [n for n in aggregates if n not in names]
    head = ("recipe", "seeds", "error %", "NLL", "ECE %", "ECE after TS %", "T", "Δ error vs ce (pp)", "verdict")
    rows = []
    for n in names:
        a = aggregates[n]
        m = a["metrics"]
        st = (statistics or {}).get(n, {}).get("error")
        if n == baseline:
            delta, word = "(baseline)", ""
        elif n in (identities or {}):
            delta, word = identities[n]["row"], ""
        elif st is not None:
            delta = f"{st['delta'] * 100:+.2f} [{st['ci'][0] * 100:+.2f}, {st['ci'][1] * 100:+.2f}]"
            word = st["verdict"]
        else:
            delta, word = fmt_pm((a.get("paired_vs_ce") or {}).get("error"), 100, sign=True), ""
        rows.append((n, str(len(a["seeds"])), fmt_pm(m.get("error"), 100), fmt_pm(m.get("nll"), 1, 3),
                     fmt_pm(m.get("ece"), 100), fmt_pm(m.get("ece_ts"), 100),
                     fmt_pm(m.get("temperature"), 1, 2), delta, word))
    lines = text_table(head, rows).split("\n")
    ls, ce = anchors["label_smoothing"], anchors["cross_entropy"]
    lines += [
        "",
        "mean ± 95% CI half-width over seeds (Student t); Δ = paired difference from ce on the same seeds"
        + (" [95 % interval, bootstrap over seeds and images]; verdict by lsbench.stats (error margin ±0.5 pp)."
           if statistics else "."),
        "Anchors (" + anchors["setup"] + "):",
        f"  {ls['loss']}: {ls['error'] * 100:.1f} % error ({ls['note']})",
        f"  plain cross-entropy: {ce['error_min'] * 100:.1f}–{ce['error_max'] * 100:.1f} % error "
        f"({ce['note']})",
    ]
    return "\n".join(lines)
