r"""The code theorems of the recipes in ``RECIPES`` and of ``self_correction_loss``.

Each recipe is described by a :class:`Spec`: its dense per-row definition
built from ``proofs.<recipe>``, its published reduction, its traced
parameters, and the masking it supports. :func:`int_claims` traces the code
through one caller (the plain recipe here; ``chunked`` in
:mod:`proofs.code_paths`) and compares per-example losses, the loss and the
gradient with the spec (see :mod:`proofs.code` for what is proved).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import numpy as np
import sympy as sp

from proofs import code as cd
from proofs import distillation as p_distillation
from proofs import fairseq as p_fairseq
from proofs import fairseq_v0_10 as p_fairseq_v0_10
from proofs import fastai as p_fastai
from proofs import fastreid as p_fastreid
from proofs import flax_kl as p_flax_kl
from proofs import hf_label_smoother as p_hf_label_smoother
from proofs import kernel as kn
from proofs import off_target as p_off_target
from proofs import opennmt as p_opennmt
from proofs import self_correction as p_self_correction
from proofs import speech_transformer as p_speech
from proofs import tf_onehot as p_tf_onehot
from proofs import uniform as p_uniform
from proofs.kernel import Row
from proofs import binary as p_binary  # issue 17: the sigmoid recipes' specs
from proofs import keras_binary as p_keras_binary
from proofs import label_relaxation as p_label_relaxation
from proofs import mmpretrain_multilabel as p_mmpretrain
from proofs import poly as p_poly
from proofs import timm_binary as p_timm_binary

DTYPES = ("float32", "bfloat16")
EPS_NONNEGATIVE = sp.Symbol("varepsilon", nonnegative=True)  #: fast-reid's fixed ε (ε ≥ 0 selects it)
EPS_ADAPTIVE = -sp.Symbol("e", positive=True)  #: fast-reid's ε < 0 (selects adaptive ε_i = α p_y)
Z_LOSS = sp.Symbol("lambda_z", real=True)


def weight_symbols(K: int) -> np.ndarray:
    return cd.symbols("omega", (K,), positive=True)


# --------------------------------------------------------------------------
# dense definitions (from proofs.<recipe>)
# --------------------------------------------------------------------------


def ce(row: Row, q: Callable) -> sp.Expr:
    return kn.cross_entropy(row, q)


def label_weight(row: Row, w) -> sp.Expr:
    """``w_y`` on a concrete row (``Σ_j o_j w_j``)."""
    return sp.Add(*[row.onehot(j) * w[j] for j in row.keys])


def mean(rows, b: cd.Batch, p) -> sp.Expr:
    kept = [r for r, k in zip(rows, b.kept) if k]
    return sp.Add(*kept) / max(len(kept), 1)


def weighted_mean(rows, b: cd.Batch, p) -> sp.Expr:
    w = p["weight"]
    norm = sp.Add(*[w[lab] for lab, k in zip(b.labels, b.kept) if k])
    return sp.Add(*[r for r, k in zip(rows, b.kept) if k]) / norm


@dataclasses.dataclass(frozen=True)
class Spec:
    """What an integer-label recipe computes, for the code theorems.

    ``row_loss(row, params)`` returns ``(expr, stopped)``: the dense per-row loss on a
    concrete row and the stop-gradient placeholders it uses (``{symbol: value}``);
    ``reduce(rows, batch, params)`` the published reduction of the per-row losses;
    ``params`` maps each traced parameter to ``(symbolic value(K), example value(K))``;
    ``grad_params`` the parameters the gradient is also taken with respect to.
    """

    recipe: str
    variant: str
    row_loss: Callable
    reduce: Callable = mean
    params: dict = dataclasses.field(default_factory=dict)
    static: dict = dataclasses.field(default_factory=dict)  # non-traced keyword arguments
    ignore_index: int | None = cd.IGNORE
    where: bool = True
    grad_params: tuple = ()
    per_example: bool = True
    assume_nonzero: bool = False
    statement: str = ""
    assumptions: str = ""
    min_classes: int = 2  #: the smallest K the recipe accepts (the code theorems use the KS at or above it)
    branches: dict = dataclasses.field(default_factory=dict)  #: undecidable comparisons' stated outcomes (jaxpr)


EPS = {"epsilon": (lambda K: kn.eps, lambda K: 0.1)}


def _plain(module):
    return lambda row, p: (ce(row, lambda j: module.q(row, j, p["epsilon"])), {})


def _uniform_weight(row, p):
    return label_weight(row, p["weight"]) * ce(row, lambda j: p_uniform.q(row, j, p["epsilon"])), {}


def _uniform_torch(row, p):
    e, w = p["epsilon"], p["weight"]
    w_y = label_weight(row, w)
    return ce(row, lambda j: (1 - e) * w_y * row.onehot(j) + e / row.K * w[j]), {}


def _uniform_z_loss(row, p):
    return ce(row, lambda j: p_uniform.q(row, j, p["epsilon"])) + p["z_loss"] * row.lse() ** 2, {}


def _fastreid_fixed(row, p):
    return ce(row, lambda j: p_fastreid.q(row, j, p["epsilon"])), {}


SG_EPS = sp.Symbol("sg_eps_i", real=True)  #: fast-reid's ε_i = α·p_y under no_grad
SG_WEIGHT = sp.Symbol("sg_w_i", real=True)  #: the self-correction weight under stop_gradient


def _fastreid_adaptive(row, p):
    return ce(row, lambda j: p_fastreid.q(row, j, SG_EPS)), {SG_EPS: p_fastreid.adaptive_eps(row, p["alpha"])}


def _self_correction(row, p):
    p_y = sp.exp(row.target()) / row.E()
    return (SG_WEIGHT * ce(row, lambda j: p_uniform.q(row, j, p["epsilon"])),
            {SG_WEIGHT: p_self_correction.weight(p_y, p["alpha"])})


def summed(rows, b: cd.Batch, p) -> sp.Expr:
    """The published sum over the kept rows (fairseq, OpenNMT-py)."""
    return sp.Add(*[r for r, k in zip(rows, b.kept) if k])


OPENNMT_PAD = 1  #: the code theorems' padding index (a class of every K ≥ 3)
#: the published guard, exactly: the jaxpr interpreter reads the float32 literal 1e-20 as 10**-20
FLAX_GUARD = sp.Rational(1, 10**20)


def _flax_kl(row, p):
    return ce(row, lambda j: p_off_target.q(row, j, p["epsilon"])) - p_flax_kl.constant(row.K, p["epsilon"], FLAX_GUARD), {}


def _opennmt(row, p):
    e = p["epsilon"]
    return ce(row, lambda j: p_opennmt.q(row, j, e, OPENNMT_PAD)) - p_opennmt.entropy(row.K, e), {}


WEIGHT = {"weight": (weight_symbols, lambda K: np.ones(K, np.float32))}
ALPHA = {"alpha": (lambda K: kn.alpha, lambda K: 0.2)}
NONZERO = r"L_i \ne 0 \text{ on kept rows}"

SPECS = (
    Spec("uniform", "", _plain(p_uniform), params=EPS),
    Spec("uniform", "weight", _uniform_weight, weighted_mean, params={**EPS, **WEIGHT}),
    Spec("uniform", "torch_weight", _uniform_torch, weighted_mean, params={**EPS, **WEIGHT},
         static={"weight_mode": "torch"}, grad_params=("weight",)),
    Spec("uniform", "z_loss", _uniform_z_loss, params={**EPS, "z_loss": (lambda K: Z_LOSS, lambda K: 1e-4)}),
    Spec("off_target", "", _plain(p_off_target), params=EPS),
    Spec("fastai", "", lambda row, p: (p_fastai.literal(row, p["epsilon"]), {}), params=EPS),
    Spec("fastreid", "", _fastreid_fixed, params={"epsilon": (lambda K: EPS_NONNEGATIVE, lambda K: 0.1)},
         assume_nonzero=True, assumptions=NONZERO),
    Spec("fastreid", "adaptive", _fastreid_adaptive,
         params={"epsilon": (lambda K: EPS_ADAPTIVE, lambda K: -1.0), **ALPHA},
         assume_nonzero=True, assumptions=NONZERO + r",\ \varepsilon < 0"),
    Spec("fastreid", "adaptive_flag", _fastreid_adaptive,
         params={"epsilon": (lambda K: EPS_NONNEGATIVE, lambda K: 0.1), **ALPHA}, static={"adaptive": True},
         assume_nonzero=True, assumptions=NONZERO + r",\ \text{adaptive=True}"),
    Spec("speech_transformer", "", _plain(p_speech), params=EPS, ignore_index=-1),
    Spec("self_correction", "", _self_correction, params={**EPS, **ALPHA}, per_example=False),
    Spec("flax_kl", "", lambda row, p: _flax_kl(row, p), params=EPS),
    Spec("opennmt", "", lambda row, p: _opennmt(row, p), summed, params=EPS, ignore_index=OPENNMT_PAD,
         min_classes=3),
    Spec("hf_label_smoother", "", _plain(p_hf_label_smoother), params=EPS),
    Spec("fairseq_v0_10", "", _plain(p_fairseq_v0_10), summed, params=EPS),
    Spec("fairseq", "", _plain(p_fairseq), summed, params=EPS),
    Spec("timm_binary", "", p_binary.integer_spec_row(p_timm_binary.on_off), params=EPS),
    Spec("mmpretrain_multilabel", "", p_binary.integer_spec_row(p_mmpretrain.on_off), params=EPS),
    Spec("poly", "", lambda row, p: (p_poly.code_spec(row, p["epsilon"], p["poly"]), {}),
         params={**EPS, "poly": (lambda K: p_poly.C0, lambda K: 2.0)}),
    Spec("label_relaxation", "", lambda row, p: (p_label_relaxation.code_spec(row, p["epsilon"]), {}),
         params={"epsilon": (lambda K: p_label_relaxation.CODE_EPS, lambda K: 0.1)},
         branches=p_label_relaxation.CODE_BRANCHES_OUTSIDE, assumptions=p_label_relaxation.CODE_REGIME_OUTSIDE),
    Spec("label_relaxation", "inside", lambda row, p: (sp.Integer(0), {}),
         params={"epsilon": (lambda K: p_label_relaxation.CODE_EPS, lambda K: 0.1)},
         branches=p_label_relaxation.CODE_BRANCHES_INSIDE, assumptions=p_label_relaxation.CODE_REGIME_INSIDE),
)


def spec_named(recipe: str, variant: str = "") -> Spec:
    for s in SPECS:
        if s.recipe == recipe and s.variant == variant:
            return s
    raise KeyError(f"no code spec for {recipe!r} variant {variant!r}")


# --------------------------------------------------------------------------
# callers (the code under test)
# --------------------------------------------------------------------------


def plain_call(spec: Spec):
    """``kind -> f(logits, labels, **kwargs)``: ``RECIPES[recipe].per_example``/``.loss``."""
    from lsbench.losses import RECIPES, self_correction_loss

    def call(kind, logits, labels, **kw):
        if spec.recipe == "self_correction":
            return self_correction_loss(logits, labels, recipe="uniform", **kw)
        r = RECIPES[spec.recipe]
        if spec.recipe == "opennmt":  # its dropped label is padding_idx
            kw["padding_idx"] = kw.pop("ignore_index")
        return (r.per_example if kind == "per_example" else r.loss)(logits, labels, **kw)
    return call


# --------------------------------------------------------------------------
# the claims of one (spec, caller, K, dtype)
# --------------------------------------------------------------------------


def _row_specs(spec: Spec, b: cd.Batch, p: dict):
    row = cd.concrete_row(b.K)
    rows, stopped = [], {}
    for i, lab in enumerate(b.labels):
        if not b.kept[i]:
            rows.append(sp.Integer(0))
            continue
        expr, sg = spec.row_loss(row, p)
        values = {"z": list(b.Z[i]), "o": cd.onehot_values(b.K, lab if lab >= 0 else 0)}
        rename = {}
        for ph, val in sg.items():
            fresh = sp.Symbol(f"{ph.name}{i}", real=True)
            rename[ph] = fresh
            stopped[fresh] = cd.on_row(val, row, values)
        rows.append(cd.on_row(expr.xreplace(rename), row, values))
    return rows, stopped


def int_claims(spec: Spec, call, K: int, dtype: str, path: str, extra: dict | None = None, pad: int = 0) -> list:
    """Claims that the traced ``call`` equals ``spec`` for one K and dtype (see :mod:`proofs.code`).

    ``pad`` extra logit columns (a padded vocabulary) are fed to the code and must get zero gradient.
    """
    import jax
    import jax.numpy as jnp

    b = cd.Batch.make(K, where=spec.where, ignore_index=spec.ignore_index)
    names = list(spec.params)
    sym = {n: spec.params[n][0](K) for n in names}
    example = [spec.params[n][1](K) for n in names]
    labels = jnp.asarray(b.labels, jnp.int32)
    kw = dict(spec.static, **(extra or {}))
    if b.where is not None:
        kw["where"] = jnp.asarray(b.where)
    if spec.ignore_index is not None:
        kw["ignore_index"] = spec.ignore_index
    argnums = (0,) + tuple(1 + names.index(n) for n in spec.grad_params)

    def loss(z, *pv):
        return call("loss", z, labels, **kw, **dict(zip(names, pv)))

    def program(z, *pv):
        per = call("per_example", z, labels, **kw, **dict(zip(names, pv))) if spec.per_example else None
        return per, loss(z, *pv), jax.grad(loss, argnums=argnums)(z, *pv)

    z0 = jnp.zeros((len(b.labels), K + pad), jnp.dtype(dtype))
    logits = b.logs
    if pad:
        logits = np.concatenate([logits, np.vectorize(sp.log, otypes=[object])(
            cd.symbols("wpad", (len(b.labels), pad), positive=True))], axis=1)
    outs = cd.run(program, [z0, *example], [logits, *[sym[n] for n in names]],
                  assume_nonzero=spec.assume_nonzero, branches=spec.branches)
    rows, stopped = _row_specs(spec, b, sym)
    to_code = b.to_code()
    label = f"{spec.recipe}{'/' + spec.variant if spec.variant else ''} {path} {dtype} K={K}"
    claims = []
    i = 0
    if spec.per_example:
        per_spec = np.array([r.xreplace(stopped).xreplace(to_code) for r in rows], dtype=object)
        claims += cd.compare(outs[0], per_spec, f"{label} per_example")
        i = 1
    total = spec.reduce(rows, b, sym)
    claims += cd.compare(outs[i], np.array(total.xreplace(stopped).xreplace(to_code), dtype=object), f"{label} loss")
    wrt = [b.Z] + [np.asarray(sym[n], dtype=object) for n in spec.grad_params]
    grads = list(outs[i + 1:])
    if pad:
        claims += cd.compare(grads[0][:, K:], np.zeros((len(b.labels), pad), dtype=object), f"{label} grad[padding]")
        grads[0] = grads[0][:, :K]
    for name, g, v in zip(["logits", *spec.grad_params], grads, wrt):
        claims += cd.compare(g, cd.gradient_spec(total, v, stopped, to_code), f"{label} grad[{name}]")
    return claims


def int_theorem(spec: Spec, dtype: str, call=None, path: str = "fused", name: str | None = None,
                ks=cd.KS, extra=None) -> kn.Theorem:
    call = call or plain_call(spec)
    name = name or "code_" + "_".join(x for x in (spec.variant, path, dtype) if x)
    what = "self\\_correction\\_loss" if spec.recipe == "self_correction" else "per\\_example, loss"
    statement = (rf"\text{{jaxpr of {what}, grad ({path}, {dtype})}} = "
                 r"\text{dense spec } -\textstyle\sum_j q_j \log p_j \text{ and its derivative}")
    return cd.code_theorem(spec.recipe, name, statement,
                           lambda k: int_claims(spec, call, k, dtype, path, extra), spec.assumptions, ks)


# --------------------------------------------------------------------------
# tf_onehot (dense labels) and distillation (teacher logits)
# --------------------------------------------------------------------------

TF_FAMILIES = (("z", (("real", True),)), ("Y", (("nonnegative", True),)))
DISTILL_FAMILIES = (("s", (("real", True),)), ("t", (("real", True),)))


def tf_onehot_claims(K: int, dtype: str) -> list:
    import jax
    import jax.numpy as jnp

    from lsbench.losses import RECIPES

    r = RECIPES["tf_onehot"]
    b = cd.Batch.make(K, where=True)
    n = len(b.labels)
    Y = cd.symbols("Y", (n, K), nonnegative=True)
    where = jnp.asarray(b.where)
    e = kn.eps

    def program(z, y, eps):
        loss = lambda z, y: r.loss(z, y, epsilon=eps, where=where)
        return r.per_example(z, y, epsilon=eps, where=where), loss(z, y), jax.grad(loss, argnums=(0, 1))(z, y)

    z0 = jnp.zeros((n, K), jnp.dtype(dtype))
    outs = cd.run(program, [z0, jnp.zeros((n, K), jnp.float32), 0.1], [b.logs, Y, e],
                  branches=p_tf_onehot.CODE_BRANCHES)
    row = cd.concrete_row(K, TF_FAMILIES, onehot=False)
    L = ce(row, lambda j: p_tf_onehot.q(row, j, e))
    rows = [cd.on_row(L, row, {"z": list(b.Z[i]), "Y": list(Y[i])}) if b.kept[i] else sp.Integer(0)
            for i in range(n)]
    to_code = b.to_code()
    total = mean(rows, b, {})
    label = f"tf_onehot fused {dtype} K={K}"
    return (cd.compare(outs[0], np.array([x.xreplace(to_code) for x in rows], dtype=object), f"{label} per_example")
            + cd.compare(outs[1], np.array(total.xreplace(to_code), dtype=object), f"{label} loss")
            + cd.compare(outs[2], cd.gradient_spec(total, b.Z, {}, to_code), f"{label} grad[logits]")
            + cd.compare(outs[3], cd.gradient_spec(total, Y, {}, to_code), f"{label} grad[labels]"))


#: distillation's branches, decided as the regime the theorem states (DISTILL_REGIME): every
#: ``|a_j| > 1/2`` (``far = sign(max(|a| − 1/2, 0)) = 1``, ``min(1/(2|a|), 1)`` its first operand: the
#: exact forms ``e_t − w`` and ``w + (a − 1)·e_t``; the series for |a| ≤ 1/2 is bounded by
#: ``distillation.phi_series_bound``), ``|c| > 1/2`` (the exact ``expm1`` form of φ(−c)), the direct
#: ``p − q`` in the backward (not its product form for ``r ≤ 1``) and an inactive clamp ``max(KL, 0)``
DISTILL_BRANCHES = {("max", 0.0): 0, ("sign", 0.0): 1, ("min", 1.0): 0, ("le", 0.5): False, ("le", 1.0): False}
DISTILL_REGIME = (r"T > 0,\ |a_j| > \tfrac12 \text{ for all } j \text{ (the exact forms } e^{t_j/T} - e^{s_j/T},\ "
                  r"w_j h(a_j) = w_j + (a_j - 1) e^{t_j/T}),\ |c| > \tfrac12 \text{ (} \varphi(-c) = \mathrm{expm1}(c) - c),\ "
                  r"r_j > 1 \text{ (the direct } p - q),\ \max(\mathrm{KL}, 0) = \mathrm{KL};\ "
                  r"a = (t - s)/T \text{ (shifted)},\ c = \log(z_t/z_s),\ r = a - c"
                  r"\text{ (the series branch: phi\_series\_bound)}")
DISTILL_KS = (2,)  #: K for distillation's code theorems (K = 3 alone costs about a minute of verify)
#: K for which ∂L/∂T is checked too: none since the one-pass form (its K = 2 residual did not reduce
#: within 4 minutes); ∂L/∂T is checked numerically against autodiff of the naive form in float64
#: (tests/test_distillation.py)
TEMPERATURE_KS: tuple[int, ...] = ()


def distillation_claims(K: int, dtype: str) -> list:
    import jax
    import jax.numpy as jnp

    from lsbench.losses import RECIPES

    r = RECIPES["distillation"]
    n = K + 1  # the last row is masked by where
    keep = [True] * K + [False]
    where = jnp.asarray(keep)
    T = kn.T
    S, Tt = cd.symbols("s", (n, K), real=True), cd.symbols("t", (n, K), real=True)
    A, B = cd.symbols("a", (n, K), positive=True), cd.symbols("b", (n, K), positive=True)
    to_code = {**{S[ix]: T * sp.log(A[ix]) for ix in np.ndindex(n, K)},
               **{Tt[ix]: T * sp.log(B[ix]) for ix in np.ndindex(n, K)}}

    with_t = K in TEMPERATURE_KS

    def program(s, t, temp):
        loss = lambda s, t, temp: r.loss(s, t, temperature=temp, where=where)
        return (r.per_example(s, t, temperature=temp, where=where), loss(s, t, temp),
                jax.grad(loss, argnums=(0, 1, 2) if with_t else (0, 1))(s, t, temp))

    z0 = jnp.zeros((n, K), jnp.dtype(dtype))
    code_in = [np.vectorize(lambda v: v.xreplace(to_code), otypes=[object])(X) for X in (S, Tt)]
    outs = cd.run(program, [z0, z0, 2.0], [*code_in, T], branches=DISTILL_BRANCHES)
    row = cd.concrete_row(K, DISTILL_FAMILIES, onehot=False)
    L = T**2 * p_distillation.kl(row, T)
    rows = [cd.on_row(L, row, {"s": list(S[i]), "t": list(Tt[i])}) if keep[i] else sp.Integer(0) for i in range(n)]
    total = sp.Add(*rows[:K]) / K
    label = f"distillation fused {dtype} K={K}"
    same = functools.partial(cd.compare, decide=cd.is_exact_zero_exp)
    return (same(outs[0], np.array([x.xreplace(to_code) for x in rows], dtype=object), f"{label} per_example")
            + same(outs[1], np.array(total.xreplace(to_code), dtype=object), f"{label} loss")
            + same(outs[2], cd.gradient_spec(total, S, {}, to_code), f"{label} grad[student]")
            + same(outs[3], cd.gradient_spec(total, Tt, {}, to_code), f"{label} grad[teacher]")
            + (same(outs[4], cd.gradient_spec(total, np.array(T, dtype=object), {}, to_code),
                    f"{label} grad[temperature]") if with_t else []))


def theorems(recipes=None, dtypes=DTYPES, ks=cd.KS) -> list[kn.Theorem]:
    """The code theorems of the plain (fused) path of each recipe."""
    out = []
    for spec in SPECS:
        if recipes is not None and spec.recipe not in recipes:
            continue
        for dt in dtypes:
            if spec.variant and dt != "float32":
                continue  # the options share the row-statistics kernel checked in both dtypes
            out.append(int_theorem(spec, dt, ks=tuple(k for k in ks if k >= spec.min_classes) or (spec.min_classes,)))
    statement = r"\text{{jaxpr of per\_example, loss, grad ({}, {})}} = \text{{dense spec and its derivative}}"
    for dt in dtypes:
        if recipes is None or "tf_onehot" in recipes:
            out.append(cd.code_theorem("tf_onehot", f"code_fused_{dt}", statement.format("fused", dt),
                                       lambda k, dt=dt: tf_onehot_claims(k, dt), p_tf_onehot.CODE_REGIME, ks=ks))
        if recipes is None or "distillation" in recipes:
            dks = tuple(k for k in ks if k in DISTILL_KS) or ks[:1]
            out.append(cd.code_theorem("distillation", f"code_fused_{dt}", statement.format("fused", dt),
                                       lambda k, dt=dt: distillation_claims(k, dt), DISTILL_REGIME, ks=dks,
                                       note="exact branches (|a| > 1/2); gradients in student and teacher logits"
                                            + (f" and in T for K in {TEMPERATURE_KS}" if TEMPERATURE_KS else
                                               " (in T: tested numerically, not proved)")))
        if recipes is None or "keras_binary" in recipes:
            out.append(cd.code_theorem("keras_binary", f"code_fused_{dt}", statement.format("fused", dt),
                                       lambda k, dt=dt: p_binary.dense_code_claims("keras_binary", p_keras_binary.t,
                                                                                    k, dt), ks=ks))
    return out
