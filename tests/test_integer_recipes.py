"""``lsbench.losses.integer_recipes``: the recipes by name for the large-vocabulary paths."""

import inspect

import pytest

from lsbench.losses import RECIPES, integer_recipes


def test_defaults_come_from_the_recipes_public_functions():
    for name in integer_recipes.SUPPORTED:
        p = integer_recipes.resolve(name, {}, path="test")
        assert {k: v for k, v in p.items() if k != "where"} == dict(RECIPES[name].params)
        assert set(inspect.signature(integer_recipes.MODULES[name].rows_from_stats).parameters) >= {"stats",
                                                                                                   "num_classes"}


def test_unknown_recipes_and_parameters_raise():
    with pytest.raises(ValueError, match="integer-label recipes"):
        integer_recipes.resolve("distillation", {}, path="test")
    with pytest.raises(TypeError, match="unexpected"):
        integer_recipes.resolve("off_target", {"alpha": 0.1}, path="test")
    with pytest.raises(TypeError, match="unexpected"):
        integer_recipes.resolve("uniform", {"weight": None}, path="test", exclude=("weight",))
