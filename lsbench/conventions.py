r"""Which parameters of one published form of label smoothing give another form's gradient.

A registry of :class:`Convention` records, one line per recipe (a recipe's module
or a later issue adds its line with :func:`register`). Each softmax form maps its
``ε`` (for ``K`` classes) to the ``ε'`` of ``uniform`` whose per-example gradient
``softmax(z) − q`` it has, as a SymPy expression in ``proofs.kernel.eps`` and
``proofs.kernel.K``, and names the theorem under ``proofs/`` that proves it
(``"module:theorem"``); a form with no such ``ε'`` says why instead. The sigmoid
forms map to ``keras_binary`` the same way (``family="sigmoid"``). Converting
from A to B composes A's map with the inverse of B's, so every answer rests on
two proven equivalences (equal per-example gradients, hence equal targets up to
a constant of the loss value); the reductions (sum or mean) are each recipe's own
and are reported, not converted.

Example:

>>> from lsbench import conventions
>>> r = conventions.convert("fairseq", 0.1, 32000, to="uniform")[0]
>>> print(r.recipe, round(r.epsilon, 8))
uniform 0.10000313
"""

from __future__ import annotations

import dataclasses
import functools

import sympy as sp

from proofs.kernel import K, eps

SOFTMAX, SIGMOID = "softmax", "sigmoid"
CANONICAL = {SOFTMAX: "uniform", SIGMOID: "keras_binary"}  #: the form every other maps to, per family
NEW_EPS = sp.Symbol("varepsilon_canonical", real=True)


@dataclasses.dataclass(frozen=True)
class Convention:
    """How recipe ``recipe``'s ``ε`` relates to its family's canonical form.

    ``to_canonical``: the canonical ``ε'`` with the same per-example gradient, a SymPy
    expression in ``eps`` and ``K`` (None: there is none, ``reason`` says why);
    ``theorem``: ``"module:theorem"`` under ``proofs/``; ``relation``: what is equal.
    """

    recipe: str
    to_canonical: sp.Expr | None
    theorem: str
    relation: str = ""
    reason: str = ""
    family: str = SOFTMAX
    minimum_classes: int = 2

    def canonical_epsilon(self, epsilon, num_classes: int) -> sp.Expr | None:
        """The canonical ``ε'`` (exact, for a rational ``epsilon``), or None."""
        if self.to_canonical is None:
            return None
        return self.to_canonical.subs({eps: sp.nsimplify(epsilon), K: num_classes})

    def from_canonical(self, epsilon, num_classes: int) -> sp.Expr | None:
        """This recipe's ``ε`` whose canonical ``ε'`` is ``epsilon`` (the inverse map; exact)."""
        inverse = _inverse(self.to_canonical)
        if inverse is None:
            return None
        return sp.nsimplify(inverse.subs({NEW_EPS: epsilon, K: num_classes}))


@functools.lru_cache(maxsize=None)
def _inverse(expr):
    if expr is None:
        return None
    solutions = sp.solve(sp.Eq(expr, NEW_EPS), eps)
    if len(solutions) != 1:
        raise ValueError(f"the map {expr} has no unique inverse: {solutions}")
    return solutions[0]


REGISTRY: dict[str, Convention] = {}


def register(convention: Convention) -> Convention:
    REGISTRY[convention.recipe] = convention
    return convention


OFF_TARGET = eps * K / (K - 1)  #: ε/(K−1) on the others ≡ uniform at εK/(K−1)

register(Convention("uniform", eps, "uniform:gradient"))
register(Convention("off_target", OFF_TARGET, "off_target:equals_uniform"))
register(Convention("fastai", eps, "fastai:equals_uniform", "fastai mixes batch means (the same mean loss)"))
register(Convention("tf_onehot", eps, "tf_onehot:onehot_equals_uniform", "tf_onehot: on one-hot label rows"))
register(Convention("fastreid", OFF_TARGET, "fastreid:fixed_equals_off_target",
                    "fastreid: fixed ε ≥ 0 (its adaptive ε < 0 has no equivalent)"))
register(Convention("speech_transformer", None, "speech_transformer:target_mass",
                    reason="its target has mass 1 − ε/K < 1, so its gradient (1 − ε/K)·p − q is no p − q' "
                           "(its optimum p*_y = K(1−ε)/(K−ε) is uniform's at ε' = εK/(K−ε): "
                           "speech_transformer:optimum)"))
register(Convention("distillation", None, "distillation:student_gradient",
                    reason="its parameter is a temperature, not ε: the gradient T·(p − q) is uniform's only "
                           "for T = 1 and a teacher whose logits are log q"))
