"""pets: the fastai Oxford-IIIT Pets experiment for every label-smoothing recipe, several seeds.

A workload in four modules (AlgoPerf style):

* :mod:`~lsbench.experiments.pets.config` -- every setting of a run as a frozen dataclass tree
  (:func:`~lsbench.experiments.pets.config.get_config`) and the recipes it trains (:data:`RUN_SPECS`);
* :mod:`~lsbench.experiments.pets.protocol` -- held-out split, augmentation, aggregation, table;
* :mod:`~lsbench.experiments.pets.run` -- ``python -m lsbench reproduce pets``: data, features,
  planning, training, recording (through :mod:`lsbench.experiments.records`).

The published anchors are :data:`lsbench.published.PETS_ANCHORS` (``ANCHORS`` here).
"""

from lsbench.experiments.pets.config import DEFAULT_RECIPES, RUN_SPECS, PetsConfig, RunSpec, get_config
from lsbench.experiments.pets.protocol import METRICS, aggregate, augment_batch, format_table, heldout_split
from lsbench.experiments.pets.run import add_arguments, default_out, run
from lsbench.published import PETS_ANCHORS as ANCHORS

__all__ = [
    "ANCHORS",
    "RUN_SPECS",
    "DEFAULT_RECIPES",
    "METRICS",
    "RunSpec",
    "PetsConfig",
    "get_config",
    "add_arguments",
    "run",
    "heldout_split",
    "augment_batch",
    "aggregate",
    "format_table",
    "default_out",
]
