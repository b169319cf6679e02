r"""An interpreter that runs a ``jax.make_jaxpr`` trace on arrays of SymPy expressions.

:func:`evaluate` walks the equations of a ``ClosedJaxpr`` and applies each
primitive to NumPy object arrays whose entries are SymPy expressions (or exact
numbers), so the *compiled program itself* -- not a transcription of it -- can
be compared with a closed form in :mod:`proofs.code`.

Semantics (over the reals)
--------------------------
* Arithmetic, ``exp``/``log``/``log1p``/``sqrt``/``pow``, reductions,
  reshapes, broadcasting, slicing, gathers and scatters are the real-number
  operations they round; ``convert_element_type`` is the identity over the
  reals (bool → 0/1, int → Integer); float → int only on concrete values.
  Float rounding is therefore *outside* what a theorem built on this
  interpreter proves: it proves the program's algebra, exactly.
* **Float literals become exact rationals**, by :func:`exact`: an
  integer-valued float becomes that Integer; otherwise the rational with the
  smallest denominator ``≤ 4096`` that rounds to the literal *in the literal's
  own dtype* (so ``float32(1/3)`` is ``1/3`` and ``float32(0.1)`` is ``1/10``),
  failing that the shortest decimal that round-trips in that dtype (NumPy's
  ``repr``: ``float32(1e-10)`` is ``1/10**10``). Both choices name the real
  constant the source wrote, of which the stored float is the rounding; the
  alternative, the float's exact binary value (``sympy.Rational(float(x))``),
  would make every such constant differ from the spec by a rounding error and
  no proof could be exact (the prototype's ``1.1e-16·ε`` residual).
  ``±inf`` and ``nan`` become ``±oo`` and ``nan``.
* Comparisons, ``select_n``, ``while``/``cond`` predicates, gather/scatter
  indices and ``dynamic_slice`` starts must be decidable: concrete numbers, or
  symbolic comparisons that SymPy's assumption system decides (e.g.
  ``Σ exp(·) > 0``); anything else raises :class:`SymbolicBranch`.
* ``is_finite`` of a symbolic real expression is True: every theorem is about
  finite real inputs. ``stop_gradient`` and ``optimization_barrier`` are the
  identity (their effect on the gradient is already in the traced backward).
* ``reduce_max`` (and ``reduce_min``/``max``/``min``) of symbolic operands
  yields, when the evaluator's ``shift`` option is on (the default), a fresh
  symbol ``log μ`` (``μ > 0``, so any real number) per entry: the code uses the
  row maximum (or a running maximum) only as a shift, and a proof that holds
  for an *arbitrary* shift shows that the shift cancels exactly. Were a
  maximum used otherwise, its fresh symbol would survive into the result and
  the comparison with the spec would fail: the replacement can refuse a
  correct program, never accept a wrong one. With ``shift=False`` they become
  ``sympy.Max``/``Min``.
* ``bitcast_convert_type`` from a 16-bit float to ``uint16`` and back is
  carried as an opaque :class:`Bits` wrapper (the round trip is exact; any
  arithmetic on the bits raises).
* ``custom_jvp_call``/``custom_vjp_call`` evaluate their primal ``call_jaxpr``;
  under ``jax.grad`` the trace already contains the custom rules' equations
  (the backward of a ``custom_vjp`` appears traced), so they are evaluated too.
* ``shard_map`` runs its body once per shard in lockstep (an SPMD evaluator):
  ``psum``/``pmax``/``pmin``/``axis_index`` combine the shards exactly.

An unknown primitive raises :class:`UnsupportedPrimitive` naming it; nothing
is ever skipped silently.

Example:

>>> import jax, jax.numpy as jnp, sympy as sp
>>> x = sp.Symbol("x", real=True)
>>> jx = jax.make_jaxpr(lambda a: jnp.sum(jnp.exp(a) * 0.5))(jnp.zeros(2))
>>> out, = evaluate(jx, [np_array([x, 2 * x])])
>>> sp.simplify(out[()] - (sp.exp(x) + sp.exp(2 * x)) / 2)
0
"""

