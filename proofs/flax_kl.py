r"""Proofs for ``flax_kl``: the Flax WMT / T5X loss, ``CE(q, p) − H̃(q)`` with ``off_target``'s ``q``.

``H̃(q) = −(1−ε)·log(1−ε) − ε·log(ε/(K−1) + γ)`` with the published guard
``γ = 10⁻²⁰`` kept as a positive symbol. For symbolic K (see :mod:`proofs.kernel`):

* ``target_mass``: ``Σ_j q_j = 1``;
* ``closed_form``: ``−Σ q log p − H̃(q) = lse − (1−ε) z_y − ε/(K−1)(S − z_y) + (1−ε)log(1−ε) + ε log(ε/(K−1) + γ)``;
* ``kl_up_to_guard``: ``L = KL(q‖p) + ε·log(1 + γ(K−1)/ε)`` for ``0 < ε < 1``;
* ``gradient``: ``∂L/∂z_j = p_j − q_j`` (the constant changes the value only);
* ``same_gradient_as_uniform``: the gradient is ``uniform``'s at ``ε' = εK/(K−1)`` (and ``off_target``'s at ε);
* ``optimal_logit_gap``: ``∇L = 0 ⇔ z_y − z_j = log((1−ε)(K−1)/ε)``;
* ``minimum_value``: ``L(z*) = ε·log(1 + γ(K−1)/ε)``, the guard's offset (``> 0``, ≈ 3·10⁻¹⁶ at ε = 0.1, K = 32000);
* ``epsilon_zero``: at ε = 0 the guard makes the constant 0 and ``L = lse − z_y``;
* ``epsilon_one`` (finding): at ε = 1 the published ``(1−ε)·log(1−ε)`` is ``0·log 0``, undefined
  (NaN in floating point); its limit is 0, the value lsbench uses (``xlogy``).
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import off_target, uniform
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "flax_kl"
GUARD = sp.Symbol("gamma", positive=True)  #: the published 1e-20
GUARD_VALUE = sp.Float("1e-20")

q = off_target.q


def constant(num_classes=K, e=eps, g=GUARD):
    """The published ``normalizing_constant`` ``H̃ = −((1−ε)·log(1−ε) + ε·log(ε/(K−1) + γ))``."""
    return -((1 - e) * sp.log(1 - e) + e * sp.log(e / (num_classes - 1) + g))


def loss(row: Row, e=eps, g=GUARD):
    """The closed form: ``off_target``'s cross-entropy minus :func:`constant`."""
    return off_target.loss(row, e) - constant(row.K, e, g)


def grad(row: Row, j, e=eps):
    return off_target.grad(row, j, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, lambda row: loss(row, eps, GUARD_VALUE), grad)


def guard_offset(e=eps, num_classes=K, g=GUARD):
    """``ε·log(1 + γ(K−1)/ε)``: how far the guarded constant is from ``H(q)``."""
    return e * sp.log(1 + g * (num_classes - 1) / e)


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    A = r"K \in \mathbb{Z},\ K \ge 2,\ \gamma > 0"
    inner = r",\ 0 < \varepsilon < 1"
    eps_u = eps * K / (K - 1)

    def kl_up_to_guard():
        e = uniform.positive_eps_interval(open_right=True)
        qe = lambda j: q(row, j, e)
        kl = row.sum(lambda j: qe(j) * (sp.log(qe(j)) - row.log_p(j)))
        return [zero(sp.expand_log(loss(row, e) - kl - guard_offset(e), force=True), "L - KL - offset")]

    def minimum_value():
        e = uniform.positive_eps_interval(open_right=True)
        zstar = lambda j: sp.log(q(row, j, e))
        return [zero(sp.expand_log(row.at(loss(row, e), "z", zstar) - guard_offset(e), force=True), "L(z*)"),
                holds(guard_offset(e) > 0, "offset > 0")]

    def epsilon_one():
        e = sp.Symbol("e", positive=True)
        return [holds(sp.sympify((sp.Integer(0) * sp.log(sp.Integer(0))) is sp.nan), "0 log 0 is undefined (nan)"),
                zero(sp.limit((1 - (1 - e)) * sp.log(1 - (1 - e)), e, 0, "+"), "lim_{eps->1-} (1-eps) log(1-eps) = 0")]

    return [
        Theorem(RECIPE, "target_mass", r"\sum_j q_j = 1", lambda: [zero(row.sum(qf) - 1)], A),
        Theorem(RECIPE, "closed_form",
                r"-\sum_j q_j\log p_j - \tilde H(q) = \mathrm{lse} - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K-1}(S - z_y)"
                r" + (1-\varepsilon)\log(1-\varepsilon) + \varepsilon\log\big(\tfrac{\varepsilon}{K-1} + \gamma\big)",
                lambda: [zero(L_def() - constant() - loss(row))], A),
        Theorem(RECIPE, "kl_up_to_guard",
                r"L = \mathrm{KL}(q\,\|\,p) + \varepsilon\log\big(1 + \tfrac{\gamma(K-1)}{\varepsilon}\big)",
                kl_up_to_guard, A + inner),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = p_j - q_j",
                lambda: kn.gradient_claims(row, loss(row), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "same_gradient_as_uniform",
                r"\nabla L^{\mathrm{flax\_kl}}_\varepsilon = \nabla L^{\mathrm{uniform}}_{\varepsilon K/(K-1)}"
                r" = \nabla L^{\mathrm{off\_target}}_\varepsilon",
                lambda: kn.gradient_claims(row, loss(row), lambda j: uniform.grad(row, j, eps_u))
                + kn.gradient_claims(row, loss(row), lambda j: sp.diff(off_target.loss(row), row.v("z", j))), A,
                note="the values differ by the constant H̃(q); ε' = εK/(K−1) ≤ 1 requires ε ≤ (K−1)/K"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\frac{(1-\varepsilon)(K-1)}{\varepsilon}",
                lambda: uniform.gap_claims(row, qf, loss(row), sp.log((1 - eps) * (K - 1) / eps)), A + inner),
        Theorem(RECIPE, "minimum_value",
                r"L(z^*) = \varepsilon\log\big(1 + \tfrac{\gamma(K-1)}{\varepsilon}\big) > 0",
                minimum_value, A + inner, note="γ = 1e-20: about 3e-16 at ε = 0.1, K = 32000; without the guard 0"),
        Theorem(RECIPE, "epsilon_zero", r"\varepsilon = 0:\ L = \mathrm{lse}(z) - z_y",
                lambda: [zero(loss(row, 0) - (row.lse() - row.v("z", "y")))], A),
        Theorem(RECIPE, "epsilon_one",
                r"\varepsilon = 1:\ (1-\varepsilon)\log(1-\varepsilon) = 0\cdot\log 0 \text{ undefined};\ "
                r"\lim_{\varepsilon\to 1^-} (1-\varepsilon)\log(1-\varepsilon) = 0",
                epsilon_one, A, finding=True,
                note="the published code computes 0·log 0 = NaN at ε = 1; lsbench takes the limit 0 (xlogy)"),
    ]
