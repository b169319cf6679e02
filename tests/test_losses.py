"""Properties every recipe in ``lsbench.losses.RECIPES`` shares.

Recipe-specific behaviour (reductions, peers, findings) is tested in
``test_<recipe>.py`` beside this file.
"""

from __future__ import annotations

import inspect

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
from lsbench.losses import RECIPES

NAMES = ["uniform", "off_target", "fastai", "tf_onehot", "fastreid", "speech_transformer", "distillation"]
SMOOTHING = [n for n in NAMES if n != "distillation"]
# issue 17 (softmax forms): the KL forms subtract H(q); these drop rows labelled padding index 1 and sum.
NAMES += ["flax_kl", "opennmt", "hf_label_smoother", "fairseq_v0_10", "fairseq"]
SMOOTHING = [n for n in NAMES if n != "distillation"]
KL_FORMS = ("flax_kl", "opennmt")
PADDING_ONE = ("opennmt", "fairseq_v0_10", "fairseq")
SUMMED = ("opennmt", "fairseq_v0_10", "fairseq")
MIN_CLASSES = {"opennmt": 3}


def min_classes(name, k):
    """``k``, raised to the fewest classes the recipe accepts."""
    return max(k, MIN_CLASSES.get(name, 2))


def entropy_offset(name, q):
    """``Σ_rows Σ_j q log q`` for the KL forms (their loss is CE − H(q)), else 0."""
    return float(ref.xlogy(q, q).sum()) if name in KL_FORMS else 0.0
#: issue 17, sigmoid/multi-label forms and Poly-1: not softmax CE with a target q; tested in test_binary.py
NOT_SOFTMAX_CE = ["keras_binary", "timm_binary", "mmpretrain_multilabel", "poly", "label_relaxation"]


def make_inputs(name, rng, shape, k, dtype=np.float64, scale=3.0):
    """Logits and the recipe's second argument (labels / one-hot / teacher logits)."""
    z = (rng.normal(size=shape + (k,)) * scale).astype(dtype)
    y = rng.integers(0, k, size=shape)
    if name == "tf_onehot":
        return z, np.eye(k, dtype=dtype)[y]
    if name == "keras_binary":  # issue 17: a dense 0/1 label matrix
        return z, np.eye(k, dtype=dtype)[y]
    if name == "distillation":
        return z, (rng.normal(size=shape + (k,)) * scale).astype(dtype)
    if name in PADDING_ONE and k > 2:  # keep every row: label 1 is these recipes' padding index
        y = np.where(y == 1, 0, y)
    return z, y.astype(np.int32)


def params(name, eps):
    if name == "distillation":
        return {"temperature": 1.0 + 3.0 * eps}
    return {"epsilon": eps}


def reference_q(name, z, y, eps):
    """The dense float64 target of a label-smoothing recipe, from the spec."""
    k = z.shape[-1]
    return {
        "uniform": lambda: ref.q_uniform(y, k, eps),
        "fastai": lambda: ref.q_uniform(y, k, eps),
        "off_target": lambda: ref.q_off_target(y, k, eps),
        "fastreid": lambda: ref.q_fastreid(y, k, z, eps, 0.2),
        "speech_transformer": lambda: ref.q_speech_transformer(y, k, eps),
        "tf_onehot": lambda: ref.q_tf(y, eps),
        "flax_kl": lambda: ref.q_off_target(y, k, eps),
        "opennmt": lambda: ref.q_opennmt(y, k, eps, 1),
        "hf_label_smoother": lambda: ref.q_uniform(y, k, eps),
        "fairseq_v0_10": lambda: ref.q_uniform(y, k, eps),
        "fairseq": lambda: ref.q_off_target(y, k, eps),
    }[name]()


def reference_rows(name, z, y, eps):
    """Per-row float64 reference loss and gradient straight from the spec."""
    if name == "distillation":
        return ref.distillation(z, y, 1.0 + 3.0 * eps)
    if name == "flax_kl":
        return ref.flax_kl(z, y, eps)
    if name == "opennmt":
        rows, grad = ref.dense_kl(z, reference_q(name, z, y, eps))
    else:
        rows, grad = ref.dense_ce(z, reference_q(name, z, y, eps))
    if name in PADDING_ONE:  # the source drops rows labelled its padding index (only drawn at K = 2)
        keep = np.asarray(y) != 1
        rows, grad = np.where(keep, rows, 0.0), np.where(keep[..., None], grad, 0.0)
    return rows, grad


