"""Paper generation: tables and figures from recorded results (``python -m lsbench paper``).

* :mod:`~lsbench.report.tables`  -- the :class:`~lsbench.report.tables.Table` model (LaTeX booktabs and
  Markdown, provenance captions, atomic writes);
* :mod:`~lsbench.report.results` -- finding, parsing and checking ``paper/results/*.json``;
* :mod:`~lsbench.report.proofs`  -- catalogue, verification, findings and every-theorem tables;
* :mod:`~lsbench.report.bench`   -- throughput and memory tables and figure;
* :mod:`~lsbench.report.pets`    -- the Pets table, reliability diagrams, ECE against error;
* :mod:`~lsbench.report.muller`  -- the Müller et al. reproduction tables and figure;
* :mod:`~lsbench.report.figures` -- deterministic matplotlib output and figure snippets;
* :mod:`~lsbench.report.build`   -- :func:`~lsbench.report.build.generate`, which writes them all.
"""
