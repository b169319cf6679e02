r"""Proofs for ``off_target``: ``q_y = 1 − ε``, ``q_j = ε/(K−1)`` for ``j ≠ y``.

For symbolic K (see :mod:`proofs.kernel`):

* ``target_mass``: ``Σ_j q_j = 1``;
* ``closed_form``: ``−Σ q log p = lse − (1−ε)·z_y − ε/(K−1)·(S − z_y)``;
* ``gradient``: ``∂L/∂z_j = (Σq)·p_j − q_j = p_j − q_j``;
* ``gradient_row_sum``: each row's gradient sums to 0;
* ``equals_uniform``: ``off_target(ε) ≡ uniform(ε·K/(K−1))`` (targets, hence losses and gradients);
* ``optimal_logit_gap``: ``∇L = 0`` exactly when ``z_y − z_j = log((1−ε)(K−1)/ε)``;
* ``minimum_loss``: the minimum is ``H(q)``;
* ``minimum_positive``: ``H(q) > 0`` for ``0 < ε < 1``. (At ``ε = 1`` with ``K = 2``
  the target is the one-hot of the other class and the infimum is 0.)
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "off_target"


def q(row: Row, j, e=eps):
    o = row.onehot(j)
    return o * (1 - e) + (1 - o) * e / (row.K - 1)


def loss(row: Row, e=eps):
    """The closed form ``lse − (1−ε)·z_y − ε/(K−1)·(S − z_y)``."""
    zy = row.target()
    return row.lse() - (1 - e) * zy - e / (row.K - 1) * (row.S() - zy)


def grad(row: Row, j, e=eps):
    return row.p(j) - q(row, j, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    A = r"K \in \mathbb{Z},\ K \ge 2"
    eps_u = eps * K / (K - 1)

    def minimum_positive():
        e = uniform.positive_eps_interval(open_right=True)  # ε ∈ (0, 1)
        qy, qk = q(row, "y", e), q(row, "k", e)
        return [
            holds(qy > 0, "q_y > 0"), holds(qy < 1, "q_y < 1"),
            holds(qk > 0, "q_k > 0"), holds(qk < 1, "q_k < 1"),
            zero(kn.entropy(row, qf) - (-qf("y") * sp.log(qf("y")) - (K - 1) * qf("k") * sp.log(qf("k"))), "H split"),
            *kn.neg_xlogx_claims(),
        ]

    return [
        *kn.mass_and_closed_form(
            RECIPE, row, qf, L_def, lambda: loss(row),
            r"-\sum_j q_j \log p_j = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K-1}(S - z_y)", A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = (\textstyle\sum q)\,p_j - q_j = p_j - q_j",
                lambda: kn.gradient_claims(row, L_def(), lambda j: row.sum(qf) * row.p(j) - qf(j))
                + kn.gradient_claims(row, L_def(), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "gradient_row_sum", r"\sum_j \partial L/\partial z_j = 0",
                lambda: [zero(row.sum(lambda j: grad(row, j)))], A),
        Theorem(RECIPE, "equals_uniform",
                r"\mathrm{off\_target}(\varepsilon) \equiv \mathrm{uniform}\big(\tfrac{\varepsilon K}{K-1}\big)",
                lambda: [zero(qf(j) - uniform.q(row, j, eps_u), f"q_{j}") for j in row.keys]
                + [zero(loss(row) - uniform.loss(row, eps_u), "loss")],
                A, note="ε' = εK/(K−1) ≤ 1 requires ε ≤ (K−1)/K"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\frac{(1-\varepsilon)(K-1)}{\varepsilon}",
                lambda: uniform.gap_claims(row, qf, L_def(), sp.log((1 - eps) * (K - 1) / eps)),
                A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_loss", r"L(z^*) = H(q)",
                lambda: [zero(row.at(loss(row), "z", lambda j: sp.log(qf(j))) - kn.entropy(row, qf))],
                A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_positive", r"\min_z L = H(q) > 0 \text{ for } 0 < \varepsilon < 1",
                minimum_positive, A + r",\ 0 < \varepsilon < 1",
                note="at ε = 1 and K = 2 the target is one-hot on the other class: infimum 0"),
    ]
