"""Regenerate every table and figure of the paper from the recorded results.

``python -m lsbench paper [--results-dir DIR] [--out-dir DIR] [--no-figures]``
reads ``DIR/*.json`` (default ``paper/results``: ``proofs.json``,
``bench-<machine>.json``, ``pets-<profile>.json``, ``muller-<experiment>.json``)
and rewrites, under the output directory (default ``paper/``),
``tables/<name>.{tex,md}``, ``tables/macros.tex`` and
``figures/<name>.{pdf,png,tex}`` -- deterministically: the same results give
the same bytes. A missing results file gives "not yet recorded" placeholders;
a malformed one (NaN or Infinity included) is named on stderr, what was
generated from it is left as it was, and the exit status is 1. Nothing is
deleted. A results directory that does not exist, or output directories that
cannot be written, are an error before anything is written (exit 2); a write
that fails midway (disk full) is reported, exit 1, and every file is either
its old or its new version (atomic writes). See :mod:`lsbench.report.build`.
"""

from __future__ import annotations

import sys
from pathlib import Path

from lsbench.provenance import REPO_ROOT

REPO = REPO_ROOT


def add_arguments(parser):
    parser.add_argument("--results-dir", type=Path, default=REPO / "paper" / "results",
                        help="where the recorded results are (default: %(default)s)")
    parser.add_argument("--out-dir", type=Path, default=REPO / "paper",
                        help="where tables/ and figures/ are written (default: %(default)s)")
    parser.add_argument("--no-figures", action="store_true",
                        help="tables, macros and figure snippets only; do not draw the images")
    parser.add_argument("--quiet", action="store_true", help="print only errors and the summary")


def run(args) -> int:
    from lsbench import provenance
    from lsbench.report.build import generate

    quiet = getattr(args, "quiet", False)
    if not Path(args.results_dir).is_dir():
        print(f"lsbench paper: --results-dir {args.results_dir} is not a directory (nothing to build the tables "
              "from; the default is paper/results)", file=sys.stderr)
        return 2
    try:
        provenance.check_writable(Path(args.out_dir) / "tables", Path(args.out_dir) / "figures")
    except OSError as exc:
        print(f"lsbench paper: {exc.strerror or exc} (choose another --out-dir)", file=sys.stderr)
        return 2

    def log(msg: str) -> None:
        if msg.startswith("error:"):
            print(f"lsbench paper: {msg}", file=sys.stderr)
        elif not quiet:
            print(msg)

    try:
        out = generate(args.results_dir, args.out_dir, figures=not args.no_figures, log=log)
    except OSError as exc:
        print(f"lsbench paper: writing under {args.out_dir} failed ({exc}); every file there is either as it "
              "was or completely rewritten (atomic writes): free the space and run again", file=sys.stderr)
        return 1
    print(f"wrote {len(out.written)} files under {args.out_dir} "
          f"({len(out.placeholders)} placeholders: {', '.join(out.placeholders) or 'none'})")
    if out.errors:
        print(f"lsbench paper: {len(out.errors)} malformed results file(s); left unchanged: "
              f"{', '.join(out.kept)}", file=sys.stderr)
        return 1
    return 0
