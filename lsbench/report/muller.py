"""The Müller et al. (2019) reproduction (``paper/results/muller-<experiment>.json``): tables and figure.

* ``muller-calibration``     -- per data set and recipe: error, ECE, ECE after temperature
  scaling, T, held-out ECE, paired Δ ECE from ``ce``; the published ECEs in a note;
* ``muller-distillation``    -- per data set and teacher: teacher error and student error at
  each distillation temperature (``*`` marks the T* chosen on held-out data);
* ``muller-representations`` -- per data set and recipe: cluster tightness (within/between
  ratio, spread of the centroid distances) in the penultimate space (the verdict's measures) and,
  marked supplementary, inside the template subspace; the paired differences of the sub-claims
  and the ``supplementary_claims`` (not part of the verdict);
* ``muller-verdicts``        -- every sub-claim with its paired difference, the published value
  and the verdict, and each finding's verdict;
* figure ``muller_representations`` -- drawn by
  :func:`lsbench.experiments.muller.render_figure` (the renderer ``reproduce muller`` uses)
  from the projection recorded in ``muller-representations.json``, with a fixed PDF date;
* :func:`muller_macros` -- the numbers the prose of ``main.tex`` quotes (``\\Muller...`` macros):
  setup constants from each data set's ``config``, measured values and verdicts, and the
  published values from the ``published`` blocks.

Notes never print machine-specific absolute paths (a skipped data set's reason names the cache
directory it looked in): see :func:`portable_paths`.

Schema: ``lsbench/muller-results/1`` (:mod:`lsbench.experiments.muller`).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from lsbench.report import figures as F
from lsbench.report.fmt import DASH, TeX, excludes_zero, num, pm, thousands
from lsbench.report.proofs import P, placeholder
from lsbench.report.results import ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import Table

SCHEMA = "lsbench/muller-results/1"
EXPERIMENTS = ("calibration", "distillation", "representations")
COMMAND = "python -m lsbench reproduce muller"
FIGURE = "muller_representations"
BASELINE = "ce"
LS_REFERENCE = "uniform_0.1"          # the label-smoothed model of distillation and representations
ADAPTIVE = "fastreid_adaptive"        # fast-reid's adaptive smoothing
#: Data sets the prose quotes (macros exist for them even when not recorded).
MACRO_DATASETS = ("mnist", "pets")


@dataclasses.dataclass(frozen=True)
class Muller:
    file: ResultFile
    experiment: str
    datasets: Mapping[str, Mapping]
    verdict: Mapping
    caveats: tuple[str, ...]
    published: Mapping
    quick: bool
    status: str | None


def parse_muller(rf: ResultFile, experiment: str | None = None) -> Muller:
    check_schema(rf, SCHEMA)
    exp = need(rf, rf.data, "experiment", str)
    if exp not in EXPERIMENTS:
        raise ResultsError(rf.path, f"experiment is {exp!r}, expected one of {', '.join(EXPERIMENTS)}")
    if experiment is not None and exp != experiment:
        raise ResultsError(rf.path, f"experiment is {exp!r} but the file name says {experiment!r}")
    datasets = need(rf, rf.data, "datasets", dict)
    for d, v in datasets.items():
        where = f"datasets.{d}"
        if not isinstance(v, Mapping):
            raise ResultsError(rf.path, f"{where}: expected an object, found {type(v).__name__}")
        status = need(rf, v, "status", str, where)
        if status not in ("ok", "incomplete"):
            continue
        claims = need(rf, v, "claims", dict, where)
        for c, cl in claims.items():
            w = f"{where}.claims.{c}"
            need(rf, cl, "verdict", str, w)
            need(rf, cl, "difference", dict, w, optional=True)
        if exp == "calibration":
            for n, a in need(rf, v, "specs", dict, where).items():
                need(rf, a, "metrics", dict, f"{where}.specs.{n}")
        elif exp == "distillation":
            need(rf, v, "teachers", dict, where)
            need(rf, v, "students", dict, where)
        else:
            for n, a in need(rf, v, "specs", dict, where).items():
                need(rf, a, "test", dict, f"{where}.specs.{n}")
    verdict = need(rf, rf.data, "verdict", dict, optional=True) or {}
    caveats = need(rf, rf.data, "caveats", list, optional=True) or []
    published = need(rf, rf.data, "published", dict, optional=True) or {}
    inv = rf.data.get("invocation")
    status = inv.get("status") if isinstance(inv, Mapping) else None
    return Muller(rf, exp, datasets, verdict, tuple(str(c) for c in caveats), published,
                  bool(rf.data.get("quick")), status if isinstance(status, str) else None)


def _ok(v: Mapping) -> bool:
    return v.get("status") in ("ok", "incomplete")


def _skipped_row(d: str, v: Mapping, width: int) -> tuple[str, ...]:
    return (d, "skipped (see the verdicts table)", *[""] * (width - 2))


_HOME = re.compile(r"(?<![\w.~/])/(?:root|home/[^/\s]+|Users/[^/\s]+)(?=/|(?![^\s.,;:)]))")
_ABSOLUTE = re.compile(r"(?<![\w.~/])/(?:[^\s/'\"`()]+/)+([^\s/'\"`(),;:]*)")


def portable_paths(text: str) -> str:
    """``text`` without machine-specific absolute paths.

    A home directory (``/root``, ``/home/<user>``, ``/Users/<user>``) becomes ``~``
    (``/root/.cache/lsbench/features`` → ``~/.cache/lsbench/features``); any other absolute path
    keeps only its last component (``/tmp/x/cache/features`` → ``…/features``).
    """
    text = _HOME.sub("~", text)
    return _ABSOLUTE.sub(lambda mt: "…/" + mt.group(1), text)


def skip_reason(d: str, v: Mapping) -> str:
    return portable_paths(f"{d}: skipped, {v.get('reason') or 'no reason recorded'}")


def _notes(m: Muller, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The table's notes; the caveats of every file go once under the verdicts table."""
    notes = list(extra)
    if m.status and m.status != "complete":
        notes.append(f"Recording status: {m.status}.")
    return tuple(portable_paths(n) for n in notes)