def loss64(name, z, y, **kw):
    """``RECIPES[name].loss`` of NumPy inputs, computed in float64."""
    with jax.enable_x64(True):
        return RECIPES[name].loss(jnp.asarray(z), jnp.asarray(y), **kw)


def test_catalogue_has_exactly_the_published_recipes():
    assert sorted(RECIPES) == sorted(NAMES + NOT_SOFTMAX_CE)
    for name, r in RECIPES.items():
        assert r.name == name
        assert r.proof == f"proofs.{name}"
        assert r.formula and r.closed_form and r.source and r.reduction
        assert callable(r.loss) and callable(r.per_example) and callable(r.targets)
        assert r.labels in ("int", "dense", "logits")


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(NAMES),
    k=st.sampled_from([2, 3, 5, 10, 37, 128, 1000]),
    shape=st.sampled_from([(1,), (4,), (3, 5)]),
    eps=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_fast_path_matches_dense_reference(name, k, shape, eps, seed):
    """Loss and gradient of the fast path equal the float64 dense reference."""
    rng = np.random.default_rng(seed)
    k = min_classes(name, k)
    z, y = make_inputs(name, rng, shape, k)
    with jax.enable_x64(True):
        r = RECIPES[name]
        rows = np.asarray(r.per_example(jnp.asarray(z), jnp.asarray(y), **params(name, eps)))
        grad = np.asarray(jax.grad(lambda a: r.per_example(a, jnp.asarray(y), **params(name, eps)).sum())(jnp.asarray(z)))
    want_rows, want_grad = reference_rows(name, z, y, eps)
    np.testing.assert_allclose(rows, want_rows, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-12)


