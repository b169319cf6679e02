"""``shard_map`` for :mod:`proofs.jaxpr`: the body runs once per shard, in lockstep.

The operands are split into per-device blocks by ``in_specs`` (a dimension
named by mesh axes is cut into contiguous blocks, in device order); the body
is evaluated equation by equation for every device at once, so that the
collectives see all shards: ``psum``/``psum_invariant`` add the shards'
values exactly, ``pmax``/``pmin`` take their maximum (a fresh shift symbol
when symbolic, as ``reduce_max``), ``axis_index`` is the device's coordinate,
and ``pvary`` is the identity. The outputs are reassembled by ``out_specs``;
a replicated output must be the same expression on every shard, else
:class:`proofs.jaxpr.SymbolicBranch`. Loops and conditionals inside the body
are evaluated per device and may not contain collectives.
"""

from __future__ import annotations

import itertools

import numpy as np

from proofs.jaxpr import SymbolicBranch, UnsupportedPrimitive, as_object, number

COLLECTIVES = ("psum", "psum_invariant", "pmax", "pmin", "axis_index", "pvary")
CALLS = ("jit", "pjit", "closed_call", "core_call", "custom_jvp_call", "custom_vjp_call", "remat", "checkpoint")


def _axes(entry):
    if entry is None:
        return ()
    return tuple(entry) if isinstance(entry, (tuple, list)) else (entry,)


class Shards:
    """The devices of a mesh: coordinates per axis name, in row-major device order."""

    def __init__(self, mesh):
        self.names = tuple(mesh.axis_names)
        sizes = dict(mesh.shape)
        self.sizes = {n: int(sizes[n]) for n in self.names}
        self.coords = [dict(zip(self.names, c)) for c in itertools.product(*[range(self.sizes[n]) for n in self.names])]

    def block(self, entry, coord) -> tuple[int, int]:
        """(block index, block count) of a dimension split over the axes ``entry``."""
        index, count = 0, 1
        for name in _axes(entry):
            index = index * self.sizes[name] + coord[name]
            count *= self.sizes[name]
        return index, count

    def split(self, x: np.ndarray, spec) -> list[np.ndarray]:
        spec = tuple(spec) + (None,) * (x.ndim - len(tuple(spec)))
        out = []
        for coord in self.coords:
            ix = []
            for d, entry in enumerate(spec):
                i, n = self.block(entry, coord)
                size = x.shape[d] // n
                ix.append(slice(i * size, (i + 1) * size))
            out.append(x[tuple(ix)].copy())
        return out

    def join(self, parts: list[np.ndarray], spec) -> np.ndarray:
        ndim = parts[0].ndim
        spec = tuple(spec) + (None,) * (ndim - len(tuple(spec)))
        shape = []
        for d, entry in enumerate(spec):
            shape.append(parts[0].shape[d] * self.block(entry, self.coords[0])[1])
        out = np.empty(tuple(shape), dtype=object)
        filled = np.zeros(tuple(shape), dtype=bool)
        for coord, part in zip(self.coords, parts):
            ix = []
            for d, entry in enumerate(spec):
                i, _ = self.block(entry, coord)
                ix.append(slice(i * part.shape[d], (i + 1) * part.shape[d]))
            ix = tuple(ix)
            if filled[ix].any():  # replicated along some axis: every copy must agree
                for a, b in zip(out[ix].ravel(), part.ravel()):
                    if a != b:
                        raise SymbolicBranch(f"a replicated shard_map output differs across shards: {a} vs {b}")
            else:
                out[ix] = part
                filled[ix] = True
        return out

    def groups(self, axes) -> list[list[int]]:
        """Device indices grouped by their coordinates on the axes *not* reduced over."""
        keep = [n for n in self.names if n not in axes]
        groups: dict = {}
        for i, c in enumerate(self.coords):
            groups.setdefault(tuple(c[n] for n in keep), []).append(i)
        return list(groups.values())


