r"""Proofs for ``poly``: Poly-1 with the smoothed target ``q = (1 − ε)·onehot(y) + ε/K``.

``L = −Σ_j q_j log p_j + c₀·(1 − Σ_j q_j p_j)`` (``c₀`` the Poly-1 coefficient,
``poly``), for symbolic K:

* ``closed_form``: ``L = lse − (1−ε)z_y − (ε/K)S + c₀(1 − ε/K − (1−ε)p_y)``;
* ``gradient``: ``∂L/∂z_j = p_j − q_j − c·p_y·([j = y] − p_j)``, ``c = c₀(1 − ε)``;
* ``gradient_row_sum``: 0; ``shift_invariance``;
* ``stationary_point``: the gradient of a class ``j ≠ y`` is ``p_j(1 + c·p_y) − ε/K``, so at a
  stationary point ``p_j = (ε/K)/(1 + c·p_y)``, the gap is ``log(K·p_y(1 + c·p_y)/ε)`` and
  ``p_y`` is the root ``(c − 1 + √((1−c)² + 4c(1 − (K−1)ε/K)))/(2c)`` of
  ``(1 − p)(1 + c·p) = (K−1)ε/K``;
* ``poly_zero``: ``c₀ = 0`` is ``uniform(ε)``;
* ``no_uniform_equivalent`` (a finding): for ``c ≠ 0`` the difference from the gradient of
  ``uniform(ε')`` is not constant in ``z`` for any ε' (its derivative is
  ``c·p_y·p_k·(1 − 2p_y)``), so no ε' gives the same gradient.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import K, Row, Theorem, eps, zero

RECIPE = "poly"
C0 = sp.Symbol("c_0", real=True)  #: the Poly-1 coefficient (``poly``)


def q(row: Row, j, e=eps):
    return uniform.q(row, j, e)


def definition(row: Row, e=eps, c0=C0):
    """``−Σ q log p + c₀(1 − Σ q p)`` (timm's ``PolyCrossEntropy``)."""
    return kn.cross_entropy(row, lambda j: q(row, j, e)) + c0 * (1 - row.sum(lambda j: q(row, j, e) * row.p(j)))


def code_spec(row: Row, e=eps, c0=C0):
    """The definition with ``Σ_j q_j p_j = (1 − ε)·p_y + ε/K`` (``Σ_j p_j = 1``) written out, for the code
    theorems: their exact check splits a residual into groups by batch entry, and a constant spread over
    ``Σ_j p_j`` would not meet its counterpart (``closed_form`` proves the step)."""
    p_y = sp.Add(*[row.onehot(j) * row.p(j) for j in row.keys])
    return kn.cross_entropy(row, lambda j: q(row, j, e)) + c0 * (1 - e / row.K - (1 - e) * p_y)


def loss(row: Row, e=eps, c0=C0):
    """The closed form the code computes."""
    return uniform.loss(row, e) + c0 * (1 - e / row.K - (1 - e) * row.p(row.label if row.label else "y"))


def concrete_loss(row: Row, e=eps, c0=C0):
    p_y = sp.exp(row.target()) / row.E()
    return uniform.loss(row, e) + c0 * (1 - e / row.K - (1 - e) * p_y)


def grad(row: Row, j, e=eps, c0=C0, p_y=None):
    p_y = row.p("y") if p_y is None else p_y
    return row.p(j) - q(row, j, e) - c0 * (1 - e) * p_y * (row.onehot(j) - row.p(j))


def closed_form(num_classes: int) -> kn.ClosedForm:
    row = Row.concrete(num_classes)
    p_y = sp.exp(row.target()) / row.E()
    return kn.ClosedForm(RECIPE, num_classes, concrete_loss(row), [grad(row, j, p_y=p_y) for j in row.keys],
                         {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps, "poly": C0},
                         shared=row.shared())


def theorems() -> list[Theorem]:
    row = Row.split()
    A = kn.STANDING
    c = C0 * (1 - eps)
    P_y = sp.Symbol("p_y", positive=True)
    root = (c - 1 + sp.sqrt((1 - c) ** 2 + 4 * c * (1 - (K - 1) * eps / K))) / (2 * c)
    e2 = sp.Symbol("varepsilon'", real=True)

    def stationary():
        p_k = (eps / K) / (1 + c * P_y)
        return [
            zero(grad(row, "k") - (row.p("k") * (1 + c * row.p("y")) - eps / K), "grad_k"),
            zero(sp.log(P_y / p_k) - sp.log(K * P_y * (1 + c * P_y) / eps), "gap"),
            zero((1 - root) * (1 + c * root) - (K - 1) * eps / K, "p_y is a root"),
        ]

    return [
        Theorem(RECIPE, "closed_form",
                r"-\sum_j q_j\log p_j + c_0\big(1 - \sum_j q_j p_j\big) = \mathrm{lse} - (1-\varepsilon)z_y"
                r" - \tfrac{\varepsilon}{K}S + c_0\big(1 - \tfrac{\varepsilon}{K} - (1-\varepsilon)p_y\big)",
                lambda: [zero(definition(row) - loss(row))], A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = p_j - q_j - c_0(1-\varepsilon)\,p_y([j=y] - p_j)",
                lambda: kn.gradient_claims(row, definition(row), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "gradient_row_sum", r"\sum_j \partial L/\partial z_j = 0",
                lambda: [zero(row.sum(lambda j: grad(row, j)))], A),
        Theorem(RECIPE, "shift_invariance", r"L(z + c\mathbf{1}) = L(z)",
                lambda: [zero(row.at(loss(row), "z", lambda j: row.v("z", j) + kn.c) - loss(row))], A),
        Theorem(RECIPE, "stationary_point",
                r"\nabla L = 0:\ p_j = \frac{\varepsilon/K}{1 + c\,p_y},\ z_y - z_j = \log\frac{K p_y(1 + c\,p_y)}{\varepsilon},"
                r"\ (1-p_y)(1+c\,p_y) = \tfrac{(K-1)\varepsilon}{K},\ c = c_0(1-\varepsilon)",
                stationary, A + r",\ 0 < \varepsilon < 1,\ c \ne 0"),
        Theorem(RECIPE, "poly_zero", r"c_0 = 0:\ L = \mathrm{uniform}(\varepsilon)",
                lambda: [zero(loss(row, c0=0) - uniform.loss(row))], A),
        Theorem(RECIPE, "no_uniform_equivalent",
                r"\partial_{z_k}\big(\partial_{z_y} L - \partial_{z_y} L_{\mathrm{uniform}(\varepsilon')}\big)"
                r" = c\,p_y p_k (1 - 2p_y) \not\equiv 0 \text{ for } c \ne 0",
                lambda: [zero(sp.diff(grad(row, "y") - uniform.grad(row, "y", e2), row.v("z", "k"))
                              - c * row.p("y") * row.p("k") * (1 - 2 * row.p("y")))],
                A + r",\ \varepsilon' \in [0, 1]", finding=True,
                note="no ε' of uniform gives poly's gradient unless poly·(1 − ε) = 0 (then ε' = ε)"),
    ]