from __future__ import annotations

import functools
import itertools
import math
from fractions import Fraction
from typing import Callable, Sequence

import numpy as np
import sympy as sp

__all__ = ["evaluate", "exact", "np_array", "PRIMITIVES", "UnsupportedPrimitive", "SymbolicBranch", "Bits"]


class UnsupportedPrimitive(NotImplementedError):
    """The trace reached a primitive the interpreter does not know (named in the message)."""


class SymbolicBranch(ValueError):
    """A comparison, predicate or index the interpreter cannot decide exactly."""


class Bits:
    """The bit pattern of a 16-bit float entry (``bitcast_convert_type``), opaque to arithmetic."""

    __slots__ = ("value", "dtype")

    def __init__(self, value, dtype):
        self.value, self.dtype = value, np.dtype(dtype)

    def __repr__(self):
        return f"Bits({self.value!r}, {self.dtype})"

    def _refuse(self, *_):
        raise SymbolicBranch("arithmetic on the bit pattern of a float (bitcast_convert_type) is not modelled")

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = __truediv__ = __neg__ = _refuse


def np_array(entries, shape=None) -> np.ndarray:
    """An object array of ``entries`` (nested lists or a flat list with ``shape``)."""
    a = np.empty(len(entries), dtype=object) if shape is not None else None
    if a is not None:
        for i, e in enumerate(entries):
            a[i] = e
        return a.reshape(shape)
    flat = list(np.asarray(entries, dtype=object).ravel())
    out = np.empty(len(flat), dtype=object)
    for i, e in enumerate(flat):
        out[i] = sp.sympify(e)
    return out.reshape(np.shape(np.asarray(entries, dtype=object)))


# --------------------------------------------------------------------------
# exact constants
# --------------------------------------------------------------------------

MAX_DENOMINATOR = 4096


@functools.lru_cache(maxsize=None)
def _exact_float(value: float, dtype_name: str):
    x = np.dtype(dtype_name).type(value)
    if np.isnan(x):
        return sp.nan
    if np.isinf(x):
        return sp.oo if x > 0 else -sp.oo
    if float(x) == math.floor(float(x)):
        return sp.Integer(int(float(x)))
    cast = np.dtype(dtype_name).type
    for q in range(1, MAX_DENOMINATOR + 1):
        p = round(float(x) * q)
        if cast(float(Fraction(p, q))) == x:
            return sp.Rational(p, q)
    return sp.Rational(repr(float(x)) if np.dtype(dtype_name) == np.float64 else str(x))


def exact(value, dtype=None):
    """The exact SymPy value of a literal/constant (see the module docstring for floats)."""
    if isinstance(value, (sp.Basic, Bits)):
        return value
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return sp.Integer(int(value))
    if isinstance(value, (float, np.floating)):
        name = np.dtype(dtype).name if dtype is not None else (np.asarray(value).dtype.name)
        if name not in ("float16", "bfloat16", "float32", "float64"):
            name = "float64"
        return _exact_float(float(value), name)
    raise TypeError(f"cannot make an exact constant of {value!r} ({type(value).__name__})")


def constant_array(value) -> np.ndarray:
    """A concrete array (NumPy/JAX) as an object array of exact entries."""
    arr = np.asarray(value)
    dt = arr.dtype
    out = np.empty(arr.shape, dtype=object)
    for ix in np.ndindex(arr.shape):
        v = arr[ix]
        if dt == np.bool_:
            out[ix] = bool(v)
        elif np.issubdtype(dt, np.integer):
            out[ix] = sp.Integer(int(v))
        else:
            out[ix] = exact(float(v), dt.name)
    return out


# --------------------------------------------------------------------------
# decisions on entries
# --------------------------------------------------------------------------


