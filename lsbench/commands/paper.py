"""`python -m lsbench paper`: not built yet (see the project's open issues)."""

import sys


def add_arguments(parser):
    pass


def run(args):
    print("lsbench paper: not built yet", file=sys.stderr)
    return 2
