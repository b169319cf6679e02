"""The fastai-profile network (:func:`pets_net`) and the frozen profile's feature cache helpers."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path
from typing import Callable

import numpy as np

__all__ = ["pets_net", "array_digest", "load_cached_features", "npz_bytes"]


# --------------------------------------------------------------------------- fastai-profile model


@functools.cache
def _pets_net_class():
    """The fastai-profile network class (defined on first use: importing Flax takes seconds)."""
    from flax import nnx

    class PetsNet(nnx.Module):
        """ResNet-34 body -> concat pooling ``[max, avg]`` -> :class:`FastaiHead`; input uint8 NHWC."""

        def __init__(self, body, head, pooling):
            self.body = body
            self.head = head
            self.pooling = pooling

        def __call__(self, x, *, rngs=None):
            feats = self.body.features(self.body.preprocess(x), self.pooling)
            return self.head(feats, rngs=rngs)

    return PetsNet


def pets_net(body, head, pooling: str = "maxavg"):
    """``PetsNet(body, head)``: ``head(pool(body.features(body.preprocess(x))))``."""
    return _pets_net_class()(body, head, pooling)


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


def npz_bytes(**arrays) -> bytes:
    import io

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def array_digest(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of each array (the identity of a split's images/labels)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()
