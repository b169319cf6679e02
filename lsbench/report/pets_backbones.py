"""Pets per backbone: how close plain cross-entropy comes to the fastai anchors' band (issue 14).

``reproduce pets`` writes ``pets-<profile>.json`` for the default backbone and
``pets-<profile>-<backbone>.json`` (e.g. ``pets-frozen-lite0.json``) for another. The table
``pets-backbones`` puts the frozen profile's files side by side: per backbone and split, the
cross-entropy baseline's error (mean ± 95 % CI over seeds), where it lies against the band of the
fastai anchors' cross-entropy reruns (:data:`lsbench.published.PETS_ANCHORS`), and, where the file has
it, uniform ε = 0.1's paired Δ error from ``ce`` with its verdict (the file's ``statistics``).
"""

from __future__ import annotations

import re
from typing import Any, Mapping, Sequence

from lsbench.published import PETS_ANCHORS
from lsbench.report.fmt import DASH, TeX, num, pm
from lsbench.report.pets import BASELINE, COMMAND, Pets
from lsbench.report.tables import Table, placeholder

NAME = "pets-backbones"
PROFILE = "frozen"  # the profile whose backbones the table compares
#: The backbones the paper's prose quotes (their macros exist even when not recorded).
BACKBONES = ("lite0", "lite2")
#: The recipe compared with ``ce`` beside it: uniform at the published ε = 0.1.
COMPARED = "uniform"
SPLITS = ("official", "fastai")
COLUMNS = ("backbone", "split", "seeds", "ce error %", "ce vs anchors' band", "uniform ε = 0.1: Δ error (pp) [95 %]",
           "verdict")
_VARIANT = re.compile(r"^([a-z]+)-(lite[0-9]+)$")
_DIGITS = ("Zero", "One", "Two", "Three", "Four", "Five", "Six", "Seven", "Eight", "Nine")


def backbone_variant(suffix: str) -> tuple[str, str] | None:
    """``(profile, backbone)`` of a ``pets-<profile>-<backbone>.json`` suffix, else None.

    >>> backbone_variant("frozen-lite0")
    ('frozen', 'lite0')
    >>> backbone_variant("frozen") is None, backbone_variant("frozen-limit4") is None
    (True, True)
    """
    m = _VARIANT.match(suffix)
    return (m.group(1), m.group(2)) if m else None


def short_backbone(p: Pets) -> str | None:
    """``lite2`` for a file whose ``config.backbone.name`` is ``efficientnet-lite2``."""
    b = p.config.get("backbone") if isinstance(p.config, Mapping) else None
    name = b.get("name") if isinstance(b, Mapping) else None
    return str(name).removeprefix("efficientnet-") if name else None


def macro_stem(backbone: str) -> str:
    """``LiteZero`` for ``lite0``: macro names are letters only.

    >>> macro_stem("lite0"), macro_stem("lite12")
    ('LiteZero', 'LiteOneTwo')
    """
    s = "".join(_DIGITS[int(c)] if c.isdigit() else c for c in backbone)
    return s[:1].upper() + s[1:]


def band(anchors: Mapping | None = None) -> tuple[float, float] | None:
    """``(min, max)`` error of the anchors' cross-entropy reruns (fractions), else None."""
    ce = (anchors or PETS_ANCHORS).get("cross_entropy")
    if isinstance(ce, Mapping) and "error_min" in ce and "error_max" in ce:
        return float(ce["error_min"]), float(ce["error_max"])
    return None


def gap_to_band(mean: float, lo_hi: tuple[float, float]) -> float:
    """Signed distance of ``mean`` from the band: 0 inside, > 0 above its top, < 0 below its bottom.

    >>> gap_to_band(0.08, (0.057, 0.073)) > 0, gap_to_band(0.06, (0.057, 0.073)), gap_to_band(0.05, (0.057, 0.073)) < 0
    (True, 0.0, True)
    """
    lo, hi = lo_hi
    return mean - hi if mean > hi else mean - lo if mean < lo else 0.0


def band_text(mean: float, lo_hi: tuple[float, float]) -> str:
    """``inside``, ``1.23 pp above`` or ``0.40 pp below``."""
    g = gap_to_band(mean, lo_hi)
    return "inside" if g == 0.0 else f"{num(abs(g), 2, 100)} pp {'above' if g > 0 else 'below'}"


