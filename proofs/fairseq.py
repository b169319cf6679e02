r"""Proofs for ``fairseq`` (v0.12.0 on): ``(1 − ε − ε/(K−1))·nll + ε/(K−1)·smooth``.

For symbolic K (see :mod:`proofs.kernel`), ``nll = −log p_y``, ``smooth = −Σ_j log p_j``:

* ``implied_target``: the coefficients of ``−log p_j`` are ``off_target``'s ``q_y = 1−ε``, ``q_j = ε/(K−1)``;
* ``target_mass``: ``Σ_j q_j = 1``;
* ``equals_off_target``: the loss and gradient are ``off_target``'s at the same ε;
* ``equals_uniform``: and ``uniform``'s at ``ε' = εK/(K−1)`` (target, loss, gradient);
* ``pad_token_mass`` (finding): ``smooth`` sums over the whole dictionary, so ``<pad>`` (and ``<s>``,
  ``</s>``, ``<unk>``) get ``ε/(K−1)`` each although rows labelled ``<pad>`` are dropped;
* ``optimal_logit_gap``: ``log((1−ε)(K−1)/ε)``;
* ``minimum_loss``: ``L(z*) = H(q)``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import off_target, uniform
from proofs.fairseq_v0_10 import implied_target_claims
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "fairseq"

q = off_target.q
grad = off_target.grad


def literal(row: Row, e=eps):
    """``(1 − ε − eps_i)·nll + eps_i·smooth``, ``eps_i = ε/(K−1)``, as the criterion writes it."""
    eps_i = e / (row.K - 1)
    return (1 - e - eps_i) * (-row.log_p(row.label)) + eps_i * row.sum(lambda j: -row.log_p(j))


def loss(row: Row, e=eps):
    return off_target.loss(row, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    A = r"K \in \mathbb{Z},\ K \ge 2"
    eps_u = eps * K / (K - 1)
    e = uniform.positive_eps_interval(open_right=False)
    return [
        Theorem(RECIPE, "implied_target",
                r"-\partial L/\partial \log p_j = (1-\varepsilon)\,\mathbf{1}_{j=y} + \tfrac{\varepsilon}{K-1}\mathbf{1}_{j\ne y}",
                lambda: implied_target_claims(row, (1 - eps - eps / (K - 1), eps / (K - 1)), qf), A),
        Theorem(RECIPE, "target_mass", r"\sum_j q_j = 1", lambda: [zero(row.sum(qf) - 1)], A),
        Theorem(RECIPE, "equals_off_target", r"\mathrm{fairseq}_\varepsilon \equiv \mathrm{off\_target}_\varepsilon",
                lambda: [zero(literal(row) - off_target.loss(row), "loss"), zero(L_def() - literal(row), "CE of q")]
                + kn.gradient_claims(row, literal(row), lambda j: off_target.grad(row, j)), A),
        Theorem(RECIPE, "equals_uniform", r"\mathrm{fairseq}_\varepsilon \equiv \mathrm{uniform}_{\varepsilon K/(K-1)}",
                lambda: [zero(literal(row) - uniform.loss(row, eps_u), "loss")]
                + kn.gradient_claims(row, literal(row), lambda j: uniform.grad(row, j, eps_u)), A,
                note="ε' = εK/(K−1) ≤ 1 requires ε ≤ (K−1)/K"),
        Theorem(RECIPE, "pad_token_mass", r"q_{\mathrm{pad}} = \tfrac{\varepsilon}{K-1} > 0",
                lambda: [zero(qf("k") - eps / (K - 1)), holds(e / (kn.n_extra + 1) > 0, "K = n + 2")],
                A + r",\ 0 < \varepsilon \le 1", finding=True,
                note="k stands for any non-label token, <pad> included: rows labelled <pad> are dropped, "
                     "the <pad> column is still smoothed onto"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\frac{(1-\varepsilon)(K-1)}{\varepsilon}",
                lambda: uniform.gap_claims(row, qf, L_def(), sp.log((1 - eps) * (K - 1) / eps)),
                A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_loss", r"L(z^*) = H(q)",
                lambda: [zero(row.at(loss(row), "z", lambda j: sp.log(qf(j))) - kn.entropy(row, qf))],
                A + r",\ 0 < \varepsilon < 1"),
    ]
