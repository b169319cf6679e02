"""Every setting of a ``reproduce muller`` run, as plain data (Flax-examples style: :func:`get_config`).

:func:`get_config` gives the full configuration, ``get_config(quick=True)`` the tiny one the tests
use. The command line only overrides fields (``--experiments``, ``--datasets``, ``--seeds``,
``--temperatures``; their defaults are this tree's), every data set's runs hash the whole tree
(:func:`run_settings`: all but those run-selecting fields) into their ``common_key`` and so into
every run key, and the results files record it whole (``"experiment_config"``).

>>> cfg = get_config()
>>> cfg.seeds, cfg.temperatures, cfg.beta, cfg.ece_bins
((0, 1, 2), (1.0, 2.0, 4.0, 8.0), 0.6, 15)
>>> cfg.setups["mnist"].train.epochs, get_config(quick=True).seeds
(8, (0, 1))
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from lsbench.experiments.settings import RunSpec, to_dict
from lsbench.train_config import FASTAI_V1, TrainConfig

__all__ = [
    "EXPERIMENTS", "DATASETS", "DEFAULT_DATASETS", "DISTILLATION_DATASETS", "BASELINE", "LS_REFERENCE",
    "Spec", "SPECS", "ALPHA_SPECS", "DatasetSetup", "MullerConfig", "get_config", "dataset_setup",
    "run_settings", "MNIST_EPOCHS",
]

EXPERIMENTS = ("calibration", "distillation", "representations")
DATASETS = ("mnist", "digits", "pets")
DEFAULT_DATASETS = {"calibration": ("mnist", "pets"), "distillation": ("mnist",),
                    "representations": ("mnist", "pets")}
DISTILLATION_DATASETS = ("mnist", "digits")  # where Müller's teacher/student MLPs fit the data
#: The reference of every paired difference, and the label-smoothed model the claims are about.
BASELINE = "ce"
LS_REFERENCE = "uniform_0.1"

#: Epochs of the MNIST-5k teacher/student runs (27 teacher-size and 39 student runs must fit the
#: 20-minute budget of the default run on a 2-core CPU: measured 15.5 min wall / 7.5 CPU-min for the
#: 66 MNIST runs and 4.9 min / 2.9 CPU-min for the 27 pets runs, on a shared machine at load 4-8).
MNIST_EPOCHS = 8


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


@dataclasses.dataclass(frozen=True)
class DatasetSetup:
    """Architecture (:func:`lsbench.experiments.muller.models.build_model` dicts), student,
    optimiser and split protocol of one data set."""

    arch: Mapping[str, Any]
    student: Mapping[str, Any] | None
    train: TrainConfig
    split: Mapping[str, Any]

    def to_dict(self) -> dict:
        """The form run records store (``arch``, ``student``, ``train``, ``split``)."""
        return {"arch": to_dict(self.arch), "student": to_dict(self.student), "train": self.train.to_dict(),
                "split": to_dict(self.split)}


def _mlp(hidden, dropout=0.0, input_dropout=0.0):
    return {"kind": "mlp", "hidden": list(hidden), "dropout": dropout, "input_dropout": input_dropout}


def dataset_setup(name: str, quick: bool) -> DatasetSetup:
    """The :class:`DatasetSetup` of ``mnist``, ``digits`` or ``pets`` (full or quick)."""
    if name == "mnist":
        if quick:
            return DatasetSetup(_mlp((64, 64), 0.5, 0.2), _mlp((32, 32)), TrainConfig(epochs=4, batch_size=64, lr=3e-3),
                                {"held": 0.1, "test": 0.2, "per_class_limit": 50})
        return DatasetSetup(_mlp((1200, 1200), 0.5, 0.2), _mlp((800, 800)),
                            TrainConfig(epochs=MNIST_EPOCHS, batch_size=128, lr=1e-3),
                            {"held": 0.1, "test": 0.2, "per_class_limit": None})
    if name == "digits":
        return DatasetSetup(_mlp((256, 256) if not quick else (32, 32), 0.5, 0.0),
                            _mlp((128, 128) if not quick else (16, 16)),
                            TrainConfig(epochs=30 if not quick else 3, batch_size=64, lr=1e-3),
                            {"held": 0.1, "test": 0.2, "per_class_limit": None})
    if name == "pets":
        return DatasetSetup({"kind": "fastai_head", "hidden": 512 if not quick else 32, "ps": 0.5, "linear_bias": True},
                            None, FASTAI_V1 if not quick else TrainConfig(epochs=1),
                            {"held": 0.1, "how": "lsbench.experiments.pets.heldout_split(trainval labels, seed); "
                                                 "test = the official test split"})
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
        sub-experiment (names of :data:`SPECS`).
      setups: :class:`DatasetSetup` per data set.
    """

    quick: bool = False
    experiments: tuple[str, ...] = EXPERIMENTS
    datasets: tuple[str, ...] | None = None
    seeds: tuple[int, ...] = (0, 1, 2)
    temperatures: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)
    beta: float = 0.6
    ece_bins: int = 15
    projection_classes: tuple[int, ...] = (0, 1, 2)
    projection_train_per_class: int = 100
    calibration_specs: tuple[str, ...] = tuple(SPECS)
    teachers: tuple[str, ...] = ("ce", "uniform_0.1", "fastreid_adaptive")
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
