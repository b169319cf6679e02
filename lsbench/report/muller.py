"""The Müller et al. (2019) reproduction (``paper/results/muller-<experiment>.json``): tables and figure.

* ``muller-calibration``     -- per data set and recipe: error, ECE, ECE after temperature
  scaling, T, held-out ECE, paired Δ ECE from ``ce``; the published ECEs in a note;
* ``muller-distillation``    -- per data set and teacher: teacher error and student error at
  each distillation temperature (``*`` marks the T* chosen on held-out data);
* ``muller-representations`` -- per data set and recipe: cluster tightness (within/between
  ratio, spread of the centroid distances);
* ``muller-verdicts``        -- every sub-claim with its paired difference, the published value
  and the verdict, and each finding's verdict;
* figure ``muller_representations`` -- drawn by
  :func:`lsbench.experiments.muller.render_figure` (the renderer ``reproduce muller`` uses)
  from the projection recorded in ``muller-representations.json``, with a fixed PDF date.

Schema: ``lsbench/muller-results/1`` (:mod:`lsbench.experiments.muller`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping, Sequence

from lsbench.report import figures as F
from lsbench.report.fmt import DASH, excludes_zero, num, pm
from lsbench.report.proofs import P, placeholder
from lsbench.report.results import ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import Table

SCHEMA = "lsbench/muller-results/1"
EXPERIMENTS = ("calibration", "distillation", "representations")
COMMAND = "python -m lsbench reproduce muller"
FIGURE = "muller_representations"
BASELINE = "ce"


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


def skip_reason(d: str, v: Mapping) -> str:
    return f"{d}: skipped, {v.get('reason') or 'no reason recorded'}"


def _notes(m: Muller, extra: Sequence[str] = ()) -> tuple[str, ...]:
    """The table's notes; the caveats of every file go once under the verdicts table."""
    notes = list(extra)
    if m.status and m.status != "complete":
        notes.append(f"Recording status: {m.status}.")
    return tuple(notes)


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

REP_COLUMNS = ("data set", "recipe", "seeds", "within/between (test)", "centroid-distance CV (test)",
               "within/between (train)")


def representations_table(m: Muller) -> Table:
    rows = []
    for i, (d, v) in enumerate(m.datasets.items()):
        if i:
            rows.append(("\\midrule",))
        if not _ok(v):
            rows.append(_skipped_row(d, v, len(REP_COLUMNS)))
            continue
        for j, (n, a) in enumerate((v.get("specs") or {}).items()):
            test, train = a.get("test") or {}, a.get("train") or {}
            rows.append((d if j == 0 else "", n, str(len(a.get("seeds") or [])), pm(test.get("ratio"), 1, 3),
                         pm(test.get("between_cv"), 1, 3), pm(train.get("ratio"), 1, 3)))
    notes = ["Penultimate-layer activations: mean distance to the own class centroid over the mean distance "
             "between centroids (smaller = tighter), and the coefficient of variation of the distances "
             "between centroids (0 = equidistant); mean ± 95% CI over seeds."]
    return Table(
        name="muller-representations",
        caption="Müller et al. (2019) reproduction, representations: does label smoothing make tight, "
                "equidistant class clusters?",
        columns=REP_COLUMNS, rows=tuple(rows), sources=(m.file.source,),
        align="ll" + "r" * (len(REP_COLUMNS) - 2), notes=_notes(m, notes), shrink_only=True, ragged_notes=True,
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
    return Table(
        name="muller-verdicts",
        caption="Müller et al. (2019) reproduction: each published sub-claim as the sign of a paired "
                "difference (method − reference) over seeds, and its verdict.",
        columns=VERDICT_COLUMNS, rows=tuple(rows), sources=tuple(ms[e].file.source for e in EXPERIMENTS if e in ms),
        align=f"lllr{P('4.2cm')}l", notes=tuple(notes), shrink_only=True, ragged_notes=True,
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


def muller_macros(ms: Mapping[str, Muller]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in EXPERIMENTS:
        m = ms.get(e)
        key = "Muller" + e.capitalize() + "Verdict"
        out[key] = (m.verdict.get("verdict") if m is not None and isinstance(m.verdict, Mapping) else None)
    return out
