"""Tests for ``lsbench.experiments.settings`` (config-tree helpers and the shared RunSpec)."""

import dataclasses

import pytest

from lsbench.experiments import settings


@dataclasses.dataclass(frozen=True)
class _Inner:
    lr: float = 0.1

    def __post_init__(self):
        if self.lr <= 0:
            raise ValueError("lr must be > 0")


@dataclasses.dataclass(frozen=True)
class _Outer:
    seeds: tuple = (0, 1)
    inner: _Inner = _Inner()


def test_settings_replace_validates_and_to_dict_is_json():
    cfg = settings.replace(_Outer(), "seeds", [3])
    assert cfg.seeds == (3,) and settings.field(cfg, "inner.lr") == 0.1
    assert settings.to_dict(settings.replace(cfg, "inner.lr", 0.5)) == {"seeds": [3], "inner": {"lr": 0.5}}
    with pytest.raises(ValueError, match="lr"):
        settings.replace(cfg, "inner.lr", -1.0)
    with pytest.raises(AttributeError):
        settings.field(cfg, "inner.nope")


def test_run_spec_adds_the_experiment_epsilon_only_where_asked():
    fixed = settings.RunSpec.of("ce", "uniform", {"epsilon": 0.0}, "baseline")
    free = settings.RunSpec.of("uniform", "uniform", {}, "ε/K", uses_epsilon=True)
    assert fixed.loss(0.3) == {"recipe": "uniform", "params": {"epsilon": 0.0}}
    assert free.loss_params(0.3) == {"epsilon": 0.3}
    assert settings.RunSpec.of("a", "fastreid", {"epsilon": -1.0, "alpha": 0.2}, "").params == (
        ("alpha", 0.2), ("epsilon", -1.0))
    with pytest.raises(ValueError, match="epsilon"):
        free.loss()
