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


def _truth(rel, what: str) -> bool:
    if isinstance(rel, (bool, np.bool_)):
        return bool(rel)
    if rel is sp.true:
        return True
    if rel is sp.false:
        return False
    raise SymbolicBranch(f"{what}: cannot decide {rel} exactly (symbolic operands)")


def _compare(op, a, b, what):
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
    return _truth(rel(a, b), what)


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
                 assume_nonzero: bool = False):
        self.shift = shift
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
                return _literal(v)
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
            write(v, _as_object(a))
        for eqn in _live(jaxpr):
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
                o = _as_object(o)
                shape = tuple(v.aval.shape) if hasattr(v.aval, "shape") else ()
                if o.shape != shape:
                    o = np.broadcast_to(o, shape).copy()
                write(v, o)
        return [read(v) for v in jaxpr.outvars]

    def closed(self, closed_jaxpr, args):
        return self.run(closed_jaxpr.jaxpr, closed_jaxpr.consts, args)


def _is_var(v) -> bool:
    return type(v).__name__ not in ("Literal", "DropVar")


def _live(jaxpr) -> list:
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


def _literal(v):
    val = v.val
    return constant_array(np.asarray(val))


def _as_object(a) -> np.ndarray:
    if isinstance(a, np.ndarray) and a.dtype == object:
        return a
    if isinstance(a, np.ndarray) or hasattr(a, "__array__") and not isinstance(a, sp.Basic):
        return constant_array(np.asarray(a))
    out = np.empty((), dtype=object)
    out[()] = a if isinstance(a, (sp.Basic, bool, Bits)) else exact(a)
    return out


def _map(f, *arrays):
    arrays = [_as_object(a) for a in arrays]
    shape = np.broadcast_shapes(*[a.shape for a in arrays])
    arrays = [np.broadcast_to(a, shape) for a in arrays]
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(shape):
        out[ix] = f(*[a[ix] for a in arrays])
    return out


# --------------------------------------------------------------------------
# primitive rules: rule(evaluator, eqn, inputs) -> output (or list of outputs)
# --------------------------------------------------------------------------

PRIMITIVES: dict[str, Callable] = {}


def rule(*names):
    def deco(f):
        for n in names:
            PRIMITIVES[n] = f
        return f
    return deco


def _dtype(eqn, i=0):
    return np.dtype(eqn.outvars[i].aval.dtype)


def _is_float(dtype) -> bool:
    """Floating dtypes, including ml_dtypes' bfloat16 (which NumPy does not call floating)."""
    return np.dtype(dtype).name in ("bfloat16", "float16", "float32", "float64")


def _num(x):
    """An entry as a SymPy number/expression (bools as 0/1)."""
    if isinstance(x, Bits):
        x._refuse()
    if isinstance(x, (bool, np.bool_)):
        return sp.Integer(int(x))
    return sp.sympify(x)


def _elementwise(f):
    return lambda ev, eqn, ins: _map(lambda *xs: f(*[_num(x) for x in xs]), *ins)


def _is_int_dtype(eqn):
    return np.issubdtype(_dtype(eqn), np.integer)


def _div(ev, eqn, ins):
    if _is_int_dtype(eqn):  # lax.div on integers rounds toward zero
        def idiv(a, b):
            a, b = as_int(a, "integer div"), as_int(b, "integer div")
            return sp.Integer(int(a / b) if b else 0)
        return _map(idiv, *ins)
    return _map(lambda a, b: _num(a) / _num(b), *ins)


def _rem(ev, eqn, ins):
    def r(a, b):
        a, b = as_int(a, "rem"), as_int(b, "rem")
        return sp.Integer(int(math.fmod(a, b)))
    return _map(r, *ins)


