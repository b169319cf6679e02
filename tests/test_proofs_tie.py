"""Tie the proofs to the code: the proven closed forms, lambdified, against ``lsbench.losses``.

For every recipe, ``proofs.<name>.closed_form(K)`` gives the per-example loss
and gradient that the SymPy theorems prove (built by the same functions the
theorems check). Here they are evaluated in float64 with NumPy and compared
with ``RECIPES[name]`` (loss via ``.per_example``/``.loss``, gradient via
``jax.grad``) on hypothesis-drawn logits, labels, K and parameters.

Tolerance: ``|code − proof| ≤ 1e−10·(|proof| + scale)``, i.e. a relative error
of 1e−10, where ``scale = 1 + max|inputs|`` lets values that are near zero by
cancellation (a distillation loss with student ≈ teacher) be compared at the
inputs' magnitude. K is drawn from a few values between 2 and 64 so that the
jitted code compiles for a few shapes only.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

# An editable install made before proofs/ had an __init__.py maps ``proofs`` to a
# namespace package; putting the repository first makes plain ``pytest`` find the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import proofs
from lsbench.losses import RECIPES, self_correction_loss, self_correction_weights
from proofs import fastreid as p_fastreid
from proofs import self_correction as p_self_correction

KS = (2, 5, 64)
B = 3
RTOL = 1e-10
SETTINGS = settings(max_examples=25, deadline=None)

floats = functools.partial(st.floats, allow_nan=False, allow_infinity=False)


@functools.lru_cache(maxsize=None)
def proven(recipe: str, K: int, variant: str = ""):
    """NumPy ``f(*inputs) -> (loss[B], grad[B, K], extras)`` from the proven closed form.

    One lambdify per (recipe, K, variant), cached; ``extras`` maps each name in
    ``closed_form.extra`` to its values (a list of per-class expressions is stacked
    on a last axis of size K).
    """
    if variant == "adaptive":
        cf = p_fastreid.closed_form(K, adaptive=True)
    elif variant == "weight":
        cf = p_self_correction.weight_form(K)
    else:
        cf = proofs.module(recipe).closed_form(K)
    names, sizes, exprs = [], [], [cf.loss, *cf.grad]
    for name, value in cf.extra.items():
        value = value if isinstance(value, list) else [value]
        names.append(name)
        sizes.append(len(value))
        exprs.extend(value)
    fn = cf.lambdify(exprs)

    def call(*inputs):
        out = [np.broadcast_to(np.asarray(v, np.float64), (B,)) for v in fn(*inputs)]
        loss, grad, rest = out[0], out[1:1 + len(cf.grad)], out[1 + len(cf.grad):]
        extras = {}
        for name, size in zip(names, sizes):
            part, rest = rest[:size], rest[size:]
            extras[name] = part[0] if size == 1 else np.stack(part, axis=-1)
        return loss, (np.stack(grad, axis=-1) if grad else None), extras
    return call


@functools.lru_cache(maxsize=None)
def code(name: str, variant: str = ""):
    """The code under test, jitted as a whole so that it compiles once per shape.

    Returns ``f(...) -> (rows, row gradients, reduced loss)``; rows are independent,
    so the VJP with a cotangent of ones gives each row's gradient.
    """
    recipe = RECIPES.get(name)

    if name == "fastreid" and variant == "adaptive":
        def f(z, y, a):
            rows, vjp = jax.vjp(lambda x: recipe.per_example(x, y, epsilon=-1.0, alpha=a), z)
            return rows, vjp(jnp.ones_like(rows))[0], recipe.loss(z, y, epsilon=-1.0, alpha=a)
    elif name == "tf_onehot":
        def f(z, Y, eps):
            rows, vjp = jax.vjp(lambda x, lab: recipe.per_example(x, lab, epsilon=eps), z, Y)
            return rows, vjp(jnp.ones_like(rows)), recipe.loss(z, Y, epsilon=eps)
    elif name == "distillation":
        def f(s, t, temperature):
            rows, vjp = jax.vjp(lambda a, b: recipe.per_example(a, b, temperature=temperature), s, t)
            return rows, vjp(jnp.ones_like(rows)), recipe.loss(s, t, temperature=temperature)
    elif name == "self_correction":
        def f(z, y, a, eps):
            total, vjp = jax.vjp(lambda x: self_correction_loss(x, y, alpha=a, epsilon=eps), z)
            weights = self_correction_weights(jax.nn.softmax(z, axis=-1), y, alpha=a)
            return weights, vjp(jnp.ones_like(total))[0], total
    else:
        def f(z, y, eps):
            rows, vjp = jax.vjp(lambda x: recipe.per_example(x, y, epsilon=eps), z)
            return rows, vjp(jnp.ones_like(rows))[0], recipe.loss(z, y, epsilon=eps)
    return jax.jit(f)


@jax.jit
def _fastreid_true_gradient(z, y, a):
    """∂/∂z of the adaptive fast-reid loss differentiated *through* ε_i = α·p_y (no stop-gradient)."""
    def total(x):
        k = x.shape[-1]
        logp = jax.nn.log_softmax(x, axis=-1)
        e = a * jnp.exp(jnp.take_along_axis(logp, y[:, None], axis=-1))[:, 0]
        zy = jnp.take_along_axis(x, y[:, None], axis=-1)[:, 0]
        lse = jax.nn.logsumexp(x, axis=-1)
        return jnp.sum(lse - (1 - e) * zy - e / (k - 1) * (x.sum(-1) - zy))
    return jax.grad(total)(z)


def close(actual, expected, scale=1.0, what=""):
    actual, expected = np.asarray(actual, np.float64), np.asarray(expected, np.float64)
    assert actual.shape == expected.shape, (what, actual.shape, expected.shape)
    err = np.abs(actual - expected)
    bound = RTOL * (np.abs(expected) + scale)
    assert np.all(err <= bound), (
        f"{what}: max error {err.max():.3e}, max relative {np.max(err / (np.abs(expected) + scale)):.3e}"
    )


@st.composite
def int_batch(draw):
    K = draw(st.sampled_from(KS))
    z = draw(arrays(np.float64, (B, K), elements=floats(-20, 20)))
    y = draw(arrays(np.int32, (B,), elements=st.integers(0, K - 1)))
    eps = draw(floats(0, 1))
    return K, z, y, eps


def onehot(y, K):
    return np.eye(K)[y]


# --------------------------------------------------------------------------
# integer-label recipes with a fixed target q = a·onehot(y) + b
# --------------------------------------------------------------------------

FIXED = ["uniform", "off_target", "fastai", "speech_transformer", "fastreid"]


@pytest.mark.parametrize("name", FIXED)
@SETTINGS
@given(batch=int_batch())
def test_fixed_target_recipes_match_the_proven_closed_form(name, batch):
    K, z, y, eps = batch
    want_rows, want_grad, _ = proven(name, K)(z, onehot(y, K), eps)
    scale = 1 + np.abs(z).max()
    with jax.enable_x64(True):
        rows, grad, total = code(name)(jnp.asarray(z), jnp.asarray(y), eps)
    assert rows.dtype == jnp.float64
    close(rows, want_rows, scale, f"{name} per_example")
    close(grad, want_grad, 1.0, f"{name} gradient")
    # The published reduction: a mean, except fast-reid's Σ / #non-zero rows.
    count = max(int(np.sum(np.asarray(rows) != 0)), 1) if name == "fastreid" else B
    close(total, want_rows.sum() / count, scale, f"{name} loss")


# --------------------------------------------------------------------------
# fast-reid adaptive ε = α·p_y (stop-gradient)
# --------------------------------------------------------------------------


@SETTINGS
@given(batch=int_batch(), a=floats(0, 1))
def test_fastreid_adaptive_matches_the_stop_gradient_closed_form(batch, a):
    K, z, y, _ = batch
    want_rows, want_grad, extra = proven("fastreid", K, "adaptive")(z, onehot(y, K), a)
    scale = 1 + np.abs(z).max()
    with jax.enable_x64(True):
        zj, yj = jnp.asarray(z), jnp.asarray(y)
        rows, grad, total = code("fastreid", "adaptive")(zj, yj, a)
        true_grad = _fastreid_true_gradient(zj, yj, a)
    close(rows, want_rows, scale, "fastreid adaptive per_example")
    close(grad, want_grad, 1.0, "fastreid adaptive gradient (stop-gradient, what the code computes)")
    close(true_grad, extra["full_grad"], scale, "fastreid adaptive full derivative (autodiff without stop-gradient)")
    count = max(int(np.sum(np.asarray(rows) != 0)), 1)
    close(total, want_rows.sum() / count, scale, "fastreid adaptive loss")


# --------------------------------------------------------------------------
# tf_onehot: dense (one-hot or soft) labels
# --------------------------------------------------------------------------


@SETTINGS
@given(batch=int_batch(), soft=st.booleans(), data=st.data())
def test_tf_onehot_matches_the_proven_closed_form(batch, soft, data):
    K, z, y, eps = batch
    Y = data.draw(arrays(np.float64, (B, K), elements=floats(0, 1))) if soft else onehot(y, K)
    want_rows, want_grad, extra = proven("tf_onehot", K)(z, Y, eps)
    mass = 1 + Y.sum(-1).max()
    scale = (1 + np.abs(z).max()) * mass
    with jax.enable_x64(True):
        rows, (grad, label_grad), total = code("tf_onehot")(jnp.asarray(z), jnp.asarray(Y), eps)
    close(rows, want_rows, scale, "tf_onehot per_example")
    close(grad, want_grad, mass, "tf_onehot gradient")
    close(label_grad, extra["label_grad"], scale, "tf_onehot label gradient")
    close(total, want_rows.mean(), scale, "tf_onehot loss")


# --------------------------------------------------------------------------
# distillation
# --------------------------------------------------------------------------


@SETTINGS
@given(batch=int_batch(), data=st.data(), temperature=floats(0.5, 10))
def test_distillation_matches_the_proven_closed_form(batch, data, temperature):
    K, s, _, _ = batch
    t = data.draw(arrays(np.float64, (B, K), elements=floats(-20, 20)))
    want_rows, want_grad, extra = proven("distillation", K)(s, t, temperature)
    scale = (1 + max(np.abs(s).max(), np.abs(t).max())) * max(temperature, 1.0)
    with jax.enable_x64(True):
        rows, (grad, teacher), total = code("distillation")(jnp.asarray(s), jnp.asarray(t), temperature)
    close(rows, want_rows, scale, "distillation per_example")
    # Per example, before the batch division: ∂L_i/∂s_i = T·(p_i − q_i) ...
    close(grad, want_grad, scale, "distillation student gradient T(p - q)")
    close(teacher, extra["teacher_grad"], scale, "distillation teacher gradient")
    # ... and the loss is batchmean, Σ_i L_i / B (so its gradient is T·(p − q)/B).
    close(total, want_rows.sum() / B, scale, "distillation loss (batchmean)")


# --------------------------------------------------------------------------
# self-correction weights and the reweighted loss
# --------------------------------------------------------------------------


@SETTINGS
@given(batch=int_batch(), a=floats(0, 1))
def test_self_correction_matches_the_proven_weights(batch, a):
    K, z, y, eps = batch
    want_rows, want_grad, extra = proven("self_correction", K)(z, onehot(y, K), eps, a)
    scale = (1 + np.abs(z).max()) * (1 + 25 * a)  # |w| ≤ 1 + α·log(1e10)
    with jax.enable_x64(True):
        zj, yj = jnp.asarray(z), jnp.asarray(y)
        weights, grad, total = code("self_correction")(zj, yj, a, eps)
        probs = np.asarray(jax.nn.softmax(zj, axis=-1))
    want_w, _, _ = proven("self_correction", K, "weight")(probs, onehot(y, K), a)
    close(weights, want_w, 1.0, "self_correction weights (from probabilities)")
    close(weights, extra["weight"], 1.0, "self_correction weights (from logits)")
    close(total, want_rows.mean(), scale, "self_correction loss")
    close(grad, want_grad / B, 1 + 25 * a, "self_correction gradient (weights held constant)")


def test_self_correction_weight_turns_negative_below_the_proven_threshold():
    alpha = 0.1
    threshold = float(np.exp(-1 / alpha)) - 1e-10  # proofs.self_correction.published_floor_threshold
    probs = np.array([[threshold * 0.99, 1 - threshold * 0.99], [threshold * 1.01, 1 - threshold * 1.01]])
    with jax.enable_x64(True):
        w = np.asarray(self_correction_weights(jnp.asarray(probs), jnp.array([0, 0]), alpha=alpha))
    assert w[0] < 0 < w[1]
