"""The primitive rules of :mod:`proofs.jaxpr`: ``rule(evaluator, eqn, inputs) -> output(s)``.

Semantics are described in :mod:`proofs.jaxpr`; every rule works on NumPy
object arrays of SymPy entries and decides comparisons and indices exactly
(or raises :class:`proofs.jaxpr.SymbolicBranch`).
"""

from __future__ import annotations

import itertools
import math
from typing import Callable

import numpy as np
import sympy as sp

from proofs.jaxpr import (
    Bits,
    SymbolicBranch,
    UnsupportedPrimitive,
    as_int,
    compare_entries,
    elementwise_map,
    exact,
    is_float_dtype,
    number,
    truth,
)

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


def _elementwise(f):
    return lambda ev, eqn, ins: elementwise_map(lambda *xs: f(*[number(x) for x in xs]), *ins)


def _is_int_dtype(eqn):
    return np.issubdtype(_dtype(eqn), np.integer)


def _div(ev, eqn, ins):
    if _is_int_dtype(eqn):  # lax.div on integers rounds toward zero
        def idiv(a, b):
            a, b = as_int(a, "integer div"), as_int(b, "integer div")
            return sp.Integer(int(a / b) if b else 0)
        return elementwise_map(idiv, *ins)
    return elementwise_map(lambda a, b: number(a) / number(b), *ins)


def _rem(ev, eqn, ins):
    def r(a, b):
        a, b = as_int(a, "rem"), as_int(b, "rem")
        return sp.Integer(int(math.fmod(a, b)))
    return elementwise_map(r, *ins)


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


@rule("sign")
def _sign(ev, eqn, ins):
    """``sign``; a sign SymPy cannot decide takes the stated regime's outcome (key ``("sign", 0)``)."""
    decide = lambda a, out: out if out.is_number else sp.Integer(ev.branch(eqn, sp.Integer(0), f"sign({a})"))  # noqa: E731
    return elementwise_map(lambda a: decide(a, sp.sign(number(a))), ins[0])


PRIMITIVES["pow"] = _elementwise(lambda a, b: a**b)
PRIMITIVES["tanh"] = _elementwise(sp.tanh)
PRIMITIVES["logistic"] = _elementwise(lambda a: 1 / (1 + sp.exp(-a)))


@rule("integer_pow")
def _integer_pow(ev, eqn, ins):
    y = int(eqn.params["y"])
    return elementwise_map(lambda a: number(a) ** y, ins[0])


def _extremum(kind):
    pick = sp.Max if kind == "max" else sp.Min

    neutral = -sp.oo if kind == "max" else sp.oo

    def f(ev, eqn, ins):
        def one(a, b):
            a, b = number(a), number(b)
            if (a.is_number and b.is_number) or a == neutral or b == neutral:
                return pick(a, b)
            if a.is_number or b.is_number:  # a clamp, not a running maximum: only a stated regime decides it
                return (a, b)[ev.branch(eqn, a if a.is_number else b, f"{kind}({a}, {b}) of a symbolic value")]
            # a running maximum (chunked, online logsumexp) is a shift too: see the module docstring
            return ev.fresh() if ev.shift else pick(a, b)
        return elementwise_map(one, *ins)
    return f


PRIMITIVES["max"] = _extremum("max")
PRIMITIVES["min"] = _extremum("min")


@rule("clamp")
def _clamp(ev, eqn, ins):
    lo, x, hi = ins
    return elementwise_map(lambda lo_, x_, hi_: sp.Min(sp.Max(number(x_), number(lo_)), number(hi_)), lo, x, hi)


def _comparison(op):
    def f(ev, eqn, ins):
        def one(a, b):
            try:
                return compare_entries(op, number(a), number(b), f"comparison {op}")
            except SymbolicBranch as exc:
                a, b = number(a), number(b)
                return bool(ev.branch(eqn, b if b.is_number else a, str(exc)))
        return elementwise_map(one, *ins)
    return f


for _op in ("lt", "le", "gt", "ge"):
    PRIMITIVES[_op] = _comparison(_op)


