"""``distillation``: T²·KL, PyTorch's batchmean, the tutorial's underflow, all gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import reference as ref
from lsbench.losses import RECIPES
from lsbench.losses.recipes.distillation import tutorial_loss

R = RECIPES["distillation"]


def _data(seed=0, b=8, k=6, scale=2.0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, k)) * scale, rng.normal(size=(b, k)) * scale


def test_matches_pytorch_kl_div_batchmean():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional peer")
    s, t = _data()
    T = 3.0
    F = torch.nn.functional
    st = torch.tensor(s, requires_grad=True)
    want = F.kl_div(F.log_softmax(st / T, -1), F.log_softmax(torch.tensor(t) / T, -1), reduction="batchmean", log_target=True) * T**2
    want.backward()
    with jax.enable_x64(True):
        got = R.loss(jnp.asarray(s), jnp.asarray(t), temperature=T)
        g = jax.grad(lambda a: R.loss(a, jnp.asarray(t), temperature=T))(jnp.asarray(s))
    np.testing.assert_allclose(got, want.item(), rtol=1e-12)
    np.testing.assert_allclose(g, st.grad.numpy(), rtol=1e-10, atol=1e-15)


def test_student_gradient_is_T_times_p_minus_q_over_batch():
    s, t = _data(1)
    T = 2.5
    with jax.enable_x64(True):
        g = jax.grad(lambda a: R.loss(a, jnp.asarray(t), temperature=T))(jnp.asarray(s))
    _, want = ref.distillation(s, t, T)
    np.testing.assert_allclose(g, want / s.shape[0], rtol=1e-10, atol=1e-15)


def test_teacher_and_temperature_gradients_match_autodiff_of_the_naive_form():
    s, t = _data(2)

    def naive(a, b, T):
        lp = jax.nn.log_softmax(a / T)
        lq = jax.nn.log_softmax(b / T)
        return T**2 * jnp.sum(jnp.exp(lq) * (lq - lp)) / a.shape[0]

    fast = lambda a, b, T: R.loss(a, b, temperature=T)  # noqa: E731
    with jax.enable_x64(True):
        args = (jnp.asarray(s), jnp.asarray(t), jnp.asarray(1.7))
        for argnum in (0, 1, 2):
            np.testing.assert_allclose(jax.grad(fast, argnum)(*args), jax.grad(naive, argnum)(*args), rtol=1e-9, atol=1e-13)


def test_agrees_with_tutorial_form_where_finite_and_stays_finite_where_it_underflows():
    s, t = _data(3)
    with jax.enable_x64(True):
        np.testing.assert_allclose(R.loss(jnp.asarray(s), jnp.asarray(t), temperature=2.0), tutorial_loss(s, t, temperature=2.0), rtol=1e-12)
    # A confident student: softmax underflows to exactly 0 for a class the teacher likes.
    s = np.array([[0.0, -2000.0, 0.0]])
    t = np.array([[0.0, 0.0, 0.0]])
    assert np.isinf(tutorial_loss(s, t, temperature=1.0))
    got = float(R.loss(s.astype(np.float32), t.astype(np.float32), temperature=1.0))
    assert np.isfinite(got) and got > 100


def test_shape_mismatch_raises():
    with pytest.raises(ValueError, match="same shape"):
        R.loss(np.zeros((2, 3), np.float32), np.zeros((2, 4), np.float32))


@pytest.mark.parametrize("temperature", [1e-30, 1e-3, 1.0, 100.0, 1e3, 1e4])
def test_float32_stays_accurate_over_the_temperature_range(temperature):
    """Issue 12 defect 5: 2.5e-4 relative error at T=100, 1.4e-2 at T=1000, negative at 1e4, NaN at 1e-30."""
    rng = np.random.default_rng(40)
    s = rng.normal(size=(8, 10)).astype(np.float32) * 3
    t = rng.normal(size=(8, 10)).astype(np.float32) * 3
    r = RECIPES["distillation"]
    got = float(r.loss(s, t, temperature=temperature))
    gs, gt = jax.grad(lambda a, b: r.loss(a, b, temperature=temperature), argnums=(0, 1))(jnp.asarray(s), jnp.asarray(t))
    with jax.enable_x64(True):
        s64, t64 = jnp.asarray(s, jnp.float64), jnp.asarray(t, jnp.float64)
        want = float(r.loss(s64, t64, temperature=temperature))
        ws, wt = jax.grad(lambda a, b: r.loss(a, b, temperature=temperature), argnums=(0, 1))(s64, t64)
    assert want > 0 and abs(got - want) <= 1e-5 * want, (got, want)
    for g, w in ((gs, ws), (gt, wt)):
        assert np.isfinite(np.asarray(g)).all()
        if temperature >= 1e-3:  # at T = 1e-30 the gradient (~T) is below float32's resolution of its terms
            w = np.asarray(w)
            assert np.linalg.norm(np.asarray(g, np.float64) - w) <= 1e-5 * np.linalg.norm(w)


def test_float64_matches_the_tutorial_form_at_large_temperature():
    rng = np.random.default_rng(41)
    s, t = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    with jax.enable_x64(True):
        got = float(RECIPES["distillation"].loss(jnp.asarray(s), jnp.asarray(t), temperature=50.0))
    np.testing.assert_allclose(got, tutorial_loss(s, t, temperature=50.0), rtol=1e-6)


# 64x2048: shared sums; 64x16384: blocks of rows; 2x32x16384: the same for [B, T, K];
# 67x16384 (prime row count): separate passes
@pytest.mark.parametrize("shape", [(64, 2048), (64, 16384), (2, 32, 16384), (67, 16384)])
@pytest.mark.parametrize("temperature", [1.0, 1e3])
def test_medium_and_large_inputs_match_float64_on_every_reduction_path(shape, temperature):
    """Inputs up to SHARED_BELOW elements share their sums; larger ones take the blocked sums or the
    barrier-separated passes."""
    from lsbench.losses.recipes import distillation as d

    shared = np.prod(shape) <= d.SHARED_BELOW
    assert shared == (shape[-1] == 2048) and (d._rows_per_block(shape) is None) == (shared or shape[0] == 67)
    rng = np.random.default_rng(42)
    s = rng.normal(size=shape).astype(np.float32) * 3
    t = rng.normal(size=shape).astype(np.float32) * 3
    loss = lambda a, b: R.loss(a, b, temperature=temperature)  # noqa: E731
    got, (gs, gt) = jax.value_and_grad(loss, argnums=(0, 1))(jnp.asarray(s), jnp.asarray(t))
    with jax.enable_x64(True):
        want, (ws, wt) = jax.value_and_grad(loss, argnums=(0, 1))(jnp.asarray(s, jnp.float64), jnp.asarray(t, jnp.float64))
    assert abs(float(got) - float(want)) <= 1e-5 * float(want), (got, want)
    for g, w in ((gs, ws), (gt, wt)):
        w = np.asarray(w)
        assert np.linalg.norm(np.asarray(g, np.float64) - w) <= 1e-5 * np.linalg.norm(w)
