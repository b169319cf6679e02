"""Every setting of a ``reproduce muller`` run, as plain data (Flax-examples style: :func:`get_config`).

:func:`get_config` gives the full configuration, ``get_config(quick=True)`` the tiny one the tests
use. The command line only overrides fields (``--experiments``, ``--datasets``, ``--seeds``,
``--temperatures``; their defaults are this tree's), every data set's runs hash the whole tree
(:func:`run_settings`: all but those run-selecting fields) into their ``common_key`` and so into
every run key, and the results files record it whole (``"experiment_config"``).

>>> cfg = get_config()
>>> len(cfg.seeds), cfg.temperatures, cfg.beta, cfg.ece_bins
(10, (1.0, 2.0, 4.0, 8.0), 0.6, 15)
>>> cfg.setups["mnist"].train.epochs, get_config(quick=True).seeds
(30, (0, 1))

**Regimes** (where each claim's premise can hold, issue 15). On MNIST the calibration and
representation classifiers are an MLP 2×512 *without* dropout trained for 30 epochs to (near) zero
training loss, so plain cross-entropy is over-confident (the calibration precondition); the
distillation teachers are Müller/Hinton's 2×1200 MLP *with* dropout (0.5, input 0.2), trained for the
same 30 epochs (converged: training error ≈ 0), and the students 2×800 without dropout, so that a
student can gain from a teacher (the distillation precondition). On pets the head is trained for
16 epochs without dropout or weight decay (fastai's 4 epochs with ``ps = 0.5`` leave it
under-confident).
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from lsbench.experiments.settings import RunSpec, to_dict
from lsbench.train_config import FASTAI_V1, TrainConfig

__all__ = [
    "EXPERIMENTS", "DATASETS", "DEFAULT_DATASETS", "DISTILLATION_DATASETS", "BASELINE", "LS_REFERENCE",
    "Spec", "SPECS", "ALPHA_SPECS", "DatasetSetup", "MullerConfig", "get_config", "dataset_setup",
    "run_settings", "MNIST_EPOCHS", "PETS_EPOCHS", "DEFAULT_SEEDS",
]

EXPERIMENTS = ("calibration", "distillation", "representations")
DATASETS = ("mnist", "digits", "pets")
DEFAULT_DATASETS = {"calibration": ("mnist", "pets"), "distillation": ("mnist",),
                    "representations": ("mnist", "pets")}
DISTILLATION_DATASETS = ("mnist", "digits")  # where Müller's teacher/student MLPs fit the data
#: The reference of every paired difference, and the label-smoothed model the claims are about.
BASELINE = "ce"
LS_REFERENCE = "uniform_0.1"

#: Epochs of every MNIST-5k run: enough for the 2×512 MLP without dropout to reach zero training
#: error (over-confident) and for the 2×1200 dropout teacher to converge, within the 20-minute budget
#: of the default run (10 seeds: 150 MNIST and 40 pets runs) on a 2-core CPU.
MNIST_EPOCHS = 30
#: Epochs of the pets head in the calibration regime (fastai's recipe is 4).
PETS_EPOCHS = 16


#: A classifier run of the Müller experiments (:class:`lsbench.experiments.settings.RunSpec`).
Spec = RunSpec
_spec = RunSpec.of

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
#: The ``uniform`` α grid of the calibration experiment (α* is chosen among the α > 0).
ALPHA_SPECS = {0.0: "ce", 0.05: "uniform_0.05", 0.1: "uniform_0.1", 0.2: "uniform_0.2"}
#: Ten seeds: the 95 % intervals of the paired differences get 9 degrees of freedom.
DEFAULT_SEEDS = tuple(range(10))


@dataclasses.dataclass(frozen=True)
class DatasetSetup:
    """Architectures (:func:`lsbench.experiments.muller.models.build_model` dicts), optimiser and
    split protocol of one data set: ``arch`` for the calibration and representation classifiers,
    ``teacher`` for the distillation teachers (``None``: ``arch``; the teachers are their own runs
    only where it differs from ``arch``), ``student`` for the students."""

    arch: Mapping[str, Any]
    student: Mapping[str, Any] | None
    train: TrainConfig
    split: Mapping[str, Any]
    teacher: Mapping[str, Any] | None = None

    @property
    def teacher_arch(self) -> Mapping[str, Any]:
        return self.arch if self.teacher is None else self.teacher

    def to_dict(self) -> dict:
        """The form run records store (``arch``, ``teacher``, ``student``, ``train``, ``split``)."""
        return {"arch": to_dict(self.arch), "teacher": to_dict(self.teacher_arch), "student": to_dict(self.student),
                "train": self.train.to_dict(), "split": to_dict(self.split)}


def _mlp(hidden, dropout=0.0, input_dropout=0.0):
    return {"kind": "mlp", "hidden": list(hidden), "dropout": dropout, "input_dropout": input_dropout}


def dataset_setup(name: str, quick: bool) -> DatasetSetup:
    """The :class:`DatasetSetup` of ``mnist``, ``digits`` or ``pets`` (full or quick)."""
    if name == "mnist":
        if quick:
            return DatasetSetup(_mlp((64, 64)), _mlp((32, 32)), TrainConfig(epochs=4, batch_size=64, lr=3e-3),
                                {"held": 0.1, "test": 0.2, "per_class_limit": 50}, teacher=_mlp((64, 64), 0.5, 0.2))
        return DatasetSetup(_mlp((512, 512)), _mlp((800, 800)),
                            TrainConfig(epochs=MNIST_EPOCHS, batch_size=128, lr=1e-3),
                            {"held": 0.1, "test": 0.2, "per_class_limit": None},
                            teacher=_mlp((1200, 1200), 0.5, 0.2))
    if name == "digits":
        arch = _mlp((256, 256) if not quick else (32, 32), 0.5, 0.0)
        return DatasetSetup(arch, _mlp((128, 128) if not quick else (16, 16)),
                            TrainConfig(epochs=30 if not quick else 3, batch_size=64, lr=1e-3),
                            {"held": 0.1, "test": 0.2, "per_class_limit": None}, teacher=arch)
    if name == "pets":
        head = {"kind": "fastai_head", "hidden": 512 if not quick else 32, "ps": 0.0, "linear_bias": True}
        return DatasetSetup(head, None, (dataclasses.replace(FASTAI_V1, epochs=PETS_EPOCHS, weight_decay=0.0)
                                         if not quick else TrainConfig(epochs=1)),
                            {"held": 0.1, "how": "lsbench.experiments.pets.heldout_split(trainval labels, seed); "
                                                 "test = the official test split"}, teacher=head)
    raise ValueError(f"unknown dataset {name!r}")


@dataclasses.dataclass(frozen=True)
class MullerConfig:
    """One ``reproduce muller`` invocation.

    Attributes:
      quick: the tiny test configuration (never comparable to the full run).
      experiments: sub-experiments to run, from :data:`EXPERIMENTS`.
      datasets: data sets for every sub-experiment, or ``None`` for :data:`DEFAULT_DATASETS`
        (distillation runs only on :data:`DISTILLATION_DATASETS`).
      seeds: seeds; each drives the split, initialisation, batch order and dropout.
      temperatures: distillation temperatures T.
      beta: weight of the distillation term in the student loss.
      ece_bins: bins of the ECE and reliability diagrams.
      projection_classes: the three classes of the figure's template plane.
      projection_train_per_class: training examples per class kept for the figure.
      calibration_specs, teachers, representation_specs: the classifier runs of each
        sub-experiment (names of :data:`SPECS`); the default run keeps the ``uniform`` α grid and
        the ce / uniform_0.1 teachers (the other recipes of :data:`SPECS` fit no 20-minute budget
        at ten seeds; name them in ``calibration_specs`` to run them).
      setups: :class:`DatasetSetup` per data set.
    """

    quick: bool = False
    experiments: tuple[str, ...] = EXPERIMENTS
    datasets: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = DEFAULT_SEEDS
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    beta: float = 0.6
    ece_bins: int = 15
    projection_classes: tuple[int, ...] = (0, 1, 2)
    projection_train_per_class: int = 100
    calibration_specs: tuple[str, ...] = tuple(ALPHA_SPECS.values())
    teachers: tuple[str, ...] = (BASELINE, LS_REFERENCE)
    representation_specs: tuple[str, ...] = (BASELINE, LS_REFERENCE)
    setups: Mapping[str, DatasetSetup] = dataclasses.field(
        default_factory=lambda: {d: dataset_setup(d, False) for d in DATASETS})


def get_config(quick: bool = False) -> MullerConfig:
    """The full configuration, or the quick one (500-image MNIST, small MLPs, few epochs, 3 recipes)."""
    if not quick:
        return MullerConfig()
    return MullerConfig(quick=True, seeds=(0, 1), temperatures=(1.0, 4.0),
                        calibration_specs=("ce", "uniform_0.1", "fastreid_adaptive"),
                        teachers=("ce", "uniform_0.1"),
                        setups={d: dataset_setup(d, True) for d in DATASETS})


def run_settings(cfg: MullerConfig) -> dict:
    """Every field that can change a run: all of the tree but the run-selecting fields
    (``experiments``, ``datasets``, ``seeds``, ``temperatures``: seeds and T are in each run's key)."""
    out = {f.name: to_dict(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)
           if f.name not in ("experiments", "datasets", "seeds", "temperatures", "setups")}
    out["setups"] = {d: s.to_dict() for d, s in cfg.setups.items()}
    return out
