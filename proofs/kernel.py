r"""The shared kernel of the proofs: symbols, rows of symbolic logits, theorem
records and the checker.

Symbolic K
----------
A row of logits for an unspecified number of classes ``K`` is split into a few
*distinguished* classes, each an ordinary SymPy symbol, and the remaining
classes, an indexed family ``z[i]``, ``i = 1 .. K − (number distinguished)``,
that only ever appears inside ``Sum``. For the integer-label recipes the
distinguished classes are the target ``y`` and one generic other class ``k``
(``z_y``, ``z_k``) and the rest are ``K − 2`` further classes. Every recipe
treats all non-target classes alike, so a statement proved for the generic
``k`` holds for every ``j ≠ y``. Gradients are ordinary derivatives with
respect to ``z_y`` and ``z_k``.

So ``Σ_j exp(z_j)`` is ``exp(z_y) + exp(z_k) + Sum(exp(z[i]), (i, 1, K − 2))``
and nothing is ever evaluated for a particular ``K``.

The checker
-----------
A :class:`Claim` is an expression that must reduce to ``0`` (``kind="zero"``)
or a relation that must reduce to ``True`` (``kind="true"``). To decide it the
checker

1. *linearises* every ``Sum`` (finite sums are linear: the summand is
   expanded, each term's index-free factor is pulled out, and an index-free
   term ``c`` becomes ``c·(b − a + 1)``);
2. replaces each remaining, irreducible ``Sum`` (``Σ z[i]``, ``Σ exp(z[i])``,
   ...) by a fresh symbol carrying the sign the summand implies (a sum of
   non-negative terms over a possibly empty range is non-negative -- the
   ranges are ``1 .. K−2`` or ``1 .. K−1``, never negative under the standing
   assumption ``K ≥ 2``); structurally equal sums get the same symbol, and
   treating the others as independent can only make a claim harder to prove;
3. for a ``zero`` claim tries, in order, ``expand``, ``cancel`` and
   ``simplify`` (with the arguments of ``log`` factored and ``log`` expanded
   where SymPy's assumptions allow it) and accepts only a literal ``0``;
   for a ``true`` claim it evaluates the relation (``a > b`` is decided by
   SymPy's assumption system on ``a − b``), substituting ``K = n + 2`` with
   ``n`` a non-negative integer so that ``K ≥ 2`` is known.

If that does not close a claim that mentions ``K`` and allows it, the
checker falls back to every ``K`` from 2 to 16: the sums are written out
(``doit``) and the claim is checked for each value; such a theorem is
recorded with ``method="instances"``, never ``"symbolic"``. Otherwise the
theorem is ``failed``. Every step is an equivalence transformation, so a
wrong claim can never reduce to ``0``; ``tests/test_proofs.py`` feeds the
checker wrong closed forms and checks that it refuses them. Identities are
meant where both sides are defined (``cancel`` divides out common factors).
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from typing import Callable, Iterable, Sequence

import sympy as sp

# --------------------------------------------------------------------------
# symbols
# --------------------------------------------------------------------------

K = sp.Symbol("K", integer=True, positive=True)  #: number of classes (K ≥ 2)
n_extra = sp.Symbol("n", integer=True, nonnegative=True)  #: K = n + 2 in sign checks
eps = sp.Symbol("varepsilon", real=True)  #: smoothing ε
alpha = sp.Symbol("alpha", real=True)  #: fast-reid's / self-correction's α
T = sp.Symbol("T", positive=True)  #: distillation temperature
u = sp.Symbol("u", positive=True)  #: 1/T
c = sp.Symbol("c", real=True)  #: a constant shift of the logits
idx = sp.Symbol("i", integer=True, positive=True)  #: the summation index of a row's rest

INSTANCE_KS = tuple(range(2, 17))  #: the values of K tried by the ``instances`` fallback
REST = "rest"  #: the key of a row's generic rest element

# --------------------------------------------------------------------------
# rows of logits
# --------------------------------------------------------------------------


class Row:
    """One example's per-class quantities, for symbolic ``K`` or a concrete ``K``.

    ``families`` maps a family name (``"z"`` logits, ``"Y"`` label masses, ``"s"``/
    ``"t"`` student/teacher logits, ``"o"`` one-hot label indicators) to the
    assumptions of its entries. A symbolic row has distinguished ``keys`` (e.g.
    ``("y", "k")``), each entry a symbol ``z_y``, and a rest of ``K − len(keys)``
    classes, entry ``z[i]`` under ``Sum``; a concrete row (``Row.concrete``) has
    keys ``0 .. K−1`` and no rest. ``label`` names the key that is the target class.
    """

    def __init__(self, families: dict[str, dict], keys: Sequence, num_classes, *,
                 label=None, rest: bool = True, onehot_family: str | None = None):
        self.K = num_classes
        self.keys = tuple(keys)
        self.label = label
        self.has_rest = rest
        self.onehot_family = onehot_family
        self._sym: dict[tuple[str, object], sp.Expr] = {}
        self._base: dict[str, sp.IndexedBase] = {}
        self._memo: dict = {}
        for fam, assumptions in families.items():
            for key in self.keys:
                self._sym[(fam, key)] = sp.Symbol(f"{fam}_{key}", **assumptions)
            if rest:
                self._base[fam] = sp.IndexedBase(fam, **assumptions)
                self._sym[(fam, REST)] = self._base[fam][idx]

    # --- constructors -----------------------------------------------------
    @classmethod
    def split(cls, families=None, *, keys=("y", "k"), label="y"):
        """Symbolic-K row: distinguished ``keys`` plus a rest of ``K − len(keys)`` classes."""
        families = families or {"z": {"real": True}}
        return cls(families, keys, K, label=label, rest=True)

    @classmethod
    def concrete(cls, num_classes: int, families=None, *, onehot: bool = True):
        """Row for a concrete K: keys ``0..K−1``; with ``onehot`` a family ``o`` of label indicators."""
        families = dict(families or {"z": {"real": True}})
        if onehot:
            families["o"] = {"real": True}
        return cls(families, range(num_classes), int(num_classes), rest=False,
                   onehot_family="o" if onehot else None)

    # --- access -----------------------------------------------------------
    @property
    def rest_count(self):
        return self.K - len(self.keys)

    @property
    def all_keys(self):
        return self.keys + ((REST,) if self.has_rest else ())

    def v(self, fam: str, key) -> sp.Expr:
        """The entry of family ``fam`` for class ``key`` (``REST``: the generic rest element)."""
        return self._sym[(fam, key)]

    def symbols(self, fam: str) -> list[sp.Symbol]:
        """The distinguished (or, for a concrete row, all) entries of a family."""
        return [self._sym[(fam, k)] for k in self.keys]

    def sum(self, f: Callable[[object], sp.Expr]) -> sp.Expr:
        """``Σ_j f(j)`` over all K classes (the rest as one ``Sum`` over ``i``)."""
        total = sp.Add(*[f(k) for k in self.keys])
        if self.has_rest:
            total += sp.Sum(f(REST), (idx, 1, self.rest_count))
        return total

    def onehot(self, key) -> sp.Expr:
        """``[key = y]``: 1/0 on a symbolic row, the indicator symbol ``o_j`` on a concrete one."""
        if self.onehot_family is not None:
            return self.v(self.onehot_family, key)
        return sp.Integer(1) if (self.label is not None and key == self.label) else sp.Integer(0)

    def target(self, fam: str = "z") -> sp.Expr:
        """The target entry ``z_y`` (``Σ_j o_j z_j`` on a concrete row, built once)."""
        if self.onehot_family is not None:
            key = ("target", fam)
            if key not in self._memo:
                self._memo[key] = sp.Add(*[self.onehot(k) * self.v(fam, k) for k in self.keys])
            return self._memo[key]
        return self.v(fam, self.label)

    def shared(self) -> list:
        """The row aggregates built so far (``Σ exp``, ``Σ z``, ``z_y``): common subexpressions."""
        return list(self._memo.values())

    # --- softmax statistics ------------------------------------------------
    def E(self, fam: str = "z", scale=1) -> sp.Expr:
        """``Σ_j exp(scale·z_j)`` (built once per row)."""
        key = ("E", fam, scale)
        if key not in self._memo:
            self._memo[key] = self.sum(lambda j: sp.exp(scale * self.v(fam, j)))
        return self._memo[key]

    def lse(self, fam: str = "z", scale=1) -> sp.Expr:
        """``log Σ_j exp(scale·z_j)``."""
        return sp.log(self.E(fam, scale))

    def S(self, fam: str = "z") -> sp.Expr:
        """``Σ_j z_j`` (built once per row)."""
        key = ("S", fam)
        if key not in self._memo:
            self._memo[key] = self.sum(lambda j: self.v(fam, j))
        return self._memo[key]

    def p(self, key, fam: str = "z", scale=1) -> sp.Expr:
        """``softmax(scale·z)_key``."""
        return sp.exp(scale * self.v(fam, key)) / self.E(fam, scale)

    def log_p(self, key, fam: str = "z", scale=1) -> sp.Expr:
        """``log softmax(scale·z)_key = scale·z_key − lse``."""
        return scale * self.v(fam, key) - self.lse(fam, scale)

    def at(self, expr: sp.Expr, fam: str, value: Callable[[object], sp.Expr]) -> sp.Expr:
        """``expr`` with every entry ``fam_j`` replaced by ``value(j)`` (the rest element too)."""
        mapping = {self.v(fam, k): value(k) for k in self.all_keys}
        return expr.xreplace(mapping)


def cross_entropy(row: Row, q: Callable[[object], sp.Expr], fam: str = "z") -> sp.Expr:
    """The definition ``−Σ_j q_j log softmax(z)_j``."""
    return -row.sum(lambda j: q(j) * row.log_p(j, fam))


# --------------------------------------------------------------------------
# claims, theorems, results
# --------------------------------------------------------------------------


@dataclasses.dataclass
class Claim:
    """One step of a theorem: ``expr`` must reduce to 0 (``zero``) or to True (``true``).

    ``given`` are substitutions applied after the sums are linearised (e.g. a
    constraint ``Σ Y = 1``); ``instances=False`` forbids the K = 2..16 fallback.
    """

    expr: sp.Basic
    kind: str = "zero"
    label: str = ""
    given: dict | None = None
    instances: bool = True
    decide: Callable[[sp.Basic], bool] | None = None  #: a checker of its own (code theorems)


@dataclasses.dataclass
class Theorem:
    """A named theorem of a recipe. ``build()`` derives its claims (timed with the check)."""

    recipe: str
    name: str
    statement: str
    build: Callable[[], list[Claim]]
    assumptions: str = r"K \in \mathbb{Z},\ K \ge 2"
    finding: bool = False
    note: str = ""
    allow_instances: bool = True
    method: str = "symbolic"  #: what a proof of every claim is called ("code": the program's trace)


@dataclasses.dataclass
class Result:
    recipe: str
    name: str
    statement: str
    assumptions: str
    method: str  # "symbolic" | "instances" | "code" | "none"
    status: str  # "proved" | "failed"
    seconds: float
    claims: int
    finding: bool = False
    note: str = ""
    detail: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


# --------------------------------------------------------------------------
# the checker
# --------------------------------------------------------------------------


class CheckTimeout(Exception):
    pass


def linearize(expr: sp.Basic) -> sp.Basic:
    """Apply the linearity of finite sums everywhere in ``expr`` (bottom-up)."""
    if not isinstance(expr, sp.Basic) or expr.is_Atom or not expr.has(sp.Sum):
        return expr
    args = [linearize(a) for a in expr.args]
    if isinstance(expr, sp.Sum):
        return _split_sum(args[0], expr.limits)
    return expr.func(*args)


def _split_sum(function, limits):
    if len(limits) != 1:  # nested limits: split one at a time, innermost first
        inner = _split_sum(function, limits[:1])
        return linearize(sp.Sum(inner, *limits[1:])) if inner.has(limits[0][0]) else inner
    (i, a, b), = limits
    out = sp.Integer(0)
    for term in sp.Add.make_args(sp.expand(function, log=False)):
        coeff, dep = term.as_independent(i, as_Add=False)
        if dep == 1:
            out += coeff * (b - a + 1)
        else:
            out += coeff * sp.Sum(dep, (i, a, b))
    return out


def _opaque(expr: sp.Basic) -> tuple[sp.Basic, dict]:
    """Replace each irreducible ``Sum`` by a fresh symbol with the sign its summand implies."""
    sums = sorted(expr.atoms(sp.Sum), key=sp.default_sort_key)
    mapping = {}
    for n, s in enumerate(sums):
        f = s.function
        if f.is_nonnegative:
            sym = sp.Symbol(f"Sigma{n}", nonnegative=True)
        elif f.is_real:
            sym = sp.Symbol(f"Sigma{n}", real=True)
        else:
            sym = sp.Symbol(f"Sigma{n}")
        mapping[s] = sym
    return expr.xreplace(mapping), mapping


def _logs_expanded(expr):
    """Factor the argument of every log and expand the log where the signs allow it."""
    def fix(arg):
        return sp.expand_log(sp.log(sp.factor(sp.cancel(arg))), force=False)
    return expr.replace(lambda e: isinstance(e, sp.log), lambda e: fix(e.args[0]))


def _cancels(expr) -> bool:
    try:
        return sp.cancel(sp.together(expr)) == 0
    except sp.PolynomialError:
        return False


def _is_zero(expr) -> bool:
    if expr == 0:
        return True
    e = sp.expand(expr)
    if e == 0 or _cancels(e) or _cancels(expr):
        return True
    e2 = sp.expand(_logs_expanded(e))
    if e2 == 0 or _cancels(e2):
        return True
    return sp.simplify(e2) == 0


def _relation_holds(rel) -> bool:
    if rel is sp.true or rel is True:
        return True
    if rel is sp.false or rel is False:
        return False
    if isinstance(rel, sp.Equality):
        return _is_zero(rel.lhs - rel.rhs)
    if isinstance(rel, sp.Unequality):
        d = sp.simplify(rel.lhs - rel.rhs)
        return d.is_zero is False
    if isinstance(rel, sp.And):
        return all(_relation_holds(a) for a in rel.args)
    if isinstance(rel, (sp.StrictGreaterThan, sp.GreaterThan, sp.StrictLessThan, sp.LessThan)):
        if isinstance(rel, (sp.StrictGreaterThan, sp.GreaterThan)):
            d = rel.lhs - rel.rhs
        else:
            d = rel.rhs - rel.lhs
        strict = isinstance(rel, (sp.StrictGreaterThan, sp.StrictLessThan))
        attr = "is_positive" if strict else "is_nonnegative"
        for form in _sign_forms(d):
            if getattr(form, attr) is True:
                return True
        return False
    simplified = sp.simplify(rel)
    return simplified is sp.true


def _sign_forms(d):
    yield d
    yield sp.cancel(sp.together(d))
    yield sp.factor(sp.cancel(sp.together(d)))
    yield sp.expand(d)
    logs = _logs_expanded(d)
    yield logs
    yield sp.expand(logs)
    yield sp.simplify(d)


def _prepare(claim: Claim, expr=None):
    e = linearize(claim.expr if expr is None else expr)
    if claim.given:
        e = linearize(e.xreplace(claim.given) if not _has_non_atomic_keys(claim.given) else e.subs(claim.given))
    return e


def _has_non_atomic_keys(mapping) -> bool:
    return any(not getattr(k, "is_Atom", True) for k in mapping)


def check_symbolic(claim: Claim) -> bool:
    """Decide ``claim`` for symbolic K (or with the claim's own ``decide``)."""
    if claim.decide is not None:
        return bool(claim.decide(claim.expr))
    e = _prepare(claim)
    if claim.kind == "zero":
        e, _ = _opaque(e)
        return _is_zero(e)
    e = e.subs(K, n_extra + 2) if isinstance(e, sp.Basic) else e
    e, _ = _opaque(e) if isinstance(e, sp.Basic) else (e, None)
    return _relation_holds(e)


def check_instances(claim: Claim, ks: Iterable[int] = INSTANCE_KS) -> bool:
    """Decide ``claim`` for every K in ``ks`` (sums written out)."""
    if not claim.instances or not (isinstance(claim.expr, sp.Basic) and claim.expr.has(K)):
        return False
    for kv in ks:
        e = claim.expr.subs(K, kv)
        if claim.given:
            given = {sp.sympify(a).subs(K, kv).doit(): sp.sympify(b).subs(K, kv).doit()
                     for a, b in claim.given.items()}
            e = e.doit()
            e = e.subs(given)
        e = e.doit()
        ok = _is_zero(e) if claim.kind == "zero" else _relation_holds(e)
        if not ok:
            return False
    return True


def _alarm(seconds):
    """A context manager that raises CheckTimeout after ``seconds`` (main thread only)."""
    class _Ctx:
        def __enter__(self):
            self.active = (seconds and threading.current_thread() is threading.main_thread()
                           and hasattr(signal, "setitimer"))
            if self.active:
                def handler(signum, frame):
                    raise CheckTimeout()
                self.old = signal.signal(signal.SIGALRM, handler)
                signal.setitimer(signal.ITIMER_REAL, seconds)
            return self

        def __exit__(self, *exc):
            if self.active:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, self.old)
            return False
    return _Ctx()


