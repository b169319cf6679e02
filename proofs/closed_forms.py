"""Closed forms for a concrete K: a recipe's proven loss and gradient, ready to lambdify.

``tests/test_proofs_tie.py`` evaluates them with NumPy against the JAX code;
they are re-exported by :mod:`proofs.kernel` (``kn.ClosedForm``, ``kn.onehot_closed_form``).
"""

from __future__ import annotations

import dataclasses

import sympy as sp

from proofs.kernel import Row, eps


def concrete_lambdify(args, exprs, shared=()):
    """``sympy.lambdify`` with common-subexpression elimination, for the tie tests.

    ``shared`` (e.g. a row's ``Σ_j exp(z_j)``) are replaced by temporaries first, which
    is exact and keeps SymPy's general ``cse`` cheap for K in the tens.
    """
    shared = list(shared)

    def cse(exprs_in):
        pairs, mapping = [], {}
        for n, sub in enumerate(sorted(shared, key=sp.count_ops)):
            sym = sp.Symbol(f"_shared{n}")
            pairs.append((sym, sub.xreplace(mapping)))
            mapping[sub] = sym
        reduced = [e.xreplace(mapping) for e in exprs_in]
        more, reduced = sp.cse(reduced)
        return pairs + list(more), reduced

    return sp.lambdify(args, exprs, modules="numpy", cse=cse)


@dataclasses.dataclass
class ClosedForm:
    """A recipe's proven per-example loss and gradient, instantiated for a concrete K.

    ``inputs`` is an ordered mapping from an input name (``"logits"``,
    ``"onehot"``, ``"labels"``, ``"teacher"``, ``"probs"``, ``"epsilon"``, ...) to a
    list of symbols (one per class) or a single symbol; :meth:`lambdify` takes
    the inputs in that order, each a ``[..., K]`` array (class axis last) or a
    scalar. ``grad`` lists ``∂L/∂z_j`` for ``j = 0..K−1``; ``extra`` holds
    further proven expressions (e.g. fast-reid's full adaptive gradient, the
    distillation teacher gradient).
    """

    recipe: str
    K: int
    loss: sp.Expr
    grad: list
    inputs: dict
    extra: dict = dataclasses.field(default_factory=dict)
    shared: list = dataclasses.field(default_factory=list)  #: known common subexpressions (row aggregates)

    def args(self) -> list:
        out = []
        for v in self.inputs.values():
            out.extend(v if isinstance(v, (list, tuple)) else [v])
        return out

    def lambdify(self, exprs=None):
        """A NumPy function ``f(*inputs) -> (loss, grad[..., K])`` (or of ``exprs``)."""
        import numpy as np

        names = list(self.inputs)
        vector = {n for n, v in self.inputs.items() if isinstance(v, (list, tuple))}
        if exprs is None:
            fn = concrete_lambdify(self.args(), [self.loss, *self.grad], self.shared)

            def call(*values):
                flat = _flatten_inputs(names, vector, values)
                out = fn(*flat)
                shape = np.broadcast_shapes(*[np.shape(x) for x in flat])
                grads = np.stack([np.broadcast_to(np.asarray(g, float), shape) for g in out[1:]], axis=-1)
                return np.broadcast_to(np.asarray(out[0], float), shape), grads
            return call
        fn = concrete_lambdify(self.args(), exprs, self.shared)

        def call_exprs(*values):
            return fn(*_flatten_inputs(names, vector, values))
        return call_exprs


def onehot_closed_form(recipe: str, num_classes: int, loss, grad) -> ClosedForm:
    """:class:`ClosedForm` of an integer-label recipe whose only parameter is ε.

    ``loss(row)`` and ``grad(row, j)`` are the recipe's proven expressions;
    the inputs are ``logits``, ``onehot`` and ``epsilon``.
    """
    row = Row.concrete(num_classes)
    return ClosedForm(
        recipe, num_classes, loss(row), [grad(row, j) for j in row.keys],
        {"logits": row.symbols("z"), "onehot": row.symbols("o"), "epsilon": eps},
        shared=row.shared())


def _flatten_inputs(names, vector, values):
    import numpy as np

    if len(values) != len(names):
        raise TypeError(f"expected inputs {names}, got {len(values)} values")
    flat = []
    for name, val in zip(names, values):
        if name in vector:
            arr = np.asarray(val, dtype=float)
            flat.extend(arr[..., j] for j in range(arr.shape[-1]))
        else:
            flat.append(val)
    return flat
