"""The feature cache of lsbench.data.features: originals and mirror images, keys, bad input.
Real EfficientNet-Lite0 weights on small random images (fast on CPU)."""

from __future__ import annotations

import numpy as np
import pytest

from lsbench.data import features as F
from lsbench.models.efficientnet_lite import extract_features, load_efficientnet_lite


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8), rng.integers(0, 37, 6).astype(np.int32)


def test_originals_and_mirrors_are_cached_side_by_side(images, tmp_path):
    x, y = images
    msgs = []
    first = F.cached_features_with_mirrors(x, y, split="trainval", variant="lite0", pooling="maxavg",
                                           cache_dir=tmp_path, progress=False, log=msgs.append)
    assert first["extracted"] == ["features", "mirrored"]
    orig, mirr = first["paths"]["features"], first["paths"]["mirrored"]
    assert orig.parent == mirr.parent == tmp_path / "features"
    assert orig.name == f"pets-lite0-trainval-{first['keys']['features']}.npz"
    assert mirr.name == f"pets-lite0-mirrored-trainval-{first['keys']['mirrored']}.npz"
    assert first["features"].shape == first["mirrored"].shape == (6, 2560)
    model = load_efficientnet_lite("lite0")
    np.testing.assert_allclose(first["mirrored"], extract_features(np.ascontiguousarray(x[:, :, ::-1]), model,
                                                                   pooling="maxavg", progress=False),
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(first["features"], extract_features(x, model, pooling="maxavg", progress=False),
                               rtol=1e-5, atol=1e-5)
    again = F.cached_features_with_mirrors(x, y, split="trainval", variant="lite0", pooling="maxavg",
                                           cache_dir=tmp_path, progress=False, log=msgs.append)
    assert again["extracted"] == [] and again["keys"] == first["keys"]
    np.testing.assert_array_equal(again["mirrored"], first["mirrored"])
    assert sum("cached" in m for m in msgs) == 2
    only = F.cached_features(x, y, split="trainval", flip=True, pooling="maxavg", cache_dir=tmp_path, progress=False)
    np.testing.assert_array_equal(only, first["mirrored"])


def test_stale_or_corrupt_cache_is_recomputed(images, tmp_path):
    x, y = images
    kw = dict(split="test", pooling="avg", mirrors=False, cache_dir=tmp_path, progress=False)
    res = F.cached_features_with_mirrors(x, y, **kw)
    msgs = []
    res2 = F.cached_features_with_mirrors(x, (y + 1) % 37, log=msgs.append, **kw)  # other labels
    assert res2["extracted"] == ["features"] and "does not match" in msgs[0]
    res["paths"]["features"].write_bytes(b"not a zip file")
    res3 = F.cached_features_with_mirrors(x, (y + 1) % 37, log=msgs.append, **kw)
    assert res3["extracted"] == ["features"] and "unreadable" in msgs[-2]
    np.testing.assert_array_equal(res3["features"], res["features"])
    assert res3["mirrored"] is None


def test_key_covers_variant_resolution_pooling_flip_weights_images():
    base = dict(variant="lite2", weights_sha256="w", resolution=260, pooling="maxavg", flip=False,
                images_sha256="i", backend="cpu")
    k = F.feature_cache_key(**base)
    assert len(k) == 24 and F.feature_cache_key(**base) == k
    for field, other in [("variant", "lite0"), ("resolution", 224), ("pooling", "avg"), ("flip", True),
                         ("weights_sha256", "v"), ("images_sha256", "j"), ("backend", "gpu")]:
        assert F.feature_cache_key(**{**base, field: other}) != k, field
    a = np.zeros((2, 3), np.uint8)
    assert F.array_sha256(a) != F.array_sha256(a.astype(np.int8)) != F.array_sha256(a.reshape(3, 2))


def test_bad_input(images, tmp_path):
    x, y = images
    with pytest.raises(ValueError, match="variant must be one of"):
        F.cached_features(x, y, split="trainval", variant="lite9", cache_dir=tmp_path)
    with pytest.raises(ValueError, match=r"square RGB \[N, S, S, 3\]"):
        F.cached_features(x[:, :, :30], y, split="trainval", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="labels must be"):
        F.cached_features(x, y[:3], split="trainval", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="nothing to return"):
        F.cached_features_with_mirrors(x, y, split="trainval", originals=False, mirrors=False, cache_dir=tmp_path)
