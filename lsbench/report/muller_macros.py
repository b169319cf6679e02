"""The numbers the prose of ``paper/main.tex`` quotes about the Müller reproduction (``\\Muller...`` macros).

:func:`muller_macros` gives setup constants from each data set's recorded ``config``, measured
values and verdicts, and the published values from the results files' ``published`` blocks; every
macro exists (as a dash) also when nothing is recorded, so the paper always builds.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from lsbench.report.fmt import TeX, num, pm, thousands
from lsbench.report.muller_tables import (ADAPTIVE, BASELINE, EXPERIMENTS, LS_REFERENCE, MACRO_DATASETS, Muller,
                                          is_float, is_recorded, temperature_keys)

__all__ = ["muller_macros"]


#: Calibration macros per data set (``Muller<Dataset><Suffix>``).
_CAL_SUFFIXES = ("AlphaStar", "AlphaStarEce", "CeEce", "CeEceTs", "CeT", "LsTMax", "EceTsMax", "EceUniformList",
                 "EceUniform", "EceOffTarget", "EceFastreid", "LsLowersEceDelta", "LsLowersEceVerdict",
                 "LsMatchesTsDelta", "LsMatchesTsVerdict", "CalibrationVerdict", "OverConfident", "CeTLo",
                 "SplitGapDelta")
#: Representation macros per data set.
_REP_SUFFIXES = ("CeRatio", "LsRatio", "CeCv", "LsCv", "CeRatioTpl", "LsRatioTpl", "CeCvTpl", "LsCvTpl",
                 "TighterDelta", "TighterVerdict", "EquidistantDelta", "EquidistantVerdict",
                 "TighterTplDelta", "TighterTplVerdict", "EquidistantTplDelta", "EquidistantTplVerdict",
                 "CeSpread", "LsSpread", "CeWrongSpread", "LsWrongSpread", "EquidistantWrongDelta",
                 "EquidistantWrongVerdict")
_SETUP = ("MullerSeeds", "MullerConfidence", "MullerEceBins", "MullerMnistN", "MullerMnistTrainPct",
          "MullerMnistHeldPct", "MullerMnistTestPct", "MullerTeacherArch", "MullerStudentArch", "MullerMnistEpochs",
          "MullerMnistBatch", "MullerLsAlpha", "MullerCalAlphas", "MullerCalEpsilon", "MullerFastreidAlpha",
          "MullerBeta", "MullerTemperatures", "MullerFigureSeed", "MullerClassifierArch", "MullerPetsEpochs")
_PUBLISHED = ("MullerPubCalSetup", "MullerPubCalCeEce", "MullerPubCalTsEce", "MullerPubCalLsEce",
              "MullerPubCalAlpha", "MullerPubTeacherErrCe", "MullerPubTeacherErrLs", "MullerPubStudentErrCe",
              "MullerPubStudentErrLs")
_DISTILL = ("MullerDistillTeacherCe", "MullerDistillTeacherLs", "MullerDistillTeacherFastreid",
            "MullerDistillTeacherDelta", "MullerDistillBetterModelVerdict", "MullerDistillStudentCe",
            "MullerDistillStudentLs", "MullerDistillStudentFastreid", "MullerDistillStudentNone",
            "MullerDistillTStarCe", "MullerDistillTStarLs", "MullerDistillTStarFastreid",
            "MullerDistillStudentDelta", "MullerDistillWorseTeacherVerdict", "MullerDistillGainDelta",
            "MullerDistillHelps", "MullerDistillTeacherTrainErr", "MullerTeacherMatchPp")


def _macro_names() -> list[str]:
    names = ["Muller" + e.capitalize() + "Verdict" for e in EXPERIMENTS]
    names += list(_SETUP) + list(_PUBLISHED) + list(_DISTILL)
    for d in MACRO_DATASETS:
        names += [f"Muller{d.capitalize()}{x}" for x in _CAL_SUFFIXES + _REP_SUFFIXES]
    return names


def _mean(summary: Any) -> float | None:
    if isinstance(summary, Mapping) and isinstance(summary.get("mean"), (int, float)):
        return float(summary["mean"])
    return None


def _pct(summary: Any, digits: int = 1) -> str | None:
    """A summary's mean in percent (``1.6``); ``None`` when not recorded."""
    x = _mean(summary)
    return None if x is None else num(x, digits, 100)


