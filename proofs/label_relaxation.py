r"""Proofs for ``label_relaxation`` (Lienen & Hüllermeier 2021), ε the paper's α.

Outside the credal set ``{p_y ≥ 1 − ε}`` the loss is ``KL(r ‖ p)`` with the projection
``r_y = 1 − ε``, ``r_j = ε·p_j/(1 − p_y)``; for symbolic K:

* ``projection``: ``Σ_j r_j = 1`` and ``r_j/p_j = ε/(1 − p_y)`` for every ``j ≠ y``;
* ``closed_form``: ``KL(r ‖ p) = (1 − ε)·log((1 − ε)/p_y) + ε·log(ε/(1 − p_y))``;
* ``gradient``: ``∂L/∂z_j = p_j − r_j`` (differentiating through ``r``);
* ``gradient_with_r_fixed``: the gradient of ``−Σ r log p`` with ``r`` held fixed is the same
  ``p − r`` (so the published code's stop-gradient or its absence does not matter);
* ``minimum_on_the_boundary``: at ``p_y = 1 − ε`` the loss is 0 (it is continuous across the
  boundary); the smallest optimal logit gap, the others equal, is ``log((1 − ε)(K − 1)/ε)``;
* ``epsilon_zero``: as ε → 0 the loss tends to the cross-entropy ``−log p_y``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs.kernel import K, Row, Theorem, eps, zero

RECIPE = "label_relaxation"
P_Y = sp.Symbol("p_y", positive=True)
REST = sp.Symbol("s", positive=True)  #: 1 − p_y outside the set (positive)
A_ = sp.Symbol("a", positive=True)  #: ε → 0⁺


def rest_mass(row: Row):
    """``1 − p_y`` as the sum of the other classes' probabilities (a positive expression)."""
    return (row.E() - sp.exp(row.target())) / row.E()


def r(row: Row, j, e=eps):
    o = row.onehot(j)
    return o * (1 - e) + (1 - o) * e * row.p(j) / rest_mass(row)


def loss(row: Row, e=eps, p_y=None):
    """The closed form outside the credal set (what the code computes there)."""
    p_y = row.p("y") if p_y is None else p_y
    return (1 - e) * sp.log((1 - e) / p_y) + e * sp.log(e / (1 - p_y))


def concrete_loss(row: Row, e=eps):
    p_y = sp.exp(row.target()) / row.E()
    return (1 - e) * (sp.log(1 - e) - sp.log(p_y)) + e * (sp.log(e) - sp.log(1 - p_y))


def definition(row: Row, e=eps):
    """``KL(r ‖ p) = Σ_j r_j (log r_j − log p_j)`` with ``r`` the projection (the TF original)."""
    return row.sum(lambda j: r(row, j, e) * (sp.log(r(row, j, e)) - row.log_p(j)))


