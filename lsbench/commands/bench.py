"""`python -m lsbench bench`: run the benchmark suite and write paper/results/bench-<machine>.json.

Times every recipe (forward and forward+backward, float32 and bfloat16), the
chunked and fused-linear paths, the optax and PyTorch peers and the memory
floors side by side, measures peak extra memory, and writes
``<out>/results/bench-<machine>.json`` plus ``<out>/tables/bench.tex`` and
``<out>/tables/bench.md`` (see :mod:`lsbench.bench` for what is measured and
the JSON schema; the tables are rendered from the JSON by
:mod:`lsbench.report.bench`). The full suite took about 15 minutes on a quiet 2-core CPU
timed case by case; interleaved, a quiet machine stops after 3 passes (about the same
time) and a loaded one goes on to ``--max-passes`` (up to about three times longer);
``--quick`` runs tiny shapes in seconds (for tests). The catalogue's ten newer recipes run at
three shapes by default (``--more-recipe-shapes``; K = 10, 1000 and 32000), which adds an
estimated 3 minutes on a quiet machine (about 8 when the groups run to ``--max-passes``).

On the CPU the compiled programs run on the calling thread (``--async-dispatch``:
jax's default, where each call also waits for a worker thread to wake; see
:func:`lsbench.bench.run.set_cpu_dispatch`).

XLA:CPU returns every ``[.., K]`` result (a gradient) in a freshly mapped
buffer, and on many Linux machines the page faults of that buffer cost more
than the kernel itself. ``--malloc-reuse`` re-runs the suite in a child with
glibc told to keep freed memory (``MALLOC_MMAP_THRESHOLD_``,
``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_ARENA_MAX=1``) so that those buffers are
reused; the JSON records the variables under ``environment.env``.

Trust: writing into the repository's ``paper/`` (the default ``--out``) needs
a committed tree (``--allow-dirty`` records a dirty one, marked ``dirty:
true``); the output directories are checked for writability before anything
is timed; and an existing ``bench-<machine>.json`` is not overwritten by a
run with noisy cases (spread of the per-pass medians above ``--noise-bound``
after ``--max-passes``) unless ``--accept-noisy`` -- that run is saved beside
it as ``.bench-<machine>.noisy.json`` instead (a hidden file the report does
not read). Exit status: 0 all ok, 1 a case failed, the write failed or a
noisy run was refused, 2 bad usage or an output location that cannot be
written or a dirty tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from lsbench.provenance import REPO_ROOT

REPO = REPO_ROOT

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(1 << 32), "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
              "MALLOC_ARENA_MAX": "1"}


def add_arguments(parser):
    parser.add_argument("--quick", action="store_true", help="tiny shapes and few rounds (seconds; for tests)")
    parser.add_argument("--cases", default=None,
                        help="comma-separated globs over case names, e.g. 'uniform,chunked*,optax,torch' "
                             "(floors always run, and so do the peers of each selected recipe)")
    parser.add_argument("--shapes", default=None,
                        help="comma-separated logits shapes, e.g. '1024x32000,8x512x32000' ('none' for no logits cases)")
    parser.add_argument("--linear-shapes", default=None,
                        help="comma-separated N x H x K shapes of the fused linear cases ('none' to skip)")
    parser.add_argument("--more-recipe-shapes", default=None,
                        help="where the catalogue's newer recipes (flax_kl ... label_relaxation) are timed: "
                             "comma-separated shapes, 'all' (every --shapes shape) or 'none' (default: "
                             "256x10,256x1000,1024x32000; --quick: all)")
    parser.add_argument("--dtypes", default=None, help="comma-separated subset of float32,bfloat16")
    parser.add_argument("--out", default="paper", help="output directory (default: paper)")
    parser.add_argument("--rss", choices=("auto", "all", "none"), default="auto",
                        help="peak-RSS child processes: auto = uniform/chunked/linear/peers at logits >= 32 MB "
                             "(float32), all, or none")
    parser.add_argument("--min-rounds", type=int, default=None, help="timed calls per case, at least (default 5)")
    parser.add_argument("--max-rounds", type=int, default=None,
                        help="timed calls per case in one pass, at most (default 50)")
    parser.add_argument("--min-time", type=float, default=None,
                        help="seconds of timed calls per case over the first passes, about (default 0.5)")
    parser.add_argument("--malloc-reuse", action="store_true",
                        help="run with glibc keeping freed memory (see the command's description)")
    parser.add_argument("--noise-bound", type=float, default=None,
                        help="time a group in passes until the spread (IQR / median) of each case's per-pass "
                             "medians is at most this fraction (default 0.05)")
    parser.add_argument("--max-passes", type=int, default=None,
                        help="passes at most; a case still above the bound is flagged noisy (default 10)")
    parser.add_argument("--accept-noisy", "--force", dest="accept_noisy", action="store_true",
                        help="overwrite an existing bench-<machine>.json even if some cases are noisy")
    parser.add_argument("--allow-dirty", action="store_true",
                        help="record into the repository's paper/ from uncommitted code (the file says dirty: true)")
    parser.add_argument("--async-dispatch", action="store_true",
                        help="on the CPU, time with jax's asynchronous dispatch (its default: each call waits for a "
                             "worker thread) instead of running the programs on the calling thread")
    parser.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")


def _argv(args) -> list[str]:
    """The command line that reproduces ``args`` (for the --malloc-reuse child)."""
    argv = ["bench", "--out", str(args.out), "--rss", args.rss, "--malloc-reuse"]
    for flag, value in (("--cases", args.cases), ("--shapes", args.shapes), ("--linear-shapes", args.linear_shapes),
                        ("--more-recipe-shapes", args.more_recipe_shapes),
                        ("--dtypes", args.dtypes), ("--min-rounds", args.min_rounds),
                        ("--max-rounds", args.max_rounds), ("--min-time", args.min_time),
                        ("--noise-bound", args.noise_bound), ("--max-passes", args.max_passes)):
        if value is not None:
            argv += [flag, str(value)]
    argv += [flag for flag, on in (("--quick", args.quick), ("--no-progress", args.no_progress),
                                   ("--async-dispatch", args.async_dispatch),
                                   ("--accept-noisy", args.accept_noisy), ("--allow-dirty", args.allow_dirty)) if on]
    return argv


def _shapes(text, parse):
    if text is None:
        return None
    if text.strip().lower() == "none":
        return ()
    return tuple(parse(s.strip()) for s in text.split(",") if s.strip())


def _more_recipe_shapes(text, parse):
    """``--more-recipe-shapes``: None -> the default, ``all`` -> every shape, else shapes (``none``: no shape)."""
    if text is None:
        return "default"
    if text.strip().lower() == "all":
        return "all"
    return _shapes(text, parse)


def _records_reference(out) -> bool:
    """Whether ``out`` is the repository's own ``paper/`` (the committed reference results)."""
    return Path(out).resolve() == (REPO / "paper").resolve()