PRIMITIVES["add"] = PRIMITIVES["add_any"] = _elementwise(lambda a, b: a + b)
PRIMITIVES["sub"] = _elementwise(lambda a, b: a - b)
PRIMITIVES["mul"] = _elementwise(lambda a, b: a * b)
PRIMITIVES["div"] = _div
PRIMITIVES["rem"] = _rem
PRIMITIVES["neg"] = _elementwise(lambda a: -a)
PRIMITIVES["exp"] = _elementwise(sp.exp)
PRIMITIVES["exp2"] = _elementwise(lambda a: 2**a)
PRIMITIVES["log"] = _elementwise(sp.log)
PRIMITIVES["log1p"] = _elementwise(lambda a: sp.log(1 + a))
PRIMITIVES["expm1"] = _elementwise(lambda a: sp.exp(a) - 1)
PRIMITIVES["sqrt"] = _elementwise(sp.sqrt)
PRIMITIVES["rsqrt"] = _elementwise(lambda a: 1 / sp.sqrt(a))
PRIMITIVES["square"] = _elementwise(lambda a: a**2)
PRIMITIVES["abs"] = _elementwise(sp.Abs)
PRIMITIVES["sign"] = _elementwise(sp.sign)
PRIMITIVES["pow"] = _elementwise(lambda a, b: a**b)
PRIMITIVES["tanh"] = _elementwise(sp.tanh)
PRIMITIVES["logistic"] = _elementwise(lambda a: 1 / (1 + sp.exp(-a)))


@rule("integer_pow")
def _integer_pow(ev, eqn, ins):
    y = int(eqn.params["y"])
    return _map(lambda a: _num(a) ** y, ins[0])


def _extremum(kind):
    pick = sp.Max if kind == "max" else sp.Min

    neutral = -sp.oo if kind == "max" else sp.oo

    def f(ev, eqn, ins):
        def one(a, b):
            a, b = _num(a), _num(b)
            if (a.is_number and b.is_number) or a == neutral or b == neutral:
                return pick(a, b)
            # a running maximum (chunked, online logsumexp) is a shift too: see the module docstring
            return ev.fresh() if ev.shift else pick(a, b)
        return _map(one, *ins)
    return f


PRIMITIVES["max"] = _extremum("max")
PRIMITIVES["min"] = _extremum("min")


@rule("clamp")
def _clamp(ev, eqn, ins):
    lo, x, hi = ins
    return _map(lambda lo_, x_, hi_: sp.Min(sp.Max(_num(x_), _num(lo_)), _num(hi_)), lo, x, hi)


def _comparison(op):
    def f(ev, eqn, ins):
        return _map(lambda a, b: _compare(op, _num(a), _num(b), f"comparison {op}"), *ins)
    return f


for _op in ("lt", "le", "gt", "ge"):
    PRIMITIVES[_op] = _comparison(_op)


def _equal(ev, a, b, what):
    try:
        return _compare("eq", _num(a), _num(b), what)
    except SymbolicBranch:
        if ev.assume_nonzero:
            return False
        raise


PRIMITIVES["eq"] = lambda ev, eqn, ins: _map(lambda a, b: _equal(ev, a, b, "comparison eq"), *ins)
PRIMITIVES["ne"] = lambda ev, eqn, ins: _map(lambda a, b: not _equal(ev, a, b, "comparison ne"), *ins)


def _logical(op):
    def f(ev, eqn, ins):
        boolean = _dtype(eqn) == np.bool_

        def one(*xs):
            if boolean:
                vals = [_truth(x, f"logical {op}") if not isinstance(x, sp.Basic) or x in (sp.true, sp.false)
                        else bool(as_int(x, op)) for x in xs]
                return {"and": lambda a, b: a and b, "or": lambda a, b: a or b,
                        "not": lambda a: not a, "xor": lambda a, b: a != b}[op](*vals)
            vals = [as_int(x, op) for x in xs]
            return sp.Integer({"and": lambda a, b: a & b, "or": lambda a, b: a | b,
                               "not": lambda a: ~a, "xor": lambda a, b: a ^ b}[op](*vals))
        return _map(one, *ins)
    return f


for _op in ("and", "or", "not", "xor"):
    PRIMITIVES[_op] = _logical(_op)


@rule("is_finite")
def _is_finite(ev, eqn, ins):
    def one(x):
        x = _num(x)
        if x.is_finite is True:
            return True
        if x.is_number:
            return False
        raise SymbolicBranch(f"is_finite: cannot decide whether {x} is finite")
    return _map(one, ins[0])


