r"""Proofs for ``self_correction``: the weights ``w = 1 − α·(−log(p_y + 10⁻¹⁰))``.

With ``α > 0`` and ``p = p_y ∈ (0, 1]`` (see :mod:`proofs.kernel` for the checker):

* ``negative_weight_region``: ``{p ∈ (0, 1] : 1 + α log p < 0} = (0, exp(−1/α))``
  -- the weight (without the floor) is negative exactly when ``p_y < exp(−1/α)``;
* ``weight_threshold``: ``w(exp(−1/α)) = 0``;
* ``weight_monotone``: ``dw/dp = α/(p + 10⁻¹⁰) > 0``;
* ``published_floor_threshold``: with the published ``+10⁻¹⁰`` the weight is
  negative exactly when ``p_y < exp(−1/α) − 10⁻¹⁰``;
* ``alpha_0_1_threshold``: for ``α = 0.1`` the threshold ``exp(−10)`` lies in
  ``(4.5·10⁻⁵, 4.6·10⁻⁵)``;
* ``weight_at_most_one``: ``w ≤ 1`` for ``0 < p ≤ 1`` (without the floor);
* ``negative_weight_ascends``: a gradient step on ``w·L`` with ``w`` a constant
  changes ``L`` at the rate ``−w·‖∇L‖²`` (``uniform`` loss, symbolic K), which is
  positive when ``w < 0``: a negative weight pushes the model away from the label.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import Row, Theorem, alpha, eps, holds, zero

RECIPE = "self_correction"
FLOOR = sp.Rational(1, 10**10)  #: the published ``+ 1e−10`` inside the log


def weight(p_y, a=alpha, floor=FLOOR):
    """``1 − α·(−log(p_y + floor))``."""
    return 1 - a * (-sp.log(p_y + floor))


def weight_form(num_classes: int) -> kn.ClosedForm:
    """The weight for a concrete K: inputs ``probs``, ``onehot``, ``alpha``; ``loss`` is the weight."""
    row = Row.concrete(num_classes, {"P": {"nonnegative": True}})
    w = weight(row.target("P"))
    return kn.ClosedForm(RECIPE, num_classes, w, [],
                         {"probs": row.symbols("P"), "onehot": row.symbols("o"), "alpha": alpha},
                         shared=row.shared())


def closed_form(num_classes: int) -> kn.ClosedForm:
    """The reweighted per-example loss ``w·L_uniform`` with ``w`` from ``softmax(z)`` held constant.

    Inputs ``logits``, ``onehot``, ``epsilon``, ``alpha``; ``grad = w·(p − q)``.
    """
    row = Row.concrete(num_classes)
    w = weight(sp.exp(row.target() - row.lse()))  # p_y = exp(z_y − lse), linear in K
    return kn.ClosedForm(
        RECIPE, num_classes, w * uniform.loss(row), [w * uniform.grad(row, j) for j in row.keys],
        {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps, "alpha": alpha},
        extra={"weight": w},
        shared=row.shared())


def theorems() -> list[Theorem]:
    a = sp.Symbol("alpha", positive=True)
    P = sp.Symbol("p", positive=True)
    A = r"\alpha > 0,\ 0 < p_y \le 1"
    w0 = lambda p: weight(p, a, 0)
    threshold = sp.exp(-1 / a)

    # In log coordinates p = exp(x) (exp is a strictly increasing bijection R → (0, ∞))
    # the weight is affine in x and solveset decides the inequality exactly.
    x = sp.Symbol("x", real=True)

    def log_coordinates(w_of_x):
        return [zero(w_of_x - (1 + a * x), "w = 1 + alpha x"),
                holds(sp.Eq(sp.solveset(1 + a * x < 0, x, sp.S.Reals), sp.Interval.open(-sp.oo, -1 / a)),
                      "solveset: x < -1/alpha"),
                holds(sp.diff(sp.exp(x), x) > 0, "exp increasing")]

    def region():
        return log_coordinates(w0(sp.exp(x))) + [holds(-1 / a < 0, "exp(-1/alpha) < exp(0) = 1")]

    def floor_threshold():
        p0 = threshold - FLOOR
        return log_coordinates(weight(sp.exp(x) - FLOOR, a)) + [zero(weight(p0, a), "w(p0) = 0")]

    def ascends():
        row = Row.split()
        w = sp.Symbol("w", real=True)
        eta = sp.Symbol("eta", real=True)
        g = lambda j: uniform.grad(row, j)
        L = uniform.loss(row)
        moved = row.at(L, "z", lambda j: row.v("z", j) - eta * w * g(j))
        rate = sp.diff(moved, eta).subs(eta, 0)
        wn, G = sp.Symbol("w", negative=True), sp.Symbol("G", positive=True)
        return [zero(rate + w * row.sum(lambda j: g(j) ** 2), "dL/deta = -w |grad|^2"),
                holds(-wn * G > 0, "> 0 when w < 0 and grad != 0")]

    return [
        Theorem(RECIPE, "negative_weight_region",
                r"\{p \in (0,1] : 1 + \alpha\log p < 0\} = (0, e^{-1/\alpha})", region, A),
        Theorem(RECIPE, "weight_threshold", r"w(e^{-1/\alpha}) = 0 \ (\text{no floor})",
                lambda: [zero(w0(threshold))], A),
        Theorem(RECIPE, "weight_monotone", r"\frac{dw}{dp_y} = \frac{\alpha}{p_y + 10^{-10}} > 0",
                lambda: [zero(sp.diff(weight(P, a), P) - a / (P + FLOOR)), holds(a / (P + FLOOR) > 0)], A),
        Theorem(RECIPE, "published_floor_threshold",
                r"1 + \alpha\log(p_y + 10^{-10}) < 0 \iff p_y < e^{-1/\alpha} - 10^{-10}",
                floor_threshold, r"\alpha > 0,\ 0 \le p_y \le 1"),
        Theorem(RECIPE, "alpha_0_1_threshold", r"\alpha = 0.1:\ 4.5\cdot10^{-5} < e^{-10} < 4.6\cdot10^{-5}",
                lambda: [holds(sp.exp(-10) > sp.Rational(45, 10**6)), holds(sp.exp(-10) < sp.Rational(46, 10**6)),
                         zero(threshold.subs(a, sp.Rational(1, 10)) - sp.exp(-10))], r"\alpha = 1/10",
                finding=True, note="below p_y ≈ 4.5e-5 the published weight is negative"),
        Theorem(RECIPE, "weight_at_most_one", r"w \le 1 \text{ for } 0 < p_y \le 1",
                lambda: [holds(1 - w0(1 / (1 + sp.Symbol("v", nonnegative=True))) >= 0)],
                r"\alpha > 0,\ p_y = 1/(1+v),\ v \ge 0"),
        Theorem(RECIPE, "negative_weight_ascends",
                r"\tfrac{d}{d\eta} L(z - \eta\, w \nabla L)\big|_{\eta=0} = -w\|\nabla L\|^2 > 0 \text{ if } w < 0",
                ascends, r"K \in \mathbb{Z},\ K \ge 2,\ L = L_{\mathrm{uniform}}",
                finding=True, note="a negative weight turns the step into gradient ascent on the label's loss"),
    ]
