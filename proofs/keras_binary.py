r"""Proofs for ``keras_binary``: ``t_j = (1 − ε)·Y_j + ε/2`` on a dense label matrix ``Y``.

For symbolic K on a row with dense labels ``Y`` (:mod:`proofs.binary`):

* ``bce_definition``: ``−t log σ(x) − (1−t) log(1−σ(x)) = softplus(x) − t·x``;
* ``target_mass``: ``Σ_j t_j = (1−ε)·Σ_j Y_j + K·ε/2`` (``1 − ε + Kε/2`` for one-hot rows);
* ``squeeze``: ``t_j − 1/2 = (1−ε)·(Y_j − 1/2)`` (labels pulled towards 1/2);
* ``gradient``: ``∂L/∂x_j = (σ(x_j) − t_j)/K`` and ``∂L/∂Y_j = −(1−ε)·x_j/K``;
* ``convex``; ``optimal_logits``: for 0/1 labels ``x* = ±log(2/ε − 1)`` (gap
  ``2·log(2/ε − 1)``, independent of K);
* ``epsilon_zero``: plain binary cross-entropy;
* ``symmetric_forms_are_keras``: any sigmoid target with ``on + off = 1``,
  ``0 ≤ off ≤ 1/2``, is this recipe's one-hot target with ``ε' = 2·off`` (the
  converter's map; ``mmpretrain_multilabel`` is the case ``off = ε``).
"""

from __future__ import annotations

import sympy as sp

from proofs import binary as bn
from proofs import kernel as kn
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "keras_binary"
FAMILIES = {"z": {"real": True}, "Y": {"nonnegative": True}}


def t(row: Row, j, e=eps):
    return (1 - e) * row.v("Y", j) + e / 2


def loss(row: Row, e=eps):
    return bn.row_loss(row, lambda j: t(row, j, e))


def closed_form(num_classes: int) -> kn.ClosedForm:
    row = Row.concrete(num_classes, FAMILIES, onehot=False)
    return kn.ClosedForm(RECIPE, num_classes, loss(row), [bn.grad(row, j, lambda i: t(row, i)) for j in row.keys],
                         {"logits": row.symbols("z"), "labels": row.symbols("Y"), "epsilon": eps},
                         extra={"grad_labels": [-(1 - eps) * row.v("z", j) / num_classes for j in row.keys]},
                         shared=row.shared())


def theorems() -> list[Theorem]:
    row = Row.split(FAMILIES)
    tf = lambda j: t(row, j)
    A = kn.STANDING + r",\ Y_j \in [0, 1]"
    off = sp.Symbol("o", nonnegative=True)
    binary_row = Row.split()  # 0/1 labels: the one-hot target
    on_b, off_b = bn.keras_targets(eps)
    tb = bn.onehot_target(binary_row, on_b, off_b)
    return [
        bn.element_identity_theorem(RECIPE),
        Theorem(RECIPE, "target_mass", r"\sum_j t_j = (1-\varepsilon)\sum_j Y_j + K\varepsilon/2",
                lambda: [zero(row.sum(tf) - ((1 - eps) * row.sum(lambda j: row.v("Y", j)) + K * eps / 2))], A),
        Theorem(RECIPE, "squeeze", r"t_j - \tfrac12 = (1-\varepsilon)(Y_j - \tfrac12)",
                lambda: [zero(tf(j) - sp.Rational(1, 2) - (1 - eps) * (row.v("Y", j) - sp.Rational(1, 2)))
                         for j in row.keys], A),
        Theorem(RECIPE, "gradient",
                r"\partial L/\partial x_j = (\sigma(x_j) - t_j)/K,\ \partial L/\partial Y_j = -(1-\varepsilon) x_j/K",
                lambda: kn.gradient_claims(row, loss(row), lambda j: bn.grad(row, j, tf))
                + kn.gradient_claims(row, loss(row), lambda j: -(1 - eps) * row.v("z", j) / K, fam="Y"), A),
        Theorem(RECIPE, "convex", r"\partial^2 L/\partial x_j^2 = \sigma(x_j)(1-\sigma(x_j))/K > 0",
                lambda: [holds(sp.diff(loss(row), row.v("z", j), 2) > 0, f"d2/dz_{j}^2") for j in row.keys], A),
        Theorem(RECIPE, "optimal_logits",
                r"Y \in \{0,1\}^K:\ \nabla L = 0 \iff x_j = \pm\log(2/\varepsilon - 1),\ "
                r"x^*_y - x^*_j = 2\log(2/\varepsilon - 1)",
                lambda: [zero(binary_row.at(bn.grad(binary_row, j, tb), "z", lambda i: bn.logit(tb(i))),
                              f"grad_{j}(x*) = 0") for j in binary_row.keys]
                + [zero(bn.in_range(bn.logit(tb("y")) - sp.log(2 / eps - 1)), "x*_y"),
                   zero(bn.in_range(bn.logit(tb("y")) - bn.logit(tb("k")) - 2 * sp.log(2 / eps - 1)), "gap")],
                kn.STANDING + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "epsilon_zero", r"\varepsilon = 0:\ L = \tfrac1K\sum_j\big(\log(1+e^{x_j}) - Y_j x_j\big)",
                lambda: [zero(loss(row, 0) - bn.row_loss(row, lambda j: row.v("Y", j)))], A),
        Theorem(RECIPE, "symmetric_forms_are_keras",
                r"t_y = 1 - o,\ t_j = o\ (0 \le o \le \tfrac12) \equiv \mathrm{keras\_binary}(\varepsilon' = 2o)"
                r"\text{ on one-hot labels}",
                lambda: [zero(a - b) for a, b in zip(bn.keras_targets(2 * off), (1 - off, off))]
                + [holds(2 * off >= 0), holds((1 - 2 * off).subs(off, sp.Rational(1, 2) - sp.Symbol("d", nonnegative=True)) >= 0)],
                r"0 \le o \le \tfrac12"),
    ]
