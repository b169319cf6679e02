"""Re-run a published experiment: ``python -m lsbench reproduce pets``."""

import sys

EXPERIMENTS = {}  # name -> module with add_arguments/run, filled as experiments are built


def add_arguments(parser):
    sub = parser.add_subparsers(dest="experiment", metavar="EXPERIMENT", required=True)
    for name, module_name in [("pets", "lsbench.experiments.pets"), ("muller", "lsbench.experiments.muller")]:
        try:
            import importlib

            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p = sub.add_parser(name, help=f"{name}: not built yet")
            p.set_defaults(_experiment_run=_not_built(name))
            continue
        p = sub.add_parser(name, help=module.__doc__.splitlines()[0], description=module.__doc__)
        module.add_arguments(p)
        p.set_defaults(_experiment_run=module.run)


def _not_built(name):
    def run(args):
        print(f"lsbench reproduce {name}: not built yet", file=sys.stderr)
        return 2

    return run


def run(args):
    return args._experiment_run(args)
