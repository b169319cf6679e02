r"""Proofs for ``speech_transformer``: ``cal_loss`` as published.

The code's target is ``q_y = 1 − ε``, ``q_j = ε/K`` (``j ≠ y``); its prose says
``q = (1−ε)·y + ε/K`` (``uniform``). For symbolic K (see :mod:`proofs.kernel`):

* ``target_mass`` (finding): ``Σ_j q_j = 1 − ε/K < 1`` for ``ε > 0`` -- not a distribution;
* ``code_vs_prose`` (finding): ``q^code − q^prose = −(ε/K)·onehot(y)``;
* ``closed_form``: ``−Σ q log p = (1 − ε/K)·lse − (1−ε)·z_y − (ε/K)·(S − z_y)``;
* ``uniform_plus_log_p``: ``L = L_uniform + (ε/K)·log p_y``;
* ``gradient``: ``∂L/∂z_j = (1 − ε/K)·p_j − q_j``;
* ``gradient_row_sum`` (finding): each row's gradient sums to 0 (the loss is
  shift-invariant), while ``p − q`` -- the gradient one would write from the
  prose, which assumes ``Σq = 1`` -- sums to ``ε/K``: the two differ by ``(ε/K)·p``;
* ``optimum``: the gradient vanishes exactly at ``p* = q/Σq``, so
  ``p*_y = K(1−ε)/(K−ε)``, which is ``ε²(K−1)/(K(K−ε))`` below uniform's ``1 − ε + ε/K``;
* ``minimum_loss``: ``L(z*) = −Σ_j q_j log(q_j/Σq)``;
* ``epsilon_zero``: with ε = 0 it is plain cross-entropy.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "speech_transformer"


def q(row: Row, j, e=eps):
    o = row.onehot(j)
    return o * (1 - e) + (1 - o) * e / row.K


def mass(num_classes=K, e=eps):
    return 1 - e / num_classes


def loss(row: Row, e=eps):
    """The closed form ``(1 − ε/K)·lse − (1−ε)·z_y − (ε/K)·(S − z_y)``."""
    zy = row.target()
    return (1 - e / row.K) * row.lse() - (1 - e) * zy - e / row.K * (row.S() - zy)


def grad(row: Row, j, e=eps):
    """``(1 − ε/K)·p_j − q_j``."""
    return mass(row.K, e) * row.p(j) - q(row, j, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    A = r"K \in \mathbb{Z},\ K \ge 2"

    def target_mass():
        e = uniform.positive_eps_interval(open_right=False)  # ε ∈ (0, 1]
        return [zero(row.sum(qf) - mass(), "sum q = 1 - eps/K"),
                holds(1 - row.sum(lambda j: q(row, j, e)) > 0, "sum q < 1 for eps > 0")]

    def optimum():
        zstar = lambda j: sp.log(qf(j))
        py_star = K * (1 - eps) / (K - eps)
        return ([zero(row.at(grad(row, j), "z", zstar), f"grad_{j}(z*) = 0") for j in row.keys]
                + [zero((grad(row, "y") + qf("y")) / (grad(row, "k") + qf("k"))
                        - sp.exp(row.v("z", "y") - row.v("z", "k")), "every stationary point has p = q/sum q"),
                   zero(row.at(row.p("y"), "z", zstar) - py_star, "p*_y"),
                   zero(py_star - uniform.q(row, "y") + eps**2 * (K - 1) / (K * (K - eps)), "vs uniform")])

    return [
        Theorem(RECIPE, "target_mass", r"\sum_j q_j = 1 - \varepsilon/K\ (< 1 \text{ for } \varepsilon > 0)",
                target_mass, A + r",\ 0 < \varepsilon \le 1", finding=True,
                note="the published code does not implement its published formula: its target is not a distribution"),
        Theorem(RECIPE, "code_vs_prose", r"q^{\mathrm{code}} - q^{\mathrm{prose}} = -\tfrac{\varepsilon}{K}\,\mathrm{onehot}(y)",
                lambda: [zero(qf("y") - uniform.q(row, "y") + eps / K, "target"),
                         zero(qf("k") - uniform.q(row, "k"), "others")], A, finding=True,
                note="the code moves ε/K of mass off the target without putting it anywhere"),
        Theorem(RECIPE, "closed_form",
                r"-\sum_j q_j \log p_j = (1-\tfrac{\varepsilon}{K})\mathrm{lse} - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K}(S - z_y)",
                lambda: [zero(L_def() - loss(row))], A),
        Theorem(RECIPE, "uniform_plus_log_p", r"L = L_{\mathrm{uniform}} + \tfrac{\varepsilon}{K}\log p_y",
                lambda: [zero(loss(row) - uniform.loss(row) - eps / K * row.log_p("y"))], A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = (\textstyle\sum q)\,p_j - q_j = (1-\tfrac{\varepsilon}{K})p_j - q_j",
                lambda: kn.gradient_claims(row, L_def(), lambda j: row.sum(qf) * row.p(j) - qf(j))
                + kn.gradient_claims(row, L_def(), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "gradient_row_sum",
                r"\sum_j \partial L/\partial z_j = 0 \ne \sum_j (p_j - q_j) = \varepsilon/K",
                lambda: [zero(row.sum(lambda j: grad(row, j)), "sum of the gradient = 0"),
                         zero(row.sum(lambda j: row.p(j) - qf(j)) - eps / K, "sum of p - q = eps/K")], A,
                finding=True,
                note="the loss is shift-invariant, so its gradient sums to 0 for any target; "
                     "the prose's gradient p − q (valid only when Σq = 1) sums to ε/K instead"),
        Theorem(RECIPE, "optimum",
                r"\nabla L = 0 \iff p = q/\textstyle\sum q;\ p^*_y = \tfrac{K(1-\varepsilon)}{K-\varepsilon}"
                r" = q^{\mathrm{unif}}_y - \tfrac{\varepsilon^2(K-1)}{K(K-\varepsilon)}",
                optimum, A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_loss", r"L(z^*) = -\sum_j q_j \log\frac{q_j}{\sum q}",
                lambda: [zero(row.at(loss(row), "z", lambda j: sp.log(qf(j)))
                              + row.sum(lambda j: qf(j) * (sp.log(qf(j)) - sp.log(mass()))))],
                A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "epsilon_zero", r"\varepsilon = 0:\ L = \mathrm{lse}(z) - z_y",
                lambda: [zero(loss(row, 0) - (row.lse() - row.v("z", "y")))], A),
    ]
