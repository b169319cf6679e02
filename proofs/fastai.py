r"""Proofs for ``fastai``: ``L = ε·(1/K)·Σ_j(−log p_j) + (1−ε)·(−log p_y)``.

For symbolic K (see :mod:`proofs.kernel`):

* ``implied_target_mass``: the loss is linear in the log-probabilities ``ℓ_j = log p_j``; its
  coefficients ``q_j = −∂L/∂ℓ_j`` are the ``uniform`` target and sum to 1;
* ``closed_form``: the literal two-term mix equals ``ε(lse − S/K) + (1−ε)(lse − z_y)``;
* ``equals_uniform``: it is ``−Σ q log p`` with the ``uniform`` target (so fastai ≡ uniform);
* ``gradient``: ``∂L/∂z_j = p_j − q_j`` with the uniform ``q``;
* ``batch_mixing``: mixing the two batch means equals the mean of the per-example mix,
  for any batch size ``B`` (so fastai's reduction is the uniform mean);
* ``optimal_logit_gap``: the same optimum as ``uniform``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import K, Row, Theorem, eps, zero

RECIPE = "fastai"


def literal(row: Row, e=eps):
    """fastai's two terms as written: ``ε·mean_j(−log p_j) + (1−ε)·(−log p_y)``."""
    smooth = row.sum(lambda j: -row.log_p(j)) / row.K
    nll = row.lse() - row.target()
    return e * smooth + (1 - e) * nll


def loss(row: Row, e=eps):
    """The closed form ``ε(lse − S/K) + (1−ε)(lse − z_y)`` the JAX code computes."""
    return e * (row.lse() - row.S() / row.K) + (1 - e) * (row.lse() - row.target())


def grad(row: Row, j, e=eps):
    return row.p(j) - uniform.q(row, j, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


def theorems() -> list[Theorem]:
    row = Row.split()
    qf = lambda j: uniform.q(row, j)
    A = r"K \in \mathbb{Z},\ K \ge 2"

    def batch_mixing():
        B = sp.Symbol("B", integer=True, positive=True)
        m = sp.Symbol("m", integer=True, positive=True)
        smooth, nll = sp.IndexedBase("A", real=True), sp.IndexedBase("N", real=True)
        mean = lambda f: sp.Sum(f, (m, 1, B)) / B
        lhs = eps * mean(smooth[m]) + (1 - eps) * mean(nll[m])
        return [zero(lhs - mean(eps * smooth[m] + (1 - eps) * nll[m]))]

    def implied_target():
        lrow = Row.split({"l": {"real": True}})  # ℓ_j = log p_j as free variables
        L = eps * lrow.sum(lambda j: -lrow.v("l", j)) / K + (1 - eps) * (-lrow.v("l", "y"))
        q = lambda j: -sp.diff(L, lrow.v("l", j)) if j != kn.REST else -sp.diff(L, lrow.v("l", "k"))
        return ([zero(q(j) - uniform.q(lrow, j), f"q_{j} = uniform") for j in lrow.keys]
                + [zero(lrow.sum(q) - 1, "sum q = 1"),
                   zero(L + lrow.sum(lambda j: q(j) * lrow.v("l", j)), "L = -sum q l")])

    return [
        Theorem(RECIPE, "implied_target_mass",
                r"q_j := -\partial L/\partial \log p_j = \tfrac{\varepsilon}{K} + (1-\varepsilon)[j{=}y],\ \sum_j q_j = 1",
                implied_target, A),
        Theorem(RECIPE, "closed_form",
                r"\varepsilon\tfrac{1}{K}\sum_j(-\log p_j) + (1-\varepsilon)(-\log p_y) = "
                r"\varepsilon(\mathrm{lse} - S/K) + (1-\varepsilon)(\mathrm{lse} - z_y)",
                lambda: [zero(literal(row) - loss(row))], A),
        Theorem(RECIPE, "equals_uniform",
                r"L_{\mathrm{fastai}} = -\sum_j q^{\mathrm{unif}}_j \log p_j = L_{\mathrm{uniform}}",
                lambda: [zero(literal(row) - kn.cross_entropy(row, qf), "= CE(q_uniform)"),
                         zero(literal(row) - uniform.loss(row), "= uniform closed form")], A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = p_j - q^{\mathrm{unif}}_j",
                lambda: kn.gradient_claims(row, literal(row), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "batch_mixing",
                r"\varepsilon\,\overline{A} + (1-\varepsilon)\,\overline{N} = \overline{\varepsilon A + (1-\varepsilon) N}"
                r"\ \text{for every batch size } B",
                batch_mixing, r"B \in \mathbb{Z},\ B \ge 1"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\big(1 + \tfrac{K(1-\varepsilon)}{\varepsilon}\big)",
                lambda: uniform.gap_claims(row, qf, literal(row), sp.log(1 + K * (1 - eps) / eps)),
                A + r",\ 0 < \varepsilon < 1"),
    ]
