"""``uniform``: peers (optax in test_losses.py, PyTorch here), class weights, z-loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as ref
from lsbench.losses import RECIPES
from lsbench.losses.recipes import uniform

try:  # PyTorch is the optional peer: only the tests that compare with it need it
    import torch
except ImportError:  # pragma: no cover - depends on the environment
    torch = None
needs_torch = pytest.mark.skipif(torch is None, reason="PyTorch is the optional peer; pip install torch==2.13.0")


def _data(seed=0, b=24, k=10):
    rng = np.random.default_rng(seed)
    z = (rng.normal(size=(b, k)) * 3).astype(np.float32)
    y = rng.integers(0, k, size=b)
    w = rng.uniform(0.2, 3.0, size=k).astype(np.float32)
    return z, y, w


def _torch_loss_and_grad(z, y, **kw):
    zt = torch.tensor(z, dtype=torch.float64, requires_grad=True)
    out = torch.nn.functional.cross_entropy(zt, torch.tensor(y), **kw)
    out.backward()
    return out.item(), zt.grad.numpy()


@needs_torch
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.7])
def test_matches_pytorch_with_ignore_index(eps):
    z, y, _ = _data()
    y[[3, 7, 11]] = -100
    want, want_g = _torch_loss_and_grad(z, y, label_smoothing=eps, ignore_index=-100)
    got = RECIPES["uniform"].loss(z, y, epsilon=eps, ignore_index=-100)
    g = jax.grad(lambda a: RECIPES["uniform"].loss(a, y, epsilon=eps, ignore_index=-100))(jnp.asarray(z))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    np.testing.assert_allclose(g, want_g, rtol=1e-5, atol=1e-7)


@needs_torch
@pytest.mark.parametrize("eps", [0.0, 0.2])
def test_weight_mode_torch_matches_pytorch(eps):
    z, y, w = _data(1)
    y[[2, 5]] = -100
    want, want_g = _torch_loss_and_grad(z, y, label_smoothing=eps, ignore_index=-100, weight=torch.tensor(w, dtype=torch.float64))
    f = lambda a: RECIPES["uniform"].loss(a, y, epsilon=eps, ignore_index=-100, weight=w, weight_mode="torch")  # noqa: E731
    np.testing.assert_allclose(f(jnp.asarray(z)), want, rtol=1e-6)
    np.testing.assert_allclose(jax.grad(f)(jnp.asarray(z)), want_g, rtol=1e-5, atol=1e-7)


@needs_torch
def test_weight_mode_example_is_label_weighted_mean_of_smoothed_rows():
    z, y, w = _data(2)
    rows, _ = ref.dense_ce(z, ref.q_uniform(y, z.shape[-1], 0.1))
    want = (w[y] * rows).sum() / w[y].sum()
    np.testing.assert_allclose(RECIPES["uniform"].loss(z, y, epsilon=0.1, weight=w), want, rtol=1e-6)
    # With ε = 0 both normalisations agree with PyTorch's weighted NLL.
    torch_nll, _ = _torch_loss_and_grad(z, y, weight=torch.tensor(w, dtype=torch.float64))
    for mode in uniform.WEIGHT_MODES:
        np.testing.assert_allclose(RECIPES["uniform"].loss(z, y, epsilon=0.0, weight=w, weight_mode=mode), torch_nll, rtol=1e-6)


def test_weight_gradient_in_torch_mode_matches_autodiff_of_dense_form():
    z, y, w = _data(3, b=6, k=5)
    with jax.enable_x64(True):
        z64, w64 = jnp.asarray(z, jnp.float64), jnp.asarray(w, jnp.float64)
        eps, k = 0.3, 5

        def dense(a, ww):
            lp = jax.nn.log_softmax(a, -1)
            oh = jax.nn.one_hot(y, k, dtype=a.dtype)
            rows = -(1 - eps) * ww[y] * jnp.sum(oh * lp, -1) - (eps / k) * jnp.sum(ww * lp, -1)
            return rows.sum() / ww[y].sum()

        fast = lambda a, ww: uniform.loss(a, y, epsilon=eps, weight=ww, weight_mode="torch")  # noqa: E731
        for argnum in (0, 1):
            np.testing.assert_allclose(
                jax.grad(fast, argnum)(z64, w64), jax.grad(dense, argnum)(z64, w64), rtol=1e-10, atol=1e-13
            )


def test_bad_weight_raises():
    z, y, w = _data()
    with pytest.raises(ValueError, match="weight must have shape"):
        uniform.loss(z, y, weight=w[:3])
    with pytest.raises(ValueError, match="weight_mode"):
        uniform.loss(z, y, weight=w, weight_mode="keras")
    with pytest.raises(TypeError, match="weight"):
        uniform.loss(z, y, weight=np.arange(10))


def test_z_loss_adds_lse_squared_and_its_gradient():
    z, y, _ = _data(4, b=8, k=6)
    with jax.enable_x64(True):
        z64 = jnp.asarray(z, jnp.float64)
        c = 1e-2
        naive = lambda a: jnp.mean(  # noqa: E731
            -jnp.sum(uniform.targets(y, 6, epsilon=0.1) * jax.nn.log_softmax(a), -1)
            + c * jax.nn.logsumexp(a, -1) ** 2
        )
        fast = lambda a: uniform.loss(a, y, epsilon=0.1, z_loss=c)  # noqa: E731
        np.testing.assert_allclose(fast(z64), naive(z64), rtol=1e-12)
        np.testing.assert_allclose(jax.grad(fast)(z64), jax.grad(naive)(z64), rtol=1e-10, atol=1e-14)


@needs_torch
def test_sequence_shape_matches_pytorch():
    rng = np.random.default_rng(5)
    z = (rng.normal(size=(2, 7, 30)) * 2).astype(np.float32)
    y = rng.integers(0, 30, size=(2, 7))
    want, _ = _torch_loss_and_grad(z.reshape(-1, 30), y.reshape(-1), label_smoothing=0.1)
    np.testing.assert_allclose(RECIPES["uniform"].loss(z, y, epsilon=0.1), want, rtol=1e-6)
