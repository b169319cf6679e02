"""The Oxford-IIIT Pets reproduction (``paper/results/pets-<profile>.json``): table and figures.

* table ``pets-<profile>``: per recipe, test error / NLL / ECE / ECE after temperature
  scaling as mean ± 95 % CI half-width over seeds, and the paired difference from ``ce`` on
  the same seeds (``*``: the CI of the difference excludes 0), beside the published anchors;
* figure ``reliability-<profile>``: reliability diagrams per recipe on the test split, pooled
  over seeds (bin counts summed; bin confidence and accuracy count-weighted), before and
  after temperature scaling;
* figure ``ece-error-<profile>``: ECE against error per recipe with 95 % CI bars.

Schema: ``lsbench/pets-results/1`` (``lsbench/experiments/README.md``).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

from lsbench.published import PETS_ANCHORS
from lsbench.report import figures as F
from lsbench.report.fmt import DASH, excludes_zero, num, pm
from lsbench.report.recorded import entries, recording_status
from lsbench.report.results import PETS_SCHEMA, ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import Table, placeholder

PROFILES = ("frozen", "fastai")  # always present in the paper (placeholders when not recorded)
COMMAND = "python -m lsbench reproduce pets"
BASELINE = "ce"
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">")
COLUMNS = ("recipe", "seeds", "error %", "NLL", "ECE %", "ECE after TS %",
           "Δ error (pp)", "Δ NLL", "Δ ECE (pp)", "Δ ECE after TS (pp)")


@dataclasses.dataclass(frozen=True)
class Pets:
    file: ResultFile
    profile: str
    backbone: str
    names: tuple[str, ...]                 # recipes in table order
    aggregates: Mapping[str, Mapping]
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
    b = config.get("backbone") if isinstance(config, Mapping) else None
    if not isinstance(b, Mapping):
        return "backbone not recorded"
    name = str(b.get("name") or "unknown backbone")
    bits = []
    if b.get("from_scratch"):
        bits.append("trained from scratch")
    elif b.get("frozen"):
        bits.append("frozen, ImageNet weights")
    if b.get("pooling"):
        bits.append(f"pooling {b['pooling']}")
    return name + (f" ({', '.join(bits)})" if bits else "")


def parse_pets(rf: ResultFile, profile: str | None = None) -> Pets:
    check_schema(rf, PETS_SCHEMA)
    prof = need(rf, rf.data, "profile", str)
    if profile is not None and prof != profile:
        raise ResultsError(rf.path, f"profile is {prof!r} but the file name says {profile!r}")
    aggregates = need(rf, rf.data, "aggregates", dict)
    for name, agg, where in entries(rf, rf.data, "aggregates"):
        need(rf, agg, "seeds", list, where)
        metrics = need(rf, agg, "metrics", dict, where)
        for m, s in metrics.items():
            _summary(rf, s, f"{where}.metrics.{m}")
        paired = need(rf, agg, "paired_vs_ce", dict, where, optional=True)
        for m, s in (paired or {}).items():
            _summary(rf, s, f"{where}.paired_vs_ce.{m}")
    runs = need(rf, rf.data, "runs", list)
    for _, r, where in entries(rf, rf.data, "runs", list):
        need(rf, r, "name", str, where)
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
    order = [n for n in recorded if n in aggregates]
    order += [n for n in aggregates if n not in order]
    status = recording_status(rf)
    data = config.get("data") if isinstance(config, Mapping) else None
    n_test = data.get("n_test") if isinstance(data, Mapping) else None
    return Pets(rf, prof, backbone_text(config, prof), tuple(order), aggregates, tuple(runs), anchors,
                status, n_test if isinstance(n_test, int) else None,
                config)


# --------------------------------------------------------------------------- table


def _delta(summary: Mapping | None, scale: float, digits: int) -> str:
    if not summary:
        return DASH
    s = pm(summary, scale, digits, sign=True)
    return s + ("*" if excludes_zero(summary) else "")


def _anchor_rows(anchors: Mapping) -> list[tuple[str, ...]]:
    rows = []
    blank = [""] * (len(COLUMNS) - 3)
    ls = anchors.get("label_smoothing") if isinstance(anchors, Mapping) else None
    ce = anchors.get("cross_entropy") if isinstance(anchors, Mapping) else None
    if isinstance(ce, Mapping) and "error_min" in ce and "error_max" in ce:
        reruns = ce.get("reruns")
        rows.append(("fastai, cross-entropy (published)",
                     f"{reruns} reruns" if reruns else DASH,
                     f"{num(ce['error_min'], 1, 100)}–{num(ce['error_max'], 1, 100)}", *blank))
    if isinstance(ls, Mapping) and "error" in ls:
        rows.append(("fastai, label smoothing (published)", DASH,
                     f"{num(ls['error'], 1, 100)} ({ls.get('note', 'reported')})", *blank))
    return rows


def pets_table(p: Pets) -> Table:
    rows = []
    for name in p.names:
        a = p.aggregates[name]
        m = a.get("metrics") or {}
        d = a.get("paired_vs_ce") or {}
        if name == BASELINE:
            deltas = ["(baseline)"] + [""] * 3
        else:
            deltas = [_delta(d.get("error"), 100, 2), _delta(d.get("nll"), 1, 3),
                      _delta(d.get("ece"), 100, 2), _delta(d.get("ece_ts"), 100, 2)]
        rows.append((name, str(len(a.get("seeds") or [])), pm(m.get("error"), 100, 2), pm(m.get("nll"), 1, 3),
                     pm(m.get("ece"), 100, 2), pm(m.get("ece_ts"), 100, 2), *deltas))
    anchor_rows = _anchor_rows(p.anchors)
    if anchor_rows:
        rows.append(("\\midrule",))
        rows.extend(anchor_rows)
    notes = ["Mean ± 95% Student-t CI half-width over seeds; Δ: paired difference from ce on the same "
             "seeds (* the CI excludes 0). ECE: 15 equal-width bins; TS: temperature fitted on a held-out "
             "10% of trainval."]
    setup = p.anchors.get("setup") if isinstance(p.anchors, Mapping) else None
    if setup:
        notes.append(f"Published anchors: {setup}.")
    losses = [a.get("loss") for a in (p.anchors.get("cross_entropy"), p.anchors.get("label_smoothing"))
              if isinstance(a, Mapping) and a.get("loss")] if isinstance(p.anchors, Mapping) else []
    if losses:
        notes.append(f"Published losses: {'; '.join(losses)}.")
    data = p.config.get("data") if isinstance(p.config, Mapping) else None
    limit = data.get("per_class_limit") if isinstance(data, Mapping) else None
    if limit:
        notes.append(f"Quick run: only the first {limit} images of each class in each split were used.")
    if p.status and p.status != "complete":
        notes.append(f"Recording status: {p.status} (not every requested run is in this file).")
    n_test = f", n = {p.n_test} test images" if p.n_test else ""
    caption = (f"Oxford-IIIT Pets, profile {p.profile}: backbone {p.backbone}, fastai head, "
               f"metrics on the official test split{n_test}.")
    return Table(name=f"pets-{p.profile}", caption=caption, columns=COLUMNS, rows=tuple(rows),
                 sources=(p.file.source,), align="l" + "r" * (len(COLUMNS) - 1), notes=tuple(notes),
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
    names = [n for n in p.names if pooled_reliability(p.runs, n) is not None]
    if not names:
        return None

    def draw():
        cols = min(4, len(names))
        nrows = math.ceil(len(names) / cols)
        fig = F.new_figure(1.75 * cols + 0.3, 2.0 * nrows + 0.45, layout="constrained")
        axes = fig.subplots(nrows, cols, squeeze=False, sharex=True, sharey=True)
        for k, name in enumerate(names):
            ax = axes[k // cols][k % cols]
            rel = pooled_reliability(p.runs, name)
            ts = pooled_reliability(p.runs, name, "reliability_ts")
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
            ece = _mean(p.aggregates[name], "ece")
            ece_ts = _mean(p.aggregates[name], "ece_ts")
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

    caption = (f"Reliability diagrams on the Pets test split (profile {p.profile}, {p.backbone}), "
               "pooled over seeds: bars are the accuracy per confidence bin (15 bins), the shaded part "
               "the gap to the mean confidence, the line the bins after temperature scaling.")
    return draw, caption


def ece_error_figure(p: Pets):
    names = [n for n in p.names if _mean(p.aggregates[n], "error") is not None
             and _mean(p.aggregates[n], "ece") is not None]
    if not names:
        return None

    def draw():
        fig = F.new_figure(5.2, 3.3)
        ax = fig.add_subplot(1, 1, 1)
        for k, name in enumerate(names):
            m = p.aggregates[name]["metrics"]
            color = F.PALETTE[k % len(F.PALETTE)]
            x = m["error"]["mean"] * 100
            xe = (m["error"].get("ci") or 0.0) * 100
            y = m["ece"]["mean"] * 100
            ye = (m["ece"].get("ci") or 0.0) * 100
            marker = MARKERS[k % len(MARKERS)]  # recipes with the same maths overlap: shapes keep them apart
            ax.errorbar([x], [y], xerr=[xe], yerr=[ye], fmt=marker, color=color, markersize=4.5, capsize=2,
                        linewidth=0.8, label=name, alpha=0.9)
            ts = m.get("ece_ts")
            if ts:
                ax.errorbar([x], [ts["mean"] * 100], yerr=[(ts.get("ci") or 0.0) * 100], fmt=marker,
                            mfc="white", color=color, markersize=4.5, capsize=2, linewidth=0.8, alpha=0.9)
                ax.plot([x, x], [y, ts["mean"] * 100], ":", color=color, linewidth=0.6)
        ax.set_xlabel("test error (%)")
        ax.set_ylabel("ECE (%)")
        ax.set_title(f"Pets ({p.profile}): ECE against error, mean ± 95% CI over seeds\n"
                     "filled: as trained; open: after temperature scaling")
        ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
        fig.tight_layout()
        return fig

    caption = (f"ECE against test error per recipe on Pets (profile {p.profile}), mean and 95% CI over "
               "seeds; open markers: ECE after temperature scaling.")
    return draw, caption


def pets_macros(p: Pets | None, profile: str) -> dict[str, Any]:
    prefix = "Pets" + profile.capitalize()
    out: dict[str, Any] = {f"{prefix}Backbone": None, f"{prefix}Seeds": None, f"{prefix}Recipes": None,
                           f"{prefix}TestN": None}
    if p is None:
        return out
    seeds = sorted({int(s) for a in p.aggregates.values() for s in (a.get("seeds") or [])})
    out[f"{prefix}Backbone"] = p.backbone
    out[f"{prefix}Seeds"] = len(seeds)
    out[f"{prefix}Recipes"] = len(p.names)
    out[f"{prefix}TestN"] = p.n_test
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
