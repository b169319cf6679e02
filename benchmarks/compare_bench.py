"""The table of ratios before and after: two bench results files side by side (Markdown).

    python benchmarks/compare_bench.py 17501cd:paper/results/bench-cpu-amd-epyc-2c.json \
        paper/results/bench-cpu-amd-epyc-2c.json [--mode fwd] [--out ratios.md]

Each argument is a results file, or ``COMMIT:PATH`` for the file as committed (``git show``). Rendered by
:func:`lsbench.report.bench.ratio_comparison` (each recipe's time over optax, PyTorch and the read+write
floor, before and after), followed by the after file's targets as a compact table
(:func:`lsbench.report.bench.target_matrix_markdown`).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

from lsbench.provenance import REPO_ROOT
from lsbench.report.bench import ratio_comparison, target_matrix_markdown


def load(spec: str) -> dict:
    """A results document from a path or ``COMMIT:PATH``."""
    match = re.fullmatch(r"([0-9a-fA-F]{4,40}|HEAD[~^0-9]*):(.+)", spec)
    if match and not Path(spec).exists():
        text = subprocess.run(["git", "show", f"{match[1]}:{match[2]}"], cwd=REPO_ROOT, check=True,
                              capture_output=True, text=True).stdout
    else:
        text = Path(spec).read_text(encoding="utf-8")
    return json.loads(text)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", help="results file or COMMIT:PATH")
    parser.add_argument("after", help="results file or COMMIT:PATH")
    parser.add_argument("--mode", default="fwd+bwd", choices=("fwd", "fwd+bwd", "fwd+bwd:donated"))
    parser.add_argument("--out", default=None, help="write the Markdown here (default: print it)")
    args = parser.parse_args(argv)
    try:
        before, after = load(args.before), load(args.after)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"compare_bench: cannot read the results ({getattr(exc, 'stderr', None) or exc})", file=sys.stderr)
        return 2
    text = ratio_comparison(before, after, args.mode)
    if after.get("targets"):
        text += "\nTargets of the after file (met / evaluated):\n\n" + "\n".join(
            target_matrix_markdown(after["targets"])) + "\n"
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
