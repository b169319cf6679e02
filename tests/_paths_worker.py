"""Subprocess worker of ``tests/test_paths.py``: every large-vocabulary path on the same inputs.

Run with ``XLA_FLAGS=--xla_force_host_platform_device_count=8`` (the test sets
it; see ``tests/test_sharding.py`` for why a subprocess). Prints one line
``RESULT {json}``: for each case, recipe and path the loss and the gradients
with respect to ``hidden``, ``weight`` and ``bias`` of ``logits = hidden @ weight + bias``.
"""

from __future__ import annotations

import json
import sys

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from lsbench.losses import RECIPES, chunked  # noqa: E402
from lsbench.losses.linear import linear_smoothed_cross_entropy  # noqa: E402
from lsbench.parallel import make_mesh, vocab_sharded_loss  # noqa: E402

N, H, K = 12, 5, 16
PATHS_OF = {  # the paths that support each recipe
    "uniform": ("plain", "chunked", "linear", "vocab"),
    "off_target": ("plain", "chunked", "linear", "vocab"),
    "fastai": ("plain", "chunked"),
    "speech_transformer": ("plain", "chunked"),
    "fastreid": ("plain", "chunked"),
}


def inputs(case, dtype):
    rng = np.random.default_rng(0)
    h = rng.normal(size=(N, H)).astype(dtype)
    w = rng.normal(size=(H, K)).astype(dtype)
    b = rng.normal(size=(K,)).astype(dtype)
    y = rng.integers(0, K, size=N).astype(np.int32)
    where = None
    if case in ("quantized", "offset"):  # h @ w + b exact in float32, also after adding 1e6 to b
        h = (np.round(h * 2) / 2).astype(dtype)
        w = (np.round(w * 4) / 4).astype(dtype)
        b = (np.round(b * 8) / 8 + (1e6 if case == "offset" else 0.0)).astype(dtype)
    if case == "bad_labels":  # out of range under jit: NaN rows, never a wrapped label
        y[2], y[7] = -3, K
    if case == "masked_nan":  # masked rows hold NaN and inf (see poison): exact zeros in loss and gradient
        where = np.ones(N, bool)
        where[[4, 9]] = False
    return jnp.asarray(h), jnp.asarray(w), jnp.asarray(b), jnp.asarray(y), where


def run(path, recipe, h, w, b, y, where, mesh, params):
    kw = dict(params)
    if where is not None:
        kw["where"] = jnp.asarray(where)

    def poison(a):  # masked rows 4 and 9 hold NaN and inf (their own gradient is cut by .set)
        return a.at[4].set(jnp.nan).at[9].set(jnp.inf) if where is not None else a

    def logits(h_, w_, b_):
        return poison(jnp.dot(h_, w_, precision=jax.lax.Precision.HIGHEST) + b_)

    # The labels are traced (a jit argument), as in training: a bad label cannot raise.
    fns = {
        "plain": lambda h_, w_, b_, y_: RECIPES[recipe].loss(logits(h_, w_, b_), y_, **kw),
        "chunked": lambda h_, w_, b_, y_: chunked.loss(logits(h_, w_, b_), y_, recipe=recipe, chunk_size=6, **kw),
        "linear": lambda h_, w_, b_, y_: linear_smoothed_cross_entropy(poison(h_), w_, y_, recipe=recipe, bias=b_,
                                                                       chunk_size=6, **kw),
        "vocab": lambda h_, w_, b_, y_: vocab_sharded_loss(logits(h_, w_, b_), y_, mesh, recipe=recipe, **kw),
    }
    value, grads = jax.jit(jax.value_and_grad(fns[path], argnums=(0, 1, 2)))(h, w, b, y)
    return {"loss": float(value), "grads": [np.asarray(g, np.float64).tolist() for g in grads]}


def main():
    mesh = make_mesh(4, ("model",))
    out = {"devices": jax.device_count()}
    for dtype in ("float32", "float64"):
        for case in ("plain", "quantized", "offset", "bad_labels", "masked_nan"):
            h, w, b, y, where = inputs(case, dtype)
            for recipe, paths in PATHS_OF.items():
                params = {"epsilon": 0.2}
                if recipe == "fastreid" and case == "plain":
                    params["adaptive"] = True
                if recipe == "speech_transformer":
                    params["ignore_index"] = -100
                res = {p: run(p, recipe, h, w, b, y, where, mesh, params) for p in paths}
                out[f"{dtype}/{case}/{recipe}"] = res
    print("RESULT " + json.dumps(out, allow_nan=True))


if __name__ == "__main__":
    sys.exit(main())
