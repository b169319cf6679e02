"""The "what ε = 0.1 means" table: every softmax form's target at ε = 0.1, computed from the code.

For each recipe with an ε and each K in :data:`KS`, the dense target
``RECIPES[name].targets`` of one row (label 0; the padding index 1 of
``opennmt`` is not the label) gives the mass on the label, on each other class
and in total, the optimal logit gap ``log(q_y/q_j)`` (where the gradient
vanishes ``p ∝ q``, proven per recipe as ``optimal_logit_gap`` or ``optimum``)
and the ε' of ``uniform`` with the same gradient from :mod:`lsbench.conventions`.
Recipes whose targets agree at every K share a row. No results file is read:
the table is a function of the code, so ``python -m lsbench paper`` writes the
same bytes every time.
"""

from __future__ import annotations

import math

import numpy as np

from lsbench.report.fmt import DASH
from lsbench.report.tables import Table

NAME = "conventions"
EPSILON = 0.1
KS = (2, 37, 1000, 32000)
OTHER = 2  #: the "other class" read from the target row (not opennmt's padding index 1)


def target_row(name: str, k: int):
    """The float64 target of one row with label 0 (None when the recipe does not accept K)."""
    import jax
    import jax.numpy as jnp

    from lsbench import conventions
    from lsbench.losses import RECIPES

    if k < conventions.REGISTRY[name].minimum_classes:
        return None
    with jax.enable_x64(True):
        labels = jnp.zeros((1,), jnp.int32)
        if RECIPES[name].labels == "dense":
            labels = jax.nn.one_hot(labels, k, dtype=jnp.float64)
        return np.asarray(RECIPES[name].targets(labels, k, epsilon=EPSILON), np.float64)[0]


def uniform_epsilon(name: str, k: int) -> str:
    from lsbench import conventions

    if name == "uniform":
        return f"{EPSILON:.6g}"
    (answer,) = conventions.convert(name, EPSILON, k, to="uniform")
    return DASH if answer.epsilon is None else f"{answer.epsilon:.6g}"


def groups():
    """Recipe names grouped by identical targets at every K, in catalogue order."""
    from lsbench.losses import RECIPES

    from lsbench import conventions

    names = [n for n, r in RECIPES.items() if "epsilon" in r.params and n in conventions.REGISTRY
             and conventions.REGISTRY[n].family == conventions.SOFTMAX]
    out: list[list[str]] = []
    for name in names:
        rows = [target_row(name, k) for k in KS]
        for group in out:
            ref = [target_row(group[0], k) for k in KS]
            if all((a is None) == (b is None) and (a is None or np.array_equal(a, b)) for a, b in zip(rows, ref)):
                group.append(name)
                break
        else:
            out.append([name])
    return out


def cells(name: str, k: int):
    q = target_row(name, k)
    if q is None:
        return (DASH,) * 5
    other = q[OTHER] if k > OTHER else q[1]
    gap = math.log(q[0] / other)
    return (f"{q[0]:.6g}", f"{other:.6g}", f"{q.sum():.6g}", f"{gap:.5f}", uniform_epsilon(name, k))


def entropy(name: str, k: int) -> float:
    q = target_row(name, k)
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def conventions_table() -> Table:
    rows = []
    for group in groups():
        label = ", ".join(group)
        for i, k in enumerate(KS):
            rows.append((label if i == 0 else "", str(k), *cells(group[0], k)))
    return Table(
        name=NAME,
        caption=("What ε = 0.1 means in each published form: the target mass on the label ($q_y$), on each "
                 "other class ($q_j$), in total ($\\sum_j q_j$), the optimal logit gap $z_y - z_j = \\log(q_y/q_j)$ "
                 "and the ε' of uniform with the same per-example gradient (– where none exists)."),
        columns=("recipes (same target)", "$K$", "$q_y$", "$q_j$", "$\\sum_j q_j$", "$z_y - z_j$", "uniform ε'"),
        rows=tuple(rows),
        notes=("Computed from RECIPES[name].targets and lsbench.conventions (lsbench/report/conventions.py). "
               "flax_kl and opennmt report KL(q‖p), the cross-entropy minus H(q) "
               f"({entropy('off_target', KS[-1]):.3f} nats for off_target's q at K = {KS[-1]}); opennmt puts "
               "$q_{\\mathrm{pad}} = 0$ on its padding class and needs K ≥ 3; fairseq's $q_j$ includes the "
               "padding token. The reductions differ (mean, sum) and are not part of ε.",),
        align="lrrrrrr", shrink_only=True, ragged_notes=True,
    )


def macros() -> dict[str, str]:
    """``\\ConvFlaxKlNats``: how far below the cross-entropy the Flax WMT / T5X loss reads at ε = 0.1, K = 32000."""
    return {"ConvFlaxKlNats": f"{entropy('off_target', KS[-1]):.2f}"}
