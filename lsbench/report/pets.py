"""The Oxford-IIIT Pets reproduction (``paper/results/pets-<profile>.json``): table, figures, macros.

* table ``pets-<profile>``: per split and recipe, the metrics as mean ± 95 % CI half-width over
  seeds, the paired difference in error from ``ce`` with its 95 % interval from the bootstrap over
  seeds and report images (:mod:`lsbench.stats`), the probability that the recipe is better and
  the verdicts (error, NLL, Brier, ECE, ECE after TS) of the fixed rule, beside the published
  anchors; a proved-identical recipe is one row that says so;
* figure ``reliability-<profile>``: reliability diagrams per recipe on the official test split,
  pooled over seeds, before and after temperature scaling;
* figure ``ece-error-<profile>``: error, NLL and ECE of ``uniform`` against ε (ε = 0 is ``ce``)
  per split with 95 % intervals over seeds, and every recipe's paired Δ error from ``ce`` with its
  bootstrap interval.

Schema: ``lsbench/pets-results/2`` (``lsbench/experiments/README.md``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from lsbench.published import PETS_ANCHORS
from lsbench.report import figures as F
from lsbench.report.fmt import DASH, num, pm
from lsbench.report.recorded import entries, recording_status
from lsbench.report.results import ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import Table, placeholder

PROFILES = ("frozen", "fastai")  # always present in the paper (placeholders when not recorded)
SCHEMA = "lsbench/pets-results/2"
COMMAND = "python -m lsbench reproduce pets"
BASELINE = "ce"
SPLIT_NAMES = {"official": "official (trainval → test)", "fastai": "fastai (random 80/20 per seed)"}
#: ε of the uniform sweep (ce is ε = 0); the names of lsbench.experiments.pets.config.EPSILON_SWEEP.
SWEEP = {"ce": 0.0, "uniform_eps0.05": 0.05, "uniform": 0.1, "uniform_eps0.2": 0.2, "uniform_eps0.3": 0.3}
VERDICT_METRICS = ("error", "nll", "brier", "ece", "ece_ts")
#: one sign per verdict, so the five verdicts of a row fit the table at text width (legend in its notes)
SHORT = {"better": "+", "worse": "−", "equivalent": "=", "inconclusive": "?"}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "h")
COLUMNS = ("recipe", "split", "seeds", "error %", "NLL", "ECE %", "ECE after TS %",
           "Δ error (pp) [95 %]", "P(better)", "verdicts: error NLL Brier ECE ECE-TS")


@dataclasses.dataclass(frozen=True)
class Pets:
    file: ResultFile
    profile: str
    backbone: str
    names: tuple[str, ...]                       # recipes in table order
    splits: tuple[str, ...]
    aggregates: Mapping[str, Mapping[str, Mapping]]   # split -> name -> aggregate
    statistics: Mapping[str, Mapping[str, Mapping]]   # split -> name -> metric -> bootstrap result
    identities: Mapping[str, Mapping[str, Mapping]]   # split -> name -> identity row
    runs: tuple[Mapping, ...]
    anchors: Mapping
    status: str | None
    n_test: int | None
    config: Mapping


def _summary(rf: ResultFile, s: Any, where: str) -> Mapping | None:
    if s is None:
        return None
    if not isinstance(s, Mapping):
        raise ResultsError(rf.path, f"{where}: expected a summary object, found {type(s).__name__}")
    need(rf, s, "mean", (int, float), where)
    need(rf, s, "ci", (int, float), where, optional=True)
    return s


def backbone_text(config: Mapping, profile: str) -> str:
    """The backbone as the table caption names it.

    >>> b = {"name": "efficientnet-lite2", "frozen": True, "pooling": "maxavg", "augmentation": {"flip": 0.5}}
    >>> backbone_text({"backbone": b}, "frozen")
    'efficientnet-lite2 (frozen, ImageNet weights, pooling maxavg, flip p = 0.5 via cached mirror features)'
    >>> backbone_text({"backbone": {**b, "augmentation": None}}, "frozen")
    'efficientnet-lite2 (frozen, ImageNet weights, pooling maxavg)'
    """
    b = config.get("backbone") if isinstance(config, Mapping) else None
    if not isinstance(b, Mapping):
        return "backbone not recorded"
    name = str(b.get("name") or "unknown backbone")
    bits = []
    if b.get("frozen"):
        bits.append("frozen, ImageNet weights" + (", BatchNorm trained" if profile == "fastai" else ""))
    if b.get("pooling"):
        bits.append(f"pooling {b['pooling']}")
    aug = b.get("augmentation")
    if profile == "frozen" and isinstance(aug, Mapping) and aug.get("flip"):
        bits.append(f"flip p = {aug['flip']:g} via cached mirror features")
    return name + (f" ({', '.join(bits)})" if bits else "")


def parse_pets(rf: ResultFile, profile: str | None = None) -> Pets:
    check_schema(rf, SCHEMA)
    prof = need(rf, rf.data, "profile", str)
    if profile is not None and prof != profile:
        raise ResultsError(rf.path, f"profile is {prof!r} but the file name says {profile!r}")
    aggregates = need(rf, rf.data, "aggregates", dict)
    for split, by_name, where in entries(rf, rf.data, "aggregates"):
        for name, agg, w in entries(rf, aggregates, split):
            need(rf, agg, "seeds", list, f"aggregates.{w}")
            for m, s in need(rf, agg, "metrics", dict, f"aggregates.{w}").items():
                _summary(rf, s, f"aggregates.{w}.metrics.{m}")
    statistics = need(rf, need(rf, rf.data, "statistics", dict), "by_split", dict, "statistics")
    for split, by_name in statistics.items():
        for name, by_metric in by_name.items():
            for m, r in by_metric.items():
                w = f"statistics.by_split.{split}.{name}.{m}"
                need(rf, r, "delta", (int, float), w)
                need(rf, r, "ci", list, w)
                need(rf, r, "verdict", str, w)
    identities = need(rf, rf.data, "identities", dict, optional=True) or {}
    runs = need(rf, rf.data, "runs", list)
    for _, r, where in entries(rf, rf.data, "runs", list):
        need(rf, r, "name", str, where)
        need(rf, r, "split_name", str, where)
        need(rf, r, "seed", int, where)
        test = need(rf, r, "test", dict, where)
        for key in ("reliability", "reliability_ts"):
            rel = need(rf, test, key, dict, f"{where}.test", optional=True)
            if rel is None:
                continue
            w = f"{where}.test.{key}"
            count = need(rf, rel, "count", list, w)
            for k in ("confidence", "accuracy"):
                if len(need(rf, rel, k, list, w)) != len(count):
                    raise ResultsError(rf.path, f"{w}.{k}: length differs from count")
    config = need(rf, rf.data, "config", dict, optional=True) or {}
    # The anchors and the recipe order are the ones the results file recorded; a file without
    # anchors gets today's (lsbench.published, a module below both experiments and report).
    anchors = need(rf, rf.data, "claim", dict, optional=True) or PETS_ANCHORS
    recorded = need(rf, rf.data, "recipes", dict, optional=True) or {}
    present = [n for by_name in aggregates.values() for n in by_name]
    order = [n for n in recorded if n in present]
    order += [n for n in dict.fromkeys(present) if n not in order]
    data = config.get("data") if isinstance(config, Mapping) else None
    n_test = data.get("n_test") if isinstance(data, Mapping) else None
    return Pets(rf, prof, backbone_text(config, prof), tuple(order), tuple(aggregates), aggregates, statistics,
                identities, tuple(runs), anchors, recording_status(rf), n_test if isinstance(n_test, int) else None,
                config)


# --------------------------------------------------------------------------- table


def _anchor_rows(anchors: Mapping) -> list[tuple[str, ...]]:
    rows = []
    blank = [""] * (len(COLUMNS) - 4)
    ls = anchors.get("label_smoothing") if isinstance(anchors, Mapping) else None
    ce = anchors.get("cross_entropy") if isinstance(anchors, Mapping) else None
    if isinstance(ce, Mapping) and "error_min" in ce and "error_max" in ce:
        reruns = ce.get("reruns")
        rows.append(("fastai CE (published)", "fastai", f"{reruns} reruns" if reruns else DASH,
                     f"{num(ce['error_min'], 1, 100)}–{num(ce['error_max'], 1, 100)}", *blank))
    if isinstance(ls, Mapping) and "error" in ls:
        rows.append(("fastai LS (published)", "fastai", DASH,
                     f"{num(ls['error'], 1, 100)} ({ls.get('note', 'reported')})", *blank))
    return rows


def verdicts(p: Pets, split: str, name: str) -> str:
    """``= − − − ?`` (:data:`SHORT`): the verdict of every :data:`VERDICT_METRICS` of ``name`` on ``split``."""
    st = p.statistics.get(split, {}).get(name) or {}
    return " ".join(SHORT.get((st.get(m) or {}).get("verdict"), DASH) for m in VERDICT_METRICS)


def pets_table(p: Pets) -> Table:
    rows = []
    for split in p.splits:
        if rows:
            rows.append(("\\midrule",))
        for name in p.names:
            a = p.aggregates[split].get(name)
            if a is None:
                continue
            m = a.get("metrics") or {}
            st = (p.statistics.get(split, {}).get(name) or {}).get("error")
            ident = p.identities.get(split, {}).get(name)
            if name == BASELINE:
                tail = ["(baseline)", "", ""]
            elif ident:
                # short cells keep the table at text width; the full sentence is ident["row"]
                tail = [f"≡ {ident['twin']}", "", f"proved; {ident['identical']}/{ident['compared']} identical"]
            elif st:
                tail = [f"{num(st['delta'], 2, 100, sign=True)} [{num(st['ci'][0], 2, 100, sign=True)}, "
                        f"{num(st['ci'][1], 2, 100, sign=True)}]", num(st.get("p_better"), 2),
                        verdicts(p, split, name)]
            else:
                tail = [DASH, DASH, DASH]
            rows.append((name, split, str(len(a.get("seeds") or [])), pm(m.get("error"), 100, 2),
                         pm(m.get("nll"), 1, 3), pm(m.get("ece"), 100, 2), pm(m.get("ece_ts"), 100, 2), *tail))
    anchor_rows = _anchor_rows(p.anchors)
    if anchor_rows:
        rows.append(("\\midrule",))
        rows.extend(anchor_rows)
    notes = ["Mean ± 95% Student-t CI half-width over seeds. Δ: paired difference from ce (same seeds, same "
             "report images), 95% percentile interval of a bootstrap resampling seeds and report images together "
             "(lsbench.stats, scipy.stats.bootstrap, 2000 replicates); P(better) = share of replicates with Δ < 0. "
             "Verdict rule (fixed before the runs): equivalent if the interval lies inside ±margin (error 0.5 pp, "
             "NLL 0.01, Brier 0.005, ECE and ECE-TS 0.5 pp), else better/worse if it excludes 0, else "
             "inconclusive; in the verdicts column + better, − worse, = equivalent, ? inconclusive. "
             "Splits: official = train on trainval, report on test; fastai = random 20% of all "
             "images as the report set, redrawn per seed, the rest trains. ECE: 15 equal-width bins; TS: "
             "temperature cross-fitted on the two halves of the report set."]
    setup = p.anchors.get("setup") if isinstance(p.anchors, Mapping) else None
    if setup:
        notes.append(f"Published anchors: {setup}.")
    data = p.config.get("data") if isinstance(p.config, Mapping) else None
    limit = data.get("per_class_limit") if isinstance(data, Mapping) else None
    if limit:
        notes.append(f"Quick run: only the first {limit} images of each class in each split were used.")
    if p.status and p.status != "complete":
        notes.append(f"Recording status: {p.status} (not every requested run is in this file).")
    caption = f"Oxford-IIIT Pets, profile {p.profile}: backbone {p.backbone}, fastai head, both splits."
    return Table(name=f"pets-{p.profile}", caption=caption, columns=COLUMNS, rows=tuple(rows),
                 sources=(p.file.source,), align="ll" + "r" * (len(COLUMNS) - 3) + "l", notes=tuple(notes),
                 shrink_only=True, ragged_notes=True)


def pets_placeholder(profile: str) -> Table:
    return placeholder(f"pets-{profile}", f"Oxford-IIIT Pets, profile {profile}.", COLUMNS,
                       f"{COMMAND} --profile {profile}")


# --------------------------------------------------------------------------- figures


def pooled_reliability(runs: Sequence[Mapping], name: str, key: str = "reliability") -> dict | None:
    """Bins of every seed of ``name`` pooled: counts summed, confidence/accuracy count-weighted."""
    bins = [r["test"][key] for r in runs if r["name"] == name and isinstance(r["test"].get(key), Mapping)]
    if not bins:
        return None
    m = len(bins[0]["count"])
    bins = [b for b in bins if len(b["count"]) == m]
    count = [0] * m
    conf = [0.0] * m
    acc = [0.0] * m
    for b in bins:
        for i in range(m):
            c = int(b["count"][i] or 0)
            if c and b["confidence"][i] is not None and b["accuracy"][i] is not None:
                count[i] += c
                conf[i] += c * float(b["confidence"][i])
                acc[i] += c * float(b["accuracy"][i])
    edges = bins[0].get("edges") or [i / m for i in range(m + 1)]
    return {"edges": [float(e) for e in edges], "count": count,
            "confidence": [conf[i] / count[i] if count[i] else None for i in range(m)],
            "accuracy": [acc[i] / count[i] if count[i] else None for i in range(m)],
            "seeds": len(bins)}


def _mean(agg: Mapping, metric: str) -> float | None:
    s = (agg.get("metrics") or {}).get(metric)
    return None if not s else s.get("mean")


def reliability_figure(p: Pets):
    split = "official" if "official" in p.splits else (p.splits[0] if p.splits else None)
    runs = [r for r in p.runs if r.get("split_name") == split]
    names = [n for n in p.names if pooled_reliability(runs, n) is not None]
    if not names:
        return None
    aggregates = p.aggregates[split]

    def draw():
        cols = min(4, len(names))
        nrows = math.ceil(len(names) / cols)
        fig = F.new_figure(1.75 * cols + 0.3, 2.0 * nrows + 0.45, layout="constrained")
        axes = fig.subplots(nrows, cols, squeeze=False, sharex=True, sharey=True)
        for k, name in enumerate(names):
            ax = axes[k // cols][k % cols]
            rel = pooled_reliability(runs, name)
            ts = pooled_reliability(runs, name, "reliability_ts")
            edges = rel["edges"]
            width = [b - a for a, b in zip(edges[:-1], edges[1:])]
            left = edges[:-1]
            accs = [a if a is not None else 0.0 for a in rel["accuracy"]]
            ax.bar(left, accs, width=width, align="edge", color="#1f77b4", alpha=0.75, edgecolor="white",
                   linewidth=0.4, label="accuracy")
            gap_bottom = [min(a, c) if c is not None else 0.0 for a, c in zip(accs, rel["confidence"])]
            gap_h = [abs(c - a) if c is not None else 0.0 for a, c in zip(accs, rel["confidence"])]
            ax.bar(left, gap_h, bottom=gap_bottom, width=width, align="edge", fill=False, hatch="////",
                   edgecolor="#d62728", linewidth=0.5, label="gap to mean confidence")
            if ts is not None:
                xs = [c for c, n in zip(ts["confidence"], ts["count"]) if n]
                ys = [a for a, n in zip(ts["accuracy"], ts["count"]) if n]
                ax.plot(xs, ys, "o-", color="#2ca02c", markersize=2.2, linewidth=0.9, label="after TS")
            ax.plot([0, 1], [0, 1], "--", color="#444444", linewidth=0.7)
            ece = _mean(aggregates[name], "ece")
            ece_ts = _mean(aggregates[name], "ece_ts")
            title = name
            if ece is not None:
                title += f"\nECE {num(ece, 1, 100)}%"
                if ece_ts is not None:
                    title += f" → {num(ece_ts, 1, 100)}% (TS)"
            ax.set_title(title)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_aspect("equal")
            if k % cols == 0:
                ax.set_ylabel("accuracy")
            if k // cols == nrows - 1:
                ax.set_xlabel("confidence")
        for k in range(len(names), nrows * cols):
            axes[k // cols][k % cols].set_axis_off()
        handles, labels = axes[0][0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="outside lower center", ncol=len(labels), frameon=False)
        return fig

    caption = (f"Reliability diagrams on the Pets {split} split's report set (profile {p.profile}, {p.backbone}), "
               "pooled over seeds: bars are the accuracy per confidence bin (15 bins), the shaded part "
               "the gap to the mean confidence, the line the bins after temperature scaling.")
    return draw, caption


def ece_error_figure(p: Pets):
    """Error, NLL and ECE against ε (uniform; ε = 0 is ce) per split, and the paired Δ error per recipe."""
    sweeps = {split: [(eps, p.aggregates[split][n]["metrics"]) for n, eps in sorted(SWEEP.items(), key=lambda kv: kv[1])
                      if n in p.aggregates[split]] for split in p.splits}
    sweeps = {k: v for k, v in sweeps.items() if len(v) >= 2}
    deltas = [(split, n, st["error"]) for split in p.splits for n, st in p.statistics.get(split, {}).items()
              if st.get("error") and n not in p.identities.get(split, {})]
    if not sweeps and not deltas:
        return None

    def draw():
        fig = F.new_figure(7.2, 4.9, layout="constrained")
        axes = fig.subplots(2, 2)
        panels = (("error", "error (%)", 100), ("nll", "NLL (nats)", 1), ("ece", "ECE (%)", 100))
        for k, (metric, label, scale) in enumerate(panels):
            ax = axes[k // 2][k % 2]
            for j, (split, rows) in enumerate(sweeps.items()):
                xs = [eps for eps, m in rows if m.get(metric)]
                ys = [m[metric]["mean"] * scale for _, m in rows if m.get(metric)]
                es = [(m[metric].get("ci") or 0.0) * scale for _, m in rows if m.get(metric)]
                ax.errorbar(xs, ys, yerr=es, fmt=MARKERS[j] + "-", color=F.PALETTE[j % len(F.PALETTE)],
                            markersize=3.5, capsize=2, linewidth=0.9, label=SPLIT_NAMES.get(split, split))
                if metric == "ece":
                    ts = [(eps, m["ece_ts"]) for eps, m in rows if m.get("ece_ts")]
                    ax.errorbar([e for e, _ in ts], [t["mean"] * scale for _, t in ts],
                                yerr=[(t.get("ci") or 0.0) * scale for _, t in ts], fmt=MARKERS[j] + ":",
                                mfc="white", color=F.PALETTE[j % len(F.PALETTE)], markersize=3.5, capsize=2,
                                linewidth=0.8, label=f"{split}, after TS")
            if metric == "error" and isinstance(p.anchors.get("cross_entropy"), Mapping):
                ce = p.anchors["cross_entropy"]
                if "error_min" in ce and "error_max" in ce:
                    ax.axhspan(ce["error_min"] * 100, ce["error_max"] * 100, color="#999999", alpha=0.2,
                               label="fastai CE anchors")
            ax.set_xlabel("ε (uniform; 0 = ce)")
            ax.set_ylabel(label)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=5.5, frameon=False)
        ax = axes[1][1]
        for i, (split, name, st) in enumerate(deltas):
            j = p.splits.index(split)
            lo, hi = st["ci"]
            ax.errorbar([st["delta"] * 100], [i], xerr=[[(st["delta"] - lo) * 100], [(hi - st["delta"]) * 100]],
                        fmt=MARKERS[j], color=F.PALETTE[j % len(F.PALETTE)], markersize=3, capsize=1.5,
                        linewidth=0.8)
        ax.axvspan(-0.5, 0.5, color="#999999", alpha=0.2)
        ax.axvline(0, color="#444444", linewidth=0.6)
        ax.set_yticks(range(len(deltas)), [f"{n} ({s})" for s, n, _ in deltas], fontsize=5)
        ax.invert_yaxis()
        ax.set_xlabel("Δ error vs ce (pp), 95% seeds × images bootstrap")
        return fig

    caption = (f"Pets (profile {p.profile}, {p.backbone}): error, NLL and ECE of uniform label smoothing "
               "against ε (ε = 0 is cross-entropy), mean and 95% CI over seeds per split (open markers: ECE "
               "after temperature scaling; band: the fastai cross-entropy anchors), and every recipe's paired "
               "difference in error from cross-entropy with its 95% bootstrap interval over seeds and images "
               "(band: the ±0.5 pp equivalence margin).")
    return draw, caption


def _verdict_count(p: Pets, split: str) -> str | None:
    """``"2 better, 5 equivalent, ..."``: the error verdicts of the recipes (proved identities excluded)."""
    st = {n: v["error"]["verdict"] for n, v in p.statistics.get(split, {}).items()
          if v.get("error") and n not in p.identities.get(split, {})}
    if not st:
        return None
    words = ("better", "worse", "equivalent", "inconclusive")
    return ", ".join(f"{sum(v == w for v in st.values())} {w}" for w in words if any(v == w for v in st.values()))


def pets_macros(p: Pets | None, profile: str) -> dict[str, Any]:
    prefix = "Pets" + profile.capitalize()
    keys = ["Backbone", "Seeds", "Recipes", "TestN"] + [f"{k}{s.capitalize()}" for s in ("official", "fastai")
                                                        for k in ("CeError", "ErrorVerdicts", "NTrain", "NReport")]
    out: dict[str, Any] = {f"{prefix}{k}": None for k in keys}
    if p is None:
        return out
    seeds = sorted({int(s) for by in p.aggregates.values() for a in by.values() for s in (a.get("seeds") or [])})
    out[f"{prefix}Backbone"] = p.backbone
    out[f"{prefix}Seeds"] = len(seeds)
    out[f"{prefix}Recipes"] = len(p.names)
    out[f"{prefix}TestN"] = p.n_test
    for split in p.splits:
        key = split.capitalize()
        ce = (p.aggregates[split].get(BASELINE) or {}).get("metrics", {}).get("error")
        out[f"{prefix}CeError{key}"] = pm(ce, 100, 2) if ce else None
        out[f"{prefix}ErrorVerdicts{key}"] = _verdict_count(p, split)
        run = next((r for r in p.runs if r.get("split_name") == split), None)
        if run is not None and isinstance(run.get("split"), Mapping):
            out[f"{prefix}NTrain{key}"] = run["split"].get("n_train")
            out[f"{prefix}NReport{key}"] = run["split"].get("n_report")
    return out


def anchor_macros(anchors: Mapping | None = None) -> dict[str, Any]:
    a = anchors or PETS_ANCHORS
    ls, ce = a.get("label_smoothing", {}), a.get("cross_entropy", {})
    return {
        "AnchorLSError": num(ls["error"], 1, 100) if "error" in ls else None,
        "AnchorCEErrorMin": num(ce["error_min"], 1, 100) if "error_min" in ce else None,
        "AnchorCEErrorMax": num(ce["error_max"], 1, 100) if "error_max" in ce else None,
        "AnchorCEReruns": ce.get("reruns"),
    }
