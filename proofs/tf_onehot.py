r"""Proofs for ``tf_onehot``: ``Y' = (1 − ε)·Y + ε/K`` for a dense label row ``Y``.

The row is split into one generic class ``k`` and the ``K − 1`` others, each
with its own label mass ``Y_j ≥ 0`` (no class is special). For symbolic K:

* ``target_mass``: ``Σ_j Y'_j = (1−ε)·ΣY + ε`` (``= 1`` when ``ΣY = 1``);
* ``closed_form``: ``−Σ Y' log p = ((1−ε)ΣY + ε)·lse − (1−ε)·Σ_j Y_j z_j − (ε/K)·S``;
* ``gradient``: ``∂L/∂z_j = (ΣY')·p_j − Y'_j``;
* ``label_gradient``: ``∂L/∂Y_j = −(1−ε)·log p_j`` (the labels are differentiable);
* ``onehot_equals_uniform``: for ``Y = onehot(y)`` the loss and gradient are ``uniform``'s;
* ``optimum``: for ``Y' > 0`` the gradient vanishes at ``z* = log Y'`` (``p* = Y'/ΣY'``)
  and the minimum is ``ΣY'·log ΣY' + H(Y')``, i.e. ``H(Y')`` when ``ΣY = 1``.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import REST, Row, Theorem, eps, idx, zero

RECIPE = "tf_onehot"
FAMILIES = {"z": {"real": True}, "Y": {"nonnegative": True}}

#: the code's one clamp, decided for the code theorems: ``min((m − z_j)/2, MAX)`` (float32 MAX) is its
#: first operand for finite logits; it is active only at a −inf logit, where it turns 0·inf into 0
CODE_BRANCHES = {("min", float(np.finfo(np.float32).max)): 0}
CODE_REGIME = (r"	ext{finite logits: } \minig(	frac{m - z_j}{2}, \mathrm{MAX}ig) = 	frac{m - z_j}{2}"
               r"	ext{ (the clamp acts only at a } -\infty 	ext{ logit)}")


def q(row: Row, j, e=eps):
    return (1 - e) * row.v("Y", j) + e / row.K


def loss(row: Row, e=eps):
    """The closed form ``((1−ε)ΣY + ε)·lse − (1−ε)·Σ Y_j z_j − (ε/K)·S``."""
    ysum = row.sum(lambda j: row.v("Y", j))
    yz = row.sum(lambda j: row.v("Y", j) * row.v("z", j))
    return ((1 - e) * ysum + e) * row.lse() - (1 - e) * yz - e / row.K * row.S()


def grad(row: Row, j, e=eps):
    return row.sum(lambda i: q(row, i, e)) * row.p(j) - q(row, j, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    row = Row.concrete(num_classes, FAMILIES, onehot=False)
    return kn.ClosedForm(
        RECIPE, num_classes, loss(row), [grad(row, j) for j in row.keys],
        {"logits": row.symbols("z"), "labels": row.symbols("Y"), "epsilon": eps},
        extra={"label_grad": [-(1 - eps) * row.log_p(j) for j in row.keys]},
        shared=row.shared())


def theorems() -> list[Theorem]:
    row = Row.split(FAMILIES, keys=("k",), label=None)
    qf = lambda j: q(row, j)
    L_def = lambda: kn.cross_entropy(row, qf)
    ysum = lambda: row.sum(lambda j: row.v("Y", j))
    A = r"K \in \mathbb{Z},\ K \ge 2"
    sum_rest_Y = sp.Sum(row.v("Y", REST), (idx, 1, row.rest_count))

    def onehot():
        lab = Row.split(FAMILIES, keys=("k",), label="k")
        hot = lambda expr: lab.at(expr, "Y", lambda j: lab.onehot(j))
        L = hot(kn.cross_entropy(lab, lambda j: q(lab, j)))
        return ([zero(L - uniform.loss(lab), "loss = uniform"),
                 zero(hot(loss(lab)) - uniform.loss(lab), "closed form = uniform")]
                + [zero(hot(grad(lab, j)) - uniform.grad(lab, j), f"grad_{j} = uniform") for j in lab.keys])

    def optimum():
        zstar = lambda j: sp.log(qf(j))
        M = row.sum(qf)
        return ([zero(row.at(grad(row, j), "z", zstar), f"grad_{j}(z*) = 0") for j in row.keys]
                + [zero(row.at(loss(row), "z", zstar) - (M * sp.log(M) + kn.entropy(row, qf)), "L(z*)"),
                   zero(row.at(loss(row), "z", zstar) - kn.entropy(row, qf), "L(z*) = H when sum Y = 1",
                        given={sum_rest_Y: 1 - row.v("Y", "k")})])

    return [
        Theorem(RECIPE, "target_mass",
                r"\sum_j Y'_j = (1-\varepsilon)\textstyle\sum_j Y_j + \varepsilon\ (=1 \text{ if } \sum Y = 1)",
                lambda: [zero(row.sum(qf) - ((1 - eps) * ysum() + eps)),
                         zero(row.sum(qf) - 1, "= 1 given sum Y = 1", given={sum_rest_Y: 1 - row.v("Y", "k")})], A),
        Theorem(RECIPE, "closed_form",
                r"-\sum_j Y'_j \log p_j = \big((1-\varepsilon)\textstyle\sum Y + \varepsilon\big)\mathrm{lse}"
                r" - (1-\varepsilon)\sum_j Y_j z_j - \tfrac{\varepsilon}{K} S",
                lambda: [zero(L_def() - loss(row))], A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = (\textstyle\sum Y')\,p_j - Y'_j",
                lambda: kn.gradient_claims(row, L_def(), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "label_gradient", r"\partial L/\partial Y_j = -(1-\varepsilon)\log p_j",
                lambda: [zero(sp.diff(L_def(), row.v("Y", j)) + (1 - eps) * row.log_p(j)) for j in row.keys], A),
        Theorem(RECIPE, "onehot_equals_uniform",
                r"Y = \mathrm{onehot}(y):\ L_{\mathrm{tf}} = L_{\mathrm{uniform}},\ \nabla L_{\mathrm{tf}} = \nabla L_{\mathrm{uniform}}",
                onehot, A),
        Theorem(RECIPE, "optimum",
                r"\nabla L(\log Y') = 0,\ \min_z L = \textstyle\sum Y' \log \sum Y' + H(Y') \ (= H(Y') \text{ if } \sum Y = 1)",
                optimum, A + r",\ Y'_j > 0"),
    ]