@rule("select_n")
def _select_n(ev, eqn, ins):
    pred, cases = ins[0], ins[1:]

    def one(p, *cs):
        if isinstance(p, (bool, np.bool_)):
            i = int(p)
        else:
            i = as_int(p, "select_n predicate")
        return cs[i]
    return _map(one, pred, *cases)


@rule("convert_element_type")
def _convert(ev, eqn, ins):
    dt = np.dtype(eqn.params["new_dtype"])

    def one(x):
        if dt == np.bool_:
            return bool(as_int(x, "convert to bool")) if not isinstance(x, bool) else x
        if isinstance(x, (bool, np.bool_)):
            return sp.Integer(int(x))
        if np.issubdtype(dt, np.integer):
            x = _num(x)
            if x.is_Integer:
                return x
            if x.is_number:
                return sp.Integer(int(x))  # truncation toward zero, as XLA
            raise SymbolicBranch(f"convert_element_type to {dt} of a symbolic value {x}")
        return x  # identity over the reals
    return _map(one, ins[0])


@rule("stop_gradient", "copy", "copy_p", "reduce_precision")
def _identity(ev, eqn, ins):
    return ins[0]


@rule("optimization_barrier")
def _barrier(ev, eqn, ins):
    return list(ins)


@rule("iota")
def _iota(ev, eqn, ins):
    shape, dim = tuple(eqn.params["shape"]), eqn.params["dimension"]
    out = np.empty(shape, dtype=object)
    for ix in np.ndindex(shape):
        out[ix] = sp.Integer(ix[dim])
    return out


def _reduce(combine, identity):
    def f(ev, eqn, ins):
        axes = tuple(eqn.params["axes"])
        x = ins[0]
        keep = [d for d in range(x.ndim) if d not in axes]
        moved = np.transpose(x, keep + list(axes))
        out_shape = tuple(x.shape[d] for d in keep)
        flat = moved.reshape(out_shape + (-1,))
        out = np.empty(out_shape, dtype=object)
        for ix in np.ndindex(out_shape):
            out[ix] = combine(ev, [_num(v) for v in flat[ix]], identity)
        return out
    return f


def _sum(ev, vals, identity):
    return sp.Add(*vals) if vals else identity


def _extreme_reduce(kind):
    def combine(ev, vals, identity):
        vals = [v for v in vals if v != identity]
        if not vals:
            return identity
        if all(v.is_number for v in vals):
            return (sp.Max if kind == "max" else sp.Min)(*vals)
        if ev.shift:
            return ev.fresh()
        return (sp.Max if kind == "max" else sp.Min)(*vals)
    return combine


PRIMITIVES["reduce_sum"] = _reduce(_sum, sp.Integer(0))
PRIMITIVES["reduce_prod"] = _reduce(lambda ev, vals, i: sp.Mul(*vals) if vals else i, sp.Integer(1))
PRIMITIVES["reduce_max"] = _reduce(_extreme_reduce("max"), -sp.oo)
PRIMITIVES["reduce_min"] = _reduce(_extreme_reduce("min"), sp.oo)


def _reduce_bool(kind):
    def f(ev, eqn, ins):
        axes = tuple(eqn.params["axes"])
        x = ins[0]
        keep = [d for d in range(x.ndim) if d not in axes]
        flat = np.transpose(x, keep + list(axes)).reshape(tuple(x.shape[d] for d in keep) + (-1,))
        out = np.empty(flat.shape[:-1], dtype=object)
        for ix in np.ndindex(out.shape):
            vals = [_truth(v, kind) if not isinstance(v, sp.Basic) else bool(as_int(v, kind)) for v in flat[ix]]
            out[ix] = all(vals) if kind == "reduce_and" else any(vals)
        return out
    return f


PRIMITIVES["reduce_and"] = _reduce_bool("reduce_and")
PRIMITIVES["reduce_or"] = _reduce_bool("reduce_or")


@rule("argmax", "argmin")
def _argext(ev, eqn, ins):
    (axis,) = eqn.params["axes"]
    x = np.moveaxis(ins[0], axis, -1)
    out = np.empty(x.shape[:-1], dtype=object)
    for ix in np.ndindex(out.shape):
        vals = [_num(v) for v in x[ix]]
        if not all(v.is_number for v in vals):
            raise SymbolicBranch(f"{eqn.primitive.name} of symbolic values")
        best = max(vals) if eqn.primitive.name == "argmax" else min(vals)
        out[ix] = sp.Integer(vals.index(best))
    return out


