"""Cached backbone features of image arrays, of the originals and of their mirror images.

The frozen pets profile trains a head on pooled EfficientNet-Lite features
(:func:`lsbench.models.efficientnet_lite.extract_features`); computing them is
the slow part of a cold run, so they are cached as ``.npz`` files (arrays
``features`` float32 ``[N, D]`` and ``labels``), written atomically, under
``<cache>/features/``::

    <dataset>-<variant>-<split>-<key>.npz            originals
    <dataset>-<variant>-mirrored-<split>-<key>.npz   horizontally mirrored images

(the originals keep the names earlier versions wrote, which other experiments
look up).  ``key`` (:func:`feature_cache_key`) is a digest of everything the
features depend on: the variant, its weights file (sha256), the input
resolution, the pooling, the mirroring, the preprocessing, the images (sha256
of their bytes, :func:`array_sha256`) and the JAX backend.  A cached file is
used only when its labels equal the caller's and every feature is finite;
otherwise it is recomputed.

Public API: :func:`array_sha256`, :func:`feature_cache_key`, :func:`feature_cache_path`,
:func:`read_cached_features`, :func:`cached_features`, :func:`cached_features_with_mirrors`.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Callable

import numpy as np

from lsbench.data.pets import default_cache_dir
from lsbench.provenance import atomic_write_bytes

__all__ = ["FEATURES_VERSION", "array_sha256", "feature_cache_key", "feature_cache_path", "read_cached_features",
           "cached_features", "cached_features_with_mirrors"]

#: Bumped whenever the extraction changes, so stale caches are not reused.
FEATURES_VERSION = 1
PREPROCESS = "(x - 127) / 128, eval-mode BN"


def array_sha256(*arrays: np.ndarray) -> str:
    """sha256 over the dtype, shape and bytes of each array (the identity of images or labels)."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(memoryview(a).cast("B"))
    return h.hexdigest()


def feature_cache_key(*, variant: str, weights_sha256: str, resolution: int, pooling: str, flip: bool,
                      images_sha256: str, backend: str | None = None) -> str:
    """24-hex-digit digest of everything a cached feature file depends on."""
    if backend is None:
        import jax

        backend = jax.default_backend()
    ident = {"version": FEATURES_VERSION, "variant": variant, "weights_sha256": weights_sha256,
             "resolution": int(resolution), "pooling": pooling, "flip": bool(flip), "preprocess": PREPROCESS,
             "images_sha256": images_sha256, "backend": backend}
    return hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:24]


def feature_cache_path(cache_dir: str | os.PathLike | None, dataset: str, variant: str, split: str,
                       flip: bool, key: str) -> Path:
    """``<cache>/features/<dataset>-<variant>[-mirrored]-<split>-<key>.npz`` (cache default:
    :func:`lsbench.data.pets.default_cache_dir`)."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    middle = f"{variant}-mirrored" if flip else variant
    return root / "features" / f"{dataset}-{middle}-{split}-{key}.npz"


def read_cached_features(path: Path, labels: np.ndarray, log: Callable[[str], None]) -> np.ndarray | None:
    """The ``features`` of the cache file ``path`` if it exists, is readable, holds float32
    ``[N, D]`` finite features and its ``labels`` equal ``labels``; else ``None`` (logged)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            feats, cached_labels = z["features"], z["labels"]
    except Exception as exc:  # noqa: BLE001 - an unreadable cache is recomputed
        log(f"features: cache {path} unreadable ({exc}); recomputing")
        return None
    if (feats.ndim == 2 and feats.shape[0] == len(labels) and feats.dtype == np.float32
            and np.array_equal(cached_labels, labels) and np.isfinite(feats).all()):
        return feats
    log(f"features: cache {path} does not match the data; recomputing")
    return None


def _write(path: Path, feats: np.ndarray, labels: np.ndarray) -> None:
    buf = io.BytesIO()
    np.savez(buf, features=feats, labels=labels)
    atomic_write_bytes(path, buf.getvalue())


