"""Command line: ``python -m lsbench {list,verify,bench,reproduce,paper}``.

Each subcommand lives in its own module, which exposes ``add_arguments(parser)``
and ``run(args) -> int``; this file only wires them together, so adding a
command never touches another command's code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# (command, module, one-line help). ``reproduce`` has its own sub-commands.
COMMANDS = [
    ("list", "lsbench.commands.list_recipes", "print the recipe catalogue (formula, source, proof)"),
    ("verify", "lsbench.commands.verify", "run every SymPy theorem under proofs/ and write the certificate"),
    ("bench", "lsbench.commands.bench", "run the benchmark suite and write paper/results/bench-<machine>.json"),
    ("reproduce", "lsbench.commands.reproduce", "re-run a published experiment (pets, muller)"),
    ("paper", "lsbench.commands.paper", "regenerate paper/tables and paper/figures from paper/results"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lsbench",
        description="lsbench: label-smoothing recipes, proofs, benchmarks and reproductions.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, module_name, help_text in COMMANDS:
        module = importlib.import_module(module_name)
        p = sub.add_parser(name, help=help_text, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
