"""Tables built from the proof certificate ``paper/results/proofs.json`` and the recipe catalogue.

* ``catalogue``    -- every recipe: target, source, which peer libraries implement the same
  maths (from ``RECIPES[name].peers``) and its proof status;
* ``verification`` -- per recipe: theorems, proved for symbolic K / by instances, failed, findings;
* ``findings``     -- where a published text and its published code disagree (or the published
  code is hazardous), each with the theorems of the certificate that show it;
* ``proofs``       -- every theorem, rendered by :func:`proofs.certificate.latex_table` /
  :func:`~proofs.certificate.markdown_table` (the renderer ``verify`` itself uses, so the
  two commands write the same bytes for the same certificate).

A certificate that records the sha256 of the sources it verified (``sources``) is
checked against the sources now: when they differ the verification table says
it is stale and names the files. Older certificates (no ``sources``) render as before.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Sequence

from lsbench.report.fmt import DASH, NOT_RECORDED
from lsbench.report.results import PROOFS_SCHEMA, ResultFile, ResultsError, check_schema, need
from lsbench.report.tables import Table, placeholder
from proofs import certificate as proof_certificate

#: The peer columns of the catalogue, in order; a peer string matches a column when it
#: equals the column name or starts with it followed by a space ("PyTorch KLDivLoss").
PEER_COLUMNS = ("optax", "PyTorch", "fastai", "fast-reid", "timm", "Keras", "Liger")


def P(width: str) -> str:
    """A ragged-right paragraph column (needs the ``array`` package)."""
    return rf">{{\raggedright\arraybackslash}}p{{{width}}}"

#: Catalogue rows for what the certificate proves but ``RECIPES`` does not hold (a
#: reweighting, not a loss with a target distribution).
EXTRA_RECIPES = {
    "self_correction": {
        "formula": r"$w_i = 1 - \alpha\,(-\log(P_{i,y_i} + 10^{-10}))$",
        "source": "loss-based self-correction reweighting (lsbench.losses.self_correction)",
        "peers": (),
    },
}


@dataclasses.dataclass(frozen=True)
class Theorem:
    recipe: str
    name: str
    statement: str
    method: str
    status: str
    finding: bool
    note: str
    seconds: float

    @property
    def ref(self) -> str:
        return f"{self.recipe}.{self.name}"


@dataclasses.dataclass(frozen=True)
class Certificate:
    file: ResultFile
    theorems: tuple[Theorem, ...]
    recipes: tuple[str, ...]  # the recipes that were run, in the certificate's order
    instance_ks: tuple[int, int] | None

    def of(self, recipe: str) -> list[Theorem]:
        return [t for t in self.theorems if t.recipe == recipe]

    def get(self, ref: str) -> Theorem | None:
        for t in self.theorems:
            if t.ref == ref:
                return t
        return None


def parse_certificate(rf: ResultFile) -> Certificate:
    """Check ``proofs.json`` against the ``lsbench.proofs/1`` schema (the parts the report uses)."""
    check_schema(rf, PROOFS_SCHEMA)
    rows = need(rf, rf.data, "theorems", list)
    theorems = []
    for i, r in enumerate(rows):
        where = f"theorems[{i}]"
        if not isinstance(r, Mapping):
            raise ResultsError(rf.path, f"{where}: expected an object, found {type(r).__name__}")
        t = Theorem(
            recipe=need(rf, r, "recipe", str, where),
            name=need(rf, r, "name", str, where),
            statement=need(rf, r, "statement", str, where),
            method=need(rf, r, "method", str, where),
            status=need(rf, r, "status", str, where),
            finding=need(rf, r, "finding", bool, where),
            note=need(rf, r, "note", str, where, optional=True) or "",
            seconds=float(need(rf, r, "seconds", (int, float), where)),
        )
        if t.status not in ("proved", "failed"):
            raise ResultsError(rf.path, f"{where}.status: expected 'proved' or 'failed', found {t.status!r}")
        if t.method not in ("symbolic", "instances", "code", "none"):
            raise ResultsError(rf.path, f"{where}.method: expected symbolic/instances/code/none, found {t.method!r}")
        theorems.append(t)
    recipes = need(rf, rf.data, "recipes", list, optional=True)
    if recipes is None:
        recipes = list(dict.fromkeys(t.recipe for t in theorems))
    ks = need(rf, rf.data, "instance_ks", list, optional=True)
    return Certificate(rf, tuple(theorems), tuple(str(r) for r in recipes),
                       (int(ks[0]), int(ks[1])) if ks and len(ks) == 2 else None)


def counts(theorems: Sequence[Theorem]) -> dict[str, int]:
    proved = [t for t in theorems if t.status == "proved"]
    return {
        "theorems": len(theorems),
        "proved": len(proved),
        "failed": len(theorems) - len(proved),
        "symbolic": sum(t.method == "symbolic" for t in proved),
        "instances": sum(t.method == "instances" for t in proved),
        "code": sum(t.method == "code" for t in proved),
        "findings": sum(t.finding for t in theorems),
    }


def proof_status(cert: Certificate | None, recipe: str) -> str:
    """``10/10 (10 symbolic)``, ``9/10 (8 symbolic, 1 instances), 1 failed``, or a placeholder."""
    if cert is None:
        return NOT_RECORDED
    rows = cert.of(recipe)
    if not rows:
        return "not run"
    c = counts(rows)
    how = [f"{c['symbolic']} symbolic"] if c["symbolic"] else []
    if c["instances"]:
        how.append(f"{c['instances']} instances")
    if c["code"]:
        how.append(f"{c['code']} code")
    s = f"{c['proved']}/{c['theorems']}" + (f" ({', '.join(how)})" if how else "")
    if c["failed"]:
        s += f", {c['failed']} failed"
    return s


# --------------------------------------------------------------------------- catalogue


def _peer_cells(peers: Sequence[str]) -> tuple[list[str], list[str]]:
    cells, used = [], set()
    for col in PEER_COLUMNS:
        hit = [p for p in peers if p == col or p.startswith(col + " ")]
        used.update(hit)
        cells.append("✓" if hit else "")
    return cells, [p for p in peers if p not in used]


def catalogue_table(cert: Certificate | None) -> Table:
    from lsbench.losses import RECIPES

    rows = []
    entries = [(name, f"${r.formula}$", r.source, tuple(r.peers)) for name, r in RECIPES.items()]
    extra = [n for n in EXTRA_RECIPES if n not in RECIPES]
    if cert is not None:
        extra += [n for n in cert.recipes if n not in RECIPES and n not in EXTRA_RECIPES]
    for name in dict.fromkeys(extra):
        e = EXTRA_RECIPES.get(name, {"formula": DASH, "source": DASH, "peers": ()})
        entries.append((name, e["formula"], e["source"], tuple(e["peers"])))
    also = []
    for name, formula, source, peers in entries:
        cells, others = _peer_cells(peers)
        rows.append((name, formula, source, *cells, proof_status(cert, name)))
        if others:
            also.append(f"{name}: {', '.join(others)}")
    sources = (cert.file.source,) if cert is not None else ()
    return Table(
        name="catalogue",
        caption=("The recipes: target distribution (label y, K classes), published source, the peer "
                 "libraries that implement the same maths (from RECIPES[name].peers), and the theorems "
                 "of proofs/ that were checked (proved/total, by method)."),
        columns=("recipe", "target / loss", "source", *PEER_COLUMNS, "proved"),
        rows=tuple(rows),
        sources=sources,
        notes=(f"Other implementations listed in RECIPES[name].peers: {'; '.join(also)}.",) if also else (),
        align=f"l{P('5.4cm')}{P('3.6cm')}" + "c" * len(PEER_COLUMNS) + P("1.6cm"),
        shrink_only=True, ragged_notes=True,
    )


# --------------------------------------------------------------------------- verification summary


def verification_table(cert: Certificate | None) -> Table:
    columns = ("recipe", "theorems", "proved", "symbolic K", "instances", "failed", "findings", "seconds")
    if cert is None:
        return placeholder("verification", "Theorems checked per recipe.", columns, "python -m lsbench verify")
    keys = ["theorems", "proved", "symbolic", "instances", "failed", "findings"]
    has_code = any(t.method == "code" for t in cert.theorems)
    if has_code:  # only then: a certificate without code theorems renders exactly as before
        columns = columns[:5] + ("code",) + columns[5:]
        keys.insert(4, "code")
    rows = []
    recipes = list(dict.fromkeys([*cert.recipes, *(t.recipe for t in cert.theorems)]))
    for recipe in recipes:
        ts = cert.of(recipe)
        c = counts(ts)
        rows.append((recipe, *(str(c[k]) for k in keys), f"{sum(t.seconds for t in ts):.2f}"))
    c = counts(cert.theorems)
    rows.append(("\\midrule",))
    rows.append(("all", *(str(c[k]) for k in keys), f"{sum(t.seconds for t in cert.theorems):.2f}"))
    ks = cert.instance_ks
    inst = (f"instances: every claim checked for each K from {ks[0]} to {ks[1]} where SymPy could not "
            f"close it for symbolic K" if ks else "instances: checked for a finite range of K")
    caption = ("Theorems checked per recipe by SymPy: proved for symbolic K (and every other symbol), "
               f"or by instances ({inst}); findings are theorems about a published discrepancy or hazard.")
    notes: tuple[str, ...] = ()
    if has_code:
        code_ks = cert.file.data.get("code_ks") or ["?", "?"]
        caption += (f" Code theorems: the traced JAX program of the recipe (per-example loss, loss and its "
                    f"custom-VJP gradient, on every path) equals the spec exactly, for each K from "
                    f"{code_ks[0]} to {code_ks[1]}, over the reals (float rounding is not modelled).")
    stale = proof_certificate.stale_sources(cert.file.data)
    if stale:
        caption = "STALE: " + caption
        shown = ", ".join(stale[:6]) + (f" and {len(stale) - 6} more" if len(stale) > 6 else "")
        notes = (f"Stale: the sources changed since this certificate was recorded ({shown}); "
                 "re-run python -m lsbench verify.",)
    return Table(
        name="verification",
        caption=caption,
        columns=columns,
        rows=tuple(rows),
        sources=(cert.file.source,),
        notes=notes,
        align="lrrrr" + ("r" if has_code else "") + "rrr",
        shrink_only=True, ragged_notes=True,
    )


# --------------------------------------------------------------------------- findings


@dataclasses.dataclass(frozen=True)
class Finding:
    key: str
    recipe: str
    text: str       # what the published text (or the general intent) says
    code: str       # what the published code does
    effect: str     # the consequence
    theorems: tuple[str, ...]  # theorem names of ``recipe`` in proofs/ that show it


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "speech_transformer", "speech_transformer",
        text=r"prose: $q = (1-\varepsilon)\,\mathrm{onehot}(y) + \varepsilon/K$ (the uniform recipe)",
        code=r"cal_loss: $q_y = 1-\varepsilon$, $q_{j\ne y} = \varepsilon/K$",
        effect=r"the target sums to $1-\varepsilon/K$: not a distribution; its optimum differs from uniform's",
        theorems=("target_mass", "code_vs_prose", "uniform_plus_log_p", "optimum"),
    ),
    Finding(
        "fastreid_adaptive", "fastreid",
        text=r"adaptive smoothing $\varepsilon_i = \alpha\,p_y$, a function of the logits",
        code=r"targets built under no_grad: $\varepsilon_i$ treated as a constant",
        effect=r"the gradient drops $\alpha p_y([j=y]-p_j)\big(z_y - \tfrac{S-z_y}{K-1}\big)$, which is not 0",
        theorems=("adaptive_full_gradient", "adaptive_dropped_term_nonzero", "gradient_stop_gradient"),
    ),
    Finding(
        "self_correction_negative", "self_correction",
        text=r"weights $w_i = 1 - \alpha(-\log(p_y + 10^{-10}))$ down-weight hard examples",
        code="no floor at 0",
        effect=r"$w_i < 0$ when $p_y < e^{-1/\alpha}$; a negative weight turns the step into gradient ascent",
        theorems=("negative_weight_region", "alpha_0_1_threshold", "negative_weight_ascends"),
    ),
    Finding(
        "distillation_log_softmax", "distillation",
        text=r"$T^2\,\mathrm{KL}(q\,\|\,p)$ between the teacher's and the student's softmax at temperature $T$",
        code=r"tutorials: $\log(\mathrm{softmax}(s/T))$, which underflows to $-\infty$",
        effect=r"an infinite or NaN loss where a probability underflows; $\mathrm{log\_softmax}$ is the stable form",
        theorems=(),  # filled from the certificate when proofs/distillation.py records a finding
    ),
)


def _theorem_cell(ts: Sequence[Theorem]) -> tuple[str, str]:
    if not ts:
        return "no theorem in proofs.json", DASH
    names = ", ".join(t.name for t in ts)
    proved = [t for t in ts if t.status == "proved"]
    how = sorted({t.method for t in proved})
    status = f"{len(proved)}/{len(ts)} proved" + (f" ({', '.join(how)})" if how else "")
    return names, status


def findings_table(cert: Certificate | None) -> Table:
    columns = ("recipe", "published text", "published code", "consequence", "theorems", "status")
    rows = []
    cited: set[str] = set()
    for f in FINDINGS:
        if cert is None:
            names, status = NOT_RECORDED, DASH
        else:
            ts = [t for n in f.theorems if (t := cert.get(f"{f.recipe}.{n}")) is not None]
            if not f.theorems:  # take the recipe's own findings, if the certificate has any
                ts = [t for t in cert.of(f.recipe) if t.finding]
            cited.update(t.ref for t in ts)
            names, status = _theorem_cell(ts)
        rows.append((f.recipe, f.text, f.code, f.effect, names, status))
    if cert is not None:  # every other finding the certificate flags, with its note
        for t in cert.theorems:
            if t.finding and t.ref not in cited:
                names, status = _theorem_cell([t])
                rows.append((t.recipe, DASH, DASH, t.note or DASH, names, status))
    return Table(
        name="findings",
        caption=("Findings: where a published text and its published code disagree, or the published "
                 "code is hazardous, with the theorems of proofs/ that show it (names as in proofs.json)."),
        columns=columns,
        rows=tuple(rows),
        sources=(cert.file.source,) if cert is not None else (),
        align=f"l{P('3.3cm')}{P('3.0cm')}{P('4.2cm')}{P('3.4cm')}{P('1.6cm')}",
        shrink_only=True, ragged_notes=True,
    )


# --------------------------------------------------------------------------- every theorem


PROOFS_PLACEHOLDER_TEX = (
    "% Generated by `python -m lsbench paper`: paper/results/proofs.json is not recorded yet.\n"
    "% Run `python -m lsbench verify` (it writes the certificate and this table).\n"
    "\\begin{tabular}{@{}l@{}}\n\\toprule\nTheorems: not yet recorded (run \\texttt{python -m lsbench verify}). \\\\\n"
    "\\bottomrule\n\\end{tabular}\n"
)
PROOFS_PLACEHOLDER_MD = (
    "<!-- Generated by `python -m lsbench paper`; paper/results/proofs.json is not recorded yet. -->\n"
    "Theorems: not yet recorded (run `python -m lsbench verify`).\n"
)


def every_theorem(cert: Certificate | None) -> tuple[str, str]:
    """``(tex, md)`` of every theorem: verify's own renderer applied to the certificate."""
    if cert is None:
        return PROOFS_PLACEHOLDER_TEX, PROOFS_PLACEHOLDER_MD
    try:
        return proof_certificate.latex_table(cert.file.data), proof_certificate.markdown_table(cert.file.data)
    except (KeyError, TypeError, IndexError, AttributeError, ValueError) as exc:
        raise ResultsError(cert.file.path, f"verify's table renderer cannot use it ({type(exc).__name__}: {exc})"
                           ) from exc


def cert_macros(cert: Certificate | None) -> dict[str, Any]:
    """Macro values for the prose: totals of the certificate."""
    if cert is None:
        return {k: None for k in ("ProofTheorems", "ProofProved", "ProofSymbolic", "ProofInstances",
                                  "ProofFailed", "ProofFindings", "ProofRecipes", "ProofKmin", "ProofKmax",
                                  "ProofSympy", "ProofHash")}
    c = counts(cert.theorems)
    ks = cert.instance_ks or (None, None)
    sympy_version = cert.file.data.get("sympy")
    return {
        "ProofTheorems": c["theorems"], "ProofProved": c["proved"], "ProofSymbolic": c["symbolic"],
        "ProofInstances": c["instances"], "ProofFailed": c["failed"], "ProofFindings": c["findings"],
        "ProofRecipes": len(set(t.recipe for t in cert.theorems)),
        "ProofKmin": ks[0], "ProofKmax": ks[1],
        "ProofSympy": sympy_version if isinstance(sympy_version, str) else None,
        "ProofHash": cert.file.digest,
    }