@rule("broadcast_in_dim")
def _broadcast_in_dim(ev, eqn, ins):
    shape, dims = tuple(eqn.params["shape"]), tuple(eqn.params["broadcast_dimensions"])
    x = ins[0]
    expanded = [1] * len(shape)
    for src, dst in enumerate(dims):
        expanded[dst] = x.shape[src]
    return np.broadcast_to(x.reshape(expanded), shape).copy()


@rule("reshape")
def _reshape(ev, eqn, ins):
    if eqn.params.get("dimensions") is not None:
        raise UnsupportedPrimitive("reshape with dimensions= is not supported by proofs.jaxpr")
    return ins[0].reshape(tuple(eqn.params["new_sizes"]))


@rule("squeeze")
def _squeeze(ev, eqn, ins):
    return np.squeeze(ins[0], axis=tuple(eqn.params["dimensions"])) if eqn.params["dimensions"] else ins[0]


@rule("expand_dims")
def _expand_dims(ev, eqn, ins):
    return np.expand_dims(ins[0], tuple(eqn.params["dimensions"]))


@rule("transpose")
def _transpose(ev, eqn, ins):
    return np.transpose(ins[0], tuple(eqn.params["permutation"])).copy()


@rule("rev")
def _rev(ev, eqn, ins):
    return np.flip(ins[0], tuple(eqn.params["dimensions"])).copy()


@rule("concatenate")
def _concatenate(ev, eqn, ins):
    return np.concatenate(ins, axis=eqn.params["dimension"])


@rule("slice")
def _slice(ev, eqn, ins):
    start, limit = eqn.params["start_indices"], eqn.params["limit_indices"]
    strides = eqn.params.get("strides") or (1,) * len(start)
    return ins[0][tuple(slice(a, b, s) for a, b, s in zip(start, limit, strides))].copy()


@rule("pad")
def _pad(ev, eqn, ins):
    x, value = ins
    config = eqn.params["padding_config"]
    if any(int(i) != 0 for _, _, i in config) or any(lo < 0 or hi < 0 for lo, hi, _ in config):
        raise UnsupportedPrimitive("pad with interior or negative padding is not supported by proofs.jaxpr")
    out = np.empty(tuple(n + lo + hi for n, (lo, hi, _) in zip(x.shape, config)), dtype=object)
    out[...] = value[()]
    out[tuple(slice(lo, lo + n) for n, (lo, _, _) in zip(x.shape, config))] = x
    return out


def _clamped_starts(x, sizes, starts):
    # XLA clamps dynamic-slice starts so the window stays inside the operand.
    return [min(max(as_int(s[()], "dynamic_slice start"), 0), n - k) for s, n, k in zip(starts, x.shape, sizes)]


@rule("dynamic_slice")
def _dynamic_slice(ev, eqn, ins):
    x, starts = ins[0], ins[1:]
    sizes = tuple(eqn.params["slice_sizes"])
    st = _clamped_starts(x, sizes, starts)
    return x[tuple(slice(a, a + k) for a, k in zip(st, sizes))].copy()


@rule("dynamic_update_slice")
def _dynamic_update_slice(ev, eqn, ins):
    x, upd, starts = ins[0], ins[1], ins[2:]
    st = _clamped_starts(x, upd.shape, starts)
    out = x.copy()
    out[tuple(slice(a, a + k) for a, k in zip(st, upd.shape))] = upd
    return out


@rule("bitcast_convert_type")
def _bitcast(ev, eqn, ins):
    new = np.dtype(eqn.params["new_dtype"])
    src = np.dtype(eqn.invars[0].aval.dtype)
    if src.itemsize != new.itemsize:
        raise UnsupportedPrimitive(f"bitcast_convert_type {src} -> {new} changes the width")

    def one(x):
        if isinstance(x, Bits):
            if x.dtype != new:
                raise SymbolicBranch(f"bitcast of {x.dtype} bits to {new}")
            return x.value
        if _is_float(src) and np.issubdtype(new, np.integer):
            return Bits(x, src)
        raise UnsupportedPrimitive(f"bitcast_convert_type {src} -> {new} of a value")
    return _map(one, ins[0])