def rows_of(p: Pets, split: str) -> dict[str, Any] | None:
    """The numbers of one table row (fractions), or None when ``split`` has no ``ce`` aggregate."""
    agg = p.aggregates.get(split, {}).get(BASELINE)
    err = ((agg or {}).get("metrics") or {}).get("error")
    if not err:
        return None
    st = (p.statistics.get(split, {}).get(COMPARED) or {}).get("error")
    return {"seeds": len(agg.get("seeds") or []), "ce": err, "uniform": st}


def backbones_table(files: Sequence[tuple[str, Pets]]) -> Table:
    """One row per (backbone, split) of ``files`` (``(backbone, parsed file)`` pairs, in order)."""
    lo_hi = band(files[0][1].anchors if files else None)
    rows = []
    for backbone, p in files:
        for split in SPLITS:
            r = rows_of(p, split)
            if r is None:
                continue
            ce, st = r["ce"], r["uniform"]
            where = band_text(ce["mean"], lo_hi) if lo_hi else DASH
            if st:
                delta = (f"{num(st['delta'], 2, 100, sign=True)} [{num(st['ci'][0], 2, 100, sign=True)}, "
                         f"{num(st['ci'][1], 2, 100, sign=True)}]")
                verdict = st["verdict"]
            else:
                delta, verdict = "not run", DASH
            rows.append((f"{backbone} ({p.file.source[0]})", split, str(r["seeds"]), pm(ce, 100, 2), where,
                         delta, verdict))
    band_txt = f"{num(lo_hi[0], 1, 100)}–{num(lo_hi[1], 1, 100)} %" if lo_hi else "not available"
    ce_anchor = PETS_ANCHORS.get("cross_entropy", {})
    notes = [f"Anchors' band: cross-entropy error {band_txt} over the {ce_anchor.get('reruns', DASH)} reruns of the "
             "fastai pets notebook (ResNet-34, fastai's random 20% validation split), the goal of the frozen "
             "profile; only the fastai split is measured like the anchors, the official split (trainval → test) "
             "is shown for reference. ce error: mean ± 95% Student-t CI half-width over seeds; 'vs band': the "
             "mean's distance from the band's nearer edge. Δ: paired difference of uniform (ε = 0.1) from ce, "
             "95% interval of the bootstrap over seeds and report images, and the verdict of the fixed rule "
             "(Table pets-frozen)."]
    caption = "Oxford-IIIT Pets, profile frozen, per backbone: the cross-entropy baseline against the fastai anchors."
    return Table(name=NAME, caption=caption, columns=COLUMNS, rows=tuple(rows),
                 sources=tuple(p.file.source for _, p in files), align="llrrlrl", notes=tuple(notes),
                 shrink_only=True, ragged_notes=True)


def backbones_placeholder(missing: str = "lite0") -> Table:
    return placeholder(NAME, "Oxford-IIIT Pets, profile frozen, per backbone.", COLUMNS,
                       f"{COMMAND} --backbone {missing} (writes pets-{PROFILE}-{missing}.json)")


def backbones_macros(files: Sequence[tuple[str, Pets]] = ()) -> dict[str, Any]:
    """``Pets<Backbone>Name`` and ``Pets<Backbone><Split>{CeErr, CeBand, CeInBand, UniformDelta,
    UniformVerdict}``; a backbone given by two files takes the later one (``pets-frozen-<backbone>.json``
    over the default file)."""
    known = list(dict.fromkeys([*BACKBONES, *(b for b, _ in files)]))
    out: dict[str, Any] = {}
    for b in known:
        out[f"Pets{macro_stem(b)}Name"] = b[:1].upper() + b[1:]  # prose names it without typing a digit
        for split in SPLITS:
            for k in ("CeErr", "CeBand", "CeInBand", "UniformDelta", "UniformVerdict"):
                out[f"Pets{macro_stem(b)}{split.capitalize()}{k}"] = None
    for backbone, p in files:
        lo_hi = band(p.anchors)
        for split in SPLITS:
            r = rows_of(p, split)
            if r is None:
                continue
            key = f"Pets{macro_stem(backbone)}{split.capitalize()}"
            out[f"{key}CeErr"] = pm(r["ce"], 100, 2)
            if lo_hi:
                out[f"{key}CeBand"] = band_text(r["ce"]["mean"], lo_hi)
                out[f"{key}CeInBand"] = gap_to_band(r["ce"]["mean"], lo_hi) == 0.0
            st = r["uniform"]
            if st:
                out[f"{key}UniformDelta"] = TeX(f"${num(st['delta'], 2, 100, sign=True)}$")
                out[f"{key}UniformVerdict"] = st["verdict"]
    return out
