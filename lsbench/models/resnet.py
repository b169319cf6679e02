"""ResNet-34 in Flax NNX (NHWC), laid out like torchvision's ``resnet34``.

Architecture (torchvision ``ResNet(BasicBlock, [3, 4, 6, 3])``)::

    conv1 7x7 s2 pad 3, 64ch, BN, ReLU -> maxpool 3x3 s2 pad 1
    layer1..4: BasicBlocks x [3, 4, 6, 3], 64/128/256/512 ch, first stride 1/2/2/2
        BasicBlock: conv3x3(stride) BN ReLU conv3x3 BN (+ downsample conv1x1(stride) BN) ReLU
    global average pool -> fc 512 -> num_classes

Convolutions use PyTorch's symmetric zero padding (not TF ``SAME``), BN
``eps=1e-5`` and momentum 0.9 (Flax convention; 0.1 in PyTorch terms).

**Preprocessing** (:func:`preprocess`): torchvision ImageNet weights expect
RGB in ``[0, 1]`` normalised per channel with ``mean=(0.485, 0.456, 0.406)``
and ``std=(0.229, 0.224, 0.225)`` (torchvision ``ResNet34_Weights`` transforms;
also fastai's ``imagenet_stats``).

No weights ship with lsbench: :func:`load_resnet34` converts a torchvision
ResNet-34 state dict stored as a zip ``.pth`` (torch >= 1.6), a legacy
``.pth`` or a ``.safetensors`` file, e.g. torchvision's
``resnet34-b627a593.pth`` (download it yourself from
https://download.pytorch.org/models/resnet34-b627a593.pth).

Public API: :class:`ResNet34`, :func:`preprocess`,
:func:`convert_resnet34_state_dict`, :func:`load_resnet34`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsbench.models._convert import assign_conv_bn, convert_state_dict, load_converted
from lsbench.models.layers import ConvBN, pool_features
from lsbench.models.torch_pickle import load_state_dict

__all__ = ["ResNet34", "RESNET34_LAYERS", "IMAGENET_MEAN", "IMAGENET_STD", "preprocess",
           "convert_resnet34_state_dict", "load_resnet34"]

RESNET34_LAYERS = (3, 4, 6, 3)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
BN_EPS = 1e-5
BN_MOMENTUM = 0.9  # Flax convention (PyTorch momentum 0.1)


def preprocess(images: jax.Array | np.ndarray) -> jax.Array:
    """uint8/float RGB pixels 0..255, NHWC -> ``(x / 255 - mean) / std`` (ImageNet stats)."""
    x = jnp.asarray(images, jnp.float32) / 255.0
    return (x - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)


def _conv_bn(cin, cout, k, stride=1, *, act=True, rngs):
    return ConvBN(cin, cout, k, stride, padding=k // 2, act="relu" if act else None,
                  bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM, rngs=rngs)


def max_pool_3x3_s2(x: jax.Array) -> jax.Array:
    """``nn.MaxPool2d(3, stride=2, padding=1)`` on NHWC (padding never wins the max)."""
    return jax.lax.reduce_window(x, -jnp.inf, jax.lax.max, (1, 3, 3, 1), (1, 2, 2, 1),
                                 ((0, 0), (1, 1), (1, 1), (0, 0)))


class BasicBlock(nnx.Module):
    """torchvision ``BasicBlock`` (expansion 1)."""

    def __init__(self, cin: int, cout: int, stride: int, *, rngs: nnx.Rngs):
        self.conv1 = _conv_bn(cin, cout, 3, stride, rngs=rngs)
        self.conv2 = _conv_bn(cout, cout, 3, act=False, rngs=rngs)
        self.downsample = (_conv_bn(cin, cout, 1, stride, act=False, rngs=rngs)
                           if stride != 1 or cin != cout else None)

    def __call__(self, x):
        identity = self.downsample(x) if self.downsample is not None else x
        return jax.nn.relu(self.conv2(self.conv1(x)) + identity)


class ResNet34(nnx.Module):
    """ResNet-34 (NHWC).  Input: :func:`preprocess`-ed float images.

    * ``model(x)`` -> logits ``[N, num_classes]``;
    * ``model.features(x)`` -> ``[N, h, w, 512]`` (output of ``layer4``, 7x7
      for 224 inputs); ``model.features(x, pooling=...)`` -> pooled (see
      :func:`lsbench.models.layers.pool_features`).

    Use ``model.eval()`` for inference (BN running statistics);
    :func:`load_resnet34` returns the model in eval mode.
    """

    num_features = 512
    preprocess = staticmethod(preprocess)

    def __init__(self, num_classes: int = 1000, *, rngs: nnx.Rngs):
        self.stem = _conv_bn(3, 64, 7, 2, rngs=rngs)
        layers = []
        cin = 64
        for i, (n, cout) in enumerate(zip(RESNET34_LAYERS, (64, 128, 256, 512))):
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(cin, cout, 2 if (j == 0 and i > 0) else 1, rngs=rngs))
                cin = cout
            layers.append(nnx.List(blocks))
        self.layers = nnx.List(layers)
        self.fc = nnx.Linear(self.num_features, num_classes, rngs=rngs)

    def features(self, x, pooling: str | None = None):
        x = max_pool_3x3_s2(self.stem(x))
        for layer in self.layers:
            for block in layer:
                x = block(x)
        return x if pooling is None else pool_features(x, pooling)

    def __call__(self, x):
        return self.fc(self.features(x, "avg"))


def convert_resnet34_state_dict(model: ResNet34, sd: Mapping[str, np.ndarray], *,
                                load_fc: bool = True) -> ResNet34:
    """Copy a torchvision ResNet-34 state dict into ``model`` (in place).

    Keys: ``conv1``/``bn1``, ``layer{i}.{j}.conv1|bn1|conv2|bn2``,
    ``layer{i}.0.downsample.0|1``, ``fc``.  Conv kernels OIHW -> HWIO, FC
    weight transposed.  Missing/unexpected keys and shape mismatches raise
    ``ValueError``.
    """
    def body(used: set) -> None:
        assign_conv_bn(model.stem, sd, "conv1", "bn1", used)
        for i, layer in enumerate(model.layers, start=1):
            for j, blk in enumerate(layer):
                p = f"layer{i}.{j}"
                assign_conv_bn(blk.conv1, sd, f"{p}.conv1", f"{p}.bn1", used)
                assign_conv_bn(blk.conv2, sd, f"{p}.conv2", f"{p}.bn2", used)
                if blk.downsample is not None:
                    assign_conv_bn(blk.downsample, sd, f"{p}.downsample.0", f"{p}.downsample.1", used)

    return convert_state_dict(model, sd, "ResNet-34", body, fc="fc", load_fc=load_fc)


def load_resnet34(weights: str | os.PathLike, *, num_classes: int | None = None,
                  seed: int = 0) -> ResNet34:
    """ResNet-34 from a torchvision state dict file (zip/legacy ``.pth`` or ``.safetensors``), eval mode.

    ``num_classes`` defaults to the file's FC size; a different value gets a
    freshly initialised FC layer (``seed``).
    """
    sd = load_state_dict(Path(weights))
    if "fc.weight" not in sd:
        raise ValueError(f"{weights}: not a ResNet-34 state dict (no 'fc.weight')")
    return load_converted(sd, "ResNet-34", "fc", lambda n: ResNet34(n, rngs=nnx.Rngs(0)),
                          convert_resnet34_state_dict, ResNet34.num_features, num_classes, seed)
