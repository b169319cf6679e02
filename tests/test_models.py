"""Tests of lsbench.models: the torch-free checkpoint reader, EfficientNet-Lite0/1/2
(real ImageNet weights) and ResNet-34 (against a PyTorch reference); the fastai head is in
test_models_head.py."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lsbench.models import layers
from lsbench.models.efficientnet_lite import (
    efficientnet_lite_weights_path,
    extract_features,
    load_efficientnet_lite,
    preprocess,
)
from lsbench.models.resnet import load_resnet34
from lsbench.models.resnet import preprocess as resnet_preprocess
from lsbench.models.torch_pickle import TorchFormatError, load_state_dict, load_torch_file

from lite_reference import IMAGENET_CHECK_FILES, PETS_TO_IMAGENET, shared_images, torch_lite_reference


# --------------------------------------------------------------------------- torch_pickle


def _legacy_bytes(obj_pickle: bytes, keys: list[str], storages: list[bytes], counts: list[int]) -> bytes:
    out = io.BytesIO()
    for header in (0x1950A86A20F9469CFC6C, 1001,
                   {"protocol_version": 1001, "little_endian": True, "type_sizes": {}}):
        pickle.dump(header, out, protocol=2)
    out.write(obj_pickle)
    pickle.dump(keys, out, protocol=2)
    for raw, n in zip(storages, counts):
        out.write(struct.pack("<q", n) + raw)
    return out.getvalue()


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_reader_rejects_arbitrary_globals_legacy(tmp_path):
    marker = tmp_path / "pwned"
    data = _legacy_bytes(pickle.dumps({"w": _Evil(str(marker))}, protocol=2), [], [], [])
    f = tmp_path / "evil.pth"
    f.write_bytes(data)
    with pytest.raises(pickle.UnpicklingError, match="builtins.open|io.open"):
        load_torch_file(f)
    assert not marker.exists()


def test_reader_rejects_arbitrary_globals_zip(tmp_path):
    marker = tmp_path / "pwned"
    f = tmp_path / "evil.pth"
    with zipfile.ZipFile(f, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": _Evil(str(marker))}, protocol=2))
        zf.writestr("archive/version", "3\n")
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_torch_file(f)
    assert not marker.exists()


def test_reader_rejects_non_checkpoints(tmp_path):
    f = tmp_path / "junk.pth"
    f.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(TorchFormatError):
        load_torch_file(f)
    f.write_bytes(pickle.dumps(12345, protocol=2))
    with pytest.raises(TorchFormatError, match="magic"):
        load_torch_file(f)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_reader_matches_torch_load_on_lite0_file(torch):
    path = efficientnet_lite_weights_path("lite0")
    ours = load_state_dict(path)
    ref = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(ref)
    # this file stores its conv kernels with TF (HWIO) strides: a real test of stride handling
    assert ref["_conv_stem.weight"].stride() != ref["_conv_stem.weight"].contiguous().stride()
    for k, t in ref.items():
        a = ours[k]
        assert a.dtype == t.numpy().dtype and a.shape == tuple(t.shape), k
        np.testing.assert_array_equal(a, t.numpy(), err_msg=k)


@pytest.mark.parametrize("zip_format", [False, True], ids=["legacy", "zip"])
def test_reader_small_files_all_layouts(torch, tmp_path, zip_format):
    g = torch.Generator().manual_seed(0)
    base = torch.randn(6, 5, generator=g)
    obj = {
        "transposed": base.t(),  # non-contiguous strides
        "slice": base[2:4, 1:],  # storage offset into a shared storage
        "base": base,
        "long": torch.arange(10, dtype=torch.int64)[3:],
        "half": torch.randn(3, generator=g).half(),
        "bf16": torch.randn(4, generator=g).bfloat16(),
        "bool": torch.tensor([True, False, True]),
        "int8": torch.tensor([-3, 7], dtype=torch.int8),
        "scalar": torch.tensor(7, dtype=torch.int64),
        "empty": torch.zeros(0, 3),
        "nested": {"x": torch.ones(2, 2), "n": 3},
    }
    f = tmp_path / "t.pth"
    torch.save(obj, f, _use_new_zipfile_serialization=zip_format)
    assert zipfile.is_zipfile(f) == zip_format
    got = load_torch_file(f)
    assert got["nested"]["n"] == 3
    for k, t in obj.items():
        if k == "nested":
            np.testing.assert_array_equal(got[k]["x"], t["x"].numpy())
            continue
        a = got[k]
        want = t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
        assert a.shape == tuple(t.shape), k
        np.testing.assert_array_equal(a.astype(want.dtype), want, err_msg=k)
        if t.dtype != torch.bfloat16:
            assert a.dtype == want.dtype, k
    flat = load_state_dict(f)
    assert "nested.x" in flat and "nested.n" not in flat


def test_reader_truncated_legacy_file(torch, tmp_path):
    f = tmp_path / "t.pth"
    torch.save({"w": torch.randn(100)}, f, _use_new_zipfile_serialization=False)
    data = f.read_bytes()
    f.write_bytes(data[:-40])
    with pytest.raises(TorchFormatError, match="truncated"):
        load_torch_file(f)


# --------------------------------------------------------------------------- layers


@pytest.mark.parametrize("k,stride,size,padding", [(3, 1, 9, "SAME"), (3, 2, 10, "SAME"), (5, 2, 9, "SAME"),
                                                   (5, 1, 8, "SAME"), (3, 2, 10, 1), (7, 2, 11, 3)])
def test_depthwise_and_dense_conv_match_lax(k, stride, size, padding):
    rng = np.random.default_rng(0)
    c = 6
    x = jnp.asarray(rng.normal(size=(2, size, size + 1, c)), jnp.float32)
    wd = jnp.asarray(rng.normal(size=(k, k, 1, c)), jnp.float32)
    pad = "SAME" if padding == "SAME" else [(padding, padding)] * 2
    dn = ("NHWC", "HWIO", "NHWC")
    w = jnp.asarray(rng.normal(size=(k, k, c, 4)), jnp.float32)

    @jax.jit
    def run(x, wd, w):
        return (layers.depthwise_conv(x, wd, stride, padding),
                jax.lax.conv_general_dilated(x, wd, (stride, stride), pad, dimension_numbers=dn,
                                             feature_group_count=c),
                layers.dense_conv(x, w, stride, padding),
                jax.lax.conv_general_dilated(x, w, (stride, stride), pad, dimension_numbers=dn))

    got_dw, ref_dw, got, ref = run(x, wd, w)
    np.testing.assert_allclose(got_dw, ref_dw, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4)


def test_convbn_eval_folding_equals_conv_then_bn():
    # (3 -> 4 channels, 3x3: the same kernel shape as _TinyBackbone, so the init compiles once)
    m = layers.ConvBN(3, 4, 3, 2, padding="SAME", act="relu6", bn_eps=1e-3, rngs=nnx.Rngs(0))
    rng = np.random.default_rng(1)
    m.bn.mean.set_value(jnp.asarray(rng.normal(size=4), jnp.float32))
    m.bn.var.set_value(jnp.asarray(rng.uniform(0.5, 2, size=4), jnp.float32))
    m.bn.scale.set_value(jnp.asarray(rng.normal(size=4), jnp.float32))
    m.bn.bias.set_value(jnp.asarray(rng.normal(size=4), jnp.float32))
    x = jnp.asarray(rng.normal(size=(3, 9, 9, 3)), jnp.float32)
    m.eval()

    @nnx.jit
    def run(m, x):
        y = layers.dense_conv(x, m.kernel[...], 2, "SAME")
        ref = (y - m.bn.mean[...]) / jnp.sqrt(m.bn.var[...] + 1e-3) * m.bn.scale[...] + m.bn.bias[...]
        return m(x), jnp.clip(ref, 0, 6)

    got, ref = run(m, x)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_pool_features_orders():
    fmap = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 4, 5)), jnp.float32)
    avg, mx = fmap.mean((1, 2)), fmap.max((1, 2))
    np.testing.assert_allclose(layers.pool_features(fmap, "maxavg"), jnp.concatenate([mx, avg], -1))
    np.testing.assert_allclose(layers.pool_features(fmap, "concat"), jnp.concatenate([mx, avg], -1))
    np.testing.assert_allclose(layers.pool_features(fmap, "avgmax"), jnp.concatenate([avg, mx], -1))
    with pytest.raises(ValueError, match="pooling"):
        layers.pool_features(fmap, "mean")


# --------------------------------------------------------------------------- EfficientNet-Lite0


@pytest.fixture(scope="module")
def lite0():
    return load_efficientnet_lite("lite0")


@pytest.fixture(scope="module")
def pets_check_batch(lite0):
    """The 24 fixed shared-copy images, their Lite0 logits and final feature maps (one compile)."""
    x = shared_images(IMAGENET_CHECK_FILES)
    logits, fmap = jax.jit(lambda a: (lite0(preprocess(a)), lite0.features(preprocess(a))))(x)
    return x, np.asarray(logits), np.asarray(fmap)


def test_lite0_weights_cover_every_parameter(lite0):
    sd = load_state_dict(efficientnet_lite_weights_path("lite0"))
    n_file = sum(v.size for k, v in sd.items() if not k.endswith(("running_mean", "running_var",
                                                                  "num_batches_tracked")))
    n_model = sum(x.size for x in jax.tree_util.tree_leaves(nnx.state(lite0, nnx.Param)))
    assert n_model == n_file == 4_652_008
    assert len(lite0.blocks) == 16
    assert lite0.blocks[0].expand is None and all(b.expand is not None for b in lite0.blocks[1:])
    assert [b.skip for b in lite0.blocks].count(True) == 9


def test_lite0_preprocessing_is_127_128():
    x = np.array([[[[0, 127, 255]]]], np.uint8)
    np.testing.assert_allclose(preprocess(x), [[[[-127 / 128, 0.0, 1.0]]]])


def test_imagenet_ids_match_wnids():
    labels = Path(pytest.importorskip("tensorflow_datasets").__file__).parent / "datasets/imagenet2012/labels.txt"
    if not labels.is_file():
        pytest.skip(f"{labels} not installed")
    wnids = labels.read_text().split()
    assert len(wnids) == 1000
    for breed, (idx, wnid) in PETS_TO_IMAGENET.items():
        assert wnids[idx] == wnid, breed


def test_lite0_imagenet_top1_on_pets(pets_check_batch):
    _, logits, _ = pets_check_batch
    want = np.array([PETS_TO_IMAGENET[n.rsplit("_", 1)[0]][0] for n in IMAGENET_CHECK_FILES])
    hits = logits.argmax(1) == want
    assert hits.mean() >= 0.9, dict(zip(IMAGENET_CHECK_FILES, logits.argmax(1).tolist()))
    # confident, not just barely right
    probs = jax.nn.softmax(logits)[np.arange(len(want)), want]
    assert float(np.median(probs)) > 0.5


def test_lite0_matches_torch_reference_forward(torch, pets_check_batch):
    sd = torch.load(efficientnet_lite_weights_path("lite0"), map_location="cpu", weights_only=True)
    sd = {k: v.float() for k, v in sd.items()}
    x, got, _ = pets_check_batch
    xt = (torch.from_numpy(x).permute(0, 3, 1, 2).float() - 127.0) / 128.0
    with torch.no_grad():
        ref = torch_lite_reference(torch, sd, xt, "lite0").numpy()
    scale = np.abs(ref).max()
    assert np.abs(got - ref).max() <= 1e-4 * scale + 1e-4, np.abs(got - ref).max()


def test_extract_features_padding_and_fastai_order(lite0, pets_check_batch):
    x, _, fmap = pets_check_batch
    feats = extract_features(x, lite0, batch_size=16, pooling="maxavg", progress=False)  # 16 + 8 padded
    assert feats.shape == (24, 2560) and feats.dtype == np.float32
    assert fmap.shape == (24, 7, 7, 1280)
    np.testing.assert_allclose(feats[:, :1280], fmap.max((1, 2)), rtol=1e-4, atol=1e-4)  # max first
    np.testing.assert_allclose(feats[:, 1280:], fmap.mean((1, 2)), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="pooling"):
        extract_features(x, lite0, pooling="sum", progress=False)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        extract_features(x[0], lite0, progress=False)


class _TinyBackbone(nnx.Module):
    num_features = 4

    def __init__(self):
        self.conv = layers.ConvBN(3, 4, 3, 2, rngs=nnx.Rngs(0))

    def features(self, x, pooling=None):
        y = self.conv(x)
        return y if pooling is None else layers.pool_features(y, pooling)


def test_extract_features_runs_eval_mode_without_touching_model():
    m = _TinyBackbone()
    m.conv.bn.mean.set_value(jnp.full((4,), 0.5))
    x = np.random.default_rng(0).integers(0, 256, (7, 8, 8, 3), dtype=np.uint8)
    ev = extract_features(x, m, batch_size=3, pooling="avgmax", preprocess_fn=preprocess, progress=False)
    assert ev.shape == (7, 8)
    m.train()  # train mode would use batch statistics (and update the running ones)
    tr = extract_features(x, m, batch_size=3, pooling="avgmax", preprocess_fn=preprocess, progress=False)
    np.testing.assert_allclose(tr, ev, rtol=1e-5, atol=1e-6)
    assert m.conv.bn.use_running_average is False
    np.testing.assert_array_equal(m.conv.bn.mean[...], np.full(4, 0.5, np.float32))
    empty = extract_features(x[:0], m, progress=False)
    assert empty.shape == (0, 4)


def test_lite0_new_classifier_and_train_mode_bn(lite0):
    m = load_efficientnet_lite("lite0", num_classes=37, seed=3)
    assert m.fc.kernel[...].shape == (1280, 37)
    np.testing.assert_array_equal(m.head.kernel[...], lite0.head.kernel[...])
    assert m.head.bn.use_running_average and m.dropout.deterministic  # loaded in eval mode
    m.train()
    assert not m.blocks[3].depthwise.bn.use_running_average and not m.dropout.deterministic
    x = jnp.asarray(np.random.default_rng(0).normal(size=(2, 3, 3, 320)), jnp.float32)
    before = np.asarray(m.head.bn.mean[...])
    m.head(x)  # train mode: batch statistics, running averages updated
    assert not np.allclose(before, m.head.bn.mean[...])


# --------------------------------------------------------------------------- ResNet-34


def _torch_resnet34(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.downsample = None
            if stride != 1 or cin != cout:
                self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            idt = x if self.downsample is None else self.downsample(x)
            return self.relu(self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x))))) + idt)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            cin = 64
            for i, (n, c) in enumerate(zip((3, 4, 6, 3), (64, 128, 256, 512)), start=1):
                blocks = []
                for j in range(n):
                    blocks.append(Block(cin, c, 2 if (j == 0 and i > 1) else 1))
                    cin = c
                setattr(self, f"layer{i}", nn.Sequential(*blocks))
            self.fc = nn.Linear(512, 1000)

        def features(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            return self.layer4(self.layer3(self.layer2(self.layer1(x))))

        def forward(self, x):
            return self.fc(self.features(x).mean((2, 3)))

    torch.manual_seed(0)
    net = Net()
    with torch.no_grad():  # non-trivial BN statistics and affine parameters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.num_batches_tracked.fill_(7)
    return net.eval()


@pytest.fixture(scope="module")
def torch_resnet(torch):
    return _torch_resnet34(torch)


def test_resnet34_matches_torch_reference(torch, torch_resnet, tmp_path):
    from safetensors.torch import save_file

    sd = torch_resnet.state_dict()
    paths = {"zip": tmp_path / "r34.pth", "legacy": tmp_path / "r34_legacy.pth",
             "safetensors": tmp_path / "r34.safetensors"}
    torch.save(sd, paths["zip"])
    torch.save(sd, paths["legacy"], _use_new_zipfile_serialization=False)
    save_file({k: v.contiguous() for k, v in sd.items()}, str(paths["safetensors"]))
    models = {fmt: load_resnet34(p) for fmt, p in paths.items()}
    states = {fmt: jax.tree_util.tree_leaves(nnx.state(m)) for fmt, m in models.items()}
    for fmt in ("legacy", "safetensors"):
        for a, b in zip(states["zip"], states[fmt]):
            np.testing.assert_array_equal(a, b)

    model = models["zip"]
    x = np.random.default_rng(0).integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    xt = np.asarray(resnet_preprocess(x))
    with torch.no_grad():
        xt_torch = torch.from_numpy(xt.copy()).permute(0, 3, 1, 2).contiguous()
        ref_logits = torch_resnet(xt_torch).numpy()
        ref_feat = torch_resnet.features(xt_torch).permute(0, 2, 3, 1).numpy()
    logits, feat = nnx.jit(lambda m, a: (m(a), m.features(a)))(model, jnp.asarray(xt))
    logits, feat = np.asarray(logits), np.asarray(feat)
    assert feat.shape == ref_feat.shape == (2, 2, 2, 512)
    assert np.abs(logits - ref_logits).max() <= 1e-4 * np.abs(ref_logits).max() + 1e-5
    assert np.abs(feat - ref_feat).max() <= 1e-4 * np.abs(ref_feat).max() + 1e-5


def test_resnet34_converter_errors_and_new_head(torch, torch_resnet, tmp_path):
    sd = {k: v for k, v in torch_resnet.state_dict().items()}
    path = tmp_path / "r34.pth"
    torch.save(sd, path)
    m = load_resnet34(path, num_classes=37)
    assert m.fc.kernel[...].shape == (512, 37)
    bad = dict(sd)
    del bad["layer3.2.conv2.weight"]
    torch.save(bad, path)
    with pytest.raises(ValueError, match="layer3.2.conv2.weight"):
        load_resnet34(path)
    extra = dict(sd, **{"extra.weight": torch.zeros(1)})
    torch.save(extra, path)
    with pytest.raises(ValueError, match="unexpected keys"):
        load_resnet34(path)


def test_resnet_preprocess_imagenet_stats():
    x = np.full((1, 1, 1, 3), 255, np.uint8)
    np.testing.assert_allclose(resnet_preprocess(x)[0, 0, 0],
                               [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rtol=1e-6)
