"""The Müller et al. (2019) reproduction in the paper: its tables, figure and prose macros.

The tables, the figure and the parser of ``paper/results/muller-<experiment>.json`` are
:mod:`lsbench.report.muller_tables`; the ``\\Muller...`` macros are
:mod:`lsbench.report.muller_macros`. This module is the one place :mod:`lsbench.report.build`
and ``reproduce muller`` (for :func:`render_figure`) take them from.

Schema: ``lsbench/muller-results/1`` (``lsbench/experiments/README.md``).
"""

from lsbench.report.muller_macros import muller_macros
from lsbench.report.muller_tables import (COMMAND, EXPERIMENTS, FIGURE, REPRESENTATIONS_CAPTION, Muller,
                                          calibration_table, distillation_table, figure_panels,
                                          muller_placeholder, parse_muller, portable_paths, render_figure,
                                          render_representations, representations_table, skip_reason,
                                          verdicts_table)

__all__ = ["COMMAND", "EXPERIMENTS", "FIGURE", "REPRESENTATIONS_CAPTION", "Muller", "parse_muller",
           "calibration_table", "distillation_table", "representations_table", "verdicts_table",
           "muller_placeholder", "figure_panels", "render_figure", "render_representations",
           "muller_macros", "portable_paths", "skip_reason"]