def is_concrete(x) -> bool:
    return isinstance(x, (bool, int, np.bool_, np.integer)) or (isinstance(x, sp.Basic) and x.is_number)


def truth(rel, what: str) -> bool:
    if isinstance(rel, (bool, np.bool_)):
        return bool(rel)
    if rel is sp.true:
        return True
    if rel is sp.false:
        return False
    raise SymbolicBranch(f"{what}: cannot decide {rel} exactly (symbolic operands)")


def compare_entries(op, a, b, what):
    if isinstance(a, bool) or isinstance(b, bool):
        a, b = sp.Integer(int(a)), sp.Integer(int(b))
    if op == "eq":
        d = sp.sympify(a) - sp.sympify(b)
        if d.is_zero is True:
            return True
        if d.is_zero is False:
            return False
        raise SymbolicBranch(f"{what}: cannot decide {a} == {b} exactly")
    rel = {"lt": sp.StrictLessThan, "le": sp.LessThan, "gt": sp.StrictGreaterThan, "ge": sp.GreaterThan}[op]
    if a is sp.nan or b is sp.nan:
        return False
    return truth(rel(a, b), what)


def as_int(x, what="index") -> int:
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, sp.Basic) and x.is_Integer:
        return int(x)
    raise SymbolicBranch(f"{what} must be a concrete integer, got {x}")


# --------------------------------------------------------------------------
# the evaluator
# --------------------------------------------------------------------------


def _fresh_factory(prefix: str):
    """Fresh shifts ``log μ_k`` (``μ_k > 0``): every real number is one, and ``exp`` of a
    logit minus the shift is then a rational function, which keeps the exact checks fast."""
    counter = itertools.count()
    return lambda: sp.log(sp.Symbol(f"{prefix}{next(counter)}", positive=True))


class Evaluator:
    """Evaluates jaxprs on object arrays. ``shift``: see the module docstring."""

    def __init__(self, *, shift: bool = True, fresh: Callable[[], sp.Symbol] | None = None,
                 assume_nonzero: bool = False, generic=frozenset(), branches=None):
        self.shift = shift
        #: ``{(primitive, constant): outcome}``: how an undecidable comparison with that constant (outcome:
        #: bool) or ``max``/``min`` with it (outcome: the operand index) is decided -- a regime the caller
        #: must state as an assumption (e.g. distillation's float-only fallback forms)
        self.branches = dict(branches or {})
        #: parameter symbols in generic position: an undecidable ``x == y`` whose difference involves
        #: only these is decided False (``P.times``' ``c == 0`` for ε ∉ {0, 1}); each one is recorded
        self.generic = frozenset(generic)
        self.assumed_nonzero: set = set()
        #: decide an undecidable ``x == y`` as False (``x ≠ y``): a generic-position assumption the
        #: caller must state (fast-reid counts the rows whose loss is non-zero)
        self.assume_nonzero = assume_nonzero
        self.fresh = fresh or _fresh_factory("m")
        self.axis = None  # (name, index, size) inside a shard_map body, per shard
        self.seen: set[str] = set()

    # --- jaxprs ----------------------------------------------------------
    def run(self, jaxpr, consts, args):
        """Evaluate an open ``Jaxpr`` with constants and arguments (object arrays)."""
        env = {}

        def read(v):
            if type(v).__name__ == "Literal":
                return literal_value(v)
            return env[v]

        def write(v, val):
            if type(v).__name__ == "DropVar":
                return
            env[v] = val

        for v, c in zip(jaxpr.constvars, consts):
            write(v, c if isinstance(c, np.ndarray) and c.dtype == object else constant_array(c))
        if len(args) != len(jaxpr.invars):
            raise TypeError(f"jaxpr takes {len(jaxpr.invars)} arguments, got {len(args)}")
        for v, a in zip(jaxpr.invars, args):
            write(v, as_object(a))
        for eqn in live_equations(jaxpr):
            name = eqn.primitive.name
            rule = PRIMITIVES.get(name)
            if rule is None:
                raise UnsupportedPrimitive(
                    f"primitive {name!r} is not supported by proofs.jaxpr (params: {sorted(eqn.params)})")
            self.seen.add(name)
            ins = [read(v) for v in eqn.invars]
            outs = rule(self, eqn, ins)
            if not eqn.primitive.multiple_results:
                outs = [outs]
            for v, o in zip(eqn.outvars, outs):
                o = as_object(o)
                shape = tuple(v.aval.shape) if hasattr(v.aval, "shape") else ()
                if o.shape != shape:
                    o = np.broadcast_to(o, shape).copy()
                write(v, o)
        return [read(v) for v in jaxpr.outvars]

    def branch(self, eqn, constant, what: str):
        """The stated outcome of an undecidable ``eqn`` against the number ``constant`` (see ``branches``).

        Keyed by the primitive and the constant (a custom VJP's inner equations carry only their call
        site, so a source function cannot name them); anything not listed raises SymbolicBranch.
        """
        key = (eqn.primitive.name, float(constant)) if getattr(constant, "is_number", False) else None
        if key not in self.branches:
            raise SymbolicBranch(what)
        return self.branches[key]

    def closed(self, closed_jaxpr, args):
        return self.run(closed_jaxpr.jaxpr, closed_jaxpr.consts, args)


