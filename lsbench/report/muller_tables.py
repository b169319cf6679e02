"""The Müller et al. (2019) reproduction (``paper/results/muller-<experiment>.json``): tables and figure.

The ``\\Muller...`` macros are :mod:`lsbench.report.muller_macros`; :mod:`lsbench.report.muller` gives both.

* ``muller-calibration``     -- per data set and recipe: error, ECE, ECE after temperature
  scaling, T, held-out ECE, paired Δ ECE from ``ce``; the published ECEs in a note;
* ``muller-distillation``    -- per data set and teacher: teacher error and student error at
  each distillation temperature (``*`` marks the T* chosen on held-out data);
* ``muller-representations`` -- per data set and recipe: inside the template subspace (the
  verdict's measures) the within-class spread and the CV of the wrong-class template distances,
  and, marked supplementary, the centroid measures of the full penultimate space; the paired
  differences of the sub-claims and the ``supplementary_claims`` (not part of the verdict);
* ``muller-verdicts``        -- every sub-claim with its precondition (met / not met), paired
  difference, the published value and the verdict, and each finding's verdict;
* figure ``muller_representations`` -- drawn by :func:`render_figure` (the renderer
  ``reproduce muller`` uses too) from the projection recorded in
  ``muller-representations.json``, with a fixed PDF date.

Notes never print machine-specific absolute paths (a skipped data set's reason names the cache
directory it looked in): see :func:`portable_paths`.

Schema: ``lsbench/muller-results/1`` (:mod:`lsbench.experiments.muller`).
"""

from __future__ import annotations

import dataclasses
import io
import re
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from lsbench.provenance import atomic_write_bytes
from lsbench.report import figures as F
from lsbench.report.fmt import DASH, excludes_zero, num, pm
from lsbench.report.proofs import P
from lsbench.report.recorded import entries, recording_status
from lsbench.report.results import ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import Table, placeholder

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
    for _, v, where in entries(rf, rf.data, "datasets"):
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
    return Muller(rf, exp, datasets, verdict, tuple(str(c) for c in caveats), published,
                  bool(rf.data.get("quick")), recording_status(rf))


def is_recorded(v: Mapping) -> bool:
    return v.get("status") in ("ok", "incomplete")


def _skipped_row(d: str, v: Mapping, width: int) -> tuple[str, ...]:
    return (d, "skipped (see the verdicts table)", *[""] * (width - 2))


def _recorded_datasets(m: Muller, rows: list, width: int):
    """The ``(dataset, aggregates)`` of ``m`` that have runs, appending to ``rows`` a rule between
    data sets and a "skipped" row (``width`` cells) for each data set without runs."""
    for i, (d, v) in enumerate(m.datasets.items()):
        if i:
            rows.append(("\\midrule",))
        if not is_recorded(v):
            rows.append(_skipped_row(d, v, width))
            continue
        yield d, v


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


def _experiment_table(m: Muller, experiment: str, caption: str, columns: Sequence[str], rows: list,
                      notes: list[str], left: int) -> Table:
    """The table ``muller-<experiment>`` of one results file: ``left`` left-aligned columns, the rest
    right-aligned, with the file's recording status among the notes."""
    return Table(name=f"muller-{experiment}", caption=caption, columns=tuple(columns), rows=tuple(rows),
                 sources=(m.file.source,), align="l" * left + "r" * (len(columns) - left),
                 notes=_notes(m, notes), shrink_only=True, ragged_notes=True)


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
    for d, v in _recorded_datasets(m, rows, len(CAL_COLUMNS)):
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
    caption = ("Müller et al. (2019) reproduction, calibration: does label smoothing lower the ECE "
               "(15 bins) about as much as temperature scaling?")
    return _experiment_table(m, "calibration", caption, CAL_COLUMNS, rows, notes, left=2)


# --------------------------------------------------------------------------- distillation


def temperature_keys(v: Mapping) -> list[str]:
    ts: list[str] = []
    for st in (v.get("students") or {}).values():
        for t in (st.get("T") or {}) if isinstance(st, Mapping) else ():
            if t not in ts:
                ts.append(t)
    return sorted(ts, key=lambda t: float(t) if is_float(t) else float("inf"))


def is_float(s: str) -> bool:
    try:
        float(s)
    except (TypeError, ValueError):
        return False
    return True


