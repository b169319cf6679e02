r"""Proofs for ``fairseq_v0_10``: fairseq v0.4.0–v0.10.2, ``(1−ε)·nll + (ε/K)·smooth``.

For symbolic K (see :mod:`proofs.kernel`), ``nll = −log p_y``, ``smooth = −Σ_j log p_j``:

* ``implied_target``: the coefficients of ``−log p_j`` are ``uniform``'s target ``(1−ε)·onehot(y) + ε/K``;
* ``target_mass``: ``Σ_j q_j = 1``;
* ``equals_uniform``: the loss and gradient are ``uniform``'s at the same ε;
* ``label_mass`` (finding): the label gets ``1 − ε + ε/K``, not the ``1 − ε`` that ``--label-smoothing ε`` reads as;
* ``optimal_logit_gap``: ``log(1 + K(1−ε)/ε)``;
* ``later_version``: fairseq ≥ v0.12.0 at ε has the target of this form at ``ε' = εK/(K−1)``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import off_target, uniform
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "fairseq_v0_10"

q = uniform.q
grad = uniform.grad


def literal(row: Row, e=eps):
    """``(1−ε)·nll + (ε/K)·smooth`` as the criterion writes it."""
    return (1 - e) * (-row.log_p(row.label)) + e / row.K * row.sum(lambda j: -row.log_p(j))


def loss(row: Row, e=eps):
    return uniform.loss(row, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


def implied_target_claims(row: Row, lin_coefficients, qf):
    """``−∂L/∂ log p_j = q_j`` for a loss ``a·nll + b·smooth`` given as ``(a, b)``."""
    a, b = lin_coefficients
    ell = {j: sp.Symbol(f"ell_{j}", real=True) for j in ("y", "k")}
    lin = a * (-ell["y"]) + b * (-(ell["y"] + ell["k"]))
    return [zero(-sp.diff(lin, ell[j]) - qf(j), f"coefficient of log p_{j}") for j in ("y", "k")]


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    A = r"K \in \mathbb{Z},\ K \ge 2"
    e = uniform.positive_eps_interval(open_right=False)
    return [
        Theorem(RECIPE, "implied_target", r"-\partial L/\partial \log p_j = (1-\varepsilon)\,\mathbf{1}_{j=y} + \varepsilon/K",
                lambda: implied_target_claims(row, (1 - eps, eps / K), qf), A),
        Theorem(RECIPE, "target_mass", r"\sum_j q_j = 1", lambda: [zero(row.sum(qf) - 1)], A),
        Theorem(RECIPE, "equals_uniform", r"\mathrm{fairseq\_v0\_10}_\varepsilon \equiv \mathrm{uniform}_\varepsilon",
                lambda: [zero(literal(row) - uniform.loss(row), "loss"), zero(L_def() - literal(row), "CE of q")]
                + kn.gradient_claims(row, literal(row), lambda j: uniform.grad(row, j)), A),
        Theorem(RECIPE, "label_mass", r"q_y = 1 - \varepsilon + \varepsilon/K > 1 - \varepsilon",
                lambda: [zero(qf("y") - (1 - eps + eps / K)), holds(q(row, "y", e) - (1 - e) > 0)],
                A + r",\ 0 < \varepsilon \le 1", finding=True,
                note="fairseq ≥ 0.12 changed this to 1 − ε: the same flag is a different loss"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\big(1 + \tfrac{K(1-\varepsilon)}{\varepsilon}\big)",
                lambda: uniform.gap_claims(row, qf, L_def(), sp.log(1 + K * (1 - eps) / eps)),
                A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "later_version",
                r"\mathrm{fairseq}_\varepsilon \equiv \mathrm{fairseq\_v0\_10}_{\varepsilon K/(K-1)}",
                lambda: [zero(off_target.q(row, j) - q(row, j, eps * K / (K - 1)), f"q_{j}") for j in row.keys], A,
                note="ε' = εK/(K−1) ≤ 1 requires ε ≤ (K−1)/K"),
    ]