def check_theorem(th: Theorem, *, timeout: float | None = 120.0, allow_instances: bool = True) -> Result:
    """Derive and check every claim of ``th``; the method is the weakest one any claim needed."""
    t0 = time.perf_counter()
    method, status, detail, n_claims = th.method, "proved", "", 0
    try:
        with _alarm(timeout):
            claims = th.build()
            n_claims = len(claims)
            for cl in claims:
                if check_symbolic(cl):
                    continue
                if allow_instances and th.allow_instances and check_instances(cl):
                    method = "instances"
                    continue
                status, method = "failed", "none"
                detail = f"claim {cl.label or '?'} did not reduce: {sp.sstr(cl.expr)[:300]}"
                break
    except CheckTimeout:
        status, method, detail = "failed", "none", f"timed out after {timeout} s"
    except Exception as exc:  # a derivation error is a failed theorem, not a crash
        status, method, detail = "failed", "none", f"{type(exc).__name__}: {exc}"
    return Result(
        recipe=th.recipe, name=th.name, statement=th.statement, assumptions=th.assumptions,
        method=method, status=status, seconds=round(time.perf_counter() - t0, 4), claims=n_claims,
        finding=th.finding, note=th.note, detail=detail,
    )


# --------------------------------------------------------------------------
# shared lemmas and helpers
# --------------------------------------------------------------------------