register(Convention("flax_kl", OFF_TARGET, "flax_kl:same_gradient_as_uniform",
                    "flax_kl: the loss value is lower by the constant H(q)"))
register(Convention("opennmt", None, "opennmt:no_uniform_equivalent", minimum_classes=3,
                    reason="q_pad = 0 while uniform puts ε'/K on every class: no ε' gives its gradient"))
register(Convention("hf_label_smoother", eps, "hf_label_smoother:equals_uniform",
                    "hf_label_smoother: K is the logits' full width"))
register(Convention("fairseq_v0_10", eps, "fairseq_v0_10:equals_uniform", "fairseq_v0_10: sums over tokens"))
register(Convention("fairseq", OFF_TARGET, "fairseq:equals_uniform", "fairseq: sums over tokens"))
register(Convention("poly", None, "poly:no_uniform_equivalent",
                    reason="its extra term poly·(1 − Σ q p) adds −c(1−ε)·p_y·(1_y − p) to the gradient, which no "
                           "fixed target q' gives (unless poly·(1−ε) = 0)"))
register(Convention("label_relaxation", None, "label_relaxation:gradient",
                    reason="its target r_j = ε·p_j/(1−p_y) moves with p and its loss is 0 once p_y ≥ 1−ε: "
                           "no fixed target q' gives its gradient"))
# the sigmoid (multi-label) forms, against keras_binary on one-hot label rows
register(Convention("keras_binary", eps, "keras_binary:gradient", family=SIGMOID))
register(Convention("mmpretrain_multilabel", 2 * eps, "mmpretrain_multilabel:keras_equivalent",
                    "mmpretrain_multilabel: on one-hot labels", family=SIGMOID))
register(Convention("timm_binary", None, "timm_binary:no_keras_equivalent", family=SIGMOID,
                    reason="its targets ε/K and 1−ε+ε/K are not symmetric about 1/2 as Keras's are, except at "
                           "K = 2 (ε' = ε: timm_binary:keras_equivalent_two_classes)"))


@dataclasses.dataclass(frozen=True)
class Conversion:
    """One line of :func:`convert`: ``recipe``'s ``epsilon`` (None: none exists, ``why``)."""

    recipe: str
    epsilon: float | None
    why: str
    theorems: tuple[str, ...]
    exact: sp.Expr | None = None  #: ``epsilon`` as an exact rational (for a rational input)


def check_name(name: str, what: str) -> Convention:
    if name not in REGISTRY:
        raise ValueError(f"{what} must be one of {', '.join(REGISTRY)}, got {name!r}")
    return REGISTRY[name]


def convert(source: str, epsilon: float, num_classes: int, *, to: str | None = None) -> list[Conversion]:
    """The parameters of every other convention (or of ``to``) equivalent to ``source`` at ``epsilon``, ``K``."""
    src = check_name(source, "--from")
    targets = [check_name(to, "--to")] if to is not None else [c for c in REGISTRY.values() if c.recipe != source]
    if not 0 <= epsilon <= 1:
        raise ValueError(f"--epsilon must lie in [0, 1], got {epsilon}")
    if not isinstance(num_classes, int) or num_classes < src.minimum_classes:
        raise ValueError(f"--num-classes must be an integer ≥ {src.minimum_classes} for {source}, got {num_classes}")
    out = []
    canonical = src.canonical_epsilon(epsilon, num_classes)
    for dst in targets:
        theorems = (src.theorem, dst.theorem)
        if src.to_canonical is None:
            out.append(Conversion(dst.recipe, None, f"none: {source}: {src.reason}", (src.theorem,)))
        elif dst.family != src.family:
            out.append(Conversion(dst.recipe, None, f"none: {dst.recipe} is a {dst.family} form and {source} a "
                                  f"{src.family} form; their gradients differ", ()))
        elif dst.to_canonical is None:
            out.append(Conversion(dst.recipe, None, f"none: {dst.reason}", (dst.theorem,)))
        elif num_classes < dst.minimum_classes:
            out.append(Conversion(dst.recipe, None, f"none: {dst.recipe} needs K ≥ {dst.minimum_classes}", ()))
        else:
            value = dst.from_canonical(canonical, num_classes)
            if not 0 <= value <= 1:  # the theorems are identities in ε; only the recipes restrict it to [0, 1]
                out.append(Conversion(dst.recipe, None, f"none: it would need ε = {float(value):.6g} outside [0, 1] "
                                      f"({CANONICAL[src.family]} ε' = {float(canonical):.6g})", theorems))
            else:
                notes = [c.relation for c in (src, dst) if c.relation]
                out.append(Conversion(dst.recipe, float(value), "; ".join(["same per-example gradient", *notes]),
                                      theorems, sp.nsimplify(value)))
    return out