def distillation_table(m: Muller) -> Table:
    temps: list[str] = []
    for v in m.datasets.values():
        if is_recorded(v):
            temps += [t for t in temperature_keys(v) if t not in temps]
    temps.sort(key=lambda t: float(t) if is_float(t) else float("inf"))
    columns = ("data set", "teacher", "teacher error %", *[f"student T = {t}" for t in temps])
    rows = []
    for d, v in _recorded_datasets(m, rows, len(columns)):
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
    caption = ("Müller et al. (2019) reproduction, distillation: is a teacher trained with label smoothing "
               "a better model but a worse teacher?")
    return _experiment_table(m, "distillation", caption, columns, rows, notes, left=2)


# --------------------------------------------------------------------------- representations

REP_COLUMNS = ("data set", "space", "recipe", "seeds", "spread (test)", "wrong-class / centroid CV (test)",
               "spread (train)")
#: (label in the table, test space key, train space key, claims key, spread key, CV key): the template
#: subspace (the verdict's measures) and the full penultimate space (supplementary).
REP_SPACES = (("template subspace", "test_geometry", "train_geometry", "claims", "spread", "wrong_spread"),
              ("full penultimate (suppl.)", "test", "train", "supplementary_claims", "ratio", "between_cv"))
#: Which sub-claim is the paired difference of which column (on test examples).
REP_CLAIM_MEASURE = {"ls_tighter_clusters": "spread", "ls_equidistant_wrong_templates": "cv",
                     "ls_equidistant_centroids": "cv"}


def _claim_text(c: str, cl: Mapping, scale: float = 1.0, digits: int = 3, unit: str = "") -> str:
    diff = cl.get("difference") if isinstance(cl, Mapping) else None
    d = (pm(diff, scale, digits, sign=True) + unit) if diff else DASH
    return f"{c} {d} ({cl.get('verdict') if isinstance(cl, Mapping) else DASH})"


def representations_table(m: Muller) -> Table:
    rows = []
    supplementary: dict[str, list[str]] = {}
    any_suppl = False
    for d, v in _recorded_datasets(m, rows, len(REP_COLUMNS)):
        specs = v.get("specs") or {}
        first = True
        for label, test_key, train_key, claims_key, spread, cv in REP_SPACES:
            if not any(isinstance(a.get(test_key), Mapping) for a in specs.values()):
                continue  # this space was not recorded (older results)
            suppl = claims_key != "claims"
            any_suppl = any_suppl or suppl
            for j, (n, a) in enumerate(specs.items()):
                test, train = a.get(test_key) or {}, a.get(train_key) or {}
                rows.append((d if first else "", label if j == 0 else "", n, str(len(a.get("seeds") or [])),
                             pm(test.get(spread), 1, 3), pm(test.get(cv), 1, 3), pm(train.get(spread), 1, 3)))
                first = False
            claims = v.get(claims_key) or {}
            if isinstance(claims, Mapping) and claims:
                cells = {"spread": DASH, "cv": DASH}
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
                rows.append(("", "", what, "", cells["spread"], cells["cv"], DASH))
    notes = ["Template subspace (the verdict's measures, as the paper's Figure 1 argues): the activations "
             "projected onto the $(K-1)$-dimensional span of the template differences $w_k - w_0$ (the only "
             "directions that change the softmax output); spread = mean distance to the own class mean over "
             "the mean distance between class means (smaller = tighter); wrong-class spread = the std of each "
             "example's squared distances to the wrong-class templates over how much closer its own template "
             "is, averaged (0 = equidistant wrong classes). Mean ± 95% CI over seeds. Δ: the paired difference of a sub-claim "
             "(* the CI excludes 0)."]
    if any_suppl:
        notes.append("Full penultimate (suppl.): not part of the verdict; the same spread in the whole "
                     "penultimate space (including directions the last layer ignores) and, in the CV column, the "
                     "coefficient of variation of the distances between class centroids.")
    if supplementary:
        notes.append("Supplementary sub-claims (full penultimate space, same rule, not part of the verdict): "
                     + "; ".join(f"{d}: {', '.join(c)}" for d, c in supplementary.items()) + ".")
    caption = ("Müller et al. (2019) reproduction, representations: does label smoothing make tight, "
               "equidistant class clusters?")
    return _experiment_table(m, "representations", caption, REP_COLUMNS, rows, notes, left=3)


# --------------------------------------------------------------------------- verdicts

