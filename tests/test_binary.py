"""The sigmoid (multi-label) recipes and Poly-1: references, shared properties, equivalences.

``keras_binary``, ``timm_binary``, ``mmpretrain_multilabel`` and ``poly`` are not softmax
cross-entropies with a target ``q``, so the softmax-only properties of ``test_losses.py``
(gradient ``(Σq)·p − q``, shift invariance for the sigmoid forms) do not apply; every
other shared property is run here on them, through the same test functions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import reference as ref
import test_losses as shared
from lsbench.losses import RECIPES
from lsbench.losses.recipes import keras_binary, label_relaxation, mmpretrain_multilabel, poly, timm_binary

SIGMOID = ["keras_binary", "timm_binary", "mmpretrain_multilabel"]
NEW = SIGMOID + ["poly", "label_relaxation"]
INTEGER_NEW = ["timm_binary", "mmpretrain_multilabel", "poly", "label_relaxation"]


def reference_rows(name, z, y, eps):
    k = z.shape[-1]
    if name == "keras_binary":
        return ref.bce_rows(z, ref.t_keras_binary(y, eps))
    if name == "timm_binary":
        return ref.bce_rows(z, ref.t_timm_binary(y, k, eps))
    if name == "mmpretrain_multilabel":
        return ref.bce_rows(z, ref.t_mmpretrain_multilabel(y, k, eps))
    if name == "label_relaxation":
        return ref.label_relaxation(z, y, eps)
    return ref.poly1(z, y, eps, 2.0)


@settings(max_examples=30, deadline=None)
@given(name=st.sampled_from(NEW), k=st.sampled_from([2, 3, 5, 10, 37, 128, 1000]),
       shape=st.sampled_from([(1,), (4,), (3, 5)]), eps=st.floats(0.0, 1.0), seed=st.integers(0, 2**16))
def test_fast_path_matches_the_float64_reference_of_the_source(name, k, shape, eps, seed):
    rng = np.random.default_rng(seed)
    z, y = shared.make_inputs(name, rng, shape, k)
    with jax.enable_x64(True):
        r = RECIPES[name]
        f = lambda a: r.per_example(a, jnp.asarray(y), epsilon=eps)  # noqa: E731
        rows = np.asarray(f(jnp.asarray(z)))
        grad = np.asarray(jax.grad(lambda a: f(a).sum())(jnp.asarray(z)))
    want_rows, want_grad = reference_rows(name, z, y, eps)
    np.testing.assert_allclose(rows, want_rows, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("prop", [
    shared.test_jit_equals_eager_and_vmap_works, shared.test_float64_in_float64_out,
    shared.test_masked_rows_contribute_exactly_zero, shared.test_nothing_left_gives_zero_not_nan,
    shared.test_bad_logits_raise, shared.test_a_where_of_the_wrong_shape_names_where,
    shared.test_masked_rows_holding_nan_or_inf_get_zero_loss_and_zero_gradient,
], ids=lambda f: getattr(f, "__name__", str(f)))
def test_shared_recipe_properties(prop, name):
    prop(name)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dtype", [jnp.bfloat16, jnp.float16, jnp.float32])
def test_low_precision_inputs_compute_in_float32(name, dtype):
    shared.test_low_precision_inputs_compute_in_float32(name, dtype)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16])
def test_finite_for_huge_logits(name, dtype):
    shared.test_finite_for_huge_logits(name, dtype)


@pytest.mark.parametrize("name", INTEGER_NEW)
def test_integer_label_properties(name):
    shared.test_bad_integer_labels_raise(name)
    shared.test_ignored_rows_holding_nan_get_zero_gradient(name)
    for eps in (-0.1, 1.5, float("nan")):
        shared.test_epsilon_outside_unit_interval_raises(name, eps)


def test_keras_binary_rejects_bad_dense_labels_and_epsilon():
    z = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="keras_binary labels must be a floating"):
        RECIPES["keras_binary"].loss(z, np.array([0, 1]))
    with pytest.raises(ValueError, match=r"must lie in \[0, 1\]"):
        RECIPES["keras_binary"].loss(z, np.full((2, 3), 1.5, np.float32))
    with pytest.raises(ValueError, match="epsilon"):
        RECIPES["keras_binary"].loss(z, np.zeros((2, 3), np.float32), epsilon=2.0)


@pytest.mark.parametrize("name", INTEGER_NEW)
def test_out_of_range_labels_under_jit_give_nan_loss_and_nan_gradient_rows(name):
    r = RECIPES[name]
    z = jnp.asarray(np.random.default_rng(20).normal(size=(4, 6)), jnp.float32)
    y = jnp.asarray([0, -3, 2, 6])
    rows = jax.jit(lambda a, b: r.per_example(a, b, epsilon=0.1))(z, y)
    grad = jax.jit(jax.grad(lambda a, b: r.per_example(a, b, epsilon=0.1).sum()))(z, y)
    bad = np.array([False, True, False, True])
    assert np.isnan(np.asarray(rows)[bad]).all() and np.isfinite(np.asarray(rows)[~bad]).all()
    assert np.isnan(np.asarray(grad)[bad]).all() and np.isfinite(np.asarray(grad)[~bad]).all()


def test_poly_is_shift_invariant_and_reduces_to_uniform_without_the_poly_term():
    shared.test_adding_a_constant_to_all_logits_changes_nothing("poly")
    shared.test_adding_a_constant_to_all_logits_changes_nothing("label_relaxation")
    rng = np.random.default_rng(3)
    z = jnp.asarray(rng.normal(size=(16, 9)) * 3)
    y = jnp.asarray(rng.integers(0, 9, size=16))
    with jax.enable_x64(True):
        z = z.astype(jnp.float64)
        np.testing.assert_allclose(RECIPES["poly"].loss(z, y, epsilon=0.2, poly=0.0),
                                   RECIPES["uniform"].loss(z, y, epsilon=0.2), rtol=1e-13)


# ------------------------------------------------------------------ equivalences (the converter's maps)


def _one_hot_case(k, seed=4):
    rng = np.random.default_rng(seed)
    z = jnp.asarray(rng.normal(size=(12, k)) * 3, jnp.float64)
    y = jnp.asarray(rng.integers(0, k, size=12))
    return z, y, jax.nn.one_hot(y, k, dtype=jnp.float64)


@pytest.mark.parametrize("k", [2, 5, 37])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.4])
def test_equivalent_keras_binary_epsilon_gives_the_same_loss_and_gradient(k, eps):
    with jax.enable_x64(True):
        z, y, Y = _one_hot_case(k)
        keras = lambda e: (lambda a: RECIPES["keras_binary"].loss(a, Y, epsilon=e))  # noqa: E731
        for name, module in (("timm_binary", timm_binary), ("mmpretrain_multilabel", mmpretrain_multilabel)):
            e2 = module.equivalent_keras_binary_epsilon(eps, k)
            own = lambda a: RECIPES[name].loss(a, y, epsilon=eps)  # noqa: E731
            if e2 is None:
                # No ε' exists: the gradients differ for every candidate (here the best one, 2·off).
                off = module.on_off(eps, k)[1] if name == "timm_binary" else eps
                assert not np.allclose(jax.grad(own)(z), jax.grad(keras(2 * off))(z), atol=1e-9)
                continue
            np.testing.assert_allclose(own(z), keras(e2)(z), rtol=1e-12)
            np.testing.assert_allclose(jax.grad(own)(z), jax.grad(keras(e2))(z), rtol=1e-10, atol=1e-14)
    assert keras_binary.equivalent_keras_binary_epsilon(eps, k) == eps


def test_timm_binary_has_a_keras_equivalent_only_for_two_classes_or_no_smoothing():
    assert timm_binary.equivalent_keras_binary_epsilon(0.1, 2) == 0.1
    assert timm_binary.equivalent_keras_binary_epsilon(0.0, 1000) == 0.0
    assert timm_binary.equivalent_keras_binary_epsilon(0.1, 3) is None
    assert mmpretrain_multilabel.equivalent_keras_binary_epsilon(0.6) is None


def test_off_target_values_differ_500_fold_at_k_1000():
    """The issue's finding: at K = 1000, ε = 0.1 the negatives get ε/2, ε/K and ε."""
    assert keras_binary.on_off(0.1)[1] / timm_binary.on_off(0.1, 1000)[1] == pytest.approx(500)
    assert mmpretrain_multilabel.on_off(0.1)[1] / timm_binary.on_off(0.1, 1000)[1] == pytest.approx(1000)