def _delta(s: Mapping | None, scale: float, digits: int) -> str:
    if not s:
        return DASH
    return pm(s, scale, digits, sign=True) + ("*" if excludes_zero(s) else "")


# --------------------------------------------------------------------------- calibration

CAL_COLUMNS = ("data set", "recipe", "seeds", "error %", "ECE %", "ECE after TS %", "T", "held-out ECE %",
               "Δ ECE (pp)")


def calibration_table(m: Muller) -> Table:
    rows = []
    notes = []
    for i, (d, v) in enumerate(m.datasets.items()):
        if i:
            rows.append(("\\midrule",))
        if not _ok(v):
            rows.append(_skipped_row(d, v, len(CAL_COLUMNS)))
            continue
        for j, (n, a) in enumerate(v["specs"].items()):
            mm = a.get("metrics") or {}
            delta = "(baseline)" if n == BASELINE else _delta((a.get("paired_vs_ce") or {}).get("ece"), 100, 2)
            rows.append((d if j == 0 else "", n, str(len(a.get("seeds") or [])), pm(mm.get("error"), 100),
                         pm(mm.get("ece"), 100), pm(mm.get("ece_ts"), 100), pm(mm.get("temperature"), 1),
                         pm(mm.get("heldout_ece"), 100), delta))
        star = v.get("alpha_star")
        if isinstance(star, Mapping) and "alpha" in star:
            notes.append(f"{d}: α* = {star['alpha']} ({star.get('spec', '')}), {star.get('rule', '')}.")
    pub = m.published.get("rows") if isinstance(m.published, Mapping) else None
    if isinstance(pub, list):
        for r in pub:
            if isinstance(r, Mapping) and {"setup", "ece", "ece_ts", "ece_ls"} <= set(r):
                notes.append(f"Published, {r['setup']}: ECE {num(r['ece'], 1, 100)}%, after TS "
                             f"{num(r['ece_ts'], 1, 100)}% (T = {r.get('temperature', DASH)}), with LS "
                             f"{num(r['ece_ls'], 1, 100)}% (α = {r.get('alpha', DASH)}).")
    notes.insert(0, "Mean ± 95% CI over seeds; Δ: paired difference from ce (* the CI excludes 0).")
    return Table(
        name="muller-calibration",
        caption="Müller et al. (2019) reproduction, calibration: does label smoothing lower the ECE "
                "(15 bins) about as much as temperature scaling?",
        columns=CAL_COLUMNS, rows=tuple(rows), sources=(m.file.source,),
        align="ll" + "r" * (len(CAL_COLUMNS) - 2), notes=_notes(m, notes), shrink_only=True, ragged_notes=True,
    )