@settings(max_examples=8, deadline=None)
@given(name=st.sampled_from(SMOOTHING), k=st.sampled_from([2, 7, 100]), seed=st.integers(0, 2**16))
def test_custom_backward_equals_autodiff_of_the_dense_form(name, k, seed):
    rng = np.random.default_rng(seed)
    k = min_classes(name, k)
    z, y = make_inputs(name, rng, (6,), k)
    eps = 0.3
    r = RECIPES[name]
    with jax.enable_x64(True):
        z, y = jnp.asarray(z), jnp.asarray(y)
        # the padding recipes drop rows labelled 1 (drawn only at K = 2): the dense form drops them too
        kept = (y != 1)[:, None] if name in PADDING_ONE else jnp.ones((y.shape[0], 1), bool)
        q = jnp.where(kept, r.targets(y, k, epsilon=eps), 0.0)
        dense = lambda a: -jnp.sum(q * jax.nn.log_softmax(a, axis=-1))  # noqa: E731
        fast = lambda a: jnp.sum(r.per_example(a, y, epsilon=eps))  # noqa: E731
        np.testing.assert_allclose(jax.grad(fast)(z), jax.grad(dense)(z), rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(fast(z), dense(z) + entropy_offset(name, np.asarray(q)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", SMOOTHING)
def test_epsilon_zero_is_plain_cross_entropy(name):
    rng = np.random.default_rng(0)
    z, y = make_inputs(name, rng, (8,), 11)
    labels = y.argmax(-1) if name == "tf_onehot" else y
    got = loss64(name, z, y, epsilon=0.0)
    nll_rows = -np.take_along_axis(ref.log_softmax(z), labels[:, None], -1)
    nll = nll_rows.sum() if name in SUMMED else nll_rows.mean()
    np.testing.assert_allclose(got, nll, rtol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_adding_a_constant_to_all_logits_changes_nothing(name):
    rng = np.random.default_rng(1)
    z, y = make_inputs(name, rng, (5,), 13)
    base = loss64(name, z, y, **params(name, 0.2))
    shifted = loss64(name, z + 123.25, y, **params(name, 0.2))
    np.testing.assert_allclose(shifted, base, rtol=1e-12)


@pytest.mark.parametrize("name", SMOOTHING)
def test_gradient_row_sums(name):
    """Σ_j ∂L/∂z_j = 0 for every recipe (shift invariance), and ∂L/∂z = (Σq)·p − q.

    For ``speech_transformer`` Σq = 1 − ε/K, so its gradient is *not* ``p − q``:
    the difference ``−(ε/K)·p`` sums to ``−ε/K`` per row.
    """
    rng = np.random.default_rng(2)
    k, eps = 9, 0.3
    z, y = make_inputs(name, rng, (4,), k)
    with jax.enable_x64(True):
        g = jax.grad(lambda a: RECIPES[name].per_example(a, jnp.asarray(y), epsilon=eps).sum())(jnp.asarray(z))
    g = np.asarray(g)
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-14)
    q = reference_q(name, z, y, eps)
    p = np.exp(ref.log_softmax(z))
    want = -eps / k if name == "speech_transformer" else 0.0
    np.testing.assert_allclose((g - (p - q)).sum(-1), want, atol=1e-14)


def test_fastai_tf_onehot_and_uniform_agree_and_off_target_is_rescaled_uniform():
    rng = np.random.default_rng(3)
    k, eps = 17, 0.15
    z = jnp.asarray(rng.normal(size=(32, k)) * 4)
    y = jnp.asarray(rng.integers(0, k, size=32))
    with jax.enable_x64(True):
        z = z.astype(jnp.float64)
        u = RECIPES["uniform"].loss(z, y, epsilon=eps)
        np.testing.assert_allclose(RECIPES["fastai"].loss(z, y, epsilon=eps), u, rtol=1e-13)
        np.testing.assert_allclose(RECIPES["tf_onehot"].loss(z, jax.nn.one_hot(y, k, dtype=z.dtype), epsilon=eps), u, rtol=1e-13)
        np.testing.assert_allclose(
            RECIPES["off_target"].loss(z, y, epsilon=eps),
            RECIPES["uniform"].loss(z, y, epsilon=eps * k / (k - 1)),
            rtol=1e-13,
        )


@pytest.mark.parametrize("name", NAMES)
def test_jit_equals_eager_and_vmap_works(name):
    rng = np.random.default_rng(4)
    z, y = make_inputs(name, rng, (3, 4), 10, dtype=np.float32)
    r = RECIPES[name]
    p = params(name, 0.1)
    eager = r.loss(z, y, **p)
    jitted = jax.jit(lambda a, b: r.loss(a, b, **p))(z, y)
    np.testing.assert_allclose(jitted, eager, rtol=1e-6)
    # vmap over the leading axis of per_example equals the direct [3, 4] call.
    direct = r.per_example(z, y, **p)
    mapped = jax.vmap(lambda a, b: r.per_example(a, b, **p))(jnp.asarray(z), jnp.asarray(y))
    np.testing.assert_allclose(mapped, direct, rtol=1e-6)
    grads = jax.vmap(jax.grad(lambda a, b: r.loss(a, b, **p)))(jnp.asarray(z), jnp.asarray(y))
    assert grads.shape == z.shape and np.isfinite(np.asarray(grads)).all()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_inputs_compute_in_float32(name, dtype):
    rng = np.random.default_rng(5)
    z, y = make_inputs(name, rng, (16,), 50, dtype=np.float32)
    zl = jnp.asarray(z).astype(dtype)
    yl = jnp.asarray(y).astype(dtype) if name in ("tf_onehot", "distillation") else jnp.asarray(y)
    r = RECIPES[name]
    p = params(name, 0.1)
    out = r.loss(zl, yl, **p)
    assert out.dtype == jnp.float32
    g = jax.grad(lambda a: r.loss(a, yl, **p))(zl)
    assert g.dtype == dtype
    # Same value as computing from the upcast logits, up to float32 rounding.
    up = r.loss(zl.astype(jnp.float32), yl.astype(jnp.float32) if yl.dtype != jnp.int32 else yl, **p)
    np.testing.assert_allclose(out, up, rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_float64_in_float64_out(name):
    rng = np.random.default_rng(6)
    z, y = make_inputs(name, rng, (4,), 6)
    assert loss64(name, z, y, **params(name, 0.1)).dtype == jnp.float64


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_finite_for_huge_logits(name, dtype):
    rng = np.random.default_rng(7)
    k = 1000
    z = rng.choice([-1e4, 1e4], size=(8, k)).astype(np.float32)
    _, y = make_inputs(name, rng, (8,), k, dtype=np.float32)
    if name == "distillation":
        y = -z
    zl = jnp.asarray(z).astype(dtype)
    yl = jnp.asarray(y).astype(dtype) if name in ("tf_onehot", "distillation") else jnp.asarray(y)
    r = RECIPES[name]
    p = params(name, 0.1)
    val = r.loss(zl, yl, **p)
    g = jax.grad(lambda a: r.loss(a, yl, **p))(zl)
    assert np.isfinite(float(val))
    assert np.isfinite(np.asarray(g, np.float32)).all()


@pytest.mark.parametrize("name", NAMES)
def test_masked_rows_contribute_exactly_zero(name):
    rng = np.random.default_rng(8)
    z, y = make_inputs(name, rng, (6,), 5, dtype=np.float32)
    keep = np.array([True, False, True, True, False, True])
    r = RECIPES[name]
    p = params(name, 0.2)
    rows = r.per_example(z, y, where=keep, **p)
    assert (np.asarray(rows)[~keep] == 0).all()
    g = jax.grad(lambda a: r.loss(a, y, where=keep, **p))(jnp.asarray(z))
    assert (np.asarray(g)[~keep] == 0).all()
    # The masked loss equals the loss of the kept rows alone.
    np.testing.assert_allclose(r.loss(z, y, where=keep, **p), r.loss(z[keep], y[keep], **p), rtol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_nothing_left_gives_zero_not_nan(name):
    rng = np.random.default_rng(9)
    z, y = make_inputs(name, rng, (3,), 4, dtype=np.float32)
    r = RECIPES[name]
    p = params(name, 0.2)
    none = np.zeros(3, bool)
    assert float(r.loss(z, y, where=none, **p)) == 0.0
    g = jax.grad(lambda a: r.loss(a, y, where=none, **p))(jnp.asarray(z))
    assert (np.asarray(g) == 0).all()
    empty_z, empty_y = make_inputs(name, rng, (0,), 4, dtype=np.float32)
    assert float(r.loss(empty_z, empty_y, **p)) == 0.0


def test_ignore_index_masks_rows_for_integer_recipes():
    z = jnp.asarray(np.random.default_rng(10).normal(size=(4, 6)), jnp.float32)
    y = jnp.asarray([1, -100, 2, -100])
    for name in ["uniform", "off_target", "fastai", "fastreid", "speech_transformer"]:
        r = RECIPES[name]
        got = r.loss(z, y, epsilon=0.1, ignore_index=-100)
        want = r.loss(z[jnp.asarray([0, 2])], y[jnp.asarray([0, 2])], epsilon=0.1)
        np.testing.assert_allclose(got, want, rtol=1e-6, err_msg=name)


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("name", ["uniform", "off_target", "fastai", "fastreid", "speech_transformer"])
def test_bad_integer_labels_raise(name):
    r = RECIPES[name]
    z = np.zeros((3, 4), np.float32)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 4\)"):
        r.loss(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"labels must lie in"):
        r.loss(z, np.array([0, -5, 1]))
    with pytest.raises(ValueError, match="does not match logits shape"):
        r.loss(z, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer array"):
        r.loss(z, np.array([0.0, 1.0, 2.0]))


@pytest.mark.parametrize("name", NAMES)
def test_bad_logits_raise(name):
    r = RECIPES[name]
    rng = np.random.default_rng(11)
    z, y = make_inputs(name, rng, (3,), 4, dtype=np.float32)
    with pytest.raises(TypeError, match="floating-point"):
        r.loss(z.astype(np.int32), y, **params(name, 0.1))
    with pytest.raises(ValueError):
        r.loss(z[:, :3] if name in ("tf_onehot", "distillation") else z[:2], y, **params(name, 0.1))


# A negative epsilon selects fast-reid's adaptive mode, so it is valid there.
BAD_EPSILONS = [(n, e) for n in SMOOTHING for e in (-0.1, 1.5, float("nan")) if not (n == "fastreid" and e < 0)]


@pytest.mark.parametrize("name,eps", BAD_EPSILONS)
def test_epsilon_outside_unit_interval_raises(name, eps):
    rng = np.random.default_rng(12)
    z, y = make_inputs(name, rng, (3,), 4, dtype=np.float32)
    with pytest.raises(ValueError, match="epsilon"):
        RECIPES[name].loss(z, y, epsilon=eps)


@pytest.mark.parametrize("name", ["off_target", "fastreid"])
def test_k_below_two_raises_where_k_minus_one_divides(name):
    with pytest.raises(ValueError, match="at least 2 classes"):
        RECIPES[name].loss(np.zeros((3, 1), np.float32), np.zeros(3, np.int32))


@pytest.mark.parametrize("temperature", [0.0, -1.0, float("inf")])
def test_nonpositive_temperature_raises(temperature):
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(ValueError, match="temperature"):
        RECIPES["distillation"].loss(z, z, temperature=temperature)


def test_out_of_range_label_under_jit_gives_nan_not_a_wrong_number():
    """Documented behaviour: under jit the range check cannot raise."""
    f = jax.jit(lambda a, b: RECIPES["uniform"].loss(a, b))
    z = jnp.zeros((2, 3))
    assert np.isfinite(float(f(z, jnp.asarray([0, 2]))))
    assert np.isnan(float(f(z, jnp.asarray([0, 3]))))


def test_peer_optax_uniform():
    optax = pytest.importorskip("optax")
    rng = np.random.default_rng(13)
    k, eps = 100, 0.1
    z = jnp.asarray(rng.normal(size=(64, k)) * 2, jnp.float32)
    y = jnp.asarray(rng.integers(0, k, size=64))
    want = optax.softmax_cross_entropy(z, optax.smooth_labels(jax.nn.one_hot(y, k), eps)).mean()
    np.testing.assert_allclose(RECIPES["uniform"].loss(z, y, epsilon=eps), want, rtol=1e-6)
    gw = jax.grad(lambda a: optax.softmax_cross_entropy(a, optax.smooth_labels(jax.nn.one_hot(y, k), eps)).mean())(z)
    g = jax.grad(lambda a: RECIPES["uniform"].loss(a, y, epsilon=eps))(z)
    np.testing.assert_allclose(g, gw, rtol=1e-5, atol=1e-8)


# ------------------------------------------------ issue 12: no silent wrong numbers

INTEGER = ["uniform", "off_target", "fastai", "fastreid", "speech_transformer"]


@pytest.mark.parametrize("name", INTEGER)
def test_out_of_range_labels_under_jit_give_nan_loss_and_nan_gradient_rows(name):
    """Defect 1: a negative label must not wrap to class K+label, and the gradient must be NaN too."""
    r = RECIPES[name]
    z = jnp.asarray(np.random.default_rng(20).normal(size=(5, 6)), jnp.float32)
    y = jnp.asarray([0, -3, 2, 6, -1 if name != "speech_transformer" else 1])
    rows = jax.jit(lambda a, b: r.per_example(a, b, epsilon=0.1))(z, y)
    grad = jax.jit(jax.grad(lambda a, b: r.per_example(a, b, epsilon=0.1).sum()))(z, y)
    bad = np.asarray([False, True, False, True, name != "speech_transformer"])
    assert np.isnan(np.asarray(rows)[bad]).all() and np.isfinite(np.asarray(rows)[~bad]).all()
    assert np.isnan(np.asarray(grad)[bad]).all() and np.isfinite(np.asarray(grad)[~bad]).all()
    mapped = jax.vmap(lambda a, b: r.per_example(a, b, epsilon=0.1))(z[None], y[None])[0]
    np.testing.assert_array_equal(np.isnan(mapped), bad)


@pytest.mark.parametrize("name", NAMES)
def test_masked_rows_holding_nan_or_inf_get_zero_loss_and_zero_gradient(name):
    """Defect 3: whatever a masked row holds, it contributes exactly zero."""
    rng = np.random.default_rng(21)
    z, y = make_inputs(name, rng, (4,), 5, dtype=np.float32)
    z[1] = np.nan
    z[2, 0] = np.inf
    keep = np.array([True, False, False, True])
    r = RECIPES[name]
    p = params(name, 0.2)
    g = np.asarray(jax.grad(lambda a: r.loss(a, y, where=keep, **p))(jnp.asarray(z)))
    assert (g[~keep] == 0).all() and np.isfinite(g).all()
    assert (np.asarray(r.per_example(z, y, where=keep, **p))[~keep] == 0).all()
    np.testing.assert_allclose(r.loss(z, y, where=keep, **p), r.loss(z[keep], y[keep], **p), rtol=1e-6)


@pytest.mark.parametrize("name", INTEGER)
def test_ignored_rows_holding_nan_get_zero_gradient(name):
    z = np.random.default_rng(22).normal(size=(3, 4)).astype(np.float32)
    z[1] = np.nan
    y = np.array([0, -100, 3])
    g = jax.grad(lambda a: RECIPES[name].loss(a, y, epsilon=0.1, ignore_index=-100))(jnp.asarray(z))
    assert (np.asarray(g)[1] == 0).all() and np.isfinite(np.asarray(g)).all()


@pytest.mark.parametrize("name", INTEGER + ["tf_onehot"])
def test_finite_logits_near_the_float32_limit_give_the_finite_float64_value(name):
    """Defect 4: Σz of [3e38, −3e38, ...] must not overflow when the loss itself fits in float32."""
    z = np.array([[3e38, -3e38, 0, 1, 2], [1.0, 2.0, 3.0, 4.0, 5.0]], np.float32)
    y = np.array([0, 4])
    yy = np.eye(5, dtype=np.float32)[y] if name == "tf_onehot" else y
    got = np.asarray(RECIPES[name].per_example(z, yy, epsilon=0.1))
    with jax.enable_x64(True):
        want = np.asarray(RECIPES[name].per_example(jnp.asarray(z, jnp.float64), jnp.asarray(yy, jnp.float64)
                                                    if name == "tf_onehot" else jnp.asarray(y), epsilon=0.1))
    assert np.isfinite(want).all() and np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("bad", ["a", None, [0.1, 0.2], True])
def test_a_non_numeric_epsilon_raises_a_type_error_naming_it(bad):
    """Defect 6: not NumPy's 'ufunc isfinite not supported'."""
    with pytest.raises((TypeError, ValueError), match="epsilon"):
        RECIPES["uniform"].loss(np.zeros((2, 3), np.float32), np.array([0, 1]), epsilon=bad)


@pytest.mark.parametrize("name", NAMES)
def test_a_where_of_the_wrong_shape_names_where(name):
    rng = np.random.default_rng(23)
    z, y = make_inputs(name, rng, (4,), 5, dtype=np.float32)
    with pytest.raises(ValueError, match=r"where must be a boolean mask of the batch shape \(4,\)"):
        RECIPES[name].loss(z, y, where=np.ones(3, bool), **params(name, 0.1))


@pytest.mark.parametrize("name", INTEGER + ["tf_onehot"])
def test_a_minus_infinity_logit_masks_its_class(name):
    """Defect 8: with ε = 0 a −inf logit is a masked class (optax gives log 2); with ε > 0 the
    smoothed target puts mass on a class of probability 0, so the true loss is +inf and the
    gradient is still the finite p − q."""
    z = jnp.array([[1e8, -jnp.inf, 1e8]])
    y = jnp.array([0])
    yy = jax.nn.one_hot(y, 3) if name == "tf_onehot" else y
    r = RECIPES[name]
    np.testing.assert_allclose(r.per_example(z, yy, epsilon=0.0), [np.log(2)], rtol=1e-6)
    g0 = np.asarray(jax.grad(lambda a: r.loss(a, yy, epsilon=0.0))(z))
    np.testing.assert_allclose(g0, [[-0.5, 0.0, 0.5]], atol=1e-7)
    assert np.asarray(r.per_example(z, yy, epsilon=0.1))[0] == np.inf
    g = np.asarray(jax.grad(lambda a: r.loss(a, yy, epsilon=0.1))(z))
    q = np.asarray(r.targets(yy if name == "tf_onehot" else y, 3, epsilon=0.1))[0] if name != "fastreid" else None
    assert np.isfinite(g).all()
    if q is not None:  # ∂L/∂z = (Σq)·p − q with p = (1/2, 0, 1/2)
        np.testing.assert_allclose(g[0], q.sum() * np.array([0.5, 0.0, 0.5]) - q, atol=1e-6)


# optax/losses/_classification_stability_test.py, ported to every integer recipe and tf_onehot.

@pytest.mark.parametrize("name", INTEGER)
@pytest.mark.parametrize("dtype,offset", [(jnp.float32, 1e6), (jnp.float32, 1e8), (jnp.float16, 4096),
                                          (jnp.bfloat16, 256)])
@pytest.mark.parametrize("sign", [-1, 1])
def test_stability_uniform_logits_keep_nonzero_loss(name, dtype, offset, sign):
    logits = jnp.full((2, 3), sign * offset, dtype=dtype)
    labels = jnp.array([0, 2])
    fn = lambda a: RECIPES[name].per_example(a, labels, epsilon=0.0, ignore_index=-100)  # noqa: E731
    for loss in (fn, jax.jit(fn)):
        np.testing.assert_allclose(loss(logits), np.full(2, np.log(3)), rtol=2 * float(jnp.finfo(dtype).eps))


@pytest.mark.parametrize("name", INTEGER)
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_stability_nonuniform_loss_and_gradient_preserve_shift(name, eps):
    logits = jnp.arange(24, dtype=jnp.float32).reshape(2, 3, 4) / 8
    labels = jnp.ones((2, 3), dtype=jnp.int32)
    fn = lambda x: RECIPES[name].per_example(x, labels, epsilon=eps)  # noqa: E731
    shifted = logits + 1e6
    for loss in (fn, jax.jit(fn)):
        np.testing.assert_allclose(loss(shifted), loss(logits), rtol=1e-6)
    gradient = jax.jit(jax.grad(lambda x: fn(x).sum()))
    np.testing.assert_allclose(gradient(shifted), gradient(logits), atol=1e-7)


@pytest.mark.parametrize("name", INTEGER)
def test_stability_all_masked_rows_keep_zero_loss_and_gradient(name):
    logits = jnp.full((2, 3), 1e8)
    fn = lambda x: RECIPES[name].per_example(x, jnp.array([0, 1]), where=jnp.array([False, False]))  # noqa: E731
    np.testing.assert_array_equal(jax.jit(fn)(logits), [0.0, 0.0])
    np.testing.assert_array_equal(jax.jit(jax.grad(lambda x: fn(x).sum()))(logits), jnp.zeros_like(logits))


@pytest.mark.parametrize("name", ["uniform", "off_target", "fastai", "tf_onehot"])
def test_gradient_precision_does_not_degrade_with_the_logit_offset(name):
    """Defect 9: float32 64×1000 vs float64 on the same inputs; optax stays below 1e-7 at every offset."""
    rng = np.random.default_rng(24)
    z = rng.normal(size=(64, 1000)).astype(np.float32)
    y = rng.integers(0, 1000, 64)
    yy = np.eye(1000, dtype=np.float32)[y] if name == "tf_onehot" else y
    r = RECIPES[name]
    for offset in (0.0, 1e2, 1e3, 1e4, 1e5):
        zz = z + np.float32(offset)
        got = np.asarray(jax.grad(lambda a: r.loss(a, yy, epsilon=0.1))(jnp.asarray(zz)), np.float64)
        with jax.enable_x64(True):
            want = np.asarray(jax.grad(lambda a: r.loss(a, jnp.asarray(yy, a.dtype) if name == "tf_onehot" else yy,
                                                        epsilon=0.1))(jnp.asarray(zz, jnp.float64)))
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 1e-7, (name, offset)


def test_each_recipe_is_a_public_function_and_recipes_are_built_from_it():
    """Issue 12 API: ``from lsbench.losses import uniform`` is the per-example function."""
    import lsbench.losses as L

    for name, r in RECIPES.items():
        fn = getattr(L, name)
        assert callable(fn) and r.per_example is fn and name in L.__all__
        doc = fn.__doc__
        assert ".. math::" in doc and "Examples:" in doc and "References:" in doc and ">>>" in doc
        sig = inspect.signature(fn)
        assert sig.return_annotation in ("jax.Array", jax.Array)
        assert {k: v.default for k, v in sig.parameters.items() if v.kind is v.KEYWORD_ONLY and k != "where"} \
            == dict(r.params)