@pytest.mark.parametrize("name", ["timm_binary", "mmpretrain_multilabel"])
def test_optimal_logits_are_the_target_logits(name):
    """The gradient vanishes at x* = log(t/(1−t)), the closed form the proofs state."""
    k, eps = 7, 0.2
    module = {"timm_binary": timm_binary, "mmpretrain_multilabel": mmpretrain_multilabel}[name]
    y = jnp.asarray([3])
    with jax.enable_x64(True):
        t = module.targets(y, k, epsilon=eps)
        x = jnp.log(t / (1 - t))
        g = jax.grad(lambda a: RECIPES[name].loss(a, y, epsilon=eps))(x)
    np.testing.assert_allclose(g, 0.0, atol=1e-15)


def test_poly_equivalent_uniform_epsilon_and_its_stationary_point():
    assert poly.equivalent_uniform_epsilon(0.1, 0.0) == 0.1
    assert poly.equivalent_uniform_epsilon(1.0, 2.0) == 1.0
    assert poly.equivalent_uniform_epsilon(0.1, 2.0) is None
    k, eps, c0 = 10, 0.1, 2.0
    c = c0 * (1 - eps)
    a, b, d = c, 1 - c, (k - 1) * eps / k - 1  # c p² + (1 − c) p + ((K−1)ε/K − 1) = 0
    p_y = (-b + np.sqrt(b * b - 4 * a * d)) / (2 * a)
    p_j = eps / k / (1 + c * p_y)
    with jax.enable_x64(True):
        x = jnp.log(jnp.asarray([[p_y] + [p_j] * (k - 1)], jnp.float64))
        g = jax.grad(lambda a: RECIPES["poly"].loss(a, jnp.asarray([0]), epsilon=eps, poly=c0))(x)
    np.testing.assert_allclose(g, 0.0, atol=1e-14)
    assert np.log(p_y / p_j) > np.log(1 + k * (1 - eps) / eps)  # a larger gap than uniform's


