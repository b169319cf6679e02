r"""Proofs for ``fastreid``: fixed or adaptive ε with ε/(K−1) spreading.

Per row ``q_y = 1 − ε_i``, ``q_j = ε_i/(K−1)``, with ``ε_i = ε`` (fixed) or
``ε_i = α·p_y`` (adaptive, fast-reid's ``eps < 0``) taken under ``no_grad``.
For symbolic K (see :mod:`proofs.kernel`):

* ``target_mass``: ``Σ_j q_j = 1`` for every ``ε_i``;
* ``closed_form``: ``−Σ q log p = lse − (1−ε_i)·z_y − ε_i/(K−1)·(S − z_y)``;
* ``fixed_equals_off_target``: with ``ε ≥ 0`` it is ``off_target``;
* ``gradient_stop_gradient``: with ``ε_i`` a constant (what fast-reid computes)
  ``∂L/∂z_j = p_j − q_j``;
* ``adaptive_full_gradient``: the true derivative of ``L(z, α·p_y(z))`` is
  ``p_j − q_j + α·p_y·([j=y] − p_j)·(z_y − (S − z_y)/(K−1))`` -- the last term is
  what the stop-gradient drops;
* ``adaptive_dropped_term_nonzero`` (finding): that term is not identically 0
  (a witness at K = 3);
* ``adaptive_epsilon_range``: ``0 < ε_i < α``;
* ``adaptive_fixed_point``: the stop-gradient gradient vanishes exactly where
  ``p_y = 1/(1+α)`` and ``p_j = α/((1+α)(K−1))``: the logit gap ``log((K−1)/α)``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import off_target
from proofs.kernel import K, Row, Theorem, alpha, eps, holds, zero

RECIPE = "fastreid"
eps_i = sp.Symbol("varepsilon_i", real=True)  #: the per-row ε (a constant under stop-gradient)


def q(row: Row, j, e=eps_i):
    """``q_y = 1 − ε_i``, ``q_j = ε_i/(K−1)``: off_target's target with the per-row ε_i."""
    return off_target.q(row, j, e)


def loss(row: Row, e=eps_i):
    return off_target.loss(row, e)


def adaptive_eps(row: Row, a=alpha):
    """``ε_i = α·p_y`` (the value; the code treats it as a constant)."""
    if row.onehot_family:  # concrete row: p_y = exp(z_y − lse), linear in K
        return a * sp.exp(row.target() - row.lse())
    return a * row.p(row.label)


def grad(row: Row, j, e=eps_i):
    """The gradient with ε_i held constant (what fast-reid and lsbench compute)."""
    return row.p(j) - q(row, j, e)


def dropped_term(row: Row, j, a=alpha):
    """``α·p_y·([j=y] − p_j)·(z_y − (S − z_y)/(K−1))``: the part of ∂L/∂z_j the stop-gradient drops."""
    zy = row.target()
    p_y = adaptive_eps(row, 1)
    return a * p_y * (row.onehot(j) - row.p(j)) * (zy - (row.S() - zy) / (row.K - 1))


def closed_form(num_classes: int, adaptive: bool = False) -> kn.ClosedForm:
    """Fixed ε (inputs ``logits, onehot, epsilon``) or adaptive (``logits, onehot, alpha``).

    For the adaptive form ``grad`` is the stop-gradient gradient (what the code
    computes) and ``extra["full_grad"]`` the true derivative.
    """
    row = Row.concrete(num_classes)
    if not adaptive:
        return kn.ClosedForm(
            RECIPE, num_classes, loss(row, eps), [grad(row, j, eps) for j in row.keys],
            {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps},
            shared=row.shared())
    e = adaptive_eps(row)
    return kn.ClosedForm(
        RECIPE, num_classes, loss(row, e), [grad(row, j, e) for j in row.keys],
        {"logits": row.symbols("z"), "onehot": row.symbols("o"), "alpha": alpha},
        extra={"full_grad": [grad(row, j, e) + dropped_term(row, j) for j in row.keys]},
        shared=row.shared())


