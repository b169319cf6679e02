r"""Proofs for ``hf_label_smoother``: transformers' ``LabelSmoother`` over a logit width ``W``.

The published loss is ``(1−ε)·nll + ε·smoothed`` with ``smoothed`` the sum of
``−log p_j`` over the ``W`` columns divided by ``W``. For symbolic ``W`` (the
kernel's ``K``; see :mod:`proofs.kernel`):

* ``implied_target``: the loss is linear in ``ℓ_j = log p_j`` with coefficients ``q = (1−ε)·onehot(y) + ε/W``;
* ``target_mass``: ``Σ_j q_j = 1``;
* ``equals_uniform``: it is ``uniform`` at ``K = W``: same target, loss and gradient ``p − q``;
* ``padding_columns_mass`` (finding): with ``W = V + P`` (``P`` padding columns beyond a vocabulary
  of ``V``), the padding columns get ``εP/W`` of the target and each real class ``ε/W``, not ``ε/V``;
  the smoothing over the real vocabulary is ``uniform`` at ``ε·V/W`` only if the padding logits are −∞;
* ``optimal_logit_gap``: ``uniform``'s, ``log(1 + W(1−ε)/ε)``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "hf_label_smoother"

q = uniform.q
grad = uniform.grad


def literal(row: Row, e=eps):
    """``(1−ε)·(−log p_y) + ε·Σ_j(−log p_j)/W`` as the published code writes it."""
    return (1 - e) * (-row.log_p(row.label)) + e * row.sum(lambda j: -row.log_p(j)) / row.K


def loss(row: Row, e=eps):
    return uniform.loss(row, e)


def closed_form(num_classes: int) -> kn.ClosedForm:
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    A = r"W = K \in \mathbb{Z},\ K \ge 2"
    V, P = sp.Symbol("V", integer=True, positive=True), sp.Symbol("P", integer=True, positive=True)
    e = uniform.positive_eps_interval(open_right=False)

    def implied_target():
        ell = {j: sp.Symbol(f"ell_{j}", real=True) for j in ("y", "k")}
        lin = (1 - eps) * (-ell["y"]) + eps * (-(ell["y"] + ell["k"])) / K
        return [zero(-sp.diff(lin, ell[j]) - qf(j), f"coefficient of log p_{j}") for j in ("y", "k")]

    return [
        Theorem(RECIPE, "implied_target", r"-\partial L/\partial \log p_j = (1-\varepsilon)\,\mathbf{1}_{j=y} + \varepsilon/W",
                implied_target, A),
        Theorem(RECIPE, "target_mass", r"\sum_j q_j = 1", lambda: [zero(row.sum(qf) - 1)], A),
        Theorem(RECIPE, "equals_uniform", r"\mathrm{hf\_label\_smoother}_\varepsilon(W) \equiv \mathrm{uniform}_\varepsilon(K = W)",
                lambda: [zero(literal(row) - uniform.loss(row), "loss"), zero(L_def() - literal(row), "CE of q")]
                + kn.gradient_claims(row, literal(row), lambda j: uniform.grad(row, j)), A),
        Theorem(RECIPE, "padding_columns_mass",
                r"W = V + P:\ \textstyle\sum_{\text{pad cols}} q = \tfrac{\varepsilon P}{W} > 0,\ "
                r"q_{j \ne y} = \tfrac{\varepsilon}{W} < \tfrac{\varepsilon}{V}",
                lambda: [zero(P * uniform.coefficients(V + P, eps)[1] - eps * P / (V + P), "padding mass"),
                         holds(e * P / (V + P) > 0, "> 0"),
                         holds(e / V - e / (V + P) > 0, "eps/W < eps/V")],
                r"V, P \in \mathbb{Z}_{>0},\ 0 < \varepsilon \le 1", finding=True,
                note="a model whose output layer is padded past its vocabulary smooths onto the padding columns"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\big(1 + \tfrac{W(1-\varepsilon)}{\varepsilon}\big)",
                lambda: uniform.gap_claims(row, qf, L_def(), sp.log(1 + K * (1 - eps) / eps)),
                A + r",\ 0 < \varepsilon < 1"),
    ]
