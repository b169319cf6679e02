r"""What the proofs of the sigmoid (multi-label) recipes share.

Per element ``ℓ(x, t) = −t·log σ(x) − (1 − t)·log(1 − σ(x)) = softplus(x) − t·x``
and the per-example loss ``L = (1/K)·Σ_j ℓ(x_j, t_j)``. :func:`integer_theorems`
states, for symbolic K and a target ``t_y = on``, ``t_j = off``, the element
identity, the target mass, the one-hot-free closed form the code reduces, the
gradient ``(σ(x_j) − t_j)/K``, convexity, the optimal logits ``log(t/(1 − t))``
with their gap, and ε = 0.
"""

from __future__ import annotations

import sympy as sp

from proofs import kernel as kn
from proofs.kernel import K, Row, Theorem, eps, holds, zero

W = sp.Symbol("w", positive=True)  #: x = log w: every real logit is one
T = sp.Symbol("t", real=True)  #: a target value


def softplus(x):
    return sp.log(1 + sp.exp(x))


def sigma(x):
    return sp.exp(x) / (1 + sp.exp(x))


def element_loss(x, t):
    """``softplus(x) − t·x`` (the form the code computes)."""
    return softplus(x) - t * x


def bce_definition(x, t):
    """The textbook ``−t·log σ(x) − (1 − t)·log(1 − σ(x))`` (PyTorch/Keras' definition)."""
    return -t * sp.log(sigma(x)) - (1 - t) * sp.log(1 - sigma(x))


def row_loss(row: Row, t, fam: str = "z"):
    """``(1/K)·Σ_j ℓ(x_j, t(j))`` (the dense definition)."""
    return row.sum(lambda j: element_loss(row.v(fam, j), t(j))) / row.K


def fast_form(row: Row, on, off):
    """``(1/K)·(Σ_j softplus(x_j) − off·Σ_j x_j − (on − off)·x_y)`` (the code's closed form)."""
    return (row.sum(lambda j: softplus(row.v("z", j))) - off * row.S() - (on - off) * row.target()) / row.K


def grad(row: Row, j, t, fam: str = "z"):
    return (sigma(row.v(fam, j)) - t(j)) / row.K


def onehot_target(row: Row, on, off):
    return lambda j: off + (on - off) * row.onehot(j)


def logit(t):
    return sp.log(t / (1 - t))


def in_range(expr):
    """``expr`` with ``ε = 1/(1 + e)`` (``e > 0``: every ε in (0, 1)) and ``K = 2 + n`` (``n ≥ 0``),
    so that the signs of the logs' arguments are known and the logs split."""
    e = sp.Symbol("e", positive=True)
    n = sp.Symbol("n", integer=True, nonnegative=True)
    return expr.subs(eps, 1 / (1 + e)).subs(K, 2 + n)


def element_identity_theorem(recipe: str) -> Theorem:
    return Theorem(recipe, "bce_definition",
                   r"-t\log\sigma(x) - (1-t)\log(1-\sigma(x)) = \log(1+e^x) - t x",
                   lambda: [zero(bce_definition(sp.log(W), T) - element_loss(sp.log(W), T))],
                   r"x \in \mathbb{R},\ t \in \mathbb{R}")


def integer_theorems(recipe: str, on, off, mass, mass_tex: str, closed_tex: str, gap, gap_tex: str,
                     eps_range: str) -> list[Theorem]:
    """The theorems of an integer-label sigmoid recipe with targets ``(on, off)`` (expressions of ε, K)."""
    row = Row.split()
    t = onehot_target(row, on, off)
    A = kn.STANDING
    L = lambda: row_loss(row, t)
    return [
        element_identity_theorem(recipe),
        Theorem(recipe, "target_mass", mass_tex, lambda: [zero(row.sum(t) - mass)], A),
        Theorem(recipe, "closed_form", closed_tex, lambda: [zero(L() - fast_form(row, on, off))], A),
        Theorem(recipe, "gradient", r"\partial L/\partial x_j = (\sigma(x_j) - t_j)/K",
                lambda: kn.gradient_claims(row, L(), lambda j: grad(row, j, t)), A),
        Theorem(recipe, "convex", r"\partial^2 L/\partial x_j^2 = \sigma(x_j)(1-\sigma(x_j))/K > 0",
                lambda: [holds(sp.diff(L(), row.v("z", j), 2) > 0, f"d2/dz_{j}^2") for j in row.keys], A),
        Theorem(recipe, "optimal_logits",
                r"\nabla L = 0 \iff x_j = \log\frac{t_j}{1-t_j};\ x^*_y - x^*_j = " + gap_tex,
                lambda: [zero(row.at(grad(row, j, t), "z", lambda i: logit(t(i))), f"grad_{j}(x*) = 0")
                         for j in row.keys] + [zero(in_range(logit(t("y")) - logit(t("k")) - gap), "gap")],
                A + eps_range),
        Theorem(recipe, "epsilon_zero", r"\varepsilon = 0:\ L = \tfrac1K\big(\sum_j \log(1+e^{x_j}) - x_y\big)",
                lambda: [zero(L().subs(eps, 0) - (row.sum(lambda j: softplus(row.v("z", j))) - row.target()) / K)],
                A),
    ]