def _fix(summary: Any, digits: int = 3) -> str | None:
    x = _mean(summary)
    return None if x is None else num(x, digits)


def _tex_pm(summary: Any, scale: float = 1.0, digits: int = 2, sign: bool = False) -> TeX | None:
    r"""``$m \pm ci$`` as LaTeX (a real minus sign; text mode only)."""
    x = _mean(summary)
    if x is None:
        return None
    ci = summary.get("ci")
    tail = "" if not isinstance(ci, (int, float)) else rf" \pm {num(ci, digits, scale)}"
    return TeX(f"${num(x, digits, scale, sign)}{tail}$")


def _g(x: Any) -> str | None:
    return f"{x:g}" if isinstance(x, (int, float)) and not isinstance(x, bool) else None


def _arch(a: Any) -> str | None:
    """``2×1200`` for an MLP with two hidden layers of 1200 units."""
    hidden = a.get("hidden") if isinstance(a, Mapping) else None
    if not isinstance(hidden, list) or not hidden:
        return None
    if len(set(hidden)) == 1:
        return f"{len(hidden)}×{hidden[0]}"
    return "–".join(str(h) for h in hidden)


def _and(items: Sequence[str]) -> str:
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _path(obj: Any, *keys) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(k)
    return obj


def _config(ms: Mapping[str, Muller], dataset: str) -> Mapping:
    """The recorded config of ``dataset`` (the first experiment that ran it)."""
    for e in EXPERIMENTS:
        m = ms.get(e)
        v = m.datasets.get(dataset) if m is not None else None
        if isinstance(v, Mapping) and is_recorded(v) and isinstance(v.get("config"), Mapping):
            return v["config"]
    return {}


def _uniform_specs(specs: Mapping) -> list[tuple[float, str]]:
    """``[(α, name)]`` of the ``uniform`` specs, by α."""
    out = []
    for n, a in specs.items():
        eps = _path(a, "params", "epsilon")
        if isinstance(a, Mapping) and a.get("recipe") == "uniform" and isinstance(eps, (int, float)):
            out.append((float(eps), n))
    return sorted(out)


