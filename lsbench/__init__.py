"""lsbench: every published form of label smoothing, made comparable and verified.

- :mod:`lsbench.losses` -- the recipes as pure, jit-compiled JAX losses.
- ``proofs/`` -- SymPy derivations of each recipe (``python -m lsbench verify``).
- ``benchmarks/`` -- throughput and memory against peers (``python -m lsbench bench``).
- :mod:`lsbench.experiments` -- reproductions (``python -m lsbench reproduce pets``).
"""

__version__ = "0.1.0"
