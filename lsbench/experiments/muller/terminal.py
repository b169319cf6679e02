"""The terminal report of ``reproduce muller`` (plain text; the paper's tables are :mod:`lsbench.report.muller`)."""

from __future__ import annotations

from typing import Mapping, Sequence

from lsbench.experiments.muller import analysis as ana
from lsbench.experiments.muller.aggregate import tname
from lsbench.experiments.muller.config import BASELINE
from lsbench.experiments.records import fmt_pm, text_table
from lsbench.published import MULLER_PUBLISHED

__all__ = ["format_report"]

def pct(s: Mapping | None, scale: float = 100.0, digits: int = 2, sign: bool = False) -> str:
    """:func:`~lsbench.experiments.records.fmt_pm` in percent unless told otherwise."""
    return fmt_pm(s, scale, digits, sign)


def _recorded(res: Mapping, experiment: str, out: list[str]):
    """``(dataset, aggregates)`` of the data sets with runs; a line in ``out`` for each skipped one."""
    for d, v in res["datasets"].items():
        if v.get("status") in ("ok", "incomplete"):
            yield d, v
        else:
            out.append(f"\n== {experiment} / {d}: skipped ({v.get('reason')})")


def format_report(results: Mapping[str, Mapping], temperatures: Sequence[float], beta: float) -> str:
    """The terminal report of ``reproduce muller``: a table per sub-experiment and data set, then the verdicts."""
    out = []
    if "calibration" in results:
        for d, v in _recorded(results["calibration"], "calibration", out):
            rows = []
            for n, a in v["specs"].items():
                m = a["metrics"]
                pd = (a.get("paired_vs_ce") or {}).get("ece")
                rows.append((n, pct(m["error"]), pct(m["ece"]), pct(m["ece_ts"]),
                             pct(m["temperature"], 1.0), pct(m["heldout_ece"]),
                             "(baseline)" if n == BASELINE else pct(pd, sign=True)))
            out.append(f"\n== calibration / {d} (mean ± 95% CI over seeds; %)")
            out.append(text_table(("recipe", "error %", "ECE %", "ECE after TS %", "T", "held-out ECE %",
                               "Δ ECE vs ce (pp)"), rows))
            a = v.get("alpha_star")
            if a:
                out.append(f"alpha* (lowest held-out ECE among uniform 0.05/0.1/0.2): {a['alpha']}")
        out.append("published (ECE): " + "; ".join(
            f"{r['setup']}: {r['ece']:.3f} -> TS {r['ece_ts']:.3f} (T={r['temperature']}) / "
            f"LS {r['ece_ls']:.3f} (α={r['alpha']})" for r in MULLER_PUBLISHED["calibration"]["rows"]))
    if "distillation" in results:
        for d, v in _recorded(results["distillation"], "distillation", out):
            temps = [tname(t) for t in temperatures]
            rows = []
            for n, a in v["teachers"].items():
                st = v["students"].get(n, {})
                cells = []
                for t in temps:
                    c = st.get("T", {}).get(t)
                    cell = pct(c["metrics"]["error"]) if c else "-"
                    if st.get("t_star") == t:
                        cell += " *"
                    cells.append(cell)
                rows.append((n, pct(a["metrics"]["error"]), *cells))
            if v.get("student_none"):
                none = pct(v["student_none"]["metrics"]["error"])
                rows.append(("(no teacher, β = 0)", "-", *([none] + [""] * (len(temps) - 1))))
            out.append(f"\n== distillation / {d}: test error % (mean ± 95% CI); students β = {beta}; "
                       "* = T* chosen on held-out")
            out.append(text_table(("teacher", "teacher error %", *[f"student T={t}" for t in temps]), rows))
        p = MULLER_PUBLISHED["distillation"]
        out.append(f"published (MNIST): teacher error {p['teacher_error']['ce']:.2%} (ce) / "
                   f"{p['teacher_error']['ls']:.2%} (LS); student error {p['student_error']['ce']:.2%} / "
                   f"{p['student_error']['ls']:.2%}")
    if "representations" in results:
        for d, v in _recorded(results["representations"], "representations", out):
            rows = []
            for n, a in v["specs"].items():
                g = a.get("test_geometry") or {}
                rows.append((n, pct(g.get("spread"), 1.0, 3), pct(g.get("wrong_spread"), 1.0, 3),
                             pct(a["test"]["ratio"], 1.0, 3), pct(a["test"]["between_cv"], 1.0, 3)))
            out.append(f"\n== representations / {d} (mean ± 95% CI, test examples): template subspace (the "
                       "verdict's measures), and the full penultimate space (supplementary)")
            out.append(text_table(("recipe", "templates: spread", "templates: wrong-class spread",
                                   "full: within/between", "full: centroid CV"), rows))
    out.append("\n== verdicts (" + ana.VERDICT_RULE + ")")
    rows, out_pre = [], []
    for e, res in results.items():
        for d, v in res["datasets"].items():
            if v.get("status") not in ("ok", "incomplete"):
                rows.append((e, d, "-", "-", "-", "skipped"))
                continue
            claims = [(c, cl, "") for c, cl in v.get("claims", {}).items()]
            claims += [(c, cl, " (suppl.)") for c, cl in v.get("supplementary_claims", {}).items()]
            for c, cl, tag in claims:
                rows.append((e, d, c + tag, pct(cl["difference"], 100.0 if e != "representations" else 1.0,
                                                    2 if e != "representations" else 3, sign=True),
                             cl["published"], cl["verdict"] + (" (not in verdict)" if tag else "")))
            for c, cl, tag in claims:
                pre = cl.get("precondition") or {}
                if not tag and not pre.get("met", True):
                    out_pre.append(f"{e} / {d} / {c}: precondition not met -- {pre.get('description')}")
        rows.append((e, "ALL", "", "", "", res["verdict"]["verdict"].upper()))
    out.append(text_table(("finding", "dataset", "sub-claim", "measured Δ (pp; ratio)", "published Δ", "verdict"),
                      rows))
    out += out_pre
    return "\n".join(out)
