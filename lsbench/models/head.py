"""The fastai transfer-learning head, in Flax NNX, on pre-pooled features.

fastai v2 ``create_head(nf, n_out)`` (``fastai/vision/learner.py``) builds::

    AdaptiveConcatPool2d  -> [max, avg] pooled features, 2C wide
    Flatten
    BatchNorm1d(2C)  Dropout(0.25)  Linear(2C, 512, bias=False)  ReLU
    BatchNorm1d(512) Dropout(0.5)   Linear(512, n_out, bias=False)

(``LinBnDrop(n_in, n_out, bn=True, p, act)`` = BN, dropout, linear with
``bias=not bn``, then the activation; ``ps=0.5`` gives ``[0.25, 0.5]``.)
fastai v1's ``bn_drop_lin`` was the same sequence with ``bias=True`` --
``linear_bias=True`` reproduces that.  fastai initialises the head with
``nn.init.kaiming_normal_`` on the linear weights (normal, std
``sqrt(2 / fan_in)``) and skips norm layers, whose ``BatchNorm`` helper sets
``weight=1, bias=1e-3``.

:class:`FastaiHead` starts *after* the pooling: its input is the ``[N, 2C]``
output of ``pool_features(fmap, "maxavg")`` (or of
``extract_features(..., pooling="maxavg")``), so it trains on cached
features.  Its BatchNorm follows PyTorch semantics exactly
(:class:`BatchNorm1d`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

__all__ = ["BatchNorm1d", "FastaiHead"]


class BatchNorm1d(nnx.Module):
    """``torch.nn.BatchNorm1d`` semantics on ``[N, C]`` inputs.

    Train mode (``use_running_average=False``, set by ``module.train()``):
    normalise with the batch mean and *biased* batch variance, and update
    ``running = (1 - momentum) * running + momentum * batch`` with the
    *unbiased* batch variance -- PyTorch's rule (``nnx.BatchNorm`` uses the
    biased one).  ``momentum`` is PyTorch's (0.1), not Flax's (0.9).
    Eval mode: normalise with the running statistics.
    """

    def __init__(self, num_features: int, *, eps: float = 1e-5, momentum: float = 0.1,
                 scale_init: float = 1.0, bias_init: float = 1e-3, use_running_average: bool = False):
        self.scale = nnx.Param(jnp.full((num_features,), scale_init, jnp.float32))
        self.bias = nnx.Param(jnp.full((num_features,), bias_init, jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))
        self.eps, self.momentum = eps, momentum
        self.use_running_average = use_running_average

    def __call__(self, x: jax.Array) -> jax.Array:
        if self.use_running_average:
            mean, var = self.mean[...], self.var[...]
        else:
            n = x.shape[0]
            mean = jnp.mean(x, axis=0)
            var = jnp.mean(jnp.square(x - mean), axis=0)
            unbiased = var * (n / max(n - 1, 1))
            m = self.momentum
            self.mean[...] = (1 - m) * self.mean[...] + m * jax.lax.stop_gradient(mean)
            self.var[...] = (1 - m) * self.var[...] + m * jax.lax.stop_gradient(unbiased)
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...] + self.bias[...]


class FastaiHead(nnx.Module):
    """fastai ``create_head`` minus the pooling: ``[N, in_features] -> [N, num_classes]`` logits.

    ``BN(in) -> Dropout(ps/2) -> Linear(in, hidden) -> ReLU -> BN(hidden) ->
    Dropout(ps) -> Linear(hidden, num_classes)``; linear layers without bias
    (fastai v2) unless ``linear_bias=True`` (fastai v1).  ``in_features`` is
    2C for concat-pooled features (2560 for EfficientNet-Lite0, 1024 for
    ResNet-34).

    Modes: ``head.train()`` (BN batch statistics + running-average updates,
    dropout on) and ``head.eval()`` (running statistics, no dropout).  A new
    head is in train mode.  Dropout draws from the ``dropout`` stream of the
    ``rngs`` given at construction (else its default stream), or from
    ``head(x, rngs=...)`` when given there.
    """

    def __init__(self, in_features: int, num_classes: int = 37, *, hidden: int = 512, ps: float = 0.5,
                 linear_bias: bool = False, rngs: nnx.Rngs):
        kaiming = nnx.initializers.variance_scaling(2.0, "fan_in", "normal")
        self.bn1 = BatchNorm1d(in_features)
        self.drop1 = nnx.Dropout(ps / 2, rngs=rngs)
        self.fc1 = nnx.Linear(in_features, hidden, use_bias=linear_bias, kernel_init=kaiming, rngs=rngs)
        self.bn2 = BatchNorm1d(hidden)
        self.drop2 = nnx.Dropout(ps, rngs=rngs)
        self.fc2 = nnx.Linear(hidden, num_classes, use_bias=linear_bias, kernel_init=kaiming, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        x = self.drop1(self.bn1(x), rngs=rngs)
        x = jax.nn.relu(self.fc1(x))
        x = self.drop2(self.bn2(x), rngs=rngs)
        return self.fc2(x)