def keras_targets(e):
    """``(on, off)`` of ``keras_binary`` with smoothing ``e`` on one-hot labels."""
    return 1 - e / 2, e / 2


def integer_closed_form(recipe: str, num_classes: int, on_off) -> kn.ClosedForm:
    """:class:`proofs.kernel.ClosedForm` for a concrete K; ``on_off(K)`` gives the targets."""
    row = Row.concrete(num_classes)
    on, off = on_off(num_classes)
    t = onehot_target(row, on, off)
    return kn.ClosedForm(recipe, num_classes, fast_form(row, on, off), [grad(row, j, t) for j in row.keys],
                         {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps},
                         shared=row.shared())


# --------------------------------------------------------------------------
# code theorems (see proofs.code): the dense spec of each recipe on a concrete row
# --------------------------------------------------------------------------


def integer_spec_row(on_off):
    """``Spec.row_loss`` of an integer-label sigmoid recipe whose targets are ``on_off(K, ε)``."""
    def row_loss_of(row: Row, p):
        on, off = on_off(row.K, p["epsilon"])
        return row_loss(row, onehot_target(row, on, off)), {}
    return row_loss_of


def dense_code_claims(recipe: str, target, K: int, dtype: str) -> list:
    """The code claims of a dense-label sigmoid recipe: per-example, loss, ∂/∂logits, ∂/∂labels.

    ``target(row, j, ε)`` is the recipe's target on a concrete row with a label family ``Y``.
    """
    import jax
    import jax.numpy as jnp
    import numpy as np

    from lsbench.losses import RECIPES
    from proofs import code as cd

    r = RECIPES[recipe]
    b = cd.Batch.make(K, where=True)
    n = len(b.labels)
    Y = cd.symbols("Y", (n, K), nonnegative=True)
    where = jnp.asarray(b.where)

    def program(z, y, e):
        total = lambda z, y: r.loss(z, y, epsilon=e, where=where)  # noqa: E731
        return r.per_example(z, y, epsilon=e, where=where), total(z, y), jax.grad(total, argnums=(0, 1))(z, y)

    outs = cd.run(program, [jnp.zeros((n, K), jnp.dtype(dtype)), jnp.zeros((n, K), jnp.float32), 0.1],
                  [b.logs, Y, eps])
    row = cd.concrete_row(K, (("z", (("real", True),)), ("Y", (("nonnegative", True),))), onehot=False)
    per_row = row_loss(row, lambda j: target(row, j, eps))
    rows = [cd.on_row(per_row, row, {"z": list(b.Z[i]), "Y": list(Y[i])}) if b.kept[i] else sp.Integer(0)
            for i in range(n)]
    to_code = b.to_code()
    total = sp.Add(*[x for x, k in zip(rows, b.kept) if k]) / max(sum(b.kept), 1)
    label = f"{recipe} fused {dtype} K={K}"
    return (cd.compare(outs[0], np.array([x.xreplace(to_code) for x in rows], dtype=object), f"{label} per_example")
            + cd.compare(outs[1], np.array(total.xreplace(to_code), dtype=object), f"{label} loss")
            + cd.compare(outs[2], cd.gradient_spec(total, b.Z, {}, to_code), f"{label} grad[logits]")
            + cd.compare(outs[3], cd.gradient_spec(total, Y, {}, to_code), f"{label} grad[labels]"))
