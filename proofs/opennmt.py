r"""Proofs for ``opennmt``: ``q_y = 1−ε``, ``q_pad = 0``, ``q_j = ε/(K−2)``, loss ``KL(q‖p)``.

Derived for symbolic K on a row split into the label ``y``, a generic other
class ``k``, the padding class ``pad`` and ``K − 3`` remaining classes (label ≠ pad):

* ``target_mass``: ``Σ_j q_j = 1``;
* ``entropy``: ``H(q) = −(1−ε)log(1−ε) − ε log(ε/(K−2))`` (``q_pad log q_pad`` taken as 0);
* ``closed_form``: ``−Σ q log p − H(q) = lse − (1−ε) z_y − ε/(K−2)(S − z_pad − z_y) − H(q)``;
* ``gradient``: ``∂L/∂z_j = p_j − q_j``; on the padding column ``p_pad``;
* ``no_finite_minimum`` (finding): ``∂L/∂z_pad = p_pad > 0`` everywhere, so no finite logits are
  optimal: training pushes ``z_pad → −∞`` and the infimum 0 is not attained;
* ``optimal_logit_gap``: every point where the other gradients vanish has ``z_y − z_k = log((1−ε)(K−2)/ε)``;
* ``no_uniform_equivalent`` (finding): for no ``ε'`` is the gradient ``uniform``'s: the padding column
  forces ``ε' = 0``, and then the other classes differ by ``ε/(K−2)`` (zero only at ε = 0);
* ``epsilon_zero``: at ε = 0 it is plain cross-entropy.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs import uniform
from proofs.kernel import K, Row, Theorem, eps, holds, zero

RECIPE = "opennmt"
PAD = "pad"


def q(row: Row, j, e=eps, pad=PAD):
    """``1−ε`` on the label, 0 on ``pad``, ``ε/(K−2)`` elsewhere (label ≠ pad)."""
    if j == pad:
        return sp.Integer(0)
    o = row.onehot(j)
    return o * (1 - e) + (1 - o) * e / (row.K - 2)


def entropy(num_classes=K, e=eps):
    """``H(q) = −(1−ε)·log(1−ε) − ε·log(ε/(K−2))``."""
    return -((1 - e) * sp.log(1 - e) + e * sp.log(e / (num_classes - 2)))


def loss(row: Row, e=eps, pad=PAD):
    """The closed form ``lse − (1−ε) z_y − ε/(K−2)(S − z_pad − z_y) − H(q)``."""
    return _entropy_free(row, e, pad) - entropy(row.K, e)


def _entropy_free(row: Row, e=eps, pad=PAD):
    """``loss + H(q)``: the cross-entropy part ``−Σ q log p``."""
    zy = row.target()
    return row.lse() - (1 - e) * zy - e / (row.K - 2) * (row.S() - row.v("z", pad) - zy)


def grad(row: Row, j, e=eps, pad=PAD):
    return row.p(j) - q(row, j, e, pad)


def closed_form(num_classes: int, pad: int = 1) -> kn.ClosedForm:
    """For a concrete K with ``pad`` (default 1, OpenNMT-py's ``<blank>``); inputs logits, onehot, epsilon."""
    row = Row.concrete(num_classes)
    return kn.ClosedForm(RECIPE, num_classes, loss(row, eps, pad), [grad(row, j, eps, pad) for j in row.keys],
                         {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps},
                         shared=row.shared())


def theorems() -> list[Theorem]:
    row = Row.split(keys=("y", "k", PAD))
    qf = lambda j: q(row, j)
    L_def = kn.cross_entropy(row, qf)
    A = r"K \in \mathbb{Z},\ K \ge 3,\ y \ne \mathrm{pad}"
    inner = r",\ 0 < \varepsilon < 1"
    e_open = uniform.positive_eps_interval(open_right=True)
    e_u = sp.Symbol("varepsilon'", real=True)

    def entropy_claims():
        qy, qk = q(row, "y", e_open), q(row, "k", e_open)
        H_nonpad = -(qy * sp.log(qy)) - (K - 2) * qk * sp.log(qk)
        return [zero(sp.expand_log(H_nonpad - entropy(K, e_open), force=True), "H over the non-pad classes")]

    def gap():
        g = lambda j: sp.diff(loss(row), row.v("z", j))
        return [zero((g("y") + qf("y")) / (g("k") + qf("k")) - sp.exp(row.v("z", "y") - row.v("z", "k")),
                     "ratio = exp(gap)"),
                zero(sp.log(qf("y") / qf("k")) - sp.log((1 - eps) * (K - 2) / eps), "gap value")]

    def no_uniform():
        return [zero(grad(row, PAD) - uniform.grad(row, PAD, e_u) - e_u / K, "pad column: differs by eps'/K"),
                zero(grad(row, "k") - uniform.grad(row, "k", 0) + eps / (K - 2), "at eps' = 0: other class"),
                holds(e_open / (kn.n_extra + 1) > 0, "eps/(K-2) > 0 for eps > 0 (K = n + 3)")]

    def epsilon_zero():
        e = sp.Symbol("e", positive=True)
        return [zero(_entropy_free(row, 0) - (row.lse() - row.v("z", "y")), "cross-entropy part at eps = 0"),
                zero(sp.limit(entropy(kn.n_extra + 3, e), e, 0, "+"), "H(q) -> 0")]

    return [
        Theorem(RECIPE, "target_mass", r"\sum_j q_j = 1", lambda: [zero(row.sum(qf) - 1)], A),
        Theorem(RECIPE, "entropy", r"H(q) = -(1-\varepsilon)\log(1-\varepsilon) - \varepsilon\log\frac{\varepsilon}{K-2}",
                entropy_claims, A + inner),
        Theorem(RECIPE, "closed_form",
                r"-\sum_j q_j\log p_j - H(q) = \mathrm{lse} - (1-\varepsilon) z_y"
                r" - \tfrac{\varepsilon}{K-2}(S - z_{\mathrm{pad}} - z_y) - H(q)",
                lambda: [zero(L_def - entropy() - loss(row))], A),
        Theorem(RECIPE, "gradient", r"\partial L/\partial z_j = p_j - q_j,\ \partial L/\partial z_{\mathrm{pad}} = p_{\mathrm{pad}}",
                lambda: kn.gradient_claims(row, loss(row), lambda j: grad(row, j))
                + [zero(grad(row, PAD) - row.p(PAD), "pad")], A),
        Theorem(RECIPE, "no_finite_minimum",
                r"\partial L/\partial z_{\mathrm{pad}} = p_{\mathrm{pad}} > 0 \text{ for all finite } z",
                lambda: [zero(sp.diff(loss(row), row.v("z", PAD)) - row.p(PAD)), holds(row.p(PAD) > 0)], A,
                finding=True, note="the infimum KL = 0 needs z_pad → −∞; no finite logits are optimal"),
        Theorem(RECIPE, "optimal_logit_gap",
                r"\partial L/\partial z_y = \partial L/\partial z_k = 0 \Rightarrow z_y - z_k = \log\frac{(1-\varepsilon)(K-2)}{\varepsilon}",
                gap, A + inner),
        Theorem(RECIPE, "no_uniform_equivalent",
                r"\nabla L^{\mathrm{opennmt}}_\varepsilon \ne \nabla L^{\mathrm{uniform}}_{\varepsilon'} \text{ for every } \varepsilon'",
                no_uniform, A + r",\ 0 < \varepsilon < 1", finding=True,
                note="the padding column has q_pad = 0 while uniform puts ε'/K on every class"),
        Theorem(RECIPE, "epsilon_zero", r"\varepsilon = 0:\ L = \mathrm{lse}(z) - z_y",
                epsilon_zero, A, note="H(q) → 0 as ε → 0⁺ (0·log 0 = 0, as PyTorch's kl_div takes it)"),
    ]
