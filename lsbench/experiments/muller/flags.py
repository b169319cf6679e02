"""The command line of ``reproduce muller``: flags, their checks and the configuration they select."""

from __future__ import annotations

import argparse
import dataclasses
import math

from lsbench.experiments.muller.config import DATASETS, EXPERIMENTS, MullerConfig, get_config

__all__ = ["UsageError", "add_arguments", "from_args"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``reproduce muller``; each overrides a field of :func:`~.config.get_config`
    (``--quick``: of ``get_config(quick=True)``), whose values are the defaults shown."""
    from lsbench.experiments import muller as package

    full, quick = get_config(), get_config(quick=True)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = package.__doc__
    g = parser.add_argument_group("what to run")
    g.add_argument("--experiments", nargs="+", choices=EXPERIMENTS, default=list(full.experiments),
                   metavar="NAME", help=f"sub-experiments, from {', '.join(EXPERIMENTS)} (default: all)")
    g.add_argument("--datasets", nargs="+", choices=DATASETS, default=None, metavar="NAME",
                   help="data sets, from mnist, digits, pets (default: calibration and representations "
                        "on mnist + pets, distillation on mnist; distillation runs only on mnist/digits)")
    g.add_argument("--seeds", nargs="+", type=int, default=None, metavar="K",
                   help=f"seeds (default: {' '.join(map(str, full.seeds))}; "
                        f"--quick: {' '.join(map(str, quick.seeds))})")
    g.add_argument("--temperatures", nargs="+", type=float, default=None, metavar="T",
                   help=f"distillation temperatures (default: {' '.join(f'{t:g}' for t in full.temperatures)}; "
                        f"--quick: {' '.join(f'{t:g}' for t in quick.temperatures)})")
    g.add_argument("--quick", action="store_true",
                   help="a tiny, fast configuration for tests (500-image MNIST, small MLPs, few epochs, "
                        "recipes ce/uniform_0.1/fastreid_adaptive); never comparable to the full run")
    g = parser.add_argument_group("output")
    g.add_argument("--workdir", default=None, metavar="DIR",
                   help="where fresh runs are trained (default ./lsbench-runs/muller/, resumable): results "
                        "files, runs/muller/ and figures/")
    g.add_argument("--out-dir", default=None, metavar="DIR",
                   help="the reference results directory, written only with --record (default paper/results)")
    g.add_argument("--figures-dir", default=None, metavar="DIR",
                   help="with --record: the reference figure directory (default <out-dir>/../figures)")
    g.add_argument("--record", action="store_true",
                   help="after the runs, copy results, run records and figures to the reference; refuses a "
                        "tree with uncommitted changes")
    g.add_argument("--allow-dirty", action="store_true", help="with --record: record from a dirty tree anyway")
    g.add_argument("--check", action="store_true",
                   help="exit 1 when a fresh run disagrees with the reference beyond tolerance (or cannot be "
                        "compared with it)")
    g.add_argument("--wait", action="store_true",
                   help="wait for another run holding the work directory instead of exiting 2")
    g.add_argument("--cache-dir", default=None, metavar="DIR",
                   help="where the pets features are looked up and teacher logits cached "
                        "(default $LSBENCH_CACHE_DIR or ~/.cache/lsbench)")
    g.add_argument("--force", action="store_true", help="redo runs that are already recorded")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


class UsageError(ValueError):
    """Bad command-line input: reported without a traceback, exit status 2."""


def from_args(args) -> MullerConfig:
    """:func:`~.config.get_config` (quick or not) with the command line's run selection
    (deduplicated in order); :class:`UsageError` for bad seeds or temperatures."""
    cfg = get_config(quick=bool(args.quick))
    seeds = tuple(dict.fromkeys(int(s) for s in args.seeds)) if args.seeds is not None else cfg.seeds
    if any(s < 0 for s in seeds):
        raise UsageError(f"seeds must be >= 0, got {list(seeds)}")
    temps = (tuple(dict.fromkeys(float(t) for t in args.temperatures)) if args.temperatures is not None
             else cfg.temperatures)
    if any(not (math.isfinite(t) and t > 0) for t in temps):
        raise UsageError(f"temperatures must be finite and > 0, got {list(temps)}")
    datasets = tuple(dict.fromkeys(args.datasets)) if args.datasets is not None else None
    return dataclasses.replace(cfg, experiments=tuple(dict.fromkeys(args.experiments)), datasets=datasets,
                               seeds=seeds, temperatures=temps)
