"""Tests for the experiments' configuration trees (``lsbench.experiments.{pets,muller}.config``)."""

import argparse
import dataclasses

import pytest

from lsbench import provenance as prov
from lsbench.experiments.muller import config as mconfig
from lsbench.experiments.muller import run as mrun
from lsbench.experiments.pets import config as pconfig
from lsbench.experiments.pets import run as prun
from lsbench.experiments.settings import replace, to_dict


def _leaves(tree, prefix=""):
    if isinstance(tree, dict):
        return {p for k, v in tree.items() for p in _leaves(v, f"{prefix}{k}.")}
    return {prefix.rstrip(".")}


def _parse(add_arguments, argv=()):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


@pytest.mark.parametrize("profile", pconfig.PROFILES)
def test_pets_cli_defaults_are_the_config(profile):
    assert pconfig.from_args(_parse(prun.add_arguments), profile) == pconfig.get_config(profile)


def test_pets_cli_overrides_fields_only():
    args = _parse(prun.add_arguments, ["--lr", "0.01", "--seeds", "4", "4", "5", "--image-size", "64"])
    cfg = pconfig.from_args(args, "frozen")
    want = replace(replace(replace(pconfig.get_config(), "train.lr", 0.01), "seeds", (4, 5)), "data.image_size", 64)
    assert cfg == want
    with pytest.raises(ValueError, match="epochs"):
        pconfig.from_args(_parse(prun.add_arguments, ["--epochs", "0"]), "frozen")
    with pytest.raises(ValueError, match="profile"):
        pconfig.get_config("gpu")


def test_pets_run_key_covers_every_setting():
    cfg = pconfig.get_config()
    settings = pconfig.run_settings(cfg)
    # every field of the tree is hashed, except the three that select runs (each run's own key has them)
    assert _leaves(settings) == _leaves(to_dict(cfg)) - {"recipes", "seeds", "splits"}
    base = prov.digest(settings)
    for path, value in [("head.hidden", 256), ("protocol.ece_bins", 10), ("augment.p_flip", 0.0),
                        ("train.pct_start", 0.25), ("eval_batch_size", 128), ("data.image_size", 192)]:
        assert prov.digest(pconfig.run_settings(replace(cfg, path, value))) != base, path
    assert prov.digest(pconfig.run_settings(replace(cfg, "seeds", (7,)))) == base
    assert prov.digest(pconfig.run_settings(replace(cfg, "splits", ("fastai",)))) == base
    assert prov.digest(pconfig.run_settings(replace(cfg, "backbone", "lite0"))) != base


def test_pets_default_backbone_is_lite2_at_each_backbones_native_resolution():
    from lsbench.models.efficientnet_lite import NATIVE_RESOLUTION

    assert pconfig.get_config().backbone == "lite2"
    assert {b: NATIVE_RESOLUTION[b] for b in pconfig.BACKBONES} == dict(pconfig.BACKBONE_RESOLUTION)
    for argv, want in [((), ("lite2", 260)), (("--backbone", "lite0"), ("lite0", 224)),
                       (("--backbone", "lite0", "--image-size", "64"), ("lite0", 64))]:
        cfg = pconfig.from_args(_parse(prun.add_arguments, argv), "fastai")
        assert (cfg.backbone, cfg.data.image_size) == want, argv
    # the run key follows the resolution: lite0 at 224 px is another configuration than lite2 at 260 px
    assert pconfig.run_settings(pconfig.get_config(backbone="lite0"))["data"]["image_size"] == 224
    with pytest.raises(ValueError, match="backbone"):
        pconfig.get_config(backbone="resnet34")


@pytest.mark.parametrize("quick", [False, True])
def test_muller_cli_defaults_are_the_config(quick):
    args = _parse(mrun.add_arguments, ["--quick"] if quick else [])
    assert mrun.from_args(args) == mconfig.get_config(quick=quick)


def test_muller_cli_selection_and_errors():
    cfg = mrun.from_args(_parse(mrun.add_arguments, ["--seeds", "2", "2", "--temperatures", "3", "--datasets",
                                                     "digits", "--experiments", "calibration"]))
    assert (cfg.seeds, cfg.temperatures, cfg.datasets, cfg.experiments) == ((2,), (3.0,), ("digits",),
                                                                            ("calibration",))
    for argv in (["--seeds", "-1"], ["--temperatures", "0"]):
        with pytest.raises(mrun.UsageError):
            mrun.from_args(_parse(mrun.add_arguments, argv))


def test_muller_run_key_covers_every_setting():
    cfg = mconfig.get_config()
    settings = mconfig.run_settings(cfg)
    selection = {"experiments", "datasets", "seeds", "temperatures"}
    assert _leaves(settings) == _leaves(to_dict(cfg)) - selection
    base = prov.digest(settings)
    for changed in (dataclasses.replace(cfg, beta=0.5), dataclasses.replace(cfg, ece_bins=10),
                    dataclasses.replace(cfg, teachers=("ce",)),
                    dataclasses.replace(cfg, setups={**cfg.setups, "mnist": mconfig.dataset_setup("mnist", True)})):
        assert prov.digest(mconfig.run_settings(changed)) != base
    assert prov.digest(mconfig.run_settings(dataclasses.replace(cfg, seeds=(9,)))) == base
    # the quick configuration is another configuration
    assert prov.digest(mconfig.run_settings(mconfig.get_config(quick=True))) != base


def test_muller_setups_keep_the_recorded_form():
    # run records store each data set's setup in this form (paper tables read it)
    d = mconfig.get_config().setups["mnist"].to_dict()
    assert d["arch"] == {"kind": "mlp", "hidden": [512, 512], "dropout": 0.0, "input_dropout": 0.0}
    assert d["teacher"] == {"kind": "mlp", "hidden": [1200, 1200], "dropout": 0.5, "input_dropout": 0.2}
    assert d["train"]["epochs"] == mconfig.MNIST_EPOCHS and d["train"]["batch_size"] == 128
    assert d["split"] == {"held": 0.1, "test": 0.2, "per_class_limit": None}
    with pytest.raises(ValueError, match="dataset"):
        mconfig.dataset_setup("cifar", False)
