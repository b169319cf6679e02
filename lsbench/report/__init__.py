"""Paper generation: tables and figures from recorded results (``python -m lsbench paper``).

The report reads results files only: nothing here imports the measuring code
(:mod:`lsbench.bench`), the experiments or the commands.

* :mod:`~lsbench.report.tables`  -- the :class:`~lsbench.report.tables.Table` model (LaTeX booktabs and
  Markdown, provenance captions, atomic writes), :func:`~lsbench.report.tables.results_table`,
  :func:`~lsbench.report.tables.placeholder` and the one LaTeX escaper;
* :mod:`~lsbench.report.fmt`     -- number formatting (fixed digits, ``mean ± ci``, durations, ratios);
* :mod:`~lsbench.report.results` -- finding, parsing and checking ``paper/results/*.json``;
* :mod:`~lsbench.report.proofs`  -- catalogue, verification, findings and every-theorem tables;
* :mod:`~lsbench.report.bench`   -- throughput and memory tables and figure, and the bench command's own
  ``tables/bench.{tex,md}``;
* :mod:`~lsbench.report.pets`    -- the Pets table, reliability diagrams, ECE against error;
* :mod:`~lsbench.report.muller`  -- the Müller et al. reproduction tables and figure;
* :mod:`~lsbench.report.figures` -- deterministic matplotlib output and figure snippets;
* :mod:`~lsbench.report.build`   -- :func:`~lsbench.report.build.generate`, which writes them all.
"""
