r"""Code theorems: the recipes' own jaxprs equal the spec, exactly, for K = 2..5.

For each recipe (and path: fused float32/bfloat16, ``chunked``, the fused
linear layer, the vocabulary-sharded path) a theorem of method ``code``
states: for every ``K`` in :data:`KS`, on a batch whose rows carry every label
``0..K−1`` plus masked rows (``where=False`` and, where the recipe has one,
``ignore_index``), with symbolic logits and symbolic parameters (ε, α, T,
class weights, ``z_loss``) passed as *traced* arguments,

* ``jax.make_jaxpr`` of ``per_example`` evaluates (:mod:`proofs.jaxpr`) to the
  dense definition ``−Σ_j q_j log softmax(z)_j`` of each row (0 on masked rows);
* the jaxpr of ``loss`` evaluates to the recipe's published reduction of those rows;
* the jaxpr of ``jax.grad(loss)`` -- which contains the custom VJP's backward as
  traced -- evaluates to SymPy's own derivative of that reduction (with the
  stop-gradients the published code has: fast-reid's adaptive ε, the
  self-correction weights, the reduction's row count).

The dense definitions come from ``proofs.<recipe>`` (the target ``q`` of each
recipe, :func:`proofs.kernel.cross_entropy`, ``proofs.distillation.kl``,
``proofs.self_correction.weight``), so the code is tied to the same objects the
symbolic theorems are about.

How the check is exact
----------------------
Logits enter as ``z_ij = log w_ij`` with ``w_ij > 0`` symbols (every real
``z`` is such a log), distillation logits as ``T·log a_j``, so every
``exp`` of a logit is a monomial. The row maximum the code subtracts is a free
symbol (see :mod:`proofs.jaxpr`), so a zero residual shows the shift cancels
for *any* shift. :func:`is_exact_zero` expands, factors the argument of every
``log`` and splits it (valid because the arguments are positive), and accepts
only a residual that ``expand`` or ``cancel`` reduces to the literal 0 --
never a numerical tolerance.

What is not proved: float rounding (the interpreter computes over the reals;
literals are the rationals the source wrote, see :func:`proofs.jaxpr.exact`),
and ``K`` outside :data:`KS` (the theorems are instances, labelled so).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Sequence

import numpy as np
import sympy as sp

from proofs import jaxpr as jx
from proofs import kernel as kn
from proofs.kernel import Claim, Row, Theorem

KS = (2, 3, 4, 5)  #: the class counts every code theorem is checked for
ROOT = __import__("pathlib").Path(__file__).resolve().parents[1]  #: the checkout holding lsbench/ and proofs/
IGNORE = -100  #: the ignore_index used on the batches (speech_transformer keeps its default −1)


# --------------------------------------------------------------------------
# the exact residual check
# --------------------------------------------------------------------------


def _split_log(arg):
    return sp.expand_log(sp.log(sp.factor(arg)), force=False)


def normal_form(expr: sp.Basic) -> sp.Basic:
    """``expr`` expanded, with every ``log`` argument factored and split where positive."""
    e = sp.expand(expr)
    e = e.replace(lambda x: isinstance(x, sp.log), lambda x: _split_log(x.args[0]))
    return sp.expand(e)


def _factored(den: sp.Basic, cache: dict):
    if den not in cache:
        coeff, factors = sp.factor_list(den)
        cache[den] = (coeff, tuple(factors))
    return cache[den]


def over_common_denominator(e: sp.Basic) -> sp.Basic:
    """The numerator of ``e`` over the lcm of its terms' factored denominators, expanded.

    Each term ``n/d`` is multiplied by ``lcm/d``; the denominators are products of a
    few row sums, so this is a polynomial identity test with no gcd computation.
    ``e = 0`` exactly when the returned numerator is 0 (the lcm is a non-zero product).
    """
    cache: dict = {}
    parts, lcm = [], {}
    for term in sp.Add.make_args(e):
        n, d = sp.fraction(term)
        coeff, factors = _factored(d, cache)
        parts.append((n, coeff, factors))
        for f, k in factors:
            lcm[f] = max(lcm.get(f, 0), k)
    total = []
    for n, coeff, factors in parts:
        have = dict(factors)
        mult = sp.Mul(*[f ** (k - have.get(f, 0)) for f, k in lcm.items()])
        total.append(sp.expand(n * mult / coeff))
    return sp.expand(sp.Add(*total))


ROW_SYMBOL = re.compile(r"\d+_\d+$")  #: entry symbols of a batch (``w3_1``): name, row, class


def row_groups(e: sp.Basic) -> list:
    """The terms of ``e`` split into groups that share no batch-entry symbol.

    A residual that sums over rows (a loss, a scalar parameter's gradient) is zero when
    each group is (the converse is not needed: a group that does not vanish is reported).
    Checking groups separately keeps the common denominators small (one row's sums).
    """
    terms = sp.Add.make_args(e)
    parent = list(range(len(terms)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for i, t in enumerate(terms):
        for s in t.free_symbols:
            if ROW_SYMBOL.search(s.name):
                j = owner.setdefault(s, i)
                parent[find(i)] = find(j)
    groups: dict = {}
    for i, t in enumerate(terms):
        groups.setdefault(find(i), []).append(t)
    return [sp.Add(*g) for g in groups.values()]


def is_exact_zero(expr: sp.Basic) -> bool:
    """True only when ``expr`` reduces to the literal 0 (no numerics).

    Steps (each an identity transformation): :func:`normal_form`; then the numerator
    over a common denominator (:func:`over_common_denominator`) must expand to 0.
    """
    if expr == 0:
        return True
    e = normal_form(expr)
    if e == 0:
        return True
    try:
        return all(over_common_denominator(g) == 0 for g in row_groups(e))
    except sp.PolynomialError:
        return sp.cancel(sp.together(e)) == 0


def exp_normal_form(expr: sp.Basic) -> sp.Basic:
    """``expr`` with every power of symbolic exponent written ``exp(e·log x)`` and every ``exp``
    of a sum split into a product (``expand(power_exp=True)``).

    Valid for positive bases (the batches' entries and shifts are positive symbols); it makes
    ``m^{1/T}`` and ``exp(log(m)/T)`` one atom, and turns ``e^{−b_k} = e^{−a_k}·e^{ā}`` into
    products, so a log of such a sum factors into logs of exponentials (which :func:`normal_form` splits).
    """
    e = expr.replace(lambda x: x.is_Pow and not x.exp.is_Rational,
                     lambda x: sp.exp(x.exp * sp.expand_log(sp.log(x.base), force=False)))
    return sp.expand(e, power_exp=True)


def is_exact_zero_exp(expr: sp.Basic) -> bool:
    """:func:`is_exact_zero` after :func:`exp_normal_form` (for distillation's ``log1p(Σ q φ(b))``).

    Otherwise: the remaining ``exp`` atoms become independent positive symbols (a rational
    function that vanishes identically in them vanishes at their values), each term is put
    over its own denominator, and the whole residual over one common denominator must
    expand to 0 (terms in the shifts alone, with no batch-entry symbol, cancel across rows).
    """
    e = exp_normal_form(expr)
    if is_exact_zero(e):
        return True
    e = normal_form(e)
    atoms = sorted(e.atoms(sp.exp), key=sp.default_sort_key)
    e = e.xreplace({x: sp.Dummy(f"exp{i}", positive=True) for i, x in enumerate(atoms)})
    try:
        return over_common_denominator(sp.Add(*[sp.together(t) for t in sp.Add.make_args(e)])) == 0
    except sp.PolynomialError:
        return False


def same(code, spec, label: str, decide: Callable = is_exact_zero) -> Claim:
    """The claim ``code − spec = 0``, checked by ``decide`` (:func:`is_exact_zero`)."""
    return Claim(sp.sympify(code) - sp.sympify(spec), "zero", label, decide=decide, instances=False)


# --------------------------------------------------------------------------
# symbolic inputs and batches
# --------------------------------------------------------------------------


def symbols(name: str, shape, **assumptions) -> np.ndarray:
    """An object array of fresh symbols ``name{i}_{j}``."""
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(*shape):
        out[ix] = sp.Symbol(name + "_".join(map(str, ix)), **assumptions)
    return out


@dataclasses.dataclass
class Batch:
    """Rows ``0..K−1`` with labels ``0..K−1`` (kept) plus masked rows.

    ``labels`` as passed to the code; ``where`` the row mask passed as ``where=``
    (None when the recipe has none); ``kept`` which rows count; ``Z`` the logit
    symbols of the spec (real) and ``W`` the positive symbols with ``Z = log W``
    fed to the code.
    """

    K: int
    labels: list
    where: list | None
    kept: list
    Z: np.ndarray
    W: np.ndarray

    @classmethod
    def make(cls, K: int, *, where: bool = True, ignore_index=None):
        labels, mask = list(range(K)), [True] * K
        if where:
            labels.append(K - 1)
            mask.append(False)
        if ignore_index is not None:
            labels.append(ignore_index)
            mask.append(True)  # masked by its label, not by where
        kept = [m and lab != ignore_index for m, lab in zip(mask, labels)]
        n = len(labels)
        W = symbols("w", (n, K), positive=True)
        return cls(K, labels, mask if where else None, kept, symbols("z", (n, K), real=True), W)

    @property
    def logs(self) -> np.ndarray:
        return np.vectorize(sp.log, otypes=[object])(self.W)

    def to_code(self) -> dict:
        """The substitution from the spec's logits ``Z`` to the code's inputs ``log W``."""
        return {self.Z[ix]: sp.log(self.W[ix]) for ix in np.ndindex(self.Z.shape)}


@functools.lru_cache(maxsize=None)
def concrete_row(K: int, families: tuple = (("z", (("real", True),)),), onehot: bool = True) -> Row:
    return Row.concrete(K, {f: dict(a) for f, a in families}, onehot=onehot)


def on_row(expr: sp.Basic, row: Row, values: dict) -> sp.Basic:
    """``expr`` (built on ``row``) with each family's entries replaced by ``values[family][j]``."""
    mapping = {}
    for fam, vals in values.items():
        for j in row.keys:
            mapping[row.v(fam, j)] = vals[j]
    return expr.xreplace(mapping)


def onehot_values(K: int, label: int) -> list:
    return [sp.Integer(int(j == label)) for j in range(K)]


# --------------------------------------------------------------------------
# comparing a traced program with its spec
# --------------------------------------------------------------------------


def trace(fn: Callable, example_args: Sequence):
    """``jax.make_jaxpr(fn)(*example_args)``."""
    import jax

    return jax.make_jaxpr(fn)(*example_args)


REACHED: set = set()  #: every primitive the code theorems' traces have reached (this process and workers)


GENERIC_ASSUMED: set = set()  #: the parameter expressions the traces assumed non-zero (generic position)


def run(fn: Callable, example_args: Sequence, symbolic_args: Sequence, *, params_from: int = 1,
        **evaluator_options):
    """Trace ``fn`` on the example arguments and evaluate the trace on the symbolic ones.

    ``symbolic_args[params_from:]`` are the parameters (ε, α, weights, dense labels): a
    comparison of one with 0 that only a value could decide is taken in generic position
    (non-zero, see :data:`GENERIC`).
    """
    generic = set()
    for a in symbolic_args[params_from:]:
        for x in np.asarray(a, dtype=object).ravel():
            generic |= getattr(x, "free_symbols", set())
    ev = jx.Evaluator(generic=generic, **evaluator_options)
    try:
        return ev.closed(trace(fn, example_args), [jx.as_object(a) for a in symbolic_args])
    finally:
        REACHED.update(ev.seen)
        GENERIC_ASSUMED.update(ev.assumed_nonzero)


def compare(code: np.ndarray, spec: np.ndarray, label: str, decide: Callable = is_exact_zero) -> list[Claim]:
    code, spec = np.asarray(code, dtype=object), np.asarray(spec, dtype=object)
    if code.shape != spec.shape:
        raise ValueError(f"{label}: the code's output has shape {code.shape}, the spec's {spec.shape}")
    return [same(code[ix], spec[ix], f"{label}{list(ix) if ix else ''}", decide) for ix in np.ndindex(code.shape)]


def gradient_spec(loss: sp.Basic, wrt: np.ndarray, stopped: dict, to_code: dict) -> np.ndarray:
    """``∂loss/∂wrt`` with the stop-gradient placeholders then replaced by their values."""
    out = np.empty(wrt.shape, dtype=object)
    for ix in np.ndindex(wrt.shape):
        out[ix] = sp.diff(loss, wrt[ix]).xreplace(stopped).xreplace(to_code)
    return out


def code_theorem(recipe: str, name: str, statement: str, build_k: Callable[[int], list[Claim]],
                 assumptions: str = "", ks: Sequence[int] = KS, note: str = "") -> Theorem:
    """A theorem of method ``code``: the claims of ``build_k(K)`` for every K in ``ks``."""
    ks = tuple(ks)

    def build():
        claims = []
        for k in ks:
            try:
                claims.extend(build_k(k))
            except Exception as exc:  # name the theorem and K in whatever the trace or the spec raised
                raise RuntimeError(f"{recipe}.{name} K={k}: {type(exc).__name__}: {exc}") from exc
        return claims

    generic = r"\text{parameters in generic position (a coefficient compared with 0 is non-zero)}"
    assumptions = ", ".join(x for x in (assumptions, generic if recipe != "distillation" else "") if x)
    a = rf"K \in \{{{', '.join(map(str, ks))}\}}" + (r",\ " + assumptions if assumptions else "")
    return Theorem(recipe, name, statement, build, a, note=note, allow_instances=False, method="code")