VERDICT_COLUMNS = ("finding", "data set", "sub-claim", "precondition", "difference", "published", "verdict")


def _precondition_cell(cl: Mapping) -> str:
    pre = cl.get("precondition")
    if not isinstance(pre, Mapping) or not isinstance(pre.get("met"), bool):
        return DASH
    return "met" if pre["met"] else "not met"


def verdicts_table(ms: Mapping[str, Muller]) -> Table:
    rows = []
    rule = None
    skipped: list[str] = []
    premises: dict[str, str] = {}
    for i, e in enumerate(e for e in EXPERIMENTS if e in ms):
        m = ms[e]
        rule = rule or m.file.data.get("verdict_rule")
        if i:
            rows.append(("\\midrule",))
        scale, digits, unit = (1.0, 3, "") if e == "representations" else (100.0, 2, " pp")
        for d, v in m.datasets.items():
            if not is_recorded(v):
                rows.append((e, d, DASH, DASH, DASH, DASH, "skipped"))
                skipped.append(f"{e}, {skip_reason(d, v)}.")
                continue
            claims = v.get("claims") or {}
            if not claims:
                rows.append((e, d, DASH, DASH, DASH, DASH, str(v.get("verdict") or DASH)))
            for c, cl in claims.items():
                diff = cl.get("difference")
                pre = cl.get("precondition")
                if isinstance(pre, Mapping) and isinstance(pre.get("description"), str):
                    premises.setdefault(f"{e}/{d}/{c}", pre["description"])
                rows.append((e, d, c, _precondition_cell(cl), (pm(diff, scale, digits, sign=True) + unit) if diff else DASH,
                             str(cl.get("published") or DASH), str(cl.get("verdict"))))
        overall = m.verdict.get("verdict") if isinstance(m.verdict, Mapping) else None
        rows.append((e, "all", "(finding)", "", "", "", str(overall or DASH)))
    notes = list(skipped)
    if premises:
        notes.append("Preconditions (checked before the sign; not met: the verdict is 'precondition not met'): "
                     + "; ".join(f"{k}: {t}" for k, t in premises.items()) + ".")
    if rule:
        notes.append(f"Verdict rule: {rule}")
    quick = [e for e in EXPERIMENTS if e in ms and ms[e].quick]
    if quick:
        notes.append(f"QUICK configuration ({', '.join(quick)}): tiny data and models, not a reproduction.")
    caveats = dict.fromkeys(c for e in EXPERIMENTS if e in ms for c in ms[e].caveats)
    notes += [f"Caveat: {c}" for c in caveats]
    if "representations" in ms and any(is_recorded(v) and v.get("supplementary_claims")
                                         for v in ms["representations"].datasets.values()):
        notes.append("The full-penultimate-space sub-claims are supplementary and not part of any verdict "
                     "(see the representations table).")
    notes = [portable_paths(n) for n in notes]
    return Table(
        name="muller-verdicts",
        caption="Müller et al. (2019) reproduction: each published sub-claim as the sign of a paired "
                "difference (method − reference) over seeds, and its verdict.",
        columns=VERDICT_COLUMNS, rows=tuple(rows), sources=tuple(ms[e].file.source for e in EXPERIMENTS if e in ms),
        align=f"llllr{P('3.4cm')}l", notes=tuple(notes), shrink_only=True, ragged_notes=True,
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
        if is_recorded(v) and isinstance(fig, Mapping) and fig.get("panels"):
            for k, p in enumerate(fig["panels"]):
                w = f"datasets.{d}.figure.panels[{k}]"
                for key in ("spec", "split", "coords", "labels", "templates"):
                    need(m.file, p, key, None, w)
            need(m.file, fig, "classes", list, f"datasets.{d}.figure")
            need(m.file, fig, "seed", None, f"datasets.{d}.figure")
            out[d] = fig
    return out


def _row_limits(panels: Sequence[Mapping]) -> tuple[tuple[float, float], tuple[float, float]]:
    """One pair of axis limits for every panel of a row (LS and no LS on the same axes), square so that
    equal aspect keeps them: the bounding box of all points and templates, 5 % margin."""
    pts = np.concatenate([np.asarray(p["coords"], np.float64).reshape(-1, 2) for p in panels]
                         + [np.asarray(p["templates"], np.float64).reshape(-1, 2) for p in panels])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    centre, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-9) * 1.05
    return (centre[0] - half, centre[0] + half), (centre[1] - half, centre[1] + half)