def _check_images(images: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    images, labels = np.asarray(images), np.asarray(labels)
    if images.ndim != 4 or images.shape[-1] != 3 or images.shape[1] != images.shape[2]:
        raise ValueError(f"images must be square RGB [N, S, S, 3], got shape {images.shape}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels must be [N] = [{images.shape[0]}], got shape {labels.shape}")
    return images, labels


def cached_features_with_mirrors(images: np.ndarray, labels: np.ndarray, *, split: str, variant: str = "lite0",
                                 pooling: str = "maxavg", mirrors: bool = True, originals: bool = True,
                                 dataset: str = "pets", cache_dir: str | os.PathLike | None = None,
                                 images_sha256: str | None = None, batch_size: int = 16, progress: bool = True,
                                 log: Callable[[str], None] | None = None) -> dict[str, object]:
    """Pooled EfficientNet-Lite ``variant`` features of ``images`` (``originals``) and of their
    mirror images (``mirrors``), each from its cache file or extracted and saved; the model is
    loaded once, and only on a miss.

    ``images``: uint8 ``[N, S, S, 3]`` at the resolution to use (the variant's
    ``NATIVE_RESOLUTION`` for a faithful backbone: ``load_pets(image_size=260)``
    for Lite2); ``labels``: ``[N]``, stored with the features and checked on reading.
    ``split`` names the files (e.g. ``"trainval"``).  ``images_sha256`` skips
    hashing the images when the caller has :func:`array_sha256` of them already.

    Returns ``{"features": [N, D] float32 or None, "mirrored": [N, D] float32 or None,
    "keys": {name: key}, "paths": {name: Path}, "weights_sha256": str,
    "extracted": [names extracted now]}`` with names ``"features"`` and ``"mirrored"``.
    """
    from lsbench.models.efficientnet_lite import (efficientnet_lite_weights_path, extract_features, get_variant,
                                                  load_efficientnet_lite)
    from lsbench.provenance import sha256_file

    get_variant(variant)
    if not (originals or mirrors):
        raise ValueError("originals and mirrors are both False: nothing to return")
    images, labels = _check_images(images, labels)
    log = log or (lambda _msg: None)
    weights = efficientnet_lite_weights_path(variant)
    weights_sha = sha256_file(weights)
    images_sha = images_sha256 or array_sha256(images)
    out: dict[str, object] = {"features": None, "mirrored": None, "keys": {}, "paths": {},
                              "weights_sha256": weights_sha, "extracted": []}
    model = None
    for name, flip, wanted in (("features", False, originals), ("mirrored", True, mirrors)):
        if not wanted:
            continue
        key = feature_cache_key(variant=variant, weights_sha256=weights_sha, resolution=images.shape[1],
                                pooling=pooling, flip=flip, images_sha256=images_sha)
        path = feature_cache_path(cache_dir, dataset, variant, split, flip, key)
        out["keys"][name], out["paths"][name] = key, path
        what = f"{split}{', mirrored' if flip else ''}"
        feats = read_cached_features(path, labels, log)
        if feats is None:
            model = model or load_efficientnet_lite(variant, weights)
            feats = extract_features(images, model, flip=flip, batch_size=batch_size, pooling=pooling,
                                     progress=progress)
            if not np.isfinite(feats).all():
                raise ValueError(f"EfficientNet-{variant} produced non-finite features ({what})")
            _write(path, feats, labels)
            out["extracted"].append(name)
            log(f"features ({what}): saved {path}")
        else:
            log(f"features ({what}): cached {path}")
        out[name] = feats
    return out


def cached_features(images: np.ndarray, labels: np.ndarray, *, split: str, flip: bool = False,
                    **kwargs) -> np.ndarray:
    """The cached (or freshly extracted) features of ``images`` alone (``flip``: of their mirror
    images alone); the keyword arguments of :func:`cached_features_with_mirrors` apply."""
    res = cached_features_with_mirrors(images, labels, split=split, originals=not flip, mirrors=flip, **kwargs)
    return res["mirrored" if flip else "features"]