def _check_outputs(args) -> str | None:
    """The reason the run must not start (dirty tree, unwritable output), or None."""
    from lsbench import provenance

    if _records_reference(args.out):
        try:
            provenance.require_clean_tree(args.allow_dirty, what=f"{Path(args.out) / 'results'}/bench-*.json")
        except provenance.DirtyTreeError as exc:
            return str(exc)
    try:
        provenance.check_writable(Path(args.out) / "results", Path(args.out) / "tables")
    except OSError as exc:
        return f"{exc.strerror or exc} (choose another --out)"
    return None


def _write(doc, args, log=print) -> int:
    """Write the results and tables; 1 (and nothing overwritten) when refused or when writing fails."""
    from lsbench import bench, provenance
    from lsbench.report.bench import write_tables

    path = bench.results_path(doc, args.out)
    noisy = bench.noisy_cases(doc)
    if noisy and path.exists() and not args.accept_noisy:
        side = path.with_name(f".{path.stem}.noisy.json")
        try:
            provenance.atomic_write_json(side, doc)
            kept = f"this run is saved as {side}"
        except OSError as exc:
            kept = f"this run could not be saved either ({exc})"
        print(f"lsbench bench: refusing to overwrite {path} with a noisy run: {len(noisy)} case(s) spread more "
              f"than the noise bound {doc['settings']['noise_bound']:g} (e.g. {', '.join(noisy[:3])}); "
              f"{kept}. Rerun on a quieter machine, raise --max-passes or --noise-bound, or pass --accept-noisy.",
              file=sys.stderr)
        return 1
    try:
        paths = {"json": bench.write_results(doc, args.out), **write_tables(doc, args.out)}
    except OSError as exc:
        print(f"lsbench bench: could not write the results ({exc}); files already there are unchanged "
              "(every write is atomic)", file=sys.stderr)
        return 1
    for path in paths.values():
        log(f"wrote {path}")
    return 0


