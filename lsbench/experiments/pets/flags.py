"""The command line of ``reproduce pets``: flags, their checks, and the default locations.

Every flag of "what to run" and "training" overrides one field of
:func:`~lsbench.experiments.pets.config.get_config`; the rest name the invocation's paths and switches.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from lsbench import provenance as prov
from lsbench.experiments import workdir
from lsbench.experiments.pets.config import BACKBONE_RESOLUTION, BACKBONES, PROFILES, RUN_SPECS, SPLITS, get_config

__all__ = ["UsageError", "add_arguments", "validate", "default_out", "default_workdir"]



def default_out(profile: str, per_class_limit: int | None = None, backbone: str | None = None) -> Path:
    """``paper/results/pets-<profile>.json`` in the lsbench checkout (else under the cwd) for the
    default backbone, ``pets-<profile>-<backbone>.json`` for another; ``...-limit<N>.json`` for a
    ``--per-class-limit N`` quick run, so quick runs never collide with the full one. The name
    depends on the settings only, never on the hardware."""
    base = prov.REPO_ROOT if (prov.REPO_ROOT / "paper").is_dir() else Path.cwd()
    backbone = backbone or get_config(profile).backbone
    suffix = (f"-{backbone}" if backbone != get_config(profile).backbone else "") + \
        (f"-limit{per_class_limit}" if per_class_limit else "")
    return base / "paper" / "results" / f"pets-{profile}{suffix}.json"


def default_workdir(profile: str, per_class_limit: int | None = None, backbone: str | None = None) -> Path:
    """``./lsbench-runs/<stem of default_out>/``: where a plain ``reproduce pets`` trains."""
    return workdir.default_workdir(default_out(profile, per_class_limit, backbone).stem)


# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of ``reproduce pets``; each overrides one field of :func:`~.config.get_config`
    (:data:`~.config.FLAGS`), whose values are the defaults shown."""
    from lsbench.experiments import pets as package

    cfg = get_config()
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = (package.__doc__ or "").split("\n\n**Recording.**")[0]
    g = parser.add_argument_group("what to run")
    g.add_argument("--profile", choices=PROFILES, default=cfg.profile,
                   help="frozen (default, on every machine): cached backbone features + fastai head; "
                        "fastai: the fastai recipe on the same backbone (body frozen except BatchNorm, "
                        "fastai augmentation, fit_one_cycle(4)); slow without an accelerator")
    g.add_argument("--backbone", choices=BACKBONES, default=cfg.backbone,
                   help=f"EfficientNet-Lite body with its ImageNet weights (default {cfg.backbone})")
    g.add_argument("--splits", "--split", nargs="+", choices=SPLITS, default=list(cfg.splits), metavar="SPLIT",
                   help="official: train on trainval, report on test; fastai: random 80/20 split of all "
                        "images, redrawn per seed, report on the 20 %% (default: both)")
    g.add_argument("--recipes", nargs="+", metavar="NAME", default=list(cfg.recipes),
                   help=f"runs to do, from {', '.join(RUN_SPECS)} (default: all)")
    g.add_argument("--seeds", nargs="+", type=int, default=list(cfg.seeds), metavar="K",
                   help=f"seeds, all trained together per recipe (default: {cfg.seeds[0]}..{cfg.seeds[-1]})")
    g.add_argument("--epsilon", type=float, default=cfg.epsilon,
                   help="ε of the fixed-ε recipes (uniform, off_target, fastai, tf_onehot, "
                        f"speech_transformer; default {cfg.epsilon:g})")
    t = cfg.train
    g = parser.add_argument_group("training (fastai v1 fit_one_cycle defaults)")
    g.add_argument("--epochs", type=int, default=t.epochs, help=f"default {t.epochs} (fit_one_cycle({t.epochs}))")
    g.add_argument("--batch-size", type=int, default=t.batch_size, help=f"default {t.batch_size}")
    g.add_argument("--lr", type=float, default=t.lr, help=f"peak learning rate (default {t.lr:g})")
    g.add_argument("--weight-decay", type=float, default=t.weight_decay,
                   help=f"decoupled weight decay (default {t.weight_decay:g})")
    g = parser.add_argument_group("data and models")
    g.add_argument("--data-dir", default=None,
                   help="Oxford-IIIT Pet (official layout or archives); default $LSBENCH_DATA_DIR")
    g.add_argument("--download", action="store_true",
                   help="allow downloading the official archives if no local copy is found")
    g.add_argument("--per-class-limit", type=int, default=None, metavar="N",
                   help="use only the first N images of each class in each split (quick runs)")
    g.add_argument("--image-size", type=int, default=None,
                   help="image side in pixels (default: the backbone's native resolution, "
                        + ", ".join(f"{b} {r}" for b, r in BACKBONE_RESOLUTION.items()) + ")")
    g.add_argument("--p-flip", type=float, default=cfg.augment.p_flip, metavar="P",
                   help="probability of a horizontal flip per training example and epoch (frozen profile: the "
                        f"mirrored image's cached features; default {cfg.augment.p_flip:g}, fastai's; 0: no flips)")
    g.add_argument("--cache-dir", default=None,
                   help="decoded images and cached features (default $LSBENCH_CACHE_DIR or ~/.cache/lsbench)")
    g = parser.add_argument_group("output")
    g.add_argument("--workdir", default=None, metavar="DIR",
                   help="where fresh runs are trained and recorded (default ./lsbench-runs/<stem of --out>/, "
                        "resumable); holds runs/, the results file, comparison.json and comparison.txt")
    g.add_argument("--out", default=None, metavar="PATH",
                   help="the reference results file: compared with after the runs, written only with "
                        "--record (default paper/results/pets-<profile>.json for lite2, pets-<profile>-lite0.json for "
                        "lite0, ...-limit<N>.json with --per-class-limit N; its run records in <dir>/runs/<stem>/)")
    g.add_argument("--record", action="store_true",
                   help="after the runs, write them as the reference (--out and its runs/); refuses a tree "
                        "with uncommitted changes")
    g.add_argument("--allow-dirty", action="store_true",
                   help="with --record: record from a dirty tree anyway (the results say dirty: true)")
    g.add_argument("--check", action="store_true",
                   help="exit 1 when a fresh run disagrees with the reference beyond tolerance (or cannot be "
                        "compared with it)")
    g.add_argument("--wait", action="store_true",
                   help="wait for another run holding the work directory instead of exiting 2")
    g.add_argument("--force", action="store_true", help="redo runs already recorded in the work directory")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")


