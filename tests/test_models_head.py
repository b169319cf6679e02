"""Tests of lsbench.models.head: the fastai classifier head and its torch-convention BatchNorm1d
(against PyTorch where it is installed)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from lsbench.models.head import BatchNorm1d, FastaiHead


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


# Every head in these tests is 64 -> 512 -> 37: jax.random.normal compiles per shape
# (seconds each on XLA:CPU), so sharing shapes keeps the file fast.
HEAD_IN = 64


def test_head_structure_and_init():
    h = FastaiHead(HEAD_IN, 37, rngs=nnx.Rngs(0))
    assert h.fc1.kernel[...].shape == (HEAD_IN, 512) and h.fc1.bias is None
    assert h.fc2.kernel[...].shape == (512, 37) and h.fc2.bias is None
    assert (h.drop1.rate, h.drop2.rate) == (0.25, 0.5)
    np.testing.assert_array_equal(h.bn1.bias[...], np.full(HEAD_IN, 1e-3, np.float32))
    np.testing.assert_array_equal(h.bn2.scale[...], np.ones(512, np.float32))
    assert abs(float(h.fc2.kernel[...].std()) - (2 / 512) ** 0.5) < 0.004  # kaiming_normal_
    assert abs(float(h.fc1.kernel[...].std()) - (2 / HEAD_IN) ** 0.5) < 0.01
    hb = FastaiHead(HEAD_IN, 37, linear_bias=True, rngs=nnx.Rngs(0))
    assert hb.fc1.bias is not None and hb.fc2.bias is not None


def _torch_head(torch, h: FastaiHead, ps):
    nn = torch.nn
    seq = nn.Sequential(nn.BatchNorm1d(h.bn1.scale[...].shape[0]), nn.Dropout(ps / 2),
                        nn.Linear(*h.fc1.kernel[...].shape, bias=False), nn.ReLU(),
                        nn.BatchNorm1d(h.bn2.scale[...].shape[0]), nn.Dropout(ps),
                        nn.Linear(*h.fc2.kernel[...].shape, bias=False))
    with torch.no_grad():
        for tbn, jbn in ((seq[0], h.bn1), (seq[4], h.bn2)):
            tbn.weight.copy_(torch.tensor(np.asarray(jbn.scale[...])))
            tbn.bias.copy_(torch.tensor(np.asarray(jbn.bias[...])))
        seq[2].weight.copy_(torch.from_numpy(np.asarray(h.fc1.kernel[...]).T.copy()))
        seq[6].weight.copy_(torch.from_numpy(np.asarray(h.fc2.kernel[...]).T.copy()))
    return seq


def test_head_matches_torch_train_and_eval(torch):
    h = FastaiHead(HEAD_IN, 37, ps=0.0, rngs=nnx.Rngs(0))  # ps=0: deterministic comparison
    ref = _torch_head(torch, h, 0.0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, HEAD_IN)).astype(np.float32) * 3 + 1
    # train mode: batch statistics; running stats updated with the *unbiased* variance
    ref.train()
    want = ref(torch.from_numpy(x)).detach().numpy()
    got = np.asarray(h(jnp.asarray(x)))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h.bn1.var[...], ref[0].running_var.numpy(), rtol=1e-5)
    np.testing.assert_allclose(h.bn2.mean[...], ref[4].running_mean.numpy(), rtol=1e-4, atol=1e-6)
    # eval mode: running statistics
    ref.eval()
    h.eval()
    x2 = rng.normal(size=(3, HEAD_IN)).astype(np.float32)
    np.testing.assert_allclose(np.asarray(h(jnp.asarray(x2))), ref(torch.from_numpy(x2)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)


def test_head_modes_dropout_and_training_step():
    import optax

    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.normal(size=(128, HEAD_IN)), jnp.float32)
    y = jnp.asarray(rng.integers(0, 37, 128))
    x = x.at[jnp.arange(128), y].add(4.0)  # separable
    h = FastaiHead(HEAD_IN, 37, rngs=nnx.Rngs(params=0, dropout=1))
    a, b = h(x), h(x)
    assert not np.allclose(a, b)  # dropout active in train mode
    h.eval()
    np.testing.assert_array_equal(h(x), h(x))
    np.testing.assert_allclose(h(x[:5]), h(x)[:5], rtol=1e-4, atol=1e-5)  # no batch dependence
    h.train()
    opt = nnx.Optimizer(h, optax.adam(1e-2), wrt=nnx.Param)

    @nnx.jit
    def step(h, opt, x, y):
        def loss_fn(h):
            return optax.softmax_cross_entropy_with_integer_labels(h(x), y).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(h)
        opt.update(h, grads)
        return loss

    losses = [float(step(h, opt, x, y)) for _ in range(30)]
    assert losses[-1] < 0.5 * losses[0]
    h.eval()
    assert float((h(x).argmax(1) == y).mean()) > 0.9


def test_batchnorm1d_momentum_is_torch_convention():
    bn = BatchNorm1d(3)
    x = jnp.asarray([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]])
    bn(x)
    np.testing.assert_allclose(bn.mean[...], 0.1 * np.array([1.0, 2.0, 4.0]), rtol=1e-6)
    np.testing.assert_allclose(bn.var[...], 0.9 + 0.1 * np.array([2.0, 2.0, 8.0]), rtol=1e-6)