def _collective(ev, shards: Shards, eqn, ins_per_device):
    name = eqn.primitive.name
    n = len(shards.coords)
    if name == "pvary":
        return ins_per_device
    if name == "axis_index":
        axis = eqn.params["axis_name"]
        out = []
        for c in shards.coords:
            i, _ = shards.block(axis, c)
            out.append([as_object(i)])
        return out
    axes = _axes(eqn.params["axes"])
    outs = [[None] * len(ins_per_device[0]) for _ in range(n)]
    for group in shards.groups(axes):
        for k in range(len(ins_per_device[0])):
            vals = [ins_per_device[d][k] for d in group]
            res = np.empty(vals[0].shape, dtype=object)
            for ix in np.ndindex(vals[0].shape):
                entries = [number(v[ix]) for v in vals]
                if name in ("psum", "psum_invariant"):
                    res[ix] = sum(entries[1:], entries[0])
                else:
                    import sympy as sp

                    if all(e.is_number for e in entries):
                        res[ix] = (sp.Max if name == "pmax" else sp.Min)(*entries)
                    else:
                        res[ix] = ev.fresh() if ev.shift else (sp.Max if name == "pmax" else sp.Min)(*entries)
            for d in group:
                outs[d][k] = res
    return outs


def run_spmd(ev, shards: Shards, closed, args_per_device):
    """Evaluate ``closed`` (a ClosedJaxpr or Jaxpr) on every device in lockstep."""
    from proofs.jaxpr import PRIMITIVES, constant_array, literal_value, live_equations

    jaxpr = getattr(closed, "jaxpr", closed)
    consts = getattr(closed, "consts", [])
    n = len(shards.coords)
    envs = [dict() for _ in range(n)]

    def read(d, v):
        return literal_value(v) if type(v).__name__ == "Literal" else envs[d][v]

    for d in range(n):
        for v, c in zip(jaxpr.constvars, consts):
            envs[d][v] = constant_array(c)
        for v, a in zip(jaxpr.invars, args_per_device[d]):
            envs[d][v] = a
    for eqn in live_equations(jaxpr):
        name = eqn.primitive.name
        ev.seen.add(name)
        ins = [[read(d, v) for v in eqn.invars] for d in range(n)]
        if name in COLLECTIVES:
            outs = _collective(ev, shards, eqn, ins)
        elif name in CALLS:
            sub = eqn.params.get("jaxpr") or eqn.params.get("call_jaxpr")
            outs = run_spmd(ev, shards, sub, ins)
        else:
            rule = PRIMITIVES.get(name)
            if rule is None:
                raise UnsupportedPrimitive(f"primitive {name!r} is not supported by proofs.jaxpr (in shard_map)")
            outs = []
            for d in range(n):
                o = rule(ev, eqn, ins[d])
                outs.append(o if eqn.primitive.multiple_results else [o])
        for d in range(n):
            for v, o in zip(eqn.outvars, outs[d]):
                if type(v).__name__ != "DropVar":
                    o = as_object(o)
                    shape = tuple(v.aval.shape)
                    envs[d][v] = o if o.shape == shape else np.broadcast_to(o, shape).copy()
    return [[read(d, v) for v in jaxpr.outvars] for d in range(n)]


def shard_map_rule(ev, eqn, ins):
    shards = Shards(eqn.params["mesh"])
    in_specs, out_specs = eqn.params["in_specs"], eqn.params["out_specs"]
    per_input = [shards.split(x, spec) for x, spec in zip(ins, in_specs)]
    args = [[per_input[k][d] for k in range(len(ins))] for d in range(len(shards.coords))]
    outs = run_spmd(ev, shards, eqn.params["jaxpr"], args)
    return [shards.join([outs[d][k] for d in range(len(outs))], spec) for k, spec in enumerate(out_specs)]


def outside_shard_map(ev, eqn, ins):
    raise UnsupportedPrimitive(f"collective {eqn.primitive.name!r} outside a shard_map body")


def register(primitives: dict) -> None:
    primitives["shard_map"] = shard_map_rule
    primitives["reshard"] = lambda ev, eqn, ins: ins[0]  # a placement change: the identity on values
    for name in COLLECTIVES:
        primitives.setdefault(name, outside_shard_map)