def zero(expr, label="", **kw) -> Claim:
    return Claim(expr, "zero", label, **kw)


def holds(rel, label="", **kw) -> Claim:
    return Claim(rel, "true", label, **kw)


def gibbs_lemma_claims() -> list[Claim]:
    """``f(x) = x − 1 − log x ≥ 0`` on ``x > 0``: f(1) = 0, f'(1) = 0 and f'' > 0 (convex)."""
    x = sp.Symbol("x", positive=True)
    f = x - 1 - sp.log(x)
    return [
        zero(f.subs(x, 1), "gibbs: f(1) = 0"),
        zero(sp.diff(f, x).subs(x, 1), "gibbs: f'(1) = 0"),
        holds(sp.diff(f, x, 2) > 0, "gibbs: f'' > 0"),
    ]


def neg_xlogx_claims() -> list[Claim]:
    """``−x log x ≥ 0`` on ``0 < x ≤ 1`` and ``> 0`` on ``0 < x < 1`` (``x = 1/(1+v)``)."""
    v = sp.Symbol("v", nonnegative=True)
    vp = sp.Symbol("v", positive=True)
    x = 1 / (1 + v)
    xp = 1 / (1 + vp)
    return [
        holds(-x * sp.log(x) >= 0, "-x log x >= 0 on (0, 1]"),
        holds(-xp * sp.log(xp) > 0, "-x log x > 0 on (0, 1)"),
    ]


