"""The "what ε = 0.1 means" table (``lsbench.report.conventions``) against the recipes themselves.

Every cell is recomputed here from ``RECIPES[name].targets``, the recipe modules' ``on_off``, the
converter, or the recipe's own gradient, so a table that drifted from the code fails.
"""

from __future__ import annotations

import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lsbench import conventions
from lsbench.losses import RECIPES
from lsbench.losses.recipes import keras_binary, mmpretrain_multilabel, timm_binary
from lsbench.report import conventions as table_module
from lsbench.report.fmt import DASH
from lsbench.report.tables import to_latex, to_markdown
from test_conventions import per_example_gradient

EPS = table_module.EPSILON
SIGMOID_ON_OFF = {"keras_binary": lambda k: keras_binary.on_off(EPS),
                  "timm_binary": lambda k: timm_binary.on_off(EPS, k),
                  "mmpretrain_multilabel": lambda k: mmpretrain_multilabel.on_off(EPS)}


@pytest.fixture(scope="module")
def table():
    return table_module.conventions_table()


def parse_blocks(table):
    """``({recipe: {K: cells}}, {recipe: {K: cells}})`` for the softmax and the sigmoid block."""
    blocks, current, names = [{}, {}], 0, []
    for row in table.rows:
        if row[0] == "\\midrule":
            continue
        if row[0].startswith("sigmoid forms"):
            current = 1
            continue
        if row[0]:
            names = row[0].split(", ")
        for name in names:
            blocks[current].setdefault(name, {})[int(row[1])] = row[2:]
    return blocks


def number(cell: str) -> float:
    return float(cell.replace("≥", "").strip())


def test_every_form_with_an_epsilon_appears_once_in_its_block(table):
    softmax, sigmoid = parse_blocks(table)
    with_eps = {n for n, r in RECIPES.items() if "epsilon" in r.params}
    assert set(sigmoid) == {n for n in with_eps if conventions.REGISTRY[n].family == conventions.SIGMOID}
    assert set(sigmoid) == set(SIGMOID_ON_OFF)
    assert set(softmax) == with_eps - set(sigmoid)
    assert {"poly", "label_relaxation"} <= set(softmax)
    for block in (softmax, sigmoid):
        assert all(sorted(by_k) == sorted(table_module.KS) for by_k in block.values())


@pytest.mark.parametrize("name", sorted(SIGMOID_ON_OFF))
def test_sigmoid_rows_are_the_recipes_targets_and_optimal_logits(table, name):
    _, sigmoid = parse_blocks(table)
    for k in table_module.KS:
        t_y, t_j, total, logits, keras_eps = sigmoid[name][k]
        labels = jnp.zeros((1,), jnp.int32)
        if RECIPES[name].labels == "dense":
            labels = jax.nn.one_hot(labels, k)
        with jax.enable_x64(True):
            target = np.asarray(RECIPES[name].targets(labels, k, epsilon=EPS), np.float64)[0]
        on, off = SIGMOID_ON_OFF[name](k)
        np.testing.assert_allclose([float(t_y), float(t_j)], [on, off], rtol=1e-5)
        np.testing.assert_allclose([float(t_y), float(t_j), float(total)], [target[0], target[-1], target.sum()],
                                   rtol=1e-5)
        x_y, x_j = (float(v) for v in logits.split(" / "))
        np.testing.assert_allclose([x_y, x_j], [math.log(on / (1 - on)), math.log(off / (1 - off))], atol=1e-5)
        if name != "keras_binary":
            (answer,) = conventions.convert(name, EPS, k, to="keras_binary")
            assert keras_eps == (DASH if answer.epsilon is None else f"{answer.epsilon:.6g}")
        else:
            assert float(keras_eps) == EPS


@pytest.mark.parametrize("name", sorted(SIGMOID_ON_OFF))
def test_the_sigmoid_recipes_gradient_vanishes_at_the_tabulated_logits(table, name):
    _, sigmoid = parse_blocks(table)
    k = 37
    x_y, x_j = (float(v) for v in sigmoid[name][k][3].split(" / "))
    with jax.enable_x64(True):
        z = jnp.full((1, k), x_j, jnp.float64).at[0, 0].set(x_y)
        g = per_example_gradient(name, z, jnp.zeros((1,), jnp.int32), EPS)
    assert np.abs(g).max() < 1e-6, g


def test_poly_has_uniforms_target_and_the_codes_stationary_gap(table):
    softmax, _ = parse_blocks(table)
    for k in table_module.KS:
        assert softmax["poly"][k][:3] == softmax["uniform"][k][:3]  # q is uniform's ...
        assert softmax["poly"][k][3] != softmax["uniform"][k][3]  # ... the optimum is not
        assert softmax["poly"][k][4] == DASH
    for k in (2, 37):
        with jax.enable_x64(True):
            z = jnp.zeros((1, k), jnp.float64).at[0, 0].set(number(softmax["poly"][k][3]))
            g = per_example_gradient("poly", z, jnp.zeros((1,), jnp.int32), EPS)
        assert np.abs(g).max() < 1e-5, (k, g)


def test_label_relaxation_shows_its_label_mass_and_the_boundary_of_its_minimisers(table):
    softmax, _ = parse_blocks(table)
    for k in table_module.KS:
        q_y, q_j, total, gap, uniform_eps = softmax["label_relaxation"][k]
        assert float(q_y) == pytest.approx(1 - EPS) and q_j == DASH and uniform_eps == DASH
        assert gap.startswith("≥")
    k, gap = 37, number(softmax["label_relaxation"][37][3])
    loss = RECIPES["label_relaxation"].per_example
    with jax.enable_x64(True):
        at = lambda g: float(loss(jnp.zeros((1, k), jnp.float64).at[0, 0].set(g), jnp.zeros((1,), jnp.int32),
                                  epsilon=EPS)[0])
        assert at(gap + 1e-4) == 0.0 and at(gap - 1e-2) > 0.0  # the loss reaches 0 exactly at the gap shown


def test_the_notes_state_the_sigmoid_factor_from_the_code(table):
    offs = {n: f(table_module.FACTOR_K)[1] for n, f in SIGMOID_ON_OFF.items()}
    spread = max(offs.values()) / min(offs.values())
    notes = " ".join(table.notes)
    (stated,) = re.findall(r"at K = 1000 .*? a factor of ([0-9.e+]+)", notes)
    assert float(stated) == pytest.approx(spread)
    assert f"{offs['keras_binary'] / offs['timm_binary']:.6g} × timm_binary's" in notes
    macros = table_module.macros()
    assert float(macros["ConvKerasTimmOffFactor"]) == pytest.approx(offs["keras_binary"] / offs["timm_binary"])
    assert float(macros["ConvSigmoidOffFactor"]) == pytest.approx(spread)
    # timm_binary's K = 2 targets are symmetric (Keras's at ε' = ε), which the converter does not report
    on, off = timm_binary.on_off(EPS, 2)
    assert math.isclose(on + off, 1) and "timm_binary at K = 2 has $t_y + t_j = 1$" in notes
    assert f"gives ε' = {2 * off:.6g} there" in notes


def test_the_table_renders_in_both_formats(table):
    tex, md = to_latex(table), to_markdown(table)
    assert tex.count("\\midrule") == 3 and "binary $\\varepsilon$' \\\\" in tex
    assert "| sigmoid forms (same values) |" in md and "\\midrule" not in md