def render_figure(panels_by_dataset: Mapping[str, Mapping], out_base: Path) -> list[str]:
    """Müller's Figure 1 layout: a row per data set, columns ce/train, ce/test, LS/train, LS/test, every
    panel of a row on the same axes; drawn at the paper's text width in the house style
    (:mod:`lsbench.report.figures`, tick labels 7 pt at print size).

    Writes ``out_base.png`` and ``out_base.pdf`` atomically; returns their paths.
    """
    from matplotlib.lines import Line2D

    rows = [d for d in panels_by_dataset if panels_by_dataset[d].get("panels")]
    if not rows:
        return []
    order = [(BASELINE, "train"), (BASELINE, "test"), (LS_REFERENCE, "train"), (LS_REFERENCE, "test")]
    colors = ["tab:blue", "tab:orange", "tab:green"]
    with F.style():
        fig = F.new_figure(F.TEXT_WIDTH_IN, 0.3 + 1.55 * len(rows), layout="constrained")
        axes = fig.subplots(len(rows), 4, squeeze=False)
        for i, d in enumerate(rows):
            fig_data = panels_by_dataset[d]
            panels = {(p["spec"], p["split"]): p for p in fig_data["panels"]}
            names = fig_data.get("class_names") or [str(c) for c in fig_data["classes"]]
            xlim, ylim = _row_limits(list(panels.values()))
            for j, key in enumerate(order):
                ax = axes[i][j]
                p = panels.get(key)
                if p is None:
                    ax.set_axis_off()
                    continue
                xy = np.asarray(p["coords"], np.float64)
                lab = np.asarray(p["labels"])
                for c_i, c in enumerate(fig_data["classes"]):
                    m = lab == c
                    ax.scatter(xy[m, 0], xy[m, 1], s=3, alpha=0.5, color=colors[c_i], linewidths=0,
                               rasterized=True)
                tp = np.asarray(p["templates"], np.float64)
                ax.scatter(tp[:, 0], tp[:, 1], marker="x", s=30, color="black", linewidths=1.0)
                ax.set_title(f"{'no LS' if key[0] == BASELINE else 'LS α = 0.1'}, {key[1]}", fontsize=8)
                if j == 0:
                    ax.set_ylabel(d)
                ax.set_xlim(*xlim)
                ax.set_ylim(*ylim)
                ax.set_aspect("equal", adjustable="box")
                ax.locator_params(nbins=4)
                if j:
                    ax.tick_params(labelleft=False)
            handles = [Line2D([], [], ls="", marker="o", ms=3, color=colors[c_i], label=names[c_i])
                       for c_i in range(len(fig_data["classes"]))]
            handles.append(Line2D([], [], ls="", marker="x", ms=4, color="black", label="templates $w_k$"))
            # outside the panels, right of the row: it hides no point
            axes[i][3].legend(handles=handles, loc="upper left", bbox_to_anchor=(1.03, 1.0), handletextpad=0.2,
                              borderpad=0.3, borderaxespad=0.0, frameon=False)
        fig.suptitle("Penultimate activations projected onto the plane through three templates "
                     f"(seed {panels_by_dataset[rows[0]]['seed']}; same axes in each row)", fontsize=8)
        paths = []
        for ext, meta in (("png", F.PNG_METADATA), ("pdf", F.PDF_METADATA)):
            buf = io.BytesIO()
            fig.savefig(buf, format=ext, dpi=F.DPI, metadata=meta)
            target = out_base.with_suffix(f".{ext}")
            atomic_write_bytes(target, buf.getvalue())
            paths.append(str(target))
    return paths


def render_representations(m: Muller, figures_dir: Path) -> list[Path]:
    """Re-draw ``muller_representations.{png,pdf}`` with :func:`render_figure` (the renderer
    ``reproduce muller`` uses too) and a fixed PDF date."""
    panels = figure_panels(m)
    if not panels:
        return []
    with F.source_date_epoch("0"):
        paths = render_figure(panels, Path(figures_dir) / FIGURE)
    return [Path(p) for p in paths]


REPRESENTATIONS_CAPTION = ("Müller et al. (2019) Figure 1 reproduced: penultimate-layer activations of three "
                           "classes projected onto the plane through their templates, without and with label "
                           "smoothing, on training and test examples.")


