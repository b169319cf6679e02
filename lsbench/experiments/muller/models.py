"""Models and the distillation loss of the Müller et al. (2019) reproduction.

* :class:`MLP` -- a fully connected ReLU network with optional input and hidden
  dropout (Müller/Hinton's MNIST teacher is ``MLP(784, (1200, 1200), 10,
  dropout=0.5, input_dropout=0.2)``, the student ``MLP(784, (800, 800), 10)``).
  ``features(x)`` is the penultimate layer (the last hidden activations, after
  ReLU, before the last linear layer); ``head`` is that last layer.
* :func:`build_model` -- an :class:`MLP` or the pets experiment's
  :class:`lsbench.models.FastaiHead` from a JSON-able architecture dict.
* :func:`penultimate_and_logits` -- eval-mode penultimate activations and
  logits (one jitted function per model structure, fixed batch shape).
* :func:`last_layer` -- the last layer's weight matrix ``[D, K]`` (its columns
  are the class *templates* ``w_k`` of Müller et al.) and bias.
* :func:`make_distillation_loss` -- the student loss
  ``β·T²·KL(softmax(t/T) ‖ softmax(s/T)) + (1 − β)·CE(s, y)``, its KL part from
  ``RECIPES["distillation"]`` and its CE part from ``RECIPES["uniform"]`` with
  ε = 0; the teacher's logits ride in the batch (``batch["teacher_logits"]``),
  so students train through :func:`lsbench.train.fit` like every other model.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Sequence

import jax
import numpy as np
from flax import nnx

__all__ = [
    "MLP",
    "build_model",
    "penultimate_and_logits",
    "last_layer",
    "make_distillation_loss",
]


class MLP(nnx.Module):
    """``x -> [dropout_in] -> (Linear -> ReLU -> [dropout])×L -> Linear`` logits ``[N, K]``."""

    def __init__(self, in_features: int, hidden: Sequence[int], num_classes: int, *,
                 dropout: float = 0.0, input_dropout: float = 0.0, rngs: nnx.Rngs):
        widths = [int(in_features), *(int(h) for h in hidden)]
        if len(widths) < 2:
            raise ValueError("MLP needs at least one hidden layer (the penultimate layer)")
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(widths[:-1], widths[1:])])
        self.head = nnx.Linear(widths[-1], int(num_classes), rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs) if dropout else None
        self.drop_in = nnx.Dropout(input_dropout, rngs=rngs) if input_dropout else None

    def features(self, x, *, rngs=None):
        """The penultimate layer: the last hidden ReLU activations (dropout only in train mode)."""
        if self.drop_in is not None:
            x = self.drop_in(x, rngs=rngs)
        for layer in self.hidden:
            x = jax.nn.relu(layer(x))
            if self.drop is not None:
                x = self.drop(x, rngs=rngs)
        return x

    def __call__(self, x, *, rngs=None):
        return self.head(self.features(x, rngs=rngs))


def build_model(arch: Mapping[str, Any], in_features: int, num_classes: int, seed: int) -> nnx.Module:
    """``arch = {"kind": "mlp", "hidden", "dropout", "input_dropout"}`` or
    ``{"kind": "fastai_head", "hidden", "ps", "linear_bias"}``; parameters drawn from ``nnx.Rngs(seed)``."""
    rngs = nnx.Rngs(int(seed))
    kind = arch["kind"]
    if kind == "mlp":
        return MLP(in_features, arch["hidden"], num_classes, dropout=arch.get("dropout", 0.0),
                   input_dropout=arch.get("input_dropout", 0.0), rngs=rngs)
    if kind == "fastai_head":
        from lsbench.models.head import FastaiHead

        return FastaiHead(in_features, num_classes, hidden=int(arch["hidden"]), ps=float(arch["ps"]),
                          linear_bias=bool(arch["linear_bias"]), rngs=rngs)
    raise ValueError(f"unknown architecture kind {kind!r}")


def _features(model, x):
    if hasattr(model, "features"):
        return model.features(x)
    # lsbench.models.FastaiHead in eval mode: BN -> (dropout off) -> fc1 -> ReLU -> BN -> | fc2
    h = jax.nn.relu(model.fc1(model.bn1(x)))
    return model.bn2(h)


def last_layer(model) -> tuple[np.ndarray, np.ndarray | None]:
    """``(W [D, K], b [K] or None)`` of the layer that maps the penultimate activations to logits."""
    layer = model.head if hasattr(model, "head") else model.fc2
    w = np.asarray(layer.kernel[...], np.float64)
    b = None if layer.bias is None else np.asarray(layer.bias[...], np.float64)
    return w, b


@functools.lru_cache(maxsize=32)
def _embed_fn(graphdef):
    @jax.jit
    def run(state, x):
        model = nnx.merge(graphdef, state, copy=True)
        h = _features(model, x)
        layer = model.head if hasattr(model, "head") else model.fc2
        return h, layer(h)

    return run


def penultimate_and_logits(model: nnx.Module, x: np.ndarray, batch_size: int = 500
                           ) -> tuple[np.ndarray, np.ndarray]:
    """Eval-mode ``(penultimate [N, D], logits [N, K])`` float32 (the argument keeps its mode)."""
    model = nnx.clone(model)
    model.eval()
    graphdef, state = nnx.split(model)
    run = _embed_fn(graphdef)
    x = np.asarray(x)
    n = len(x)
    if n == 0:
        raise ValueError("no examples")
    bs = min(batch_size, n)
    hs, zs = [], []
    for start in range(0, n, bs):
        xb = x[start:start + bs]
        k = len(xb)
        if k < bs:
            xb = np.concatenate([xb, np.zeros((bs - k, *xb.shape[1:]), xb.dtype)])
        h, z = run(state, xb)
        hs.append(np.asarray(h)[:k])
        zs.append(np.asarray(z)[:k])
    return np.concatenate(hs).astype(np.float32), np.concatenate(zs).astype(np.float32)


# --------------------------------------------------------------------------- distillation


@functools.lru_cache(maxsize=None)
def make_distillation_loss(temperature: float, beta: float) -> Callable:
    """``loss(student_logits, batch) = β·T²KL(batch["teacher_logits"]) + (1 − β)·CE(batch["label"])``
    (cached per ``(T, β)``), in the ``loss(logits, batch)`` convention of :func:`lsbench.train.fit`.

    ``T²KL`` is ``RECIPES["distillation"].loss`` (batchmean), ``CE`` is
    ``RECIPES["uniform"].loss`` with ε = 0 (mean). ``β = 0`` is plain
    cross-entropy on the labels (the teacher logits are then ignored).
    """
    from lsbench.losses import RECIPES

    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must lie in [0, 1], got {beta}")
    kd, ce = RECIPES["distillation"].loss, RECIPES["uniform"].loss
    t, b = float(temperature), float(beta)

    def loss(s, batch):
        hard = ce(s, batch["label"], epsilon=0.0)
        if b == 0.0:
            return hard
        return b * kd(s, batch["teacher_logits"], temperature=t) + (1.0 - b) * hard

    return loss
