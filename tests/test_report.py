"""``python -m lsbench paper``: tables, figures and macros generated from recorded results.

Synthetic results files (built with the experiments' own aggregation code, so they follow
the documented schemas) stand in for the real ones; the committed tables are checked
against the committed results; the paper is compiled when ``latexmk`` is installed.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from lsbench.report import build
from lsbench.report.results import ResultsError, discover, read_json
from lsbench.report.tables import Table, short_hash, to_latex, to_markdown

REPO = Path(__file__).resolve().parents[1]
PAPER = REPO / "paper"

# --------------------------------------------------------------------------- synthetic results


def _theorem(recipe, name, finding=False, method="symbolic", status="proved", note=""):
    return {"recipe": recipe, "name": name, "statement": r"\sum_j q_j = 1", "assumptions": r"K \ge 2",
            "method": method, "status": status, "seconds": 0.125, "claims": 1, "finding": finding,
            "note": note, "detail": "" if status == "proved" else "did not reduce to 0"}


def make_proofs(path: Path) -> None:
    theorems = [_theorem("uniform", "target_mass"), _theorem("uniform", "closed_form", method="instances"),
                _theorem("off_target", "target_mass"),
                _theorem("speech_transformer", "target_mass", finding=True, note="not a distribution"),
                _theorem("speech_transformer", "code_vs_prose", finding=True, note="code differs from prose"),
                _theorem("fastreid", "adaptive_full_gradient"),
                _theorem("fastreid", "adaptive_dropped_term_nonzero", finding=True, note="dropped term"),
                _theorem("self_correction", "alpha_0_1_threshold", finding=True, note="negative below 4.5e-5"),
                _theorem("distillation", "closed_form", status="failed", method="none")]
    recipes = list(dict.fromkeys(t["recipe"] for t in theorems))
    totals = {"theorems": len(theorems), "proved": 8, "failed": 1, "symbolic": 7, "instances": 1,
              "findings": 4, "seconds": 1.125}
    cert = {"schema": "lsbench.proofs/1", "generated": "2026-01-01T00:00:00Z", "sympy": "1.14.0",
            "python": "3.12.0", "git": {"commit": "0" * 40, "dirty": False}, "command": "python -m lsbench verify",
            "recipes": recipes, "complete": False, "instance_ks": [2, 16], "totals": totals,
            "per_recipe": {}, "theorems": theorems}
    path.write_text(json.dumps(cert, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_pets(path: Path, profile: str = "frozen", names=("ce", "uniform", "off_target", "speech_transformer"),
              seeds=(0, 1, 2), splits=("official",), backbone: str = "efficientnet-lite0", margin: float = 3.0) -> None:
    """A synthetic ``pets-*.json``; ``margin`` sets how well the logits separate (lower: more error)."""
    from lsbench.experiments.pets import ANCHORS, RUN_SPECS, aggregate
    from lsbench.metrics import evaluate

    rng = np.random.default_rng(7)
    aggregates, statistics, identities, runs, ignored = {}, {}, {}, [], []
    for split in splits:
        split_runs = []
        for k, name in enumerate(names):
            for seed in seeds:
                y = rng.integers(0, 37, size=300)
                z = rng.normal(size=(300, 37)) * 1.5
                z[np.arange(300), y] += margin + 0.3 * k + 0.1 * seed
                spec = RUN_SPECS[name]
                split_runs.append({"schema": "lsbench/pets-run/2", "name": name, "split_name": split, "seed": seed,
                                   "loss": {"recipe": spec.recipe, "params": spec.loss_params(0.1)},
                                   "temperature": 1.3, "test": evaluate(z, y, temperature=1.3)})
        aggregates[split], split_ignored = aggregate(split_runs)
        runs += split_runs
        ignored += split_ignored
        statistics[split] = {n: {"error": {"delta": 0.001 * k, "ci": [-0.01, 0.01], "p_better": 0.4,
                                           "verdict": "inconclusive"}}
                             for k, n in enumerate(names) if n != "ce"}
        identities[split] = {}
    results = {
        "schema": "lsbench/pets-results/2", "experiment": "pets", "profile": profile, "claim": ANCHORS,
        "statistics": {"method": "test", "by_split": statistics}, "identities": identities,
        "common_key": "0" * 16,
        "config": {"profile": profile, "backbone": {"name": backbone, "frozen": True,
                                                    "pooling": "maxavg"},
                   "data": {"n_test": 300}},
        "recipes": {n: {"recipe": RUN_SPECS[n].recipe} for n in names}, "seeds": list(seeds),
        "runs": runs, "aggregates": aggregates, "ignored_runs": ignored,
        "invocation": {"status": "complete"},
    }
    path.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def make_bench(path: Path, machine: str = "cpu-test") -> None:
    """A bench file in the ``lsbench.bench/1`` schema of :mod:`lsbench.bench` (a few shapes)."""
    results = []
    for dtype in ("float32", "bfloat16"):
        for shape in ([64, 1000], [256, 1000], [64, 8192], [64, 32000]):
            n = shape[0] * shape[1]
            floor = n * 8 / 20e9
            t = {"ours": 1.3 * floor + 2e-5, "optax": 2.1 * floor + 3e-5, "torch": 3.0 * floor + 4e-5}
            def res(name, impl, mode, time, ratios=None, extra=None):
                return {"id": f"{impl}:{name}/{mode}/{dtype}/{shape}", "name": name, "impl": impl, "mode": mode,
                        "dtype": dtype, "shape": shape, "status": "ok", "note": None,
                        "time_s": {"median": time, "q1": time, "q3": time, "iqr": 0.0, "min": time, "mean": time,
                                   "rounds": 5},
                        "ratios": ratios or {}, "memory": {"xla": None if extra is None else
                                                           {"extra_bytes": int(extra * n * 4), "extra_ratio": extra},
                                                           "rss": None}}
            for recipe, slow in (("uniform", 1.0), ("off_target", 1.1)):
                tt = t["ours"] * slow
                results.append(res(recipe, "lsbench", "fwd+bwd", tt, {"read+write": tt / floor,
                                                                      "optax": tt / t["optax"],
                                                                      "torch": tt / t["torch"]}, 1.0))
            results.append(res("optax", "optax", "fwd+bwd", t["optax"]))
            results.append(res("torch", "torch", "fwd+bwd", t["torch"]))
            results.append(res("read+write", "floor", "floor", floor))
    results.append({**results[0], "status": "skipped", "time_s": None, "name": "fastai", "note": "skipped"})
    doc = {"schema": "lsbench.bench/1", "machine": machine, "created": "2026-01-01T00:00:00Z",
           "environment": {"cpu_model": "Test CPU", "cores": 2, "gpu": None},
           "settings": {"quick": False}, "results": results, "targets": []}
    path.write_text(json.dumps(doc, indent=1), encoding="utf-8")


def make_muller(dirpath: Path) -> None:
    from lsbench.metrics import paired_difference, summarize

    s = lambda *v: summarize(list(v))  # noqa: E731
    d = lambda a, b: paired_difference(dict(enumerate(a)), dict(enumerate(b)))  # noqa: E731
    config = {"data": {"n": 5000}, "split": {"held": 0.1, "test": 0.2}, "ece_bins": 15,
              "arch": {"kind": "mlp", "hidden": [1200, 1200]}, "student": {"kind": "mlp", "hidden": [800, 800]},
              "train": {"epochs": 8, "batch_size": 128}}
    common = {"schema": "lsbench/muller-results/1",
              "caveats": ["small data", "few seeds",
                          "pets was skipped: no pets feature cache: /srv/lsb/cache/features does not exist"],
              "verdict_rule": "the CI must exclude 0", "seeds": [0, 1, 2], "quick": False,
              "invocation": {"status": "complete"}}
    claim = lambda diff, verdict: {"description": "x", "direction": -1, "reference": "ce",  # noqa: E731
                                   "method": "uniform_0.1", "difference": diff, "verdict": verdict,
                                   "published": "-0.126"}
    metrics = lambda e: {"error": s(e, e + 0.01, e + 0.02), "ece": s(0.05, 0.06, 0.04),  # noqa: E731
                         "ece_ts": s(0.02, 0.03, 0.02), "temperature": s(1.2, 1.3, 1.1),
                         "heldout_ece": s(0.05, 0.05, 0.06)}
    cal = {**common, "experiment": "calibration",
           "published": {"rows": [{"setup": "ResNet-56 on CIFAR-100", "ece": 0.15, "ece_ts": 0.021,
                                   "temperature": 1.9, "ece_ls": 0.024, "alpha": 0.05}]},
           "verdict": {"verdict": "inconclusive", "per_dataset": {"mnist": "inconclusive"}},
           "datasets": {"mnist": {"status": "ok", "reason": None, "config": config,
                                  "specs": {"ce": {"seeds": [0, 1, 2], "metrics": metrics(0.03), "paired_vs_ce": None,
                                                   "recipe": "uniform", "params": {"epsilon": 0.0}},
                                            "uniform_0.1": {"recipe": "uniform", "params": {"epsilon": 0.1},
                                                            "seeds": [0, 1, 2], "metrics": metrics(0.025),
                                                            "paired_vs_ce": {"ece": d([0.05, 0.06, 0.04],
                                                                                      [0.06, 0.08, 0.05])}}},
                                  "alpha_star": {"spec": "uniform_0.1", "alpha": 0.1, "rule": "lowest held-out ECE"},
                                  "claims": {"ls_lowers_ece": claim(d([1, 2, 3], [2, 3, 5]), "reproduced")},
                                  "verdict": "reproduced"},
                        "pets": {"status": "skipped", "verdict": None,
                                 "reason": "no cached features in /root/.cache/lsbench/features (run pets first)"}}}
    dist = {**common, "experiment": "distillation", "beta": 0.6,
            "published": {"setup": "MNIST", "teacher_error": {"ce": 0.0067, "ls": 0.0059},
                          "student_error": {"ce": 0.0074, "ls": 0.0091}},
            "verdict": {"verdict": "not reproduced"},
            "datasets": {"mnist": {"status": "ok", "teachers": {"ce": {"metrics": {"error": s(0.02, 0.03, 0.025)}},
                                                                 "uniform_0.1": {"metrics": {"error": s(0.02, 0.02, 0.02)}}},
                                   "students": {n: {"T": {t: {"metrics": {"error": s(0.03, 0.031, 0.029)}}
                                                          for t in ("1", "4")}, "t_star": "4"}
                                                for n in ("ce", "uniform_0.1")},
                                   "student_none": {"metrics": {"error": s(0.04, 0.041, 0.039)}},
                                   "claims": {"ls_teacher_worse_teacher": claim(d([1, 2, 3], [2, 3, 5]),
                                                                                "not reproduced")}}}}
    rng = np.random.default_rng(3)
    panels = [{"spec": sp, "split": split, "coords": rng.normal(size=(30, 2)).round(4).tolist(),
               "labels": [i % 3 for i in range(30)], "templates": [[1, 0], [-0.5, 0.8], [-0.5, -0.8]]}
              for sp in ("ce", "uniform_0.1") for split in ("train", "test")]
    rep = {**common, "experiment": "representations", "published": {},
           "verdict": {"verdict": "inconclusive"},
           "datasets": {"mnist": {"status": "ok",
                                  "specs": {n: {"seeds": [0, 1, 2], "test": {"ratio": s(0.5, 0.6, 0.55),
                                                                              "between_cv": s(0.2, 0.25, 0.3)},
                                                "train": {"ratio": s(0.4, 0.45, 0.5)},
                                                "test_geometry": {"spread": s(0.3, 0.31, 0.32),
                                                                  "wrong_spread": s(0.1, 0.11, 0.12)},
                                                "train_geometry": {"spread": s(0.2, 0.21, 0.22)}}
                                            for n in ("ce", "uniform_0.1")},
                                  "claims": {"ls_tighter_clusters": claim(d([0.1, 0.2, 0.0], [0.1, 0.1, 0.1]),
                                                                           "inconclusive")},
                                  "supplementary_claims": {"ls_equidistant_centroids": claim(
                                      d([0.3, 0.31, 0.32], [0.2, 0.22, 0.21]), "reproduced")},
                                  "figure": {"seed": 0, "classes": [0, 1, 2], "class_names": ["a", "b", "c"],
                                             "panels": panels}}}}
    for name, data in (("calibration", cal), ("distillation", dist), ("representations", rep)):
        (dirpath / f"muller-{name}.json").write_text(json.dumps(data, indent=1), encoding="utf-8")


@pytest.fixture(scope="module")
def results_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("results")
    make_proofs(d / "proofs.json")
    make_pets(d / "pets-frozen.json")
    make_bench(d / "bench-cpu-test.json")
    make_muller(d)
    (d / "runs").mkdir()
    (d / "runs" / "ignored.json").write_text("not json")  # per-run records are not read
    return d


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(results_dir, tmp_path_factory):
    """One full generation (tables and images) from the synthetic results: ``(out_dir, outcome)``."""
    out_dir = tmp_path_factory.mktemp("paper")
    return out_dir, build.generate(results_dir, out_dir)


# --------------------------------------------------------------------------- generation


def test_every_results_file_gives_its_tables_and_figures(results_dir, generated):
    tmp_path, out = generated
    assert not out.errors
    for name in build.TABLES:
        assert (tmp_path / "tables" / f"{name}.tex").is_file(), name
        assert (tmp_path / "tables" / f"{name}.md").is_file(), name
    for name in build.FIGURES:
        assert (tmp_path / "figures" / f"{name}.tex").is_file(), name
    assert out.placeholders == ["tables/pets-fastai", "figures/reliability-fastai", "figures/ece-error-fastai",
                                "tables/pets-backbones"]
    for name in ("throughput", "reliability-frozen", "ece-error-frozen", "muller_representations"):
        assert (tmp_path / "figures" / f"{name}.pdf").read_bytes().startswith(b"%PDF")
        assert (tmp_path / "figures" / f"{name}.png").read_bytes().startswith(b"\x89PNG")
    # every caption cites its results file by short hash and the command that regenerates it
    pets_tex = (tmp_path / "tables" / "pets-frozen.tex").read_text()
    assert f"pets-frozen.json @ {short_hash(results_dir / 'pets-frozen.json')}" in pets_tex
    assert "python -m lsbench paper" in pets_tex
    bench_md = (tmp_path / "tables" / "throughput.md").read_text()
    assert f"bench-cpu-test.json @ {short_hash(results_dir / 'bench-cpu-test.json')}" in bench_md
    assert "efficientnet-lite0" in pets_tex and "profile frozen" in pets_tex
    snippet = (tmp_path / "figures" / "reliability-frozen.tex").read_text()
    assert "figures/reliability-frozen.pdf" in snippet and short_hash(results_dir / "pets-frozen.json") in snippet


def test_same_results_give_identical_bytes(results_dir, generated, tmp_path):
    a = _files(generated[0])
    shutil.copytree(generated[0], tmp_path / "again")
    build.generate(results_dir, tmp_path / "again")  # regenerating in place changes nothing
    build.generate(results_dir, tmp_path / "fresh")  # nor does generating from scratch
    for other in ("again", "fresh"):
        b = _files(tmp_path / other)
        assert sorted(a) == sorted(b)
        differ = [k for k in a if a[k] != b[k]]
        assert not differ, f"not deterministic: {differ}"
    # tables and snippets do not depend on whether the images are drawn
    build.generate(results_dir, tmp_path / "tables-only", figures=False)
    c = _files(tmp_path / "tables-only")
    assert c and all(a[k] == v for k, v in c.items())


def test_table_contents(results_dir, tmp_path):
    build.generate(results_dir, tmp_path, figures=False)
    t = lambda n: (tmp_path / "tables" / f"{n}.md").read_text()  # noqa: E731
    cat = t("catalogue")
    for col in ("optax", "PyTorch", "fastai", "fast-reid", "timm", "Keras", "Liger"):
        assert f" {col} |" in cat
    assert "| uniform |" in cat and "2/2 (1 symbolic, 1 instances)" in cat
    assert "0/1, 1 failed" in cat  # distillation's failed theorem
    ver = t("verification")
    assert "| all | 9 | 8 | 7 | 1 | 1 | 4 |" in ver
    find = t("findings")
    assert "target_mass, code_vs_prose" in find and "adaptive_full_gradient, adaptive_dropped_term_nonzero" in find
    assert "no theorem in proofs.json" in find  # distillation: the certificate records none
    pets = t("pets-frozen")
    assert "| ce | official | 3 |" in pets and "(baseline)" in pets and " ? " in pets
    assert "5.7–7.3" in pets and "7.5 (reported)" in pets  # the anchors, from the results file
    thr = t("throughput")
    assert "64×8192" in thr and "| uniform |" in thr and "| off_target |" in thr
    assert "| time | × floor | × optax | × PyTorch | extra mem. |" in thr
    assert "| 53.3 µs | 2.08× | 0.64× | 0.46× | 1.00× |" in thr
    assert "cpu-test (Test CPU, 2 cores), bfloat16" in thr
    gathered = (tmp_path / "tables" / "throughput.tex").read_text()
    assert r"\input{tables/throughput-cpu-test-float32}" in gathered
    assert r"\input{tables/throughput-cpu-test-bfloat16}" in gathered
    ver_m = t("muller-verdicts")
    assert "reproduced" in ver_m and "| skipped |" in ver_m and "pets: skipped, no cached features" in ver_m
    assert "Caveat: small data" in ver_m
    # no machine-specific absolute path in any generated table (the skipped reason names the cache)
    assert "pets: skipped, no cached features in ~/.cache/lsbench/features (run pets first)" in ver_m
    assert "no pets feature cache: …/features does not exist" in ver_m
    for f in (tmp_path / "tables").iterdir():
        text = f.read_text()
        assert "/root" not in text and "/home/" not in text, f.name
    rep = t("muller-representations")
    assert "| mnist | template subspace | ce | 3 | 0.310 ± 0.025 | 0.110 ± 0.025 | 0.210 ± 0.025 |" in rep
    assert "|  | full penultimate (suppl.) | ce | 3 | 0.550 ± 0.124 | 0.250 ± 0.124 | 0.450 ± 0.124 |" in rep
    assert "|  |  | Δ uniform_0.1 − ce |  | +0.000 ± 0.248 | – | – |" in rep
    assert "|  |  | Δ uniform_0.1 − ce |  | – | +0.100 ± 0.025* | – |" in rep  # the supplementary claim
    assert ("Supplementary sub-claims (full penultimate space, same rule, not part of the verdict): mnist: "
            "ls_equidistant_centroids +0.100 ± 0.025 (reproduced).") in rep
    assert "The full-penultimate-space sub-claims are supplementary and not part of any verdict" in ver_m
    assert "ls_equidistant_centroids" not in ver_m  # supplementary claims never enter the verdicts table
    macros = (tmp_path / "tables" / "macros.tex").read_text()
    assert r"\newcommand{\ProofTheorems}{9}" in macros and r"\newcommand{\PetsFrozenSeeds}{3}" in macros
    assert r"\newcommand{\PetsFastaiSeeds}{\textit{not yet recorded}}" in macros
    # the Müller numbers the prose quotes: measured, setup constants and published values
    for name, value in (("MullerMnistCeEce", "5.0"), ("MullerMnistCeEceTs", "2.3"), ("MullerMnistAlphaStar", "0.1"),
                        ("MullerMnistCeT", r"$1.20 \pm 0.25$"), ("MullerMnistLsLowersEceVerdict", "reproduced"),
                        ("MullerMnistLsLowersEceDelta", r"$-133.33 \pm 143.42$"),
                        ("MullerMnistEceUniformList", r"5.0\,\% at $\alpha=0.1$"), ("MullerCalAlphas", "0, 0.1"),
                        ("MullerMnistN", "5,000"), ("MullerMnistTrainPct", "70"), ("MullerMnistHeldPct", "10"),
                        ("MullerMnistTestPct", "20"), ("MullerTeacherArch", r"2$\times$1200"),
                        ("MullerStudentArch", r"2$\times$800"), ("MullerMnistEpochs", "8"), ("MullerMnistBatch", "128"),
                        ("MullerEceBins", "15"), ("MullerSeeds", "3"), ("MullerConfidence", "95"), ("MullerBeta", "0.6"),
                        ("MullerTemperatures", "1, 4"), ("MullerDistillStudentCe", "3.0"),
                        ("MullerDistillTStarCe", "4"), ("MullerDistillTeacherCe", "2.5"),
                        ("MullerDistillStudentNone", "4.0"), ("MullerDistillWorseTeacherVerdict", "not reproduced"),
                        ("MullerMnistCeRatio", "0.550"), ("MullerMnistCeSpread", "0.310"), ("MullerMnistCeWrongSpread", "0.110"),
                        ("MullerMnistEquidistantTplVerdict", "reproduced"), ("MullerFigureSeed", "0"),
                        ("MullerPubCalCeEce", "15.0"), ("MullerPubCalTsEce", "2.1"), ("MullerPubCalLsEce", "2.4"),
                        ("MullerPubCalAlpha", "0.05"), ("MullerPubCalSetup", "ResNet-56 on CIFAR-100"),
                        ("MullerPubTeacherErrCe", "0.67"), ("MullerPubStudentErrLs", "0.91"),
                        ("MullerPetsCeEce", r"\textit{not yet recorded}"),  # pets was skipped
                        ("MullerPetsTighterVerdict", r"\textit{not yet recorded}")):
        assert rf"\newcommand{{\{name}}}{{{value}}}" in macros, name
    # proofs.tex is verify's own renderer applied to the certificate
    from lsbench.commands import verify

    cert = json.loads((results_dir / "proofs.json").read_text())
    assert (tmp_path / "tables" / "proofs.tex").read_text() == verify.latex_table(cert)
    assert (tmp_path / "tables" / "proofs.md").read_text() == verify.markdown_table(cert)


def test_no_results_gives_placeholders_everywhere(tmp_path):
    out = build.generate(tmp_path / "nothing", tmp_path / "out")
    assert not out.errors
    for name in build.TABLES:
        tex = (tmp_path / "out" / "tables" / f"{name}.tex").read_text()
        if name not in ("catalogue", "conventions"):  # these two are computed from the code alone
            assert "not yet recorded" in tex, name
    for name in build.FIGURES:
        assert "not yet recorded" in (tmp_path / "out" / "figures" / f"{name}.tex").read_text()
        assert not (tmp_path / "out" / "figures" / f"{name}.pdf").exists()
    assert "not yet recorded" in (tmp_path / "out" / "tables" / "catalogue.md").read_text()


@pytest.mark.parametrize("corrupt, message", [
    (lambda p: p.write_text("{not json"), "is not valid JSON"),
    (lambda p: p.write_text(json.dumps({"schema": "lsbench/pets-results/2", "profile": "frozen",
                                        "aggregates": {"official": {"ce": {"seeds": [0]}}}, "runs": []})),
     "aggregates.official.ce: missing key 'metrics'"),
    (lambda p: p.write_text(json.dumps({"schema": "something/else"})), "schema is 'something/else'"),
])
def test_malformed_file_is_named_and_nothing_is_lost(results_dir, generated, tmp_path, capsys, corrupt,
                                                     message):
    from lsbench.cli import main

    res = tmp_path / "results"
    shutil.copytree(results_dir, res)
    out = tmp_path / "paper"
    shutil.copytree(generated[0], out)
    before = _files(out)
    corrupt(res / "pets-frozen.json")
    make_proofs(res / "proofs.json")  # still valid, but other tables must still be regenerated
    (out / "tables" / "catalogue.tex").write_text("stale")
    capsys.readouterr()
    assert main(["paper", "--results-dir", str(res), "--out-dir", str(out), "--quiet", "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert str(res / "pets-frozen.json") in err and message in err
    after = _files(out)
    assert set(before) <= set(after), "a generated file was deleted"
    for name in ("tables/pets-frozen.tex", "tables/pets-frozen.md", "figures/reliability-frozen.pdf",
                 "figures/reliability-frozen.png", "figures/ece-error-frozen.tex", "tables/macros.tex"):
        assert after[name] == before[name], f"{name} changed although its results file is malformed"
    assert after["tables/catalogue.tex"] == before["tables/catalogue.tex"]  # regenerated from good proofs.json


@pytest.mark.parametrize("text, where, constant", [
    ('{"schema": "x", "results": [{"time_s": {"median": NaN}}]}', "results[0].time_s.median", "NaN"),
    ('{"a": {"b": [1, -Infinity]}}', "a.b[1]", "-Infinity"),
    ('{"x": Infinity}', "x", "Infinity"),
])
def test_non_finite_numbers_are_refused_by_file_and_key(tmp_path, text, where, constant):
    path = tmp_path / "bench-x.json"
    path.write_text(text)
    with pytest.raises(ResultsError, match=re.escape(f"{path}: {where}: {constant} is not a number")):
        read_json(path)


def test_paper_refuses_a_missing_results_dir_and_writes_nothing(tmp_path, capsys):
    from lsbench.cli import main

    out = tmp_path / "paper"
    assert main(["paper", "--results-dir", str(tmp_path / "typo"), "--out-dir", str(out), "--no-figures"]) == 2
    assert str(tmp_path / "typo") in capsys.readouterr().err
    assert not out.exists()


def test_paper_checks_its_output_before_writing(results_dir, tmp_path, capsys):
    from lsbench.cli import main

    blocker = tmp_path / "file"
    blocker.write_text("not a directory\n")
    assert main(["paper", "--results-dir", str(results_dir), "--out-dir", str(blocker), "--no-figures"]) == 2
    assert f"cannot write to {blocker / 'tables'}" in capsys.readouterr().err


def test_a_failed_write_is_reported_and_loses_nothing(results_dir, generated, tmp_path, capsys, monkeypatch):
    import errno

    from lsbench.cli import main
    from lsbench.report import tables

    out = tmp_path / "paper"
    shutil.copytree(generated[0], out)
    before = _files(out)
    real = tables.atomic_write_bytes
    calls = []

    def full_after_three(path, data):  # the disk fills up midway
        calls.append(path)
        if len(calls) > 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(tables, "atomic_write_bytes", full_after_three)
    assert main(["paper", "--results-dir", str(results_dir), "--out-dir", str(out), "--quiet", "--no-figures"]) == 1
    err = capsys.readouterr().err
    assert "No space left on device" in err and "atomic" in err
    assert _files(out) == before  # regenerating gives the same bytes, and nothing is half-written or lost
    assert not [p for p in out.rglob(".*") if p.is_file()]


def test_malformed_file_on_a_first_run_still_gives_a_compilable_paper(tmp_path):
    res = tmp_path / "results"
    res.mkdir()
    (res / "bench-x.json").write_text("[]")
    out = build.generate(res, tmp_path / "paper", figures=False)
    assert len(out.errors) == 1 and "bench-x.json: must hold a JSON object" in str(out.errors[0])
    assert "malformed" in (tmp_path / "paper" / "tables" / "throughput.tex").read_text()
    assert (tmp_path / "paper" / "tables" / "macros.tex").is_file()


def test_discover_and_read(tmp_path):
    for name in ("proofs.json", "bench-h100.json", "pets-frozen.json", "muller-calibration.json", "notes.json"):
        (tmp_path / name).write_text("{}")
    found = discover(tmp_path)
    assert found.proofs == tmp_path / "proofs.json"
    assert list(found.bench) == ["h100"] and list(found.pets) == ["frozen"]
    assert list(found.muller) == ["calibration"] and found.other == [tmp_path / "notes.json"]
    with pytest.raises(ResultsError, match="missing.json: cannot be read"):
        read_json(tmp_path / "missing.json")


def test_markdown_skips_latex_group_separators():
    t = Table("x", "c", ("a", "b"), (("1", "2"), ("\\midrule",), ("3", "4")), shrink_only=True)
    assert "midrule" not in to_markdown(t)
    tex = to_latex(t)
    assert "\\midrule\n3 & 4" in tex and r"\ifdim\width>\linewidth" in tex
    assert r"\resizebox{\linewidth}{!}" in to_latex(Table("y", "c", ("a",), (("1",),)))  # default unchanged


# --------------------------------------------------------------------------- the committed paper


def test_committed_tables_are_what_the_committed_results_give(tmp_path):
    """Regenerate from paper/results into a temporary directory; every committed table must match."""
    build.generate(PAPER / "results", tmp_path, figures=False)
    fresh = {k: v for k, v in _files(tmp_path).items() if k.endswith((".tex", ".md"))}
    assert fresh
    stale = [k for k, v in fresh.items() if not (PAPER / k).is_file() or (PAPER / k).read_bytes() != v]
    assert not stale, (f"paper/{stale[0]} (and {len(stale) - 1} more) differ from what paper/results gives "
                       "(e.g. a results file re-recorded, or a caption's dirty-tree mark): run `python -m lsbench paper` "
                       "and commit paper/tables and paper/figures")


def test_committed_bench_tables_are_what_the_committed_bench_results_give():
    """``tables/bench.{tex,md}`` (written by ``python -m lsbench bench``) from its results file alone."""
    from lsbench.report.bench import render_tables

    tex_path, md_path = PAPER / "tables" / "bench.tex", PAPER / "tables" / "bench.md"
    machine = re.search(r"results/bench-(.+)\.json", tex_path.read_text().splitlines()[0]).group(1)
    doc = json.loads((PAPER / "results" / f"bench-{machine}.json").read_text())
    tex, md = render_tables(doc)
    assert tex == tex_path.read_text() and md == md_path.read_text()


def test_report_modules_read_results_files_only():
    """The report's own modules import neither the measuring code nor the experiments nor the commands."""
    import ast

    upward = ("lsbench.bench", "lsbench.experiments", "lsbench.commands")
    for name in ("bench", "build", "figures", "fmt", "results", "tables"):
        tree = ast.parse((REPO / "lsbench" / "report" / f"{name}.py").read_text())
        imported = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        bad = [m for m in imported if m.startswith(upward)]
        assert not bad, f"lsbench/report/{name}.py imports {bad}"