# --------------------------------------------------------------------------- distillation


def _temperatures(v: Mapping) -> list[str]:
    ts: list[str] = []
    for st in (v.get("students") or {}).values():
        for t in (st.get("T") or {}) if isinstance(st, Mapping) else ():
            if t not in ts:
                ts.append(t)
    return sorted(ts, key=lambda t: float(t) if _isfloat(t) else float("inf"))


def _isfloat(s: str) -> bool:
    try:
        float(s)
    except (TypeError, ValueError):
        return False
    return True


def distillation_table(m: Muller) -> Table:
    temps: list[str] = []
    for v in m.datasets.values():
        if _ok(v):
            temps += [t for t in _temperatures(v) if t not in temps]
    temps.sort(key=lambda t: float(t) if _isfloat(t) else float("inf"))
    columns = ("data set", "teacher", "teacher error %", *[f"student T = {t}" for t in temps])
    rows = []
    for i, (d, v) in enumerate(m.datasets.items()):
        if i:
            rows.append(("\\midrule",))
        if not _ok(v):
            rows.append(_skipped_row(d, v, len(columns)))
            continue
        first = True
        for n, a in (v.get("teachers") or {}).items():
            st = (v.get("students") or {}).get(n) or {}
            cells = []
            for t in temps:
                c = (st.get("T") or {}).get(t)
                cell = pm((c.get("metrics") or {}).get("error"), 100) if c else DASH
                if c and st.get("t_star") == t:
                    cell += " *"
                cells.append(cell)
            rows.append((d if first else "", n, pm(((a.get("metrics") or {}).get("error")), 100), *cells))
            first = False
        none = v.get("student_none")
        if isinstance(none, Mapping):
            err = pm((none.get("metrics") or {}).get("error"), 100)
            rows.append((d if first else "", "(no teacher)", DASH, *([err] + [""] * (len(temps) - 1) if temps
                                                                     else [])))
    notes = ["Test error, mean ± 95% CI over seeds; * the temperature T* with the lowest held-out student "
             "error for that teacher; (no teacher): the student trained on the labels alone."]
    p = m.published
    if isinstance(p, Mapping) and isinstance(p.get("teacher_error"), Mapping) \
            and isinstance(p.get("student_error"), Mapping):
        te, se = p["teacher_error"], p["student_error"]
        notes.append(f"Published ({p.get('setup', 'MNIST')}): teacher error {num(te.get('ce'), 2, 100)}% "
                     f"(no LS) / {num(te.get('ls'), 2, 100)}% (LS); student error {num(se.get('ce'), 2, 100)}% / "
                     f"{num(se.get('ls'), 2, 100)}%.")
    beta = m.file.data.get("beta")
    if isinstance(beta, (int, float)):
        notes.append(f"Student loss β·T²·KL + (1 − β)·CE with β = {beta:g}.")
    return Table(
        name="muller-distillation",
        caption="Müller et al. (2019) reproduction, distillation: is a teacher trained with label smoothing "
                "a better model but a worse teacher?",
        columns=columns, rows=tuple(rows), sources=(m.file.source,),
        align="ll" + "r" * (len(columns) - 2), notes=_notes(m, notes), shrink_only=True, ragged_notes=True,
    )


# --------------------------------------------------------------------------- representations

REP_COLUMNS = ("data set", "space", "recipe", "seeds", "within/between (test)", "centroid-distance CV (test)",
               "within/between (train)")
#: (label in the table, test space key, train space key, claims key); the second is supplementary.
REP_SPACES = (("penultimate", "test", "train", "claims"),
              ("template subspace (suppl.)", "test_templates", "train_templates", "supplementary_claims"))
#: Which sub-claim is the paired difference of which measure (on test examples).
REP_CLAIM_MEASURE = {"ls_tighter_clusters": "ratio", "ls_equidistant_centroids": "between_cv"}