def _calibration_macros(m: Muller, out: dict[str, Any]) -> None:
    rows = m.published.get("rows") if isinstance(m.published, Mapping) else None
    if isinstance(rows, list) and rows and isinstance(rows[0], Mapping):
        r = rows[0]
        out["MullerPubCalSetup"] = r.get("setup") if isinstance(r.get("setup"), str) else None
        for key, name in (("ece", "CeEce"), ("ece_ts", "TsEce"), ("ece_ls", "LsEce")):
            out[f"MullerPubCal{name}"] = num(r[key], 1, 100) if isinstance(r.get(key), (int, float)) else None
        out["MullerPubCalAlpha"] = _g(r.get("alpha"))
    per = m.verdict.get("per_dataset") if isinstance(m.verdict, Mapping) else None
    setup_specs = None
    for d in list(MACRO_DATASETS) + [d for d in m.datasets if d not in MACRO_DATASETS]:
        v = m.datasets.get(d)
        if not isinstance(v, Mapping) or not is_recorded(v):
            continue
        specs = v.get("specs") or {}
        setup_specs = setup_specs or specs
        if d not in MACRO_DATASETS:
            continue
        pre = f"Muller{d.capitalize()}"
        metric = lambda n, k: _path(specs, n, "metrics", k)  # noqa: E731
        star = v.get("alpha_star") if isinstance(v.get("alpha_star"), Mapping) else {}
        out[pre + "AlphaStar"] = _g(star.get("alpha"))
        out[pre + "AlphaStarEce"] = _pct(metric(star.get("spec"), "ece")) if star.get("spec") else None
        out[pre + "CeEce"] = _pct(metric(BASELINE, "ece"))
        out[pre + "CeEceTs"] = _pct(metric(BASELINE, "ece_ts"))
        out[pre + "CeT"] = _tex_pm(metric(BASELINE, "temperature"))
        ts = [x for n in specs if n != BASELINE for x in [_mean(metric(n, "temperature"))] if x is not None]
        out[pre + "LsTMax"] = num(max(ts), 2) if ts else None
        ece_ts = [x for n in specs for x in [_mean(metric(n, "ece_ts"))] if x is not None]
        out[pre + "EceTsMax"] = num(max(ece_ts), 1, 100) if ece_ts else None
        listed = [rf"{_pct(metric(n, 'ece'))}\,\% at $\alpha={a:g}$" for a, n in _uniform_specs(specs)
                  if a > 0 and _mean(metric(n, "ece")) is not None]
        out[pre + "EceUniformList"] = TeX(_and(listed)) if listed else None
        out[pre + "EceUniform"] = _pct(metric(LS_REFERENCE, "ece"))
        out[pre + "EceOffTarget"] = _pct(metric("off_target", "ece"))
        out[pre + "EceFastreid"] = _pct(metric(ADAPTIVE, "ece"))
        claims = v.get("claims") or {}
        for c, name in (("ls_lowers_ece", "LsLowersEce"), ("ls_matches_temperature_scaling", "LsMatchesTs")):
            cl = claims.get(c) if isinstance(claims.get(c), Mapping) else {}
            out[pre + name + "Delta"] = _tex_pm(cl.get("difference"), 100, 2, sign=True)
            out[pre + name + "Verdict"] = cl.get("verdict")
        out[pre + "CalibrationVerdict"] = (per or {}).get(d) if isinstance(per, Mapping) else v.get("verdict")
        met = _path(claims, "ls_lowers_ece", "precondition", "met")
        out[pre + "OverConfident"] = None if not isinstance(met, bool) else ("yes" if met else "no")
        lo = _path(specs, BASELINE, "metrics", "temperature", "lo")
        out[pre + "CeTLo"] = num(lo, 2) if isinstance(lo, (int, float)) else None
        out[pre + "SplitGapDelta"] = _tex_pm(_path(v, "split_check", "difference"), 100, 2, sign=True)
    if setup_specs:
        uni = _uniform_specs(setup_specs)
        out["MullerCalAlphas"] = ", ".join(f"{a:g}" for a, _ in uni) if uni else None
        eps = sorted({float(e) for a in setup_specs.values() if isinstance(a, Mapping) and a.get("recipe") != "uniform"
                      for e in [_path(a, "params", "epsilon")] if isinstance(e, (int, float)) and e >= 0})
        out["MullerCalEpsilon"] = ", ".join(f"{e:g}" for e in eps) if eps else None
        out["MullerFastreidAlpha"] = _g(_path(setup_specs, ADAPTIVE, "params", "alpha"))
        out["MullerLsAlpha"] = _g(_path(setup_specs, LS_REFERENCE, "params", "epsilon"))


