"""Helpers shared by the PyTorch -> Flax NNX weight converters (private)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx


def abstract(factory):
    """Build an NNX module without running its initialisers (shapes only).

    Real initialisation of a few-million-parameter network runs one small XLA
    computation per variable (tens of seconds on a 2-core CPU); converters
    build the shape-only module and then fill every variable with
    :func:`assign`, and finally check with :func:`check_concrete`.
    """
    return nnx.eval_shape(factory)


def conv_kernel(w: np.ndarray) -> np.ndarray:
    """PyTorch conv weight OIHW (depthwise: C,1,kh,kw) -> Flax HWIO (depthwise: kh,kw,1,C)."""
    w = np.asarray(w)
    if w.ndim != 4:
        raise ValueError(f"conv weight must be 4-D, got shape {w.shape}")
    return np.ascontiguousarray(np.transpose(w, (2, 3, 1, 0)))


def assign(var: nnx.Variable, value, name: str) -> None:
    """Set ``var`` to ``value`` (as float32), checking the shape."""
    value = np.asarray(value, dtype=np.float32)
    want = tuple(var.get_value().shape)
    if want != value.shape:
        raise ValueError(f"{name}: shape {value.shape} does not fit the model's {want}")
    var.set_value(jnp.asarray(value))


def assign_bn(bn: nnx.BatchNorm, sd, prefix: str, used: set) -> None:
    """Copy a PyTorch BatchNorm (weight, bias, running_mean, running_var) into ``bn``."""
    for ours, theirs in (("scale", "weight"), ("bias", "bias"), ("mean", "running_mean"),
                         ("var", "running_var")):
        assign(getattr(bn, ours), sd[f"{prefix}.{theirs}"], f"{prefix}.{theirs}")
        used.add(f"{prefix}.{theirs}")
    used.add(f"{prefix}.num_batches_tracked")


def check_concrete(model: nnx.Module, what: str) -> None:
    """Raise if some variable of ``model`` was left shape-only by the converter."""
    leaves = jax.tree_util.tree_leaves_with_path(nnx.state(model))
    missing = [jax.tree_util.keystr(p) for p, v in leaves if isinstance(v, jax.ShapeDtypeStruct)]
    if missing:
        raise ValueError(f"{what}: no weights converted for {missing[:8]}")
