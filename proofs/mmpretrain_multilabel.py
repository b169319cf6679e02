r"""Proofs for ``mmpretrain_multilabel``: sigmoid targets ``t_y = 1 − ε``, ``t_j = ε``.

For symbolic K (:mod:`proofs.binary`): the element identity, ``Σ_j t_j = 1 + (K−2)ε``,
the closed form ``(1/K)(Σ softplus(x) − εΣx − (1−2ε)x_y)``, the gradient, convexity,
the optimal logits ``±log((1−ε)/ε)`` (gap ``2·log((1−ε)/ε)``, independent of K), ε = 0;
and ``keras_equivalent``: on one-hot labels the targets, hence the loss and the
gradient, are ``keras_binary``'s with ``ε' = 2ε`` (for ε ≤ 1/2, where ε' ≤ 1).
"""

from __future__ import annotations

import sympy as sp

from proofs import binary as bn
from proofs.kernel import K, Row, Theorem, eps, zero

RECIPE = "mmpretrain_multilabel"


def on_off(num_classes=K, e=eps):
    return 1 - e, e


def closed_form(num_classes: int):
    return bn.integer_closed_form(RECIPE, num_classes, on_off)


def theorems() -> list[Theorem]:
    on, off = on_off()

    def keras_equivalent():
        row = Row.split()
        mine = bn.onehot_target(row, on, off)
        keras = bn.onehot_target(row, *bn.keras_targets(2 * eps))
        return [zero(mine(j) - keras(j), f"t_{j}") for j in row.keys] + [
            zero(bn.row_loss(row, mine) - bn.row_loss(row, keras), "loss")]

    return bn.integer_theorems(
        RECIPE, on, off, 1 + (K - 2) * eps, r"\sum_j t_j = 1 + (K-2)\varepsilon",
        r"L = \tfrac1K\big(\sum_j \log(1+e^{x_j}) - \varepsilon\sum_j x_j - (1-2\varepsilon) x_y\big)",
        2 * sp.log((1 - eps) / eps), r"2\log\frac{1-\varepsilon}{\varepsilon}", r",\ 0 < \varepsilon < 1") + [
        Theorem(RECIPE, "keras_equivalent",
                r"\mathrm{mmpretrain\_multilabel}(\varepsilon) \equiv \mathrm{keras\_binary}(\varepsilon' = 2\varepsilon)"
                r"\text{ on one-hot labels}",
                keras_equivalent, r"K \in \mathbb{Z},\ K \ge 2,\ 0 \le \varepsilon \le \tfrac12"),
    ]
