"""fastai-style fine-tuning of a pretrained body: everything frozen except BatchNorm.

fastai's ``vision_learner`` (``cnn_learner`` in v1) calls ``learn.freeze()``
before ``fit_one_cycle``: the parameter groups of the body are frozen, but with
``train_bn=True`` (the default) every BatchNorm layer keeps its affine
parameters trainable, and the model runs in ``train()`` mode, so BatchNorm
normalises with batch statistics and updates its running averages
(fastai ``Learner.freeze_to``: "BatchNorm layers are always trained").  The
head is trained in full.

With NNX the same split is a *filter* over the model's variables, which
:func:`lsbench.train.fit` takes as ``trainable``:

* :func:`batchnorm_params` -- the ``nnx.Param`` (scale, bias) of every BatchNorm
  module (``nnx.BatchNorm`` and :class:`lsbench.models.head.BatchNorm1d`), found
  by module type rather than by name;
* :func:`fastai_trainable` -- those, plus every parameter under the top-level
  head attribute (``"head"``); nothing else, so a body's own attribute called
  ``head`` (EfficientNet-Lite's 1x1 head conv) stays frozen.

The running statistics (``nnx.BatchStat``) are not parameters: :func:`fit`
carries them through the training step as the forward pass leaves them, which
in train mode (``model.train()``) is the batch-statistics update.

Public API: :class:`PathFilter`, :func:`batchnorm_params`, :func:`fastai_trainable`,
:func:`count_params`.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
from flax import nnx

from lsbench.models.head import BatchNorm1d

__all__ = ["PathFilter", "BATCHNORM_TYPES", "batchnorm_params", "fastai_trainable", "count_params"]

#: Module types whose parameters fastai's ``train_bn`` keeps trainable.
BATCHNORM_TYPES = (nnx.BatchNorm, BatchNorm1d)


@dataclass(frozen=True)
class PathFilter:
    """NNX filter selecting the variables at the given graph paths (hashable, so
    :func:`lsbench.train.fit` compiles one step per filter, not per call)."""

    paths: frozenset
    name: str = "paths"

    def __call__(self, path, value) -> bool:
        return tuple(path) in self.paths

    def __repr__(self) -> str:
        return f"PathFilter({self.name}, {len(self.paths)} variables)"


def _param_paths(module: nnx.Module, prefix: tuple) -> set[tuple]:
    return {prefix + tuple(p) for p, _ in nnx.to_flat_state(nnx.state(module, nnx.Param))}


def batchnorm_params(model: nnx.Module) -> PathFilter:
    """Filter of the ``nnx.Param`` of every BatchNorm module of ``model`` (scale and bias)."""
    paths: set[tuple] = set()
    for path, node in nnx.iter_graph(model):
        if isinstance(node, BATCHNORM_TYPES):
            paths |= _param_paths(node, tuple(path))
    if not paths:
        raise ValueError("model has no BatchNorm parameters")
    return PathFilter(frozenset(paths), "batchnorm")


def fastai_trainable(model: nnx.Module, head: str = "head") -> PathFilter:
    """fastai's frozen-body split: the parameters under ``model.<head>`` and every BatchNorm's.

    >>> from lsbench.models.head import FastaiHead
    >>> class Net(nnx.Module):
    ...     def __init__(self):
    ...         self.body = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
    ...         self.head = FastaiHead(2, 3, hidden=4, rngs=nnx.Rngs(0))
    >>> net = Net()
    >>> count_params(net, fastai_trainable(net)) == count_params(net.head)
    True
    """
    sub = getattr(model, head, None)
    if not isinstance(sub, nnx.Module):
        raise ValueError(f"head must name a submodule of the model, got {head!r}")
    paths = set(batchnorm_params(model).paths) | _param_paths(sub, (head,))
    return PathFilter(frozenset(paths), f"fastai frozen body, trainable {head} + BatchNorm")


def count_params(model: nnx.Module, flt=nnx.Param) -> int:
    """Number of scalars in the variables of ``model`` that ``flt`` selects."""
    return sum(int(x.size) for x in jax.tree_util.tree_leaves(nnx.state(model, flt)))
