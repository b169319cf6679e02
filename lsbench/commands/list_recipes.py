"""Print the recipe catalogue: name, target formula, source and proof module."""

from __future__ import annotations


def add_arguments(parser):
    parser.add_argument("--latex", action="store_true", help="print the LaTeX formulas instead of the titles")


def run(args):
    from lsbench.losses import RECIPES

    rows = [("recipe", "target / loss", "source", "proof", "reduction")]
    for r in RECIPES.values():
        rows.append((r.name, r.formula if args.latex else r.title, r.source, r.proof, r.reduction))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
    if not args.latex:
        print("\nformulas (LaTeX):")
        for r in RECIPES.values():
            print(f"  {r.name:<19} {r.formula}")
    return 0
