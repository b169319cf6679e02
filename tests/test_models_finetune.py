"""The fastai frozen-body fine-tuning pieces (lsbench.models.finetune) at tiny scale on CPU:
a real EfficientNet-Lite0 body under the fastai head, two steps of lsbench.train.fit."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from lsbench.experiments.pets.model import pets_net
from lsbench.models.efficientnet_lite import load_efficientnet_lite
from lsbench.models.finetune import PathFilter, batchnorm_params, count_params, fastai_trainable
from lsbench.models.head import FastaiHead
from lsbench.train import TrainConfig, fit


def _net(num_classes=3):
    body = load_efficientnet_lite("lite0")
    return pets_net(body, FastaiHead(2 * body.num_features, num_classes, hidden=8, rngs=nnx.Rngs(0)))


def _flat(model, flt):
    return {tuple(p): np.asarray(v.get_value() if hasattr(v, "get_value") else v)
            for p, v in nnx.to_flat_state(nnx.state(model, flt))}


def test_filter_selects_head_and_every_batchnorm_param_only():
    net = _net()
    flt = fastai_trainable(net)
    paths = set(flt.paths)
    n_bn_layers = sum(isinstance(m, nnx.BatchNorm) for _, m in nnx.iter_graph(net.body))
    assert n_bn_layers == 1 + 3 * 15 + 2 + 1  # stem, 15 expanded blocks x 3, block 0 x 2, head conv
    assert {p for p in paths if p[0] == "body"} == {p for p in batchnorm_params(net.body).paths
                                                    for p in [("body", *p)]}
    assert all(p[-1] in ("scale", "bias") for p in paths if p[0] == "body")
    assert ("body", "head", "kernel") not in paths and ("body", "fc", "kernel") not in paths
    assert ("body", "head", "bn", "scale") in paths  # the body's 1x1 head conv: only its BN trains
    assert count_params(net, flt) == count_params(net.head) + count_params(net.body, batchnorm_params(net.body))
    assert hash(flt) == hash(fastai_trainable(net)) and flt == fastai_trainable(net)  # one compilation
    with pytest.raises(ValueError, match="head must name a submodule"):
        fastai_trainable(net, head="neck")
    with pytest.raises(ValueError, match="no BatchNorm"):
        batchnorm_params(nnx.Linear(2, 2, rngs=nnx.Rngs(0)))
    assert isinstance(flt, PathFilter) and "variables" in repr(flt)


def test_fit_trains_head_and_batchnorm_in_train_mode_body_frozen():
    net = _net()
    flt = fastai_trainable(net)
    before_params = _flat(net, nnx.Param)
    before_stats = _flat(net, nnx.BatchStat)
    rng = np.random.default_rng(0)
    data = {"image": rng.integers(0, 256, (8, 32, 32, 3), dtype=np.uint8),
            "label": rng.integers(0, 3, 8).astype(np.int32)}
    cfg = TrainConfig(epochs=1, batch_size=4, lr=1e-2)
    trained, log = fit(net, data, lambda logits, b: -jax.nn.log_softmax(logits)[np.arange(4), b["label"]].mean(),
                       cfg, seed=0, trainable=flt, progress=False)
    assert log[-1]["steps"] == 2 and np.isfinite(log[-1]["loss"])
    after_params = _flat(trained, nnx.Param)
    after_stats = _flat(trained, nnx.BatchStat)
    changed = {p for p in before_params if not np.array_equal(before_params[p], after_params[p])}
    # nothing outside the filter moved (conv kernels, the unused ImageNet classifier) ...
    assert changed <= set(flt.paths)
    assert not any(p[0] == "body" and p[-1] == "kernel" for p in changed)
    # ... and inside it the head and the body's BatchNorm affine parameters did
    assert any(p[0] == "head" for p in changed)
    body_bn = {p for p in changed if p[0] == "body"}
    assert len(body_bn) > 0.9 * sum(1 for p in flt.paths if p[0] == "body")
    # BatchNorm ran in train mode: running statistics of the body updated from the batches
    moved = [p for p in before_stats if p[0] == "body" and not np.array_equal(before_stats[p], after_stats[p])]
    assert len(moved) == len([p for p in before_stats if p[0] == "body"])
    assert trained.body.blocks[3].depthwise.bn.use_running_average is False