def grad(row: Row, j, e=eps):
    return row.p(j) - r(row, j, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    """Outside the credal set (the tie tests choose such rows)."""
    row = Row.concrete(num_classes)
    p_y = sp.exp(row.target()) / row.E()
    rest = 1 - p_y
    grads = [row.p(j) - (row.onehot(j) * (1 - eps) + (1 - row.onehot(j)) * eps * row.p(j) / rest) for j in row.keys]
    return kn.ClosedForm(RECIPE, num_classes, concrete_loss(row), grads,
                         {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps}, shared=row.shared())


def theorems() -> list[Theorem]:
    row = Row.split()
    e = 1 / (1 + sp.Symbol("e", positive=True))  # ε ∈ (0, 1)
    A = kn.STANDING + r",\ 0 < \varepsilon < 1,\ p_y < 1 - \varepsilon"
    rest = rest_mass(row)

    def closed():
        # The rest terms' log ratio is the constant log(ε/(1 − p_y)); the rest carries mass ε.
        rest_terms = row.sum(lambda j: (1 - row.onehot(j)) * r(row, j, e)) * sp.log(e / rest)
        kl = (1 - e) * (sp.log(1 - e) - row.log_p("y")) + rest_terms
        return [zero(r(row, "k", e) / row.p("k") - e / rest, "r_k/p_k"),
                zero(kl - loss(row, e, p_y=1 - rest), "closed form"),
                zero(rest - (1 - row.p("y")), "1 − p_y")]

    return [
        Theorem(RECIPE, "projection", r"\sum_j r_j = 1,\ r_y = 1-\varepsilon,\ r_j/p_j = \varepsilon/(1-p_y)",
                lambda: [zero(row.sum(lambda j: r(row, j)) - 1, "mass"), zero(r(row, "y") - (1 - eps), "r_y"),
                         zero(r(row, "k") / row.p("k") - eps / rest, "ratio")], kn.STANDING),
        Theorem(RECIPE, "closed_form",
                r"\mathrm{KL}(r\,\|\,p) = (1-\varepsilon)\log\frac{1-\varepsilon}{p_y} + \varepsilon\log\frac{\varepsilon}{1-p_y}",
                closed, A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = p_j - r_j",
                lambda: kn.gradient_claims(row, loss(row, p_y=1 - rest), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "gradient_with_r_fixed",
                r"\partial_z\big(-\textstyle\sum_j \mathrm{sg}(r_j)\log p_j\big) = (\sum r)\,p - r = p - r",
                lambda: [zero(row.sum(lambda j: r(row, j)) * row.p(j) - r(row, j) - grad(row, j), f"j={j}")
                         for j in row.keys], A),
        Theorem(RECIPE, "minimum_on_the_boundary",
                r"p_y = 1-\varepsilon \Rightarrow L = 0;\ \text{smallest optimal gap } \log\frac{(1-\varepsilon)(K-1)}{\varepsilon}",
                lambda: [zero(loss(row, e, p_y=1 - e), "L = 0 at the boundary"),
                         zero(sp.log((1 - e) / (e / (K - 1))) - sp.log((1 - e) * (K - 1) / e), "gap")],
                kn.STANDING + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "epsilon_zero", r"\lim_{\varepsilon\to 0^+} L = -\log p_y",
                lambda: [zero(sp.limit((1 - A_) * sp.log((1 - A_) / P_Y) + A_ * sp.log(A_ / REST), A_, 0, "+")
                              + sp.log(P_Y), "limit (1 − p_y written as a positive symbol)")],
                kn.STANDING),
    ]


# --------------------------------------------------------------------------
# code theorems: the comparison p_y ≥ 1 − ε is the stated regime, ε = 1/10 exactly
# --------------------------------------------------------------------------

CODE_EPS = sp.Rational(1, 10)  #: the code theorems fix ε (its comparison with log p_y is a regime)
CODE_BRANCHES_OUTSIDE = {("ge", float(sp.log(1 - CODE_EPS))): False}
CODE_BRANCHES_INSIDE = {("ge", float(sp.log(1 - CODE_EPS))): True}
CODE_REGIME_OUTSIDE = r"\varepsilon = \tfrac{1}{10},\ p_y < 1 - \varepsilon \text{ on every row (outside the credal set)}"
CODE_REGIME_INSIDE = r"\varepsilon = \tfrac{1}{10},\ p_y \ge 1 - \varepsilon \text{ on every row (inside: } L = 0)"


def code_spec(row: Row, e):
    """The proven closed form on a concrete row (label indicators ``o_j``), for the code theorems:
    ``(1 − ε)·log((1 − ε)/p_y) + ε·log(ε/Σ_{j≠y} p_j)``. ``closed_form`` proves it equals ``KL(r ‖ p)``
    and ``gradient`` that its gradient is ``p − r``; the exact check splits a residual into groups by
    batch entry, and the constants ``ε log ε`` spread over ``Σ_j r_j`` would not meet their counterparts."""
    log_p_y = sp.Add(*[row.onehot(j) * row.log_p(j) for j in row.keys])  # log p_y on a one-hot row
    log_rest = sp.log(sp.Add(*[(1 - row.onehot(j)) * sp.exp(row.v("z", j)) for j in row.keys])) - row.lse()
    return (1 - e) * (sp.log(1 - e) - log_p_y) + e * (sp.log(e) - log_rest)