def _distillation_macros(m: Muller, out: dict[str, Any]) -> None:
    p = m.published if isinstance(m.published, Mapping) else {}
    for who, key in (("Teacher", "teacher_error"), ("Student", "student_error")):
        for side, k in (("Ce", "ce"), ("Ls", "ls")):
            x = _path(p, key, k)
            out[f"MullerPub{who}Err{side}"] = num(x, 2, 100) if isinstance(x, (int, float)) else None
    out["MullerBeta"] = _g(m.file.data.get("beta"))
    temps = m.file.data.get("temperatures")
    v = m.datasets.get("mnist")
    if not (isinstance(v, Mapping) and is_recorded(v)):
        v = next((x for x in m.datasets.values() if isinstance(x, Mapping) and is_recorded(x)), None)
    if not isinstance(temps, list) and v is not None:
        temps = [float(t) for t in temperature_keys(v) if is_float(t)]
    out["MullerTemperatures"] = ", ".join(f"{float(t):g}" for t in temps) if isinstance(temps, list) and temps \
        else None
    if v is None:
        return
    teachers, students = v.get("teachers") or {}, v.get("students") or {}
    for n, name in ((BASELINE, "Ce"), (LS_REFERENCE, "Ls"), (ADAPTIVE, "Fastreid")):
        out[f"MullerDistillTeacher{name}"] = _pct(_path(teachers, n, "metrics", "error"))
        st = students.get(n) if isinstance(students.get(n), Mapping) else {}
        t_star = st.get("t_star")
        out[f"MullerDistillTStar{name}"] = (f"{float(t_star):g}" if is_float(t_star) else None) \
            if t_star is not None else None
        out[f"MullerDistillStudent{name}"] = _pct(_path(st, "T", t_star, "metrics", "error")) \
            if t_star is not None else None
    out["MullerDistillStudentNone"] = _pct(_path(v, "student_none", "metrics", "error"))
    claims = v.get("claims") or {}
    for c, delta, verdict in (("ls_teacher_better_model", "MullerDistillTeacherDelta",
                               "MullerDistillBetterModelVerdict"),
                              ("ls_teacher_worse_teacher", "MullerDistillStudentDelta",
                               "MullerDistillWorseTeacherVerdict")):
        cl = claims.get(c) if isinstance(claims.get(c), Mapping) else {}
        out[delta] = _tex_pm(cl.get("difference"), 100, 2, sign=True)
        out[verdict] = cl.get("verdict")
    out["MullerDistillGainDelta"] = _tex_pm(_path(v, "distillation_gain", "difference"), 100, 2, sign=True)
    hi = _path(v, "distillation_gain", "difference", "hi")
    out["MullerDistillHelps"] = None if not isinstance(hi, (int, float)) else ("yes" if hi < 0 else "no")
    tol = v.get("teacher_match_tolerance")
    out["MullerTeacherMatchPp"] = _g(round(100 * tol, 6)) if isinstance(tol, (int, float)) else None
    out["MullerDistillTeacherTrainErr"] = _pct(_path(teachers, BASELINE, "metrics", "train_error"), 2)


def _representations_macros(m: Muller, out: dict[str, Any]) -> None:
    for d in MACRO_DATASETS:
        v = m.datasets.get(d)
        if not isinstance(v, Mapping) or not is_recorded(v):
            continue
        pre = f"Muller{d.capitalize()}"
        specs = v.get("specs") or {}
        for n, side in ((BASELINE, "Ce"), (LS_REFERENCE, "Ls")):
            for space, tpl in (("test", ""), ("test_templates", "Tpl")):
                out[f"{pre}{side}Ratio{tpl}"] = _fix(_path(specs, n, space, "ratio"))
                out[f"{pre}{side}Cv{tpl}"] = _fix(_path(specs, n, space, "between_cv"))
        for n, side in ((BASELINE, "Ce"), (LS_REFERENCE, "Ls")):
            out[f"{pre}{side}Spread"] = _fix(_path(specs, n, "test_geometry", "spread"))
            out[f"{pre}{side}WrongSpread"] = _fix(_path(specs, n, "test_geometry", "wrong_spread"))
        wrong = _path(v, "claims", "ls_equidistant_wrong_templates")
        out[f"{pre}EquidistantWrongDelta"] = _tex_pm(_path(wrong, "difference"), 1, 3, sign=True)
        out[f"{pre}EquidistantWrongVerdict"] = _path(wrong, "verdict")
        for key, tpl in (("claims", ""), ("supplementary_claims", "Tpl")):
            claims = v.get(key) if isinstance(v.get(key), Mapping) else {}
            for c, name in (("ls_tighter_clusters", "Tighter"), ("ls_equidistant_centroids", "Equidistant")):
                cl = claims.get(c) if isinstance(claims.get(c), Mapping) else {}
                out[f"{pre}{name}{tpl}Delta"] = _tex_pm(cl.get("difference"), 1, 3, sign=True)
                out[f"{pre}{name}{tpl}Verdict"] = cl.get("verdict")
        if out.get("MullerFigureSeed") is None and isinstance(v.get("figure"), Mapping):
            out["MullerFigureSeed"] = v["figure"].get("seed") if isinstance(v["figure"].get("seed"), int) else None


