"""Every setting of a ``reproduce pets`` run, as plain data (Flax-examples style: :func:`get_config`).

The command line only overrides fields of this tree (:func:`from_args`; its flags' defaults are
read from :func:`get_config`), the run key hashes the whole tree (:func:`run_settings`: all but
``recipes`` and ``seeds``, which select runs and are part of each run's own key), and the results
file records it whole (``"experiment_config"``). Changing any default here therefore changes the
run keys: a stale record is never reused.

>>> cfg = get_config()
>>> cfg.train.epochs, cfg.train.batch_size, cfg.head.hidden, cfg.protocol.ece_bins
(4, 64, 512, 15)
>>> get_config("fastai").eval_batch_size
64
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

from lsbench.experiments.settings import RunSpec, replace, to_dict
from lsbench.train_config import TrainConfig

__all__ = [
    "PROFILES",
    "SPLITS",
    "SPLIT_TEXT",
    "BACKBONES",
    "BACKBONE_RESOLUTION",
    "PROVED_IDENTICAL",
    "EPSILON_SWEEP",
    "RunSpec",
    "RUN_SPECS",
    "DEFAULT_RECIPES",
    "HeadConfig",
    "AugmentConfig",
    "DataConfig",
    "ProtocolConfig",
    "PetsConfig",
    "FLAGS",
    "get_config",
    "run_settings",
    "from_args",
]

PROFILES = ("frozen", "fastai")
#: Evaluation protocols (``--split``): ``official`` trains on trainval and reports on test;
#: ``fastai`` trains on a random 80 % of all images and reports on the other 20 % (resampled per seed).
SPLITS = ("official", "fastai")
SPLIT_TEXT: Mapping[str, str] = {
    "official": "train on trainval, report on test",
    "fastai": "random 80/20 split of all images, redrawn per seed; report on the 20 %",
}
#: Backbones of both profiles (``--backbone``), by the name of :func:`~.model.load_backbone`.
BACKBONES = ("lite0", "lite2")
#: Each backbone's native input resolution, the default ``data.image_size`` (the values of
#: :data:`lsbench.models.efficientnet_lite.NATIVE_RESOLUTION`, a test checks; repeated here so that
#: parsing the command line imports no JAX). Lite2's 260 px images are the 224 px shared copy upscaled.
BACKBONE_RESOLUTION: Mapping[str, int] = {"lite0": 224, "lite2": 260}


_spec = RunSpec.of

RUN_SPECS: dict[str, RunSpec] = {s.name: s for s in (
    _spec("ce", "uniform", {"epsilon": 0.0}, "plain cross-entropy (uniform with ε = 0), the baseline"),
    _spec("uniform", "uniform", {}, "ε/K on every class (Szegedy et al.)", True),
    *(_spec(f"uniform_eps{e:g}", "uniform", {"epsilon": e}, f"uniform at ε = {e:g} (the ε sweep)")
      for e in (0.05, 0.2, 0.3)),
    _spec("off_target", "off_target", {}, "ε/(K−1) on the other classes", True),
    _spec("fastai", "fastai", {}, "fastai LabelSmoothingCrossEntropy (linear combination)", True),
    _spec("tf_onehot", "tf_onehot", {}, "Keras/TF smoothing of the one-hot matrix", True),
    _spec("speech_transformer", "speech_transformer", {}, "Speech-Transformer cal_loss as published "
          "(target mass 1 − ε/K)", True),
    _spec("fastreid_adaptive", "fastreid", {"epsilon": -1.0, "alpha": 0.2},
          "fast-reid adaptive ε_i = 0.2·p_y, ε/(K−1) spreading"),
    _spec("self_correction", "self_correction",
          {"alpha": 0.1, "clip": False, "recipe": "uniform", "epsilon": 0.0},
          "self-correction weights 1 − 0.1·(−log p_y) (unclipped) on plain cross-entropy"),
)}
#: Runs the proofs show to be the same objective as another run at the same ε (``proofs/``:
#: fastai's linear combination ``(1−ε)·CE + ε·mean(−log p)`` is ``uniform`` term for term): trained
#: anyway and reported as one row with the count of bit-identical runs, never as independent evidence.
PROVED_IDENTICAL: Mapping[str, str] = {"fastai": "uniform"}
#: The ε sweep of ``uniform`` (name -> ε; ``uniform`` itself takes ``--epsilon``).
EPSILON_SWEEP: Mapping[str, float] = {"uniform_eps0.05": 0.05, "uniform": 0.1, "uniform_eps0.2": 0.2,
                                      "uniform_eps0.3": 0.3}
DEFAULT_RECIPES = tuple(RUN_SPECS)


@dataclasses.dataclass(frozen=True)
class HeadConfig:
    """:class:`lsbench.models.FastaiHead` (fastai v1: linear layers with biases)."""

    name: str = "FastaiHead"
    hidden: int = 512
    ps: float = 0.5
    linear_bias: bool = True


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """fastai-profile training augmentation (:func:`lsbench.experiments.pets.protocol.augment_batch`)."""

    min_scale: float = 0.35
    ratio: tuple[float, float] = (3 / 4, 4 / 3)
    p_flip: float = 0.5
    max_lighting: float = 0.2
    p_lighting: float = 0.75


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The images: ``image_size`` defaults to the backbone's :data:`BACKBONE_RESOLUTION` (:func:`get_config`)."""

    dataset: str = "oxford-iiit-pet"
    num_classes: int = 37
    image_size: int = 260
    per_class_limit: int | None = None