class UsageError(ValueError):
    """Bad command-line input: reported without a traceback, exit status 2."""


def validate(args) -> str:
    """The profile, once the command line is checked (:class:`UsageError` listing every problem)."""
    problems = []
    unknown = [r for r in args.recipes if r not in RUN_SPECS]
    if unknown:
        problems.append(f"unknown recipe(s) {unknown}; choose from {list(RUN_SPECS)}")
    seeds = list(dict.fromkeys(args.seeds))
    if any(s < 0 for s in seeds):
        problems.append(f"seeds must be >= 0, got {seeds}")
    if not (math.isfinite(args.epsilon) and 0 <= args.epsilon <= 1):
        problems.append(f"--epsilon must be in [0, 1], got {args.epsilon}")
    if args.per_class_limit is not None and args.per_class_limit < 1:
        problems.append(f"--per-class-limit must be >= 1, got {args.per_class_limit}")
    if not (math.isfinite(args.p_flip) and 0 <= args.p_flip <= 1):
        problems.append(f"--p-flip must be in [0, 1], got {args.p_flip}")
    if args.image_size is not None and args.image_size < 32:
        problems.append(f"--image-size must be >= 32, got {args.image_size}")
    if not args.splits:
        problems.append(f"--splits needs at least one of {list(SPLITS)}")
    if problems:
        raise UsageError("\n".join(problems))
    return args.profile
