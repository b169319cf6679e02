"""``python -m lsbench.bench --rss-child SPEC``: the child process of :func:`lsbench.bench.measure_rss`."""

import sys

from lsbench.bench.memory import rss_child

if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--rss-child":
        raise SystemExit(rss_child(sys.argv[2]))
    raise SystemExit("usage: python -m lsbench bench (this module's entry point is internal)")
