"""Model, data and helpers shared by the subprocess workers of ``tests/test_sharding.py``.

Import this only after ``XLA_FLAGS`` is set (it imports JAX).
"""

from __future__ import annotations

import jax
import numpy as np
from flax import nnx

EPS = 0.1
IGNORE = -100
DP_STEPS, DP_BATCH, DP_IN, DP_HIDDEN, DP_CLASSES = 3, 64, 32, 64, 10


class MLP(nnx.Module):
    def __init__(self, din=DP_IN, dhidden=DP_HIDDEN, dout=DP_CLASSES, *, rngs):
        self.l1 = nnx.Linear(din, dhidden, rngs=rngs)
        self.l2 = nnx.Linear(dhidden, dout, rngs=rngs)

    def __call__(self, x):
        return self.l2(jax.nn.gelu(self.l1(x)))


def dp_batches():
    """Three global batches; rows 0–5 are masked, so they all fall in the first device's slice."""
    rng = np.random.default_rng(3)
    out = []
    for _ in range(DP_STEPS):
        x = rng.normal(size=(DP_BATCH, DP_IN)).astype(np.float32)
        y = rng.integers(0, DP_CLASSES, size=DP_BATCH).astype(np.int32)
        y[:6] = IGNORE
        out.append({"image": x, "label": y})
    return out


def flat(tree) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x, np.float64)) for x in jax.tree_util.tree_leaves(tree)])