def run(args) -> int:
    if args.malloc_reuse and any(os.environ.get(k) != v for k, v in MALLOC_ENV.items()):
        # glibc reads these at start-up only: re-run this command in a child that has them.
        env = {**os.environ, **MALLOC_ENV}
        return subprocess.call([sys.executable, "-m", "lsbench", *_argv(args)], env=env)

    from lsbench import bench

    # before anything starts JAX's CPU backend, which reads it once (see bench.set_cpu_dispatch)
    bench.set_cpu_dispatch(asynchronous=args.async_dispatch)

    def parse_linear(s):
        shape = bench.parse_shape(s)
        if len(shape) != 3:
            raise ValueError(f"linear shapes are N x H x K, got {s!r}")
        return shape

    try:
        settings = bench.Settings.make(
            quick=args.quick,
            shapes=_shapes(args.shapes, bench.parse_shape),
            linear_shapes=_shapes(args.linear_shapes, parse_linear),
            dtypes=tuple(d.strip() for d in args.dtypes.split(",")) if args.dtypes else None,
            cases=tuple(c.strip() for c in args.cases.split(",") if c.strip()) if args.cases else None,
            rss=args.rss,
            more_recipe_shapes=_more_recipe_shapes(args.more_recipe_shapes, bench.parse_shape),
            min_rounds=args.min_rounds, max_rounds=args.max_rounds, min_time_s=args.min_time,
            noise_bound=args.noise_bound, max_passes=args.max_passes,
        )
    except ValueError as exc:
        print(f"lsbench bench: {exc}", file=sys.stderr)
        return 2
    problem = _check_outputs(args)
    if problem:
        print(f"lsbench bench: {problem}", file=sys.stderr)
        return 2
    doc = bench.run_suite(settings, progress=not args.no_progress)
    n_ok = sum(r["status"] == "ok" for r in doc["results"])
    n_err = sum(r["status"] == "error" for r in doc["results"])
    n_skip = sum(r["status"] == "skipped" for r in doc["results"])
    print(f"{n_ok} cases ok, {n_skip} skipped, {n_err} failed; machine {doc['machine']}")
    print_targets(doc["targets"])
    noisy = bench.noisy_cases(doc)
    print(f"timing: interleaved passes, {doc['environment'].get('cpu_dispatch') or 'device'} dispatch, "
          f"noise bound {settings.noise_bound:g}; {len(noisy)} noisy case(s); "
          f"load {_load(doc['environment'].get('loadavg_start'))} at start, "
          f"{_load(doc['environment'].get('loadavg_end'))} at end")
    status = _write(doc, args)
    return status or (1 if n_err else 0)


def print_targets(targets, log=print, most_missed: int = 12) -> None:
    """The targets as a compact table (met / evaluated per target and group), then the worst misses."""
    from lsbench.report.bench import target_matrix_text

    missed = [t for t in targets if t["met"] is False]
    log(f"targets: {sum(t['met'] is True for t in targets)} met, {len(missed)} missed, "
        f"{sum(t['met'] is None for t in targets)} not measured (met/evaluated per target and dtype/shape):")
    for line in target_matrix_text(targets):
        log("  " + line)

    def badness(t):  # how far past its limit, as a factor
        v, lim = t["value"], t["limit"]
        return v / lim if t["op"] == "<=" else (lim / v if v else float("inf"))

    for t in sorted(missed, key=badness, reverse=True)[:most_missed]:
        log(f"  MISSED {t['name']}: {t['value']:.2f} ({t['op']} {t['limit']})")
    if len(missed) > most_missed:
        log(f"  ... and {len(missed) - most_missed} more (tables/bench.md lists every miss)")


def _load(load) -> str:
    return "--" if not load else f"{load[0]:.2f}"