def _equal(ev, a, b, what):
    try:
        return compare_entries("eq", number(a), number(b), what)
    except SymbolicBranch:
        if ev.assume_nonzero:
            return False
        diff = sp.expand(number(a) - number(b))
        if diff.free_symbols and diff.free_symbols <= ev.generic:
            ev.assumed_nonzero.add(diff)
            return False
        raise


PRIMITIVES["eq"] = lambda ev, eqn, ins: elementwise_map(lambda a, b: _equal(ev, a, b, "comparison eq"), *ins)
PRIMITIVES["ne"] = lambda ev, eqn, ins: elementwise_map(lambda a, b: not _equal(ev, a, b, "comparison ne"), *ins)


def _logical(op):
    def f(ev, eqn, ins):
        boolean = _dtype(eqn) == np.bool_

        def one(*xs):
            if boolean:
                vals = [truth(x, f"logical {op}") if not isinstance(x, sp.Basic) or x in (sp.true, sp.false)
                        else bool(as_int(x, op)) for x in xs]
                return {"and": lambda a, b: a and b, "or": lambda a, b: a or b,
                        "not": lambda a: not a, "xor": lambda a, b: a != b}[op](*vals)
            vals = [as_int(x, op) for x in xs]
            return sp.Integer({"and": lambda a, b: a & b, "or": lambda a, b: a | b,
                               "not": lambda a: ~a, "xor": lambda a, b: a ^ b}[op](*vals))
        return elementwise_map(one, *ins)
    return f


for _op in ("and", "or", "not", "xor"):
    PRIMITIVES[_op] = _logical(_op)


@rule("is_finite")
def _is_finite(ev, eqn, ins):
    def one(x):
        x = number(x)
        if x.is_finite is True:
            return True
        if x.is_number:
            return False
        raise SymbolicBranch(f"is_finite: cannot decide whether {x} is finite")
    return elementwise_map(one, ins[0])


@rule("select_n")
def _select_n(ev, eqn, ins):
    pred, cases = ins[0], ins[1:]

    def one(p, *cs):
        if isinstance(p, (bool, np.bool_)):
            i = int(p)
        else:
            i = as_int(p, "select_n predicate")
        return cs[i]
    return elementwise_map(one, pred, *cases)


@rule("convert_element_type")
def _convert(ev, eqn, ins):
    dt = np.dtype(eqn.params["new_dtype"])

    def one(x):
        if dt == np.bool_:
            return bool(as_int(x, "convert to bool")) if not isinstance(x, bool) else x
        if isinstance(x, (bool, np.bool_)):
            return sp.Integer(int(x))
        if np.issubdtype(dt, np.integer):
            x = number(x)
            if x.is_Integer:
                return x
            if x.is_number:
                return sp.Integer(int(x))  # truncation toward zero, as XLA
            raise SymbolicBranch(f"convert_element_type to {dt} of a symbolic value {x}")
        return x  # identity over the reals
    return elementwise_map(one, ins[0])


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
            out[ix] = combine(ev, [number(v) for v in flat[ix]], identity)
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
            vals = [truth(v, kind) if not isinstance(v, sp.Basic) else bool(as_int(v, kind)) for v in flat[ix]]
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
        vals = [number(v) for v in x[ix]]
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
        if is_float_dtype(src) and np.issubdtype(new, np.integer):
            return Bits(x, src)
        raise UnsupportedPrimitive(f"bitcast_convert_type {src} -> {new} of a value")
    return elementwise_map(one, ins[0])


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
        out[i, j, k] = sp.Add(*[number(a3[i, j, c]) * number(b3[i, c, k]) for c in range(nc)])
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
    fill_value = sp.nan if fill is None and is_float_dtype(_dtype(eqn)) else (
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
            out[full] = upd[ix] if combine is None else combine(number(out[full]), number(upd[ix]))
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
        if not truth(pred[()], "while predicate"):
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
    index, branches = as_int(ins[0][()], "cond index"), eqn.params["branches"]
    return ev.closed(branches[min(max(index, 0), len(branches) - 1)], list(ins[1:]))


# --- shard_map and collectives (proofs/jaxpr_spmd.py) -------------------------------------------

from proofs.jaxpr_spmd import register as _register_spmd  # noqa: E402

_register_spmd(PRIMITIVES)
