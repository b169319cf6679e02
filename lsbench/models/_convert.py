"""Helpers shared by the PyTorch -> Flax NNX weight converters (private)."""

from __future__ import annotations

from typing import Any, Callable, Mapping

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


def assign_conv_bn(m: nnx.Module, sd: Mapping[str, Any], conv: str, bn: str, used: set) -> None:
    """Copy PyTorch conv ``<conv>.weight`` and BatchNorm ``<bn>.*`` into a ``ConvBN`` (``m.kernel``, ``m.bn``)."""
    assign(m.kernel, conv_kernel(sd[f"{conv}.weight"]), f"{conv}.weight")
    used.add(f"{conv}.weight")
    assign_bn(m.bn, sd, bn, used)


def convert_state_dict(model: nnx.Module, sd: Mapping[str, Any], what: str, load_body: Callable[[set], None], *,
                       fc: str, load_fc: bool) -> nnx.Module:
    """Fill ``model`` from a PyTorch state dict: ``load_body(used)`` copies the body (adding the keys it
    read to ``used``), then the classifier ``<fc>.weight``/``<fc>.bias`` into ``model.fc`` (weight
    transposed; skipped without ``load_fc``). A missing or unexpected key raises ``ValueError``."""
    used: set[str] = set()
    try:
        load_body(used)
        if load_fc:
            assign(model.fc.kernel, np.asarray(sd[f"{fc}.weight"]).T, f"{fc}.weight")
            assign(model.fc.bias, sd[f"{fc}.bias"], f"{fc}.bias")
        used.update({f"{fc}.weight", f"{fc}.bias"})
    except KeyError as exc:
        raise ValueError(f"{what} state dict lacks {exc.args[0]!r}") from None
    unexpected = sorted(set(sd) - used)
    if unexpected:
        raise ValueError(f"unexpected keys in {what} state dict: {unexpected[:8]}")
    return model


def load_converted(sd: Mapping[str, Any], what: str, fc: str, make: Callable[[int], nnx.Module],
                   convert: Callable[..., nnx.Module], num_features: int, num_classes: int | None,
                   seed: int) -> nnx.Module:
    """Build ``make(n)`` shape-only (``n`` = the file's classifier size), fill it with ``convert``
    and return it in eval mode; a ``num_classes`` other than ``n`` gets a fresh classifier
    ``nnx.Linear(num_features, num_classes)`` drawn from ``seed``."""
    n_file = int(sd[f"{fc}.weight"].shape[0])
    model = abstract(lambda: make(n_file))
    convert(model, sd, load_fc=True)
    if num_classes is not None and num_classes != n_file:
        model.fc = nnx.Linear(num_features, num_classes, rngs=nnx.Rngs(seed))
    check_concrete(model, what)
    model.eval()
    return model
