"""Re-run a published experiment: ``python -m lsbench reproduce {pets,muller}``.

Each experiment is a package under :mod:`lsbench.experiments` whose ``run`` module has
``add_arguments(parser)`` and ``run(args) -> exit status``; the package docstring is the help.
"""

import importlib

EXPERIMENTS = ("pets", "muller")


def add_arguments(parser):
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name in EXPERIMENTS:
        package = importlib.import_module(f"lsbench.experiments.{name}")
        command = importlib.import_module(f"lsbench.experiments.{name}.run")
        p = sub.add_parser(name, help=package.__doc__.splitlines()[0], description=package.__doc__)
        command.add_arguments(p)
        p.set_defaults(_experiment_run=command.run)


def run(args):
    return args._experiment_run(args)