def _prose(tex: str) -> str:
    """main.tex's body with comments, maths and command arguments that are names removed."""
    body = tex.split(r"\begin{document}", 1)[1]
    body = re.sub(r"(?<!\\)%.*", "", body)
    body = re.sub(r"\$[^$]*\$", "", body)
    body = re.sub(r"\\\[.*?\\\]", "", body, flags=re.S)
    body = re.sub(r"\\begin\{(equation|align)\*?\}.*?\\end\{\1\*?\}", "", body, flags=re.S)
    body = re.sub(r"\\(input|include|includegraphics|ref|cref|label|cite[tp]?|url|href|texttt|autoref)"
                  r"(\[[^\]]*\])?\{[^}]*\}", "", body)
    body = re.sub(r"\d*\.?\d+\s*(pt|cm|mm|em|ex|in|\\linewidth|\\textwidth)", "", body)  # layout lengths
    return body


def test_main_tex_inputs_every_table_and_figure_and_types_no_numbers():
    tex = (PAPER / "main.tex").read_text(encoding="utf-8")
    inputs = set(re.findall(r"\\input\{([^}]+)\}", tex))
    for name in build.TABLES:
        assert f"tables/{name}" in inputs, f"main.tex does not input tables/{name}"
    for name in build.FIGURES:
        assert f"figures/{name}" in inputs, f"main.tex does not input figures/{name}"
    assert "tables/macros" in inputs
    digits = re.findall(r".{0,30}\d.{0,30}", _prose(tex))
    assert not digits, f"numbers typed by hand in main.tex's prose: {digits[:5]}"
    bib = (PAPER / "references.bib").read_text(encoding="utf-8")
    for key in set(k for group in re.findall(r"\\cite[tp]?\{([^}]+)\}", tex) for k in group.split(",")):
        assert re.search(r"@\w+\{" + re.escape(key.strip()) + ",", bib), f"{key} missing from references.bib"


