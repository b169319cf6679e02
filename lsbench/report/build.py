"""Regenerate every table, figure and macro of the paper from the recorded results.

:func:`generate` reads ``<results_dir>/*.json`` and writes, under ``<out_dir>``:

* ``tables/<name>.tex`` and ``tables/<name>.md`` for every table (LaTeX booktabs and Markdown,
  each caption naming the regenerating command and the short hash of its results file);
* ``tables/proofs.{tex,md}``: every theorem, by ``verify``'s own renderer;
* ``figures/<name>.{pdf,png}`` and the snippet ``figures/<name>.tex`` that ``main.tex`` inputs;
* ``tables/macros.tex``: ``\\newcommand``s with the few numbers the prose quotes.

Rules: the same results give the same bytes. A missing results file gives
"not yet recorded" placeholders (so the paper always compiles). A malformed one
is reported by its path and leaves everything generated from it as it was
(other tables are still regenerated; ``macros.tex`` is left unchanged unless
it does not exist); :attr:`Outcome.errors` is then non-empty. Nothing is ever
deleted.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Callable, Mapping

from lsbench.report import bench as bench_report
from lsbench.report import conventions as conventions_report
from lsbench.report import figures as figure_files
from lsbench.report import muller as muller_report
from lsbench.report import pets as pets_report
from lsbench.report import pets_backbones
from lsbench.report import proofs as proofs_report
from lsbench.report.fmt import TeX
from lsbench.report.results import ResultFile, ResultsError, discover, read_json
from lsbench.report.tables import (REGENERATE, Table, atomic_write, latex_escape, placeholder, to_latex,
                                   to_markdown)

#: The tables main.tex inputs (every one always exists after a run: real or placeholder).
TABLES = ("catalogue", "verification", "findings", "proofs", "throughput", "pets-frozen", "pets-fastai",
          "pets-backbones",
          "muller-calibration", "muller-distillation", "muller-representations", "muller-verdicts",
          "conventions")
#: The figure snippets main.tex inputs.
FIGURES = ("throughput", "reliability-frozen", "ece-error-frozen", "reliability-fastai", "ece-error-fastai",
           muller_report.FIGURE)


@dataclasses.dataclass
class Outcome:
    written: list[Path] = dataclasses.field(default_factory=list)
    placeholders: list[str] = dataclasses.field(default_factory=list)  # artefact names
    kept: list[str] = dataclasses.field(default_factory=list)          # left as they were (bad input)
    notes: list[str] = dataclasses.field(default_factory=list)
    errors: list[ResultsError] = dataclasses.field(default_factory=list)


class _Gen:
    def __init__(self, results_dir: Path, out_dir: Path, figures: bool, log: Callable[[str], None]):
        self.results = discover(results_dir)
        self.tables_dir = Path(out_dir) / "tables"
        self.figures_dir = Path(out_dir) / "figures"
        self.figures = figures
        self.log = log
        self.out = Outcome()
        # every macro main.tex uses exists even when its results are missing or malformed
        self.macros: dict[str, Any] = {**proofs_report.cert_macros(None), **bench_report.bench_macros(None),
                                       **pets_report.anchor_macros(),
                                       **muller_report.muller_macros({})}
        for profile in pets_report.PROFILES:
            self.macros.update(pets_report.pets_macros(None, profile))
        self.macros.update(pets_backbones.backbones_macros())
        self.macro_sources: list[tuple[str, str]] = []

    # -- loading
    def load(self, path: Path, parse: Callable[[ResultFile], Any]):
        """``(parsed, None)``, or ``(None, error)`` for a malformed file (recorded and printed)."""
        try:
            return parse(read_json(path)), None
        except ResultsError as exc:
            self.out.errors.append(exc)
            self.log(f"error: {exc}")
            return None, exc

    # -- writing
    def table(self, t: Table, placeholder: bool = False) -> None:
        paths = [self.tables_dir / f"{t.name}.tex", self.tables_dir / f"{t.name}.md"]
        atomic_write(paths[0], allow_breaks(to_latex(t)))
        atomic_write(paths[1], to_markdown(t))
        self.out.written += paths
        if placeholder:
            self.out.placeholders.append(f"tables/{t.name}")

    def raw_table(self, name: str, tex: str, md: str, placeholder: bool = False) -> None:
        for ext, text in (("tex", tex), ("md", md)):
            path = self.tables_dir / f"{name}.{ext}"
            atomic_write(path, text)
            self.out.written.append(path)
        if placeholder:
            self.out.placeholders.append(f"tables/{name}")

    def keep(self, names, why: ResultsError) -> None:
        for n in names:
            self.out.kept.append(n)
        self.log(f"kept as they were ({why.path.name} is malformed): {', '.join(names)}")

    def figure(self, name: str, made, sources, command: str, missing_why: str = "not yet recorded") -> None:
        snippet_path = self.figures_dir / f"{name}.tex"
        if made is None:
            atomic_write(snippet_path, figure_files.placeholder_snippet(name, _FIG_TITLES.get(name, name), command,
                                                             missing_why))
            self.out.written.append(snippet_path)
            self.out.placeholders.append(f"figures/{name}")
            return
        draw, caption = made
        if self.figures:
            pdf, png, width = figure_files.render(draw)
            self.out.written += figure_files.write_images(self.figures_dir, name, pdf, png)
        else:  # the snippet must not depend on whether the images were drawn
            with figure_files.style():
                width = float(draw().get_figwidth())
        atomic_write(snippet_path, figure_files.snippet(name, caption, sources, width=figure_files.latex_width(width)))
        self.out.written.append(snippet_path)

    # -- sections
    def proofs(self) -> None:
        cert = None
        if self.results.proofs is None:
            self.log("note: no proofs.json: catalogue without proof status; verification, findings and "
                     "proofs tables are placeholders (run python -m lsbench verify)")
        else:
            cert, err = self.load(self.results.proofs, proofs_report.parse_certificate)
            if err is not None:
                self.keep(["tables/catalogue", "tables/verification", "tables/findings", "tables/proofs"], err)
                self._ensure_placeholders(["catalogue", "verification", "findings", "proofs"])
                return
            try:
                tex, md = proofs_report.every_theorem(cert)
            except ResultsError as exc:
                self.out.errors.append(exc)
                self.log(f"error: {exc}")
                self.keep(["tables/catalogue", "tables/verification", "tables/findings", "tables/proofs"], exc)
                return
        self.table(proofs_report.catalogue_table(cert))
        self.table(proofs_report.verification_table(cert), placeholder=cert is None)
        self.table(proofs_report.findings_table(cert), placeholder=cert is None)
        if cert is None:
            self.raw_table("proofs", proofs_report.PROOFS_PLACEHOLDER_TEX, proofs_report.PROOFS_PLACEHOLDER_MD,
                           placeholder=True)
        else:
            self.raw_table("proofs", tex, md)
            self.macro_sources.append(cert.file.source)
        self.macros.update(proofs_report.cert_macros(cert))

    def bench(self) -> None:
        paths = self.results.bench
        if not paths:
            self.log("note: no bench-*.json: throughput table and figure are placeholders "
                     f"(run {bench_report.COMMAND})")
            self.table(bench_report.throughput_placeholder(), placeholder=True)
            self.figure("throughput", None, (), bench_report.COMMAND)
            self.macros.update(bench_report.bench_macros(None))
            return
        benches, bad = [], None
        for machine, path in paths.items():
            b, err = self.load(path, lambda rf, m=machine: bench_report.parse_bench(rf, m))
            bad = bad or err
            if b is not None:
                benches.append(b)
        if bad is not None:
            self.keep(["tables/throughput", "figures/throughput"], bad)
            self._ensure_placeholders(["throughput"], figures=["throughput"], command=bench_report.COMMAND)
            return
        benches.sort(key=lambda b: b.machine)
        tables = [t for b in benches for t in bench_report.machine_tables(b)]
        for t in tables:
            self.table(t)
        tex, md = bench_report.gather(tables)
        self.raw_table("throughput", tex, md)
        self.figure("throughput", bench_report.throughput_figure(benches), [b.file.source for b in benches],
                    bench_report.COMMAND)
        self.macros.update(bench_report.bench_macros(benches))
        self.macro_sources += [b.file.source for b in benches]

    def pets(self) -> None:
        # pets-<profile>-<backbone>.json (another backbone) goes to the backbones table, not a profile's
        variants = {k: pets_backbones.backbone_variant(k) for k in self.results.pets}
        profiles = list(pets_report.PROFILES) + [p for p in self.results.pets
                                                 if p not in pets_report.PROFILES and variants[p] is None]
        self.macros.update(pets_report.anchor_macros())
        parsed: dict[str, pets_report.Pets | ResultsError] = {}  # profile -> parsed file or its error
        for profile in profiles:
            names = [f"pets-{profile}", f"reliability-{profile}", f"ece-error-{profile}"]
            path = self.results.pets.get(profile)
            if path is None:
                self.log(f"note: no pets-{profile}.json: its table and figures are placeholders "
                         f"(run {pets_report.COMMAND} --profile {profile})")
                self.table(pets_report.pets_placeholder(profile), placeholder=True)
                for fig in names[1:]:
                    self.figure(fig, None, (), f"{pets_report.COMMAND} --profile {profile}")
                self.macros.update(pets_report.pets_macros(None, profile))
                continue
            p, err = self.load(path, lambda rf, pr=profile: pets_report.parse_pets(rf, pr))
            if err is not None:
                parsed[profile] = err
                self.keep([f"tables/{names[0]}", f"figures/{names[1]}", f"figures/{names[2]}"], err)
                self._ensure_placeholders([names[0]], figures=names[1:], command=pets_report.COMMAND)
                continue
            parsed[profile] = p
            self.table(pets_report.pets_table(p))
            src = [p.file.source]
            self.figure(names[1], pets_report.reliability_figure(p), src, pets_report.COMMAND,
                        "with no reliability bins recorded")
            self.figure(names[2], pets_report.ece_error_figure(p), src, pets_report.COMMAND,
                        "with no error/ECE recorded")
            self.macros.update(pets_report.pets_macros(p, profile))
            self.macro_sources += src
        self.pets_backbones(parsed, {k: v for k, v in variants.items() if v is not None})

    def pets_backbones(self, parsed: Mapping[str, Any], variants: Mapping[str, tuple[str, str]]) -> None:
        """Table ``pets-backbones``: the default frozen file beside every ``pets-frozen-<backbone>.json``."""
        name, profile = pets_backbones.NAME, pets_backbones.PROFILE
        self.macros.update(pets_backbones.backbones_macros())
        default = parsed.get(profile)
        bad = default if isinstance(default, ResultsError) else None
        files = [] if default is None or bad else [(pets_backbones.short_backbone(default) or profile, default)]
        others = 0
        for key, (prof, backbone) in sorted(variants.items()):
            if prof != profile:
                self.log(f"note: {self.results.pets[key].name}: the backbones table covers profile {profile} only;"
                         " ignored")
                continue
            p, err = self.load(self.results.pets[key], lambda rf, pr=prof: pets_report.parse_pets(rf, pr))
            bad = bad or err
            if p is not None:
                files.append((backbone, p))
                others += 1
        if bad is not None:
            self.keep([f"tables/{name}"], bad)
            self._ensure_placeholders([name], command=pets_report.COMMAND)
        elif not others:
            self.log(f"note: no pets-{profile}-<backbone>.json: table {name} is a placeholder "
                     f"(run {pets_report.COMMAND} --backbone lite0)")
            self.table(pets_backbones.backbones_placeholder(), placeholder=True)
        else:
            self.table(pets_backbones.backbones_table(files))
            self.macros.update(pets_backbones.backbones_macros(files))
            self.macro_sources += [p.file.source for _, p in files[1:]]

    def muller(self) -> None:
        parsed: dict[str, muller_report.Muller] = {}
        bad = None
        builders = {"calibration": muller_report.calibration_table, "distillation": muller_report.distillation_table,
                    "representations": muller_report.representations_table}
        for exp in muller_report.EXPERIMENTS:
            path = self.results.muller.get(exp)
            if path is None:
                self.log(f"note: no muller-{exp}.json: its table is a placeholder (run {muller_report.COMMAND})")
                self.table(muller_report.muller_placeholder(exp), placeholder=True)
                if exp == "representations":
                    self.figure(muller_report.FIGURE, None, (), muller_report.COMMAND)
                continue
            m, err = self.load(path, lambda rf, e=exp: muller_report.parse_muller(rf, e))
            if err is not None:
                bad = bad or err
                figure = [f"figures/{muller_report.FIGURE}"] if exp == "representations" else []
                kept = [f"tables/muller-{exp}"] + figure
                self.keep(kept, err)
                self._ensure_placeholders([f"muller-{exp}"], command=muller_report.COMMAND,
                                          figures=[muller_report.FIGURE] if exp == "representations" else [])
                continue
            parsed[exp] = m
            self.table(builders[exp](m))
            self.macro_sources.append(m.file.source)
            if exp == "representations":
                self._muller_figure(m)
        for other in sorted(set(self.results.muller) - set(muller_report.EXPERIMENTS)):
            self.log(f"note: {self.results.muller[other].name}: not a known Müller experiment; ignored")
        if bad is not None:
            self.keep(["tables/muller-verdicts"], bad)
            self._ensure_placeholders(["muller-verdicts"], command=muller_report.COMMAND)
        elif parsed:
            self.table(muller_report.verdicts_table(parsed))
        else:
            self.table(muller_report.muller_placeholder("verdicts"), placeholder=True)
        if bad is None:
            self.macros.update(muller_report.muller_macros(parsed))

    def _muller_figure(self, m: muller_report.Muller) -> None:
        snippet_path = self.figures_dir / f"{muller_report.FIGURE}.tex"
        try:
            panels = muller_report.figure_panels(m)
        except ResultsError as exc:
            self.out.errors.append(exc)
            self.log(f"error: {exc}")
            self.keep([f"figures/{muller_report.FIGURE}"], exc)
            self._ensure_placeholders([], figures=[muller_report.FIGURE], command=muller_report.COMMAND)
            return
        if not panels:
            self.figure(muller_report.FIGURE, None, (), muller_report.COMMAND, "with no projection recorded")
            return
        if self.figures:
            self.out.written += muller_report.render_representations(m, self.figures_dir)
        atomic_write(snippet_path, figure_files.snippet(muller_report.FIGURE, muller_report.REPRESENTATIONS_CAPTION,
                                                        [m.file.source],
                                             command=f"{REGENERATE} (drawn by {muller_report.COMMAND}'s renderer)"))
        self.out.written.append(snippet_path)

    def _ensure_placeholders(self, tables, figures=(), command: str = REGENERATE) -> None:
        """After an error: give a placeholder to an artefact that does not exist at all (never overwrite)."""
        for name in tables:
            if not (self.tables_dir / f"{name}.tex").exists():
                if name == "proofs":
                    self.raw_table("proofs", proofs_report.PROOFS_PLACEHOLDER_TEX,
                                   proofs_report.PROOFS_PLACEHOLDER_MD, placeholder=True)
                    continue
                cols = ("status",)
                t = placeholder(name, name, cols, command, why="its results file is malformed")
                self.table(t, placeholder=True)
        for name in figures:
            if not (self.figures_dir / f"{name}.tex").exists():
                self.figure(name, None, (), command, "not generated: its results file is malformed")

    def write_macros(self) -> None:
        path = self.tables_dir / "macros.tex"
        if self.out.errors and path.exists():
            self.log("note: tables/macros.tex left unchanged (a results file is malformed)")
            self.out.kept.append("tables/macros.tex")
            return
        atomic_write(path, render_macros(self.macros, self.macro_sources))
        self.out.written.append(path)

    def run(self) -> Outcome:
        for p in self.results.other:
            self.log(f"note: {p.name}: not a results file the paper uses; ignored")
        self.proofs()
        self.bench()
        self.pets()
        self.muller()
        self.table(conventions_report.conventions_table())  # from the code alone (issue 17)
        self.macros.update(conventions_report.macros())
        self.write_macros()
        return self.out


def allow_breaks(tex: str) -> str:
    """Let long file names and identifiers in table cells break after ``/`` and ``_`` (text only).

    Applied to the rows of a rendered table (between the first ``\\midrule`` and ``\\bottomrule``),
    outside ``$...$``; the Markdown rendering is untouched.
    """
    head, sep, rest = tex.partition("\\midrule\n")
    if not sep:
        return tex
    body, sep2, tail = rest.partition("\\bottomrule")
    parts = re.split(r"(\$[^$]*\$)", body)
    for i in range(0, len(parts), 2):  # the even parts are outside maths
        parts[i] = parts[i].replace("\\_", "\\_\\allowbreak{}").replace("/", "/\\allowbreak{}")
    return head + sep + "".join(parts) + sep2 + tail


_FIG_TITLES = {
    "throughput": "Throughput against the number of classes K, per implementation, with the bandwidth floor.",
    "reliability-frozen": "Reliability diagrams on Pets (profile frozen), per recipe.",
    "reliability-fastai": "Reliability diagrams on Pets (profile fastai), per recipe.",
    "ece-error-frozen": "ECE against error per recipe on Pets (profile frozen).",
    "ece-error-fastai": "ECE against error per recipe on Pets (profile fastai).",
    muller_report.FIGURE: "Müller et al. (2019) Figure 1 reproduced: penultimate-layer activations projected onto the "
              "plane of three class templates.",
}

MACRO_UNRECORDED = r"\textit{not yet recorded}"


def macro_value(value: Any) -> str:
    if value is None:
        return MACRO_UNRECORDED
    if isinstance(value, TeX):  # already LaTeX
        return str(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return latex_escape(str(value))


def render_macros(macros: Mapping[str, Any], sources) -> str:
    src = ", ".join(f"{n} @ {d}" for n, d in dict.fromkeys(tuple(s[:2]) for s in sources)) or "lsbench source only"
    lines = [f"% Generated by `{REGENERATE}`; do not edit. From: {src}.",
             "% Every number the prose of main.tex quotes from results; undefined results read as",
             f"% {MACRO_UNRECORDED}."]
    for name in sorted(macros):
        if not name.isalpha():
            raise ValueError(f"macro name {name!r} must be letters only")
        lines.append(rf"\newcommand{{\{name}}}{{{macro_value(macros[name])}}}")
    return "\n".join(lines) + "\n"


def generate(results_dir: Path | str, out_dir: Path | str, *, figures: bool = True,
             log: Callable[[str], None] = lambda s: None) -> Outcome:
    """Regenerate tables (and, with ``figures``, the images) from ``results_dir`` into ``out_dir``."""
    return _Gen(Path(results_dir), Path(out_dir), figures, log).run()
