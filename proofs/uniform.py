r"""Proofs for ``uniform``: ``q = (1 − ε)·onehot(y) + ε/K`` (Szegedy et al. 2016, §7).

Derived for symbolic K on a row split into the target ``y``, a generic other
class ``k`` and the ``K − 2`` remaining classes (see :mod:`proofs.kernel`):

* ``target_mass``: ``Σ_j q_j = 1``;
* ``closed_form``: ``−Σ_j q_j log p_j = lse − (1−ε)·z_y − (ε/K)·S``;
* ``gradient``: ``∂L/∂z_j = (Σq)·p_j − q_j = p_j − q_j``;
* ``gradient_row_sum``: each row's gradient sums to 0;
* ``shift_invariance``: ``L(z + c) = L(z)`` (the row maximum the code subtracts cancels);
* ``optimal_logit_gap``: ``∇L = 0`` exactly when ``z_y − z_j = log(q_y/q_j) = log(1 + K(1−ε)/ε)``;
* ``minimum_loss``: at that point ``L = H(q)``;
* ``minimum_is_global``: ``L(z) = H(q) + KL(q‖p) ≥ H(q)`` (Gibbs);
* ``minimum_positive``: ``H(q) > 0`` for ``0 < ε ≤ 1`` -- the loss never reaches 0;
* ``epsilon_zero``: at ε = 0 it is plain cross-entropy ``lse − z_y``.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "uniform"


def coefficients(num_classes=K, e=eps):
    """``(a, b)`` with ``q = a·onehot(y) + b``."""
    return 1 - e, e / num_classes


def q(row: Row, j, e=eps):
    a, b = coefficients(row.K, e)
    return a * row.onehot(j) + b


def loss(row: Row, e=eps):
    """The closed form ``lse − (1−ε)·z_y − (ε/K)·S`` (what the JAX fast path computes)."""
    return row.lse() - (1 - e) * row.target() - e / row.K * row.S()


def grad(row: Row, j, e=eps):
    """The proven gradient ``p_j − q_j``."""
    return row.p(j) - q(row, j, e)


def optimum(row: Row, e=eps):
    """``z*_j = log q_j`` (any common shift is also optimal)."""
    return lambda j: sp.log(q(row, j, e))


def closed_form(num_classes: int) -> kn.ClosedForm:
    """Loss and gradient for a concrete K; inputs ``logits``, ``onehot``, ``epsilon``."""
    return kn.onehot_closed_form(RECIPE, num_classes, loss, grad)


# --------------------------------------------------------------------------
# reusable theorem builders for targets q = a·onehot(y) + b
# --------------------------------------------------------------------------


def positive_eps_interval(open_right: bool = True):
    """A parametrisation of ``ε ∈ (0, 1)`` (or ``(0, 1]``): ``ε = 1/(1 + e)``."""
    e = sp.Symbol("e", positive=True) if open_right else sp.Symbol("e", nonnegative=True)
    return 1 / (1 + e)


def gap_claims(row: Row, qf, loss_def, gap_value):
    """Stationarity at ``z* = log q`` and the gap ``log(q_y/q_k)`` for a fixed target ``qf``."""
    g = lambda j: sp.diff(loss_def, row.v("z", j))
    zstar = lambda j: sp.log(qf(j))
    claims = [
        zero(row.at(g(j), "z", zstar), f"grad_{j}(z*) = 0") for j in row.keys
    ]
    # Every stationary point has this gap: (g_y + q_y)/(g_k + q_k) = exp(z_y − z_k).
    claims.append(zero((g("y") + qf("y")) / (g("k") + qf("k"))
                       - sp.exp(row.v("z", "y") - row.v("z", "k")), "ratio = exp(gap)"))
    claims.append(zero(sp.log(qf("y") / qf("k")) - gap_value, "gap value"))
    return claims


def theorems() -> list[Theorem]:
    row, qf, L_def = kn.onehot_setup(q)
    H = lambda: kn.entropy(row, qf)
    A = r"K \in \mathbb{Z},\ K \ge 2"

    def minimum_positive():
        e = positive_eps_interval(open_right=False)  # ε ∈ (0, 1]
        qy, qk = q(row, "y", e), q(row, "k", e)
        return [
            holds(qy > 0, "q_y > 0"), holds(qy <= 1, "q_y <= 1"),
            holds(qk > 0, "q_k > 0"), holds(qk < 1, "q_k < 1"),
            holds(K - 1 > 0, "K - 1 > 0"),
            zero(H() - (-qf("y") * sp.log(qf("y")) - (K - 1) * qf("k") * sp.log(qf("k"))), "H split"),
            *kn.neg_xlogx_claims(),
        ]

    return [
        *kn.mass_and_closed_form(
            RECIPE, row, qf, L_def, lambda: loss(row),
            r"-\sum_j q_j \log p_j = \mathrm{lse}(z) - (1-\varepsilon) z_y - \tfrac{\varepsilon}{K} S", A),
        Theorem(RECIPE, "gradient",
                r"\partial L/\partial z_j = (\textstyle\sum q)\,p_j - q_j = p_j - q_j",
                lambda: kn.gradient_claims(row, L_def(), lambda j: row.sum(qf) * row.p(j) - qf(j))
                + kn.gradient_claims(row, L_def(), lambda j: grad(row, j)), A),
        Theorem(RECIPE, "gradient_row_sum", r"\sum_j \partial L/\partial z_j = 0",
                lambda: [zero(row.sum(lambda j: grad(row, j)))], A),
        Theorem(RECIPE, "shift_invariance", r"L(z + c\mathbf{1}) = L(z)",
                lambda: [zero(row.at(loss(row), "z", lambda j: row.v("z", j) + kn.c) - loss(row))], A),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\nabla L = 0 \iff z_y - z_j = \log\frac{q_y}{q_j} = \log\big(1 + \tfrac{K(1-\varepsilon)}{\varepsilon}\big)",
                lambda: gap_claims(row, qf, L_def(), sp.log(1 + K * (1 - eps) / eps)),
                A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_loss", r"L(z^*) = H(q) = -\sum_j q_j \log q_j",
                lambda: [zero(row.at(loss(row), "z", optimum(row)) - H())], A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_is_global",
                r"L(z) = H(q) + \mathrm{KL}(q\,\|\,p) \ge H(q)",
                lambda: [
                    zero(L_def() - H() - row.sum(lambda j: qf(j) * (sp.log(qf(j)) - row.log_p(j))), "L = H + KL"),
                    zero(row.sum(lambda j: qf(j) * (1 - row.p(j) / qf(j))), "sum q (1 - p/q) = 0"),
                    *kn.gibbs_lemma_claims(),
                ], A + r",\ 0 < \varepsilon < 1"),
        Theorem(RECIPE, "minimum_positive",
                r"\min_z L = H(q) > 0 \text{ for } 0 < \varepsilon \le 1 \text{ (the loss never reaches 0)}",
                minimum_positive, A + r",\ 0 < \varepsilon \le 1"),
        Theorem(RECIPE, "epsilon_zero", r"\varepsilon = 0:\ L = \mathrm{lse}(z) - z_y",
                lambda: [zero(loss(row, 0) - (row.lse() - row.v("z", "y")))], A),
    ]
