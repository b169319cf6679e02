"""The "what ε = 0.1 means" table: every form's target at ε = 0.1, computed from the code.

Two blocks, one row group per recipe (recipes whose cells agree at every K share a row):

* softmax forms: for each K in :data:`KS`, the dense target ``RECIPES[name].targets``
  of one row (label 0; the padding index 1 of ``opennmt`` is not the label) gives the
  mass on the label, on each other class and in total, the optimal logit gap
  ``log(q_y/q_j)`` (where the gradient vanishes ``p ∝ q``, proven per recipe as
  ``optimal_logit_gap`` or ``optimum``) and the ε' of ``uniform`` with the same
  gradient from :mod:`lsbench.conventions`. ``poly`` has ``uniform``'s q but its
  Poly-1 term moves the optimum (``poly:stationary_point``, at the recipe's default
  coefficient); ``label_relaxation``'s target depends on p, so only its label mass
  ``1 − ε`` and row total (at the uniform prediction) are shown, and the smallest
  optimal gap (``label_relaxation:minimum_on_the_boundary``);
* sigmoid (multi-label) forms: the per-class targets ``t_y``, ``t_j``, their row total,
  the optimal logits ``x* = log(t/(1 − t))`` (``<recipe>:optimal_logits``) and the ε'
  of ``keras_binary`` from :mod:`lsbench.conventions`.

No results file is read: the table is a function of the code, so
``python -m lsbench paper`` writes the same bytes every time.
"""

from __future__ import annotations

import inspect
import math

import numpy as np

from lsbench.report.fmt import DASH
from lsbench.report.tables import Table

NAME = "conventions"
EPSILON = 0.1
KS = (2, 37, 1000, 32000)
FACTOR_K = 1000  #: the K at which the sigmoid forms' off-target values are compared
OTHER = 2  #: the "other class" read from the target row (not opennmt's padding index 1)
DEPENDS_ON_P = "depends on p"


def depends_on_prediction(name: str) -> bool:
    """Whether ``RECIPES[name].targets`` always needs the logits (a target that moves with p); fastreid's
    optional ``logits`` serve only its adaptive mode, not a fixed ε."""
    from lsbench.losses import RECIPES

    param = inspect.signature(RECIPES[name].targets).parameters.get("logits")
    return param is not None and param.default is inspect.Parameter.empty


def target_row(name: str, k: int):
    """The float64 target of one row with label 0 (None when the recipe does not accept K).

    A prediction-dependent target is taken at the uniform prediction (zero logits).
    """
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
        extra = {"logits": jnp.zeros((1, k), jnp.float64)} if depends_on_prediction(name) else {}
        return np.asarray(RECIPES[name].targets(labels, k, epsilon=EPSILON, **extra), np.float64)[0]


def other_class(q: np.ndarray) -> float:
    return float(q[OTHER] if q.shape[-1] > OTHER else q[1])


def canonical_epsilon(name: str, k: int) -> str:
    """The ε' of the family's canonical form (``uniform`` or ``keras_binary``) with the same gradient."""
    from lsbench import conventions

    canonical = conventions.CANONICAL[conventions.REGISTRY[name].family]
    if name == canonical:
        return f"{EPSILON:.6g}"
    (answer,) = conventions.convert(name, EPSILON, k, to=canonical)
    return DASH if answer.epsilon is None else f"{answer.epsilon:.6g}"


def family(kind: str) -> list[str]:
    """The recipes with an ε of one family (softmax or sigmoid), in catalogue order."""
    from lsbench import conventions
    from lsbench.losses import RECIPES

    return [n for n, r in RECIPES.items() if "epsilon" in r.params and n in conventions.REGISTRY
            and conventions.REGISTRY[n].family == kind]