@rule("dot_general")
def _dot_general(ev, eqn, ins):
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    a, b = ins
    lf = [d for d in range(a.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(b.ndim) if d not in rc and d not in rb]
    at = np.transpose(a, list(lb) + lf + list(lc))
    bt = np.transpose(b, list(rb) + list(rc) + rf)
    nb = int(np.prod([a.shape[d] for d in lb])) if lb else 1
    nc = int(np.prod([a.shape[d] for d in lc])) if lc else 1
    nl = int(np.prod([a.shape[d] for d in lf])) if lf else 1
    nr = int(np.prod([b.shape[d] for d in rf])) if rf else 1
    a3 = at.reshape(nb, nl, nc)
    b3 = bt.reshape(nb, nc, nr)
    out = np.empty((nb, nl, nr), dtype=object)
    for i, j, k in itertools.product(range(nb), range(nl), range(nr)):
        out[i, j, k] = sp.Add(*[_num(a3[i, j, c]) * _num(b3[i, c, k]) for c in range(nc)])
    shape = tuple(a.shape[d] for d in lb) + tuple(a.shape[d] for d in lf) + tuple(b.shape[d] for d in rf)
    return out.reshape(shape)


# --- gather / scatter (XLA semantics, index vector in the last dimension) ------------------


def _mode_name(mode) -> str:
    return str(getattr(mode, "name", mode)).upper()


@rule("gather")
def _gather(ev, eqn, ins):
    x, idx = ins
    dn = eqn.params["dimension_numbers"]
    sizes = tuple(eqn.params["slice_sizes"])
    mode = _mode_name(eqn.params["mode"])
    fill = eqn.params.get("fill_value")
    out_shape = tuple(eqn.outvars[0].aval.shape)
    offset_dims = tuple(dn.offset_dims)
    batch_out = [d for d in range(len(out_shape)) if d not in offset_dims]
    window = [d for d in range(x.ndim) if d not in dn.collapsed_slice_dims
              and d not in getattr(dn, "operand_batching_dims", ())]
    out = np.empty(out_shape, dtype=object)
    fill_value = sp.nan if fill is None and _is_float(_dtype(eqn)) else (
        exact(fill, _dtype(eqn).name) if fill is not None else sp.Integer(0))
    for ix in np.ndindex(out_shape):
        g = tuple(ix[d] for d in batch_out)
        vec = idx[g] if idx.ndim > len(g) else idx[g][None]
        start = [0] * x.ndim
        for k, d in enumerate(dn.start_index_map):
            start[d] = as_int(vec[k], "gather index")
        for d_op, d_idx in zip(getattr(dn, "operand_batching_dims", ()), getattr(dn, "start_indices_batching_dims", ())):
            start[d_op] = g[d_idx]
        inb = all(0 <= start[d] <= x.shape[d] - sizes[d] for d in range(x.ndim))
        if not inb:
            if "FILL" in mode:
                out[ix] = fill_value
                continue
            start = [min(max(s, 0), x.shape[d] - sizes[d]) for d, s in enumerate(start)]
        full = list(start)
        for w, d_out in zip(window, offset_dims):
            full[w] += ix[d_out]
        out[ix] = x[tuple(full)]
    return out


def _scatter(combine):
    def f(ev, eqn, ins):
        x, idx, upd = ins[0], ins[1], ins[2]
        dn = eqn.params["dimension_numbers"]
        mode = _mode_name(eqn.params["mode"])
        if eqn.params.get("update_jaxpr") is not None and combine is None:
            pass
        out = x.copy()
        uwd = tuple(dn.update_window_dims)
        batch_upd = [d for d in range(upd.ndim) if d not in uwd]
        window = [d for d in range(x.ndim) if d not in dn.inserted_window_dims
                  and d not in getattr(dn, "operand_batching_dims", ())]
        win_sizes = [upd.shape[d] for d in uwd]
        for ix in np.ndindex(upd.shape):
            g = tuple(ix[d] for d in batch_upd)
            vec = idx[g] if idx.ndim > len(g) else idx[g][None]
            start = [0] * x.ndim
            for k, d in enumerate(dn.scatter_dims_to_operand_dims):
                start[d] = as_int(vec[k], "scatter index")
            for d_op, d_idx in zip(getattr(dn, "operand_batching_dims", ()),
                                   getattr(dn, "scatter_indices_batching_dims", ())):
                start[d_op] = g[d_idx]
            sizes = [1] * x.ndim
            for w, n in zip(window, win_sizes):
                sizes[w] = n
            inb = all(0 <= start[d] <= x.shape[d] - sizes[d] for d in range(x.ndim))
            if not inb:
                if "CLIP" in mode:
                    start = [min(max(s, 0), x.shape[d] - sizes[d]) for d, s in enumerate(start)]
                else:
                    continue  # FILL_OR_DROP / PROMISE_IN_BOUNDS: out-of-bounds updates are dropped
            full = list(start)
            for w, d_upd in zip(window, uwd):
                full[w] += ix[d_upd]
            full = tuple(full)
            out[full] = upd[ix] if combine is None else combine(_num(out[full]), _num(upd[ix]))
        return out
    return f


PRIMITIVES["scatter"] = _scatter(None)
PRIMITIVES["scatter-add"] = PRIMITIVES["scatter_add"] = _scatter(lambda a, b: a + b)
PRIMITIVES["scatter-mul"] = PRIMITIVES["scatter_mul"] = _scatter(lambda a, b: a * b)


# --- calls and control flow -------------------------------------------------------------------


def _call_rule(param):
    def f(ev, eqn, ins):
        sub = eqn.params[param]
        if hasattr(sub, "jaxpr") and hasattr(sub, "consts"):
            return ev.closed(sub, ins)
        return ev.run(sub, [], ins)
    return f


PRIMITIVES["jit"] = PRIMITIVES["pjit"] = PRIMITIVES["closed_call"] = PRIMITIVES["core_call"] = _call_rule("jaxpr")
PRIMITIVES["remat"] = PRIMITIVES["checkpoint"] = _call_rule("jaxpr")
PRIMITIVES["custom_jvp_call"] = _call_rule("call_jaxpr")
PRIMITIVES["custom_vjp_call"] = PRIMITIVES["custom_vjp_call_jaxpr"] = _call_rule("call_jaxpr")

MAX_ITERATIONS = 10_000


@rule("while")
def _while(ev, eqn, ins):
    p = eqn.params
    cn, bn = p["cond_nconsts"], p["body_nconsts"]
    cconsts, bconsts, carry = ins[:cn], ins[cn:cn + bn], list(ins[cn + bn:])
    for _ in range(MAX_ITERATIONS):
        (pred,) = ev.closed(p["cond_jaxpr"], [*cconsts, *carry])
        if not _truth(pred[()], "while predicate"):
            return carry
        carry = ev.closed(p["body_jaxpr"], [*bconsts, *carry])
    raise SymbolicBranch(f"while loop ran past {MAX_ITERATIONS} iterations")


@rule("scan")
def _scan(ev, eqn, ins):
    p = eqn.params
    nc, ncarry, length = p["num_consts"], p["num_carry"], p["length"]
    consts, carry, xs = ins[:nc], list(ins[nc:nc + ncarry]), ins[nc + ncarry:]
    ys = []
    order = range(length - 1, -1, -1) if p.get("reverse") else range(length)
    for i in order:
        out = ev.closed(p["jaxpr"], [*consts, *carry, *[x[i] for x in xs]])
        carry, y = list(out[:ncarry]), out[ncarry:]
        ys.append((i, y))
    ys.sort(key=lambda t: t[0])
    n_ys = len(eqn.outvars) - ncarry
    stacked = []
    for k in range(n_ys):
        shape = (length,) + tuple(eqn.outvars[ncarry + k].aval.shape[1:])
        arr = np.empty(shape, dtype=object)
        for i, y in ys:
            arr[i] = y[k]
        stacked.append(arr)
    return carry + stacked


@rule("cond")
def _cond(ev, eqn, ins):
    index = as_int(ins[0][()], "cond index")
    branches = eqn.params["branches"]
    return ev.closed(branches[min(max(index, 0), len(branches) - 1)], list(ins[1:]))
