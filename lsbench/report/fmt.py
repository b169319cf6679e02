"""Number formatting for the generated tables: fixed digits, so the same results give the same bytes."""

from __future__ import annotations

import math
from typing import Mapping

DASH = "–"  # an en dash: "no value" in a cell (rendered as-is in LaTeX and Markdown)
NOT_RECORDED = "not yet recorded"


class TeX(str):
    """A macro value that is already LaTeX (``tables/macros.tex`` writes it as is, unescaped)."""


def num(x, digits: int = 2, scale: float = 1.0, sign: bool = False) -> str:
    """``x·scale`` with ``digits`` decimals; ``None`` → –, NaN/inf spelled out."""
    if x is None:
        return DASH
    v = float(x) * scale
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return ("+" if sign and v > 0 else "-" if v < 0 else "") + "inf"
    s = f"{v:+.{digits}f}" if sign else f"{v:.{digits}f}"
    if s.lstrip("+-").strip("0.") == "":  # -0.00 → 0.00 (and +0.00 stays signed)
        s = ("+" if sign else "") + s.lstrip("+-")
    return s


def pm(summary: Mapping | None, scale: float = 1.0, digits: int = 2, sign: bool = False) -> str:
    """``mean ± ci`` of a :func:`lsbench.metrics.summarize` record (just the mean when n < 2)."""
    if not summary:
        return DASH
    m = num(summary.get("mean"), digits, scale, sign)
    if summary.get("ci") is None:
        return m
    return f"{m} ± {num(summary['ci'], digits, scale)}"


def excludes_zero(summary: Mapping | None) -> bool:
    """Whether a paired-difference CI lies entirely on one side of 0."""
    if not summary or summary.get("lo") is None or summary.get("hi") is None:
        return False
    return summary["lo"] > 0 or summary["hi"] < 0


def thousands(n) -> str:
    """An integer with a comma every three digits: ``5,000``; ``None`` → –."""
    if n is None:
        return DASH
    return f"{int(n):,}"


def _sig3(x: float) -> str:
    """Three significant figures, trailing zeros kept: 84.0, 544, 2.07."""
    return f"{x:#.3g}".rstrip(".")


def seconds(t) -> str:
    """A duration in the unit that gives 3 significant figures: ``812 µs``, ``3.41 ms``, ``1.20 s``."""
    if t is None:
        return DASH
    v = float(t)
    if math.isnan(v):
        return "NaN"
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6), ("ns", 1e-9)):
        if abs(v) >= f or unit == "ns":
            x = v / f
            return f"{_sig3(x)} {unit}" if abs(x) < 1000 else f"{x:.0f} {unit}"
    return f"{v:g} s"  # pragma: no cover


def ratio(x, digits: int = 2) -> str:
    """``1.23×``; ``0.0067×`` below 0.1 (two significant figures); ``1869×`` from 100 on."""
    if x is None:
        return DASH
    v = float(x)
    if math.isnan(v):
        return "NaN"
    if abs(v) >= 100:
        return f"{v:.0f}×"
    if 0 < abs(v) < 0.1:
        return f"{v:.2g}×"
    return f"{v:.{digits}f}×"
