"""Convert a label-smoothing ε between the published conventions.

``python -m lsbench convert --from fairseq --epsilon 0.1 --num-classes 32000 [--to uniform]``
prints, for every other recipe (or only ``--to``), the ε that gives the same
per-example gradient (the same target distribution, up to a constant of the loss
value), or says that none exists and why, with the theorems under ``proofs/``
that prove each answer (see :mod:`lsbench.conventions`). Reductions are each
recipe's own and are not converted. Exit status 2 for bad arguments.
"""

from __future__ import annotations

import sys


def add_arguments(parser):
    parser.add_argument("--from", dest="source", required=True, help="the recipe whose ε is given (e.g. fairseq)")
    parser.add_argument("--epsilon", type=float, required=True, help="its ε, in [0, 1]")
    parser.add_argument("--num-classes", type=int, required=True, help="K, the number of classes (logit width)")
    parser.add_argument("--to", default=None, help="only this recipe (default: every other one)")


def run(args) -> int:
    from lsbench import conventions

    try:
        rows = conventions.convert(args.source, args.epsilon, args.num_classes, to=args.to)
    except ValueError as exc:
        print(f"lsbench convert: {exc}", file=sys.stderr)
        return 2
    print(f"{args.source} with ε = {args.epsilon:g}, K = {args.num_classes}:")
    width = max(len(r.recipe) for r in rows)
    for r in rows:
        value = f"ε = {r.epsilon:.10g}" if r.epsilon is not None else "none"
        proof = f"  [{', '.join('proofs.' + t for t in r.theorems)}]" if r.theorems else ""
        why = r.why if r.epsilon is not None else r.why.removeprefix("none: ")
        print(f"  {r.recipe:<{width}}  {value:<18}  {why}{proof}")
    return 0