def _setup_macros(ms: Mapping[str, Muller], out: dict[str, Any]) -> None:
    first = next((ms[e] for e in EXPERIMENTS if e in ms), None)
    if first is None:
        return
    seeds = first.file.data.get("seeds")
    out["MullerSeeds"] = len(seeds) if isinstance(seeds, list) and seeds else None
    for e in EXPERIMENTS:  # the confidence level of the recorded intervals
        for v in (ms[e].datasets.values() if e in ms else ()):
            for cl in ((v.get("claims") or {}).values() if isinstance(v, Mapping) and is_recorded(v) else ()):
                c = _path(cl, "difference", "confidence")
                if out.get("MullerConfidence") is None and isinstance(c, (int, float)):
                    out["MullerConfidence"] = f"{100 * c:g}"
    cfg = _config(ms, "mnist")
    out["MullerMnistN"] = thousands(_path(cfg, "data", "n")) if isinstance(_path(cfg, "data", "n"), int) else None
    held, test = _path(cfg, "split", "held"), _path(cfg, "split", "test")
    if isinstance(held, (int, float)) and isinstance(test, (int, float)):
        out["MullerMnistTrainPct"] = f"{round(100 * (1 - held - test), 6):g}"
        out["MullerMnistHeldPct"] = f"{round(100 * held, 6):g}"
        out["MullerMnistTestPct"] = f"{round(100 * test, 6):g}"
    out["MullerTeacherArch"] = _arch(cfg.get("teacher") or cfg.get("arch"))
    out["MullerClassifierArch"] = _arch(cfg.get("arch"))
    out["MullerPetsEpochs"] = _path(_config(ms, "pets"), "train", "epochs")
    out["MullerStudentArch"] = _arch(cfg.get("student"))
    out["MullerMnistEpochs"] = _path(cfg, "train", "epochs")
    out["MullerMnistBatch"] = _path(cfg, "train", "batch_size")
    bins = next((b for d in list(MACRO_DATASETS) for b in [_path(_config(ms, d), "ece_bins")] if b is not None), None)
    out["MullerEceBins"] = bins


def muller_macros(ms: Mapping[str, Muller]) -> dict[str, Any]:
    """Every ``\\Muller...`` macro the prose may quote; ``None`` (not yet recorded) where missing."""
    out: dict[str, Any] = dict.fromkeys(_macro_names())
    for e in EXPERIMENTS:
        m = ms.get(e)
        out["Muller" + e.capitalize() + "Verdict"] = (m.verdict.get("verdict") if m is not None
                                                      and isinstance(m.verdict, Mapping) else None)
    _setup_macros(ms, out)
    if "calibration" in ms:
        _calibration_macros(ms["calibration"], out)
    if "distillation" in ms:
        _distillation_macros(ms["distillation"], out)
    if "representations" in ms:
        _representations_macros(ms["representations"], out)
    unknown = set(out) - set(_macro_names())
    if unknown:  # pragma: no cover - a typo in a key above
        raise AssertionError(f"undeclared Müller macros: {sorted(unknown)}")
    return out
