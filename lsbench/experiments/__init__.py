"""Reproductions of published experiments, run by ``python -m lsbench reproduce <name>``.

One package per workload (AlgoPerf style), each with a ``config`` module (every setting as a
frozen dataclass tree, ``get_config()``), its protocol/data/aggregation modules and a ``run``
module exposing ``add_arguments(parser)`` and ``run(args) -> int``; the first line of the
package docstring is the command's help text.

- :mod:`lsbench.experiments.pets` -- the fastai Oxford-IIIT Pets experiment
  (``LabelSmoothingCrossEntropy`` reported at 7.5 % error) for every recipe
  over several seeds, with calibration metrics.
- :mod:`lsbench.experiments.muller` -- Müller, Kornblith & Hinton (2019): calibration,
  distillation and representations on small offline data.

Shared by both: :mod:`~lsbench.experiments.records` (run records, resume, aggregation helpers)
and :mod:`~lsbench.experiments.settings` (config-tree helpers, :class:`~.settings.RunSpec`).
Training is :func:`lsbench.train.fit`; the published numbers are :mod:`lsbench.published`;
tables and figures are :mod:`lsbench.report`. Results schemas: ``lsbench/experiments/README.md``.
"""