def _claim_text(c: str, cl: Mapping, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    diff = cl.get("difference") if isinstance(cl, Mapping) else None
    d = (pm(diff, scale, digits, sign=True) + unit) if diff else DASH
    return f"{c} {d} ({cl.get('verdict') if isinstance(cl, Mapping) else DASH})"


def representations_table(m: Muller) -> Table:
    rows = []
    supplementary: dict[str, list[str]] = {}
    any_suppl = False
    for i, (d, v) in enumerate(m.datasets.items()):
        if i:
            rows.append(("\\midrule",))
        if not _ok(v):
            rows.append(_skipped_row(d, v, len(REP_COLUMNS)))
            continue
        specs = v.get("specs") or {}
        first = True
        for label, test_key, train_key, claims_key in REP_SPACES:
            if not any(isinstance(a.get(test_key), Mapping) for a in specs.values()):
                continue  # this space was not recorded (older results)
            suppl = claims_key != "claims"
            any_suppl = any_suppl or suppl
            for j, (n, a) in enumerate(specs.items()):
                test, train = a.get(test_key) or {}, a.get(train_key) or {}
                rows.append((d if first else "", label if j == 0 else "", n, str(len(a.get("seeds") or [])),
                             pm(test.get("ratio"), 1, 3), pm(test.get("between_cv"), 1, 3),
                             pm(train.get("ratio"), 1, 3)))
                first = False
            claims = v.get(claims_key) or {}
            if isinstance(claims, Mapping) and claims:
                cells = {"ratio": DASH, "between_cv": DASH}
                pair = None
                for c, cl in claims.items():
                    if not isinstance(cl, Mapping):
                        continue
                    pair = pair or (cl.get("method"), cl.get("reference"))
                    measure = REP_CLAIM_MEASURE.get(c)
                    if measure:
                        cells[measure] = _delta(cl.get("difference"), 1, 3)
                    if suppl:
                        supplementary.setdefault(d, []).append(_claim_text(c, cl))
                what = f"Δ {pair[0]} − {pair[1]}" if pair and all(pair) else "Δ (paired)"
                rows.append(("", "", what, "", cells["ratio"], cells["between_cv"], DASH))
    notes = ["Mean distance to the own class centroid over the mean distance between centroids (smaller = "
             "tighter), and the coefficient of variation of the distances between centroids (0 = equidistant); "
             "mean ± 95% CI over seeds. Δ: the paired difference of a sub-claim (* the CI excludes 0).",
             "Penultimate: the penultimate-layer activations; the verdict uses this space only (its sub-claims "
             "are in the verdicts table)."]
    if any_suppl:
        notes.append("Template subspace (suppl.): supplementary, not part of the verdict; the activations "
                     "projected onto the $(K-1)$-dimensional span of the template differences $w_k - w_0$ "
                     "(the only directions that change the softmax output).")
    if supplementary:
        notes.append("Supplementary sub-claims (template subspace, same rule, not part of the verdict): "
                     + "; ".join(f"{d}: {', '.join(c)}" for d, c in supplementary.items()) + ".")
    return Table(
        name="muller-representations",
        caption="Müller et al. (2019) reproduction, representations: does label smoothing make tight, "
                "equidistant class clusters?",
        columns=REP_COLUMNS, rows=tuple(rows), sources=(m.file.source,),
        align="lll" + "r" * (len(REP_COLUMNS) - 3), notes=_notes(m, notes), shrink_only=True, ragged_notes=True,
    )


# --------------------------------------------------------------------------- verdicts

VERDICT_COLUMNS = ("finding", "data set", "sub-claim", "difference", "published", "verdict")


def verdicts_table(ms: Mapping[str, Muller]) -> Table:
    rows = []
    rule = None
    skipped: list[str] = []
    for i, e in enumerate(e for e in EXPERIMENTS if e in ms):
        m = ms[e]
        rule = rule or m.file.data.get("verdict_rule")
        if i:
            rows.append(("\\midrule",))
        scale, digits, unit = (1.0, 3, "") if e == "representations" else (100.0, 2, " pp")
        for d, v in m.datasets.items():
            if not _ok(v):
                rows.append((e, d, DASH, DASH, DASH, "skipped"))
                skipped.append(f"{e}, {skip_reason(d, v)}.")
                continue
            claims = v.get("claims") or {}
            if not claims:
                rows.append((e, d, DASH, DASH, DASH, str(v.get("verdict") or DASH)))
            for c, cl in claims.items():
                diff = cl.get("difference")
                rows.append((e, d, c, (pm(diff, scale, digits, sign=True) + unit) if diff else DASH,
                             str(cl.get("published") or DASH), str(cl.get("verdict"))))
        overall = m.verdict.get("verdict") if isinstance(m.verdict, Mapping) else None
        rows.append((e, "all", "(finding)", "", "", str(overall or DASH)))
    notes = list(skipped)
    if rule:
        notes.append(f"Verdict rule: {rule}")
    quick = [e for e in EXPERIMENTS if e in ms and ms[e].quick]
    if quick:
        notes.append(f"QUICK configuration ({', '.join(quick)}): tiny data and models, not a reproduction.")
    caveats = dict.fromkeys(c for e in EXPERIMENTS if e in ms for c in ms[e].caveats)
    notes += [f"Caveat: {c}" for c in caveats]
    if "representations" in ms and any(_ok(v) and v.get("supplementary_claims")
                                         for v in ms["representations"].datasets.values()):
        notes.append("The template-subspace sub-claims are supplementary and not part of any verdict "
                     "(see the representations table).")
    notes = [portable_paths(n) for n in notes]
    return Table(
        name="muller-verdicts",
        caption="Müller et al. (2019) reproduction: each published sub-claim as the sign of a paired "
                "difference (method − reference) over seeds, and its verdict.",
        columns=VERDICT_COLUMNS, rows=tuple(rows), sources=tuple(ms[e].file.source for e in EXPERIMENTS if e in ms),
        align=f"lllr{P('3.8cm')}l", notes=tuple(notes), shrink_only=True, ragged_notes=True,
    )


def muller_placeholder(experiment: str) -> Table:
    cols = {"calibration": CAL_COLUMNS, "distillation": ("data set", "teacher", "teacher error %", "students"),
            "representations": REP_COLUMNS, "verdicts": VERDICT_COLUMNS}[experiment]
    title = {"calibration": "calibration", "distillation": "distillation",
             "representations": "representations", "verdicts": "verdicts"}[experiment]
    return placeholder(f"muller-{experiment}", f"Müller et al. (2019) reproduction, {title}.", cols, COMMAND)


# --------------------------------------------------------------------------- figure


def figure_panels(m: Muller) -> dict:
    """``{dataset: figure}`` exactly as ``reproduce muller`` passes them to ``render_figure``."""
    out = {}
    for d, v in m.datasets.items():
        fig = v.get("figure")
        if _ok(v) and isinstance(fig, Mapping) and fig.get("panels"):
            for k, p in enumerate(fig["panels"]):
                w = f"datasets.{d}.figure.panels[{k}]"
                for key in ("spec", "split", "coords", "labels", "templates"):
                    need(m.file, p, key, None, w)
            need(m.file, fig, "classes", list, f"datasets.{d}.figure")
            need(m.file, fig, "seed", None, f"datasets.{d}.figure")
            out[d] = fig
    return out


def render_representations(m: Muller, figures_dir: Path) -> list[Path]:
    """Re-draw ``muller_representations.{png,pdf}`` with muller's own renderer (fixed PDF date)."""
    panels = figure_panels(m)
    if not panels:
        return []
    from lsbench.experiments.muller import render_figure

    with F.source_date_epoch("0"):
        paths = render_figure(panels, Path(figures_dir) / FIGURE)
    return [Path(p) for p in paths]


REPRESENTATIONS_CAPTION = ("Müller et al. (2019) Figure 1 reproduced: penultimate-layer activations of three "
                           "classes projected onto the plane through their templates, without and with label "
                           "smoothing, on training and test examples.")


# --------------------------------------------------------------------------- macros

#: Calibration macros per data set (``Muller<Dataset><Suffix>``).
_CAL_SUFFIXES = ("AlphaStar", "AlphaStarEce", "CeEce", "CeEceTs", "CeT", "LsTMax", "EceTsMax", "EceUniformList",
                 "EceUniform", "EceOffTarget", "EceFastreid", "LsLowersEceDelta", "LsLowersEceVerdict",
                 "LsMatchesTsDelta", "LsMatchesTsVerdict", "CalibrationVerdict")
#: Representation macros per data set.
_REP_SUFFIXES = ("CeRatio", "LsRatio", "CeCv", "LsCv", "CeRatioTpl", "LsRatioTpl", "CeCvTpl", "LsCvTpl",
                 "TighterDelta", "TighterVerdict", "EquidistantDelta", "EquidistantVerdict",
                 "TighterTplDelta", "TighterTplVerdict", "EquidistantTplDelta", "EquidistantTplVerdict")
_SETUP = ("MullerSeeds", "MullerConfidence", "MullerEceBins", "MullerMnistN", "MullerMnistTrainPct",
          "MullerMnistHeldPct", "MullerMnistTestPct", "MullerTeacherArch", "MullerStudentArch", "MullerMnistEpochs",
          "MullerMnistBatch", "MullerLsAlpha", "MullerCalAlphas", "MullerCalEpsilon", "MullerFastreidAlpha",
          "MullerBeta", "MullerTemperatures", "MullerFigureSeed")
_PUBLISHED = ("MullerPubCalSetup", "MullerPubCalCeEce", "MullerPubCalTsEce", "MullerPubCalLsEce",
              "MullerPubCalAlpha", "MullerPubTeacherErrCe", "MullerPubTeacherErrLs", "MullerPubStudentErrCe",
              "MullerPubStudentErrLs")
_DISTILL = ("MullerDistillTeacherCe", "MullerDistillTeacherLs", "MullerDistillTeacherFastreid",
            "MullerDistillTeacherDelta", "MullerDistillBetterModelVerdict", "MullerDistillStudentCe",
            "MullerDistillStudentLs", "MullerDistillStudentFastreid", "MullerDistillStudentNone",
            "MullerDistillTStarCe", "MullerDistillTStarLs", "MullerDistillTStarFastreid",
            "MullerDistillStudentDelta", "MullerDistillWorseTeacherVerdict")


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
        if isinstance(v, Mapping) and _ok(v) and isinstance(v.get("config"), Mapping):
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
        if not isinstance(v, Mapping) or not _ok(v):
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
    if not (isinstance(v, Mapping) and _ok(v)):
        v = next((x for x in m.datasets.values() if isinstance(x, Mapping) and _ok(x)), None)
    if not isinstance(temps, list) and v is not None:
        temps = [float(t) for t in _temperatures(v) if _isfloat(t)]
    out["MullerTemperatures"] = ", ".join(f"{float(t):g}" for t in temps) if isinstance(temps, list) and temps \
        else None
    if v is None:
        return
    teachers, students = v.get("teachers") or {}, v.get("students") or {}
    for n, name in ((BASELINE, "Ce"), (LS_REFERENCE, "Ls"), (ADAPTIVE, "Fastreid")):
        out[f"MullerDistillTeacher{name}"] = _pct(_path(teachers, n, "metrics", "error"))
        st = students.get(n) if isinstance(students.get(n), Mapping) else {}
        t_star = st.get("t_star")
        out[f"MullerDistillTStar{name}"] = (f"{float(t_star):g}" if _isfloat(t_star) else None) \
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


def _representations_macros(m: Muller, out: dict[str, Any]) -> None:
    for d in MACRO_DATASETS:
        v = m.datasets.get(d)
        if not isinstance(v, Mapping) or not _ok(v):
            continue
        pre = f"Muller{d.capitalize()}"
        specs = v.get("specs") or {}
        for n, side in ((BASELINE, "Ce"), (LS_REFERENCE, "Ls")):
            for space, tpl in (("test", ""), ("test_templates", "Tpl")):
                out[f"{pre}{side}Ratio{tpl}"] = _fix(_path(specs, n, space, "ratio"))
                out[f"{pre}{side}Cv{tpl}"] = _fix(_path(specs, n, space, "between_cv"))
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
            for cl in ((v.get("claims") or {}).values() if isinstance(v, Mapping) and _ok(v) else ()):
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
    out["MullerTeacherArch"] = _arch(cfg.get("arch"))
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