@pytest.mark.parametrize("bad", [-1.5, float("inf")])
def test_poly_coefficient_below_minus_one_raises(bad):
    with pytest.raises(ValueError, match="poly"):
        RECIPES["poly"].loss(np.zeros((2, 3), np.float32), np.array([0, 1]), poly=bad)


def test_peer_torch_bce_if_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(30)
    k, eps = 11, 0.1
    z = rng.normal(size=(8, k)).astype(np.float32)
    y = rng.integers(0, k, size=8)
    t = torch.full((8, k), eps / k).scatter_(1, torch.as_tensor(y).view(-1, 1), 1 - eps + eps / k)
    want = torch.nn.functional.binary_cross_entropy_with_logits(torch.as_tensor(z), t).item()
    np.testing.assert_allclose(RECIPES["timm_binary"].loss(z, y, epsilon=eps), want, rtol=1e-6)


# ------------------------------------------------------------------ the proven closed forms, evaluated


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("k", [2, 5])
def test_code_matches_the_proven_closed_form(name, k):
    import proofs

    rng = np.random.default_rng(40 + k)
    z = rng.normal(size=(6, k)) * 3
    y = rng.integers(0, k, size=6)
    eps = 0.3
    cf = proofs.module(name).closed_form(k)
    fn = cf.lambdify()
    r = RECIPES[name]
    with jax.enable_x64(True):
        if name == "label_relaxation":  # the proven closed form outside the credal set
            z[:, 0] = -4.0
            y = np.zeros(6, int)
        if name == "keras_binary":
            Y = rng.uniform(size=(6, k))
            want, want_grad = fn(z, Y, eps)
            got = r.per_example(jnp.asarray(z), jnp.asarray(Y), epsilon=eps)
            g = jax.grad(lambda a: r.per_example(a, jnp.asarray(Y), epsilon=eps).sum())(jnp.asarray(z))
        else:
            extra = (2.0,) if name == "poly" else ()
            want, want_grad = fn(z, np.eye(k)[y], eps, *extra)
            kw = {"poly": 2.0} if name == "poly" else {}
            got = r.per_example(jnp.asarray(z), jnp.asarray(y), epsilon=eps, **kw)
            g = jax.grad(lambda a: r.per_example(a, jnp.asarray(y), epsilon=eps, **kw).sum())(jnp.asarray(z))
    np.testing.assert_allclose(got, want, rtol=1e-11)
    np.testing.assert_allclose(g, want_grad, rtol=1e-9, atol=1e-13)


def test_label_relaxation_is_zero_inside_the_credal_set_and_its_limits():
    r = RECIPES["label_relaxation"]
    z = jnp.asarray([[3.0, 0.0, 0.0], [0.5, 0.0, 0.0]])
    y = jnp.asarray([0, 0])
    p_y = np.asarray(jax.nn.softmax(z, axis=-1))[:, 0]
    eps = 0.2
    rows = np.asarray(r.per_example(z, y, epsilon=eps))
    assert p_y[0] >= 1 - eps and rows[0] == 0 and p_y[1] < 1 - eps and rows[1] > 0
    g = np.asarray(jax.grad(lambda a: r.per_example(a, y, epsilon=eps).sum())(z))
    assert (g[0] == 0).all() and np.isfinite(g).all()
    np.testing.assert_allclose(g, jax.nn.softmax(z, axis=-1) - label_relaxation.targets(y, 3, epsilon=eps, logits=z),
                               atol=1e-6)
    # ε = 0 is the cross-entropy, ε = 1 the zero loss.
    np.testing.assert_allclose(r.per_example(z, y, epsilon=0.0), -np.log(p_y), rtol=1e-6)
    assert (np.asarray(r.per_example(z, y, epsilon=1.0)) == 0).all()
    assert label_relaxation.equivalent_uniform_epsilon(0.1, 10) is None


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name", SIGMOID + ["label_relaxation"])
def test_fast_path_keeps_no_class_sized_temporary_besides_the_gradient(name, dtype):
    """The closed-form custom_vjp: XLA's compiled fwd+bwd needs only per-row scratch (plain
    autodiff of the softplus kept several [B, K] residuals: 4x the logits for timm_binary)."""
    b, k = 64, 1000
    z = jnp.zeros((b, k), dtype)
    labels = jnp.zeros((b, k), dtype) if name == "keras_binary" else jnp.zeros((b,), jnp.int32)
    argnums = (0, 1) if name == "keras_binary" else 0  # keras_binary: ∂/∂Y as well
    step = jax.jit(jax.value_and_grad(lambda a, y: RECIPES[name].loss(a, y, epsilon=0.1), argnums=argnums))
    memory = step.lower(z, labels).compile().memory_analysis()
    assert memory.temp_size_in_bytes < 0.1 * z.nbytes, (memory.temp_size_in_bytes, z.nbytes)
