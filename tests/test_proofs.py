"""The SymPy proofs under ``proofs/``: the checker, the theorems, the certificate.

``test_proofs_tie.py`` ties the proven closed forms to the JAX code; this file
checks that the theorems are proved, that the checker refuses wrong claims,
that the exported closed forms are the derivatives they claim to be, and that
``python -m lsbench verify`` writes its certificate and tables.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

# An editable install made before proofs/ had an __init__.py maps ``proofs`` to a
# namespace package; putting the repository first makes plain ``pytest`` find the package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pytest
import sympy as sp

import proofs
from proofs.code import ROOT
from lsbench import cli
from lsbench.commands import verify
from lsbench.losses import RECIPES
from proofs import kernel as kn
from proofs import distillation, fastreid, self_correction, speech_transformer, uniform
from proofs.kernel import K, Row, Theorem, eps, holds, idx, zero

# --------------------------------------------------------------------------
# the whole run, once (it is also the CLI test)
# --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def verified(tmp_path_factory):
    out = tmp_path_factory.mktemp("paper")
    t0 = time.perf_counter()
    rc = cli.main(["verify", "--out-dir", str(out), "--quiet"])
    return rc, out, json.loads((out / "results" / "proofs.json").read_text()), time.perf_counter() - t0


def test_verify_proves_every_theorem_and_writes_the_certificate(verified):
    rc, out, cert, seconds = verified
    assert rc == 0
    assert cert["schema"] == verify.SCHEMA
    t = cert["totals"]
    assert t["failed"] == 0 and t["proved"] == t["theorems"] == len(cert["theorems"])
    assert t["theorems"] >= 30
    assert t["symbolic"] > (t["theorems"] - t["code"]) / 2  # the majority of the maths for symbolic K
    assert t["symbolic"] + t["instances"] + t["code"] == t["proved"]
    assert t["code"] >= 30 and cert["code_ks"] == [2, 5]
    code = {(th["recipe"], th["name"]) for th in cert["theorems"] if th["method"] == "code"}
    for recipe in proofs.MODULES:  # every recipe's plain path, float32 and bfloat16
        assert {(recipe, "code_fused_float32"), (recipe, "code_fused_bfloat16")} <= code, recipe
    for recipe in ("uniform", "off_target", "fastai", "speech_transformer", "fastreid"):
        assert (recipe, "code_chunked_float32") in code and (recipe, "code_chunked_bfloat16") in code
    assert {("uniform", "code_linear_float32"), ("off_target", "code_linear_float32")} <= code
    assert {("uniform", "code_vocab_float32"), ("off_target", "code_vocab_float32")} <= code
    losses = {p.relative_to(ROOT).as_posix() for p in (ROOT / "lsbench" / "losses").rglob("*.py")}
    assert {"lsbench/losses/primitives.py", "lsbench/losses/recipes/uniform.py"} <= losses
    assert set(cert["sources"]) >= losses | {"proofs/jaxpr.py", "proofs/kernel.py"}
    assert len(cert["sources_sha256"]) == 64
    assert cert["complete"] and cert["recipes"] == list(proofs.MODULES)
    assert set(cert["per_recipe"]) == set(proofs.MODULES)
    assert all(c["theorems"] >= 4 for c in cert["per_recipe"].values())
    assert cert["sympy"] == sp.__version__
    assert set(cert["git"]) == {"commit", "dirty"}
    assert cert["instance_ks"] == [2, 16]
    for th in cert["theorems"]:
        assert set(th) >= {"recipe", "name", "statement", "assumptions", "method", "status", "seconds",
                           "claims", "finding", "note", "detail"}
        assert th["method"] in ("symbolic", "instances", "code") and th["status"] == "proved" and th["claims"] >= 1
    # the recorded run time is the run's own (no speed target here: verify's time is a figure
    # the certificate records, not something a unit test on an unknown machine can hold)
    assert 0 < t["seconds"] <= seconds
    assert sum(th["seconds"] for th in cert["theorems"]) <= t["seconds"] + 1


def test_verify_writes_the_tables_atomically(verified):
    _, out, cert, _ = verified
    tex = (out / "tables" / "proofs.tex").read_text()
    md = (out / "tables" / "proofs.md").read_text()
    for word in (r"\toprule", r"\midrule", r"\bottomrule", r"\begin{longtable}", r"\texttt{speech\_transformer}"):
        assert word in tex
    rows = [line for line in tex.splitlines() if line.startswith(r"\quad\texttt{")]
    assert len(rows) == cert["totals"]["theorems"] and all(line.endswith(r"\\") for line in rows)
    assert tex.count(r"\multicolumn{5}") == len(cert["recipes"])  # one heading per recipe
    assert md.count("\n| `") == cert["totals"]["theorems"]
    leftovers = [p.name for p in out.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp")]
    assert leftovers == []


def test_the_issue_s_named_theorems_are_all_there(verified):
    _, _, cert, _ = verified
    names = {(t["recipe"], t["name"]) for t in cert["theorems"]}
    for recipe in ("uniform", "off_target", "speech_transformer", "distillation", "tf_onehot"):
        assert (recipe, "target_mass") in names
    for recipe in ("uniform", "off_target", "fastai", "tf_onehot", "fastreid", "speech_transformer", "distillation"):
        assert (recipe, "closed_form") in names
    assert {("fastai", "equals_uniform"), ("tf_onehot", "onehot_equals_uniform"), ("off_target", "equals_uniform"),
            ("speech_transformer", "uniform_plus_log_p"), ("fastreid", "gradient_stop_gradient"),
            ("fastreid", "adaptive_full_gradient"), ("uniform", "optimal_logit_gap"), ("uniform", "minimum_loss"),
            ("uniform", "minimum_positive"), ("speech_transformer", "optimum"),
            ("distillation", "student_gradient"), ("distillation", "high_temperature_zero_mean"),
            ("self_correction", "negative_weight_region")} <= names
    findings = {(t["recipe"], t["name"]) for t in cert["theorems"] if t["finding"]}
    assert ("speech_transformer", "target_mass") in findings
    assert ("fastreid", "adaptive_dropped_term_nonzero") in findings


def test_verify_subset_and_failure_exit_status(tmp_path, monkeypatch):
    rc = cli.main(["verify", "--recipe", "fastai", "--out-dir", str(tmp_path), "--quiet", "--no-code"])
    cert = json.loads((tmp_path / "results" / "proofs.json").read_text())
    assert rc == 0 and cert["recipes"] == ["fastai"] and not cert["complete"]
    assert "code" not in cert["totals"] and "code_ks" not in cert
    assert {t["recipe"] for t in cert["theorems"]} == {"fastai"}

    row = Row.split()
    wrong = Theorem("fastai", "wrong_mass", r"\sum_j q_j = 1",
                    lambda: [zero(row.sum(lambda j: (1 - eps) * row.onehot(j) + eps / (K + 1)) - 1)])
    monkeypatch.setattr(proofs.module("fastai"), "theorems", lambda: [wrong])
    rc = cli.main(["verify", "--recipe", "fastai", "--out-dir", str(tmp_path), "--quiet", "--no-code"])
    cert = json.loads((tmp_path / "results" / "proofs.json").read_text())
    assert rc == 1
    assert cert["totals"]["failed"] == 1 and cert["theorems"][0]["status"] == "failed"
    assert cert["theorems"][0]["method"] == "none" and cert["theorems"][0]["detail"]


def test_verify_rejects_an_unknown_recipe(tmp_path, capsys):
    assert cli.main(["verify", "--recipe", "nope", "--out-dir", str(tmp_path), "--quiet"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


def test_every_recipe_points_at_its_proof_module():
    for name, recipe in RECIPES.items():
        assert recipe.proof == f"proofs.{name}"
    assert set(proofs.MODULES) == set(RECIPES) | {"self_correction"}
    for name in proofs.MODULES:
        mod = proofs.module(name)
        assert mod.RECIPE == name and callable(mod.theorems) and callable(mod.closed_form)
        assert all(th.recipe == name for th in mod.theorems())


# --------------------------------------------------------------------------
# the checker must be able to fail
# --------------------------------------------------------------------------


def _refused(*claims, **kw):
    th = Theorem("test", "wrong", "", lambda: list(claims), **kw)
    res = kn.check_theorem(th, timeout=60)
    return res.status == "failed" and res.method == "none"


def test_checker_refuses_eps_over_k_plus_one_spreading():
    row = Row.split()
    q = lambda j: (1 - eps) * row.onehot(j) + eps / (K + 1)
    assert _refused(zero(row.sum(q) - 1, "mass"))
    assert _refused(zero(kn.cross_entropy(row, q) - uniform.loss(row), "closed form"))
    wrong_closed = row.lse() - (1 - eps) * row.v("z", "y") - eps / (K + 1) * row.S()
    assert _refused(zero(kn.cross_entropy(row, lambda j: uniform.q(row, j)) - wrong_closed))


def test_checker_refuses_a_gradient_missing_the_mass_factor():
    row = Row.split()
    q = lambda j: speech_transformer.q(row, j)
    L = kn.cross_entropy(row, q)
    assert _refused(*kn.gradient_claims(row, L, lambda j: row.p(j) - q(j)))
    assert not _refused(*kn.gradient_claims(row, L, lambda j: speech_transformer.grad(row, j)))


def test_checker_refuses_speech_transformer_mass_one():
    row = Row.split()
    assert _refused(zero(row.sum(lambda j: speech_transformer.q(row, j)) - 1))
    assert _refused(zero(speech_transformer.loss(row) - uniform.loss(row)))


def test_checker_refuses_wrong_limits_thresholds_and_inequalities():
    row = Row.split(distillation.FAMILIES, keys=("k",), label=None)
    g = (distillation.grad(row, "k") / kn.T).xreplace({kn.T: 1 / kn.u})
    assert _refused(*distillation.limit_claims(g, 1, (row.v("s", "k") - row.v("t", "k")) / (K + 1), "wrong"))
    a = sp.Symbol("alpha", positive=True)
    assert _refused(zero(self_correction.weight(sp.exp(-2 / a), a, 0)))
    split = Row.split()
    assert _refused(holds(kn.entropy(split, lambda j: uniform.q(split, j)) < 0))
    assert _refused(holds(sp.Symbol("x", real=True) > 0))
    assert _refused(zero(sp.Symbol("x") - sp.Symbol("y")))


def test_checker_reports_derivation_errors_and_timeouts_as_failures():
    def boom():
        raise ValueError("derivation broke")
    res = kn.check_theorem(Theorem("test", "boom", "", boom))
    assert res.status == "failed" and "derivation broke" in res.detail
    res = kn.check_theorem(Theorem("test", "slow", "", lambda: time.sleep(5) or []), timeout=0.3)
    assert res.status == "failed" and "timed out" in res.detail and res.seconds < 3


def test_instances_fallback_is_recorded_as_instances_never_symbolic():
    i = sp.Symbol("j", integer=True, positive=True)
    telescoping = sp.Sum(1 / (i * (i + 1)), (i, 1, K - 1)) - (1 - 1 / K)  # true, but not linear
    res = kn.check_theorem(Theorem("test", "telescoping", "", lambda: [zero(telescoping)]))
    assert (res.status, res.method) == ("proved", "instances")
    false_for_k3 = sp.Sum(1 / i**2, (i, 1, K - 1)) - (1 - 1 / K)
    assert _refused(zero(false_for_k3))
    assert _refused(zero(telescoping), allow_instances=False)
    assert _refused(zero(telescoping, instances=False))


def test_linearize_is_linearity_of_finite_sums():
    x = sp.IndexedBase("x", real=True)
    a, b = sp.symbols("a b", real=True)
    s = sp.Sum(a * x[idx] + b, (idx, 1, K - 2))
    assert sp.expand(kn.linearize(s) - (a * sp.Sum(x[idx], (idx, 1, K - 2)) + b * (K - 2))) == 0


# --------------------------------------------------------------------------
# the exported closed forms are the proven derivatives
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["uniform", "off_target", "fastai", "tf_onehot", "fastreid",
                                  "speech_transformer", "distillation"])
def test_closed_form_gradient_is_the_derivative_of_the_closed_form_loss(name):
    for k in (2, 3):
        cf = proofs.module(name).closed_form(k)
        logits = list(cf.inputs.values())[0]
        assert len(cf.grad) == k == len(logits)
        for z_j, g_j in zip(logits, cf.grad):
            assert kn._is_zero(sp.diff(cf.loss, z_j) - g_j), (name, k, z_j)
        if name == "distillation":
            for t_j, g_j in zip(cf.inputs["teacher"], cf.extra["teacher_grad"]):
                assert kn._is_zero(sp.diff(cf.loss, t_j) - g_j)
        if name == "tf_onehot":
            for y_j, g_j in zip(cf.inputs["labels"], cf.extra["label_grad"]):
                assert kn._is_zero(sp.diff(cf.loss, y_j) - g_j)


def test_fastreid_adaptive_closed_form_separates_the_stop_gradient():
    cf = fastreid.closed_form(3, adaptive=True)
    z, o = cf.inputs["logits"], cf.inputs["onehot"]
    onehot = {o[0]: 1, o[1]: 0, o[2]: 0}
    e = sp.Symbol("e_const")
    frozen = fastreid.loss(Row.concrete(3), e)  # ε_i held constant
    for j in range(3):
        full = sp.diff(cf.loss, z[j]).xreplace(onehot)
        assert kn._is_zero(full - cf.extra["full_grad"][j].xreplace(onehot))
        stop = sp.diff(frozen, sp.Symbol(f"z_{j}", real=True)).xreplace({e: fastreid.adaptive_eps(Row.concrete(3))})
        assert kn._is_zero((stop - cf.grad[j]).xreplace(onehot))
    assert not kn._is_zero((sp.diff(cf.loss, z[0]) - cf.grad[0]).xreplace(onehot))


def test_self_correction_closed_form_holds_the_weights_constant():
    cf = self_correction.closed_form(3)
    w = cf.extra["weight"]
    u_cf = uniform.closed_form(3)
    for j in range(3):
        assert kn._is_zero(cf.grad[j] - w * u_cf.grad[j])
    assert kn._is_zero(cf.loss - w * u_cf.loss)


def test_closed_form_lambdify_evaluates_batches():
    import numpy as np

    cf = uniform.closed_form(4)
    f = cf.lambdify()
    z = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 1.0, 1.0]])
    o = np.eye(4)[[3, 0]]
    loss, grad = f(z, o, 0.1)
    lse = np.log(np.exp(z).sum(-1))
    q = 0.9 * o + 0.1 / 4
    np.testing.assert_allclose(loss, -(q * (z - lse[:, None])).sum(-1), rtol=1e-13)
    np.testing.assert_allclose(grad, np.exp(z - lse[:, None]) - q, atol=1e-15)