@dataclasses.dataclass(frozen=True)
class ProtocolConfig:
    """How runs are trained and evaluated (:mod:`~.protocol`).

    ``official``: train on all of trainval, report on test. ``fastai``: a random
    ``valid_fraction`` of all images (trainval + test, fastai's ``split_by_rand_pct``; drawn from
    the seed, the same for every recipe of a seed) is the report set, the rest trains. Either way
    the temperature is fitted by two-fold cross-fitting on the report set (each half scaled by the
    T fitted on the other half), so no training image is held out.
    """

    valid_fraction: float = 0.2
    temperature: str = "2-fold cross-fit on the report set"
    ece_bins: int = 15
    baseline: str = "ce"


@dataclasses.dataclass(frozen=True)
class PetsConfig:
    """One ``reproduce pets`` invocation.

    Attributes:
      profile: ``frozen`` (cached backbone features + head) or ``fastai`` (the
        fastai recipe: body frozen except BatchNorm, augmentation) -- the same default everywhere.
      recipes, seeds: which runs to do (names of :data:`RUN_SPECS`); all seeds of a recipe train
        together in one vmapped program (:func:`lsbench.train.fit_seeds`).
      splits: the evaluation protocols of :data:`SPLITS` to run.
      epsilon: ε of the fixed-ε recipes.
      pooling: how the body's last feature map is pooled (fastai concat pooling ``[max, avg]``).
      backbone: the body, one of :data:`BACKBONES` (EfficientNet-Lite, real ImageNet weights).
      augment: the fastai profile's augmentation; the frozen profile uses ``p_flip`` alone (each
        training example of each epoch takes its mirror image's cached features with probability
        ``p_flip``, :func:`~.protocol.mirror_batch`).
      feature_batch_size: images per step when extracting the frozen features.
      eval_batch_size: examples per step of :func:`lsbench.train.predict`.
      train: the one-cycle optimiser (fastai v1 ``fit_one_cycle(4)`` defaults).
    """

    profile: str = "frozen"
    recipes: tuple[str, ...] = DEFAULT_RECIPES
    seeds: tuple[int, ...] = tuple(range(10))
    splits: tuple[str, ...] = SPLITS
    epsilon: float = 0.1
    pooling: str = "maxavg"
    backbone: str = "lite2"
    feature_batch_size: int = 32
    eval_batch_size: int = 256
    train: TrainConfig = TrainConfig(epochs=4, batch_size=64, lr=3e-3, weight_decay=1e-2)
    head: HeadConfig = HeadConfig()
    augment: AugmentConfig = AugmentConfig()
    data: DataConfig = DataConfig()
    protocol: ProtocolConfig = ProtocolConfig()


def get_config(profile: str = "frozen", backbone: str | None = None) -> PetsConfig:
    """The default configuration of a profile on ``backbone`` (default :attr:`PetsConfig.backbone`),
    at the backbone's native resolution.

    >>> get_config(backbone="lite0").data.image_size, get_config().data.image_size
    (224, 260)
    """
    if profile == "frozen":
        cfg = PetsConfig()
    elif profile == "fastai":
        cfg = PetsConfig(profile="fastai", eval_batch_size=64)
    else:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    backbone = backbone or cfg.backbone
    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}, got {backbone!r}")
    return replace(replace(cfg, "backbone", backbone), "data.image_size", BACKBONE_RESOLUTION[backbone])


def run_settings(cfg: PetsConfig) -> dict:
    """Every field that can change a run's numbers: all of :func:`to_dict` but ``recipes``/``seeds``/``splits``."""
    return {k: v for k, v in to_dict(cfg).items() if k not in ("recipes", "seeds", "splits")}


#: command-line flag (argparse ``dest``) -> field path in :class:`PetsConfig`.
FLAGS: Mapping[str, str] = {
    "recipes": "recipes", "seeds": "seeds", "splits": "splits", "backbone": "backbone", "epsilon": "epsilon",
    "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "train.lr",
    "weight_decay": "train.weight_decay",
    "image_size": "data.image_size", "per_class_limit": "data.per_class_limit", "p_flip": "augment.p_flip",
}


def from_args(args: Any, profile: str) -> PetsConfig:
    """:func:`get_config` of ``profile`` and ``--backbone`` with the command line's values of
    :data:`FLAGS` (``recipes`` and ``seeds`` deduplicated in order; ``--image-size`` only when given)."""
    cfg = get_config(profile, getattr(args, "backbone", None))
    for dest, path in FLAGS.items():
        value = getattr(args, dest)
        if value is None and dest == "image_size":  # not given: the backbone's native resolution
            continue
        if dest in ("recipes", "seeds", "splits"):
            value = tuple(dict.fromkeys(value))
        cfg = replace(cfg, path, value)
    return cfg
