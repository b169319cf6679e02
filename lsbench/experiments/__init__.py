"""Reproductions of published experiments, run by ``python -m lsbench reproduce <name>``.

Each module exposes ``add_arguments(parser)`` and ``run(args) -> int``; the
first line of its docstring is the command's help text.

- :mod:`lsbench.experiments.pets` -- the fastai Oxford-IIIT Pets experiment
  (``LabelSmoothingCrossEntropy`` reported at 7.5 % error) for every recipe
  over several seeds, with calibration metrics.
"""