def _macro_names(tex: str) -> set[str]:
    return set(re.findall(r"\\newcommand\{\\([A-Za-z]+)\}", tex))


def test_every_results_macro_main_tex_uses_is_generated(tmp_path):
    """Every \\Proof/Bench/Pets/Anchor/Muller... macro of main.tex exists with and without results."""
    tex = (PAPER / "main.tex").read_text(encoding="utf-8")
    used = set(re.findall(r"\\((?:Proof|Bench|Pets|Anchor|Muller)[A-Za-z]+)", tex))
    assert {"MullerMnistCeEce", "MullerDistillStudentCe", "MullerMnistAlphaStar", "MullerPubCalCeEce"} <= used
    build.generate(tmp_path / "none", tmp_path / "empty", figures=False)
    for macros in ((tmp_path / "empty" / "tables" / "macros.tex").read_text(),
                   (PAPER / "tables" / "macros.tex").read_text()):
        missing = used - _macro_names(macros)
        assert not missing, f"main.tex uses undefined macros: {sorted(missing)}"
    # the Müller results are final: every Müller number the prose quotes is recorded
    committed = (PAPER / "tables" / "macros.tex").read_text()
    unrecorded = [n for n in used if n.startswith("Muller")
                  and rf"\newcommand{{\{n}}}{{\textit{{not yet recorded}}}}" in committed]
    assert not unrecorded, f"Müller macros quoted by main.tex but not recorded: {sorted(unrecorded)}"


