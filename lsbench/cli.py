"""Command line: ``python -m lsbench {list,verify,bench,reproduce,paper,convert}``.

Each subcommand lives in its own module under :mod:`lsbench.commands`, which
exposes ``add_arguments(parser)`` and ``run(args) -> int``; this file only wires
them together, so adding a command never touches another command's code.

Imports are lazy: ``--help`` imports no command, and a command imports only its
own module, so ``list``, ``verify`` and ``bench`` run with the core install
(``pip install lsbench``: jax, optax, numpy, sympy, tqdm). A command that needs
an extra which is not installed exits with status 2 and names the
``pip install 'lsbench[...]'`` that provides it.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import NamedTuple


class Command(NamedTuple):
    name: str
    module: str
    help: str      # one line, shown by ``python -m lsbench --help``
    extra: str     # the pip extra it needs beyond the core ("" for none)


COMMANDS = (
    Command("list", "lsbench.commands.list_recipes",
            "print the recipe catalogue: target formula, source, proof module, reduction", ""),
    Command("verify", "lsbench.commands.verify",
            "prove every SymPy theorem under proofs/ -> paper/results/proofs.json, paper/tables/proofs.*", ""),
    Command("bench", "lsbench.commands.bench",
            "time and measure every recipe against optax, PyTorch and memory floors "
            "-> paper/results/bench-<machine>.json, paper/tables/bench.*", ""),
    Command("reproduce", "lsbench.commands.reproduce",
            "re-run a published experiment (pets, muller) -> paper/results/<experiment>-*.json", "experiments"),
    Command("paper", "lsbench.commands.paper",
            "regenerate paper/tables and paper/figures from paper/results (byte for byte)", "paper"),
    Command("convert", "lsbench.commands.convert",
            "convert a label-smoothing ε between the published conventions (each answer a proven theorem)", ""),
)

#: Optional third-party modules -> the extra of pyproject.toml that installs them.
OPTIONAL_MODULES = {
    "flax": "experiments", "PIL": "experiments", "tensorflow_datasets": "experiments",
    "mlxtend": "experiments", "sklearn": "experiments", "safetensors": "experiments", "scipy": "experiments",
    "matplotlib": "paper", "torch": "peers", "tensorflow": "tfds",
}

EPILOG = """\
where things live:
  lsbench/losses/      the recipes (pure JAX losses; the core install)
  proofs/              one SymPy module per recipe (python -m lsbench verify)
  lsbench/bench/       the benchmark's measuring code; benchmarks/ times the same cases with pytest-benchmark
  lsbench/experiments/ the reproductions (pip install 'lsbench[experiments]')
  lsbench/report/      tables and figures, read from paper/results only (pip install 'lsbench[paper]')
  paper/results/       what the commands record; paper/tables/, paper/figures/ are generated from it

run 'python -m lsbench COMMAND --help' for a command's options."""


class MissingExtra(Exception):
    """A command needs an optional dependency that is not installed."""

    def __init__(self, command: str, module: str, extra: str):
        self.command, self.module, self.extra = command, module, extra
        super().__init__(f"lsbench {command}: needs the Python module {module!r}, which is not installed; "
                         f"install it with: pip install 'lsbench[{extra}]' "
                         f"(from a checkout: pip install -e '.[{extra}]')")


def _missing_extra(command: Command, exc: ModuleNotFoundError) -> MissingExtra | None:
    """The :class:`MissingExtra` that ``exc`` means, or None when it is not an optional dependency."""
    top = (exc.name or "").split(".")[0]
    extra = OPTIONAL_MODULES.get(top)
    if extra is None:
        return None
    return MissingExtra(command.name, top, extra)


def _selected(argv: list[str]) -> Command | None:
    """The command named on the command line (the first word that is not an option), if any."""
    for word in argv:
        if not word.startswith("-"):
            return next((c for c in COMMANDS if c.name == word), None)
    return None


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser; only the command named in ``argv`` (if any) is imported and given its options."""
    parser = argparse.ArgumentParser(
        prog="python -m lsbench",
        description="lsbench: every published form of label smoothing as a JAX loss, with SymPy proofs, "
                    "benchmarks, reproductions and the paper generated from recorded results.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _selected(sys.argv[1:] if argv is None else argv)
    for command in COMMANDS:
        help_text = command.help + (f" [needs lsbench[{command.extra}]]" if command.extra else "")
        if command is not chosen:
            sub.add_parser(command.name, help=help_text, add_help=False)
            continue
        try:
            module = importlib.import_module(command.module)
        except ModuleNotFoundError as exc:
            missing = _missing_extra(command, exc)
            if missing is None:
                raise
            raise missing from exc
        p = sub.add_parser(command.name, help=help_text, description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_run=module.run, _command=command)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv)
        args = parser.parse_args(argv)
        try:
            return int(args._run(args) or 0)
        except ModuleNotFoundError as exc:
            missing = _missing_extra(args._command, exc)
            if missing is None:
                raise
            raise missing from exc
    except MissingExtra as exc:
        print(exc, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