def entropy(row: Row, q: Callable[[object], sp.Expr]) -> sp.Expr:
    """``H(q) = −Σ_j q_j log q_j``."""
    return -row.sum(lambda j: q(j) * sp.log(q(j)))


STANDING = r"K \in \mathbb{Z},\ K \ge 2"  #: the standing assumption of the integer-label recipes


def onehot_setup(q: Callable):
    """``(row, qf, L_def)`` for a target ``q(row, j)``: the symbolic-K row, ``qf(j)`` and ``−Σ q log p``."""
    row = Row.split()
    qf = lambda j: q(row, j)
    return row, qf, lambda: cross_entropy(row, qf)


def mass_and_closed_form(recipe: str, row: Row, qf, L_def, closed: Callable, statement: str,
                         assumptions: str = STANDING, mass: str = r"\sum_j q_j = 1") -> list[Theorem]:
    """The ``target_mass`` (``Σ q = 1``) and ``closed_form`` (``−Σ q log p = closed()``) theorems."""
    return [Theorem(recipe, "target_mass", mass, lambda: [zero(row.sum(qf) - 1)], assumptions),
            Theorem(recipe, "closed_form", statement, lambda: [zero(L_def() - closed())], assumptions)]


def gradient_claims(row: Row, loss: sp.Expr, grad: Callable[[object], sp.Expr], fam="z") -> list[Claim]:
    """``∂loss/∂fam_j − grad(j) = 0`` for each distinguished class ``j``."""
    return [zero(sp.diff(loss, row.v(fam, j)) - grad(j), f"d/d{fam}_{j}") for j in row.keys]


# The closed forms for a concrete K (what the tie tests lambdify) live in proofs.closed_forms;
# imported last because they build on Row.
from proofs.closed_forms import ClosedForm, concrete_lambdify, onehot_closed_form  # noqa: E402,F401
