r"""Proofs for ``timm_binary``: sigmoid targets ``t_y = 1 − ε + ε/K``, ``t_j = ε/K``.

For symbolic K (:mod:`proofs.binary`): the element identity, ``Σ_j t_j = 1``, the
closed form ``(1/K)(Σ softplus(x) − (ε/K)Σx − (1−ε)x_y)``, the gradient
``(σ(x_j) − t_j)/K``, convexity, the optimal logits ``x*_y = log((1−ε+ε/K)/(ε−ε/K))``,
``x*_j = −log(K/ε − 1)`` (gap ``log((K−Kε+ε)(K−ε)/(ε(K−1)·ε))``), ε = 0; and the
converter's map to ``keras_binary``:

* ``keras_equivalent_two_classes``: for K = 2 the targets are Keras' with ε' = ε;
* ``no_keras_equivalent`` (a finding): for K ≥ 3 and ε > 0 the only ε' that gives the
  negatives timm's target is ``2ε/K``, and then the positive's target is higher than
  timm's by ``ε(K−2)/K > 0``: the gradients ``(σ − t)/K`` differ, for every ε'.
"""

from __future__ import annotations

import sympy as sp

from proofs import binary as bn
from proofs.kernel import K, Theorem, eps, holds, zero

RECIPE = "timm_binary"


def on_off(num_classes=K, e=eps):
    return 1 - e + e / num_classes, e / num_classes


def closed_form(num_classes: int):
    return bn.integer_closed_form(RECIPE, num_classes, on_off)


def theorems() -> list[Theorem]:
    on, off = on_off()
    gap = bn.logit(on) - bn.logit(off)
    n = sp.Symbol("n", integer=True, nonnegative=True)  # K = 3 + n
    e = sp.Symbol("e", positive=True)  # ε > 0
    return bn.integer_theorems(
        RECIPE, on, off, 1, r"\sum_j t_j = 1",
        r"L = \tfrac1K\big(\sum_j \log(1+e^{x_j}) - \tfrac{\varepsilon}{K}\sum_j x_j - (1-\varepsilon) x_y\big)",
        sp.log((K - K * eps + eps) * (K - eps) / (eps * eps * (K - 1))),
        r"\log\frac{(K - K\varepsilon + \varepsilon)(K-\varepsilon)}{(K-1)\,\varepsilon^2}",
        r",\ 0 < \varepsilon < 1") + [
        Theorem(RECIPE, "keras_equivalent_two_classes",
                r"K = 2:\ (t_y, t_j) = \mathrm{keras\_binary}(\varepsilon' = \varepsilon)",
                lambda: [zero(a.subs(K, 2) - b) for a, b in zip(on_off(), bn.keras_targets(eps))],
                r"K = 2"),
        Theorem(RECIPE, "no_keras_equivalent",
                r"K \ge 3,\ \varepsilon > 0:\ t^{keras}_j(\varepsilon') = \tfrac{\varepsilon}{K} \iff "
                r"\varepsilon' = \tfrac{2\varepsilon}{K},\ \text{then } t^{keras}_y - t_y = \tfrac{\varepsilon(K-2)}{K} > 0",
                lambda: [
                    zero(bn.keras_targets(2 * eps / K)[1] - off, "off values agree only at 2ε/K"),
                    zero(bn.keras_targets(2 * eps / K)[0] - on - eps * (K - 2) / K, "on values differ"),
                    holds((e * (K - 2) / K).subs(K, 3 + n) > 0, "ε(K−2)/K > 0"),
                ], r"K \ge 3,\ \varepsilon > 0", finding=True,
                note="no ε' of keras_binary gives timm_binary's gradient unless K = 2 or ε = 0"),
    ]
