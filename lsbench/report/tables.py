"""A small table model rendered both as LaTeX (booktabs) and as Markdown.

Tables are plain data: a caption, column headers, rows of already-formatted
strings, and the provenance (the command that regenerates the table and the
short hashes of the results files it came from). Rendering is deterministic:
the same table always gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence

from lsbench.provenance import atomic_write_bytes
from lsbench.report.fmt import NOT_RECORDED

REGENERATE = "python -m lsbench paper"


class Source(NamedTuple):
    """A results file a table or figure cites: its name, its short hash and, when its provenance
    (or that of a run record it holds) says ``dirty: true``, the short commits of those dirty trees."""

    name: str
    digest: str
    dirty_at: tuple[str, ...] = ()


def dirty_mark(commits: Sequence[str]) -> str:
    """``(recorded from a dirty tree at commit X)``, the mark a dirty recording's citation carries.

    >>> dirty_mark(["ffb11a0"])
    '(recorded from a dirty tree at commit ffb11a0)'
    >>> dirty_mark([])
    ''
    """
    if not commits:
        return ""
    return f"(recorded from a dirty tree at commit{'s' if len(commits) > 1 else ''} {', '.join(commits)})"


def cite(sources: Iterable[Sequence[str]]) -> str:
    """``name @ hash, ...`` of ``sources`` (:class:`Source` or plain ``(name, hash)`` pairs); a
    source recorded from a dirty tree is followed by its :func:`dirty_mark`.

    >>> cite([Source("pets-frozen.json", "0123abcd", ("ffb11a0",)), ("proofs.json", "4567ef01")])
    'pets-frozen.json @ 0123abcd (recorded from a dirty tree at commit ffb11a0), proofs.json @ 4567ef01'
    """
    parts = []
    for source in sources:
        name, digest, *rest = source
        mark = dirty_mark(rest[0] if rest else ())
        parts.append(f"{name} @ {digest}" + (f" {mark}" if mark else ""))
    return ", ".join(parts) or "lsbench source only"


@dataclasses.dataclass(frozen=True)
class Table:
    name: str  # file stem under paper/tables/
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    sources: tuple[Source | tuple[str, str], ...] = ()  # (results file name, short hash[, dirty commits])
    align: str | None = None  # LaTeX column spec, e.g. "llrr"
    notes: tuple[str, ...] = ()
    # True: scale the tabular down to the line width only when it is wider (never up).
    # False (the default) keeps the original behaviour: always scaled to the line width.
    shrink_only: bool = False
    # True: notes set ragged-right (left-aligned) instead of centred like the table.
    ragged_notes: bool = False

    def provenance(self) -> str:
        return f"Regenerate: {REGENERATE}. From: {cite(self.sources)}."


def results_table(name: str, caption: str, columns: tuple[str, ...], rows, sources, notes=(),
                  label_columns: int = 1) -> Table:
    """A table of results: ``label_columns`` left-aligned label columns, then right-aligned numbers;
    scaled down only when wider than the line, notes set ragged-right."""
    return Table(name=name, caption=caption, columns=tuple(columns), rows=tuple(rows), sources=tuple(sources),
                 align="l" * label_columns + "r" * (len(columns) - label_columns), notes=tuple(notes),
                 shrink_only=True, ragged_notes=True)


def placeholder(name: str, caption: str, columns, command: str, why: str = "") -> Table:
    """A table with one row saying what is missing and the command that records it."""
    cells = [NOT_RECORDED + (f" ({why})" if why else "") + f": run {command}"] + [""] * (len(columns) - 1)
    return Table(name=name, caption=caption + " " + NOT_RECORDED.capitalize() + ".",
                 columns=tuple(columns), rows=(tuple(cells),), shrink_only=True, ragged_notes=True)


def short_hash(path: Path) -> str:
    """First 12 hex digits of the file's sha256 (cited in every caption)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_UNICODE = {
    "ε": r"$\varepsilon$",
    "α": r"$\alpha$",
    "β": r"$\beta$",
    "Σ": r"$\Sigma$",
    "±": r"$\pm$",
    "×": r"$\times$",
    "≤": r"$\le$",
    "≥": r"$\ge$",
    "−": "-",
    "≡": r"$\equiv$",
    "→": r"$\to$",
    "·": r"$\cdot$",
    "✓": r"\checkmark",
    "≈": r"$\approx$",
    "Δ": r"$\Delta$",
    "²": r"$^2$",
    "‖": r"$\|$",
    "§": r"\S{}",
    "∞": r"$\infty$",
}


def latex_escape(text: str) -> str:
    """Escape plain text for LaTeX; ``$...$`` spans are passed through as maths."""
    parts = re.split(r"(\$[^$]*\$)", text)
    out = []
    for part in parts:
        if part.startswith("$") and part.endswith("$") and len(part) > 1:
            out.append(part)
            continue
        s = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in part)
        s = "".join(_UNICODE.get(ch, ch) for ch in s)
        out.append(s)
    return "".join(out)


def _md_cell(text: str) -> str:
    return text.replace("|", r"\|").replace("\n", " ")


def to_markdown(table: Table) -> str:
    lines = [f"**Table: {table.caption}**", ""]
    lines.append("| " + " | ".join(_md_cell(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        if row and row[0] == "\\midrule":  # a LaTeX group separator; Markdown tables have none
            continue
        lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
    lines.append("")
    for note in table.notes:
        lines.append(f"{note}")
        lines.append("")
    lines.append(f"_{table.provenance()}_")
    return "\n".join(lines) + "\n"


def to_latex(table: Table) -> str:
    align = table.align or "l" * len(table.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\small",
        rf"\caption{{{latex_escape(table.caption)} {latex_escape(table.provenance())}}}",
        rf"\label{{tab:{table.name}}}",
        (r"\resizebox{\ifdim\width>\linewidth\linewidth\else\width\fi}{!}{%" if table.shrink_only
         else r"\resizebox{\linewidth}{!}{%"),
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in table.columns) + r" \\",
        r"\midrule",
    ]
    for row in table.rows:
        if row and row[0] == "\\midrule":
            lines.append(r"\midrule")
            continue
        lines.append(" & ".join(latex_escape(c) for c in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}}"]
    for note in table.notes:
        if table.ragged_notes:
            lines.append(rf"\par\smallskip{{\raggedright\footnotesize {latex_escape(note)}\par}}")
        else:
            lines.append(rf"\par\smallskip\footnotesize {latex_escape(note)}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write text (UTF-8) or bytes atomically; see :func:`lsbench.provenance.atomic_write_bytes`."""
    atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)