def theorems() -> list[Theorem]:
    row = Row.split()
    qf = lambda j: q(row, j)
    L_def = lambda e=eps_i: kn.cross_entropy(row, lambda j: q(row, j, e))
    A = r"K \in \mathbb{Z},\ K \ge 2"

    def full_gradient():
        full = L_def(adaptive_eps(row))  # ε_i = α·p_y(z), differentiated through
        return [zero(sp.diff(full, row.v("z", j)) - (grad(row, j, adaptive_eps(row)) + dropped_term(row, j)),
                     f"d/dz_{j}") for j in row.keys]

    def dropped_nonzero():
        w = Row.concrete(3)
        values = {**dict(zip(w.symbols("z"), (1, 0, 0))), **dict(zip(w.symbols("o"), (1, 0, 0))),
                  alpha: sp.Rational(1, 5)}
        term = dropped_term(w, 0).xreplace(values)
        return [holds(sp.Ne(term, 0), "witness K=3, z=(1,0,0), y=0, alpha=1/5"),
                holds(term > 0, "positive at the witness")]

    def eps_range():
        a = sp.Symbol("alpha", positive=True)
        e = adaptive_eps(row, a)
        return [holds(e > 0, "eps_i > 0"), holds(a - e > 0, "eps_i < alpha")]

    def fixed_point():
        a = sp.Symbol("alpha", positive=True)
        py = 1 / (1 + a)
        pk = a / ((1 + a) * (K - 1))
        zstar = lambda j: sp.log(py if j == "y" else pk)
        claims = [zero(row.at(grad(row, j, adaptive_eps(row, a)), "z", zstar), f"grad_{j}(z*) = 0")
                  for j in row.keys]
        P = sp.Symbol("P", positive=True)
        sol = sp.solve(sp.Eq(P, 1 - a * P), P)  # p_y = q_y = 1 − α·p_y
        claims.append(holds(sp.Eq(len(sol), 1), "unique p_y"))
        claims.append(zero(sol[0] - py, "p_y = 1/(1+alpha)"))
        claims.append(zero(sp.log(py / pk) - sp.log((K - 1) / a), "gap"))
        return claims

    return [
        *kn.mass_and_closed_form(
            RECIPE, row, qf, L_def, lambda: loss(row),
            r"-\sum_j q_j \log p_j = \mathrm{lse} - (1-\varepsilon_i) z_y - \tfrac{\varepsilon_i}{K-1}(S - z_y)",
            A, mass=r"\sum_j q_j = 1 \text{ for every } \varepsilon_i"),
        Theorem(RECIPE, "fixed_equals_off_target", r"\varepsilon \ge 0:\ L_{\mathrm{fastreid}} = L_{\mathrm{off\_target}}",
                lambda: [zero(loss(row, eps) - off_target.loss(row, eps))]
                + [zero(q(row, j, eps) - off_target.q(row, j, eps)) for j in row.keys], A),
        Theorem(RECIPE, "gradient_stop_gradient",
                r"\varepsilon_i \text{ constant}:\ \partial L/\partial z_j = p_j - q_j",
                lambda: kn.gradient_claims(row, L_def(), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "adaptive_full_gradient",
                r"\tfrac{d}{dz_j} L(z, \alpha p_y(z)) = p_j - q_j + \alpha p_y([j{=}y] - p_j)\big(z_y - \tfrac{S - z_y}{K-1}\big)",
                full_gradient, A),
        Theorem(RECIPE, "adaptive_dropped_term_nonzero",
                r"\alpha p_y([j{=}y] - p_j)\big(z_y - \tfrac{S - z_y}{K-1}\big) \not\equiv 0",
                dropped_nonzero, r"K = 3,\ z = (1, 0, 0),\ y = 0,\ \alpha = 1/5", finding=True,
                note="fast-reid's adaptive gradient is not the derivative of its loss: the stop-gradient drops this term"),
        Theorem(RECIPE, "adaptive_epsilon_range", r"0 < \varepsilon_i = \alpha p_y < \alpha",
                eps_range, A + r",\ \alpha > 0"),
        Theorem(RECIPE, "adaptive_fixed_point",
                r"\text{stop-gradient } \nabla L = 0 \iff p_y = \tfrac{1}{1+\alpha},\ z_y - z_j = \log\tfrac{K-1}{\alpha}",
                fixed_point, A + r",\ \alpha > 0"),
    ]
