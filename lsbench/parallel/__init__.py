"""Beyond one machine: data parallelism and vocabulary-sharded label smoothing.

- :mod:`lsbench.parallel.mesh` -- ``make_mesh``, ``shard_batch``,
  ``shard_local_batch`` (multi-host input), ``replicate``.
- :mod:`lsbench.parallel.data_parallel` -- a ``jax.jit`` training step for a
  Flax ``nnx`` model and an Optax optimizer with the batch split over a
  ``data`` mesh axis (``DataParallelTrainer``, ``data_parallel_train_step``).
- :mod:`lsbench.parallel.vocab` -- ``uniform`` and ``off_target`` with the
  class axis split over a ``model`` mesh axis (``jax.shard_map`` + ``pmax``/
  ``psum``), global ``K`` in ``ε/K`` and ``ε/(K−1)``, and a collective-free
  closed-form backward.

The same code runs on one device and on many; on a CPU,
``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (set before JAX is
imported) gives 8 host devices for testing.

The data-parallel names need Flax (the ``experiments`` extra) and are imported on first use
(PEP 562), so ``mesh`` and ``vocab`` work with the core install alone.
"""

import importlib

from lsbench.parallel.mesh import (
    axis_size,
    batch_sharding,
    make_mesh,
    replicate,
    replicated,
    shard_batch,
    shard_local_batch,
)
from lsbench.parallel.vocab import (
    RECIPES_SUPPORTED,
    vocab_sharded_loss,
    vocab_sharded_per_example,
    vocab_sharded_row_stats,
)

#: Names from :mod:`lsbench.parallel.data_parallel`, which imports Flax; loaded on first access.
_DATA_PARALLEL = ("DataParallelTrainer", "data_parallel_train_step", "recipe_loss_fn", "replicate_nnx")

__all__ = [
    "DataParallelTrainer",
    "RECIPES_SUPPORTED",
    "axis_size",
    "batch_sharding",
    "data_parallel_train_step",
    "make_mesh",
    "recipe_loss_fn",
    "replicate",
    "replicate_nnx",
    "replicated",
    "shard_batch",
    "shard_local_batch",
    "vocab_sharded_loss",
    "vocab_sharded_per_example",
    "vocab_sharded_row_stats",
]


def __getattr__(name: str):
    if name in _DATA_PARALLEL:
        value = getattr(importlib.import_module("lsbench.parallel.data_parallel"), name)
        globals()[name] = value  # later look-ups skip this hook
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_DATA_PARALLEL))