def poly_optimal_gap(k: int) -> float:
    """``poly``'s stationary logit gap ``log(K·p_y·(1 + c·p_y)/ε)``, ``c = poly·(1 − ε)`` at the recipe's
    default ``poly``, ``p_y`` the root in (0, 1) of ``(1 − p)(1 + c·p) = (K − 1)ε/K`` (``poly:stationary_point``)."""
    from lsbench.losses import RECIPES

    c = RECIPES["poly"].params["poly"] * (1 - EPSILON)
    rest = (k - 1) * EPSILON / k
    p_y = (c - 1 + math.sqrt((1 - c) ** 2 + 4 * c * (1 - rest))) / (2 * c)
    return math.log(k * p_y * (1 + c * p_y) / EPSILON)


def smallest_relaxation_gap(k: int) -> float:
    """``label_relaxation``'s smallest optimal gap, the others equal: ``log((1 − ε)(K − 1)/ε)``, where
    ``p_y = 1 − ε`` (``label_relaxation:minimum_on_the_boundary``)."""
    return math.log((1 - EPSILON) * (k - 1) / EPSILON)


def softmax_cells(name: str, k: int):
    q = target_row(name, k)
    if q is None:
        return (DASH,) * 5
    if depends_on_prediction(name):
        return (f"{q[0]:.6g}", DASH, f"{q.sum():.6g}", f"≥ {smallest_relaxation_gap(k):.5f}", canonical_epsilon(name, k))
    other = other_class(q)
    gap = poly_optimal_gap(k) if name == "poly" else math.log(q[0] / other)
    return (f"{q[0]:.6g}", f"{other:.6g}", f"{q.sum():.6g}", f"{gap:.5f}", canonical_epsilon(name, k))


def logit(t: float) -> float:
    return math.log(t / (1 - t))


def sigmoid_cells(name: str, k: int):
    t = target_row(name, k)
    on, off = float(t[0]), other_class(t)
    return (f"{on:.6g}", f"{off:.6g}", f"{t.sum():.6g}", f"{logit(on):.5f} / {logit(off):.5f}",
            canonical_epsilon(name, k))


def groups(names, cells):
    """``names`` grouped by identical ``cells(name, k)`` at every K, in the given order."""
    out: list[tuple[list[str], list[tuple[str, ...]]]] = []
    for name in names:
        rows = [cells(name, k) for k in KS]
        for group, ref in out:
            if rows == ref:
                group.append(name)
                break
        else:
            out.append(([name], rows))
    return out


def block(names, cells) -> list[tuple[str, ...]]:
    rows = []
    for group, values in groups(names, cells):
        label = ", ".join(group)
        rows += [(label if i == 0 else "", str(k), *v) for i, (k, v) in enumerate(zip(KS, values))]
    return rows


def entropy(name: str, k: int) -> float:
    q = target_row(name, k)
    q = q[q > 0]
    return float(-(q * np.log(q)).sum())


def sigmoid_off_values(k: int = FACTOR_K) -> dict[str, float]:
    """Each sigmoid form's target on a class other than the label, at ``k`` classes."""
    from lsbench import conventions

    return {name: other_class(target_row(name, k)) for name in family(conventions.SIGMOID)}


def off_factors(k: int = FACTOR_K):
    """``(smallest, largest, largest/smallest, {name: value/smallest})`` of the sigmoid off-target values."""
    values = sigmoid_off_values(k)
    low, high = min(values, key=values.get), max(values, key=values.get)
    return low, high, values[high] / values[low], {n: v / values[low] for n, v in values.items()}


def symmetric_without_conversion() -> list[tuple[str, int, float]]:
    """``(recipe, K, 2·t_j)`` where the converter reports no ``keras_binary`` ε' although ``t_y + t_j = 1``
    (then ``keras_binary:symmetric_forms_are_keras`` gives ε' = 2·t_j at that K)."""
    from lsbench import conventions

    out = []
    for name in family(conventions.SIGMOID):
        for k in KS:
            t = target_row(name, k)
            if canonical_epsilon(name, k) == DASH and math.isclose(t[0] + other_class(t), 1.0, abs_tol=1e-12):
                out.append((name, k, 2 * other_class(t)))
    return out


