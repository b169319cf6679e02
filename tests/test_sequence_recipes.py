"""Issue 17, softmax forms: flax_kl, opennmt, hf_label_smoother, fairseq_v0_10 and fairseq against their
published code (written out literally in ``reference.py``), their proven closed forms and bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import proofs
import reference as ref
from lsbench.losses import RECIPES

NAMES = ["flax_kl", "opennmt", "hf_label_smoother", "fairseq_v0_10", "fairseq"]


def data(seed=0, b=10, k=9):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(b, k)) * 2, rng.integers(0, k, size=b)


def x64(fn, *args, **kw):
    with jax.enable_x64(True):
        return np.asarray(fn(*[jnp.asarray(a) for a in args], **kw))


# ------------------------------------------------------------------ flax_kl


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.5, 0.99])
def test_flax_kl_is_the_published_flax_wmt_loss(eps):
    z, y = data(1)
    np.testing.assert_allclose(x64(RECIPES["flax_kl"].per_example, z, y, epsilon=eps),
                               ref.flax_kl_published(z, y, eps), rtol=1e-12, atol=1e-12)


def test_flax_kl_at_epsilon_one_is_finite_where_the_published_code_gives_nan():
    z, y = data(2)
    assert np.isnan(ref.flax_kl_published(z, y, 1.0)).all()
    got = x64(RECIPES["flax_kl"].per_example, z, y, epsilon=1.0)
    want, _ = ref.flax_kl(z, y, 1.0)  # 0·log 0 = 0: CE − log(K−1) up to the guard
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert np.isfinite(got).all()


def test_flax_kl_reads_1_36_nats_below_the_cross_entropy_at_32k():
    rng = np.random.default_rng(3)
    k = 32000
    z, y = rng.normal(size=(2, k)), rng.integers(0, k, size=2)
    gap = x64(RECIPES["off_target"].per_example, z, y, epsilon=0.1) - x64(RECIPES["flax_kl"].per_example, z, y,
                                                                           epsilon=0.1)
    q = ref.q_off_target(y[:1], k, 0.1)[0]
    np.testing.assert_allclose(gap, -(q * np.log(q)).sum(), rtol=1e-9)  # H(q), the guard is 3e-16
    assert round(float(gap[0]), 2) == 1.36


def test_flax_kl_normalizations():
    z, y = data(4)
    keep = np.arange(10) % 3 != 0
    rows = x64(RECIPES["flax_kl"].per_example, z, y, epsilon=0.2, where=keep)
    loss = lambda n: float(x64(RECIPES["flax_kl"].loss, z, y, epsilon=0.2, where=keep, normalization=n))  # noqa: E731
    np.testing.assert_allclose(loss("real_tokens"), rows.sum() / keep.sum(), rtol=1e-12)
    np.testing.assert_allclose(loss("total_tokens"), rows.sum() / 10, rtol=1e-12)
    np.testing.assert_allclose(loss("sum"), rows.sum(), rtol=1e-12)
    np.testing.assert_allclose(loss(4.0), rows.sum() / 4, rtol=1e-12)
    for bad in ("tokens", 0.0, -1.0):
        with pytest.raises(ValueError, match="normalization"):
            RECIPES["flax_kl"].loss(z.astype(np.float32), y, normalization=bad)


# ------------------------------------------------------------------ opennmt


def test_opennmt_is_the_summed_kl_of_the_published_target():
    z, y = data(5)
    y[[2, 7]] = 1  # padding rows, dropped
    q = ref.q_opennmt(y, 9, 0.1, 1)
    rows, grad = ref.dense_kl(z, q)
    np.testing.assert_allclose(x64(RECIPES["opennmt"].loss, z, y, epsilon=0.1), rows.sum(), rtol=1e-12)
    with jax.enable_x64(True):
        g = jax.grad(lambda a: RECIPES["opennmt"].loss(a, jnp.asarray(y), epsilon=0.1))(jnp.asarray(z))
    np.testing.assert_allclose(g, grad, rtol=1e-10, atol=1e-14)
    p = np.exp(ref.log_softmax(z))
    keep = y != 1
    np.testing.assert_allclose(np.asarray(g)[keep, 1], p[keep, 1], rtol=1e-10)  # ∂L/∂z_pad = p_pad > 0
    assert (np.asarray(g)[~keep] == 0).all()


def test_opennmt_matches_pytorch_kl_div_with_the_published_target():
    torch = pytest.importorskip("torch", reason="PyTorch is the optional peer")
    z, y = data(6, k=12)
    pad = 3
    y[0] = pad
    q = torch.tensor(ref.q_opennmt(y, 12, 0.2, pad))
    want = torch.nn.functional.kl_div(torch.log_softmax(torch.tensor(z), -1), q, reduction="sum").item()
    np.testing.assert_allclose(x64(RECIPES["opennmt"].loss, z, y, epsilon=0.2, padding_idx=pad), want, rtol=1e-12)


def test_opennmt_bad_input():
    z = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="at least 3 classes"):
        RECIPES["opennmt"].loss(np.zeros((2, 2), np.float32), np.array([0, 0]))
    for bad in (4, -1, 1.0):
        with pytest.raises(ValueError, match="padding_idx"):
            RECIPES["opennmt"].loss(z, np.array([0, 2]), padding_idx=bad)


# ------------------------------------------------------------------ hf_label_smoother


def test_hf_label_smoother_is_the_published_code_and_smooths_over_padding_columns():
    z, y = data(7)
    y[[1, 4]] = -100
    np.testing.assert_allclose(x64(RECIPES["hf_label_smoother"].loss, z, y, epsilon=0.1),
                               ref.hf_label_smoother(z, y, 0.1), rtol=1e-12)
    padded = np.concatenate([z, np.full((10, 3), -1.0)], axis=1)  # a vocabulary padded by 3 columns
    a = x64(RECIPES["hf_label_smoother"].loss, padded, y, epsilon=0.1)
    np.testing.assert_allclose(a, ref.hf_label_smoother(padded, y, 0.1), rtol=1e-12)
    np.testing.assert_allclose(a, x64(RECIPES["uniform"].loss, padded, y, epsilon=0.1, ignore_index=-100), rtol=1e-12)
    assert abs(a - x64(RECIPES["hf_label_smoother"].loss, z, y, epsilon=0.1)) > 1e-3


def test_hf_label_smoother_with_nothing_active_is_zero_where_the_published_code_divides_by_zero():
    z, _ = data(8, b=3)
    y = np.full(3, -100)
    assert float(RECIPES["hf_label_smoother"].loss(z.astype(np.float32), y)) == 0.0


# ------------------------------------------------------------------ fairseq


@pytest.mark.parametrize("name,legacy", [("fairseq_v0_10", True), ("fairseq", False)])
def test_fairseq_is_the_published_criterion_sum(name, legacy):
    z, y = data(9)
    y[[0, 3]] = 1  # <pad>
    np.testing.assert_allclose(x64(RECIPES[name].loss, z, y, epsilon=0.1),
                               ref.fairseq_nll(z, y, 0.1, 1, legacy=legacy), rtol=1e-12)


def test_fairseq_changed_meaning_eps_k_over_k_minus_one():
    z, y = data(10, k=6)
    y[y == 1] = 0
    np.testing.assert_allclose(x64(RECIPES["fairseq"].loss, z, y, epsilon=0.25),
                               x64(RECIPES["fairseq_v0_10"].loss, z, y, epsilon=0.25 * 6 / 5), rtol=1e-12)


# ------------------------------------------------------------------ shared: bad labels, NaN rows, proofs tie


def pad_kwargs(name):
    return {} if name == "opennmt" else {"ignore_index": None}


@pytest.mark.parametrize("name", NAMES)
def test_bad_integer_labels_raise(name):
    r = RECIPES[name]
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        r.loss(z, np.array([0, 4, 2]), **pad_kwargs(name))
    with pytest.raises(ValueError, match="does not match logits shape"):
        r.loss(z, np.array([0, 2]))
    with pytest.raises(TypeError, match="integer array"):
        r.loss(z, np.array([0.0, 2.0, 3.0]))


@pytest.mark.parametrize("name", NAMES)
def test_out_of_range_labels_under_jit_give_nan_rows(name):
    r = RECIPES[name]
    z = jnp.asarray(np.random.default_rng(11).normal(size=(4, 6)), jnp.float32)
    y = jnp.asarray([0, -3, 2, 6])
    kw = pad_kwargs(name)
    rows = jax.jit(lambda a, b: r.per_example(a, b, epsilon=0.1, **kw))(z, y)
    grad = jax.jit(jax.grad(lambda a, b: r.per_example(a, b, epsilon=0.1, **kw).sum()))(z, y)
    bad = np.array([False, True, False, True])
    assert np.isnan(np.asarray(rows)[bad]).all() and np.isfinite(np.asarray(rows)[~bad]).all()
    assert np.isnan(np.asarray(grad)[bad]).all() and np.isfinite(np.asarray(grad)[~bad]).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("k", [3, 5, 12])
def test_code_matches_the_proven_closed_form(name, k):
    rng = np.random.default_rng(k)
    z = rng.normal(size=(4, k)) * 3
    y = rng.integers(2, k, size=4)  # not padding index 1
    cf = proofs.module(name).closed_form(k)
    want_rows, want_grad = cf.lambdify()(z, np.eye(k)[y], 0.15)
    with jax.enable_x64(True):
        r = RECIPES[name]
        rows = r.per_example(jnp.asarray(z), jnp.asarray(y), epsilon=0.15)
        grad = jax.grad(lambda a: r.per_example(a, jnp.asarray(y), epsilon=0.15).sum())(jnp.asarray(z))
    np.testing.assert_allclose(rows, want_rows, rtol=1e-10)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-13)