def _is_var(v) -> bool:
    return type(v).__name__ not in ("Literal", "DropVar")


def live_equations(jaxpr) -> list:
    """The equations whose results reach an output (the trace is pure: dead code is dropped).

    ``jax.make_jaxpr`` keeps dead equations, e.g. the argmax indicator of
    ``reduce_max``'s JVP under a ``stop_gradient``; evaluating them would ask
    undecidable questions (``z_j == max z``) whose answers nothing uses.
    """
    needed = {v for v in jaxpr.outvars if _is_var(v)}
    live = []
    for eqn in reversed(jaxpr.eqns):
        if any(_is_var(v) and v in needed for v in eqn.outvars) or eqn.effects:
            live.append(eqn)
            needed.update(v for v in eqn.invars if _is_var(v))
    return live[::-1]


def evaluate(closed_jaxpr, args: Sequence, *, shift: bool = True, evaluator: Evaluator | None = None):
    """Evaluate ``closed_jaxpr`` (from ``jax.make_jaxpr``) on object arrays ``args``.

    Returns the list of outputs, each an object array of SymPy expressions.
    """
    ev = evaluator or Evaluator(shift=shift)
    return ev.closed(closed_jaxpr, list(args))


def literal_value(v):
    val = v.val
    return constant_array(np.asarray(val))


def as_object(a) -> np.ndarray:
    if isinstance(a, np.ndarray) and a.dtype == object:
        return a
    if isinstance(a, np.ndarray) or hasattr(a, "__array__") and not isinstance(a, sp.Basic):
        return constant_array(np.asarray(a))
    out = np.empty((), dtype=object)
    out[()] = a if isinstance(a, (sp.Basic, bool, Bits)) else exact(a)
    return out


def elementwise_map(f, *arrays):
    arrays = [as_object(a) for a in arrays]
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    arrays = [np.broadcast_to(a, shape) for a in arrays]
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(shape):
        out[ix] = f(*[a[ix] for a in arrays])
    return out

def is_float_dtype(dtype) -> bool:
    """Floating dtypes, including ml_dtypes' bfloat16 (which NumPy does not call floating)."""
    return np.dtype(dtype).name in ("bfloat16", "float16", "float32", "float64")


def number(x):
    """An entry as a SymPy number/expression (bools as 0/1)."""
    if isinstance(x, Bits):
        x._refuse()
    if isinstance(x, (bool, np.bool_)):
        return sp.Integer(int(x))
    return sp.sympify(x)


# The primitive rules live in proofs.jaxpr_rules (imported last: it uses the helpers above).
from proofs.jaxpr_rules import PRIMITIVES  # noqa: E402