def sigmoid_notes() -> str:
    low, high, spread, ratios = off_factors()
    values = sigmoid_off_values()
    middle = [f"{n}'s {values[n]:.6g} is {ratios[n]:.6g} × {low}'s" for n in ratios if n not in (low, high)]
    exceptions = "; ".join(f"{n} at K = {k} has $t_y + t_j = 1$, so keras_binary:symmetric_forms_are_keras gives "
                           f"ε' = {e:.6g} there, which the converter's K-free map does not report"
                           for n, k, e in symmetric_without_conversion())
    return (f"Sigmoid forms (one binary problem per class): at K = {FACTOR_K} their off-target values $t_j$ run from "
            f"{low}'s {values[low]:.6g} to {high}'s {values[high]:.6g}, a factor of {spread:.6g}"
            + (f" ({'; '.join(middle)})" if middle else "") + ". "
            f"$x^* = \\log(t/(1-t))$ for the label and for each other class (each recipe's optimal_logits theorem); "
            f"the row total counts every class, so it grows with K unless $t_j$ shrinks as ε/K."
            + (f" {exceptions}." if exceptions else ""))


def conventions_table() -> Table:
    from lsbench import conventions

    rows = block(family(conventions.SOFTMAX), softmax_cells)
    rows += [("\\midrule",), ("sigmoid forms (same values)", "$K$", "$t_y$", "$t_j$", "$\\sum_j t_j$",
                              "$x^*_y$ / $x^*_j$", "keras_binary ε'"), ("\\midrule",)]
    rows += block(family(conventions.SIGMOID), sigmoid_cells)
    from lsbench.losses import RECIPES

    return Table(
        name=NAME,
        caption=("What ε = 0.1 means in each published form. Softmax forms (top): the target mass on the label "
                 "($q_y$), on each other class ($q_j$), in total ($\\sum_j q_j$), the optimal logit gap "
                 "$z_y - z_j = \\log(q_y/q_j)$ and the ε' of uniform with the same per-example gradient "
                 "(– where none exists). Sigmoid forms (bottom): the per-class targets, their row total, the "
                 "optimal logits and the ε' of keras_binary."),
        columns=("recipes (same values)", "$K$", "$q_y$", "$q_j$", "$\\sum_j q_j$", "$z_y - z_j$", "uniform ε'"),
        rows=tuple(rows),
        notes=("Computed from RECIPES[name].targets and lsbench.conventions (lsbench/report/conventions.py). "
               "flax_kl and opennmt report KL(q‖p), the cross-entropy minus H(q) "
               f"({entropy('off_target', KS[-1]):.3f} nats for off_target's q at K = {KS[-1]}); opennmt puts "
               "$q_{\\mathrm{pad}} = 0$ on its padding class and needs K ≥ 3; fairseq's $q_j$ includes the "
               "padding token. poly has uniform's q, but its Poly-1 term (coefficient "
               f"{RECIPES['poly'].params['poly']:g}, its default) moves the stationary point "
               "(poly:stationary_point). label_relaxation's target on the other classes "
               f"{DEPENDS_ON_P} ($r_j = \\varepsilon p_j/(1-p_y)$): its row total is at the uniform prediction, and any p "
               "with $p_y \\ge 1-\\varepsilon$ is optimal, ≥ giving the smallest such gap with the other classes equal. "
               "The reductions differ (mean, sum) and are not part of ε.",
               sigmoid_notes()),
        align="lrrrrrr", shrink_only=True, ragged_notes=True,
    )


def macros() -> dict[str, str]:
    """``\\ConvFlaxKlNats``: how far below the cross-entropy the Flax WMT / T5X loss reads at ε = 0.1, K = 32000;
    ``\\ConvSigmoidOffFactor``: the largest over the smallest sigmoid off-target value at K = 1000;
    ``\\ConvKerasTimmOffFactor``: keras_binary's over timm_binary's off-target value at K = 1000."""
    values = sigmoid_off_values()
    return {"ConvFlaxKlNats": f"{entropy('off_target', KS[-1]):.2f}",
            "ConvSigmoidOffFactor": f"{off_factors()[2]:.0f}",
            "ConvKerasTimmOffFactor": f"{values['keras_binary'] / values['timm_binary']:.0f}"}
