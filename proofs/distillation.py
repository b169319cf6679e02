r"""Proofs for ``distillation``: ``L = T²·KL(softmax(t/T) ‖ softmax(s/T))`` (Hinton et al. 2015).

The row (student logits ``s``, teacher logits ``t``) is split into one generic
class ``k`` and the ``K − 1`` others; ``p = softmax(s/T)``, ``q = softmax(t/T)``.
For symbolic K (see :mod:`proofs.kernel`):

* ``target_mass``: ``Σ_j q_j = 1``;
* ``closed_form``: ``T²·KL = T²·(Σ_j q_j (t_j − s_j)/T − lse(t/T) + lse(s/T))``;
* ``student_gradient``: ``∂L/∂s_j = T·(p_j − q_j)`` (per example, before the batch division);
* ``teacher_gradient``: ``∂L/∂t_j = T·q_j·(log q_j − log p_j − KL)``;
* ``student_gradient_row_sum``: ``Σ_j ∂L/∂s_j = 0``;
* ``zero_at_teacher``: ``s = t + c`` gives ``L = 0`` and a zero gradient;
* ``high_temperature_gradient``: ``T·(p_j − q_j) → (s_j − t_j)/K − (S_s − S_t)/K²`` as ``T → ∞``;
* ``high_temperature_zero_mean``: for zero-mean logits the limit is ``(s_j − t_j)/K``
  (Hinton et al.: distillation at high T matches logits);
* ``high_temperature_loss``: ``T²·KL → (1/2K)·Σ_j (d_j − d̄)²`` with ``d = s − t``;
* ``tutorial_log_softmax_underflow`` (finding): the tutorials' ``log(softmax(s/T))`` is
  exactly ``s/T − lse(s/T)``, but at ``K = 2``, ``s/T = (0, −800)`` the probability
  ``e⁻⁸⁰⁰/(1 + e⁻⁸⁰⁰)`` is below half the smallest float64 subnormal (``2⁻¹⁰⁷⁵``), so it
  rounds to 0 and its log is ``−∞`` while ``log_softmax`` is about ``−800``;
* ``phi_series_bound``: the code's short series for ``φ(b) = e^{−b} − 1 + b`` at ``|b| ≤ 1/2`` is
  the degree-8 Taylor polynomial ``P8(b) = Σ_{n=2}^{8} (−b)^n/n!`` and
  ``|φ(b) − P8(b)| ≤ ρ·φ(b)`` with ``ρ = 2e·2⁻⁷/9! < 2⁻²³`` (Lagrange remainders:
  ``|φ − P8| ≤ e^{1/2}|b|⁹/9!`` and ``φ(b) ≥ e^{−1/2} b²/2``), so the series stays within
  float32's unit roundoff of φ.

The limits are taken with ``u = 1/T → 0``: ``T·(p_j − q_j) = g(u)/u`` and
``T²·KL = f(u)/u²`` with ``f``, ``g`` analytic at ``u = 0`` (finite sums of
exponentials over denominators that tend to ``K``). By Taylor's theorem the
limit of ``f(u)/u^m`` is ``f⁽ᵐ⁾(0)/m!`` once ``f(0) = … = f⁽ᵐ⁻¹⁾(0) = 0``; the
checker proves each of these derivatives (taken under the finite sums).
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs.kernel import K, REST, Row, T, Theorem, c, holds, idx, u, zero

RECIPE = "distillation"
FAMILIES = {"s": {"real": True}, "t": {"real": True}}


def p(row: Row, j, temp=T):
    return row.p(j, "s", 1 / temp)


def q(row: Row, j, temp=T):
    return row.p(j, "t", 1 / temp)


def kl(row: Row, temp=T):
    """The definition ``Σ_j q_j (log q_j − log p_j)``."""
    return row.sum(lambda j: q(row, j, temp) * (row.log_p(j, "t", 1 / temp) - row.log_p(j, "s", 1 / temp)))


def loss(row: Row, temp=T):
    """The closed form ``T²·(Σ_j q_j (t_j − s_j)/T − lse(t/T) + lse(s/T))``.

    Built as ``Σ_j exp(t_j/T)·(t_j − s_j) / (T·Σ_j exp(t_j/T))`` so that its size is linear in K.
    """
    inner = row.sum(lambda j: sp.exp(row.v("t", j) / temp) * (row.v("t", j) - row.v("s", j))) / (
        temp * row.E("t", 1 / temp))
    return temp**2 * (inner - row.lse("t", 1 / temp) + row.lse("s", 1 / temp))


def grad(row: Row, j, temp=T):
    """``∂L/∂s_j = T·(p_j − q_j)``."""
    return temp * (p(row, j, temp) - q(row, j, temp))


def teacher_grad(row: Row, j, temp=T, kl_value=None):
    """``∂L/∂t_j = T·q_j·(log q_j − log p_j − KL)`` (``kl_value``: KL if already built)."""
    kl_value = kl(row, temp) if kl_value is None else kl_value
    return temp * q(row, j, temp) * (row.log_p(j, "t", 1 / temp) - row.log_p(j, "s", 1 / temp) - kl_value)


def closed_form(num_classes: int) -> kn.ClosedForm:
    """Inputs ``logits`` (student), ``teacher``, ``temperature``."""
    row = Row.concrete(num_classes, FAMILIES, onehot=False)
    return kn.ClosedForm(
        RECIPE, num_classes, loss(row), [grad(row, j) for j in row.keys],
        {"logits": row.symbols("s"), "teacher": row.symbols("t"), "temperature": T},
        extra={"teacher_grad": [teacher_grad(row, j, T, loss(row) / T**2) for j in row.keys]},
        shared=row.shared())


def limit_claims(f, power: int, expected, label: str, given=None):
    """Claims that ``lim_{u→0} f(u)/u^power = expected`` for ``f`` analytic at ``u = 0``.

    By Taylor's theorem it suffices that ``f⁽ⁿ⁾(0) = 0`` for ``n < power`` and
    ``f⁽ᵖᵒʷᵉʳ⁾(0)/power! = expected``; the derivatives of the finite sums are
    taken under the sum.
    """
    claims = []
    d = f
    for order in range(power + 1):
        at0 = d.subs(u, 0)
        if order < power:
            claims.append(zero(at0, f"{label}: f^({order})(0) = 0"))
        else:
            claims.append(zero(at0 / sp.factorial(power) - expected, f"{label}: limit", given=given))
        d = sp.diff(d, u)
    return claims


PHI_SERIES_DEGREE = 8  #: the degree of the code's series for φ (lsbench.losses.recipes.distillation)
PHI_SERIES_RADIUS = sp.Rational(1, 2)  #: the series is taken for |b| ≤ 1/2 (float32, bfloat16)


def phi(b):
    """``φ(b) = e^{−b} − 1 + b`` (``KL = log1p(Σ_j q_j φ(b_j))`` in the code)."""
    return sp.exp(-b) - 1 + b


def phi_series(b, degree=PHI_SERIES_DEGREE):
    """``P8(b) = Σ_{n=2}^{degree} (−b)^n/n!``: the Taylor polynomial of φ at 0."""
    return sp.Add(*[(-b) ** n / sp.factorial(n) for n in range(2, degree + 1)])


def phi_series_ratio(radius=PHI_SERIES_RADIUS, degree=PHI_SERIES_DEGREE):
    """``ρ = 2e·r^{degree−1}/(degree+1)!``: ``|φ − P|/φ ≤ ρ`` on ``|b| ≤ r`` (see ``phi_series_claims``)."""
    return 2 * sp.exp(2 * radius) * radius ** (degree - 1) / sp.factorial(degree + 1)


def phi_series_claims() -> list:
    r"""``|φ(b) − P8(b)| ≤ ρ φ(b)`` for ``|b| ≤ r = 1/2``.

    Taylor's theorem with Lagrange remainder, about 0, for ``f(b) = e^{−b}``:
    ``φ(b) = f''(ξ) b²/2`` and ``φ(b) − P8(b) = f⁽⁹⁾(ξ') b⁹/9!`` for some ``ξ, ξ'`` between 0 and b.
    The checker proves ``φ(0) = φ'(0) = 0``, ``φ'' = e^{−b}``, that ``P8`` is φ's Taylor
    polynomial (``(φ − P8)⁽ⁿ⁾(0) = 0`` for ``n ≤ 8``), ``(φ − P8)⁽⁹⁾ = −e^{−b}``; then
    ``e^{−ξ} ≥ e^{−r}`` and ``|e^{−ξ'}| ≤ e^{r}`` on ``|ξ| ≤ r`` give
    ``|φ − P8|/φ ≤ e^{r}|b|⁹/9! / (e^{−r} b²/2) = 2e^{2r}|b|⁷/9! ≤ ρ``; finally ``ρ < 2⁻²³``
    exactly (e as ``sympy.E``, rationals exact).
    """
    b = sp.Symbol("b", real=True)
    r = PHI_SERIES_RADIUS
    rest = phi(b) - phi_series(b)
    rho = phi_series_ratio()
    horner = (lambda x: x * x * (sp.Rational(1, 2) + x * (sp.Rational(1, 6) + x * (sp.Rational(1, 24) + x * (
        sp.Rational(1, 120) + x * (sp.Rational(1, 720) + x * (sp.Rational(1, 5040) + x / 40320)))))))(-b)
    d = rest
    taylor = []
    for n in range(PHI_SERIES_DEGREE + 1):
        taylor.append(zero(d.subs(b, 0), f"(phi - P8)^({n})(0) = 0"))
        d = sp.diff(d, b)
    return [
        zero(phi(b).subs(b, 0), "phi(0) = 0"),
        zero(sp.diff(phi(b), b).subs(b, 0), "phi'(0) = 0"),
        zero(sp.diff(phi(b), b, 2) - sp.exp(-b), "phi'' = e^-b (so phi = e^-xi b^2/2)"),
        zero(sp.expand(horner - phi_series(b)), "the code's Horner form is P8"),
        *taylor,
        zero(d + sp.exp(-b), "(phi - P8)^(9) = -e^-b (so |phi - P8| <= e^r |b|^9/9!)"),
        zero(sp.exp(r) / sp.factorial(9) / (sp.exp(-r) / 2) * r**7 - rho, "ratio of the bounds at |b| = r is rho"),
        holds(rho < sp.Rational(1, 2**23), "rho = 2e 2^-7/9! < 2^-23"),
    ]


def theorems() -> list[Theorem]:
    row = Row.split(FAMILIES, keys=("k",), label=None)
    A = r"K \in \mathbb{Z},\ K \ge 2,\ T > 0"
    L_def = lambda: T**2 * kl(row)
    S_s, S_t = row.S("s"), row.S("t")
    zero_mean = {sp.Sum(row.v("s", REST), (idx, 1, row.rest_count)): -row.v("s", "k"),
                 sp.Sum(row.v("t", REST), (idx, 1, row.rest_count)): -row.v("t", "k")}

    def at_u(expr):
        return expr.xreplace({T: 1 / u})

    # T·(p_k − q_k) = g(u)/u and T²·KL = f(u)/u² with u = 1/T.
    g = lambda: at_u(grad(row, "k") / T)
    f = lambda: at_u(loss(row) / T**2)

    def hot_gradient():
        expected = (row.v("s", "k") - row.v("t", "k")) / K - (S_s - S_t) / K**2
        return limit_claims(g(), 1, expected, "T(p-q)")

    def hot_zero_mean():
        return limit_claims(g(), 1, (row.v("s", "k") - row.v("t", "k")) / K, "T(p-q)", given=zero_mean)

    def hot_loss():
        d = lambda j: row.v("s", j) - row.v("t", j)
        dbar = (S_s - S_t) / K
        return (limit_claims(f(), 2, row.sum(lambda j: (d(j) - dbar) ** 2) / (2 * K), "T^2 KL")
                + limit_claims(f(), 2, row.sum(lambda j: d(j) ** 2) / (2 * K), "T^2 KL, zero mean",
                               given=zero_mean)[-1:])

    def zero_at_teacher():
        at_t = lambda expr: row.at(expr, "s", lambda j: row.v("t", j) + c)
        return [zero(at_t(L_def()), "L = 0"), zero(at_t(grad(row, "k")), "grad = 0")]

    def underflow():
        exact = [zero(sp.expand_log(sp.log(p(row, j)), force=False) - row.log_p(j, "s", 1 / T), f"log p_{j}")
                 for j in row.keys]
        w = Row.concrete(2, FAMILIES, onehot=False)
        at = {w.v("s", 0): 0, w.v("s", 1): -800}
        p1 = w.p(1, "s", 1).xreplace(at)
        return exact + [holds(p1 < sp.Rational(1, 2**1075), "p_1 < 2^-1075: rounds to 0 in float64"),
                        holds(w.log_p(1, "s", 1).xreplace(at) > -801, "log_softmax is finite")]

    return [
        Theorem(RECIPE, "target_mass", r"\sum_j \mathrm{softmax}(t/T)_j = 1",
                lambda: [zero(row.sum(lambda j: q(row, j)) - 1)], A),
        Theorem(RECIPE, "closed_form",
                r"T^2\,\mathrm{KL}(q\|p) = T^2\Big(\sum_j q_j\tfrac{t_j - s_j}{T} - \mathrm{lse}(t/T) + \mathrm{lse}(s/T)\Big)",
                lambda: [zero(L_def() - loss(row))], A),
        Theorem(RECIPE, "student_gradient", r"\partial L/\partial s_j = T\,(p_j - q_j)",
                lambda: kn.gradient_claims(row, L_def(), lambda j: grad(row, j), fam="s"), A),
        Theorem(RECIPE, "teacher_gradient",
                r"\partial L/\partial t_j = T\,q_j\,(\log q_j - \log p_j - \mathrm{KL})",
                lambda: kn.gradient_claims(row, L_def(), lambda j: teacher_grad(row, j), fam="t"), A),
        Theorem(RECIPE, "student_gradient_row_sum", r"\sum_j \partial L/\partial s_j = 0",
                lambda: [zero(row.sum(lambda j: grad(row, j)))], A),
        Theorem(RECIPE, "zero_at_teacher", r"s = t + c\mathbf{1}:\ L = 0,\ \partial L/\partial s = 0",
                zero_at_teacher, A),
        Theorem(RECIPE, "high_temperature_gradient",
                r"\lim_{T\to\infty} T(p_j - q_j) = \tfrac{s_j - t_j}{K} - \tfrac{S_s - S_t}{K^2}",
                hot_gradient, r"K \in \mathbb{Z},\ K \ge 2"),
        Theorem(RECIPE, "high_temperature_zero_mean",
                r"\textstyle\sum s = \sum t = 0:\ \lim_{T\to\infty} T(p_j - q_j) = \tfrac{s_j - t_j}{K}",
                hot_zero_mean, r"K \in \mathbb{Z},\ K \ge 2"),
        Theorem(RECIPE, "high_temperature_loss",
                r"\lim_{T\to\infty} T^2\,\mathrm{KL} = \tfrac{1}{2K}\sum_j (d_j - \bar d)^2,\ d = s - t",
                hot_loss, r"K \in \mathbb{Z},\ K \ge 2"),
        Theorem(RECIPE, "tutorial_log_softmax_underflow",
                r"\log\mathrm{softmax}(s/T)_j = s_j/T - \mathrm{lse}(s/T);\ "
                r"\tfrac{e^{-800}}{1 + e^{-800}} < 2^{-1075}",
                underflow, A + r";\ \text{witness } K = 2,\ s/T = (0, -800)", finding=True,
                note="the tutorials' log(softmax(s/T)) underflows to -inf (float64 rounds e^-800 to 0) "
                     "where log_softmax is finite; lsbench computes the log-space form"),
        Theorem(RECIPE, "phi_series_bound",
                r"|b| \le \tfrac12:\ |\varphi(b) - P_8(b)| \le \rho\,\varphi(b),\ "
                r"\rho = \tfrac{2e\,2^{-7}}{9!} < 2^{-23},\ \varphi(b) = e^{-b} - 1 + b,\ "
                r"P_8(b) = \textstyle\sum_{n=2}^{8} (-b)^n/n!",
                phi_series_claims, r"b \in \mathbb{R},\ |b| \le \tfrac12"),
    ]