@pytest.mark.parametrize("text, expected", [
    ("no pets feature cache: /root/.cache/lsbench/features does not exist",
     "no pets feature cache: ~/.cache/lsbench/features does not exist"),
    ("in /home/alice/.cache/lsbench/features.", "in ~/.cache/lsbench/features."),
    ("cached pets test features in /tmp/pytest-3/cache/features", "cached pets test features in …/features"),
    ("split 70 / 10 / 20 %, runs/muller/mnist, a/b", "split 70 / 10 / 20 %, runs/muller/mnist, a/b"),
])
def test_muller_notes_have_no_absolute_paths(text, expected):
    from lsbench.report.muller import portable_paths

    assert portable_paths(text) == expected


def test_citation_cff():
    text = (REPO / "CITATION.cff").read_text(encoding="utf-8")
    for line in ("cff-version: 1.2.0", "title: lsbench", "version: 0.1.0", "license: Apache-2.0",
                 "date-released: 2026-11-22", "lsbench contributors"):
        assert line in text


@pytest.mark.skipif(shutil.which("latexmk") is None, reason="latexmk is not installed (LaTeX toolchain missing)")
@pytest.mark.parametrize("with_results", [True, False], ids=["results", "no-results"])
def test_paper_compiles(generated, tmp_path, with_results):
    paper = tmp_path / "paper"
    if with_results:
        shutil.copytree(generated[0], paper)
    else:
        build.generate(tmp_path / "none", paper)
    for name in ("main.tex", "references.bib"):
        shutil.copy(PAPER / name, paper / name)
    proc = subprocess.run(["latexmk", "-pdf", "-interaction=nonstopmode", "-halt-on-error", "main.tex"],
                          cwd=paper, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (paper / "main.pdf").read_bytes().startswith(b"%PDF")
    log = (paper / "main.log").read_text(errors="replace")
    assert "Citation" not in log or "undefined" not in log, "undefined citations"
    assert not re.search(r"Reference `[^']+' on page \d+ undefined", log), "undefined references"


def test_objects_and_members_name_the_first_entry_that_is_not_an_object(tmp_path):
    from lsbench.report.results import ResultFile, members, objects

    rf = ResultFile(path=tmp_path / "x.json", digest="0" * 12, data={})
    assert list(objects(rf, [{"a": 1}, {}], "results")) == [("results[0]", {"a": 1}), ("results[1]", {})]
    with pytest.raises(ResultsError, match=r"x\.json: results\[1\]: expected an object, found int"):
        list(objects(rf, [{}, 3], "results"))
    assert list(members(rf, {"ce": {"n": 1}}, "aggregates")) == [("ce", "aggregates.ce", {"n": 1})]
    with pytest.raises(ResultsError, match=r"aggregates\.ls: expected an object, found list"):
        list(members(rf, {"ce": {}, "ls": []}, "aggregates"))


def test_results_table_and_placeholder():
    from lsbench.report.tables import placeholder, results_table

    t = results_table("t", "Cap.", ("recipe", "shape", "time", "ratio"), [("u", "2×3", "1 ms", "0.5×")],
                      [("r.json", "abc")], ["a note"], label_columns=2)
    assert t.align == "llrr" and t.shrink_only and t.ragged_notes and t.rows == (("u", "2×3", "1 ms", "0.5×"),)
    assert r"\resizebox{\ifdim\width>\linewidth" in to_latex(t) and "a note" in to_markdown(t)
    p = placeholder("p", "Cap.", ("a", "b", "c"), "python -m lsbench bench", why="no file")
    assert p.rows == (("not yet recorded (no file): run python -m lsbench bench", "", ""),)
    assert p.caption == "Cap. Not yet recorded."
